"""What loading a checkpoint gives, whatever its format: our `.sgxl` or an official `.pkl`.

Kept apart from both readers so that neither imports the other's module for it: `core.io.checkpoint`
dispatches `.pkl` files to `core.io.official`, which never imports `core.io.checkpoint`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from core.networks.generator import Generator, GeneratorConfig


@dataclass
class Checkpoint:
    generator: Generator  # or StyleGAN3Generator / StyleGAN2Generator: see `generator.traits`
    config: GeneratorConfig  # the generator's own config class (GeneratorConfig for StyleGAN-XL)
    class_names: list[str] | None = None
    meta: dict = field(default_factory=dict)
    extra_tensors: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    path: Path | None = None

    @property
    def kimg(self) -> float:
        return float(self.meta.get("kimg", 0.0))
