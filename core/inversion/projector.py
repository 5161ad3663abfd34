"""Projection of a photo into W (or W+): optimise w so that G.synthesis(w) looks like the photo.

The recipe of StyleGAN2's projector (Karras et al. 2020, Appendix D) as StyleGAN-XL's inversion uses it,
with StyleGAN-XL's class handling:

* start at the class's `w_avg` (the per-class truncation centre the mapping tracks), so the search begins at
  the most typical image of that class; the spread `w_std` (RMS distance of a sampled w from the class
  mean, from `w_stats_samples` mapping samples) sets the noise scale;
* Adam (betas 0.9 / 0.999) on w with a learning rate that ramps up over the first 5 % of the steps and
  down along a cosine over the last 25 %;
* during the first 75 % of the steps, Gaussian noise of std `w_std * 0.05 * (1 - t / 0.75)²` is added to w
  before synthesis (explores early, settles late); there are no per-pixel noise inputs in StyleGAN3 / XL,
  so StyleGAN2's noise regulariser has nothing to act on;
* loss = perceptual distance (see `perceptual.py`, LPIPS only with LPIPS weights) + pixel MSE.

`Projector` runs one step per `step()` (or per iteration), so a GUI can drive it, show every image and
stop at any time; `project()` is the blocking wrapper with a per-step callback and a cancel flag.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from core.errors import UserInputError
from core.inversion.perceptual import PerceptualDistance
from core.inversion.quality import image_metrics
from core.networks.generator import Generator
from core.sampling import class_input


@dataclass
class ProjectorConfig:
    steps: int = 1000
    w_plus: bool = False  # optimise one w per synthesis layer (W+) instead of one shared w
    lr: float = 0.1
    lr_rampup: float = 0.05  # fraction of the steps
    lr_rampdown: float = 0.25  # fraction of the steps (cosine)
    noise_factor: float = 0.05  # initial w noise, in units of w_std
    noise_ramp: float = 0.75  # fraction of the steps with w noise
    perceptual_weight: float = 1.0
    mse_weight: float = 1.0  # pixel MSE on [-1, 1] images
    w_stats_samples: int = 10000
    start: str = "w_avg"  # "w_avg": the class's tracked w_avg; "sample_mean": mean of the w_stats samples
    preview_every: int = 1  # render the noise-free w (image + PSNR / SSIM / perceptual) every N steps
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class StepReport:
    """One optimisation step, as a progress callback or a GUI sees it."""

    phase: str  # "projection" or "pti"
    step: int  # 1-based
    total: int
    losses: dict[str, float]  # loss terms of this step (+ psnr / ssim / perceptual of `image` on preview steps)
    image: torch.Tensor | None = None  # [1, 3, H, W] in [-1, 1], detached, on the CPU; None between previews


class StepwiseOptimization:
    """Bookkeeping shared by the projector and PTI: a preview every `cfg.preview_every` steps, history, time.

    Subclasses set `phase`, `cfg` (with `steps`, `preview_every`), `G`, `target`, `perceptual`,
    `target_features`, call `_start_bookkeeping()`, and implement `preview_ws()` (the latent whose image
    the preview shows) and `step()`.
    """

    phase = ""

    def _start_bookkeeping(self) -> None:
        self.step_index = 0  # steps done
        self.history: list[dict] = []
        self.seconds = 0.0
        self._last_image: torch.Tensor | None = None
        self._last_metrics: dict[str, float] = {}

    @property
    def done(self) -> bool:
        return self.step_index >= self.cfg.steps

    @torch.no_grad()
    def render(self) -> tuple[torch.Tensor, dict[str, float]]:
        """The current noise-free image [1, 3, R, R] (CPU) and its psnr / ssim / perceptual vs the target."""
        img = self.G.synthesis(self.preview_ws())
        metrics = image_metrics(img, self.target)
        metrics["perceptual"] = float(self.perceptual.distance_to(self.target_features, img)[0])
        return img.cpu(), metrics

    def _finish_step(self, losses: dict, started: float) -> StepReport:
        image = None
        if self.step_index % max(self.cfg.preview_every, 1) == 0 or self.done:
            image, self._last_metrics = self.render()
            self._last_image = image
            losses.update(self._last_metrics)
        self.history.append({"step": self.step_index, **losses})
        self.seconds += time.perf_counter() - started
        return StepReport(self.phase, self.step_index, self.cfg.steps, losses, image)

    def _ensure_final_image(self) -> None:
        """The result's image and metrics belong to the last step even if it was not a preview step."""
        if self._last_image is None or not self.history or "psnr" not in self.history[-1]:
            self._last_image, self._last_metrics = self.render()

    def __iter__(self) -> Iterator[StepReport]:
        while not self.done:
            yield self.step()


@dataclass
class ProjectionResult:
    ws: torch.Tensor  # [1, num_ws, w_dim], the projected latent (detached)
    class_idx: int | None
    image: torch.Tensor  # [1, 3, H, W] G.synthesis(ws) in [-1, 1], on the CPU
    metrics: dict[str, float]  # psnr / ssim / perceptual of `image`
    history: list[dict] = field(default_factory=list)  # one row per step
    steps_done: int = 0
    cancelled: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


