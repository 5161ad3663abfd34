"""Fast path for separable FIR ops: each 1-D resampling pass is one matrix multiply.

Upsampling by zero insertion, padding/cropping, a 1-D FIR filter and downsampling along one axis
are together a *linear map* from the `in` samples of that axis to the `out` samples:
`y = x @ M` with `M[i, o] = f[o * down + k - pad0]` where `i * up = o * down + k - pad0`
(a banded matrix with at most `taps / up` non-zeros per row). Applying it with a BLAS matmul
does the polyphase decomposition for free (the inserted zeros are never multiplied), skips the
samples that downsampling would throw away, and folds padding and the filter gain into `M`.
Both axes of a separable filter are one matmul each; autograd of a matmul is two matmuls, so the
backward pass is just as fast. The dense band wastes some multiplies on zeros, but at the sizes
StyleGAN uses (axes of 16..1100 samples) MKL/OpenBLAS beat depthwise convolutions and the
reference's zero-insertion by an order of magnitude on CPU (bench/ops.py).

Only 1-D (separable) filters take this path; 2-D filters (StyleGAN3-R's radial ones) go to the
reference. Results equal `kernels.reference` up to float rounding (tests/test_kernels_fast.py).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch

from kernels import reference
from kernels.reference import Padding, parse_padding, parse_scaling

_CACHE_MAX = 256
_matrix_cache: OrderedDict[tuple, torch.Tensor] = OrderedDict()


def resample_matrix(n_in: int, f: np.ndarray | None, up: int, down: int, pad0: int, pad1: int,
                    flip_filter: bool, gain: float) -> np.ndarray:
    """[n_in, n_out] float64 matrix of one axis of `upfirdn2d` (see module doc)."""
    taps = np.ones([1]) if f is None else np.asarray(f, dtype=np.float64) * gain
    if not flip_filter:
        taps = taps[::-1]  # a true convolution, as in the reference
    n_up = n_in * up + pad0 + pad1  # length of the upsampled, padded signal
    n_out = (n_up - len(taps)) // down + 1
    if n_out < 1:
        raise ValueError("the padded, upsampled image is smaller than the filter")
    m = np.zeros([n_in, n_out])
    for o in range(n_out):
        for k, tap in enumerate(taps):
            j = o * down + k - pad0  # index in the zero-inserted (unpadded) signal
            if j % up == 0 and 0 <= j // up < n_in:
                m[j // up, o] += tap
    return m


def _matrix(n_in: int, f: torch.Tensor | None, up: int, down: int, pad0: int, pad1: int, flip_filter: bool,
            gain: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    taps = None if f is None else tuple(float(v) for v in f.detach().cpu().tolist())
    key = (n_in, taps, up, down, pad0, pad1, flip_filter, gain, dtype, device)
    m = _matrix_cache.get(key)
    if m is None:
        m = torch.from_numpy(resample_matrix(n_in, taps, up, down, pad0, pad1, flip_filter, gain)).to(device, dtype)
        _matrix_cache[key] = m
        if len(_matrix_cache) > _CACHE_MAX:
            _matrix_cache.popitem(last=False)
    else:
        _matrix_cache.move_to_end(key)
    return m


def _resample_x(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return x @ m  # [N, C, H, W_in] @ [W_in, W_out] -> [N, C, H, W_out]


def _resample_y(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return m.t() @ x  # [H_out, H_in] @ [N, C, H_in, W] -> [N, C, H_out, W]


def supports(x: torch.Tensor) -> bool:
    """CPU float tensors (on CUDA the Triton/reference paths run; this path is tested on CPU)."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


def upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, up: int | Sequence[int] = 1, down: int | Sequence[int] = 1,
              padding: Padding = 0, flip_filter: bool = False, gain: float = 1) -> torch.Tensor:
    """Same contract as `kernels.reference.upfirdn2d`."""
    if x.ndim != 4 or (f is not None and f.ndim != 1):
        return reference.upfirdn2d(x, f, up, down, padding, flip_filter, gain)
    upx, upy = parse_scaling(up)
    downx, downy = parse_scaling(down)
    if min(upx, upy, downx, downy) < 1:
        raise ValueError("up and down factors must be >= 1")
    px0, px1, py0, py1 = parse_padding(padding)
    axis_gain = math.sqrt(gain) if f is not None else 1.0  # the reference spreads the gain over both passes
    _, _, h, w = x.shape
    mx = _matrix(w, f, upx, downx, px0, px1, flip_filter, axis_gain, x.dtype, x.device)
    my = _matrix(h, f, upy, downy, py0, py1, flip_filter, axis_gain, x.dtype, x.device)
    if f is None and gain != 1:
        x = x * gain
    # Do the axis that shrinks the data most first (fewer multiplies in the second pass).
    if my.shape[1] / my.shape[0] < mx.shape[1] / mx.shape[0]:
        return _resample_x(_resample_y(x, my), mx)
    return _resample_y(_resample_x(x, mx), my)


def filtered_lrelu(x: torch.Tensor, fu: torch.Tensor | None = None, fd: torch.Tensor | None = None,
                   b: torch.Tensor | None = None, up: int = 1, down: int = 1, padding: Padding = 0,
                   gain: float = math.sqrt(2), slope: float = 0.2, clamp: float | None = None,
                   flip_filter: bool = False) -> torch.Tensor:
    """Same contract as `kernels.reference.filtered_lrelu` (bias, up-FIR, lrelu*gain, clamp, down-FIR)."""
    if x.ndim != 4 or any(f is not None and f.ndim != 1 for f in (fu, fd)):
        return reference.filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter)
    px0, px1, py0, py1 = parse_padding(padding)
    if b is not None:
        if b.ndim != 1 or b.shape[0] != x.shape[1]:
            raise ValueError(f"bias shape {tuple(b.shape)} does not match x.shape[1]={x.shape[1]}")
        x = x + b.reshape(1, -1, 1, 1)
    # Leaky ReLU is positively homogeneous (lrelu(g * x) = g * lrelu(x) for g > 0), so the activation
    # gain rides along in the upsampling matrix instead of costing a pass over the largest tensor.
    fold = gain > 0
    x = upfirdn2d(x, fu, up=up, padding=[px0, px1, py0, py1], flip_filter=flip_filter,
                  gain=up**2 * (gain if fold else 1))
    clamping = clamp is not None and clamp >= 0
    if torch.is_grad_enabled() and x.requires_grad:
        x = torch.nn.functional.leaky_relu(x, slope)
        if not fold:
            x = x * gain
        if clamping:
            x = x.clamp(-clamp, clamp)
    else:  # inference (the explorer): the intermediate is ours, so work in place, no new 4x-sized buffers
        torch.nn.functional.leaky_relu_(x, slope)
        if not fold:
            x.mul_(gain)
        if clamping:
            x.clamp_(-clamp, clamp)
    return upfirdn2d(x, fd, down=down, flip_filter=flip_filter)


def bias_act(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """bias_act is elementwise: the reference is already as fast as separate torch ops get."""
    return reference.bias_act(x, *args, **kwargs)
