"""Perceptual distances for inversion, named by what they really are (docs/PAPER.md "Pretrained networks").

All three follow LPIPS (Zhang et al. 2018): take a few feature maps of a frozen ImageNet network, scale
each feature vector to unit length along channels, square the difference, reduce over channels, average over
space, sum over layers. They differ in network and channel reduction:

* `lpips_vgg16`: VGG16 relu1_2 / relu2_2 / relu3_3 / relu4_3 / relu5_3 with LPIPS's learned non-negative
  per-channel weights. Needs the VGG16 weights (torchvision `vgg16` state dict; `--vgg16` or
  $SGXL_VGG16_WEIGHTS) *and* the LPIPS v0.1 linear weights (`lin0..lin4`, the `lpips` package's
  `weights/v0.1/vgg.pth`; `--lpips` or $SGXL_LPIPS_WEIGHTS). Only this one is LPIPS.
* `vgg16_feature`: the same VGG16 taps with a plain channel sum: LPIPS's unlearned baseline, not LPIPS.
* `effnet_lite0_feature`: the fallback that needs nothing but the bundled EfficientNet-lite0; the 4
  projected-discriminator taps (24 / 40 / 112 / 320 channels) with a channel sum.

Nothing here downloads anything; weight files are read with `weights_only=True` or safetensors (no code runs).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import UserInputError
from core.networks.feature_nets import EfficientNetFeatures

VGG_ENV = "SGXL_VGG16_WEIGHTS"
LPIPS_ENV = "SGXL_LPIPS_WEIGHTS"

# torchvision's `vgg16().features`: 13 convs (3x3, padding 1) each followed by ReLU, "M" = 2x2 max pool.
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
VGG16_TAPS = (3, 8, 15, 22, 29)  # indices into `features` of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
VGG16_CHANNELS = (64, 128, 256, 512, 512)
# LPIPS's input scaling: ImageNet mean / std expressed for inputs in [-1, 1] (2 * mean - 1, 2 * std).
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)


def vgg16_features() -> nn.Sequential:
    """An untrained VGG16 feature stack with torchvision's module indices (so its state dict keys match)."""
    layers: list[nn.Module] = []
    in_ch = 3
    for item in VGG16_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_ch, int(item), 3, padding=1), nn.ReLU(inplace=False)]
            in_ch = int(item)
    return nn.Sequential(*layers)


