"""The projected discriminator of StyleGAN-XL (Projected GAN, Sauer et al. 2021; paper Sec. 3-4).

Images are augmented (DiffAugment), resized to the feature network's input, and passed through a
*frozen* pretrained feature network (EfficientNet-lite0; DeiT when available). Its 4 feature maps
are randomly projected and never trained:
  - CCM (cross-channel mixing): a random 1x1 conv per scale, 24/40/112/320 -> 64/128/256/512 ch.
  - CSM (cross-scale mixing): top-down fusion, each step adds the coarser mix to the current scale,
    upsamples x2 (bilinear) and applies a random 1x1 conv -> 64/64/128/256 ch.
One small discriminator per scale (spectral-norm DownBlocks to 8x8, then a 4x4 conv) reads each
mixed map; it is class-conditional by projection onto an embedding of the class (Miyato 2018). As
officially, that embedding is a trainable `Embedding(c_dim, 320)` initialised from the pretrained
ImageNet class table (rows 0..c_dim-1; see core/training/class_embeddings.py), followed by an
equalized-lr FC 320 -> 64 with leaky ReLU (gain sqrt(2)).
All logits of all scales and feature networks are concatenated: [B, N].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from core.networks.layers import FullyConnectedLayer
from core.training.augment import DEFAULT_POLICY, diff_augment


class FeatureNetwork(Protocol):
    """A frozen multi-scale feature extractor (see core/networks/feature_nets.py)."""

    channels: list[int]  # channels of the 4 taps

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:  # x in [-1, 1] -> 4 maps, strides 4/8/16/32
        ...


@dataclass
class DiscriminatorConfig:
    c_dim: int = 0
    ccm_channels: int = 64  # CCM widths are 64 * 2^scale
    cmap_dim: int = 64  # width of the conditional projection
    embed_dim: int = 320  # class-embedding width (the ImageNet table's; official)
    class_embedding: str = "random"  # where the embedding rows came from (official / lite0-classifier / random)
    augment_policy: str = DEFAULT_POLICY
    translation_ratio: float = 0.125
    cutout_ratio: float = 0.2
    input_size: int = 224  # images are resized to this before the feature network (below it, or for ViTs)
    projection_seed: int = 0  # the random projections are fixed by this seed


class RandomProjection(nn.Module):
    """CCM + CSM: fixed random 1x1 convs mixing channels, then top-down mixing of scales."""

    def __init__(self, in_channels: list[int], base: int, seed: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        ccm_out = [base * 2**i for i in range(len(in_channels))]  # 64, 128, 256, 512
        self.ccm = nn.ModuleList(_random_conv1x1(c_in, c_out, gen) for c_in, c_out in zip(in_channels, ccm_out))
        # CSM step i maps the (fused) scale-i features to the width of the next-finer CCM output.
        csm_out = [base] + ccm_out[:-1]  # 64, 64, 128, 256
        self.csm = nn.ModuleList(_random_conv1x1(c_in, c_out, gen) for c_in, c_out in zip(ccm_out, csm_out))
        self.out_channels = csm_out
        self.requires_grad_(False)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        mixed = [ccm(f) for ccm, f in zip(self.ccm, feats)]
        out: list[torch.Tensor] = [None] * len(mixed)  # type: ignore[list-item]
        carry = None
        for i in reversed(range(len(mixed))):  # coarsest first
            x = mixed[i] if carry is None else mixed[i] + carry
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
            out[i] = carry = self.csm[i](x)
        return out  # strides 2/4/8/16 of the feature network's input


def _random_conv1x1(c_in: int, c_out: int, gen: torch.Generator) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, kernel_size=1, bias=True)
    bound = 1 / math.sqrt(c_in)  # PyTorch's default Conv2d init scale, drawn from our own generator
    with torch.no_grad():
        conv.weight.uniform_(-bound, bound, generator=gen)
        conv.bias.uniform_(-bound, bound, generator=gen)
    return conv


# Channel width of a mini-discriminator block by its nominal spatial size (Projected GAN).
_WIDTHS = {4: 512, 8: 512, 16: 256, 32: 128, 64: 64, 128: 64, 256: 32, 512: 16, 1024: 8}


def _nominal_size(size: int) -> int:
    keys = np.array(list(_WIDTHS))
    return int(keys[np.argmin(np.abs(keys - size))])


class DownBlock(nn.Sequential):
    """Spectral-norm 4x4 stride-2 conv (with bias, as officially), BatchNorm (batch statistics), LeakyReLU 0.2."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(spectral_norm(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=True)), nn.BatchNorm2d(c_out),
                         nn.LeakyReLU(0.2))


