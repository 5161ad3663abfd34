"""Inversion on real photos: quality per recipe variant, and seconds per step with and without --video.

    python bench/inversion.py --ckpt assets/demo.sgxl --steps 100 --pti-steps 300 --photos thumbs --class 10 \
        --variants base,pti-equal-weights,pti-lr-1e-3     # quality: PSNR / SSIM / perceptual per variant
    python bench/inversion.py --ckpt assets/demo.sgxl --speed --steps 8 --pti-steps 4 --repeats 3 --photos rocket

(the numbers of both are in README.md, "Inversion"; class 10 of the demo is "People & Body (other)", where
the thumbs-up emoji without skin tone belongs, 21 "Travel & Places (other)" holds the rocket emoji).

Photos: scikit-image sample images by name (`rocket`, `chelsea`, `coffee`, `astronaut`, ...) or `thumbs`:
the Noto Color Emoji "thumbs up: medium skin tone" drawn as the demo's dataset draws emoji (centred on a
light grey square). Skin-tone variants are left out of the demo's training set and no test uses either
photo. Without --ckpt a random-init `tiny` generator is used (numbers then only time the code).

Quality: each variant changes one thing against the shipped recipe (`VARIANTS`); variants that share a
projection reuse it, so PTI variants start from the same pivot. Every image is scored with the same
evaluation distance whatever the variant optimises: PSNR, SSIM and the EfficientNet-lite0 feature distance
at 224² ("effnet224", an LPIPS-style proxy: not LPIPS).

Speed: `run_invert` (what `sgxl invert` runs) with and without the progress video, at every core (the old
default) and at `default_threads()`, interleaved in one process; medians of seconds per projection and
PTI step over the repeats, with ratios against "every core, no video".

Prints a table and writes bench/results/<--out>.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import environment, print_table, write_json  # noqa: E402
from core.cli import pick_device  # noqa: E402
from core.inversion.perceptual import build_perceptual  # noqa: E402
from core.inversion.photo import prepare_photo  # noqa: E402
from core.inversion.projector import ProjectorConfig, choose_class, project  # noqa: E402
from core.inversion.pti import PTIConfig, pivotal_tuning  # noqa: E402
from core.inversion.quality import image_metrics  # noqa: E402

EMOJI_FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"

OFFICIAL_PROJ = {"noise_factor": 0.0, "mse_weight": 0.0}  # run_inversion.py: LPIPS only, no w noise
# The PTI loss weights before they followed run_inversion.py: the PTI paper code's, with our unweighted distance.
EQUAL_PTI = {"l2_weight": 1.0, "locality_l2_weight": 0.1, "locality_perceptual_weight": 0.1}

# name -> (ProjectorConfig overrides, PTIConfig overrides): one change each against the shipped defaults
# (whose PTI weights are run_inversion.py's: see core/inversion/pti.py).
VARIANTS: dict[str, tuple[dict, dict]] = {
    "base": ({}, {}),
    "proj-no-w-noise": ({"noise_factor": 0.0}, {}),
    "proj-perceptual-only": ({"mse_weight": 0.0}, {}),
    "proj-official": (OFFICIAL_PROJ, {}),
    "proj-w-plus": ({"w_plus": True}, {}),
    "proj-sample-mean": ({"start": "sample_mean"}, {}),
    "pti-equal-weights": ({}, EQUAL_PTI),
    "pti-no-locality": ({}, {"locality_every": 0}),
    "pti-mse-only": ({}, {"perceptual_weight": 0.0, "locality_every": 0}),
    "pti-lr-1e-3": ({}, {"lr": 1e-3}),
    "pti-lr-3e-3": ({}, {"lr": 3e-3}),
}


def emoji_photo(text: str = "\U0001F44D\U0001F3FD", size: int = 136):
    """An emoji as the demo dataset draws it: the colour bitmap centred on a (238, 238, 238) square."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(EMOJI_FONT, 109)  # the bitmap font's only size
    img = Image.new("RGBA", (size, size), (238, 238, 238, 255))
    draw = ImageDraw.Draw(img)
    box = draw.textbbox((0, 0), text, font=font, embedded_color=True)
    draw.text(((size - box[2] + box[0]) // 2 - box[0], (size - box[3] + box[1]) // 2 - box[1]), text, font=font,
              embedded_color=True)
    return img.convert("RGB")


def load_bench_photo(name: str):
    from PIL import Image

    if name == "thumbs":
        if not Path(EMOJI_FONT).is_file():
            raise SystemExit(f"the thumbs photo needs {EMOJI_FONT} (Debian: fonts-noto-color-emoji)")
        return emoji_photo()
    import skimage.data

    return Image.fromarray(getattr(skimage.data, name)())


def quality(args, G, device) -> dict:
    perceptual = build_perceptual(size=args.perceptual_size, device=device, resolution=G.img_resolution)
    judge = build_perceptual(device=device)  # EfficientNet-lite0 at 224²: the same yardstick for every variant

    def score(img: torch.Tensor, target: torch.Tensor) -> dict:
        m = image_metrics(img, target)
        with torch.no_grad():
            m["effnet224"] = float(judge(img.to(device), target)[0])
        return {k: round(v, 4 if k != "psnr" else 2) for k, v in m.items()}

    rows = []
    for photo_name in args.photos.split(","):
        photo_img = load_bench_photo(photo_name)
        target = prepare_photo(photo_img, G.img_resolution).target.to(device)
        big = prepare_photo(photo_img, 256).target.to(device)
        choice = choose_class(G, big if G.c_dim == 1000 else target, args.class_)
        projections: dict[str, tuple] = {}
        for name in args.variants.split(","):
            proj_over, pti_over = VARIANTS[name]
            key = repr(sorted(proj_over.items()))
            if key not in projections:
                t0 = time.perf_counter()
                cfg = ProjectorConfig(**{"steps": args.steps, "w_plus": args.w_plus, "preview_every": args.steps,
                                         **proj_over})
                proj = project(G, target, choice.index, perceptual, cfg)
                projections[key] = (proj, time.perf_counter() - t0)
            proj, proj_s = projections[key]
            t0 = time.perf_counter()
            tuned = pivotal_tuning(G, target, proj.ws, choice.index, perceptual,
                                   PTIConfig(**{"steps": args.pti_steps, "preview_every": args.pti_steps, **pti_over}))
            pti_s = time.perf_counter() - t0
            p, t = score(proj.image, target), score(tuned.image, target)
            rows.append({"photo": photo_name, "class": choice.index, "variant": name,
                         "proj_psnr": p["psnr"], "pti_psnr": t["psnr"], "proj_ssim": p["ssim"], "pti_ssim": t["ssim"],
                         "proj_effnet224": p["effnet224"], "pti_effnet224": t["effnet224"],
                         "proj_s_step": round(proj_s / args.steps, 3), "pti_s_step": round(pti_s / args.pti_steps, 3)})
            print_table(rows[-1:], list(rows[-1]))
    print()
    print(f"optimised with: {perceptual.description}")
    print_table(rows, list(rows[0]))
    return {"perceptual": perceptual.name, "judge": judge.name, "variants": {k: VARIANTS[k] for k in
                                                                             args.variants.split(",")}, "rows": rows}


def speed(args, ckpt, device) -> dict:
    from core.inversion.pipeline import InvertOptions, default_threads, run_invert

    every_core, default = torch.get_num_threads(), default_threads()
    arms = [("every core, no video", every_core, False), ("every core, --video", every_core, True)]
    if default != every_core:
        arms += [(f"{default} thread(s), no video", default, False), (f"{default} thread(s), --video", default, True)]
    photo = Path(tempfile.mkdtemp(prefix="sgxl_bench_inv_")) / "photo.png"
    load_bench_photo(args.photos.split(",")[0]).save(photo)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in arms}
    for r in range(args.repeats):
        for name, threads, video in arms:
            m = run_invert(ckpt, InvertOptions(
                image=str(photo), out=str(photo.parent / f"{r}-{len(times[name])}-{video}-{threads}"),
                class_idx=args.class_, projector=ProjectorConfig(steps=args.steps, w_plus=args.w_plus),
                pti=PTIConfig(steps=args.pti_steps), perceptual_size=args.perceptual_size, threads=threads,
                video=video, progress=False),
                log=lambda line: None)
            times[name].append((m["projection"]["seconds"] / args.steps, m["pti"]["seconds"] / args.pti_steps))
            print(f"repeat {r}: {name}: {times[name][-1][0]:.3f} / {times[name][-1][1]:.3f} s per step", flush=True)
    base = [statistics.median(t[i] for t in times[arms[0][0]]) for i in (0, 1)]
    rows = []
    for name, threads, video in arms:
        med = [statistics.median(t[i] for t in times[name]) for i in (0, 1)]
        rows.append({"arm": name, "threads": threads, "video": video, "proj_s_step": round(med[0], 3),
                     "pti_s_step": round(med[1], 3), "proj_ratio": round(med[0] / base[0], 2),
                     "pti_ratio": round(med[1] / base[1], 2)})
    print()
    print_table(rows, list(rows[0]))
    return {"photo": args.photos.split(",")[0], "repeats": args.repeats, "every_core": every_core,
            "default_threads": default, "rows": rows,
            "raw": {k: [list(map(float, np.round(v, 4))) for v in vs] for k, vs in times.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", help="checkpoint (default: random-init tiny preset at --res)")
    p.add_argument("--res", type=int, default=16)
    p.add_argument("--photos", default="thumbs,rocket", help="scikit-image sample names or 'thumbs'")
    p.add_argument("--variants", default="base", help=f"comma list of: {', '.join(VARIANTS)}")
    p.add_argument("--speed", action="store_true", help="time run_invert with / without --video instead")
    p.add_argument("--repeats", type=int, default=3, help="--speed: interleaved repeats per arm")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--pti-steps", type=int, default=350)
    p.add_argument("--w-plus", action="store_true")
    p.add_argument("--class", dest="class_", type=int, help="class index (default: predicted / 0)")
    p.add_argument("--perceptual-size", type=int)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, help="quality runs: CPU threads (default: as sgxl invert)")
    p.add_argument("--out", default=None, help="results/<name>.json (default inversion or inversion_speed)")
    args = p.parse_args()
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")

    from core.io.checkpoint import Checkpoint, load_checkpoint
    from core.networks.generator import Generator
    from core.networks.presets import preset_config

    device = pick_device(args.device)
    if args.ckpt:
        ckpt = load_checkpoint(args.ckpt, device=device)
    else:
        torch.manual_seed(0)
        cfg = preset_config("tiny", args.res)
        ckpt = Checkpoint(generator=Generator(cfg).eval().to(device), config=cfg, meta={})
    env = environment()
    if args.speed:
        result = speed(args, ckpt, device)
    else:
        from core.inversion.pipeline import torch_threads

        with torch_threads(args.threads) as threads:  # as sgxl invert runs: default_threads() unless --threads
            result = {"threads": threads, **quality(args, ckpt.generator, device)}
    path = write_json(args.out or ("inversion_speed" if args.speed else "inversion"), {
        "env": env, "ckpt": args.ckpt or f"random tiny {args.res}", "resolution": ckpt.generator.img_resolution,
        "steps": args.steps, "pti_steps": args.pti_steps, "w_plus": args.w_plus, **result})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
