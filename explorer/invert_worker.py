"""The explorer's inversion child process: photo -> projection -> pivotal tuning, progress written to files.

The explorer never inverts in its own process: the perceptual distance needs timm, and importing timm
(triton's LLVM) inside a process that runs Mesa's llvmpipe crashes it. So the Invert panel starts

    python -m explorer.invert_worker --ckpt C --image P --out DIR [--class K] [--steps N] [--pti-steps M] ...

and only reads DIR (see explorer/invert_run.py):

  progress.jsonl     one JSON object per line: {"event": "start", ...}, then one row per optimisation step
                     {"phase", "step", "total", "loss", ... (+ "psnr" / "ssim" / "perceptual" on preview
                     steps)}, and last {"event": "done", ...} or {"event": "error", "message"}
  preview.png        the latest preview image (replaced atomically, at most every PREVIEW_MIN_S)
  target.png, projected.png, pti.png, pivot.safetensors, pti.sgxl (the tuned generator + pivot) as
  `sgxl invert` writes them (core/inversion/pipeline.py), each written atomically *before* the "done" line,
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


def run(args: argparse.Namespace, log: ProgressLog) -> None:
    import torch
    from safetensors.torch import save as st_save

    from core.errors import UserInputError
    from core.inversion.perceptual import build_perceptual
    from core.inversion.photo import load_photo
    from core.inversion.projector import Projector, ProjectorConfig, choose_class
    from core.inversion.pti import PivotalTuner, PTIConfig, save_pti_checkpoint
    from core.io.checkpoint import load_checkpoint
    from core.sampling import to_uint8

    out = Path(args.out)
    if args.steps < 1 or args.pti_steps < 0:
        raise UserInputError("projection needs at least 1 step and PTI at least 0")
    ckpt = load_checkpoint(args.ckpt, device=args.device)
    G = ckpt.generator.eval()
    box = tuple(int(v) for v in args.box.split(",")) if args.box else None
    photo = load_photo(args.image, G.img_resolution, box)
    target = photo.target.to(args.device)
    class_idx = None if args.class_idx < 0 else args.class_idx
    if class_idx is None and G.c_dim == 1000:  # ImageNet model: the classifier sees the photo at 256²
        choice = choose_class(G, load_photo(args.image, 256, box).target.to(args.device))
    else:
        choice = choose_class(G, target, class_idx)
    perceptual = build_perceptual(size=args.perceptual_size, device=args.device, resolution=G.img_resolution)
    names = ckpt.class_names or []
    log.write({"event": "start", "steps": args.steps, "pti_steps": args.pti_steps, "class": choice.index,
               "class_name": names[choice.index] if choice.index is not None and choice.index < len(names) else None,
               "class_note": choice.note, "notes": photo.notes, "perceptual": perceptual.description,
               "resolution": G.img_resolution, "pid": os.getpid()})
    _atomic_bytes(out / "target.png", _png_bytes(photo.to_uint8()))

    last_preview = [0.0]

    def post(report) -> None:
        log.write({"phase": report.phase, "step": report.step, "total": report.total,
                   **{k: round(float(v), 6) for k, v in report.losses.items()}})
        now = time.perf_counter()
        if report.image is not None and (now - last_preview[0] >= PREVIEW_MIN_S or report.step == report.total):
            last_preview[0] = now
            _atomic_bytes(out / PREVIEW_FILE, _png_bytes(to_uint8(report.image)[0]))

    projector = Projector(G, target, choice.index, perceptual,
                          ProjectorConfig(steps=args.steps, w_plus=args.w_plus, preview_every=args.preview_every,
                                          seed=args.seed))
    for report in projector:
        post(report)
    proj = projector.result()
    _atomic_bytes(out / "projected.png", _png_bytes(to_uint8(proj.image)[0]))
    cls = torch.tensor([-1 if choice.index is None else choice.index], dtype=torch.int64)
    _atomic_bytes(out / "pivot.safetensors", st_save({"ws": proj.ws.detach().cpu().contiguous(), "class": cls},
                                                     metadata={"image": str(args.image), "checkpoint": args.ckpt}))
    final = {"projection": proj.metrics}
    if args.pti_steps > 0:
        tuner = PivotalTuner(G, target, proj.ws, choice.index, perceptual,
                             PTIConfig(steps=args.pti_steps, preview_every=args.preview_every, seed=args.seed))
        for report in tuner:
            post(report)
        tuned = tuner.result()
        _atomic_bytes(out / "pti.png", _png_bytes(to_uint8(tuned.image)[0]))
        final["pti"] = tuned.metrics
    else:  # no tuning: the result is the original generator with the projected pivot
        from core.inversion.pti import PTIResult

        tuned = PTIResult(generator=G, ws=proj.ws, class_idx=choice.index, image=proj.image, metrics=proj.metrics)
    save_pti_checkpoint(out / RESULT_FILE, tuned, meta={  # written atomically by save_checkpoint
        "kind": "pti", "source_checkpoint": str(args.ckpt), "image": str(args.image),
        "resolution": G.img_resolution, "kimg": ckpt.meta.get("kimg", 0)}, class_names=ckpt.class_names)
    log.write({"event": "done", "result": str((out / RESULT_FILE).resolve()), "class": choice.index, **final})


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
