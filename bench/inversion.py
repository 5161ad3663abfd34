"""Inversion on real photos: PSNR / SSIM / perceptual distance after projection and after PTI, seconds per phase.

    python bench/inversion.py --ckpt model.sgxl [--steps 1000 --pti-steps 350] [--photos chelsea,coffee,astronaut]

The photos are scikit-image's sample images (a test dependency, offline). Without --ckpt a random-init
`tiny` generator is used (numbers then only time the code; a random G cannot resemble a photo).
Prints a table and writes bench/results/inversion.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import environment, print_table, write_json  # noqa: E402
from core.cli import pick_device  # noqa: E402
from core.inversion.perceptual import build_perceptual  # noqa: E402
from core.inversion.photo import prepare_photo  # noqa: E402
from core.inversion.projector import ProjectorConfig, choose_class, project  # noqa: E402
from core.inversion.pti import PTIConfig, pivotal_tuning  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", help="checkpoint (default: random-init tiny preset at --res)")
    p.add_argument("--res", type=int, default=16)
    p.add_argument("--photos", default="chelsea,coffee,astronaut", help="scikit-image sample names")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--pti-steps", type=int, default=350)
    p.add_argument("--w-plus", action="store_true")
    p.add_argument("--class", dest="class_", type=int, help="class index (default: predicted / 0)")
    p.add_argument("--perceptual-size", type=int)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="inversion", help="results/<name>.json")
    args = p.parse_args()

    import skimage.data
    from PIL import Image

    from core.io.checkpoint import load_checkpoint
    from core.networks.generator import Generator
    from core.networks.presets import preset_config

    device = pick_device(args.device)
    if args.ckpt:
        G = load_checkpoint(args.ckpt, device=device).generator
    else:
        torch.manual_seed(0)
        G = Generator(preset_config("tiny", args.res)).eval().to(device)
    perceptual = build_perceptual(size=args.perceptual_size, device=device, resolution=G.img_resolution)
    rows = []
    for name in args.photos.split(","):
        photo_img = Image.fromarray(getattr(skimage.data, name)())
        target = prepare_photo(photo_img, G.img_resolution).target.to(device)
        big = prepare_photo(photo_img, 256).target.to(device)
        choice = choose_class(G, big if G.c_dim == 1000 else target, args.class_)
        t0 = time.perf_counter()
        proj = project(G, target, choice.index, perceptual,
                       ProjectorConfig(steps=args.steps, w_plus=args.w_plus, preview_every=args.steps))
        t1 = time.perf_counter()
        tuned = pivotal_tuning(G, target, proj.ws, choice.index, perceptual,
                               PTIConfig(steps=args.pti_steps, preview_every=args.pti_steps))
        t2 = time.perf_counter()
        rows.append({"photo": name, "class": choice.index,
                     "proj_psnr": round(proj.metrics["psnr"], 2), "pti_psnr": round(tuned.metrics["psnr"], 2),
                     "proj_ssim": round(proj.metrics["ssim"], 4), "pti_ssim": round(tuned.metrics["ssim"], 4),
                     "proj_perc": round(proj.metrics["perceptual"], 4),
                     "pti_perc": round(tuned.metrics["perceptual"], 4),
                     "proj_s": round(t1 - t0, 1), "pti_s": round(t2 - t1, 1),
                     "proj_ms_step": round(1000 * (t1 - t0) / args.steps, 1),
                     "pti_ms_step": round(1000 * (t2 - t1) / args.pti_steps, 1)})
        print_table(rows[-1:], list(rows[-1]))
    print()
    print(f"perceptual: {perceptual.description}")
    print_table(rows, list(rows[0]))
    path = write_json(args.out, {"env": environment(), "ckpt": args.ckpt or f"random tiny {args.res}",
                                 "resolution": G.img_resolution, "steps": args.steps, "pti_steps": args.pti_steps,
                                 "w_plus": args.w_plus, "perceptual": perceptual.name, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
