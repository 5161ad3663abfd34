"""`upfirdn2d` as a Triton kernel that gathers only the taps that meet real samples (polyphase).

Each output sample `y[o]` of one axis is the correlation `sum_k c[k] * xup[o * down + k - pad0]` over the
zero-inserted input `xup` (`c` = the filter, flipped unless `flip_filter`, times the gain). Only the taps
`k = k0(o) + t * up` land on real samples, so each output reads `ceil(taps / up)` inputs per axis and the
zeros are never touched; down-sampling computes only the kept samples. A 1-D (separable) filter runs as two
launches (along x, then y); a 2-D filter (StyleGAN3-R's radial ones) as one launch over both axes.

The adjoint of upfirdn2d is upfirdn2d with up and down swapped, the filter flipped and the padding mirrored
(`pad0' = taps - 1 - pad0`), so the backward pass is the same kernel and gradients of any order work.
Same contract as `kernels.reference.upfirdn2d`; results agree up to float rounding (fp32 accumulation).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import triton
import triton.language as tl

from kernels import reference
from kernels.reference import Padding, parse_padding, parse_scaling
from kernels.triton_support import host_taps

BLOCK_H, BLOCK_W = 16, 64  # outputs per program (rows x columns: columns are contiguous in memory)


@triton.jit(do_not_specialize=["H", "W", "OH", "OW", "tiles_x", "p0x", "p0y"])
def _upfirdn2d_kernel(x_ptr, c_ptr, y_ptr, H, W, OH, OW, tiles_x, p0x, p0y,
                      UPX: tl.constexpr, UPY: tl.constexpr, DOWNX: tl.constexpr, DOWNY: tl.constexpr,
                      FW: tl.constexpr, FH: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr):
    plane = tl.program_id(0).to(tl.int64)  # n * C + c: one image plane
    tile = tl.program_id(1)
    oy = (tile // tiles_x) * BH + tl.arange(0, BH)
    ox = (tile % tiles_x) * BW + tl.arange(0, BW)
    # Index in the zero-inserted input of tap 0, the first tap that meets a real sample, and that sample.
    # The `+ UP) % UP` keeps the remainder non-negative under C's (truncating) and Python's (floor) semantics.
    sy = oy * DOWNY - p0y
    sx = ox * DOWNX - p0x
    k0y = ((-sy) % UPY + UPY) % UPY
    k0x = ((-sx) % UPX + UPX) % UPX
    jy0 = (sy + k0y) // UPY  # exact division
    jx0 = (sx + k0x) // UPX
    x_plane = x_ptr + plane * H * W
    acc = tl.zeros([BH, BW], dtype=tl.float32)
    for ty in range(0, (FH + UPY - 1) // UPY):
        ky = k0y + ty * UPY
        jy = jy0 + ty
        row_ok = (ky < FH) & (jy >= 0) & (jy < H)
        for tx in range(0, (FW + UPX - 1) // UPX):
            kx = k0x + tx * UPX
            jx = jx0 + tx
            col_ok = (kx < FW) & (jx >= 0) & (jx < W)
            tap_ok = (ky < FH)[:, None] & (kx < FW)[None, :]
            w = tl.load(c_ptr + ky[:, None] * FW + kx[None, :], mask=tap_ok, other=0.0)
            v = tl.load(x_plane + (jy[:, None] * W + jx[None, :]), mask=row_ok[:, None] & col_ok[None, :], other=0.0)
            acc += w * v.to(tl.float32)
    out_ok = (oy < OH)[:, None] & (ox < OW)[None, :]
    tl.store(y_ptr + plane * OH * OW + (oy[:, None] * OW + ox[None, :]), acc.to(y_ptr.dtype.element_ty), mask=out_ok)


def _launch(x: torch.Tensor, c: torch.Tensor, up: tuple[int, int], down: tuple[int, int], p0: tuple[int, int],
            out_size: tuple[int, int]) -> torch.Tensor:
    """x [N, C, H, W], c [FH, FW] float32 correlation taps; up/down/p0 as (x, y); out_size (OH, OW)."""
    x = x.contiguous()
    n, ch, h, w = x.shape
    oh, ow = out_size
    y = torch.empty([n, ch, oh, ow], dtype=x.dtype, device=x.device)
    if y.numel() == 0:
        return y
    tiles_x = triton.cdiv(ow, BLOCK_W)
    grid = (n * ch, triton.cdiv(oh, BLOCK_H) * tiles_x)
    _upfirdn2d_kernel[grid](x, c, y, h, w, oh, ow, tiles_x, p0[0], p0[1], UPX=up[0], UPY=up[1], DOWNX=down[0],
                            DOWNY=down[1], FW=c.shape[1], FH=c.shape[0], BH=BLOCK_H, BW=BLOCK_W)
    return y


class _UpFirDn2d(torch.autograd.Function):
    """One launch; its adjoint is the same op transposed, so this is differentiable to any order."""

    @staticmethod
    def forward(ctx, x, c, up, down, p0, out_size):
        ctx.save_for_backward(c)
        ctx.args = (up, down, p0, tuple(x.shape[2:]))
        return _launch(x, c, up, down, p0, out_size)

    @staticmethod
    def backward(ctx, dy):
        (c,) = ctx.saved_tensors
        up, down, p0, in_size = ctx.args
        fh, fw = c.shape
        p0_t = (fw - 1 - p0[0], fh - 1 - p0[1])
        dx = _UpFirDn2d.apply(dy, c.flip([0, 1]), down, up, p0_t, in_size)
        return dx, None, None, None, None, None


_CACHE_MAX = 256
_filters: OrderedDict[tuple, torch.Tensor] = OrderedDict()


def correlation_taps(taps: tuple, flip_filter: bool, gain: float, device: torch.device,
                     column: bool = False) -> torch.Tensor:
    """float32 [FH, FW] on `device`: the filter as `_upfirdn2d_kernel` correlates with it (cached).

    A 1-D filter becomes one row [1, taps], or one column [taps, 1] with `column`.
    """
    key = (taps, flip_filter, gain, device, column)
    c = _filters.get(key)
    if c is None:
        t = torch.tensor(taps, dtype=torch.float64)
        t = t if t.ndim == 2 else t[None]
        if not flip_filter:
            t = t.flip([0, 1])  # a true convolution, as in the reference
        t = t.t() if column else t
        c = (t * gain).to(device=device, dtype=torch.float32).contiguous()
        _filters[key] = c
        if len(_filters) > _CACHE_MAX:
            _filters.popitem(last=False)
    else:
        _filters.move_to_end(key)
    return c


def upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, up: int | Sequence[int] = 1, down: int | Sequence[int] = 1,
              padding: Padding = 0, flip_filter: bool = False, gain: float = 1) -> torch.Tensor:
    """Same contract as `kernels.reference.upfirdn2d` (float32/float16/bfloat16; others go to the reference)."""
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects [N, C, H, W], got shape {tuple(x.shape)}")
    if f is not None and f.ndim not in (1, 2):
        raise ValueError(f"filter must be 1-D or 2-D, got shape {tuple(f.shape)}")
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return reference.upfirdn2d(x, f, up, down, padding, flip_filter, gain)
    upx, upy = parse_scaling(up)
    downx, downy = parse_scaling(down)
    px0, px1, py0, py1 = parse_padding(padding)
    if min(upx, upy, downx, downy) < 1:
        raise ValueError("up and down factors must be >= 1")
    fw, fh = reference.filter_size(f)
    _, _, h, w = x.shape
    if w * upx + px0 + px1 < fw or h * upy + py0 + py1 < fh:
        raise ValueError("the padded, upsampled image is smaller than the filter")
    ow = (w * upx + px0 + px1 - fw) // downx + 1
    oh = (h * upy + py0 + py1 - fh) // downy + 1
    taps = host_taps(f) if f is not None else ((1.0,),)
    if f is not None and f.ndim == 1:  # separable: along x (carrying the whole gain), then along y
        cx = correlation_taps(taps, flip_filter, float(gain), x.device)
        cy = correlation_taps(taps, flip_filter, 1.0, x.device, column=True)
        x = _UpFirDn2d.apply(x, cx, (upx, 1), (downx, 1), (px0, 0), (h, ow))
        return _UpFirDn2d.apply(x, cy, (1, upy), (1, downy), (0, py0), (oh, ow))
    c = correlation_taps(taps, flip_filter, float(gain), x.device)
    return _UpFirDn2d.apply(x, c, (upx, upy), (downx, downy), (px0, py0), (oh, ow))
