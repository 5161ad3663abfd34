"""Building blocks shared by the mapping and synthesis networks.

Both use the "equalized learning rate" parameterization of StyleGAN (Karras et al. 2019, Sec. 4.1):
weights are stored at unit scale and multiplied by a constant gain at run time, so that Adam's
per-parameter step size treats every layer alike; `lr_multiplier` additionally slows a layer down
(the mapping network uses 0.01).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

import kernels


class FullyConnectedLayer(nn.Module):
    """`act(x @ (weight * gain).T + bias * lr_multiplier)` with equalized learning rate."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        activation: str = "linear",
        bias: bool = True,
        lr_multiplier: float = 1.0,
        weight_init: float = 1.0,
        bias_init: float | list[float] = 0.0,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) * (weight_init / lr_multiplier))
        bias_values = np.broadcast_to(np.asarray(bias_init, dtype=np.float32), [out_features])
        self.bias = nn.Parameter(torch.from_numpy(bias_values / lr_multiplier)) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, in] -> [B, out]
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return kernels.bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale each row to unit mean square (StyleGAN's pixel norm on latents)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    demodulate: bool = True,
    padding: int = 0,
    input_gain: torch.Tensor | None = None,
) -> torch.Tensor:
    """Convolution whose weights are scaled per sample by `styles` (StyleGAN2, Sec. 2.2, Eq. 1-3).

    x [B, I, H, W], weight [O, I, k, k], styles [B, I] -> [B, O, H', W'] (one grouped conv).
    With `demodulate`, each output channel is renormalized to unit expected std. Weight and styles
    are pre-normalized first, as in StyleGAN3, to keep fp16 in range.
    """
    batch = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape
    if demodulate:
        weight = weight * weight.square().mean([1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean().rsqrt()

    w = weight.unsqueeze(0) * styles.reshape(batch, 1, in_ch, 1, 1)  # [B, O, I, k, k]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [B, O]
        w = w * dcoefs.reshape(batch, out_ch, 1, 1, 1)
    if input_gain is not None:
        w = w * input_gain.expand(batch, in_ch).reshape(batch, 1, in_ch, 1, 1)

    x = x.reshape(1, batch * in_ch, *x.shape[2:])
    x = torch.nn.functional.conv2d(x, w.reshape(batch * out_ch, in_ch, kh, kw).to(x.dtype), padding=padding,
                                   groups=batch)
    return x.reshape(batch, out_ch, *x.shape[2:])