class ScaleDiscriminator(nn.Module):
    """DownBlocks from the feature map's size to 8x8, then a 4x4 conv to `cmap_dim` (or 1) channels."""

    def __init__(self, c_in: int, size: int, cfg: DiscriminatorConfig, class_rows: torch.Tensor | None = None) -> None:
        super().__init__()
        nominal = _nominal_size(size)
        widths = dict(_WIDTHS)
        widths[nominal] = c_in
        blocks: list[nn.Module] = []
        while nominal > 8:
            blocks.append(DownBlock(widths[nominal], widths[nominal // 2]))
            nominal //= 2
        self.main = nn.Sequential(*blocks)
        self.conditional = cfg.c_dim > 0
        out_ch = cfg.cmap_dim if self.conditional else 1
        self.out = spectral_norm(nn.Conv2d(widths[nominal], out_ch, 4, 1, 0, bias=False))
        if self.conditional:
            self.embed = nn.Embedding(cfg.c_dim, cfg.embed_dim)  # trainable, as officially (D's optimizer)
            if class_rows is not None:
                with torch.no_grad():
                    self.embed.weight.copy_(class_rows)
            self.embed_proj = FullyConnectedLayer(cfg.embed_dim, cfg.cmap_dim, activation="lrelu")
        self.cmap_dim = cfg.cmap_dim

    def forward(self, x: torch.Tensor, c_weights: torch.Tensor | None) -> torch.Tensor:
        h = self.out(self.main(x))  # [B, cmap or 1, h, w]
        if not self.conditional:
            return h.flatten(1)
        cmap = self.embed_proj(c_weights @ self.embed.weight)  # [B, cmap]
        # Projection discriminator: per-location dot product with the class code.
        return (h * cmap[:, :, None, None]).sum(dim=1).flatten(1) / math.sqrt(self.cmap_dim)  # [B, h*w]


class ProjectedDiscriminator(nn.Module):
    def __init__(self, feature_networks: dict[str, nn.Module], cfg: DiscriminatorConfig,
                 class_rows: torch.Tensor | None = None) -> None:
        """`class_rows` [c_dim, embed_dim]: the initial class embedding of every head (random when None)."""
        super().__init__()
        if not feature_networks:
            raise ValueError("the projected discriminator needs at least one feature network")
        if class_rows is not None and tuple(class_rows.shape) != (cfg.c_dim, cfg.embed_dim):
            raise ValueError(f"class_rows must be [{cfg.c_dim}, {cfg.embed_dim}], got {tuple(class_rows.shape)}")
        self.cfg = cfg
        self.feature_networks = nn.ModuleDict(feature_networks)
        self.feature_networks.requires_grad_(False)
        self.projections = nn.ModuleDict()
        self.discriminators = nn.ModuleDict()
        for name, net in self.feature_networks.items():
            proj = RandomProjection(list(net.channels), cfg.ccm_channels, cfg.projection_seed)
            self.projections[name] = proj
            # Mixed maps sit at strides 2/4/8/16 of the feature network input.
            sizes = [cfg.input_size // s for s in (2, 4, 8, 16)]
            self.discriminators[name] = nn.ModuleList(
                ScaleDiscriminator(ch, size, cfg, class_rows) for ch, size in zip(proj.out_channels, sizes))

    def train(self, mode: bool = True) -> ProjectedDiscriminator:
        super().train(mode)
        self.feature_networks.eval()  # frozen, always in eval mode (BatchNorm statistics stay pretrained)
        self.projections.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.discriminators.parameters() if p.requires_grad]

    def forward(self, img: torch.Tensor, c_weights: torch.Tensor | None, augment: bool = True,
                gen: torch.Generator | None = None) -> torch.Tensor:
        """img [B, 3, H, W] in [-1, 1], class weights [B, c_dim] -> logits [B, N]."""
        return torch.cat(self.forward_per_network(img, c_weights, augment, gen), dim=1)

    def forward_per_network(self, img: torch.Tensor, c_weights: torch.Tensor | None, augment: bool = True,
                            gen: torch.Generator | None = None) -> list[torch.Tensor]:
        """One [B, N_net] logits tensor per feature network (the losses average within a network, then add)."""
        out = []
        for name, net in self.feature_networks.items():
            logits = []
            x = img
            if augment and self.cfg.augment_policy:
                x = diff_augment(x, self.cfg.augment_policy, self.cfg.translation_ratio, self.cfg.cutout_ratio, gen)
            if x.shape[-1] != self.cfg.input_size:
                x = F.interpolate(x, size=(self.cfg.input_size, self.cfg.input_size), mode="bilinear",
                                  align_corners=False)
            feats = self.projections[name](net(x))
            for disc, f in zip(self.discriminators[name], feats):
                logits.append(disc(f, c_weights))
            out.append(torch.cat(logits, dim=1))
        return out
