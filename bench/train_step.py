"""Training speed: sec/kimg of one G+D step (projected D with EfficientNet-lite0) per resolution.

    python bench/train_step.py [--res 16,32] [--batch 16] [--preset tiny] [--d-input-size 224] [--repeats 3]

A step = G phase + D phase on `--batch` images (synthetic data of the right shape: speed does not
depend on pixel values). Prints a table and writes bench/results/train_step.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import environment, median_seconds, print_table, write_json  # noqa: E402
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
    ap.add_argument("--default-malloc", action="store_true",
                    help="leave glibc's malloc settings alone (sgxl train on CPU retains freed memory)")
    args = ap.parse_args()
    if args.device == "cpu" and not args.default_malloc:
        retain_freed_memory()
    device = torch.device(args.device)
    rows = []
    for d_size in [int(s) for s in args.d_input_size.split(",")]:
        effnet = EfficientNetFeatures(device=device, min_size=d_size)
        for res in [int(r) for r in args.res.split(",")]:
            ds = ToyDataset(n=max(64, args.batch), res=res, classes=4)
            G = Generator(preset_config(args.preset, 16, c_dim=4))
            for _ in range(res.bit_length() - 5):  # grow 16 -> res, as training would
                G = G.grow(head_layers=preset_config(args.preset, res).synthesis.stages[-1].head_layers)
            cfg = TrainConfig(batch=args.batch, kimg=1e9, disc=DiscriminatorConfig(input_size=d_size))
            with tempfile.TemporaryDirectory() as run:
                trainer = Trainer(G, ds, run, cfg, {"effnet": effnet}, device=device)
                sec = median_seconds(trainer.train_step, repeats=args.repeats, cuda=device.type == "cuda")
            rows.append({"preset": args.preset, "res": res, "batch": args.batch, "d_input": d_size,
                         "sec_per_step": round(sec, 3), "sec_per_kimg": round(sec * 1000 / args.batch, 1),
                         "trainable_G_params": sum(p.numel() for p in G.trainable_parameters())})
    print_table(rows, ["preset", "res", "batch", "d_input", "sec_per_step", "sec_per_kimg", "trainable_G_params"])
    print(f"wrote {write_json('train_step', {'benchmark': 'train_step', 'env': environment(), 'rows': rows})}")


if __name__ == "__main__":
    main()
