"""Fast path for separable FIR ops: each 1-D resampling pass is one matrix multiply.

Upsampling by zero insertion, padding/cropping, a 1-D FIR filter and downsampling along one axis
are together a *linear map* from the `in` samples of that axis to the `out` samples:
`y = x @ M` with `M[i, o] = f[o * down + k - pad0]` where `i * up = o * down + k - pad0`
(a banded matrix with at most `taps / up` non-zeros per row). Applying it with a BLAS matmul
does the polyphase decomposition for free (the inserted zeros are never multiplied), skips the
samples that downsampling would throw away, and folds padding and the filter gain into `M`.
Both axes of a separable filter are one matmul each; autograd of a matmul is two matmuls, so the
backward pass is just as fast. The dense band wastes some multiplies on zeros, but at the sizes
StyleGAN uses (axes of 16..1100 samples) MKL/OpenBLAS beat depthwise convolutions on contiguous
(NCHW) tensors and the reference's zero-insertion by an order of magnitude on CPU (bench/ops.py).

Inside `filtered_lrelu`, `kernels.fir_conv` is faster (channels-last depthwise convolutions multiply
no zeros); stand-alone `upfirdn2d` on a contiguous tensor is fastest here, and both backends use it.

Only 1-D (separable) filters take this path; 2-D filters (StyleGAN3-R's radial ones) go to the
reference. Results equal `kernels.reference` up to float rounding (tests/test_kernels_fast.py).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from kernels import reference
from kernels.reference import Padding, parse_padding, parse_scaling

_CACHE_MAX = 256
_matrix_cache: OrderedDict[tuple, AxisResampler] = OrderedDict()


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


@dataclass(frozen=True)
class AxisResampler:
    """One axis of `upfirdn2d` as a matrix, stored dense or as diagonal blocks of its band.

    For long axes (the 4x-upsampled layers of high-resolution stages) a dense matmul would multiply
    mostly zeros: each output sample needs only about `taps / up` inputs. Splitting the outputs into
    blocks of `BLOCK` samples, each with the window of inputs it depends on, keeps the BLAS speed and
    cuts the wasted work to the overlap between windows.
    """

    n_in: int
    n_out: int
    dense: torch.Tensor  # [n_in, n_out]
    blocks: tuple[tuple[int, int, int, int, torch.Tensor], ...]  # (o0, o1, r0, r1, M[r0:r1, o0:o1]); () = dense

    def along_x(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C, H, n_in] -> [N, C, H, n_out]."""
        if not self.blocks:
            return x @ self.dense
        return torch.cat([x[..., r0:r1] @ m for _, _, r0, r1, m in self.blocks], dim=-1)

    def along_y(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C, n_in, W] -> [N, C, n_out, W]."""
        if not self.blocks:
            return self.dense.t() @ x
        return torch.cat([m.t() @ x[..., r0:r1, :] for _, _, r0, r1, m in self.blocks], dim=-2)


BLOCK = 16  # output samples per block of a banded axis
DENSE_MAX_IN = 64  # axes with at most this many inputs stay one dense matmul


def _band_blocks(m: np.ndarray) -> list[tuple[int, int, int, int]]:
    n_in, n_out = m.shape
    nz = m != 0
    blocks = []
    for o0 in range(0, n_out, BLOCK):
        o1 = min(o0 + BLOCK, n_out)
        rows = np.flatnonzero(nz[:, o0:o1].any(axis=1))
        r0, r1 = (int(rows[0]), int(rows[-1]) + 1) if len(rows) else (0, 1)
        blocks.append((o0, o1, r0, r1))
    return blocks


def _resampler(n_in: int, f: torch.Tensor | None, up: int, down: int, pad0: int, pad1: int, flip_filter: bool,
               gain: float, dtype: torch.dtype, device: torch.device) -> AxisResampler:
    taps = None if f is None else tuple(float(v) for v in f.detach().cpu().tolist())
    key = (n_in, taps, up, down, pad0, pad1, flip_filter, gain, dtype, device)
    r = _matrix_cache.get(key)
    if r is None:
        m = resample_matrix(n_in, taps, up, down, pad0, pad1, flip_filter, gain)
        dense = torch.from_numpy(m).to(device, dtype)
        blocks: tuple = ()
        if n_in > DENSE_MAX_IN:
            spans = _band_blocks(m)
            if sum(r1 - r0 for _, _, r0, r1 in spans) < 0.5 * len(spans) * n_in:  # worth it: < half the work
                blocks = tuple((o0, o1, r0, r1, dense[r0:r1, o0:o1].contiguous()) for o0, o1, r0, r1 in spans)
        r = AxisResampler(n_in, m.shape[1], dense, blocks)
        _matrix_cache[key] = r
        if len(_matrix_cache) > _CACHE_MAX:
            _matrix_cache.popitem(last=False)
    else:
        _matrix_cache.move_to_end(key)
    return r


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
    rx = _resampler(w, f, upx, downx, px0, px1, flip_filter, axis_gain, x.dtype, x.device)
    ry = _resampler(h, f, upy, downy, py0, py1, flip_filter, axis_gain, x.dtype, x.device)
    if f is None and gain != 1:
        x = x * gain
    # Do the axis that shrinks the data most first (fewer multiplies in the second pass).
    if ry.n_out / ry.n_in < rx.n_out / rx.n_in:
        return rx.along_x(ry.along_y(x))
    return ry.along_y(rx.along_x(x))


def filtered_lrelu(x: torch.Tensor, fu: torch.Tensor | None = None, fd: torch.Tensor | None = None,
                   b: torch.Tensor | None = None, up: int = 1, down: int = 1, padding: Padding = 0,
                   gain: float = math.sqrt(2), slope: float = 0.2, clamp: float | None = None,
                   flip_filter: bool = False) -> torch.Tensor:
    """Same contract as `kernels.reference.filtered_lrelu` (bias, up-FIR, lrelu*gain, clamp, down-FIR)."""
    if x.ndim != 4 or any(f is not None and f.ndim != 1 for f in (fu, fd)):
        return reference.filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter)
    px0, px1, py0, py1 = parse_padding(padding)
    x = reference.bias_act(x, b)  # checks b's shape; x itself when there is no bias
    # Leaky ReLU is positively homogeneous (lrelu(g * x) = g * lrelu(x) for g > 0), so the activation
    # gain rides along in the upsampling matrix instead of costing a pass over the largest tensor.
    fold = gain > 0
    x = upfirdn2d(x, fu, up=up, padding=[px0, px1, py0, py1], flip_filter=flip_filter,
                  gain=up**2 * (gain if fold else 1))
    x = activate(x, slope, None if fold else gain, clamp)
    return upfirdn2d(x, fd, down=down, flip_filter=flip_filter)


def activate(x: torch.Tensor, slope: float, gain: float | None, clamp: float | None) -> torch.Tensor:
    """`clamp(lrelu(x) * gain)` on the upsampled intermediate of `filtered_lrelu` (gain None: already folded)."""
    clamping = clamp is not None and clamp >= 0
    if torch.is_grad_enabled() and x.requires_grad:
        x = torch.nn.functional.leaky_relu(x, slope)
        if gain is not None:
            x = x * gain
        if clamping:
            x = x.clamp(-clamp, clamp)
    else:  # inference (the explorer): the intermediate is ours, so work in place, no new 4x-sized buffers
        torch.nn.functional.leaky_relu_(x, slope)
        if gain is not None:
            x.mul_(gain)
        if clamping:
            x.clamp_(-clamp, clamp)
    return x


def bias_act(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """bias_act is elementwise: the reference is already as fast as separate torch ops get."""
    return reference.bias_act(x, *args, **kwargs)
