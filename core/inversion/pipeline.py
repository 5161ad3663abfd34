"""Photo -> projection -> pivotal tuning -> files: what `sgxl invert` runs (the explorer drives the steps itself).

Writes into the output folder:
  target.png         the photo as the model sees it (cropped, resized)
  projected.png      G(w) after projection
  pti.png            tuned G(pivot) after pivotal tuning
  side_by_side.png   target | projected | PTI (nearest-neighbour enlarged to >= 256 px high for small models)
  pivot.safetensors  the pivot ws [1, num_ws, w_dim] and its class
  pti.sgxl           the tuned generator + pivot (a normal checkpoint: `sgxl generate --ckpt` works on it)
  metrics.json       PSNR / SSIM / perceptual distance per step and at the end of each phase, times, settings
  progress.mp4       (--video) target | current image through both phases
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from core.inversion.perceptual import build_perceptual
from core.inversion.photo import load_photo
from core.inversion.projector import ClassChoice, ProjectorConfig, StepReport, choose_class, project
from core.inversion.pti import PTIConfig, pivotal_tuning, save_pti_checkpoint
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
    pti: PTIConfig = field(default_factory=PTIConfig)
    vgg16: str | None = None
    lpips: str | None = None
    perceptual_size: int | None = None
    video: bool = False
    fps: int = 30
    progress: bool = True


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


def run_invert(ckpt: Checkpoint, opts: InvertOptions, log=print) -> dict:
    """Invert `opts.image` into `ckpt.generator`, write the files listed above, return the metrics dict."""
    G = ckpt.generator
    device = G.mapping.w_avg.device
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    photo = load_photo(opts.image, G.img_resolution)
    for note in photo.notes:
        log(f"note: {note}")
    target = photo.target.to(device)
    if opts.class_idx is None and G.c_dim == 1000:  # the classifier sees the photo at 256², whatever G's size
        choice: ClassChoice = choose_class(G, load_photo(opts.image, 256).target.to(device))
    else:
        choice = choose_class(G, target, opts.class_idx)
    names = ckpt.class_names or []
    class_name = names[choice.index] if choice.index is not None and choice.index < len(names) else None
    if choice.note:
        log(f"note: {choice.note}")
    perceptual = build_perceptual(opts.vgg16, opts.lpips, opts.perceptual_size, device, G.img_resolution)
    log(f"perceptual distance: {perceptual.description}")

    total = opts.projector.steps + opts.pti.steps
    recorder = _FrameRecorder(photo.to_uint8(), total) if opts.video else None

    proj = project(G, target, choice.index, perceptual, opts.projector, callback=recorder, progress=opts.progress)
    for note in proj.notes:
        log(f"note: {note}")
    tuned = pivotal_tuning(G, target, proj.ws, choice.index, perceptual, opts.pti, callback=recorder,
                           progress=opts.progress)

    target_u8, proj_u8, pti_u8 = photo.to_uint8(), to_uint8(proj.image)[0], to_uint8(tuned.image)[0]
    write_image(out / "target.png", target_u8)
    write_image(out / "projected.png", proj_u8)
    write_image(out / "pti.png", pti_u8)
    factor = max(1, 256 // G.img_resolution)
    write_image(out / "side_by_side.png", _enlarge(np.concatenate([target_u8, proj_u8, pti_u8], axis=1), factor))

    from safetensors.torch import save as st_save

    cls = torch.tensor([-1 if choice.index is None else choice.index], dtype=torch.int64)
    atomic_write_bytes(out / "pivot.safetensors", st_save(
        {"ws": proj.ws.detach().cpu().contiguous(), "class": cls},
        metadata={"image": str(opts.image), "checkpoint": str(ckpt.path or ""), "w_plus": str(opts.projector.w_plus)}))
    ckpt_path = save_pti_checkpoint(out / "pti.sgxl", tuned, meta={
        "kind": "pti", "source_checkpoint": str(ckpt.path or ""), "image": str(opts.image),
        "resolution": G.img_resolution, "dataset": ckpt.meta.get("dataset")}, class_names=ckpt.class_names)

    files = ["target.png", "projected.png", "pti.png", "side_by_side.png", "pivot.safetensors", ckpt_path.name,
             "metrics.json"]
    if recorder is not None:
        from core.video import write_video

        video = write_video(out / "progress.mp4", np.stack(recorder.frames), fps=opts.fps)
        files.append(video.name)

    metrics = {
        "image": str(opts.image),
        "checkpoint": str(ckpt.path or ""),
        "resolution": G.img_resolution,
        "device": str(device),
        "photo": {"original_size": list(photo.original_size), "mode": photo.mode, "crop_box": list(photo.box),
                  "notes": photo.notes},
        "class": {"index": choice.index, "name": class_name, "source": choice.source, "note": choice.note,
                  "top5": [list(t) for t in choice.top5]},
        "notes": proj.notes,
        "perceptual": {"name": perceptual.name, "description": perceptual.description, "size": perceptual.size},
        "projection": {"config": opts.projector.to_dict(), "seconds": round(proj.seconds, 3),
                       "steps_done": proj.steps_done, "final": proj.metrics, "steps": proj.history},
        "pti": {"config": opts.pti.to_dict(), "seconds": round(tuned.seconds, 3), "steps_done": tuned.steps_done,
                "final": tuned.metrics, "steps": tuned.history},
        "seconds_total": round(time.perf_counter() - t_start, 3),
        "files": files,
    }
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1))
    log(f"{'phase':<12}{'PSNR dB':>9}{'SSIM':>8}{perceptual.name:>22}{'seconds':>9}")
    for phase, res in (("projection", proj), ("PTI", tuned)):
        m = res.metrics
        log(f"{phase:<12}{m['psnr']:>9.2f}{m['ssim']:>8.4f}{m['perceptual']:>22.4f}{res.seconds:>9.1f}")
    log(f"wrote {', '.join(files)} to {out}/")
    return metrics
