"""Fast path for separable FIR ops (CPU, and CUDA without Triton): each 1-D resampling pass is one depthwise
convolution.

A separable filter is applied as two passes, one per axis, each a depthwise (`groups=C`) convolution
with a `[1, taps]` or `[taps, 1]` kernel on a channels-last tensor, which oneDNN runs as a direct
vectorised loop over the channels:

- upsampling by `up` is a transposed convolution with stride `up`: it multiplies only the real
  samples (the polyphase decomposition), never the inserted zeros;
- downsampling by `down` is a convolution with stride `down`: the samples it would throw away are
  never computed;
- the padding (or cropping) is the convolution's own symmetric padding where it can be, else an
  explicit pad; the filter gain is folded into the taps.

So each output sample costs exactly `taps / up` multiplies per axis (StyleGAN3's 12-tap filters at 2x:
6), where a matrix form of the same pass (`kernels.fir_matmul`) multiplies the zeros of its band too.
Results equal `kernels.reference` up to float rounding (tests/test_kernels_fast.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from kernels import fir_matmul, reference
from kernels.reference import Padding, parse_padding, parse_scaling


def supports(x: torch.Tensor) -> bool:
    """CPU float32/float64 tensors, and bfloat16 for the measured bf16 previews (core.networks.precision); CUDA
    float tensors too (the fallback where Triton is missing: cuDNN runs the depthwise convolutions, in
    float16/bfloat16 as well)."""
    if x.device.type == "cuda":
        return x.dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16)
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64, torch.bfloat16)


def _resample_axis(x: torch.Tensor, taps: torch.Tensor, axis: int, up: int, down: int, pad0: int, pad1: int,
                   flip_filter: bool) -> torch.Tensor:
    """One axis of `upfirdn2d` (axis 3 = x, 2 = y) on `x` [N, C, H, W]; `taps` already carry the gain."""
    channels, k = x.shape[1], taps.shape[0]

    def kernel(t: torch.Tensor) -> torch.Tensor:
        shape = (1, 1, 1, k) if axis == 3 else (1, 1, k, 1)
        return t.reshape(shape).expand(channels, *shape[1:])

    def per_axis(v: int, other: int = 1) -> tuple[int, int]:
        return (other, v) if axis == 3 else (v, other)

    def pad_axis(t: torch.Tensor, before: int, after: int) -> torch.Tensor:  # negative = crop
        return F.pad(t, [before, after, 0, 0] if axis == 3 else [0, 0, before, after])

    if up > 1:
        # conv_transpose(x, w) = the zero-inserted signal (no trailing zeros), padded by k-1 on both sides,
        # correlated with w flipped; upfirdn2d pads by (pad0, pad1 + up - 1) and correlates with the filter
        # flipped unless flip_filter. The difference is a crop/pad of the output.
        w = taps if not flip_filter else taps.flip(0)
        before, after = pad0 - (k - 1), pad1 + up - k
        crop = -before if before == after and before <= 0 else 0
        x = F.conv_transpose2d(x, kernel(w), stride=per_axis(up), padding=per_axis(crop, 0), groups=channels)
        if crop == 0 and (before or after):
            x = pad_axis(x, before, after)
        if down > 1:
            x = x[..., ::down] if axis == 3 else x[..., ::down, :]
        return x
    w = taps.flip(0) if not flip_filter else taps
    pad = pad0 if pad0 == pad1 and pad0 >= 0 else 0
    if pad == 0 and (pad0 or pad1):
        x = pad_axis(x, pad0, pad1)
    return F.conv2d(x, kernel(w), stride=per_axis(down), padding=per_axis(pad, 0), groups=channels)


def upfirdn2d_channels_last(x: torch.Tensor, f: torch.Tensor | None, up: int | Sequence[int] = 1,
                            down: int | Sequence[int] = 1, padding: Padding = 0, flip_filter: bool = False,
                            gain: float = 1) -> torch.Tensor:
    """`kernels.reference.upfirdn2d` for a 1-D (or no) filter, best on a channels-last `x`.

    A stand-alone `upfirdn2d` on a contiguous tensor is faster as `fir_matmul.upfirdn2d`: converting
    to channels-last and back costs more than the convolutions save (bench/ops.py). Inside
    `filtered_lrelu` the conversion is paid once for four passes, and there the convolutions win.
    """
    upx, upy = parse_scaling(up)
    downx, downy = parse_scaling(down)
    if min(upx, upy, downx, downy) < 1:
        raise ValueError("up and down factors must be >= 1")
    px0, px1, py0, py1 = parse_padding(padding)
    taps = torch.ones(1, dtype=x.dtype, device=x.device) if f is None else f.to(x.dtype)
    _, _, h, w = x.shape
    if min(w * upx + px0 + px1, h * upy + py0 + py1) < taps.shape[0]:
        raise ValueError("the padded, upsampled image is smaller than the filter")
    # The whole gain rides on one axis's taps (a negative gain has no real square root to split).
    x = _resample_axis(x, taps * gain, 3, upx, downx, px0, px1, flip_filter)
    return _resample_axis(x, taps, 2, upy, downy, py0, py1, flip_filter)


def _biased_channels_last(x: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """`x + b` (b along the channels) in the channels-last layout. Where autograd need not record it, the copy into
    that layout adds the bias: one pass over x instead of two (1-1.5% of a 64x64 demo frame on CPU, measured
    render by render against the two passes in one process)."""
    plain = b is None or b.dtype != x.dtype or b.ndim != 1 or b.shape[0] != x.shape[1]
    if plain or (torch.is_grad_enabled() and (x.requires_grad or b.requires_grad)):
        # The reference checks b's shape and promotes dtypes; it returns x itself when there is no bias.
        return reference.bias_act(x, b).contiguous(memory_format=torch.channels_last)
    return torch.add(x, b.view(1, -1, 1, 1), out=torch.empty_like(x, memory_format=torch.channels_last))


def filtered_lrelu(x: torch.Tensor, fu: torch.Tensor | None = None, fd: torch.Tensor | None = None,
                   b: torch.Tensor | None = None, up: int = 1, down: int = 1, padding: Padding = 0,
                   gain: float = math.sqrt(2), slope: float = 0.2, clamp: float | None = None,
                   flip_filter: bool = False) -> torch.Tensor:
    """Same contract as `kernels.reference.filtered_lrelu` (bias, up-FIR, lrelu*gain, clamp, down-FIR)."""
    if x.ndim != 4 or any(f is not None and f.ndim != 1 for f in (fu, fd)):
        return reference.filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter)
    if fu is None and fd is None and up == 1 and down == 1 and parse_padding(padding) == (0, 0, 0, 0):
        # Nothing to resample (e.g. the toRGB layer); `activate` may work in place, never on the caller's x.
        biased = reference.bias_act(x, b)  # checks b's shape; x itself when there is no bias
        return fir_matmul.activate(biased if biased is not x else x.clone(), slope, gain, clamp)
    x = _biased_channels_last(x, b)  # all four passes run channels-last
    # Leaky ReLU is positively homogeneous (lrelu(g * x) = g * lrelu(x) for g > 0), so the activation
    # gain rides along in the upsampling taps instead of costing a pass over the largest tensor.
    fold = gain > 0
    x = upfirdn2d_channels_last(x, fu, up, 1, padding, flip_filter, up**2 * (gain if fold else 1))
    x = fir_matmul.activate(x, slope, None if fold else gain, clamp)
    # Back to the contiguous layout the modulated convolutions get (left channels-last, they ran no faster).
    return upfirdn2d_channels_last(x, fd, 1, down, 0, flip_filter, 1).contiguous()


def upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, up: int | Sequence[int] = 1, down: int | Sequence[int] = 1,
              padding: Padding = 0, flip_filter: bool = False, gain: float = 1) -> torch.Tensor:
    """Stand-alone `upfirdn2d`: on CPU the matrix form (`fir_matmul`) is faster on a contiguous tensor (bench/ops.py);
    on CUDA the convolutions run (the matrix form reads the filter back to the host to build its matrices)."""
    if x.device.type == "cpu":
        return fir_matmul.upfirdn2d(x, f, up, down, padding, flip_filter, gain)
    if x.ndim != 4 or (f is not None and f.ndim != 1):
        return reference.upfirdn2d(x, f, up, down, padding, flip_filter, gain)
    return upfirdn2d_channels_last(x, f, up, down, padding, flip_filter, gain)


def bias_act(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """bias_act is elementwise: the reference is already as fast as separate torch ops get."""
    return reference.bias_act(x, *args, **kwargs)
