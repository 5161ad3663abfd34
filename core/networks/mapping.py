"""The class-conditional mapping network of StyleGAN-XL (paper Sec. 4.1, "Class conditioning").

z [B, 64] is normalized by its second moment. The class goes through an embedding table
(`Embedding(c_dim, 320)`; for ImageNet the official file holds embeddings pretrained with
EfficientNet-lite0, 320 = its last-stage channels), an FC 320 -> 64 with leaky ReLU, and the same
normalization; the two are concatenated (128) and mapped by 2 FC layers to w [B, 512], with a
learning-rate multiplier of 0.01. `w_avg` is tracked *per class*, so truncation pulls each sample
toward the mean of its own class rather than a global mean that would mix classes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from core.networks.layers import FullyConnectedLayer, normalize_2nd_moment


@dataclass
class MappingConfig:
    z_dim: int = 64
    c_dim: int = 1000  # number of classes; 0 = unconditional
    w_dim: int = 512
    embed_dim: int = 320  # class-embedding width (EfficientNet-lite0's last-stage channels)
    num_layers: int = 2
    lr_multiplier: float = 0.01
    w_avg_beta: float = 0.998

    def to_dict(self) -> dict:
        return asdict(self)


ClassInput = torch.Tensor | None  # LongTensor [B] of indices, or float [B, c_dim] class weights


def class_weights(c: ClassInput, c_dim: int, batch: int, device: torch.device | str) -> torch.Tensor | None:
    """Class input as float weights [B, c_dim] (one-hot for indices); None when unconditional (c_dim 0)."""
    if c_dim == 0:
        return None
    if c is None:
        raise ValueError("this generator is class-conditional: pass class indices or class weights")
    c = c.to(device)
    if c.dtype in (torch.int64, torch.int32):
        if c.ndim != 1 or c.shape[0] != batch:
            raise ValueError(f"class indices must have shape [{batch}], got {tuple(c.shape)}")
        if int(c.min()) < 0 or int(c.max()) >= c_dim:
            raise ValueError(f"class index out of range 0..{c_dim - 1}")
        return torch.nn.functional.one_hot(c, c_dim).to(torch.float32)
    if c.shape != (batch, c_dim):
        raise ValueError(f"class weights must have shape [{batch}, {c_dim}], got {tuple(c.shape)}")
    return c.to(torch.float32)


class FullyConnectedMapping(nn.Module):
    """What the StyleGAN-XL and the StyleGAN2/3 mapping networks share: z and the class embedding, each
    normalized by its second moment and concatenated, through `cfg.num_layers` FC layers `fc0, fc1, ...` to w
    (float32), the `w_avg` update, then w repeated for the `num_ws` synthesis inputs and truncated toward
    `class_w_avg` (psi on the first `truncation_cutoff` ws). Subclasses build the layers and say how a class
    is embedded (`embed_class`), what the truncation centre is (`class_w_avg`) and how `w_avg` moves."""

    cfg: MappingConfig  # (StyleGAN2MappingConfig in the StyleGAN2/3 subclass: the fields used here are the same)
    num_ws: int

    def class_weights(self, c: ClassInput, batch: int, device: torch.device | str) -> torch.Tensor | None:
        """Class input as float weights [B, c_dim] (one-hot for indices); None when unconditional."""
        return class_weights(c, self.cfg.c_dim, batch, device)

    def embed_class(self, c_weights: torch.Tensor) -> torch.Tensor:
        """[B, c_dim] class weights -> the class half of the first layer's input, before its normalization."""
        raise NotImplementedError

    def class_w_avg(self, c_weights: torch.Tensor | None) -> torch.Tensor:
        """The truncation centre per sample: [B or 1, w_dim]."""
        raise NotImplementedError

    def update_w_avg(self, w: torch.Tensor, c_weights: torch.Tensor | None) -> None:
        raise NotImplementedError

    def forward(
        self,
        z: torch.Tensor,
        c: ClassInput = None,
        psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.cfg.z_dim:
            raise ValueError(f"z must have shape [B, {self.cfg.z_dim}], got {tuple(z.shape)}")
        x = normalize_2nd_moment(z.to(torch.float32))  # [B, z_dim]
        c_weights = self.class_weights(c, z.shape[0], z.device)
        if c_weights is not None:
            y = normalize_2nd_moment(self.embed_class(c_weights))  # [B, embedding width]
            x = torch.cat([x, y], dim=1)
        for idx in range(self.cfg.num_layers):
            x = getattr(self, f"fc{idx}")(x)  # [B, w_dim]
        # ws stay float32 under autocast (as official, where only the synthesis runs in reduced precision): the
        # truncation lerp toward the float32 w_avg and the w_avg update need one dtype.
        x = x.to(torch.float32)
        if update_emas:
            with torch.no_grad():
                self.update_w_avg(x.detach(), c_weights)
        ws = x.unsqueeze(1).repeat([1, self.num_ws, 1])  # [B, num_ws, w_dim]
        if psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            centre = self.class_w_avg(c_weights).unsqueeze(1)  # [B or 1, 1, w_dim]
            ws[:, :cutoff] = centre.lerp(ws[:, :cutoff], psi)
        return ws


class MappingNetwork(FullyConnectedMapping):
    def __init__(self, cfg: MappingConfig, num_ws: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_ws = num_ws
        conditional = cfg.c_dim > 0
        self.embed = nn.Embedding(cfg.c_dim, cfg.embed_dim) if conditional else None
        self.embed_proj = (
            FullyConnectedLayer(cfg.embed_dim, cfg.z_dim, activation="lrelu") if conditional else None
        )
        features = [cfg.z_dim * (2 if conditional else 1)] + [cfg.w_dim] * cfg.num_layers
        for idx in range(cfg.num_layers):
            layer = FullyConnectedLayer(
                features[idx], features[idx + 1], activation="lrelu", lr_multiplier=cfg.lr_multiplier
            )
            setattr(self, f"fc{idx}", layer)
        self.register_buffer("w_avg", torch.zeros([cfg.c_dim, cfg.w_dim] if conditional else [cfg.w_dim]))

    def class_embedding(self, c_weights: torch.Tensor) -> torch.Tensor:
        """[B, c_dim] weights -> [B, embed_dim]. One-hot rows select a row exactly; blends mix rows."""
        return c_weights @ self.embed.weight

    def class_w_avg(self, c_weights: torch.Tensor | None) -> torch.Tensor:
        """The truncation centre per sample: [B, w_dim] (the class's w_avg, or the blend's)."""
        if c_weights is None:
            return self.w_avg.unsqueeze(0)
        with torch.autocast(c_weights.device.type, enabled=False):  # float32 even under autocast (ws are float32)
            return c_weights.to(torch.float32) @ self.w_avg

    def mean_w(self, class_idx: int | None) -> torch.Tensor:
        """[w_dim]: the truncation centre of one class (the global w_avg when unconditional)."""
        return self.w_avg if class_idx is None or self.cfg.c_dim == 0 else self.w_avg[class_idx]

    def embed_class(self, c_weights: torch.Tensor) -> torch.Tensor:
        return self.embed_proj(self.class_embedding(c_weights))  # [B, z_dim]

    def update_w_avg(self, w: torch.Tensor, c_weights: torch.Tensor | None) -> None:
        beta = self.cfg.w_avg_beta
        if c_weights is None:
            self.w_avg.copy_(w.mean(dim=0).lerp(self.w_avg, beta))
            return
        # One EMA step per sample of its (arg-max) class, in batch order, as the official code does.
        for i, label in enumerate(c_weights.argmax(dim=1).tolist()):
            self.w_avg[label].copy_(w[i].lerp(self.w_avg[label], beta))
