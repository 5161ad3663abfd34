"""Explorer render latency: `Renderer.render_sync` (settings -> uint8 frame on the host) per resolution and backend.

    python -m bench.render_latency [--preset imagenet] [--res 256,512,1024] [--backends triton,fir_conv,reference]
                                   [--renders 10] [--device cuda]

A random-weight generator of the preset (the paper's ImageNet size by default: render time does not depend on
the weights) is handed to a headless `explorer.renderer.Renderer`; each timed render uses a new seed, after two
warm-up renders. Reports the median and 90th percentile wall time of `render_sync` (what the explorer's worker
spends per frame: mapping, truncation, synthesis, quantisation, the device->host copy), the median GPU time of
the synthesis alone (CUDA events), and the GPU memory peak. Writes bench/results/render_latency.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
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
from core.networks.generator import Generator  # noqa: E402
from core.networks.presets import preset_config  # noqa: E402
from explorer.renderer import Renderer, RenderSettings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="imagenet")
    ap.add_argument("--res", default="256,512,1024")
    ap.add_argument("--backends", default="triton,fir_conv,reference", help="SGXL_KERNELS names")
    ap.add_argument("--renders", type=int, default=10)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    cuda = args.device == "cuda"
    rows, env = [], environment()
    for res in [int(r) for r in args.res.split(",")]:
        torch.manual_seed(0)
        G = Generator(preset_config(args.preset, res))
        renderer = Renderer(device=args.device, threaded=False)
        renderer.set_model(G, key=f"random-{args.preset}-{res}")  # moves G to the device, eval mode, frozen
        ws = G.mapping(torch.randn(1, G.z_dim, device=args.device), torch.zeros(1, dtype=torch.long,
                                                                                   device=args.device))
        for backend in args.backends.split(","):
            os.environ["SGXL_KERNELS"] = backend
            seed = iter(range(1000))
            for _ in range(2):
                renderer.render_sync(RenderSettings.single(next(seed), 0, psi=0.7))
            reset_peak_memory()
            times = []
            for _ in range(args.renders):
                t0 = time.perf_counter()
                frame = renderer.render_sync(RenderSettings.single(next(seed), 0, psi=0.7))
                times.append(time.perf_counter() - t0)
            assert frame.shape == (res, res, 3)
            with torch.no_grad():
                synth = median_seconds(lambda G=G, ws=ws: G.synthesis(ws), repeats=args.renders, cuda=cuda)
            times.sort()
            rows.append({"preset": args.preset, "res": res, "backend": backend,
                         "render_ms_median": round(1000 * statistics.median(times), 2),
                         "render_ms_p90": round(1000 * times[int(0.9 * (len(times) - 1))], 2),
                         "synthesis_ms": round(1000 * synth, 2), "peak_mb": peak_memory_mb()})
            print(rows[-1], flush=True)
            write_json("render_latency", {"benchmark": "render_latency", "env": env, "rows": rows})  # time boxes
        renderer.close()
        del G, renderer
        if cuda:
            torch.cuda.empty_cache()
    os.environ.pop("SGXL_KERNELS", None)
    print_table(rows, ["preset", "res", "backend", "render_ms_median", "render_ms_p90", "synthesis_ms", "peak_mb"])
    print(f"wrote {write_json('render_latency', {'benchmark': 'render_latency', 'env': env, 'rows': rows})}")


if __name__ == "__main__":
    main()