CancelFlag = threading.Event | Callable[[], bool] | None


def is_cancelled(cancel: CancelFlag) -> bool:
    if cancel is None:
        return False
    return cancel.is_set() if isinstance(cancel, threading.Event) else bool(cancel())


# ----------------------------------------------------------------------------- class and w statistics

@dataclass
class ClassChoice:
    index: int | None  # None for an unconditional model
    source: str  # "given", "predicted", "default" or "unconditional"
    note: str = ""
    top5: list[tuple[int, str, float]] = field(default_factory=list)  # classifier guesses (ImageNet models)


def choose_class(G: Generator, photo: torch.Tensor, class_idx: int | None = None,
                 classifier: torch.nn.Module | None = None) -> ClassChoice:
    """The class to invert in: given; else the EfficientNet-lite0 guess for 1000-class models; else class 0.

    `photo`: [1, 3, H, W] in [-1, 1]; give it at 256² or more (not a small model's target) for a good guess.
    """
    if G.c_dim == 0:
        return ClassChoice(None, "unconditional", "the model is unconditional" if class_idx is not None else "")
    if class_idx is not None:
        if not 0 <= class_idx < G.c_dim:
            raise UserInputError(f"class {class_idx} is out of range: this model has classes 0..{G.c_dim - 1}")
        return ClassChoice(int(class_idx), "given")
    if G.c_dim == 1000:  # an ImageNet model: its class indices are ImageNet's
        if classifier is None:
            from core.networks.feature_nets import ImageNetClassifier

            classifier = ImageNetClassifier(device=photo.device)
        top = classifier.classify(photo, k=5)[0]
        return ClassChoice(top[0].index, "predicted",
                           f"class predicted by EfficientNet-lite0: {top[0].name} (p={top[0].prob:.2f})",
                           [(p.index, p.name, round(p.prob, 4)) for p in top])
    return ClassChoice(0, "default", f"no class given and this {G.c_dim}-class model is not an ImageNet model: "
                                     "using class 0 (pass --class to choose)")


@torch.no_grad()
def w_stats(G: Generator, class_idx: int | None, samples: int = 10000, seed: int = 0,
            batch: int = 4096) -> tuple[torch.Tensor, float]:
    """(mean w [w_dim], w_std) of `samples` mapped z in class `class_idx`; w_std = RMS distance to the mean."""
    device = G.mapping.w_avg.device
    gen = torch.Generator().manual_seed(seed)
    ws = []
    for start in range(0, samples, batch):
        n = min(batch, samples - start)
        z = torch.randn([n, G.z_dim], generator=gen).to(device)
        ws.append(G.mapping(z, class_input(G, class_idx, n, device))[:, 0])  # [n, w_dim]
    w = torch.cat(ws).double()
    mean = w.mean(dim=0)
    std = float((w - mean).square().sum(dim=1).mean().sqrt())
    return mean.float(), std


def class_w_avg(G: Generator, class_idx: int | None) -> torch.Tensor:
    """The mapping's tracked truncation centre of the class: [w_dim] (StyleGAN2/3: the one w_avg)."""
    return G.mapping.mean_w(class_idx).clone()


