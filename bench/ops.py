"""StyleGAN ops, reference vs fast paths, at the shapes the generator really uses.

    python bench/ops.py [--preset tiny] [--res 64] [--batch 8] [--dtypes float32] [--repeats 5] [--device cpu]
                        [--backends reference,fir_conv,...] [--official DIR]

For every distinct synthesis layer of the preset (input size, up/down factor, channels) this times
`filtered_lrelu` forward and forward+backward with each backend, plus one `upfirdn2d` 2x upsample, for each
batch size and dtype, and prints medians and the speedup over the reference measured in the same run (CUDA:
event timing, GPU memory peaks). `--official DIR` adds NVIDIA's compiled CUDA plugin (`torch_utils.ops` of a
StyleGAN3 checkout at DIR; built on first use with nvcc, float32/float16 only) as backend `official`.
Writes bench/results/ops.json.
"""

from __future__ import annotations

import argparse
import math
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
from core.networks.generator import Generator  # noqa: E402
from core.networks.presets import preset_config  # noqa: E402
from kernels import dispatch  # noqa: E402

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def official_backend(folder: str) -> dispatch.Backend:
    """NVIDIA's ops from a StyleGAN3 checkout (never part of this project: timed for comparison only)."""
    sys.path.insert(0, str(Path(folder).resolve()))
    from torch_utils.ops import filtered_lrelu as ofl  # type: ignore[import-not-found]
    from torch_utils.ops import upfirdn2d as oup  # type: ignore[import-not-found]

    if not ofl._init():
        raise RuntimeError("the official filtered_lrelu plugin did not build")
    return dispatch.Backend(
        name="official", supports=lambda x: x.is_cuda and x.dtype in (torch.float32, torch.float16),
        bias_act=lambda *a, **k: None,
        upfirdn2d=lambda x, f, **k: oup.upfirdn2d(x, f, impl="cuda", **k),
        filtered_lrelu=lambda x, **k: ofl.filtered_lrelu(x, impl="cuda", **k))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--batch", default="8", help="comma-separated batch sizes")
    ap.add_argument("--dtypes", default="float32", help="comma-separated: float32,float16,bfloat16")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backends", default="", help="comma-separated backend names (default: all that support the "
                                                   "device; the reference always runs first)")
    ap.add_argument("--official", default="", help="StyleGAN3 checkout whose CUDA plugin to time as `official`")
    ap.add_argument("--channels-max", type=int, default=0, help="cap the channels per layer (0: the layer's own)")
    args = ap.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    G = Generator(preset_config(args.preset, args.res)).to(device)
    probe = torch.zeros(1, device=device)
    wanted = [b for b in args.backends.split(",") if b]
    fast = [b for b in dispatch.BACKENDS if b is not dispatch.REFERENCE and b.supports(probe)
            and (not wanted or b.name in wanted)]
    if args.official:
        try:
            fast.append(official_backend(args.official))
        except Exception as e:  # a failed nvcc build is a result to report, not a crash
            print(f"official plugin unavailable: {type(e).__name__}: {e}")
    backends = [dispatch.REFERENCE, *fast]  # the reference first: speedups are relative to it
    layers, seen = [], set()
    for layer in G.synthesis.layers():
        n = layer.spec.in_size + layer.conv_kernel - 1
        key = (n, layer.spec.out_channels, layer.up_factor, layer.down_factor, layer.spec.is_torgb)
        if key not in seen:
            seen.add(key)
            layers.append((layer, n))
    rows, env = [], environment()

    def payload() -> dict:
        return {"benchmark": "ops", "env": env, "preset": args.preset, "res": args.res, "rows": rows}

    def record(op: str, layer_name: str, shape: str, updown: str, dtype: str, backend: str, sec: float,
               base: float, peak: float | None) -> None:
        rows.append({"op": op, "layer": layer_name, "shape": shape, "up/down": updown, "dtype": dtype,
                     "backend": backend, "median_ms": round(1000 * sec, 3), "speedup": round(base / sec, 2),
                     "peak_mb": peak})

    for dtype_name in args.dtypes.split(","):
        dtype = DTYPES[dtype_name]
        for batch in [int(b) for b in args.batch.split(",")]:
            for layer, n in layers:
                channels = layer.spec.out_channels
                if args.channels_max:
                    channels = min(channels, args.channels_max)
                x = torch.randn(batch, channels, n, n, device=device).to(dtype)
                kw = dict(fu=layer.up_filter, fd=layer.down_filter, b=layer.bias.detach()[:channels].to(dtype),
                          up=layer.up_factor, down=layer.down_factor, padding=layer.padding, clamp=layer.conv_clamp,
                          gain=1.0 if layer.spec.is_torgb else math.sqrt(2),
                          slope=1.0 if layer.spec.is_torgb else 0.2)
                base: dict[str, float] = {}
                for backend in backends:
                    if not backend.supports(x):
                        continue
                    xg = x.clone().requires_grad_(True)

                    def fwd(backend=backend, x=x, kw=kw) -> None:
                        with torch.no_grad():
                            backend.filtered_lrelu(x, **kw)

                    def fwd_bwd(backend=backend, xg=xg, kw=kw) -> None:
                        backend.filtered_lrelu(xg, **kw).float().square().sum().backward()

                    for kind, fn in (("fwd", fwd), ("fwd_bwd", fwd_bwd)):
                        reset_peak_memory()
                        try:
                            sec = median_seconds(fn, args.repeats, cuda=cuda)
                        except torch.cuda.OutOfMemoryError:  # the reference's intermediates at large batches
                            torch.cuda.empty_cache()
                            rows.append({"op": f"filtered_lrelu {kind}", "layer": layer.spec.name,
                                         "dtype": dtype_name, "backend": backend.name, "median_ms": "oom"})
                            continue
                        base.setdefault(kind, sec)
                        record(f"filtered_lrelu {kind}", layer.spec.name, f"{batch}x{channels}x{n}x{n}",
                               f"{layer.up_factor}/{layer.down_factor}", dtype_name, backend.name, sec, base[kind],
                               peak_memory_mb())
                write_json("ops", payload())  # after every layer: a time box may end the run
            x = torch.randn(batch, 64, args.res, args.res, device=device).to(dtype)
            f = torch.rand(12, device=device)
            base_up = None
            for backend in backends:
                if not backend.supports(x):
                    continue
                sec = median_seconds(
                    lambda backend=backend, x=x, f=f: backend.upfirdn2d(x, f, up=2, padding=[6, 5, 6, 5], gain=4),
                    args.repeats, cuda=cuda)
                base_up = sec if base_up is None else base_up
                record("upfirdn2d up2", "-", f"{batch}x64x{args.res}x{args.res}", "2/1", dtype_name, backend.name,
                       sec, base_up, None)
    print_table(rows, ["op", "layer", "shape", "up/down", "dtype", "backend", "median_ms", "speedup", "peak_mb"])
    path = write_json("ops", payload())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
