"""`sgxl`: the command-line entry point, one subcommand per verb (README.md "Commands" lists them).

Every verb calls the same `core` API the explorer and the tests use. Errors the user can fix are
printed as one line (`error: ...`) with exit code 2; nothing prints a traceback for bad input.

Nothing heavy is imported at module level (torch, numpy, PIL come in with the verb that needs them):
`sgxl --help` and the argument errors answer at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import SGXLError, UserInputError
from core.io.files import check_video_path, check_writable, image_format, remove_empty_dirs
from core.limits import PSI_HELP, check_psi
from core.networks.presets import PRESETS

if TYPE_CHECKING:
    import numpy as np
    import torch

DEMO_CHECKPOINT = Path(__file__).resolve().parents[1] / "assets" / "demo.sgxl"


# ----------------------------------------------------------------------------- argument parsing helpers

def parse_int_list(text: str, what: str = "seeds") -> list[int]:
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11] (non-negative integers)."""
    values: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            lo, _, hi = part.partition("-")
            lo_i, hi_i = int(lo), int(hi or lo)
            if lo_i < 0 or hi_i < lo_i:
                raise ValueError
            values.extend(range(lo_i, hi_i + 1))
    except ValueError:
        raise UserInputError(f"cannot read {what} {text!r}: use numbers and ranges like 0-3,7") from None
    if not values:
        raise UserInputError(f"no {what} given")
    return values


def parse_translate(text: str) -> tuple[float, float]:
    """'0.1,-0.25' -> (0.1, -0.25): the --translate of the input's Fourier features (official gen_images.py)."""
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise UserInputError(f"cannot read --translate {text!r}: give two numbers like 0.1,-0.25") from None
    return x, y


def resolve_class(text: str | None, c_dim: int, class_names: list[str] | None) -> int | None:
    """A class given by index or by (part of) its name -> index; None for unconditional models."""
    if c_dim == 0:
        if text is not None:
            raise UserInputError(f"this model is unconditional: it has no classes, so --class {text} cannot apply "
                                 "(leave --class out)")
        return None
    if text is None:
        return 0
    if text.strip().lstrip("-").isdigit():
        idx = int(text)
        if not 0 <= idx < c_dim:
            raise UserInputError(f"class {idx} is out of range: this model has classes 0..{c_dim - 1}")
        return idx
    if not class_names:
        raise UserInputError(f"this model has no class names; give the class as a number 0..{c_dim - 1}")
    wanted = text.strip().lower()
    exact = [i for i, n in enumerate(class_names) if n.lower() == wanted]
    if exact:
        return exact[0]
    partial = [i for i, n in enumerate(class_names) if wanted in n.lower()]
    if len(partial) == 1:
        return partial[0]
    if not partial:
        raise UserInputError(f"no class is named like {text!r}")
    shown = ", ".join(f"{i}: {class_names[i]}" for i in partial[:5])
    raise UserInputError(f"{text!r} matches {len(partial)} classes ({shown}...); be more specific")


def pick_device(name: str) -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserInputError("--device cuda was asked for, but PyTorch sees no CUDA GPU; use --device cpu")
    if name not in ("cpu", "cuda"):
        raise UserInputError(f"unknown device {name!r}; use cpu, cuda or auto")
    return torch.device(name)


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", help="checkpoint (.sgxl, or an official .pkl); default: the bundled demo model")
    p.add_argument("--preset", choices=PRESETS,
                   help="use a randomly initialised built-in configuration instead of a checkpoint")
    p.add_argument("--res", type=int, default=32, help="resolution of --preset (default 32)")
    p.add_argument("--init-seed", type=int, default=0, help="weight seed of --preset (default 0)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    add_allow_large_argument(p)


def add_allow_large_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-large", action="store_true", help="open checkpoints above the size limits (see "
                   "SECURITY.md; same as SGXL_ALLOW_LARGE=1)")


def load_model(args: argparse.Namespace):
    """The Checkpoint named by --ckpt / --preset / the bundled demo, on the chosen device."""
    import torch

    from core.io.checkpoint import Checkpoint, load_checkpoint
    from core.networks.generator import Generator
    from core.networks.presets import preset_config

    device = pick_device(args.device)
    if args.ckpt is None and args.preset is None:
        if DEMO_CHECKPOINT.exists():
            args.ckpt = str(DEMO_CHECKPOINT)
        else:
            print("note: no checkpoint given and no bundled demo found: using a random-init 'tiny' generator",
                  file=sys.stderr)
            args.preset = "tiny"
    if args.ckpt is not None:
        return load_checkpoint(args.ckpt, device=device)
    try:
        cfg = preset_config(args.preset, args.res)
    except ValueError as e:
        raise UserInputError(str(e)) from None
    torch.manual_seed(args.init_seed)
    G = Generator(cfg).eval().to(device)
    return Checkpoint(generator=G, config=cfg, meta={"preset": args.preset, "init_seed": args.init_seed})


def add_noise_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--noise-mode", choices=("const", "random", "none"),
                   help="noise inputs of StyleGAN2 models: const (the stored noise, as the official tools; default), "
                        "random (drawn from --noise-seed) or none")
    p.add_argument("--noise-seed", type=int, help="seed of --noise-mode random (default 0)")


