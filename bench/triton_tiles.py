"""Check the Triton filtered_lrelu tile planner on a GPU: time its cheapest few candidate plans per layer.

    python -m bench.triton_tiles [--preset imagenet] [--res 256] [--batch 1] [--dtype float16] [--candidates 3]

`kernels.triton_filtered_lrelu.plan` picks block sizes with a cost model (tensor-core multiplies plus
`MOVE_COST` per element moved). For the largest layers of the preset this times the forward kernel with each of
the model's `--candidates` cheapest plans (rank 0 = the one it uses) and prints the measured order, so the model
can be tuned from data. Rows print as they are measured (a time-boxed run still reports what it got).
Writes bench/results/triton_tiles.json.
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
from kernels import triton_filtered_lrelu as tfl  # noqa: E402
from kernels.triton_support import host_taps  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="imagenet")
    ap.add_argument("--res", type=int, default=256)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--dtype", default="float16")
    ap.add_argument("--candidates", type=int, default=3)
    ap.add_argument("--layers", type=int, default=4, help="how many of the largest distinct layers")
    ap.add_argument("--device", default="cuda", help="cpu only with TRITON_INTERPRET=1 (a smoke test)")
    args = ap.parse_args()
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[args.dtype]
    G = Generator(preset_config(args.preset, args.res))
    layers, seen = [], set()
    for layer in G.synthesis.layers():
        n = layer.spec.in_size + layer.conv_kernel - 1
        key = (n, layer.up_factor, layer.down_factor)
        if layer.up_filter is None or key in seen:
            continue
        seen.add(key)
        layers.append((n * n * layer.up_factor**2 * layer.spec.out_channels, layer, n))
    layers = [la for _, la, _ in sorted(layers, key=lambda t: -t[0])][: args.layers]
    layers = [(la, la.spec.in_size + la.conv_kernel - 1) for la in layers]
    rows, env = [], environment()
    for layer, n in layers:
        tu, td = host_taps(layer.up_filter), host_taps(layer.down_filter)
        pad = layer.padding
        ax = tfl._axis(n, tu, td, layer.up_factor, layer.down_factor, pad[0], pad[1], False)
        ay = tfl._axis(n, tu, td, layer.up_factor, layer.down_factor, pad[2], pad[3], False)
        x = torch.randn(args.batch, layer.spec.out_channels, n, n, device=args.device).to(dtype)
        b = torch.zeros(layer.spec.out_channels, device=args.device, dtype=dtype)
        candidates = [(rank, tiles, None) for rank, tiles in enumerate(tfl.plan_candidates(ay, ax, args.candidates))]
        candidates += [(0, candidates[0][1], w) for w in (4, 8)]  # the plan in use with each warp count
        for rank, tiles, warps in candidates:
            def run(tiles=tiles, x=x, b=b, ay=ay, ax=ax, warps=warps) -> None:
                tfl._launch(x, b, None, ay, ax, tfl.MODE_ACT, 0.2, math.sqrt(2), 256.0, False, tiles=tiles,
                            num_warps=warps)

            sec = median_seconds(run, repeats=10, warmup=2, cuda=args.device == "cuda")
            py, px = tiles
            rows.append({"layer": layer.spec.name, "shape": f"{args.batch}x{layer.spec.out_channels}x{n}x{n}",
                         "up/down": f"{layer.up_factor}/{layer.down_factor}", "rank": rank,
                         "warps": warps or "default",
                         "blocks_y": f"{py.block_in}/{py.block_mid}/{py.block_out}:{py.per_tile}",
                         "blocks_x": f"{px.block_in}/{px.block_mid}/{px.block_out}:{px.per_tile}",
                         "model_cost": round(tfl.plan_cost(py, px) / 1e6, 1), "median_ms": round(1000 * sec, 3)})
            print(rows[-1], flush=True)
            write_json("triton_tiles", {"benchmark": "triton_tiles", "env": env, "rows": rows})  # a time box may end us
    print_table(rows, ["layer", "shape", "up/down", "rank", "warps", "blocks_y", "blocks_x", "model_cost",
                       "median_ms"])
    print(f"wrote {write_json('triton_tiles', {'benchmark': 'triton_tiles', 'env': env, 'rows': rows})}")


if __name__ == "__main__":
    main()
