"""StyleGAN-XL's training objective (paper Sec. 3-4; official `ProjectedGANLoss`).

- Hinge loss: D minimizes relu(1 - D(real)) + relu(1 + D(fake)); G minimizes -D(fake).
- Blur: real and fake images are blurred with a Gaussian whose sigma fades linearly from
  `blur_init_sigma` to 0 over `blur_fade_kimg` (restarting each stage), which keeps D from
  latching on to high frequencies early.
- Classifier guidance (Sec. 4.3): cross-entropy of a pretrained classifier on generated images
  for the requested class, weighted by `cls_weight`.
- Optional style mixing regularization (probability `style_mixing_prob`; StyleGAN-XL uses 0).
- Path-length regularization (StyleGAN2 Sec. 3.2) on the stem only, from `pl_start_kimg` on, lazily
  every `pl_interval` steps (StyleGAN-XL: weight 2, after 1M images, every 4 steps).
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
    blur_fade_kimg: float = 300.0
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


def out_of_range_penalty(img: torch.Tensor) -> torch.Tensor:
    """mean((|x| - 1)_+^2): zero for images inside [-1, 1]."""
    return (img.abs() - 1).clamp(min=0).square().mean()


def blur_sigma(cfg: LossConfig, stage_nimg: int) -> float:
    """sigma = init * max(1 - nimg / fade, 0), with nimg counted from the start of the current stage."""
    if cfg.blur_fade_kimg <= 0:
        return 0.0
    return cfg.blur_init_sigma * max(1.0 - stage_nimg / (cfg.blur_fade_kimg * 1e3), 0.0)


def gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [B, C, H, W], same size; identity when the kernel is one tap."""
    radius = int(math.floor(sigma * 3))
    if radius <= 0:
        return img
    taps = torch.arange(-radius, radius + 1, device=img.device, dtype=torch.float32)
    f = (-(taps / sigma).square() / 2).exp()
    return kernels.upfirdn2d(img, f / f.sum(), padding=radius)


class ClassifierGuidance(nn.Module):
    """Cross-entropy of a frozen ImageNet classifier on generated images (Sec. 4.3).

    `classifier` maps images in [-1, 1] to ImageNet logits (it handles its own resizing and
    normalization). For datasets whose classes are not ImageNet's, `class_map[c]` gives the
    ImageNet class that stands for dataset class c; without it guidance cannot be used.
    """

    def __init__(self, classifier: nn.Module, class_map: list[int] | None = None) -> None:
        super().__init__()
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
        return F.cross_entropy(self.classifier(img), target)


class ProjectedGANLoss:
    def __init__(self, G: Generator, D: ProjectedDiscriminator, cfg: LossConfig,
                 guidance: ClassifierGuidance | None = None) -> None:
        if cfg.cls_weight > 0 and guidance is None:
            raise ValueError("cls_weight > 0 needs a classifier (ClassifierGuidance)")
        self.G, self.D, self.cfg, self.guidance = G, D, cfg, guidance

    def run_G(self, z: torch.Tensor, c_weights: torch.Tensor | None, update_emas: bool = False) -> torch.Tensor:
        ws = self.G.mapping(z, c_weights, update_emas=update_emas)
        if self.cfg.style_mixing_prob > 0:
            cutoff = int(torch.randint(1, ws.shape[1], []))
            if float(torch.rand([])) < self.cfg.style_mixing_prob:
                ws[:, cutoff:] = self.G.mapping(torch.randn_like(z), c_weights)[:, cutoff:]
        return self.G.synthesis(ws, update_emas=update_emas)

    def run_D(self, img: torch.Tensor, c_weights: torch.Tensor | None, sigma: float) -> torch.Tensor:
        return self.D(gaussian_blur(img, sigma), c_weights)

    def generator_loss(self, z: torch.Tensor, c_weights: torch.Tensor | None, stage_nimg: int
                       ) -> tuple[torch.Tensor, dict[str, float]]:
        sigma = blur_sigma(self.cfg, stage_nimg)
        img = self.run_G(z, c_weights)
        logits = self.run_D(img, c_weights, sigma)
        loss = (-logits).mean()
        stats = {"G_adv": float(loss.detach()), "blur_sigma": sigma}
        if self.cfg.range_weight > 0:
            excess = out_of_range_penalty(img)
            loss = loss + self.cfg.range_weight * excess
            stats["G_range"] = float(excess.detach())
        if self.cfg.cls_weight > 0:
            cls = self.guidance(img, c_weights)
            loss = loss + self.cfg.cls_weight * cls
            stats["G_cls"] = float(cls.detach())
        stats["G_loss"] = float(loss.detach())
        return loss, stats

    def path_length_loss(self, z: torch.Tensor, c_weights: torch.Tensor | None, pl_mean: float
                         ) -> tuple[torch.Tensor, float, dict[str, float]]:
        """Penalty on the deviation of |J^T y| (y random image-space noise) from its running mean.

        Returns (loss already multiplied by weight and interval, the new pl_mean, stats).
        """
        n = max(z.shape[0] // self.cfg.pl_batch_shrink, 1)
        c = c_weights[:n] if c_weights is not None else None
        ws = self.G.mapping(z[:n], c)
        img = self.G.synthesis(ws)
        noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        (grads,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
        lengths = grads.square().sum(2).mean(1).sqrt()  # [n]
        new_mean = pl_mean + self.cfg.pl_decay * (float(lengths.detach().mean()) - pl_mean)
        penalty = (lengths - new_mean).square().mean()
        loss = penalty * self.cfg.pl_weight * self.cfg.pl_interval
        return loss, new_mean, {"G_pl_penalty": float(penalty.detach()), "pl_mean": new_mean}

    def discriminator_loss(self, real: torch.Tensor, real_c: torch.Tensor | None, z: torch.Tensor,
                           gen_c: torch.Tensor | None, stage_nimg: int) -> tuple[torch.Tensor, dict[str, float]]:
        sigma = blur_sigma(self.cfg, stage_nimg)
        with torch.no_grad():
            fake = self.run_G(z, gen_c, update_emas=True)
        fake_logits = self.run_D(fake, gen_c, sigma)
        real_logits = self.run_D(real, real_c, sigma)
        loss_fake = F.relu(1 + fake_logits).mean()
        loss_real = F.relu(1 - real_logits).mean()
        loss = loss_fake + loss_real
        stats = {"D_fake": loss_fake, "D_real": loss_real, "D_loss": loss,
                 "logits_real": real_logits.mean(), "logits_fake": fake_logits.mean()}
        return loss, {k: float(v.detach()) for k, v in stats.items()}
