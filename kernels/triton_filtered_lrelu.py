"""Fused `filtered_lrelu` in Triton: bias -> up-FIR -> leaky ReLU * gain, clamp -> down-FIR in one kernel.

StyleGAN3 (Sec. 3.2) applies the nonlinearity at a temporarily higher sampling rate. The plain composition
(`kernels.reference`) writes the up-sampled intermediate, 4-16x the size of the input, to memory several
times; here each program computes one output tile of one image plane (n, c) with the intermediate kept in
registers:

    X [in rows, in cols]  (+ bias; zeros where the padded input has none)
    T = X @ B1x           up-FIR along x          [in rows, mid cols]
    V = B1y^T @ T         up-FIR along y          [mid rows, mid cols]
    A = act(V)            lrelu * gain, clamp     (or, in the backward pass, V * the saved slope of the act)
    U = A @ B2x           down-FIR along x        [mid rows, out cols]
    Y = B2y^T @ U         down-FIR along y        [out rows, out cols]

Each pass of a separable filter along one axis is a linear map between sample positions; restricted to a
tile it is a small banded matrix `B` (`B1[j, m] = c1[up * j - m + off1]`, `B2[m, o] = c2[m - down * o - off2]`)
that is the same for every tile, because tiles start at multiples of the polyphase period. The host builds the
four matrices once per layer (cached) and the four products run on the tensor cores (`tl.dot`, fp32
accumulation; float32 inputs use 3xTF32 for fp32-level accuracy). The bands' zeros cost multiplies that the
official CUDA plugin skips, but tensor cores do them an order of magnitude faster than CUDA cores do FMAs,
and no intermediate ever reaches HBM.

Backward: with `g = D^T dy` (the down-FIR's adjoint), `dx = U^T (act'(V) * g)`, the same fused structure with
up/down swapped, the filters flipped and the activation replaced by a multiply with its derivative. The forward
saves that derivative as one int8 code per intermediate sample (0: clamped, 1: negative side, 2: positive side),
like the official op's sign tensor. The backward is again an autograd function of the same kernel (the
derivative codes are constant), so gradients of any order work: the path-length regulariser differentiates the
generator's backward pass. `db = dx.sum([0, 2, 3])`.

2-D (non-separable, StyleGAN3-R) filters and filters too long for the tiles run as the composition of the
Triton `upfirdn2d` and `bias_act` kernels, which is correct but not fused.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import triton
import triton.language as tl

from kernels import reference, triton_bias_act, triton_upfirdn2d
from kernels.reference import Padding, parse_padding
from kernels.triton_support import host_taps

MODE_ACT, MODE_DERIV = 0, 1
BLOCKS = (16, 32, 64, 128)  # tile dimensions the planner may use (tl.dot needs >= 16, Triton powers of two)
MAX_ACC = 8192  # largest fp32 tile held in registers (elements); 8 warps -> 32 registers per thread


@triton.jit(do_not_specialize=["C", "H", "W", "OH", "OW", "MH", "MW", "tiles_x", "tiles_y", "j0y", "j0x", "jsy",
                               "jsx", "iny", "inx", "m0y", "m0x", "msy", "msx", "toy", "tox", "slope", "gain",
                               "clamp"])
def _fused_kernel(x_ptr, b_ptr, y_ptr, s_ptr, b1x_ptr, b1y_ptr, b2x_ptr, b2y_ptr,
                  C, H, W, OH, OW, MH, MW, tiles_x, tiles_y,
                  j0y, j0x, jsy, jsx, iny, inx, m0y, m0x, msy, msx, toy, tox,
                  slope, gain, clamp,
                  MODE: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_CLAMP: tl.constexpr, WRITE_SIGNS: tl.constexpr,
                  IBY: tl.constexpr, IBX: tl.constexpr, MBY: tl.constexpr, MBX: tl.constexpr,
                  OBY: tl.constexpr, OBX: tl.constexpr, PRECISION: tl.constexpr):
    plane = tl.program_id(0)  # n * C + c
    tile = tl.program_id(1)
    ty = tile // tiles_x
    tx = tile % tiles_x
    plane64 = plane.to(tl.int64)
    dt = b1x_ptr.dtype.element_ty  # the dot operands' type: the input's (fp16/bf16) or fp32

    # Input tile (rows jy, cols jx), zero where the padded input has no sample; the bias only on real samples.
    ri = tl.arange(0, IBY)
    ci = tl.arange(0, IBX)
    jy = j0y + ty * jsy + ri
    jx = j0x + tx * jsx + ci
    in_ok = ((ri < iny) & (jy >= 0) & (jy < H))[:, None] & ((ci < inx) & (jx >= 0) & (jx < W))[None, :]
    xv = tl.load(x_ptr + plane64 * H * W + (jy[:, None] * W + jx[None, :]), mask=in_ok, other=0.0).to(tl.float32)
    if HAS_BIAS:
        xv = tl.where(in_ok, xv + tl.load(b_ptr + plane % C).to(tl.float32), 0.0)

    # Up-FIR along x, then y.
    b1x = tl.load(b1x_ptr + tl.arange(0, IBX)[:, None] * MBX + tl.arange(0, MBX)[None, :])
    t = tl.dot(xv.to(dt), b1x, input_precision=PRECISION)  # [IBY, MBX]
    b1y = tl.load(b1y_ptr + tl.arange(0, MBY)[:, None] * IBY + tl.arange(0, IBY)[None, :])
    v = tl.dot(b1y, t.to(dt), input_precision=PRECISION)  # [MBY, MBX]

    # Activation at the intermediate rate, or the saved derivative.
    rm = tl.arange(0, MBY)
    cm = tl.arange(0, MBX)
    my = m0y + ty * msy + rm
    mx = m0x + tx * msx + cm
    mid_ok = ((my >= 0) & (my < MH))[:, None] & ((mx >= 0) & (mx < MW))[None, :]
    s_tile = s_ptr + plane64 * MH * MW + (my[:, None] * MW + mx[None, :])  # 64-bit base, 32-bit in-plane offsets
    if MODE == 0:
        a = tl.where(v > 0, v, v * slope) * gain
        code = tl.where(v > 0, 2, 1)
        if HAS_CLAMP:  # torch's clamp passes the gradient where -clamp <= value <= clamp
            code = tl.where(tl.abs(a) <= clamp, code, 0)
            a = tl.minimum(tl.maximum(a, -clamp), clamp)
        if WRITE_SIGNS:  # each intermediate sample is written by the tile that owns it (tiles overlap by a halo)
            own = ((rm < msy) | (ty == tiles_y - 1))[:, None] & ((cm < msx) | (tx == tiles_x - 1))[None, :]
            tl.store(s_tile, code.to(tl.int8), mask=mid_ok & own)
        a = tl.where(mid_ok, a, 0.0)
    else:
        code = tl.load(s_tile, mask=mid_ok, other=0)
        a = v * tl.where(code == 2, gain, tl.where(code == 1, gain * slope, 0.0))

    # Down-FIR along x, then y.
    b2x = tl.load(b2x_ptr + tl.arange(0, MBX)[:, None] * OBX + tl.arange(0, OBX)[None, :])
    u = tl.dot(a.to(dt), b2x, input_precision=PRECISION)  # [MBY, OBX]
    b2y = tl.load(b2y_ptr + tl.arange(0, OBY)[:, None] * MBY + tl.arange(0, MBY)[None, :])
    out = tl.dot(b2y, u.to(dt), input_precision=PRECISION)  # [OBY, OBX]

    ro = tl.arange(0, OBY)
    co = tl.arange(0, OBX)
    oy = ty * toy + ro
    ox = tx * tox + co
    out_ok = ((ro < toy) & (oy < OH))[:, None] & ((co < tox) & (ox < OW))[None, :]
    tl.store(y_ptr + plane64 * OH * OW + (oy[:, None] * OW + ox[None, :]), out.to(y_ptr.dtype.element_ty),
             mask=out_ok)


# ----------------------------------------------------------------------------------------------- host side

# Triton's CPU interpreter (tests) multiplies bfloat16 matrices as their raw bits; there, bfloat16 inputs take
# float32 dot operands (loads, stores and the rounding of the result are still bfloat16's).
_BF16_DOTS = type(_fused_kernel).__name__ != "InterpretedFunction"

@dataclass(frozen=True)
class Axis:
    """One axis of the fused op, as index maps (in, mid and out are sample indices along this axis):

    stage 1 (up-FIR):   v[m] = sum_j c1[up * j - m + off1] * x[j]
    stage 2 (down-FIR): y[o] = sum_m c2[m - down * o - off2] * a[m]

    Forward of `filtered_lrelu`: c1 = the up filter flipped (a convolution) times `up`, off1 = pad0;
    c2 = the down filter flipped, off2 = 0. `transposed()` is the adjoint (the backward pass).
    """

    up: int
    down: int
    c1: tuple[float, ...]
    off1: int
    c2: tuple[float, ...]
    off2: int
    n_in: int
    n_mid: int
    n_out: int

    def transposed(self) -> Axis:
        # dx[j] = sum_m c1[up*j - m + off1] g[m] is stage 2 with down' = up, c2' = c1 reversed,
        # off2' = off1 - (len(c1) - 1); g[m] = sum_o c2[m - down*o - off2] dy[o] is stage 1 likewise.
        return Axis(up=self.down, down=self.up, c1=self.c2[::-1], off1=self.off2 + len(self.c2) - 1,
                    c2=self.c1[::-1], off2=self.off1 - len(self.c1) + 1,
                    n_in=self.n_out, n_mid=self.n_mid, n_out=self.n_in)


@dataclass(frozen=True)
class AxisTiles:
    """How one axis is cut into tiles for given block sizes (in, mid, out)."""

    block_in: int
    block_mid: int
    block_out: int
    per_tile: int  # outputs per tile
    tiles: int
    j0: int  # first input sample of tile 0; tile t starts at j0 + t * j_step
    j_step: int
    in_needed: int  # input samples a tile reads (<= block_in)
    m0: int  # first intermediate sample of tile 0; tile t starts at m0 + t * m_step
    m_step: int
    mid_needed: int


def plan_axis(a: Axis, block_in: int, block_mid: int, block_out: int) -> AxisTiles | None:
    """The largest tile (outputs per tile) that fits the blocks, or None."""
    f1, f2 = len(a.c1), len(a.c2)
    if block_mid < f2:
        return None
    per_tile = min(block_out, (block_mid - f2) // a.down + 1)
    m0 = a.off2
    j0 = -((a.off1 - m0) // a.up)  # ceil((m0 - off1) / up): the first input any tap of tile 0 meets
    while per_tile >= 1:
        # Tiles must start at multiples of the polyphase period, so that one band matrix serves all of them.
        if (a.down * per_tile) % a.up == 0:
            mid_needed = (per_tile - 1) * a.down + f2
            in_needed = (m0 + mid_needed - 1 - a.off1 + f1 - 1) // a.up - j0 + 1
            if in_needed <= block_in:
                return AxisTiles(block_in, block_mid, block_out, per_tile, -(-a.n_out // per_tile), j0,
                                 a.down * per_tile // a.up, max(in_needed, 1), m0, a.down * per_tile, mid_needed)
        per_tile -= 1
    return None


def band_matrices(a: Axis, p: AxisTiles) -> tuple[np.ndarray, np.ndarray]:
    """B1 [block_in, block_mid] and B2 [block_mid, block_out] of one axis (float64), zero outside the tile."""
    c1, c2 = np.asarray(a.c1), np.asarray(a.c2)
    r = a.up * p.j0 - p.m0 + a.off1  # B1[j, m] = c1[up * j - m + r], the same for every tile
    j = np.arange(p.block_in)[:, None]
    m = np.arange(p.block_mid)[None, :]
    k = a.up * j - m + r
    ok = (k >= 0) & (k < len(c1)) & (j < p.in_needed) & (m < p.mid_needed)
    b1 = np.where(ok, c1[np.clip(k, 0, len(c1) - 1)], 0.0)
    m = np.arange(p.block_mid)[:, None]
    o = np.arange(p.block_out)[None, :]
    k = m - a.down * o
    ok = (k >= 0) & (k < len(c2)) & (o < p.per_tile)
    b2 = np.where(ok, c2[np.clip(k, 0, len(c2) - 1)], 0.0)
    return b1, b2


MOVE_COST = 30  # tensor-core multiplies per element a tile moves through L1/shared memory (H100: ~500T MAC/s
#               against ~16T 2-byte elements/s of shared memory); bench/triton_tiles.py checks the choice


def plan_cost(py: AxisTiles, px: AxisTiles) -> float:
    """Modelled cost of a plan: (multiplies + MOVE_COST * elements moved) per tile, times the number of tiles."""
    iby, mby, oby, ibx, mbx, obx = py.block_in, py.block_mid, py.block_out, px.block_in, px.block_mid, px.block_out
    macs = iby * ibx * mbx + mby * iby * mbx + mby * mbx * obx + oby * mby * obx
    moved = (ibx * mbx + mby * iby + mbx * obx + oby * mby  # the four band matrices
             + iby * ibx + iby * mbx + mby * mbx + mby * obx + oby * obx)  # input, the three partials, output
    return py.tiles * px.tiles * (macs + MOVE_COST * moved)


def plan_candidates(ay: Axis, ax: Axis, limit: int | None = None) -> list[tuple[AxisTiles, AxisTiles]]:
    """Every feasible pair of axis plans, cheapest first by `plan_cost`."""
    def options(a: Axis) -> list[AxisTiles]:
        out = []
        for bi in BLOCKS:
            for bm in BLOCKS:
                for bo in BLOCKS[:3]:
                    p = plan_axis(a, bi, bm, bo)
                    if p is not None and p not in out:
                        out.append(p)
        return out

    pairs = [(py, px) for py in options(ay) for px in options(ax)
             if max(py.block_in * px.block_mid, py.block_mid * px.block_mid, py.block_mid * px.block_out,
                    py.block_in * px.block_in) <= MAX_ACC]
    pairs.sort(key=lambda p: plan_cost(*p))
    return pairs[:limit]


@lru_cache(maxsize=512)
def plan(ay: Axis, ax: Axis) -> tuple[AxisTiles, AxisTiles] | None:
    """The plan `_launch` uses: the cheapest candidate (None: the filters do not fit any tile)."""
    best = plan_candidates(ay, ax, 1)
    return best[0] if best else None


_CACHE_MAX = 256
_bands: OrderedDict[tuple, tuple[torch.Tensor, ...]] = OrderedDict()


def _band_tensors(ay: Axis, ax: Axis, py: AxisTiles, px: AxisTiles, dtype: torch.dtype, device: torch.device
                  ) -> tuple[torch.Tensor, ...]:
    """(B1x, B1y^T, B2x, B2y^T) in the dot dtype on `device`, cached per layer."""
    key = (ay, ax, py, px, dtype, device)
    hit = _bands.get(key)
    if hit is not None:
        _bands.move_to_end(key)
        return hit
    b1y, b2y = band_matrices(ay, py)
    b1x, b2x = band_matrices(ax, px)
    mats = tuple(torch.from_numpy(np.ascontiguousarray(m)).to(device=device, dtype=dtype)
                 for m in (b1x, b1y.T, b2x, b2y.T))
    _bands[key] = mats
    if len(_bands) > _CACHE_MAX:
        _bands.popitem(last=False)
    return mats


def _launch(x: torch.Tensor, b: torch.Tensor | None, signs: torch.Tensor | None, ay: Axis, ax: Axis, mode: int,
            slope: float, gain: float, clamp: float | None, write_signs: bool,
            tiles: tuple[AxisTiles, AxisTiles] | None = None, num_warps: int | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the fused kernel; returns (output, signs). `signs` is read (MODE_DERIV) or written (write_signs).

    `tiles` and `num_warps` override the plan and the warp count (bench/triton_tiles.py times the candidates).
    """
    x = x.contiguous()
    n, ch = x.shape[:2]
    py, px = tiles if tiles is not None else plan(ay, ax)
    dot_dtype = x.dtype if (x.dtype != torch.bfloat16 or _BF16_DOTS) else torch.float32
    mats = _band_tensors(ay, ax, py, px, dot_dtype, x.device)
    y = torch.empty([n, ch, ay.n_out, ax.n_out], dtype=x.dtype, device=x.device)
    if write_signs:
        signs = torch.empty([n, ch, ay.n_mid, ax.n_mid], dtype=torch.int8, device=x.device)
    if y.numel() == 0:
        return y, signs
    acc = max(py.block_in * px.block_mid, py.block_mid * px.block_mid, py.block_mid * px.block_out)
    # 3xTF32 products keep three times the operands live: float32 tiles move to 8 warps earlier (no spills on sm_90).
    warps4_max = 2048 if dot_dtype == torch.float32 else 4096
    num_warps = num_warps or (4 if acc <= warps4_max else 8)
    grid = (n * ch, py.tiles * px.tiles)
    _fused_kernel[grid](
        x, b if b is not None else x, y, signs if signs is not None else x, *mats,
        ch, ay.n_in, ax.n_in, ay.n_out, ax.n_out, ay.n_mid, ax.n_mid, px.tiles, py.tiles,
        py.j0, px.j0, py.j_step, px.j_step, py.in_needed, px.in_needed, py.m0, px.m0, py.m_step, px.m_step,
        py.per_tile, px.per_tile, float(slope), float(gain), float(clamp if clamp is not None else 0.0),
        MODE=mode, HAS_BIAS=b is not None, HAS_CLAMP=clamp is not None, WRITE_SIGNS=write_signs,
        IBY=py.block_in, IBX=px.block_in, MBY=py.block_mid, MBX=px.block_mid, OBY=py.block_out, OBX=px.block_out,
        PRECISION="tf32x3" if dot_dtype == torch.float32 else "ieee", num_warps=num_warps)
    return y, signs


