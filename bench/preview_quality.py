"""Previews vs float32: image error (PSNR over many seeds) and render time, on this CPU.

Measures the preview plan the explorer would use (`core.networks.precision.measure_plan`: per layer,
bf16 only where it measured faster; the last stage's same-rate layers without anti-aliasing filters
where that is faster), renders each seed exactly and with each preview (bf16 alone, no anti-aliasing
alone, both, and every conv in bf16), and reports the PSNR of each preview's uint8 image against the
exact one (median, min), the largest pixel difference, and the render times (medians, interleaved per
seed). Writes a side-by-side PNG of seeds 0-7 (rows: float32, then each preview) and JSON.

    python -m bench.preview_quality [--ckpt assets/demo.sgxl] [--seeds 100]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.common import RESULTS, environment, print_table, write_json
from core.io.checkpoint import load_checkpoint
from core.networks import precision
from core.sampling import image_grid, to_uint8, ws_from_seeds

REPO = Path(__file__).resolve().parents[1]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ckpt", default=str(REPO / "assets" / "demo.sgxl"))
    p.add_argument("--seeds", type=int, default=100)
    p.add_argument("--trunc", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the explorer on 2 cores)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    G = load_checkpoint(a.ckpt, device="cpu").generator.eval().requires_grad_(False)
    classes = list(range(G.c_dim)) or [None]
    measured = precision.measure_plan(G.synthesis, ws_from_seeds(G, [0], classes[0], 1.0),
                                      bf16=precision.cpu_bf16_support() is not None)
    every_conv = frozenset(layer.spec.name for layer in G.synthesis.layers())
    plans = {  # what the explorer's switches give, and every conv in bf16 for reference
        "bf16 (measured)": measured.restricted(plain=False),
        "no last-stage anti-aliasing (measured)": measured.restricted(bf16=False),
        "both (measured, explorer default)": measured,
        "bf16 in every conv": precision.PrecisionPlan(conv=every_conv),
    }
    psnrs = {k: [] for k in plans}
    maxdiff = {k: [] for k in plans}
    times = {k: [] for k in ("float32", *plans)}
    shots = []
    with torch.no_grad():
        for seed in range(a.seeds):
            ws = ws_from_seeds(G, [seed], classes[seed % len(classes)], a.trunc)
            t0 = time.perf_counter()
            exact = to_uint8(G.synthesis(ws))[0]
            times["float32"].append((time.perf_counter() - t0) * 1000)
            row = [exact]
            for name, plan in plans.items():
                t0 = time.perf_counter()
                with precision.running(plan):
                    preview = to_uint8(G.synthesis(ws))[0]
                times[name].append((time.perf_counter() - t0) * 1000)
                psnrs[name].append(psnr(preview, exact))
                maxdiff[name].append(int(np.abs(preview.astype(int) - exact.astype(int)).max()))
                row.append(preview)
            if seed < 8:
                shots.append(row)
    f32_ms = statistics.median(times["float32"])
    table = [{"preview": "float32 (exact)", "layers": "", "psnr_median_db": "", "psnr_min_db": "",
              "max_abs_diff": 0, "ms": round(f32_ms, 1), "speedup": 1.0}]
    for name, plan in plans.items():
        finite = [x for x in psnrs[name] if np.isfinite(x)]
        table.append({"preview": name, "layers": plan.summary().split(":")[0],
                      "psnr_median_db": round(statistics.median(psnrs[name]), 2),
                      "psnr_min_db": round(min(finite), 2) if finite else "inf", "max_abs_diff": max(maxdiff[name]),
                      "ms": round(statistics.median(times[name]), 1),
                      "speedup": round(f32_ms / statistics.median(times[name]), 2)})
    print(f"previews vs float32 on {Path(a.ckpt).name} ({G.img_resolution}x{G.img_resolution}), {a.seeds} seeds, "
          f"{precision.cpu_bf16_support() or 'no native bf16'}, {a.threads} thread(s), torch {torch.__version__}; "
          f"ms = median wall time per image, interleaved")
    print_table(table, ["preview", "layers", "psnr_median_db", "psnr_min_db", "max_abs_diff", "ms", "speedup"])
    rows = [image_grid(np.stack([r[k] for r in shots]), len(shots)) for k in range(len(plans) + 1)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    png = RESULTS / "preview_side_by_side.png"
    Image.fromarray(np.concatenate(rows)).save(png)
    print(f"wrote {png} (rows: float32, then each preview in the table's order; columns: seeds 0-7)")
    path = write_json("preview_quality", {
        "env": environment(), "ckpt": a.ckpt, "cpu_bf16": precision.cpu_bf16_support(), "table": table,
        "plans": {k: {"conv": sorted(v.conv), "fir": sorted(v.fir), "plain": sorted(v.plain)}
                  for k, v in plans.items()},
        "psnr_db": psnrs, "ms": times})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
