"""The explorer's inversion child process: photo -> projection -> pivotal tuning, progress written to files.

The explorer never inverts in its own process: the perceptual distance needs timm, and importing timm
(triton's LLVM) inside a process that runs Mesa's llvmpipe crashes it. So the Invert panel starts

    python -m explorer.invert_worker --ckpt C --image P --out DIR [--class K] [--steps N] [--pti-steps M] ...

and only reads DIR (see explorer/invert_run.py). The inversion itself is `sgxl invert`'s: the arguments
become the same `InvertOptions` and go through the same `core.inversion.pipeline.run_invert`, which calls
back here after every step; so the panel and the CLI give the same result for the same settings.

  progress.jsonl     one JSON object per line: {"event": "start", ...}, then one row per optimisation step
                     {"phase", "step", "total", "loss", ... (+ "psnr" / "ssim" / "perceptual" on preview
                     steps)}, and last {"event": "done", ...} or {"event": "error", "message"}
  preview.png        the latest preview image (replaced atomically, at most every PREVIEW_MIN_S)
  target.png, projected.png, pti.png, side_by_side.png, pivot.safetensors, pti.sgxl (the tuned generator +
  pivot), metrics.json: written by `run_invert` as for `sgxl invert`, each atomically *before* the "done" line,
  so a reader that waits for "done" never sees half a result, and a killed worker leaves none.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

PROGRESS_FILE = "progress.jsonl"
PREVIEW_FILE = "preview.png"
RESULT_FILE = "pti.sgxl"
PREVIEW_MIN_S = 0.25  # a preview PNG at most this often (the panel polls about as often)


def _atomic_bytes(path: Path, data: bytes) -> None:
    from core.io.files import atomic_write_bytes

    atomic_write_bytes(path, data)


def _png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


class ProgressLog:
    """Appends JSON lines to progress.jsonl, flushed per line (the panel reads it while we write)."""

    def __init__(self, out: Path) -> None:
        self.file = open(out / PROGRESS_FILE, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, record: dict) -> None:
        self.file.write(json.dumps({"time": time.time(), **record}) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def invert_options(args: argparse.Namespace):
    """The worker's arguments -> the `InvertOptions` `sgxl invert` builds from the same settings."""
    from core.errors import UserInputError
    from core.inversion.pipeline import InvertOptions
    from core.inversion.projector import ProjectorConfig
    from core.inversion.pti import PTIConfig

    if args.steps < 1 or args.pti_steps < 0:
        raise UserInputError("projection needs at least 1 step and PTI at least 0")
    box = None
    if args.box:
        try:
            box = tuple(int(v) for v in args.box.split(","))
        except ValueError:
            raise UserInputError(f"cannot read the crop box {args.box!r}: give left,top,size") from None
        if len(box) != 3:
            raise UserInputError(f"cannot read the crop box {args.box!r}: give left,top,size")
    return InvertOptions(
        image=args.image, out=args.out, class_idx=None if args.class_idx < 0 else args.class_idx,
        projector=ProjectorConfig(steps=args.steps, w_plus=args.w_plus, seed=args.seed,
                                  preview_every=args.preview_every),
        pti=PTIConfig(steps=args.pti_steps, seed=args.seed, preview_every=args.preview_every),
        perceptual_size=args.perceptual_size, box=box, threads=args.threads, video=False, progress=False)


def run(args: argparse.Namespace, log: ProgressLog) -> None:
    from core.inversion.pipeline import prepare_invert, run_invert
    from core.io.checkpoint import load_checkpoint
    from core.sampling import to_uint8

    opts = invert_options(args)
    out = Path(args.out)
    ckpt = load_checkpoint(args.ckpt, device=args.device)
    setup = prepare_invert(ckpt, opts)
    G = ckpt.generator
    log.write({"event": "start", "steps": args.steps, "pti_steps": args.pti_steps, "class": setup.choice.index,
               "class_name": setup.class_name, "class_note": setup.choice.note, "notes": setup.photo.notes,
               "perceptual": setup.perceptual.description, "resolution": G.img_resolution, "threads": setup.threads,
               "pid": os.getpid()})

    last_preview = [0.0]

    def post(report) -> None:
        log.write({"phase": report.phase, "step": report.step, "total": report.total,
                   **{k: round(float(v), 6) for k, v in report.losses.items()}})
        now = time.perf_counter()
        if report.image is not None and (now - last_preview[0] >= PREVIEW_MIN_S or report.step == report.total):
            last_preview[0] = now
            _atomic_bytes(out / PREVIEW_FILE, _png_bytes(to_uint8(report.image)[0]))

    metrics = run_invert(ckpt, opts, log=lambda line: None, callback=post, setup=setup)
    final = {"projection": metrics["projection"]["final"]}
    if metrics["pti"]["final"] is not None:
        final["pti"] = metrics["pti"]["final"]
    log.write({"event": "done", "result": str((out / RESULT_FILE).resolve()), "class": setup.choice.index, **final})


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m explorer.invert_worker",
                                description="invert a photo for the explorer, progress written to files in --out")
    p.add_argument("--ckpt", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--class", dest="class_idx", type=int, default=-1, help="class index (-1: automatic)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--pti-steps", type=int, default=350)
    p.add_argument("--w-plus", action="store_true")
    p.add_argument("--box", help="crop square left,top,size in photo pixels (default: the centre square)")
    p.add_argument("--perceptual-size", type=int, default=None)
    p.add_argument("--preview-every", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores but one, as "
                   "`sgxl invert` uses)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = ProgressLog(out)
    try:
        run(args, log)
    except Exception as e:  # the panel shows the message; the traceback goes to stderr (a file) for bugs
        from core.errors import SGXLError

        message = str(e) if isinstance(e, SGXLError) else f"{type(e).__name__}: {e}"
        log.write({"event": "error", "message": message})
        if not isinstance(e, SGXLError):
            import traceback

            traceback.print_exc()
        return 2
    finally:
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
