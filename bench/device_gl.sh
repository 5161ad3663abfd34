#!/usr/bin/env bash
# The explorer's frame upload on an NVIDIA GPU machine without a display: CUDA-GL interop vs host uploads vs
# raw textures (python -m bench.frame_upload --device cuda), in about a minute.
#
# There is no display there, so this starts an Xvfb of its own; GLX clients of it render on the GPU through
# NVIDIA's GLX vendor library (__GLX_VENDOR_LIBRARY_NAME=nvidia), while Xvfb itself needs Mesa's software
# driver for its GLX extension. None of that is installed there, so it travels with the repo, git-ignored,
# as made by bench/device_gl_prepare.sh:
#   .glbench/gl/*.deb        GL loaders (glvnd: libGL, libGLX, libOpenGL), unpacked onto / and ldconfig'd;
#   .glbench/xroot.tar.xz    Xvfb, xkbcomp + xkb data, Mesa's swrast driver, X and Mesa libraries, unpacked
#                            into /tmp/xroot only (never onto /), used through LD_LIBRARY_PATH;
#   .glbench/whl/*.whl       dearpygui and PyOpenGL for Python 3.12 (pip --target /tmp/site).
#
# Run from the repo root, e.g. with the device tool: command `bash bench/device_gl.sh`, carry [".glbench"].
# Writes $OUT/explorer_upload_gpu.json (the bench's JSON), $OUT/device_gl.log, $OUT/xvfb.log.
# Locally, to check the mechanics (leaves / alone, Mesa's GLX, frames on the CPU):
#   SKIP_ROOT=1 GLX_VENDOR=mesa BENCH_DEVICE=cpu DISP=:173 PY=.venv/bin/python OUT=/tmp/x bash bench/device_gl.sh
set -u
OUT=${OUT:-/tmp/device_gl_out}
mkdir -p "$OUT"
exec > >(tee "$OUT/device_gl.log") 2>&1
cd "$(dirname "$0")/.."
PY=${PY:-python3}
X=/tmp/xroot
XLIB=$X/usr/lib/x86_64-linux-gnu
DISP=${DISP:-:99}
step() { echo "== $(date +%T) $*"; }

step "GL loaders onto / (the device README's recipe)"
if [ "${SKIP_ROOT:-0}" != 1 ]; then
  for f in .glbench/gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
step "Xvfb + Mesa into $X"
mkdir -p "$X" && tar -xJf .glbench/xroot.tar.xz -C "$X" || { echo "cannot unpack .glbench/xroot.tar.xz"; exit 3; }
# Xvfb runs xkbcomp from the directory it was built with (/usr/bin) to compile its keymap.
if [ ! -x /usr/bin/xkbcomp ] && [ "${SKIP_ROOT:-0}" != 1 ]; then cp "$X/usr/bin/xkbcomp" /usr/bin/xkbcomp; fi

step "dearpygui + PyOpenGL"
if ! $PY -c "import dearpygui, OpenGL" 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .glbench/whl/*.whl || exit 4
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

step "facts"
nvidia-smi -L 2>&1 | head -2
$PY -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
$PY -c "import cuda.bindings as c; print('cuda-bindings', c.__version__)" 2>&1 | tail -1
ldconfig -p | grep -E "libGLX_nvidia|libGL.so.1|libEGL_nvidia" | head -4
DPG_SO=$($PY -c "import dearpygui, glob, os; print(glob.glob(os.path.join(os.path.dirname(dearpygui.__file__), '_dearpygui*.so'))[0])")
for b in "$X/usr/bin/Xvfb" "$XLIB/dri/swrast_dri.so" "$DPG_SO"; do
  LD_LIBRARY_PATH=$XLIB ldd "$b" | grep "not found" | sed "s|^|missing for $(basename "$b"): |"
done

step "Xvfb $DISP"
env LD_LIBRARY_PATH=$XLIB LIBGL_DRIVERS_PATH=$XLIB/dri "$X/usr/bin/Xvfb" "$DISP" -screen 0 1600x1000x24 \
  -nolisten tcp -xkbdir "$X/usr/share/X11/xkb" >"$OUT/xvfb.log" 2>&1 &
XVFB=$!
trap 'kill $XVFB 2>/dev/null' EXIT
for _ in $(seq 100); do [ -e "/tmp/.X11-unix/X${DISP#:}" ] && break; sleep 0.1; done
[ -e "/tmp/.X11-unix/X${DISP#:}" ] || { echo "Xvfb did not start:"; cat "$OUT/xvfb.log"; exit 5; }

# The explorer and the bench: X libraries from the prefix, NVIDIA's GLX for the GL context.
export DISPLAY=$DISP __GLX_VENDOR_LIBRARY_NAME=${GLX_VENDOR:-nvidia} LD_LIBRARY_PATH=$XLIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
step "renderer on CUDA (frames carry the RGBA tensor the interop copies)"
timeout 60 $PY -m pytest -q -p no:cacheprovider tests/test_renderer.py -k cuda 2>&1 | tail -3
step "upload bench: CUDA frames; paths auto (= cuda-gl on NVIDIA), gl, gl-pbo (host), raw"
timeout "${BENCH_TIMEOUT:-150}" $PY -m bench.frame_upload --display "$DISP" --device "${BENCH_DEVICE:-cuda}" --paths auto,gl,gl-pbo,raw \
  --rounds 1 --frames "${BENCH_FRAMES:-40}" --json-out "$OUT/explorer_upload_gpu.json"
rc=$?
step "done (rc $rc)"
exit $rc
