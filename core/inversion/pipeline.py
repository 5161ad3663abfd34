"""Photo -> projection -> pivotal tuning -> files: what `sgxl invert` and the explorer's Invert panel both run.

The explorer's worker process (explorer/invert_worker.py) calls the same `prepare_invert` + `run_invert`
with the same `InvertOptions` the CLI builds, adding only a per-step callback (progress lines, previews),
so the same photo, crop, class, steps, seed and thread count give the same numbers from either.

Writes into the output folder, each file atomically (temp file + rename: a killed run leaves no half file):
  target.png         the photo as the model sees it (cropped, resized)
  projected.png      G(w) after projection
  pti.png            tuned G(pivot) after pivotal tuning (not written with 0 PTI steps)
  side_by_side.png   target | projected | PTI (nearest-neighbour enlarged to >= 256 px high for small models)
  pivot.safetensors  the pivot ws [1, num_ws, w_dim] and its class
  pti.sgxl           the tuned generator + pivot (a normal checkpoint: `sgxl generate --ckpt` works on it);
                     with 0 PTI steps the original generator + pivot
  metrics.json       PSNR / SSIM / perceptual distance per step and at the end of each phase, times, settings
  progress.mp4       (video) target | current image through both phases
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from core.errors import UserInputError
from core.inversion.perceptual import PerceptualDistance, build_perceptual
from core.inversion.photo import Box, Photo, load_photo
from core.inversion.projector import (
    CancelFlag,
    ClassChoice,
    ProjectionResult,
    ProjectorConfig,
    StepReport,
    choose_class,
    project,
)
from core.inversion.pti import PTIConfig, PTIResult, pivotal_tuning, save_pti_checkpoint
from core.io.checkpoint import Checkpoint
from core.io.files import atomic_write_bytes, atomic_write_text, save_image
from core.sampling import to_uint8

MAX_VIDEO_FRAMES = 300
MAX_VIDEO_SIDE = 512


@dataclass
class InvertOptions:
    image: str
    out: str
    class_idx: int | None = None  # None: predicted (ImageNet models) or 0
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    pti: PTIConfig = field(default_factory=PTIConfig)  # steps = 0: no tuning
    vgg16: str | None = None
    lpips: str | None = None
    perceptual_size: int | None = None
    box: Box | None = None  # crop square in photo pixels (None: the centre square, as load_photo does)
    threads: int | None = None  # CPU threads (None: `default_threads()`); part of the result, see below
    video: bool = False
    fps: int = 30
    progress: bool = True


def default_threads() -> int:
    """CPU threads an inversion uses unless told: all cores but one (at most torch's own default).

    On the CPU the float result of a step depends on the thread count (the summation order of parallel
    reductions in convolutions and their gradients differs in the last bits), and Adam's normalised
    steps amplify last-bit differences into visibly different inversions within a few steps. So the
    thread count is a setting like the seed: `sgxl invert` and the explorer's worker use this same
    default (the explorer leaves a core to its UI; so does the CLI, which also keeps an inversion from
    stalling when anything else runs: with every core busy, each op's OpenMP barrier waits for the
    thread that got preempted, measured 5.5x slower per step with 2 threads than with 1 on a loaded
    2-core machine).
    """
    return max(1, min(torch.get_num_threads(), (os.cpu_count() or 2) - 1))


@contextmanager
def torch_threads(n: int | None) -> Iterator[int]:
    """Run with `n` CPU threads (default_threads() for None), restoring the previous count afterwards."""
    before = torch.get_num_threads()
    n = default_threads() if n is None else int(n)
    if n < 1:
        raise UserInputError(f"the number of threads must be at least 1, got {n}")
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


def write_image(path: Path, image: np.ndarray) -> None:
    save_image(path, image)  # atomic (core.io.files): a full disk leaves no half image


def _enlarge(img: np.ndarray, factor: int) -> np.ndarray:
    return img if factor <= 1 else img.repeat(factor, axis=0).repeat(factor, axis=1)


class _FrameRecorder:
    """Collects target | current frames for the progress video, at most MAX_VIDEO_FRAMES of them."""

    def __init__(self, target: np.ndarray, total_steps: int) -> None:
        res = target.shape[0]
        self.factor = max(1, 256 // res)
        self.shrink = res * self.factor > MAX_VIDEO_SIDE
        self.target = self._prepare(target)
        self.every = max(1, -(-total_steps // MAX_VIDEO_FRAMES))
        self.count = 0
        self.frames: list[np.ndarray] = []

    def _prepare(self, img: np.ndarray) -> np.ndarray:
        if self.shrink:
            from PIL import Image

            return np.asarray(Image.fromarray(img).resize((MAX_VIDEO_SIDE, MAX_VIDEO_SIDE), Image.Resampling.BILINEAR))
        return _enlarge(img, self.factor)

    def __call__(self, report: StepReport) -> None:
        self.count += 1
        if report.image is not None and (self.count % self.every == 0 or report.step == report.total):
            self.frames.append(np.concatenate([self.target, self._prepare(to_uint8(report.image)[0])], axis=1))


@dataclass
class InvertSetup:
    """Everything decided before the first step: the target, the class, the perceptual distance."""

    photo: Photo
    target: torch.Tensor  # [1, 3, R, R] in [-1, 1] on the generator's device
    choice: ClassChoice
    class_name: str | None
    perceptual: PerceptualDistance
    threads: int


def prepare_invert(ckpt: Checkpoint, opts: InvertOptions) -> InvertSetup:
    """Load and crop the photo, choose the class, build the perceptual distance (no optimisation yet)."""
    G = ckpt.generator
    device = G.mapping.w_avg.device
    photo = load_photo(opts.image, G.img_resolution, opts.box)
    target = photo.target.to(device)
    if opts.class_idx is None and G.c_dim == 1000:  # the classifier sees the photo at 256², whatever G's size
        choice = choose_class(G, load_photo(opts.image, 256, opts.box).target.to(device))
    else:
        choice = choose_class(G, target, opts.class_idx)
    names = ckpt.class_names or []
    class_name = names[choice.index] if choice.index is not None and choice.index < len(names) else None
    perceptual = build_perceptual(opts.vgg16, opts.lpips, opts.perceptual_size, device, G.img_resolution)
    threads = default_threads() if opts.threads is None else opts.threads
    return InvertSetup(photo, target, choice, class_name, perceptual, threads)


def run_invert(ckpt: Checkpoint, opts: InvertOptions, log: Callable[[str], None] = print,
               callback: Callable[[StepReport], None] | None = None, setup: InvertSetup | None = None,
               cancel: CancelFlag = None) -> dict:
    """Invert `opts.image` into `ckpt.generator`, write the files listed above, return the metrics dict.

    `callback(report)` runs after every step of both phases; `setup` is `prepare_invert`'s result when
    the caller needed it before the steps (the explorer's worker announces the class first).
    """
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    with torch_threads(opts.threads if setup is None else setup.threads) as threads:
        setup = setup or prepare_invert(ckpt, opts)
        metrics = _run(ckpt, opts, setup, threads, out, log, callback, cancel)
    metrics["seconds_total"] = round(time.perf_counter() - t_start, 3)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1))
    log(f"wrote {', '.join(metrics['files'])} to {out}/")
    return metrics


def _run(ckpt: Checkpoint, opts: InvertOptions, setup: InvertSetup, threads: int, out: Path,
         log: Callable[[str], None], callback: Callable[[StepReport], None] | None, cancel: CancelFlag) -> dict:
    G, photo, target, choice, perceptual = ckpt.generator, setup.photo, setup.target, setup.choice, setup.perceptual
    for note in photo.notes:
        log(f"note: {note}")
    if choice.note:
        log(f"note: {choice.note}")
    log(f"perceptual distance: {perceptual.description}")
    write_image(out / "target.png", photo.to_uint8())

    recorder = _FrameRecorder(photo.to_uint8(), opts.projector.steps + opts.pti.steps) if opts.video else None

    def on_step(report: StepReport) -> None:
        if recorder is not None:
            recorder(report)
        if callback is not None:
            callback(report)

    proj = project(G, target, choice.index, perceptual, opts.projector, callback=on_step, cancel=cancel,
                   progress=opts.progress)
    for note in proj.notes:
        log(f"note: {note}")
    proj_u8 = to_uint8(proj.image)[0]
    write_image(out / "projected.png", proj_u8)
    cls = torch.tensor([-1 if choice.index is None else choice.index], dtype=torch.int64)
    from safetensors.torch import save as st_save

    atomic_write_bytes(out / "pivot.safetensors", st_save(
        {"ws": proj.ws.detach().cpu().contiguous(), "class": cls},
        metadata={"image": str(opts.image), "checkpoint": str(ckpt.path or ""), "w_plus": str(opts.projector.w_plus)}))
    files = ["target.png", "projected.png", "pivot.safetensors"]

    tuned = _tune(G, target, proj, choice, perceptual, opts.pti, on_step, cancel, opts.progress)
    panels = [photo.to_uint8(), proj_u8]
    if tuned.steps_done:
        panels.append(to_uint8(tuned.image)[0])
        write_image(out / "pti.png", panels[-1])
        files.append("pti.png")
    factor = max(1, 256 // G.img_resolution)
    write_image(out / "side_by_side.png", _enlarge(np.concatenate(panels, axis=1), factor))
    ckpt_path = save_pti_checkpoint(out / "pti.sgxl", tuned, meta={
        "kind": "pti", "source_checkpoint": str(ckpt.path or ""), "image": str(opts.image),
        "resolution": G.img_resolution, "dataset": ckpt.meta.get("dataset"), "kimg": ckpt.meta.get("kimg", 0)},
        class_names=ckpt.class_names)
    files += ["side_by_side.png", ckpt_path.name, "metrics.json"]
    if recorder is not None and recorder.frames:
        from core.video import write_video

        video = write_video(out / "progress.mp4", np.stack(recorder.frames), fps=opts.fps)  # atomic
        files.append(video.name)

    metrics = {
        "image": str(opts.image),
        "checkpoint": str(ckpt.path or ""),
        "resolution": G.img_resolution,
        "device": str(target.device),
        "threads": threads,
        "photo": {"original_size": list(photo.original_size), "mode": photo.mode, "crop_box": list(photo.box),
                  "notes": photo.notes},
        "class": {"index": choice.index, "name": setup.class_name, "source": choice.source, "note": choice.note,
                  "top5": [list(t) for t in choice.top5]},
        "notes": proj.notes,
        "perceptual": {"name": perceptual.name, "description": perceptual.description, "size": perceptual.size},
        "projection": {"config": opts.projector.to_dict(), "seconds": round(proj.seconds, 3),
                       "steps_done": proj.steps_done, "final": proj.metrics, "steps": proj.history},
        "pti": {"config": opts.pti.to_dict(), "seconds": round(tuned.seconds, 3), "steps_done": tuned.steps_done,
                "final": tuned.metrics if tuned.steps_done else None, "steps": tuned.history},
        "files": files,
    }
    log(f"{'phase':<12}{'PSNR dB':>9}{'SSIM':>8}{perceptual.name:>22}{'seconds':>9}")
    for phase, res in (("projection", proj), ("PTI", tuned)):
        if res.steps_done:
            m = res.metrics
            log(f"{phase:<12}{m['psnr']:>9.2f}{m['ssim']:>8.4f}{m['perceptual']:>22.4f}{res.seconds:>9.1f}")
    return metrics


def _tune(G, target: torch.Tensor, proj: ProjectionResult, choice: ClassChoice, perceptual: PerceptualDistance,
          cfg: PTIConfig, callback: Callable[[StepReport], None], cancel: CancelFlag, progress: bool) -> PTIResult:
    """Pivotal tuning, or with 0 steps the untouched generator holding the projected pivot."""
    if cfg.steps == 0:
        return PTIResult(generator=G, ws=proj.ws, class_idx=choice.index, image=proj.image, metrics=proj.metrics)
    return pivotal_tuning(G, target, proj.ws, choice.index, perceptual, cfg, callback=callback, cancel=cancel,
                          progress=progress)
