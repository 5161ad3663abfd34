"""Exact, differentiable PyTorch reference of the StyleGAN ops.

These follow the semantics of the official StyleGAN3 ops (NVlabs `torch_utils.ops`), which on
CPU fall back to exactly this composition of plain PyTorch ops. Every fast path in `kernels/`
is tested against the functions here; they are the oracle.

- `bias_act`: add a per-channel bias, apply an activation, multiply by a gain, clamp.
- `upfirdn2d`: upsample by zero insertion, pad (or crop), convolve with a FIR filter, downsample
  by keeping every `down`-th sample.
- `filtered_lrelu`: bias -> upfirdn2d(up) -> leaky ReLU * gain -> clamp -> upfirdn2d(down)
  (StyleGAN3 paper, Sec. 3.2: the nonlinearity is applied at a temporarily higher sampling rate).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Padding = int | Sequence[int]


@dataclass(frozen=True)
class Activation:
    func: Callable[[torch.Tensor, float], torch.Tensor]
    default_alpha: float
    default_gain: float


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, alpha: x, 0.0, 1.0),
    "relu": Activation(lambda x, alpha: F.relu(x), 0.0, math.sqrt(2)),
    "lrelu": Activation(lambda x, alpha: F.leaky_relu(x, alpha), 0.2, math.sqrt(2)),
    "tanh": Activation(lambda x, alpha: torch.tanh(x), 0.0, 1.0),
    "sigmoid": Activation(lambda x, alpha: torch.sigmoid(x), 0.0, 1.0),
}


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """`clamp(act(x + b) * gain, -clamp, clamp)`; `b` is broadcast along dimension `dim`."""
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; expected one of {sorted(ACTIVATIONS)}")
    spec = ACTIVATIONS[act]
    alpha = float(spec.default_alpha if alpha is None else alpha)
    gain = float(spec.default_gain if gain is None else gain)
    if b is not None:
        if b.ndim != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(f"bias shape {tuple(b.shape)} does not match x.shape[{dim}]={x.shape[dim]}")
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def parse_scaling(scaling: int | Sequence[int]) -> tuple[int, int]:
    """An int or [sx, sy] -> (sx, sy)."""
    if isinstance(scaling, int):
        return scaling, scaling
    sx, sy = scaling
    return int(sx), int(sy)


def parse_padding(padding: Padding) -> tuple[int, int, int, int]:
    """An int, [px, py] or [x0, x1, y0, y1] -> (x0, x1, y0, y1)."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        px, py = padding
        return px, px, py, py
    x0, x1, y0, y1 = padding
    return x0, x1, y0, y1


def filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(width, height) of a 1-D (separable) or 2-D FIR filter; None is the identity [1]."""
    if f is None:
        return 1, 1
    if f.ndim == 1:
        return f.shape[0], f.shape[0]
    return f.shape[1], f.shape[0]


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int | Sequence[int] = 1,
    down: int | Sequence[int] = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1,
) -> torch.Tensor:
    """Upsample, pad, FIR-filter and downsample a batch of images [N, C, H, W].

    `f` is 1-D (applied separably along x then y) or 2-D; its total gain is multiplied by `gain`.
    Without `flip_filter` this is a true convolution (the filter is flipped), as in the official op.
    Negative padding crops.
    """
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects [N, C, H, W], got shape {tuple(x.shape)}")
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    if f.ndim not in (1, 2):
        raise ValueError(f"filter must be 1-D or 2-D, got shape {tuple(f.shape)}")
    batch, channels, in_h, in_w = x.shape
    upx, upy = parse_scaling(up)
    downx, downy = parse_scaling(down)
    padx0, padx1, pady0, pady1 = parse_padding(padding)
    if min(upx, upy, downx, downy) < 1:
        raise ValueError("up and down factors must be >= 1")
    fw, fh = filter_size(f)
    if in_w * upx + padx0 + padx1 < fw or in_h * upy + pady0 + pady1 < fh:
        raise ValueError("the padded, upsampled image is smaller than the filter")

    # Upsample by inserting zeros.                                  # [N, C, H*upy, W*upx]
    x = x.reshape(batch, channels, in_h, 1, in_w, 1)
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
    x = x.reshape(batch, channels, in_h * upy, in_w * upx)

    # Pad (positive) or crop (negative).
    x = F.pad(x, [max(padx0, 0), max(padx1, 0), max(pady0, 0), max(pady1, 0)])
    x = x[:, :, max(-pady0, 0) : x.shape[2] - max(-pady1, 0), max(-padx0, 0) : x.shape[3] - max(-padx1, 0)]

    # Filter: the gain is spread evenly over the separable passes.
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f[None, None].repeat([channels, 1] + [1] * f.ndim)
    if f.ndim == 4:
        x = F.conv2d(x, f, groups=channels)
    else:
        x = F.conv2d(x, f.unsqueeze(2), groups=channels)  # along x
        x = F.conv2d(x, f.unsqueeze(3), groups=channels)  # along y

    # Downsample by keeping every down-th sample.
    return x[:, :, ::downy, ::downx]


def filtered_lrelu(
    x: torch.Tensor,
    fu: torch.Tensor | None = None,
    fd: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    gain: float = math.sqrt(2),
    slope: float = 0.2,
    clamp: float | None = None,
    flip_filter: bool = False,
) -> torch.Tensor:
    """Bias, upsample with `fu`, leaky ReLU (times `gain`, clamped), downsample with `fd`.

    Output size: (in * up + pad0 + pad1 - (len(fu) - 1) - (len(fd) - 1) + (down - 1)) // down.
    """
    if x.ndim != 4:
        raise ValueError(f"filtered_lrelu expects [N, C, H, W], got shape {tuple(x.shape)}")
    px0, px1, py0, py1 = parse_padding(padding)
    x = bias_act(x, b)
    x = upfirdn2d(x, fu, up=up, padding=[px0, px1, py0, py1], gain=up**2, flip_filter=flip_filter)
    x = bias_act(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp)
    return upfirdn2d(x, fd, down=down, flip_filter=flip_filter)


def filtered_lrelu_output_size(
    in_size: tuple[int, int],
    fu: torch.Tensor | None,
    fd: torch.Tensor | None,
    up: int,
    down: int,
    padding: Padding,
) -> tuple[int, int]:
    """(width, height) that `filtered_lrelu` produces for an input of (width, height)."""
    px0, px1, py0, py1 = parse_padding(padding)
    fuw, fuh = filter_size(fu)
    fdw, fdh = filter_size(fd)
    in_w, in_h = in_size
    out_w = (in_w * up + px0 + px1 - (fuw - 1) - (fdw - 1) + (down - 1)) // down
    out_h = (in_h * up + py0 + py1 - (fuh - 1) - (fdh - 1) + (down - 1)) // down
    return out_w, out_h
