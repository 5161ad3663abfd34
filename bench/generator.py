"""Generator throughput: img/s of G (mapping + synthesis) per preset, resolution, batch and kernel backend.

    python bench/generator.py [--presets tiny,small] [--res 16,32,64] [--batch 1,32] [--repeats 5]
                              [--backends reference,fir_matmul,fir_conv] [--precision fp32,amp] [--device cpu]

Prints a table and writes bench/results/generator.json. Figures are medians of `--repeats` timed runs
after one warm-up run (CUDA: event timing); `speedup` is the reference backend's time over this backend's,
same weights, same inputs, same run (`SGXL_KERNELS` picks the backend). `fp32` is the model as it runs by
default (on CUDA its `use_fp16` layers run in float16, as in the paper); `amp` runs the synthesis network under
bfloat16 autocast (the mapping stays float32).
On CUDA `peak_mb` is the GPU memory peak of the timed runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    environment,
    median_seconds,
    peak_memory_mb,
    print_table,
    reset_peak_memory,
    write_json,
)
from core.networks.generator import Generator, count_parameters  # noqa: E402
from core.networks.presets import preset_config  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="tiny,small")
    ap.add_argument("--res", default="16,32,64")
    ap.add_argument("--batch", default="1,32", help="comma-separated batch sizes")
    ap.add_argument("--backends", default="reference,fir_matmul,fir_conv", help="kernel backends (SGXL_KERNELS names)")
    ap.add_argument("--precision", default="fp32", help="comma-separated: fp32 (the model's own), amp (bf16 autocast)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    rows, env = [], environment()
    for preset in args.presets.split(","):
        for res in [int(r) for r in args.res.split(",")]:
            torch.manual_seed(0)
            G = Generator(preset_config(preset, res)).eval().to(device)
            counts = count_parameters(G)
            for batch, precision in [(int(b), p) for b in args.batch.split(",") for p in args.precision.split(",")]:
                z = torch.randn(batch, G.z_dim, device=device)
                c = torch.arange(batch, device=device) % G.c_dim
                base = None
                for backend in args.backends.split(","):
                    os.environ["SGXL_KERNELS"] = backend

                    def run(G=G, z=z, c=c, amp=precision == "amp") -> None:
                        with torch.no_grad():
                            ws = G.mapping(z, c, psi=0.7)  # float32: truncation lerps toward float32 w_avg
                            with torch.autocast(device.type, torch.bfloat16, enabled=amp):
                                G.synthesis(ws)

                    reset_peak_memory()
                    try:
                        sec = median_seconds(run, repeats=args.repeats, cuda=device.type == "cuda")
                    except torch.cuda.OutOfMemoryError:
                        torch.cuda.empty_cache()
                        rows.append({"preset": preset, "res": res, "batch": batch, "precision": precision,
                                     "backend": backend, "median_s": "oom"})
                        continue
                    base = sec if base is None else base
                    rows.append({"preset": preset, "res": res, "batch": batch, "precision": precision,
                                 "backend": backend, "median_s": round(sec, 4), "img_per_s": round(batch / sec, 2),
                                 "ms_per_img": round(1000 * sec / batch, 2), "speedup": round(base / sec, 2),
                                 "peak_mb": peak_memory_mb(), "params_total": counts["total"]})
                    print(rows[-1], flush=True)
                    write_json("generator", {"benchmark": "generator", "env": env, "rows": rows})  # time boxes
            del G
    os.environ.pop("SGXL_KERNELS", None)
    print_table(rows, ["preset", "res", "batch", "precision", "backend", "median_s", "img_per_s", "ms_per_img",
                       "speedup", "peak_mb", "params_total"])
    path = write_json("generator", {"benchmark": "generator", "env": env, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