class _Deriv(torch.autograd.Function):
    """x -> D(act'(V) * U(x)) for fixed derivative codes: linear in x, its adjoint is itself transposed."""

    @staticmethod
    def forward(ctx, x, signs, ay, ax, slope, gain):
        ctx.save_for_backward(signs)
        ctx.args = (ay, ax, slope, gain)
        return _launch(x, None, signs, ay, ax, MODE_DERIV, slope, gain, None, False)[0]

    @staticmethod
    def backward(ctx, dy):
        (signs,) = ctx.saved_tensors
        ay, ax, slope, gain = ctx.args
        return _Deriv.apply(dy, signs, ay.transposed(), ax.transposed(), slope, gain), None, None, None, None, None


class _FilteredLReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, ay, ax, slope, gain, clamp):
        need_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        y, signs = _launch(x, b, None, ay, ax, MODE_ACT, slope, gain, clamp, need_grad)
        ctx.save_for_backward(signs if need_grad else None)
        ctx.args = (ay, ax, slope, gain)
        return y

    @staticmethod
    def backward(ctx, dy):
        (signs,) = ctx.saved_tensors
        ay, ax, slope, gain = ctx.args
        dx = _Deriv.apply(dy, signs, ay.transposed(), ax.transposed(), slope, gain)
        db = dx.sum([0, 2, 3]) if ctx.needs_input_grad[1] else None
        return dx, db, None, None, None, None, None


