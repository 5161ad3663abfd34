"""The mapping network of StyleGAN2, StyleGAN2-ADA and StyleGAN3 (z -> w, one w_avg for all classes).

StyleGAN2 (Karras et al. 2020) and its successors share this mapping; StyleGAN3 uses it with 2 layers
instead of 8. z [B, z_dim] is normalized by its second moment. A conditional model embeds the one-hot
class with a plain fully connected layer (c_dim -> embed_features, no activation, no lr multiplier),
normalizes that the same way and concatenates it to z. `num_layers` FC layers with leaky ReLU and a
learning-rate multiplier of 0.01 map the result to w.

Unlike StyleGAN-XL's mapping (core/networks/mapping.py) there is a single `w_avg` [w_dim], tracked over
all classes, so truncation pulls every class toward the same centre; `truncation_cutoff` applies psi to
the first N ws only (the official `truncation_cutoff` argument).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from core.networks.layers import FullyConnectedLayer
from core.networks.mapping import FullyConnectedMapping


@dataclass
class StyleGAN2MappingConfig:
    z_dim: int = 512
    c_dim: int = 0  # number of classes; 0 = unconditional
    w_dim: int = 512
    num_layers: int = 8  # StyleGAN2/2-ADA default 8; StyleGAN3 uses 2
    embed_features: int | None = None  # class-embedding width; None = w_dim
    layer_features: int | None = None  # width of the hidden FC layers; None = w_dim
    lr_multiplier: float = 0.01
    w_avg_beta: float = 0.998  # StyleGAN2-ADA's default is 0.995; an imported file brings its own

    def to_dict(self) -> dict:
        return asdict(self)


class StyleGAN2MappingNetwork(FullyConnectedMapping):
    def __init__(self, cfg: StyleGAN2MappingConfig, num_ws: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_ws = num_ws
        embed = cfg.w_dim if cfg.embed_features is None else cfg.embed_features
        hidden = cfg.w_dim if cfg.layer_features is None else cfg.layer_features
        self.embed = FullyConnectedLayer(cfg.c_dim, embed) if cfg.c_dim > 0 else None
        features = [cfg.z_dim + (embed if cfg.c_dim > 0 else 0)] + [hidden] * (cfg.num_layers - 1) + [cfg.w_dim]
        for idx in range(cfg.num_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation="lrelu",
                                        lr_multiplier=cfg.lr_multiplier)
            setattr(self, f"fc{idx}", layer)
        self.register_buffer("w_avg", torch.zeros([cfg.w_dim]))

    def embed_class(self, c_weights: torch.Tensor) -> torch.Tensor:
        return self.embed(c_weights)  # [B, embed_features]

    def class_w_avg(self, c_weights: torch.Tensor | None) -> torch.Tensor:
        """The truncation centre: [1, w_dim], the same for every class (one global w_avg)."""
        return self.w_avg.unsqueeze(0)

    def mean_w(self, class_idx: int | None) -> torch.Tensor:
        """[w_dim]: the truncation centre (one w_avg for every class)."""
        return self.w_avg

    def update_w_avg(self, w: torch.Tensor, c_weights: torch.Tensor | None) -> None:
        self.w_avg.copy_(w.mean(dim=0).lerp(self.w_avg, self.cfg.w_avg_beta))
