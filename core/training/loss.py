"""StyleGAN-XL's training objective (paper Sec. 3-4; official `ProjectedGANLoss`).

- Hinge loss: D minimizes relu(1 - D(real)) + relu(1 + D(fake)); G minimizes -D(fake).
- Scale, as officially: every adversarial term is a *sum over images* of the per-image mean over that
  feature network's logits, added over feature networks (batch x mean, not the mean). Classifier guidance
  is `cls_weight` x the batch-mean cross-entropy. So per forward pass of b images the G loss is
  b * mean(-D(fake)) + cls_weight * CE; with gradient accumulation the passes add up (the official
  loop sums them; processes average), so `cls_weight` means exactly what it means officially, including
  its dependence on the per-pass batch (`--batch-gpu`). Logged values are per image.
- Blur: real and fake images are blurred with the official kernel exp2(-(t / sigma)^2) (a Gaussian of std
  sigma / sqrt(2 ln 2) = 0.85 sigma), radius floor(3 sigma), sigma = 2 * max(1 - nimg / 300k, 0), nimg counted
  from the start of the current stage (an official superres stage is a new run whose image count starts at 0).
- Classifier guidance (Sec. 4.3): cross-entropy of a pretrained classifier on generated images
  for the requested class, weighted by `cls_weight` (see above for the scale).
- Optional style mixing regularization (probability `style_mixing_prob`; StyleGAN-XL uses 0).
- Path-length regularization (StyleGAN2 Sec. 3.2) on the stem only, from `pl_start_kimg` on, lazily
  every `pl_interval` steps as its own optimizer step (StyleGAN-XL: weight 2, after 1M images, every 4 steps;
  its loss is not multiplied by the interval, unlike StyleGAN2's).

`update_emas` (official semantics): the D phase runs G with update_emas=True, which moves only the mapping's
per-class `w_avg` (the truncation centre). The synthesis layers' `magnitude_ema` buffers are never updated
("enabling emas leads to collapse with PG" in the official loss): they stay 1.0 for the whole run.
`update_synthesis_emas=True` brings back the StyleGAN3 behaviour (D phase updates them), for A/B runs only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import kernels
from core.networks.discriminator import ProjectedDiscriminator
from core.networks.generator import Generator


@dataclass
class LossConfig:
    blur_init_sigma: float = 2.0
    blur_fade_kimg: float = 300.0  # <= 0: no blur
    cls_weight: float = 0.0  # classifier guidance weight; 0 = off
    class_map: list[int] | None = None  # ImageNet class index per dataset class (guidance on other datasets)
    style_mixing_prob: float = 0.0
    pl_weight: float = 2.0  # path-length regularization (stem only; growth stages skip it)
    pl_start_kimg: float = 1000.0
    pl_interval: int = 4
    pl_decay: float = 0.01
    pl_batch_shrink: int = 2
    # Not in the paper: a penalty on generated pixels outside [-1, 1] (mean squared excess). The frozen
    # feature network's ReLU6 units saturate on far-out pixels, so D gives them no gradient and a new
    # growth-stage head can drift to values like -30 and stay there (seen on the demo's 64² stage).
    range_weight: float = 0.0
    # Not official: update the synthesis magnitude EMAs in the D phase (StyleGAN3's default; made the
    # demo's buffers drift to 0.38-6.3). Only for A/B comparisons with the official behaviour (False).
    update_synthesis_emas: bool = False


def out_of_range_penalty(img: torch.Tensor) -> torch.Tensor:
    """mean((|x| - 1)_+^2): zero for images inside [-1, 1]."""
    return (img.abs() - 1).clamp(min=0).square().mean()


def blur_sigma(cfg: LossConfig, stage_nimg: int) -> float:
    """sigma = init * max(1 - nimg / fade, 0), with nimg counted from the start of the current stage."""
    if cfg.blur_fade_kimg <= 0:
        return 0.0
    return cfg.blur_init_sigma * max(1.0 - stage_nimg / (cfg.blur_fade_kimg * 1e3), 0.0)


def blur_kernel(sigma: float) -> torch.Tensor | None:
    """Official 1-D blur taps exp2(-(t / sigma)^2), t = -r..r, r = floor(3 sigma), summing to 1; None if r = 0."""
    radius = int(math.floor(sigma * 3))
    if radius <= 0:
        return None
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    f = (taps / sigma).square().neg().exp2()
    return f / f.sum()


def gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable blur of [B, C, H, W] with `blur_kernel(sigma)` (same size, zero padding); identity for 1 tap."""
    f = blur_kernel(sigma)
    if f is None:
        return img
    return kernels.upfirdn2d(img, f.to(img.device), padding=f.numel() // 2)


def per_image_sum(logits: list[torch.Tensor], fn) -> torch.Tensor:
    """sum over feature networks and images of the per-image mean of fn(logits): the official loss scale."""
    return sum(fn(lg).mean(dim=1).sum() for lg in logits)


class ClassifierGuidance(nn.Module):
    """Cross-entropy of a frozen ImageNet classifier on generated images (Sec. 4.3).

    `classifier` maps images in [-1, 1] to ImageNet logits (it handles its own normalization); with
    `resize` the whole image is first resized to `resize`² (bilinear), as the official guidance does
    (`Interpolate(224)` before the classifier: no crop). For datasets whose classes are not ImageNet's,
    `class_map[c]` gives the ImageNet class that stands for dataset class c; without it guidance cannot be used.
    """

    def __init__(self, classifier: nn.Module, class_map: list[int] | None = None, resize: int | None = None) -> None:
        super().__init__()
        self.resize = resize
        self.classifier = classifier.eval().requires_grad_(False)
        self.register_buffer("class_map", torch.tensor(class_map, dtype=torch.long) if class_map else None)

    def train(self, mode: bool = True) -> ClassifierGuidance:
        super().train(mode)
        self.classifier.eval()
        return self

    def forward(self, img: torch.Tensor, c_weights: torch.Tensor) -> torch.Tensor:
        target = c_weights.argmax(dim=1)
        if self.class_map is not None:
            target = self.class_map[target]
        if self.resize is not None and img.shape[-2:] != (self.resize, self.resize):
            img = F.interpolate(img, size=(self.resize, self.resize), mode="bilinear", align_corners=False)
        return F.cross_entropy(self.classifier(img), target)  # mean over the batch


class ProjectedGANLoss:
    def __init__(self, G: Generator, D: ProjectedDiscriminator, cfg: LossConfig,
                 guidance: ClassifierGuidance | None = None) -> None:
        if cfg.cls_weight > 0 and guidance is None:
            raise ValueError("cls_weight > 0 needs a classifier (ClassifierGuidance)")
        self.G, self.D, self.cfg, self.guidance = G, D, cfg, guidance

    def run_G(self, z: torch.Tensor, c_weights: torch.Tensor | None, update_emas: bool = False) -> torch.Tensor:
        """update_emas moves the mapping's w_avg only; the synthesis EMAs stay (see the module doc)."""
        ws = self.G.mapping(z, c_weights, update_emas=update_emas)
        if self.cfg.style_mixing_prob > 0:
            cutoff = int(torch.randint(1, ws.shape[1], []))
            if float(torch.rand([])) < self.cfg.style_mixing_prob:
                ws[:, cutoff:] = self.G.mapping(torch.randn_like(z), c_weights)[:, cutoff:]
        return self.G.synthesis(ws, update_emas=update_emas and self.cfg.update_synthesis_emas)

    def run_D(self, img: torch.Tensor, c_weights: torch.Tensor | None, sigma: float) -> list[torch.Tensor]:
        """Logits per feature network, each [B, N_net]."""
        return self.D.forward_per_network(gaussian_blur(img, sigma), c_weights)

    def generator_loss(self, z: torch.Tensor, c_weights: torch.Tensor | None, stage_nimg: int
                       ) -> tuple[torch.Tensor, dict[str, float]]:
        """The G loss of one pass, at the official scale (sum over images; see the module doc); stats per image."""
        sigma = blur_sigma(self.cfg, stage_nimg)
        batch = z.shape[0]
        img = self.run_G(z, c_weights)
        logits = self.run_D(img, c_weights, sigma)
        loss = per_image_sum(logits, torch.neg)
        stats = {"G_adv": float(loss.detach()) / batch, "blur_sigma": sigma}
        if self.cfg.range_weight > 0:
            # Per image, like the adversarial term, so its weight relative to it does not depend on the batch.
            excess = out_of_range_penalty(img)
            loss = loss + self.cfg.range_weight * excess * batch
            stats["G_range"] = float(excess.detach())
        if self.cfg.cls_weight > 0:
            cls = self.guidance(img, c_weights)
            loss = loss + self.cfg.cls_weight * cls
            stats["G_cls"] = float(cls.detach())
        stats["G_loss"] = float(loss.detach()) / batch
        return loss, stats

    def path_length_loss(self, z: torch.Tensor, c_weights: torch.Tensor | None, pl_mean: float
                         ) -> tuple[torch.Tensor, float, dict[str, float]]:
        """Penalty on the deviation of |J^T y| (y random image-space noise) from its running mean.

        Returns (mean penalty x weight, the new pl_mean, stats). As officially for StyleGAN-XL, the loss is
        not multiplied by the lazy interval; the trainer takes its own optimizer step on it.
        """
        n = max(z.shape[0] // self.cfg.pl_batch_shrink, 1)
        c = c_weights[:n] if c_weights is not None else None
        ws = self.G.mapping(z[:n], c)
        img = self.G.synthesis(ws)
        noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        (grads,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
        lengths = grads.square().sum(2).mean(1).sqrt()  # [n]
        # As officially, the updated mean is not detached inside the penalty (its gradient is x pl_decay).
        new_mean = pl_mean + self.cfg.pl_decay * (lengths.mean() - pl_mean)
        penalty = (lengths - new_mean).square().mean()
        loss = penalty * self.cfg.pl_weight
        mean = float(new_mean.detach())
        return loss, mean, {"G_pl_penalty": float(penalty.detach()), "pl_mean": mean}

    def discriminator_loss(self, real: torch.Tensor, real_c: torch.Tensor | None, z: torch.Tensor,
                           gen_c: torch.Tensor | None, stage_nimg: int) -> tuple[torch.Tensor, dict[str, float]]:
        """The D loss of one pass, at the official scale (sum over images); stats per image."""
        sigma = blur_sigma(self.cfg, stage_nimg)
        with torch.no_grad():
            fake = self.run_G(z, gen_c, update_emas=True)
        fake_logits = self.run_D(fake, gen_c, sigma)
        real_logits = self.run_D(real, real_c, sigma)
        loss_fake = per_image_sum(fake_logits, lambda x: F.relu(1 + x))
        loss_real = per_image_sum(real_logits, lambda x: F.relu(1 - x))
        loss = loss_fake + loss_real
        n_fake, n_real = z.shape[0], real.shape[0]
        stats = {"D_fake": loss_fake / n_fake, "D_real": loss_real / n_real,
                 "D_loss": loss_fake / n_fake + loss_real / n_real,
                 "logits_real": torch.cat(real_logits, 1).mean(), "logits_fake": torch.cat(fake_logits, 1).mean()}
        return loss, {k: float(v.detach()) for k, v in stats.items()}
