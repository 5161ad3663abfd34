"""Reconstruction quality: PSNR and SSIM in plain torch (scikit-image is only a test dependency).

Both take float images [B, C, H, W] in [0, 1] (or any range given by `data_range`) and return one value per
image [B]. SSIM follows Wang et al. 2004 as scikit-image computes it with `gaussian_weights=True, sigma=1.5,
use_sample_covariance=False`: an 11-tap Gaussian window (sigma 1.5, truncated at 3.5 sigma), K1 = 0.01,
K2 = 0.03, statistics per channel, averaged over the positions where the window fits inside the image (the
border of 5 pixels is left out, as scikit-image crops it) and over channels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

PSNR_CAP_DB = 100.0  # identical images: report this instead of infinity (JSON has no inf)


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image: 10 log10(range² / MSE), capped at 100 dB."""
    _check_pair(a, b)
    mse = (a.double() - b.double()).square().flatten(1).mean(dim=1)  # [B]
    floor = data_range**2 * 10 ** (-PSNR_CAP_DB / 10)
    return (10 * torch.log10(data_range**2 / mse.clamp_min(floor))).to(torch.float32)


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Normalised 1-D Gaussian taps [size], centred (scipy's `gaussian_filter1d` kernel)."""
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, window: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Structural similarity per image [B] (mean SSIM over valid window positions and channels)."""
    _check_pair(a, b)
    if min(a.shape[-2:]) < window:
        raise ValueError(f"SSIM needs images of at least {window}x{window} pixels, got {tuple(a.shape[-2:])}")
    x, y = a.double(), b.double()  # float64: the statistics subtract nearly equal numbers
    channels = x.shape[1]
    g = gaussian_window(window, sigma).to(x.device)
    gh = g.view(1, 1, window, 1).repeat(channels, 1, 1, 1)  # separable: along H, then along W
    gw = g.view(1, 1, 1, window).repeat(channels, 1, 1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:  # 'valid' filtering = scikit-image's reflect filter + crop
        return F.conv2d(F.conv2d(t, gh, groups=channels), gw, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.flatten(1).mean(dim=1).to(torch.float32)


def to_unit_range(img: torch.Tensor) -> torch.Tensor:
    """Generator output [-1, 1] -> [0, 1], clamped (what a saved PNG shows, before 8-bit rounding)."""
    return ((img.detach().to(torch.float32) + 1) / 2).clamp(0, 1)


def image_metrics(img: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """PSNR / SSIM of one generator image [1, 3, H, W] against the target, both in [-1, 1]."""
    x, t = to_unit_range(img), to_unit_range(target)
    return {"psnr": float(psnr(x, t)[0]), "ssim": float(ssim(x, t)[0])}


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"compare images of the same shape [B, C, H, W], got {tuple(a.shape)} and {tuple(b.shape)}")
    if not (math.isfinite(float(a.abs().max())) and math.isfinite(float(b.abs().max()))):
        raise ValueError("images contain NaN or infinity")
