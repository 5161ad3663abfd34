"""The StyleGAN-XL generator: class-conditional mapping + StyleGAN3-T synthesis + progressive growing.

Growing (paper Sec. 4.2, official `SuperresGenerator`): `grow()` returns a new generator whose
synthesis keeps the current stem minus its critically sampled layers and ToRGB, and appends a
new head for the higher resolution. The mapping and every kept layer are copied and frozen; only
the new head trains.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from core.networks.mapping import ClassInput, MappingConfig, MappingNetwork
from core.networks.synthesis import GrowthStage, SynthesisConfig, SynthesisNetwork
from core.networks.traits import GeneratorTraits


@dataclass
class GeneratorConfig:
    family: ClassVar[str] = "stylegan-xl"
    mapping: MappingConfig = field(default_factory=MappingConfig)
    synthesis: SynthesisConfig = field(default_factory=SynthesisConfig)

    def to_dict(self) -> dict:
        return {"mapping": self.mapping.to_dict(), "synthesis": self.synthesis.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> GeneratorConfig:
        return cls(mapping=MappingConfig(**d["mapping"]), synthesis=SynthesisConfig.from_dict(d["synthesis"]))

    def describe(self) -> list[str]:
        """Architecture facts for `sgxl info` (one line each)."""
        s = self.synthesis
        return [f"StyleGAN-XL: stem {s.stem_resolution}² with {s.num_layers} layers, {len(s.stages)} growth stages",
                f"channels base {s.channel_base}, max {s.channel_max}"]


class Generator(nn.Module):
    family = "stylegan-xl"

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.synthesis = SynthesisNetwork(cfg.synthesis, cfg.mapping.w_dim)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(cfg.mapping, self.num_ws)
        self.z_dim = cfg.mapping.z_dim
        self.c_dim = cfg.mapping.c_dim
        self.w_dim = cfg.mapping.w_dim
        self.img_resolution = self.synthesis.img_resolution
        self.img_channels = cfg.synthesis.img_channels
        self.stage = len(cfg.synthesis.stages)
        if self.stage > 0:
            self._freeze_all_but_last_head()

    def forward(
        self,
        z: torch.Tensor,
        c: ClassInput = None,
        psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
        transform: torch.Tensor | None = None,
        noise_mode: str = "const",
        noise_seed: int = 0,
    ) -> torch.Tensor:
        ws = self.mapping(z, c, psi=psi, truncation_cutoff=truncation_cutoff, update_emas=update_emas)
        return self.synthesis(ws, transform=transform, update_emas=update_emas)  # [B, 3, R, R] (no noise inputs)

    @property
    def traits(self) -> GeneratorTraits:
        info = self.synthesis.layer_info()
        return GeneratorTraits(
            family=self.family, label="StyleGAN-XL", has_noise=False, has_input_transform=True,
            per_class_w_avg=True, trainable=True, ws_labels=tuple(self.synthesis.ws_labels()),
            layer_names=tuple(n for n, _ in info), layer_channels=tuple(c for _, c in info))

    def parameter_counts(self) -> dict[str, int]:
        return count_parameters(self)

    def head_layer_names(self) -> list[str]:
        """Layers added by the latest growth stage (all layers for a stem)."""
        return [layer.spec.name for layer in self.synthesis.layers() if layer.spec.stage == self.stage]

    def _freeze_all_but_last_head(self) -> None:
        trainable = set(self.head_layer_names())
        for name, param in self.named_parameters():
            parts = name.split(".")
            param.requires_grad_(parts[0] == "synthesis" and parts[1] in trainable)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def grow(self, up_factor: int = 2, head_layers: int = 7) -> Generator:
        """A new generator at `up_factor` x the resolution; this one is left untouched."""
        if up_factor not in (2, 4, 8, 16):
            raise ValueError("up_factor must be 2, 4, 8 or 16")
        if head_layers <= 2:
            raise ValueError("head_layers must exceed the 2 critically sampled layers")
        cfg = copy.deepcopy(self.cfg)
        cfg.synthesis.stages.append(GrowthStage(up_factor=up_factor, head_layers=head_layers))
        grown = Generator(cfg).to(self.mapping.w_avg.device)
        new_state = grown.state_dict()
        kept = {k: v for k, v in self.state_dict().items()
                if k in new_state and not _belongs_to(k, grown.head_layer_names())}
        for k, v in kept.items():
            if new_state[k].shape != v.shape:
                raise RuntimeError(f"grow(): kept tensor {k} changed shape {tuple(v.shape)} -> "
                                   f"{tuple(new_state[k].shape)}")
        missing = [k for k in new_state if k not in kept and not _belongs_to(k, grown.head_layer_names())]
        if missing:
            raise RuntimeError(f"grow(): no source for {missing[:3]}")
        grown.load_state_dict(kept, strict=False)
        return grown


def _belongs_to(key: str, layer_names: list[str]) -> bool:
    parts = key.split(".")
    return len(parts) > 2 and parts[0] == "synthesis" and parts[1] in layer_names


def count_parameters(G: Generator) -> dict[str, int]:
    """Parameter counts: mapping (with the class embedding), each synthesis stage, total, trainable."""
    counts: dict[str, int] = {"mapping": sum(p.numel() for p in G.mapping.parameters())}
    counts["synthesis_input"] = sum(p.numel() for p in G.synthesis.input.parameters())
    for layer in G.synthesis.layers():
        key = "stem" if layer.spec.stage == 0 else f"stage{layer.spec.stage}"
        counts[key] = counts.get(key, 0) + sum(p.numel() for p in layer.parameters())
    counts["total"] = sum(p.numel() for p in G.parameters())
    counts["trainable"] = sum(p.numel() for p in G.trainable_parameters())
    return counts
