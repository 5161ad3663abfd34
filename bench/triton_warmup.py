"""Compile the Triton kernels a set of generators needs, in parallel processes, into Triton's on-disk cache.

    python -m bench.triton_warmup [--models imagenet:256:float16+bfloat16,tiny:64] [--workers 8]

`--models` lists preset:resolution, optionally with :dtype+dtype (default: float32+float16+bfloat16).

Triton compiles each kernel variant (tile plan x mode x dtype) on its first launch, a few seconds each, one at
a time in a process. Benchmarks would time those compilations (or spend their budget on them); this runs every
distinct layer's forward, forward+backward and the `bias_act` variants once, on tiny tensors (the variant does
not depend on batch or channels), spread over worker processes that share the cache (`TRITON_CACHE_DIR`, default
~/.triton/cache). Prints how many jobs ran and how long the whole took; needs a CUDA GPU.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _jobs(models: list[tuple[str, int, list[str]]]) -> list[tuple]:
    from core.networks.generator import Generator
    from core.networks.presets import preset_config

    jobs, seen = [], set()
    for preset, res, dtypes in models:
        for layer in Generator(preset_config(preset, res)).synthesis.layers():
            n = layer.spec.in_size + layer.conv_kernel - 1
            fu = None if layer.up_filter is None else layer.up_filter.tolist()
            fd = None if layer.down_filter is None else layer.down_filter.tolist()
            kw = dict(up=layer.up_factor, down=layer.down_factor, padding=list(layer.padding),
                      clamp=layer.conv_clamp, gain=1.0 if layer.spec.is_torgb else math.sqrt(2),
                      slope=1.0 if layer.spec.is_torgb else 0.2)
            for dtype in dtypes:
                key = (n, len(fu or ()), len(fd or ()), tuple(layer.padding), layer.up_factor, layer.down_factor,
                       layer.spec.is_torgb, dtype)
                if key not in seen:
                    seen.add(key)
                    jobs.append(("filtered_lrelu", n, fu, fd, kw, dtype))
    for dtype in sorted({d for _, _, dts in models for d in dts}):
        jobs.append(("bias_act", dtype))
    return jobs


def _run(job: tuple, device: str = "cuda") -> str:
    import torch

    from kernels import dispatch

    dispatch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if job[0] == "bias_act":
        dtype = dispatch_dtype[job[1]]
        x = torch.randn(4, 8, device=device, dtype=dtype, requires_grad=True)
        b = torch.randn(8, device=device, dtype=dtype, requires_grad=True)
        for act, clamp in (("linear", None), ("lrelu", None), ("lrelu", 256.0)):
            with torch.no_grad():
                dispatch.TRITON.bias_act(x, b, act=act, clamp=clamp)
            dispatch.TRITON.bias_act(x, b, act=act, clamp=clamp).float().sum().backward()
        return f"bias_act {job[1]}"
    _, n, fu, fd, kw, dtype_name = job
    dtype = dispatch_dtype[dtype_name]
    fu = None if fu is None else torch.tensor(fu, device=device)
    fd = None if fd is None else torch.tensor(fd, device=device)
    x = torch.randn(1, 2, n, n, device=device, dtype=dtype)
    b = torch.zeros(2, device=device, dtype=dtype)
    with torch.no_grad():
        dispatch.TRITON.filtered_lrelu(x, fu, fd, b, **kw)
    xg = x.clone().requires_grad_(True)
    dispatch.TRITON.filtered_lrelu(xg, fu, fd, b, **kw).float().sum().backward()
    return f"filtered_lrelu n={n} up={kw['up']} down={kw['down']} {dtype_name}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="imagenet:256,tiny:64", help="comma-separated preset:resolution[:dtypes]")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--device", default="cuda", help="cpu only with TRITON_INTERPRET=1 (a smoke test)")
    args = ap.parse_args()
    models = []
    for spec in args.models.split(","):
        preset, res, *dtypes = spec.split(":")
        models.append((preset, int(res), dtypes[0].split("+") if dtypes else ["float32", "float16", "bfloat16"]))
    jobs = _jobs(models)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        for done in pool.map(_run, jobs, [args.device] * len(jobs)):
            print(f"[{time.perf_counter() - t0:6.1f}s] {done}", flush=True)
    print(f"warmed {len(jobs)} jobs in {time.perf_counter() - t0:.1f} s with {args.workers} workers")


if __name__ == "__main__":
    main()
