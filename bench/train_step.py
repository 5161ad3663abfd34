"""Training speed: sec/kimg of one G+D step (projected D with EfficientNet-lite0) per resolution.

    python bench/train_step.py [--res 16,32] [--batch 16] [--preset tiny] [--d-input-size 224] [--repeats 3]
                               [--backends ""]

A step = G phase + D phase on `--batch` images (synthetic data of the right shape: speed does not
depend on pixel values). `--backends triton,reference` times each kernel backend (`SGXL_KERNELS`; default:
whatever the dispatcher picks). On CUDA `peak_mb` is the GPU memory peak of the timed steps.
Prints a table and writes bench/results/train_step.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
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
from core.memory import retain_freed_memory  # noqa: E402
from core.networks.discriminator import DiscriminatorConfig  # noqa: E402
from core.networks.feature_nets import EfficientNetFeatures  # noqa: E402
from core.networks.generator import Generator  # noqa: E402
from core.networks.presets import preset_config  # noqa: E402
from core.training.trainer import TrainConfig, Trainer  # noqa: E402
from tests.helpers import ToyDataset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", default="16,32")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--d-input-size", default="224")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--backends", default="", help="comma-separated SGXL_KERNELS names (default: the dispatcher's)")
    ap.add_argument("--default-malloc", action="store_true",
                    help="leave glibc's malloc settings alone (sgxl train on CPU retains freed memory)")
    args = ap.parse_args()
    if args.device == "cpu" and not args.default_malloc:
        retain_freed_memory()
    device = torch.device(args.device)
    rows, env = [], environment()
    for d_size in [int(s) for s in args.d_input_size.split(",")]:
        effnet = EfficientNetFeatures(device=device, min_size=d_size)
        for res, backend in [(int(r), b) for r in args.res.split(",") for b in args.backends.split(",")]:
            if backend:
                os.environ["SGXL_KERNELS"] = backend
            ds = ToyDataset(n=max(64, args.batch), res=res, classes=4)
            G = Generator(preset_config(args.preset, 16, c_dim=4))
            for _ in range(res.bit_length() - 5):  # grow 16 -> res, as training would
                G = G.grow(head_layers=preset_config(args.preset, res).synthesis.stages[-1].head_layers)
            cfg = TrainConfig(batch=args.batch, kimg=1e9, disc=DiscriminatorConfig(input_size=d_size))
            with tempfile.TemporaryDirectory() as run:
                trainer = Trainer(G, ds, run, cfg, {"effnet": effnet}, device=device)
                trainer.train_step()  # warm-up outside the memory peak (kernel compilation, allocator growth)
                reset_peak_memory()
                sec = median_seconds(trainer.train_step, repeats=args.repeats, cuda=device.type == "cuda")
            rows.append({"preset": args.preset, "res": res, "batch": args.batch, "d_input": d_size,
                         "backend": backend or "default", "sec_per_step": round(sec, 3),
                         "sec_per_kimg": round(sec * 1000 / args.batch, 1), "peak_mb": peak_memory_mb(),
                         "trainable_G_params": sum(p.numel() for p in G.trainable_parameters())})
            print(rows[-1], flush=True)
            write_json("train_step", {"benchmark": "train_step", "env": env, "rows": rows})  # time boxes
    os.environ.pop("SGXL_KERNELS", None)
    print_table(rows, ["preset", "res", "batch", "d_input", "backend", "sec_per_step", "sec_per_kimg", "peak_mb",
                       "trainable_G_params"])
    print(f"wrote {write_json('train_step', {'benchmark': 'train_step', 'env': env, 'rows': rows})}")


if __name__ == "__main__":
    main()