def noise_options(args: argparse.Namespace, G: torch.nn.Module) -> dict:
    """{noise_mode, noise_seed} for `G.synthesis`; refuses noise flags that would change nothing for this model.

    `--noise-mode const` is what every model does (the official tools accept it for StyleGAN3 too).
    """
    if args.noise_mode in (None, "const") and args.noise_seed is None:
        return {"noise_mode": "const", "noise_seed": 0}
    if not G.traits.has_noise:
        raise UserInputError(f"this {G.traits.label} model has no noise inputs: --noise-mode and --noise-seed "
                             "apply to StyleGAN2 models")
    if args.noise_seed is not None and args.noise_mode != "random":
        raise UserInputError("--noise-seed needs --noise-mode random")
    return {"noise_mode": args.noise_mode or "const", "noise_seed": args.noise_seed or 0}


def write_image(path: Path, image: np.ndarray) -> None:
    from core.io.files import save_image

    save_image(path, image)  # atomic: a full disk leaves no half image


# ----------------------------------------------------------------------------- verbs

def cmd_generate(args: argparse.Namespace) -> int:
    check_psi(args.trunc)
    out = Path(args.out)
    as_grid = bool(out.suffix) and not out.is_dir()  # x.png / x.bmp / ...: one image; a folder: one per seed
    if as_grid:
        image_format(out)  # a suffix Pillow cannot write fails now, not after generating
    check_writable(out, folder=not as_grid)

    import numpy as np
    import torch
    from tqdm import tqdm

    from core.networks import precision
    from core.sampling import image_grid, input_transform, style_mix, to_uint8, ws_from_seeds

    ckpt = load_model(args)
    G = ckpt.generator
    device = next(G.parameters()).device
    seeds = parse_int_list(args.seeds)
    classes = generate_classes(args, G.c_dim, ckpt.class_names)
    mix_layers = parse_int_list(args.style_mix_layers, "layers") if args.style_mix_seed is not None else []
    if any(not 0 <= i < G.num_ws for i in mix_layers):
        raise UserInputError(f"--style-mix-layers must be within 0..{G.num_ws - 1} (this model has {G.num_ws} ws)")
    mix_class = resolve_class(args.style_mix_class, G.c_dim, ckpt.class_names) if args.style_mix_class else None
    noise = noise_options(args, G)
    transform = input_transform(parse_translate(args.translate), args.rotate)
    if transform is not None and not G.traits.has_input_transform:
        raise UserInputError(f"this {G.traits.label} model has no Fourier-feature input: --translate and --rotate "
                             "apply to StyleGAN-XL and StyleGAN3 models")

    jobs = [(c, seeds[start:start + args.batch]) for c in classes for start in range(0, len(seeds), args.batch)]
    plan = bf16_plan(G, classes[0], device) if args.dtype == "bf16" else None
    images = []
    with torch.no_grad(), precision.running(plan):
        for class_idx, batch in tqdm(jobs, desc="generating", unit="batch", disable=len(jobs) <= 1):
            ws = ws_from_seeds(G, batch, class_idx, args.trunc, device, args.trunc_cutoff)
            if mix_layers:
                ws_mix = ws_from_seeds(G, [args.style_mix_seed] * len(batch),
                                       class_idx if mix_class is None else mix_class, args.trunc, device,
                                       args.trunc_cutoff)
                ws = style_mix(ws, ws_mix, mix_layers)
            images.append(to_uint8(G.synthesis(ws, transform=transform, **noise), G.traits.uint8_offset))
    images_np = np.concatenate(images)  # class-major: all seeds of the first class, then the next class...

    n = len(images_np)
    if as_grid:
        cols = args.cols or (len(seeds) if len(classes) > 1 else None)
        write_image(out, image_grid(images_np, cols) if n > 1 else images_np[0])
        rows = f", rows = {len(classes)} classes" if len(classes) > 1 else ""
        print(f"wrote {out} ({n} image{'s' if n > 1 else ''}, {G.img_resolution}x{G.img_resolution}{rows})")
    else:
        names = [f"seed{seed:04d}.png" if len(classes) == 1 else f"class{c:04d}_seed{seed:04d}.png"
                 for c in classes for seed in seeds]
        for name, img in zip(names, images_np):
            write_image(out / name, img)
        print(f"wrote {n} images to {out}/")
    return 0


