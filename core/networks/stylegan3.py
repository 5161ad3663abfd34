"""StyleGAN3 generator (Karras et al. 2021, "Alias-Free GAN"), configs T and R.

The synthesis network is the one StyleGAN-XL builds on (core/networks/synthesis.py: Fourier-feature
input, modulated convs with filtered leaky ReLU, no noise inputs), used as a single stage at the
output resolution. Config T uses 3x3 convolutions and separable Kaiser low-pass filters; config R
(rotation equivariant) uses 1x1 convolutions and radially symmetric (jinc) down-sampling filters in
the non-critically-sampled layers, and doubles the channels (the file states them). Released T and R
models use output_scale 0.25; other files may differ, so it is part of the configuration.

The mapping is StyleGAN2's (core/networks/mapping_sg2.py) with 2 layers: z 512, the class embedded by
a fully connected layer, one w_avg for all classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from core.networks.mapping import ClassInput
from core.networks.mapping_sg2 import StyleGAN2MappingConfig, StyleGAN2MappingNetwork
from core.networks.synthesis import SynthesisConfig, SynthesisNetwork
from core.networks.traits import GeneratorTraits


@dataclass
class StyleGAN3Config:
    family: ClassVar[str] = "stylegan3"
    mapping: StyleGAN2MappingConfig = field(default_factory=lambda: StyleGAN2MappingConfig(num_layers=2))
    synthesis: SynthesisConfig = field(default_factory=lambda: SynthesisConfig(stem_resolution=256))

    def to_dict(self) -> dict:
        return {"mapping": self.mapping.to_dict(), "synthesis": self.synthesis.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> StyleGAN3Config:
        return cls(mapping=StyleGAN2MappingConfig(**d["mapping"]), synthesis=SynthesisConfig.from_dict(d["synthesis"]))

    @property
    def label(self) -> str:
        s = self.synthesis
        return "StyleGAN3-R" if s.use_radial_filters or s.conv_kernel == 1 else "StyleGAN3-T"

    def describe(self) -> list[str]:
        """Architecture facts for `sgxl info` (one line each)."""
        s = self.synthesis
        return [f"{self.label}: {s.num_layers} layers + ToRGB, conv kernel {s.conv_kernel}, "
                f"{'radial' if s.use_radial_filters else 'separable'} filters, output_scale {s.output_scale:g}",
                f"channels base {s.channel_base}, max {s.channel_max}; mapping {self.mapping.num_layers} layers"]


class StyleGAN3Generator(nn.Module):
    family = "stylegan3"

    def __init__(self, cfg: StyleGAN3Config) -> None:
        super().__init__()
        if cfg.synthesis.stages:
            raise ValueError("a StyleGAN3 generator has no growth stages (those are StyleGAN-XL's)")
        self.cfg = cfg
        self.synthesis = SynthesisNetwork(cfg.synthesis, cfg.mapping.w_dim)
        self.num_ws = self.synthesis.num_ws
        self.mapping = StyleGAN2MappingNetwork(cfg.mapping, self.num_ws)
        self.z_dim, self.c_dim, self.w_dim = cfg.mapping.z_dim, cfg.mapping.c_dim, cfg.mapping.w_dim
        self.img_resolution = self.synthesis.img_resolution
        self.img_channels = cfg.synthesis.img_channels

    def forward(self, z: torch.Tensor, c: ClassInput = None, psi: float = 1.0, truncation_cutoff: int | None = None,
                update_emas: bool = False, transform: torch.Tensor | None = None, noise_mode: str = "const",
                noise_seed: int = 0) -> torch.Tensor:
        ws = self.mapping(z, c, psi=psi, truncation_cutoff=truncation_cutoff, update_emas=update_emas)
        return self.synthesis(ws, transform=transform, update_emas=update_emas)  # [B, 3, R, R] (no noise inputs)

    @property
    def traits(self) -> GeneratorTraits:
        info = self.synthesis.layer_info()
        return GeneratorTraits(
            family=self.family, label=self.cfg.label, has_noise=False, has_input_transform=True, per_class_w_avg=False,
            trainable=False, ws_labels=tuple(self.synthesis.ws_labels()), layer_names=tuple(n for n, _ in info),
            layer_channels=tuple(c for _, c in info), uint8_offset=128.0)

    def parameter_counts(self) -> dict[str, int]:
        return {"mapping": sum(p.numel() for p in self.mapping.parameters()),
                "synthesis": sum(p.numel() for p in self.synthesis.parameters()),
                "total": sum(p.numel() for p in self.parameters())}
