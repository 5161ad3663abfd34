"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to real AND fake images
before the discriminator, so it cannot simply memorize a small training set.

Policy `color,translation,cutout` as in Projected GAN / StyleGAN-XL (translation ratio 0.125,
cutout ratio 0.2). Images are [B, C, H, W] in [-1, 1]; every op is differentiable w.r.t. the image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULT_POLICY = "color,translation,cutout"


def rand_brightness(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    return x + (torch.rand(x.shape[0], 1, 1, 1, device=x.device, generator=gen) - 0.5)


def rand_saturation(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (torch.rand(x.shape[0], 1, 1, 1, device=x.device, generator=gen) * 2) + mean


def rand_contrast(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (torch.rand(x.shape[0], 1, 1, 1, device=x.device, generator=gen) + 0.5) + mean


def rand_translation(x: torch.Tensor, ratio: float = 0.125, gen: torch.Generator | None = None) -> torch.Tensor:
    """Shift each image by up to ratio * size pixels; vacated pixels become 0 (zero padding)."""
    b, _, h, w = x.shape
    max_dy, max_dx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-max_dy, max_dy + 1, [b, 1, 1], device=x.device, generator=gen)
    dx = torch.randint(-max_dx, max_dx + 1, [b, 1, 1], device=x.device, generator=gen)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    # Index into a copy padded by one zero pixel on each side; sources outside the image hit the pad.
    src_y = (rows - dy + 1).clamp(0, h + 1).expand(b, h, w)  # [B, H, W]
    src_x = (cols - dx + 1).clamp(0, w + 1).expand(b, h, w)
    padded = F.pad(x, [1, 1, 1, 1])  # [B, C, H+2, W+2]
    batch_idx = torch.arange(b, device=x.device).view(b, 1, 1).expand(b, h, w)
    return padded.permute(0, 2, 3, 1)[batch_idx, src_y, src_x].permute(0, 3, 1, 2)


def rand_cutout(x: torch.Tensor, ratio: float = 0.2, gen: torch.Generator | None = None) -> torch.Tensor:
    """Zero one random square of side ratio * size per image (it may stick out of the image)."""
    b, _, h, w = x.shape
    size_y, size_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - size_y % 2), [b, 1, 1], device=x.device, generator=gen)
    cx = torch.randint(0, w + (1 - size_x % 2), [b, 1, 1], device=x.device, generator=gen)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = ((rows - cy + size_y // 2) >= 0) & ((rows - cy + size_y // 2) < size_y)
    inside = inside & ((cols - cx + size_x // 2) >= 0) & ((cols - cx + size_x // 2) < size_x)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def diff_augment(x: torch.Tensor, policy: str = DEFAULT_POLICY, translation_ratio: float = 0.125,
                 cutout_ratio: float = 0.2, gen: torch.Generator | None = None) -> torch.Tensor:
    """Apply the comma-separated `policy` ("color", "translation", "cutout") in that order."""
    for name in filter(None, (p.strip() for p in policy.split(","))):
        if name == "color":
            x = rand_contrast(rand_saturation(rand_brightness(x, gen), gen), gen)
        elif name == "translation":
            x = rand_translation(x, translation_ratio, gen)
        elif name == "cutout":
            x = rand_cutout(x, cutout_ratio, gen)
        else:
            raise ValueError(f"unknown DiffAugment op {name!r}; use color, translation, cutout")
    return x.contiguous()
