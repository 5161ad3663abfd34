#!/usr/bin/env bash
# Makes .glbench/ (git-ignored), what bench/device_gl.sh carries to the GPU machine, on an amd64 Debian or
# Ubuntu machine with apt and pip (apt-get update done). About 55 MB; the device tool carries at most 64 MiB
# a call with the working tree, so carry only .glbench (never the .deb files this downloads on the way).
#   .glbench/gl/         glvnd GL loaders (.deb), which device_gl.sh unpacks onto / as the device README says;
#   .glbench/xroot.tar.xz  Xvfb, xkbcomp, xkb data, Mesa's swrast driver and the X, Mesa, LLVM libraries they
#                        load, less what every Debian/Ubuntu base system has (libc, libstdc++, zlib, ...),
#                        less docs and Mesa's hardware drivers;
#   .glbench/whl/        dearpygui and PyOpenGL wheels for CPython 3.12 (the GPU machine's Python).
set -euo pipefail
cd "$(dirname "$0")/.."
G=.glbench
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
rm -rf "$G" && mkdir -p "$G/gl" "$G/whl" "$WORK/debs" "$WORK/root"

(cd "$G/gl" && apt-get download libglvnd0 libgl1 libglx0 libopengl0)

BASE="libc6 gcc-12-base libgcc-s1 libstdc++6 zlib1g libzstd1 liblzma5 libbz2-1.0 libselinux1 libpcre2-8-0
libsystemd0 libelogind0 libcap2 libgcrypt20 libgpg-error0 liblz4-1 libaudit1 libaudit-common libcap-ng0 libuuid1
lsb-base sysvinit-utils libffi8 libtinfo6 libexpat1 x11-common libglvnd0 libgl1 libglx0"
PKGS=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
         --no-enhances --no-pre-depends xvfb libgl1-mesa-dri x11-xkb-utils xkb-data libglx-mesa0 libx11-6 \
       | grep -v '^[ <]' | sort -u | grep -vxF -f <(printf '%s\n' $BASE))
(cd "$WORK/debs" && apt-get download $PKGS)
for f in "$WORK"/debs/*.deb; do dpkg -x "$f" "$WORK/root"; done
(
  cd "$WORK/root"
  rm -rf usr/share/doc usr/share/locale usr/share/man usr/share/lintian usr/share/bug
  # One Mesa driver (the software one Xvfb's GLX uses); ICU only as far as libxml2 (LLVM's dependency) needs it.
  find usr/lib/x86_64-linux-gnu/dri -type f ! -name swrast_dri.so -delete
  rm -f usr/lib/x86_64-linux-gnu/libicui18n* usr/lib/x86_64-linux-gnu/libicuio* \
        usr/lib/x86_64-linux-gnu/libicutu* usr/lib/x86_64-linux-gnu/libicutest* \
        usr/lib/x86_64-linux-gnu/libLLVM-15.so
)
tar -C "$WORK/root" -cf - . | xz -9 -T0 > "$G/xroot.tar.xz"

python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 -d "$G/whl" dearpygui==2.3.1 PyOpenGL==3.1.10
du -sh "$G" "$G"/*