def bf16_plan(G, class_idx: int | None, device: torch.device):
    """`--dtype bf16`: the layers this CPU runs faster in bfloat16, measured now (the explorer's preview plan)."""
    from core.networks import precision
    from core.sampling import ws_from_seeds

    if device.type != "cpu":
        raise UserInputError("--dtype bf16 is a CPU path; on CUDA the generator already runs its "
                             "high-resolution layers in float16")
    if not precision.supports(G.synthesis):
        raise UserInputError("--dtype bf16 is not available for this model family")
    support = precision.cpu_bf16_support()
    if support is None:
        print("note: this CPU has no native bf16 (AVX512-BF16/AMX): bf16 is emulated, so few layers if any "
              "will be faster", file=sys.stderr)
    plan = precision.measure_plan(G.synthesis, ws_from_seeds(G, [0], class_idx, 1.0, device))
    print(f"bf16 ({support or 'emulated'}): {plan.summary()}", file=sys.stderr)
    return plan


def generate_classes(args: argparse.Namespace, c_dim: int, class_names: list[str] | None) -> list[int | None]:
    """`--class` (one) or `--classes` (several, or 'all') -> class indices; [None] for an unconditional model."""
    if args.classes is None:
        return [resolve_class(args.class_, c_dim, class_names)]
    if args.class_ is not None:
        raise UserInputError("give --class or --classes, not both")
    if c_dim == 0:
        raise UserInputError("this model is unconditional: it has no classes to put in rows")
    if args.classes.strip().lower() == "all":
        return list(range(c_dim))
    return [resolve_class(text, c_dim, class_names) for text in args.classes.split(",")]


