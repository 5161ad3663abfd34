"""Pivotal Tuning Inversion (Roich et al. 2022): fine-tune the generator around the projected w.

Projection finds the w whose image is closest to the photo but cannot leave the generator's range. PTI
keeps that w fixed as a *pivot* and nudges the synthesis weights instead, until G(pivot) reproduces the
photo: Adam, lr 3e-4, 350 steps, as StyleGAN-XL's run_inversion.py.

Loss terms and weights follow run_inversion.py, whose pixel MSE is taken on 0..255 pixel values: in our
[-1, 1] images that is a weight of 127.5² on the MSE, so the pixel term dominates and the tuned G(pivot)
fits the photo's pixels; the perceptual distance (weight 1) only shapes what the pixels leave open. With
equal weights on a [-1, 1] MSE and the perceptual distance (the PTI paper's code, whose LPIPS values are
much smaller than the unweighted EfficientNet / VGG feature distances used here without LPIPS weights),
the perceptual term dominated and PTI gained little: on a photo the demo model never saw, 300 steps took
PSNR from 22.9 to 24.0 dB with those, to 30.6 dB with these weights (bench/inversion.py; README).

To keep the edit space intact around the pivot (locality regularisation, PTI Sec. 3.3), each step also
takes a w at a fixed distance from the pivot, towards a randomly sampled w of the same class, and pulls the
tuned generator's image there back to the original generator's image with the perceptual distance, weight
10, as run_inversion.py (its regulariser has no pixel term; `locality_l2_weight` adds one).

The radius: PTI steps a fixed 30 units in FFHQ's W (run_inversion.py the same in ImageNet's W, towards a
w of a random class at truncation 0.5). W scales differ between models, so here the radius is
`locality_radius * w_std` (w_std = the RMS distance of a sampled w from its class mean, as the projector
measures it); the default 1.0 keeps the regularised points inside the typical spread of the class.

Only a deep copy is tuned; the generator passed in is never modified (parameters, buffers, requires_grad).
Only the synthesis network is tuned (run_inversion.py optimises every parameter of G, but G(pivot) never
runs the mapping, so only synthesis weights get gradients): the mapping and its per-class w_avg stay as
they were, so class swaps and truncation of the pivot keep their meaning.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from core.errors import CheckpointError, UserInputError
from core.inversion.perceptual import PerceptualDistance
from core.inversion.projector import CancelFlag, StepReport, StepwiseOptimization, run_steps, w_stats
from core.networks.generator import Generator
from core.sampling import class_input

PIVOT_GROUP = "pivot"  # tensor group of the pivot in a PTI checkpoint
PIXEL_MSE_255 = 127.5**2  # MSE of 0..255 pixels = 127.5² x MSE of [-1, 1] images


@dataclass
class PTIConfig:
    steps: int = 350
    lr: float = 3e-4
    l2_weight: float = PIXEL_MSE_255  # on the [-1, 1] MSE: run_inversion.py's MSE of 0..255 pixels
    perceptual_weight: float = 1.0
    locality_l2_weight: float = 0.0
    locality_perceptual_weight: float = 10.0
    locality_every: int = 1  # steps between locality regularisation terms (0 = off)
    locality_samples: int = 1  # regularised ws per step
    locality_radius: float = 1.0  # distance from the pivot, in units of the class's w_std
    w_stats_samples: int = 2000
    preview_every: int = 1  # render the tuned G's pivot image (+ metrics) every N steps
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PTIResult:
    generator: Generator  # the tuned copy
    ws: torch.Tensor  # the pivot [1, num_ws, w_dim]
    class_idx: int | None
    image: torch.Tensor  # [1, 3, H, W] tuned G(pivot), on the CPU
    metrics: dict[str, float]
    history: list[dict] = field(default_factory=list)
    steps_done: int = 0
    cancelled: bool = False
    seconds: float = 0.0


class PivotalTuner(StepwiseOptimization):
    """Tune a copy of G around `ws_pivot` step by step (`for report in tuner` or `tuner.step()`)."""

    phase = "pti"

    def __init__(self, G: Generator, target: torch.Tensor, ws_pivot: torch.Tensor, class_idx: int | None,
                 perceptual: PerceptualDistance, cfg: PTIConfig | None = None) -> None:
        self.cfg = cfg = cfg or PTIConfig()
        if cfg.steps < 1:
            raise UserInputError("the number of PTI steps must be at least 1")
        if tuple(ws_pivot.shape) != (1, G.num_ws, G.w_dim):
            raise UserInputError(f"the pivot must be [1, {G.num_ws}, {G.w_dim}], got {tuple(ws_pivot.shape)}")
        self.original = G
        self.device = G.mapping.w_avg.device
        self.G = copy.deepcopy(G).eval()
        self.G.requires_grad_(False)
        self.G.synthesis.requires_grad_(True)  # a grown G freezes its old layers for training; PTI tunes all
        self.params = [p for p in self.G.synthesis.parameters()]
        self.optimizer = torch.optim.Adam(self.params, lr=cfg.lr, betas=(0.9, 0.999))
        self.pivot = ws_pivot.detach().to(self.device, torch.float32)
        self.class_idx = class_idx
        self.perceptual = perceptual
        self.target = target.to(self.device, torch.float32)
        with torch.no_grad():
            self.target_features = perceptual.features(self.target)
        self.radius = 0.0
        if cfg.locality_every > 0:
            _, w_std = w_stats(G, class_idx, cfg.w_stats_samples, cfg.seed)
            self.radius = cfg.locality_radius * w_std
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self._start_bookkeeping()

    @torch.no_grad()
    def locality_ws(self) -> torch.Tensor:
        """[n, num_ws, w_dim]: the pivot moved `radius` towards freshly sampled ws of the same class."""
        n = self.cfg.locality_samples
        z = torch.randn([n, self.original.z_dim], generator=self.gen).to(self.device)
        w = self.original.mapping(z, class_input(self.original, self.class_idx, n, self.device))  # [n, num_ws, D]
        direction = w - self.pivot
        direction = direction / direction.norm(dim=2, keepdim=True).clamp_min(1e-8)
        return self.pivot + self.radius * direction

    def preview_ws(self) -> torch.Tensor:
        """The tuned generator is shown at the fixed pivot."""
        return self.pivot

    def step(self) -> StepReport:
        if self.done:
            raise RuntimeError("pivotal tuning has finished all its steps")
        t0 = time.perf_counter()
        cfg = self.cfg
        img = self.G.synthesis(self.pivot)  # [1, 3, R, R]
        mse = (img - self.target).square().mean()
        perceptual = self.perceptual.distance_to(self.target_features, img)[0]
        loss = cfg.l2_weight * mse + cfg.perceptual_weight * perceptual
        losses = {"mse_loss": mse.item(), "perceptual_loss": perceptual.item()}
        if cfg.locality_every > 0 and self.step_index % cfg.locality_every == 0:
            ws_near = self.locality_ws()
            with torch.no_grad():
                before = self.original.synthesis(ws_near)  # what the untouched G draws there
            after = self.G.synthesis(ws_near)
            loc_mse = (after - before).square().mean()
            loc_perc = self.perceptual(after, before).mean()
            loss = loss + cfg.locality_l2_weight * loc_mse + cfg.locality_perceptual_weight * loc_perc
            losses.update(locality_mse=loc_mse.item(), locality_perceptual=loc_perc.item())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=self.params)
        self.optimizer.step()
        self.step_index += 1
        losses["loss"] = loss.item()

        return self._finish_step(losses, t0)

    def result(self, cancelled: bool = False) -> PTIResult:
        self._ensure_final_image()
        self.optimizer.zero_grad(set_to_none=True)  # no stale gradients in the returned copy
        return PTIResult(generator=self.G.requires_grad_(False), ws=self.pivot.clone(), class_idx=self.class_idx,
                         image=self._last_image, metrics=dict(self._last_metrics), history=list(self.history),
                         steps_done=self.step_index, cancelled=cancelled, seconds=self.seconds)


def pivotal_tuning(G: Generator, target: torch.Tensor, ws_pivot: torch.Tensor, class_idx: int | None,
                   perceptual: PerceptualDistance, cfg: PTIConfig | None = None,
                   callback: Callable[[StepReport], None] | None = None, cancel: CancelFlag = None,
                   progress: bool = False) -> PTIResult:
    """Tune a copy of G so that G(ws_pivot) reproduces `target`; `G` itself is left untouched."""
    tuner = PivotalTuner(G, target, ws_pivot, class_idx, perceptual, cfg)
    cancelled = run_steps(tuner, callback, cancel, progress, "pivotal tuning")
    return tuner.result(cancelled)


# ----------------------------------------------------------------------------- files

def save_pti_checkpoint(path: str | Path, result: PTIResult, meta: dict | None = None,
                        class_names: list[str] | None = None) -> Path:
    """The tuned generator + its pivot as one `.sgxl` (tensor group `pivot`: `ws`, `class`)."""
    from core.io.checkpoint import save_checkpoint

    meta = {**(meta or {}), "pti": {"steps": result.steps_done, "class": result.class_idx,
                                    "metrics": result.metrics}}
    cls = torch.tensor([-1 if result.class_idx is None else result.class_idx], dtype=torch.int64)
    return save_checkpoint(path, result.generator, meta, class_names=class_names,
                           extra_tensors={PIVOT_GROUP: {"ws": result.ws.detach().cpu(), "class": cls}})


def load_pti_checkpoint(path: str | Path, device: str | torch.device = "cpu"):
    """(Checkpoint, pivot ws [1, num_ws, w_dim], class index or None) of a checkpoint from `save_pti_checkpoint`."""
    from core.io.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path, device=device)
    group = ckpt.extra_tensors.get(PIVOT_GROUP)
    if not group or "ws" not in group:
        raise CheckpointError(f"{path} holds no PTI pivot (it is a plain checkpoint, not one written by invert)")
    cls = int(group["class"][0]) if "class" in group else -1
    return ckpt, group["ws"].to(device), None if cls < 0 else cls