def _axis(n_in: int, fu: tuple | None, fd: tuple | None, up: int, down: int, pad0: int, pad1: int,
          flip_filter: bool) -> Axis:
    # The reference filters with gain up**2: `up` per axis of a 1-D filter; a missing filter is [[1]] * up**2.
    c1 = (float(up),) if fu is None else tuple(v * up for v in (fu if flip_filter else fu[::-1]))
    c2 = (1.0,) if fd is None else tuple(fd if flip_filter else fd[::-1])
    n_mid = n_in * up + pad0 + pad1 - len(c1) + 1
    if n_mid < len(c2) or n_mid < 1:
        raise ValueError("the padded, upsampled image is smaller than the filter")
    return Axis(up, down, c1, pad0, c2, 0, n_in, n_mid, (n_mid - len(c2)) // down + 1)


@lru_cache(maxsize=512)
def _layer_axes(h: int, w: int, fu: tuple | None, fd: tuple | None, up: int, down: int,
                padding: tuple[int, int, int, int], flip_filter: bool) -> tuple[Axis, Axis] | None:
    """(y axis, x axis) of a layer, or None when its filters fit no tile plan (forward or backward)."""
    px0, px1, py0, py1 = padding
    ax = _axis(w, fu, fd, up, down, px0, px1, flip_filter)
    ay = _axis(h, fu, fd, up, down, py0, py1, flip_filter)
    if plan(ay, ax) is None or plan(ay.transposed(), ax.transposed()) is None:
        return None
    return ay, ax


def filtered_lrelu(x: torch.Tensor, fu: torch.Tensor | None = None, fd: torch.Tensor | None = None,
                   b: torch.Tensor | None = None, up: int = 1, down: int = 1, padding: Padding = 0,
                   gain: float = math.sqrt(2), slope: float = 0.2, clamp: float | None = None,
                   flip_filter: bool = False) -> torch.Tensor:
    """Same contract as `kernels.reference.filtered_lrelu` for float32/float16/bfloat16 tensors."""
    if x.ndim != 4:
        raise ValueError(f"filtered_lrelu expects [N, C, H, W], got shape {tuple(x.shape)}")
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return reference.filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter)
    if b is not None:
        if b.ndim != 1 or b.shape[0] != x.shape[1]:
            raise ValueError(f"bias shape {tuple(b.shape)} does not match x.shape[1]={x.shape[1]}")
        x = x.to(torch.promote_types(x.dtype, b.dtype))  # as `x + b` in the reference
    up, down = int(up), int(down)
    if min(up, down) < 1:
        raise ValueError("up and down factors must be >= 1")
    px0, px1, py0, py1 = parse_padding(padding)
    clamp = float(clamp) if clamp is not None and clamp >= 0 else None
    if fu is None and fd is None and up == 1 and down == 1 and (px0, px1, py0, py1) == (0, 0, 0, 0):
        # Nothing to resample (the toRGB layer): one elementwise pass.
        return triton_bias_act.bias_act(x, b, act="lrelu", alpha=slope, gain=gain, clamp=clamp)
    if any(f is not None and f.ndim != 1 for f in (fu, fd)):
        return _composed(x, fu, fd, b, up, down, (px0, px1, py0, py1), gain, slope, clamp, flip_filter)
    axes = _layer_axes(x.shape[2], x.shape[3], host_taps(fu), host_taps(fd), up, down, (px0, px1, py0, py1),
                       flip_filter)
    if axes is None:  # filters longer than a tile
        return _composed(x, fu, fd, b, up, down, (px0, px1, py0, py1), gain, slope, clamp, flip_filter)
    ay, ax = axes
    if not torch.is_grad_enabled() or not (x.requires_grad or (b is not None and b.requires_grad)):
        # Inference (the explorer): no derivative codes, no autograd bookkeeping.
        return _launch(x, b, None, ay, ax, MODE_ACT, float(slope), float(gain), clamp, False)[0]
    return _FilteredLReLU.apply(x, b, ay, ax, float(slope), float(gain), clamp)


def _composed(x: torch.Tensor, fu: torch.Tensor | None, fd: torch.Tensor | None, b: torch.Tensor | None, up: int,
              down: int, padding: tuple[int, int, int, int], gain: float, slope: float, clamp: float | None,
              flip_filter: bool) -> torch.Tensor:
    """The reference's composition with the Triton `bias_act` and `upfirdn2d` kernels (2-D filters)."""
    x = triton_bias_act.bias_act(x, b)
    x = triton_upfirdn2d.upfirdn2d(x, fu, up=up, padding=padding, gain=up**2, flip_filter=flip_filter)
    x = triton_bias_act.bias_act(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp)
    return triton_upfirdn2d.upfirdn2d(x, fd, down=down, flip_filter=flip_filter)