def learning_rate(cfg: ProjectorConfig, step: int) -> float:
    """StyleGAN2's schedule at 0-based `step`: linear ramp-up, cosine ramp-down."""
    t = step / cfg.steps
    ramp = min(1.0, (1.0 - t) / cfg.lr_rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    ramp = ramp * min(1.0, t / cfg.lr_rampup) if cfg.lr_rampup > 0 else ramp
    return cfg.lr * ramp


def noise_scale(cfg: ProjectorConfig, step: int, w_std: float) -> float:
    t = step / cfg.steps
    return w_std * cfg.noise_factor * max(0.0, 1.0 - t / cfg.noise_ramp) ** 2 if cfg.noise_ramp > 0 else 0.0


# ----------------------------------------------------------------------------- the step-wise projector

class Projector(StepwiseOptimization):
    """Optimise w for `target` step by step: `for report in Projector(...)` or `report = projector.step()`.

    `target`: [1, 3, R, R] in [-1, 1] at the generator's resolution (see `photo.load_photo`). G is used
    read-only: its parameters get no gradients and nothing in it changes.
    """

    phase = "projection"

    def __init__(self, G: Generator, target: torch.Tensor, class_idx: int | None, perceptual: PerceptualDistance,
                 cfg: ProjectorConfig | None = None) -> None:
        self.cfg = cfg = cfg or ProjectorConfig()
        if cfg.steps < 1:
            raise UserInputError("the number of projection steps must be at least 1")
        if cfg.start not in ("w_avg", "sample_mean"):
            raise UserInputError(f"unknown projection start {cfg.start!r}; use w_avg or sample_mean")
        res = G.img_resolution
        if tuple(target.shape) != (1, G.img_channels, res, res):
            raise UserInputError(f"the target must be [1, {G.img_channels}, {res}, {res}], got {tuple(target.shape)}")
        self.G = G
        self.device = G.mapping.w_avg.device
        self.class_idx = class_idx
        self.perceptual = perceptual
        self.target = target.to(self.device, torch.float32)
        with torch.no_grad():
            self.target_features = perceptual.features(self.target)
        self.sample_mean, self.w_std = w_stats(G, class_idx, cfg.w_stats_samples, cfg.seed)
        self.notes: list[str] = []
        start = class_w_avg(G, class_idx) if cfg.start == "w_avg" else self.sample_mean.to(self.device)
        if cfg.start == "w_avg" and not bool(start.abs().gt(0).any()):  # an untrained G never tracked its w_avg
            start = self.sample_mean.to(self.device)
            self.notes.append("the model's w_avg is all zeros (never trained): starting from the mean of "
                              f"{cfg.w_stats_samples} sampled ws instead")
        self.w_start = start.to(self.device)
        count = G.num_ws if cfg.w_plus else 1
        self.w = self.w_start.view(1, 1, -1).repeat(1, count, 1).requires_grad_(True)  # [1, 1 or num_ws, w_dim]
        self.optimizer = torch.optim.Adam([self.w], lr=cfg.lr, betas=(0.9, 0.999))
        self.noise_gen = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self._start_bookkeeping()

    def current_ws(self) -> torch.Tensor:
        """[1, num_ws, w_dim] of the current (noise-free) w, detached."""
        return self.w.detach().expand(1, self.G.num_ws, -1).clone()

    def preview_ws(self) -> torch.Tensor:
        return self.current_ws()

    def step(self) -> StepReport:
        """Run one optimisation step."""
        if self.done:
            raise RuntimeError("the projection has finished all its steps")
        t0 = time.perf_counter()
        cfg, i = self.cfg, self.step_index
        lr = learning_rate(cfg, i)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        sigma = noise_scale(cfg, i, self.w_std)
        noise = torch.randn(self.w.shape, generator=self.noise_gen, device=self.device) * sigma
        ws = (self.w + noise).expand(1, self.G.num_ws, -1)  # [1, num_ws, w_dim]
        img = self.G.synthesis(ws)  # [1, 3, R, R]
        perceptual = self.perceptual.distance_to(self.target_features, img)[0]
        mse = (img - self.target).square().mean()
        loss = cfg.perceptual_weight * perceptual + cfg.mse_weight * mse
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=[self.w])  # gradients for w only: G's parameters stay untouched
        self.optimizer.step()
        self.step_index += 1

        losses = {"loss": loss.item(), "perceptual_loss": perceptual.item(), "mse_loss": mse.item(),
                  "lr": lr, "w_noise": sigma}
        return self._finish_step(losses, t0)

    def result(self, cancelled: bool = False) -> ProjectionResult:
        """The projection so far (call any time; a GUI may stop early)."""
        self._ensure_final_image()
        return ProjectionResult(ws=self.current_ws(), class_idx=self.class_idx, image=self._last_image,
                                metrics=dict(self._last_metrics), history=list(self.history),
                                steps_done=self.step_index, cancelled=cancelled, seconds=self.seconds,
                                notes=list(self.notes))


def run_steps(stepper: Projector | object, callback: Callable[[StepReport], None] | None, cancel: CancelFlag,
              progress: bool, desc: str) -> bool:
    """Drive a step-wise optimiser to its end; returns True when `cancel` stopped it early."""
    from tqdm import tqdm

    bar = tqdm(total=stepper.cfg.steps, desc=desc, unit="step", disable=not progress, leave=True)
    try:
        for report in stepper:
            bar.update(1)
            if "psnr" in report.losses:
                bar.set_postfix(psnr=f"{report.losses['psnr']:.2f}", loss=f"{report.losses['loss']:.4f}")
            if callback is not None:
                callback(report)
            if is_cancelled(cancel):
                return True
    finally:
        bar.close()
    return False


def project(G: Generator, target: torch.Tensor, class_idx: int | None, perceptual: PerceptualDistance,
            cfg: ProjectorConfig | None = None, callback: Callable[[StepReport], None] | None = None,
            cancel: CancelFlag = None, progress: bool = False) -> ProjectionResult:
    """Project `target` ([1, 3, R, R] in [-1, 1]) into G's W (or W+) space of class `class_idx`.

    `callback(report)` runs after every step; setting `cancel` (an Event or a callable returning True) stops
    after the current step and returns the projection so far with `cancelled=True`.
    """
    projector = Projector(G, target, class_idx, perceptual, cfg)
    cancelled = run_steps(projector, callback, cancel, progress, "projecting")
    return projector.result(cancelled)


def history_array(history: list[dict], key: str) -> np.ndarray:
    """One column of a step history (NaN where a step has no such value)."""
    return np.array([row.get(key, np.nan) for row in history], dtype=np.float64)
