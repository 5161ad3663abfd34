"""StyleGAN ops, reference vs fast path, at the shapes the generator really uses.

    python bench/ops.py [--preset tiny] [--res 64] [--batch 8] [--repeats 5] [--device cpu]

For every distinct synthesis layer of the preset (up/down factor, size, channels) this times
`filtered_lrelu` forward and forward+backward with each backend, plus one `upfirdn2d` 2x upsample,
and prints medians and the speedup over the reference measured in the same run. Writes
bench/results/ops.json.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import environment, median_seconds, print_table, write_json  # noqa: E402
from core.networks.generator import Generator  # noqa: E402
from core.networks.presets import preset_config  # noqa: E402
from kernels import dispatch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    G = Generator(preset_config(args.preset, args.res)).to(device)
    probe = torch.zeros(1, device=device)
    fast = [b for b in dispatch.BACKENDS if b is not dispatch.REFERENCE and b.supports(probe)]
    backends = [dispatch.REFERENCE, *fast]  # the reference first: speedups are relative to it
    rows, seen = [], set()
    for layer in G.synthesis.layers():
        n = layer.spec.in_size + layer.conv_kernel - 1
        key = (n, layer.spec.out_channels, layer.up_factor, layer.down_factor, layer.spec.is_torgb)
        if key in seen:
            continue
        seen.add(key)
        x = torch.randn(args.batch, layer.spec.out_channels, n, n, device=device)
        kw = dict(fu=layer.up_filter, fd=layer.down_filter, b=layer.bias.detach(), up=layer.up_factor,
                  down=layer.down_factor, padding=layer.padding, clamp=layer.conv_clamp,
                  gain=1.0 if layer.spec.is_torgb else math.sqrt(2), slope=1.0 if layer.spec.is_torgb else 0.2)
        base: dict[str, float] = {}
        for backend in backends:
            xg = x.clone().requires_grad_(True)

            def fwd(backend=backend, x=x, kw=kw) -> None:
                with torch.no_grad():
                    backend.filtered_lrelu(x, **kw)

            def fwd_bwd(backend=backend, xg=xg, kw=kw) -> None:
                backend.filtered_lrelu(xg, **kw).square().sum().backward()

            cuda = device.type == "cuda"
            times = {"fwd": median_seconds(fwd, args.repeats, cuda=cuda),
                     "fwd_bwd": median_seconds(fwd_bwd, args.repeats, cuda=cuda)}
            for kind, sec in times.items():
                base.setdefault(kind, sec)
                rows.append({"op": f"filtered_lrelu {kind}", "layer": layer.spec.name,
                             "shape": f"{args.batch}x{layer.spec.out_channels}x{n}x{n}",
                             "up/down": f"{layer.up_factor}/{layer.down_factor}", "backend": backend.name,
                             "median_ms": round(1000 * sec, 2), "speedup": round(base[kind] / sec, 2)})
    x = torch.randn(args.batch, 64, args.res, args.res, device=device)
    f = torch.rand(12, device=device)
    base_up = None
    for backend in backends:
        sec = median_seconds(lambda backend=backend: backend.upfirdn2d(x, f, up=2, padding=[6, 5, 6, 5], gain=4),
                             args.repeats, cuda=device.type == "cuda")
        base_up = sec if base_up is None else base_up
        rows.append({"op": "upfirdn2d up2", "layer": "-", "shape": f"{args.batch}x64x{args.res}x{args.res}",
                     "up/down": "2/1", "backend": backend.name, "median_ms": round(1000 * sec, 2),
                     "speedup": round(base_up / sec, 2)})
    print_table(rows, ["op", "layer", "shape", "up/down", "backend", "median_ms", "speedup"])
    path = write_json("ops", {"benchmark": "ops", "env": environment(), "preset": args.preset, "res": args.res,
                              "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
