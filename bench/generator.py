"""Generator throughput: img/s of G (mapping + synthesis) per preset, resolution, batch and kernel backend.

    python bench/generator.py [--presets tiny,small] [--res 16,32,64] [--batch 1,32] [--repeats 5]
                              [--backends reference,fir_matmul,fir_conv] [--device cpu]

Prints a table and writes bench/results/generator.json. Figures are medians of `--repeats` timed runs
after one warm-up run; `speedup` is the reference backend's time over this backend's, same weights,
same inputs, same run (`SGXL_KERNELS` picks the backend).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import environment, median_seconds, print_table, write_json  # noqa: E402
from core.networks.generator import Generator, count_parameters  # noqa: E402
from core.networks.presets import preset_config  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="tiny,small")
    ap.add_argument("--res", default="16,32,64")
    ap.add_argument("--batch", default="1,32", help="comma-separated batch sizes")
    ap.add_argument("--backends", default="reference,fir_matmul,fir_conv", help="kernel backends (SGXL_KERNELS names)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    rows = []
    for preset in args.presets.split(","):
        for res in [int(r) for r in args.res.split(",")]:
            torch.manual_seed(0)
            G = Generator(preset_config(preset, res)).eval().to(device)
            counts = count_parameters(G)
            for batch in [int(b) for b in args.batch.split(",")]:
                z = torch.randn(batch, G.z_dim, device=device)
                c = torch.arange(batch, device=device) % G.c_dim
                base = None
                for backend in args.backends.split(","):
                    os.environ["SGXL_KERNELS"] = backend

                    def run(G=G, z=z, c=c) -> None:
                        with torch.no_grad():
                            G(z, c, psi=0.7)

                    sec = median_seconds(run, repeats=args.repeats, cuda=device.type == "cuda")
                    base = sec if base is None else base
                    rows.append({"preset": preset, "res": res, "batch": batch, "backend": backend,
                                 "median_s": round(sec, 4), "img_per_s": round(batch / sec, 2),
                                 "ms_per_img": round(1000 * sec / batch, 2), "speedup": round(base / sec, 2),
                                 "params_total": counts["total"]})
    os.environ.pop("SGXL_KERNELS", None)
    print_table(rows, ["preset", "res", "batch", "backend", "median_s", "img_per_s", "ms_per_img", "speedup",
                       "params_total"])
    path = write_json("generator", {"benchmark": "generator", "env": environment(), "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