def cmd_video(args: argparse.Namespace) -> int:
    check_psi(args.trunc)
    check_video_path(Path(args.out))
    from core.video import interpolation_frames, write_video

    ckpt = load_model(args)
    G = ckpt.generator
    seeds = parse_int_list(args.seeds)
    classes_text = args.classes.split(",") if args.classes else [args.class_]
    classes = [resolve_class(c, G.c_dim, ckpt.class_names) for c in classes_text]
    if len(classes) not in (1, len(seeds)):
        raise UserInputError(f"give one class, or one per seed ({len(seeds)})")
    frames = interpolation_frames(G, seeds, classes * (len(seeds) // len(classes)), args.trunc,
                                  args.frames, loop=args.loop, cutoff=args.trunc_cutoff, **noise_options(args, G))
    written = write_video(Path(args.out), frames, fps=args.fps)
    if not written.is_file():  # never claim a file that is not there (the encoder's own report is not enough)
        raise SGXLError(f"the video encoder finished, but {written} is not there; nothing was written")
    print(f"wrote {written} ({len(frames)} frames, {G.img_resolution}x{G.img_resolution})")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    path = Path(args.ckpt)
    if path.suffix == ".pkl":
        from core.io.official import describe_official

        print(describe_official(path))
        return 0
    from core.io.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    G = ckpt.generator
    traits = G.traits
    print(f"checkpoint   {path}")
    res = G.img_resolution
    print(f"generator    {traits.label}" + (", noise inputs" if traits.has_noise else ""))
    print(f"resolution   {res}x{res}")
    print(f"latents      z {G.z_dim}, w {G.w_dim}, num_ws {G.num_ws}")
    print(f"classes      {G.c_dim}" + (f" ({', '.join(ckpt.class_names[:8])}{', ...' if G.c_dim > 8 else ''})"
                                     if ckpt.class_names else ""))
    for line in G.cfg.describe():
        print(f"architecture {line}")
    print(f"layers       {', '.join(traits.layer_names)}")
    for k, v in G.parameter_counts().items():
        print(f"params       {k:<16}{v:>14,}")
    for k, v in ckpt.meta.items():
        print(f"meta         {k}: {v}")
    return 0


def convert_target(out: str, overwrite: bool) -> Path:
    """The file `sgxl convert --out` writes (.sgxl added when missing); refuses to replace a file silently."""
    path = Path(out)
    if path.suffix != ".sgxl":
        path = path.with_suffix(".sgxl")
    if path.is_dir():
        raise UserInputError(f"--out {path} is a folder; give a file name ending in .sgxl")
    if path.exists() and not overwrite:
        raise UserInputError(f"{path} already exists; choose another --out or pass --overwrite")
    return path


def cmd_convert(args: argparse.Namespace) -> int:
    from core.io.checkpoint import save_checkpoint
    from core.io.official import load_official_checkpoint

    src = Path(args.pkl)
    args.out = str(convert_target(args.out, args.overwrite))  # checked before the (slow) conversion
    check_writable(args.out)
    if src.suffix == ".sgxl":
        # Export: keep G_ema, its class names and meta; drop the training state (G_train, D, optimizers).
        from core.io.checkpoint import load_checkpoint

        ckpt = load_checkpoint(src)
        dropped = sorted(ckpt.extra_tensors)
        out = save_checkpoint(args.out, ckpt.generator, ckpt.meta, class_names=ckpt.class_names)
        note = f" (without the training state: {', '.join(dropped)})" if dropped else ""
        print(f"wrote {out}, {out.stat().st_size / 2**20:.1f} MB{note}")
        return 0
    ckpt = load_official_checkpoint(src)
    out = save_checkpoint(args.out, ckpt.generator, ckpt.meta, class_names=ckpt.class_names)
    print(f"wrote {out}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from core.training.run_dir import check_out_dir, run_dir_of

    if not args.resume and not args.data:
        raise UserInputError("give --data (a dataset made by `sgxl dataset`) or --resume RUN_DIR")
    # Stop (Ctrl-C, or the explorer's Stop: SIGINT) must work while the run still loads, too. A process started
    # from a non-interactive shell's background job (`sgxl train ... &`, or an explorer started that way)
    # inherits SIGINT ignored, and Python leaves it so: the trainer's own handler only comes with the first
    # step, and a stop asked for before it was lost. Until then SIGINT ends the command ("interrupted", 130).
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    out = args.out or (str(run_dir_of(args.resume)) if args.resume else "runs/run")
    check_writable(out, folder=True)  # before torch loads: a refusal is instant
    check_out_dir(out, args.resume, args.force_new, args.grow_from)
    from core.training.launch import TrainOptions, run_training

    class_map = parse_int_list(args.class_map, "class map") if args.class_map else None
    metrics = None
    if args.metrics:
        from core.metrics.api import parse_metrics

        parse_metrics(args.metrics)  # bad names fail now, not at the first snapshot
        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    opts = TrainOptions(
        data=args.data or "", out=out, preset=args.preset, grow_from=args.grow_from, head_layers=args.head_layers,
        keep_d=args.keep_d, resume=args.resume, batch=args.batch, batch_gpu=args.batch_gpu, kimg=args.kimg,
        snapshot_kimg=args.snap, tick_kimg=args.tick, g_lr=args.glr, d_lr=args.dlr, cls_weight=args.cls_weight,
        class_map=class_map, range_weight=args.range_weight, class_embeddings=args.class_embeddings,
        synthesis_emas=args.synthesis_emas,
        blur_fade_kimg=args.blur_fade_kimg, d_input_size=args.d_input_size, deit_weights=args.deit_weights,
        mirror=args.mirror, seed=args.seed, device=args.device, progress=not args.no_progress,
        metrics=metrics, metrics_num=args.metrics_num, force_new=args.force_new, keep=args.keep)
    last = run_training(opts)
    if last is not None:
        print(f"last snapshot: {last}")
    return 0


def parse_num_real(text: str | None) -> int | str | None:
    """--num-real: a count (>= 2), 'all', or None (compute_metrics' default: as many as --num)."""
    if text is None or text.strip().lower() == "all":
        return None if text is None else "all"
    try:
        value = int(text)
    except ValueError:
        raise UserInputError(f"--num-real takes a number of images or 'all', not {text!r}") from None
    if value < 2:
        raise UserInputError("--num-real must be at least 2")
    return value


def cmd_metrics(args: argparse.Namespace) -> int:
    if args.num < 2:
        raise UserInputError("--num must be at least 2")
    check_psi(args.trunc)
    num_real = parse_num_real(args.num_real)
    if args.out:
        check_writable(args.out)  # not after minutes of feature extraction
    import json

    from core.data.dataset import ImageDataset
    from core.metrics.api import compute_metrics, parse_metrics

    parse_metrics(args.metrics)  # bad names fail before the model and data load
    ckpt = load_model(args)
    dataset = ImageDataset(args.data)
    if ckpt.generator.img_resolution != dataset.resolution:
        print(f"note: the model makes {ckpt.generator.img_resolution}² images, the dataset holds "
              f"{dataset.resolution}²; both are resized for the feature network, but compare like with like",
              file=sys.stderr)
    report = compute_metrics(ckpt.generator, dataset, args.metrics, num=args.num, num_real=num_real,
                             psi=args.trunc, seed=args.seed, batch=args.batch, per_class=args.per_class,
                             inception_weights=args.inception_weights, cache_dir=args.cache_dir,
                             use_cache=not args.no_cache)
    result = {"checkpoint": args.ckpt or f"preset:{args.preset}", "dataset": str(args.data), **report.to_dict()}
    rows = [(k, f"{v['value']:.6g}" + (f" ± {v['std']:.2g}" if "std" in v else ""), v["feature_space"])
            for k, v in result["metrics"].items()]
    rows += [(f"{k} (class mean)", f"{v['mean']:.6g}", f"{len(v['classes'])} classes")
             for k, v in result["per_class"].items() if k != "class_acc"]  # class_acc is a class mean already
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    print(f"{'metric':<{width}}  {'value':<{vwidth}}  feature space")
    for name, value, space in rows:
        print(f"{name:<{width}}  {value:<{vwidth}}  {space}")
    if "class_acc" in result["metrics"]:
        from core.metrics.class_acc import format_class_acc

        print("\n".join(format_class_acc(result)))
    print(f"{report.num_gen} generated vs {report.num_real} dataset images, {report.seconds:.1f} s")
    if args.out:
        from core.io.files import atomic_write_text

        out = Path(args.out)
        atomic_write_text(out, json.dumps(result, indent=2))
        print(f"wrote {out}")
    return 0


def cmd_dataset(args: argparse.Namespace) -> int:
    from core.data.dataset_cli import run_dataset_command

    return run_dataset_command(args)


def cmd_invert(args: argparse.Namespace) -> int:
    if args.steps < 1 or args.pti_steps < 1 or args.metrics_every < 1:
        raise UserInputError("--steps, --pti-steps and --metrics-every must be at least 1")
    if args.threads is not None and args.threads < 1:
        raise UserInputError("--threads must be at least 1")
    out = Path(args.out)
    check_writable(out, folder=True)
    # The outermost folder this run creates: removed again (when empty) if the inversion fails.
    new_top = next((p for p in reversed([out, *out.parents]) if not p.exists()), None)
    from core.inversion.pipeline import InvertOptions, run_invert
    from core.inversion.projector import ProjectorConfig
    from core.inversion.pti import PTIConfig

    ckpt = load_model(args)
    G = ckpt.generator
    class_idx = resolve_class(args.class_, G.c_dim, ckpt.class_names) if args.class_ is not None else None
    opts = InvertOptions(
        image=args.image, out=args.out, class_idx=class_idx,
        projector=ProjectorConfig(steps=args.steps, w_plus=args.w_plus, seed=args.seed,
                                  preview_every=args.metrics_every,
                                  **({} if args.lr is None else {"lr": args.lr})),  # else the default the GUI uses
        pti=PTIConfig(steps=args.pti_steps, seed=args.seed, preview_every=args.metrics_every,
                      **({} if args.pti_lr is None else {"lr": args.pti_lr})),
        vgg16=args.vgg16, lpips=args.lpips, perceptual_size=args.perceptual_size, threads=args.threads,
        video=args.video, fps=args.fps, progress=not args.no_progress)
    try:
        run_invert(ckpt, opts)
    except BaseException:
        if new_top is not None:  # a failed inversion (bad photo, Ctrl-C, ...) leaves no empty output folder behind
            remove_empty_dirs(new_top)
        raise
    return 0


def cmd_explore(args: argparse.Namespace) -> int:
    from explorer.app import main as explorer_main

    ckpt = args.ckpt or (str(DEMO_CHECKPOINT) if DEMO_CHECKPOINT.exists() else None)
    return explorer_main(ckpt, args.device)


# ----------------------------------------------------------------------------- parser

def add_trunc_cutoff_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trunc-cutoff", type=int, metavar="N",
                   help="apply --trunc to the first N ws only (the coarse layers; default: all ws)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sgxl", description="StyleGAN-XL: generate, explore, train, invert")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    p = sub.add_parser("generate", help="generate images from seeds")
    add_model_arguments(p)
    p.add_argument("--seeds", default="0-7", help="seeds, e.g. 0-15 or 1,5,9 (default 0-7)")
    p.add_argument("--class", dest="class_", help="class index or name (default 0)")
    p.add_argument("--classes", help="several classes (indices or names, comma separated, or 'all'): one grid row "
                                     "per class, the seeds as columns")
    p.add_argument("--trunc", type=float, default=1.0, help=PSI_HELP)
    add_trunc_cutoff_argument(p)
    p.add_argument("--style-mix-seed", type=int, help="take some layers' w from this seed")
    p.add_argument("--style-mix-class", help="class of the style-mix seed (default: --class)")
    p.add_argument("--style-mix-layers", default="0-3", help="w indices taken from the mix seed (default 0-3)")
    p.add_argument("--translate", default="0,0", metavar="X,Y",
                   help="translate the synthesis input's Fourier features (as official gen_images.py; default 0,0)")
    p.add_argument("--rotate", type=float, default=0.0, metavar="DEG", help="rotate the input (degrees, default 0)")
    p.add_argument("--batch", type=int, default=8, help="images per forward pass (default 8)")
    p.add_argument("--dtype", choices=("float32", "bf16"), default="float32",
                   help="float32 (default, the exact images) or bf16: the layers this CPU runs faster in bfloat16 "
                        "(measured first) in bf16, as the explorer's preview")
    p.add_argument("--cols", type=int, help="grid columns (default: square-ish)")
    p.add_argument("--out", default="out/grid.png", help="an image file for one grid (.png, .jpg, .webp, .bmp, .tif: "
                   "any format Pillow writes), or a folder (a name without a suffix) for one PNG per seed")
    add_noise_arguments(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("video", help="interpolation video between seeds (and classes)")
    add_model_arguments(p)
    p.add_argument("--seeds", default="0,1,2", help="key seeds, e.g. 0,5,9")
    p.add_argument("--class", dest="class_", help="class index or name (default 0)")
    p.add_argument("--classes", help="one class per seed, comma separated (class interpolation)")
    p.add_argument("--trunc", type=float, default=1.0, help=PSI_HELP)
    add_trunc_cutoff_argument(p)
    p.add_argument("--frames", type=int, default=30, help="frames between two key seeds (default 30)")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--loop", action="store_true", help="return to the first seed at the end")
    p.add_argument("--out", default="out/lerp.mp4", help=".mp4 (needs imageio-ffmpeg) or .gif")
    add_noise_arguments(p)
    p.set_defaults(func=cmd_video)

    p = sub.add_parser("info", help="describe a checkpoint (.sgxl or official .pkl) without converting it")
    p.add_argument("ckpt")
    add_allow_large_argument(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("convert", help="convert an official StyleGAN-XL / StyleGAN3 / StyleGAN2(-ADA) .pkl to our "
                                       "safe .sgxl format "
                                       "(or export a training snapshot's G_ema alone)")
    p.add_argument("pkl", metavar="IN", help="official .pkl (read without running code from it), or a .sgxl "
                                             "snapshot to export without its training state")
    p.add_argument("--out", required=True, help="output .sgxl path")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_allow_large_argument(p)
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("train", help="train (or grow, or resume) a StyleGAN-XL model")
    p.add_argument("--data", help="dataset zip or folder (see `sgxl dataset`)")
    p.add_argument("--out", help="run directory: log.jsonl, samples/, snapshots/, latest.sgxl (default runs/run, or "
                   "the --resume run). One that holds another run is refused: continue it with --resume, or "
                   "--force-new")
    p.add_argument("--force-new", action="store_true", help="--out holds an earlier run: move it to a new folder "
                   "OUT.old-N (kept whole, resumable from there) and start a new run in --out")
    p.add_argument("--keep", type=int, help="keep only the newest N snapshots, removing older ones as new ones "
                   "are written (default: keep all; latest.sgxl links to the newest)")
    p.add_argument("--preset", default="tiny", choices=PRESETS, help="generator size (the bundled demo: demo)")
    p.add_argument("--grow-from", help="snapshot of the previous stage: add layers for the dataset's resolution")
    p.add_argument("--head-layers", type=int, help="layers added by --grow-from (default: as the last stage, or 7)")
    p.add_argument("--keep-d", action="store_true", help="with --grow-from: start the discriminator from the "
                   "snapshot's (the paper builds a fresh one per stage)")
    p.add_argument("--resume", help="run directory or snapshot to continue exactly where it stopped (with the "
                   "run's own settings; only --kimg and --metrics may change)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--batch-gpu", type=int, help="images per forward pass (gradient accumulation up to --batch)")
    p.add_argument("--kimg", type=float, help="thousands of images to train this stage (default 10); with "
                   "--resume: the run's new total")
    p.add_argument("--snap", type=float, default=1.0, help="snapshot every N kimg (default 1)")
    p.add_argument("--tick", type=float, default=0.1, help="log every N kimg (default 0.1)")
    p.add_argument("--glr", type=float, default=0.0025, help="G learning rate (default 0.0025); as officially, Adam "
                   "gets the lazy-regularisation scaling: lr x 4/5 (0.002) and betas (0, 0.99^(4/5) = 0.992)")
    p.add_argument("--dlr", type=float, default=0.002, help="D learning rate (default 0.002); Adam gets lr x 16/17 "
                   "(0.00188) and betas (0, 0.99^(16/17) = 0.9906), as officially")
    p.add_argument("--cls-weight", type=float, default=0.0, help="classifier guidance weight, as officially: the "
                   "G loss of a pass of b images is b x mean(-D(fake)) + weight x mean cross-entropy (0 = off)")
    p.add_argument("--range-weight", type=float, default=0.0, help="penalty on generated pixels outside "
                   "[-1, 1] (not in the paper; keeps a new growth-stage head from drifting out of range; 0 = off)")
    p.add_argument("--class-map", help="ImageNet class index per dataset class, for guidance on other datasets")
    p.add_argument("--blur-fade-kimg", type=float, default=300.0, help="fade the blur of D's inputs (official kernel "
                   "exp2(-(t/sigma)^2), sigma 2 -> 0) out over the stage's first N kimg (default 300; 0 = no blur)")
    p.add_argument("--class-embeddings", help="the official ImageNet class-embedding table "
                   "in_embeddings/tf_efficientnet_lite0.pkl (default: $SGXL_CLASS_EMBEDDINGS, then "
                   "~/.cache/sgxl/in_embeddings/tf_efficientnet_lite0.pkl; without it a table derived from "
                   "EfficientNet-lite0's classifier) for the initial class embeddings of G and D; `random`: "
                   "random rows instead (the official rand_embedding option)")
    p.add_argument("--synthesis-emas", action="store_true", help="not official, for A/B runs only: update the "
                   "synthesis layers' magnitude EMAs in the D phase (StyleGAN3's habit; StyleGAN-XL never does)")
    p.add_argument("--d-input-size", type=int, default=224,
                   help="resize images to this before the feature networks (paper: 224; smaller is faster on CPU)")
    p.add_argument("--deit-weights", help="DeiT-base distilled weights file (optional second feature network)")
    p.add_argument("--mirror", action="store_true", help="random horizontal flips of real images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to log.jsonl)")
    p.add_argument("--metrics", help="metrics at each snapshot, e.g. fd_effnet,kid (see `sgxl metrics`; default none)")
    p.add_argument("--metrics-num", type=int, default=1000, help="generated images per snapshot metric (default 1000)")
    add_allow_large_argument(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("metrics", help="FD / KID / precision-recall / IS of a generator against a dataset")
    add_model_arguments(p)
    p.add_argument("--data", required=True, help="dataset zip or folder (the real images)")
    p.add_argument("--metrics", default="fd_effnet,kid,pr",
                   help="comma separated: fd_effnet, kid, pr, is_effnet (offline, EfficientNet-lite0 features); "
                   "class_acc (generated images recognised as their class by a linear probe on the real data); "
                   "fid, is, kid_inception, pr_inception (need --inception-weights). Default fd_effnet,kid,pr")
    p.add_argument("--num", type=int, default=10000, help="generated images (default 10000)")
    p.add_argument("--num-real", help="dataset images used: N (a fixed random subset, its features cached per "
                   "dataset and N) or 'all' (default: as many as --num)")
    p.add_argument("--trunc", type=float, default=1.0, help=PSI_HELP)
    p.add_argument("--seed", type=int, default=0, help="seed of the latents and classes (default 0)")
    p.add_argument("--batch", type=int, default=32, help="images per forward pass (default 32)")
    p.add_argument("--per-class", action="store_true", help="also FD per class and its mean over classes")
    p.add_argument("--inception-weights", help="TorchScript inception-2015-12-05.pt for fid / is "
                   "(default: $SGXL_INCEPTION_WEIGHTS)")
    p.add_argument("--cache-dir", help="dataset statistics cache (default: $SGXL_CACHE_DIR or ~/.cache/sgxl/metrics)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write cached dataset statistics")
    p.add_argument("--out", help="write the results as JSON here")
    p.set_defaults(func=cmd_metrics)

    p = sub.add_parser("dataset", help="build a training dataset from a folder of images, or --preset noto-emoji")
    from core.data.dataset_cli import add_dataset_arguments

    add_dataset_arguments(p)
    p.set_defaults(func=cmd_dataset)

    p = sub.add_parser("invert", help="invert a photo: projection into W, then pivotal tuning (PTI)")
    add_model_arguments(p)
    p.add_argument("--image", required=True, help="the photo (any format Pillow reads; centre square is used)")
    p.add_argument("--class", dest="class_", help="class index or name (default: predicted for ImageNet models, "
                   "else 0)")
    p.add_argument("--steps", type=int, default=1000, help="projection steps (default 1000)")
    p.add_argument("--pti-steps", type=int, default=350, help="pivotal tuning steps (default 350)")
    p.add_argument("--w-plus", action="store_true", help="optimise one w per layer (W+) instead of one w")
    p.add_argument("--lr", type=float, help="projection learning rate (default 0.1)")
    p.add_argument("--pti-lr", type=float, help="PTI learning rate (default 3e-4)")
    p.add_argument("--vgg16", help="VGG16 weights (torchvision state dict) for a VGG perceptual distance "
                   "(default: $SGXL_VGG16_WEIGHTS; without: EfficientNet-lite0 features)")
    p.add_argument("--lpips", help="LPIPS v0.1 VGG linear weights (default: $SGXL_LPIPS_WEIGHTS); with --vgg16 "
                   "this makes the distance real LPIPS")
    p.add_argument("--perceptual-size", type=int, help="resize images to this before the perceptual network "
                   "(default: 224 for EfficientNet, native up to 256 for VGG)")
    p.add_argument("--metrics-every", type=int, default=1, help="PSNR / SSIM / perceptual every N steps (default 1)")
    p.add_argument("--video", action="store_true", help="also write progress.mp4 of the optimisation")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores but one, as the explorer's Invert "
                   "panel uses; the thread count changes the result in the last bits, and those grow)")
    p.add_argument("--out", default="out/invert", help="output folder (default out/invert)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_invert)

    p = sub.add_parser("explore", help="open the interactive explorer")
    p.add_argument("ckpt", nargs="?", help="checkpoint to open (default: the bundled demo)")
    p.add_argument("--device", default="auto")
    add_allow_large_argument(p)
    p.set_defaults(func=cmd_explore)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "allow_large", False):
        from core.io.validate import ALLOW_LARGE_ENV

        os.environ[ALLOW_LARGE_ENV] = "1"  # also reaches the processes a verb starts (explorer -> sgxl train)
    try:
        return int(args.func(args) or 0)
    except SGXLError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        from core.io.files import disk_full_error, is_disk_full

        if not is_disk_full(e):
            raise
        print(f"error: {disk_full_error(e.filename or '(a file)', e)}", file=sys.stderr)  # writes not via core.io.files
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `sgxl info X | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