def _read_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickles with code, truncated files, foreign formats
        raise UserInputError(f"cannot read {what} from {path}: {e}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserInputError(f"{path} does not hold a plain state dict of tensors ({what})")
    return state


def load_vgg16_features(path: str | Path) -> nn.Sequential:
    """VGG16 `features` from a torchvision-style state dict (`features.N.weight`, or `N.weight`)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserInputError(f"VGG16 weights file {path} does not exist (given by --vgg16 or ${VGG_ENV})")
    state = _read_state_dict(path, "VGG16 weights")
    net = vgg16_features()
    wanted = net.state_dict()
    picked = {}
    for key, value in state.items():
        name = key.removeprefix("module.").removeprefix("features.")
        if name in wanted:
            picked[name] = value.float()
    missing = sorted(set(wanted) - set(picked), key=lambda k: int(k.split(".")[0]))
    bad = [k for k in picked if picked[k].shape != wanted[k].shape]
    if missing or bad:
        raise UserInputError(f"{path} is not a torchvision VGG16 state dict (missing {missing[:3]}, "
                             f"wrong shape {bad[:3]})")
    net.load_state_dict(picked)
    return net


def load_lpips_linear(path: str | Path) -> list[torch.Tensor]:
    """The 5 LPIPS v0.1 VGG channel weights [C] (`linK.model.1.weight` [1, C, 1, 1], or `linK.weight`)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserInputError(f"LPIPS weights file {path} does not exist (given by --lpips or ${LPIPS_ENV})")
    state = _read_state_dict(path, "LPIPS linear weights")
    found: dict[int, torch.Tensor] = {}
    for key, value in state.items():
        m = re.fullmatch(r"(?:net\.)?lin(\d)(?:\.model\.\d+)?\.weight", key)
        if m:
            found[int(m.group(1))] = value.float().flatten()
    if sorted(found) != list(range(5)) or [found[i].numel() for i in range(5)] != list(VGG16_CHANNELS):
        raise UserInputError(f"{path} does not hold LPIPS VGG linear weights lin0..lin4 with "
                             f"{'/'.join(map(str, VGG16_CHANNELS))} channels")
    if any(bool((w < 0).any()) for w in found.values()):
        raise UserInputError(f"{path}: LPIPS linear weights must be non-negative")
    return [found[i] for i in range(5)]


def unit_normalize(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Scale each spatial feature vector of [B, C, H, W] to unit length along C (LPIPS's normalisation)."""
    return f / (f.square().sum(dim=1, keepdim=True).sqrt() + eps)


class PerceptualDistance(nn.Module):
    """d(x, y) per image [B] for images in [-1, 1]; frozen, differentiable in the images.

    `name` says which distance this is (see the module docstring); `description` is one sentence for output.
    Use `features(target)` once and `distance_to(target_features, x)` per step to reuse the target's features.
    """

    def __init__(self, name: str, description: str, size: int | None, taps: nn.Module,
                 channel_weights: Sequence[torch.Tensor] | None = None) -> None:
        super().__init__()
        self.name = name
        self.description = description
        self.size = size  # images are resized to size² first (None: as they come)
        self.taps = taps.eval().requires_grad_(False)
        self.weights = None
        if channel_weights is not None:
            self.weights = nn.ParameterList([nn.Parameter(w.view(1, -1, 1, 1), requires_grad=False)
                                             for w in channel_weights])

    def train(self, mode: bool = True) -> PerceptualDistance:
        return super().train(False)  # frozen: BatchNorm statistics never move

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        if self.size is None or x.shape[-1] == self.size:
            return x
        shrink = x.shape[-1] > self.size
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=shrink)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Images [B, 3, H, W] in [-1, 1] -> unit-normalised feature maps, one per tap."""
        return [unit_normalize(f) for f in self.taps(self._resize(x.to(torch.float32)))]

    def distance_to(self, target_features: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """[B] distance between images `x` and precomputed `features(target)` (batch 1 broadcasts)."""
        total = x.new_zeros(x.shape[0])
        for k, (ft, fx) in enumerate(zip(target_features, self.features(x))):
            diff = (fx - ft).square()  # [B, C, h, w]
            diff = (diff * self.weights[k]).sum(dim=1) if self.weights is not None else diff.sum(dim=1)
            total = total + diff.mean(dim=(1, 2))
        return total

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.distance_to(self.features(y), x)


class _VGGTaps(nn.Module):
    """VGG16 features at the 5 LPIPS taps, after LPIPS's input scaling."""

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        self.features = features
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = (x - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features[:VGG16_TAPS[-1] + 1]):
            h = layer(h)
            if i in VGG16_TAPS:
                out.append(h)
        return out


def build_perceptual(vgg16: str | Path | None = None, lpips: str | Path | None = None, size: int | None = None,
                     device: str | torch.device = "cpu", resolution: int | None = None) -> PerceptualDistance:
    """The best perceptual distance the given weights allow: LPIPS, else VGG16 features, else EfficientNet.

    `vgg16` / `lpips` default to $SGXL_VGG16_WEIGHTS / $SGXL_LPIPS_WEIGHTS. `size`: resize images to size²
    before the network (default: EfficientNet 224, its ImageNet size, as the projected discriminator
    does; VGG: native size, shrunk to 256 above it as StyleGAN2's projector does; `resolution` is the
    model's output size, used for that choice).
    """
    vgg16 = vgg16 or os.environ.get(VGG_ENV) or None
    lpips = lpips or os.environ.get(LPIPS_ENV) or None
    if lpips and not vgg16:
        raise UserInputError(f"LPIPS linear weights need VGG16 weights too: pass --vgg16 or set ${VGG_ENV}")
    if vgg16:
        taps = _VGGTaps(load_vgg16_features(vgg16))
        if size is None and resolution is not None and resolution > 256:
            size = 256
        if lpips:
            lin = load_lpips_linear(lpips)
            dist = PerceptualDistance("lpips_vgg16", f"LPIPS (VGG16 from {vgg16}, linear weights from {lpips})",
                                      size, taps, lin)
        else:
            dist = PerceptualDistance(
                "vgg16_feature", f"VGG16 feature distance (LPIPS-style unit-normalised relu1_2..relu5_3, "
                f"unweighted; not LPIPS: no linear weights given, see ${LPIPS_ENV}; VGG16 from {vgg16})", size, taps)
    else:
        dist = PerceptualDistance(
            "effnet_lite0_feature", "EfficientNet-lite0 feature distance (LPIPS-style unit-normalised 4 taps, "
            f"unweighted; not LPIPS: give VGG16 weights with --vgg16 or ${VGG_ENV} for that)",
            size if size is not None else 224, EfficientNetFeatures(device=device, min_size=1))
    return dist.to(device)
