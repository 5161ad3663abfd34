"""The Triton kernels (`kernels.triton_*`) against the reference: values, gradients (first and second order),
every generator layer shape, odd sizes, up/down 1/2/4, half precision; their tile planner; the dispatcher.

Without a GPU the kernels run on CPU tensors in Triton's interpreter: `TRITON_INTERPRET=1` must be set before
`kernels.triton_*` is first imported (Triton reads it when it decorates a kernel), so this module sets it at
import, for the whole pytest process (nothing else imports those modules on CPU; the variable only changes
how Triton kernels are built). With a GPU they are compiled and the same tests run on CUDA tensors; the
`cuda`-marked tests at the end need one (bench/device_check.sh runs them).

Tolerances: float32 results are compared with the reference evaluated in float64 on the same inputs (the
kernels accumulate in float32; on GPUs the float32 matrix products use 3xTF32, ~1e-6 relative). Half precision
rounds the intermediates to the input's type, as the reference does: float16 ~1e-3, bfloat16 ~1e-2 relative.
Half-precision gradients are compared by relative L2 norm: where a pre-activation lies within rounding of 0,
float16 and float64 may take different sides of leaky ReLU's kink (slope 1 vs 0.2), a large difference at
that one sample that says nothing about the kernel.
"""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

pytest.importorskip("triton")

from core.networks.generator import Generator  # noqa: E402
from core.networks.presets import preset_config  # noqa: E402
from kernels import dispatch, fir_conv, reference, triton_support  # noqa: E402
from kernels import triton_bias_act as tba  # noqa: E402
from kernels import triton_filtered_lrelu as tfl  # noqa: E402
from kernels import triton_upfirdn2d as tup  # noqa: E402
from tests.helpers import REPO  # noqa: E402

INTERPRETED = type(tfl._fused_kernel).__name__ == "InterpretedFunction"
DEVICE = "cpu" if INTERPRETED else "cuda"
if not INTERPRETED and not torch.cuda.is_available():
    pytest.skip("the Triton kernels were compiled for a GPU in this process, and there is none",
                allow_module_level=True)

TOL = {torch.float32: 2e-5, torch.float16: 3e-3, torch.bfloat16: 2e-2}


def _err(got: torch.Tensor, want: torch.Tensor) -> float:
    assert got.shape == want.shape, f"shape {tuple(got.shape)} vs {tuple(want.shape)}"
    assert torch.isfinite(got).all()
    got, want = got.detach().double(), want.detach().double()
    return float((got - want).abs().max() / want.abs().max().clamp_min(1.0))


def _err_l2(got: torch.Tensor, want: torch.Tensor) -> float:
    assert got.shape == want.shape and torch.isfinite(got).all()
    got, want = got.detach().double(), want.detach().double()
    return float((got - want).norm() / want.norm().clamp_min(1e-12))


def _err_bulk(got: torch.Tensor, want: torch.Tensor, q: float = 0.999) -> float:
    """The q-quantile of the per-element error (relative to max |want|): large float32 gradients can meet a
    kink flip or two (see above), which move a few dozen elements and nothing else."""
    assert got.shape == want.shape and torch.isfinite(got).all()
    got, want = got.detach().double().flatten(), want.detach().double().flatten()
    err = (got - want).abs() / want.abs().max().clamp_min(1.0)
    return float(err.kthvalue(max(1, int(q * err.numel()))).values)


def _f64(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach().double()


def _grads(out: torch.Tensor, inputs: tuple[torch.Tensor, ...], g: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad(out, inputs, g.to(out.dtype))


# ----------------------------------------------------------------------------------------------- bias_act

@pytest.mark.parametrize("act,bias,clamp,shape,dim", [
    (act, bias, clamp, shape, dim)
    for act, (bias, clamp), (shape, dim) in itertools.product(
        ["linear", "relu", "lrelu"], [(True, None), (True, 0.5), (False, 0.8)],
        [((2, 3, 5, 7), 1), ((6, 33), 1), ((3, 4, 5), 2)])])
def test_bias_act_matches_reference(act: str, bias: bool, clamp: float | None, shape: tuple, dim: int) -> None:
    torch.manual_seed(len(shape) * 10 + dim)
    x = torch.randn(shape, device=DEVICE, requires_grad=True)
    b = torch.randn(shape[dim], device=DEVICE, requires_grad=True) if bias else None
    kw = dict(dim=dim, act=act, alpha=0.3, gain=1.7, clamp=clamp)
    got = tba.bias_act(x, b, **kw)
    xr, br = _f64(x).requires_grad_(True), _f64(b).requires_grad_(True) if bias else None
    want = reference.bias_act(xr, br, **kw)
    assert _err(got, want) < TOL[torch.float32]
    g = torch.randn_like(want)
    inputs = (x, b) if bias else (x,)
    for a, r in zip(_grads(got, inputs, g), _grads(want, (xr, br) if bias else (xr,), g)):
        assert _err(a, r) < TOL[torch.float32]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_bias_act_half_precision(dtype: torch.dtype) -> None:
    torch.manual_seed(1)
    x = torch.randn(2, 8, 9, 11, device=DEVICE).to(dtype)
    b = torch.randn(8, device=DEVICE).to(dtype)
    got = tba.bias_act(x, b, act="lrelu", clamp=1.0)
    assert got.dtype == dtype
    assert _err(got, reference.bias_act(_f64(x), _f64(b), act="lrelu", clamp=1.0)) < TOL[dtype]


def test_bias_act_second_order_gradients_match_reference() -> None:
    """The mapping/affine layers sit inside the path-length regulariser's double backward."""
    torch.manual_seed(2)
    x = torch.randn(4, 6, device=DEVICE, requires_grad=True)
    w = torch.randn(6, 6, device=DEVICE, requires_grad=True)
    b = torch.randn(6, device=DEVICE, requires_grad=True)

    def second(fn, x, w, b):
        y = fn(x @ w, b, act="lrelu", clamp=2.0)
        (gx,) = torch.autograd.grad(y.pow(3).sum(), x, create_graph=True)
        return torch.autograd.grad(gx.square().sum(), (w, b))

    got = second(tba.bias_act, x, w, b)
    want = second(reference.bias_act, *(_f64(t).requires_grad_(True) for t in (x, w, b)))
    for a, r in zip(got, want):
        assert _err(a, r) < 1e-4


def test_bias_act_sends_other_activations_to_the_reference() -> None:
    x = torch.randn(2, 3, device=DEVICE)
    assert torch.equal(tba.bias_act(x, act="tanh"), reference.bias_act(x, act="tanh"))
    with pytest.raises(ValueError, match="bias shape"):
        tba.bias_act(x, torch.zeros(4, device=DEVICE))


# ----------------------------------------------------------------------------------------------- upfirdn2d

_FILTERS = {"4taps": lambda: torch.rand(4) + 0.1, "7taps": lambda: torch.rand(7) + 0.1,
            "2d": lambda: torch.rand(3, 4) + 0.1, "none": lambda: None}
_UPDOWN = [(1, 1), (2, 1), (1, 2), (2, 2), (4, 2), (1, 4), (4, 1)]
_PADS = [(0, 0, 0, 0), (3, 2, 1, 4), (-1, 2, 0, -2)]


@pytest.mark.parametrize("up,down,pad,filt,flip", [
    (u, d, _PADS[i % 3], f, i % 2 == 1) for i, ((u, d), f) in enumerate(itertools.product(_UPDOWN, _FILTERS))])
def test_upfirdn2d_matches_reference(up: int, down: int, pad: tuple, filt: str, flip: bool) -> None:
    torch.manual_seed(up * 7 + down)
    f = _FILTERS[filt]()
    f = None if f is None else f.to(DEVICE)
    x = torch.randn(2, 3, 9, 11, device=DEVICE, requires_grad=True)
    kw = dict(up=up, down=[down, max(down // 2, 1)], padding=pad, flip_filter=flip, gain=3.0)
    xr = _f64(x).requires_grad_(True)
    try:
        want = reference.upfirdn2d(xr, _f64(f), **kw)
    except ValueError:
        with pytest.raises(ValueError):
            tup.upfirdn2d(x, f, **kw)
        return
    got = tup.upfirdn2d(x, f, **kw)
    assert _err(got, want) < TOL[torch.float32]
    g = torch.randn_like(want)
    assert _err(_grads(got, (x,), g)[0], _grads(want, (xr,), g)[0]) < TOL[torch.float32]


def test_upfirdn2d_second_order_gradients() -> None:
    """The adjoint is the same op transposed: a third application gives back the forward map."""
    torch.manual_seed(3)
    x = torch.randn(1, 2, 7, 6, device=DEVICE, requires_grad=True)
    f = torch.rand(5, device=DEVICE)
    y = tup.upfirdn2d(x, f, up=2, down=1, padding=[2, 1, 3, 0])
    g = torch.randn_like(y, requires_grad=True)
    (gx,) = torch.autograd.grad(y, x, g, create_graph=True)
    (gg,) = torch.autograd.grad(gx, g, torch.ones_like(gx))
    want = reference.upfirdn2d(torch.ones_like(_f64(x)), _f64(f), up=2, down=1, padding=[2, 1, 3, 0])
    assert _err(gg, want) < TOL[torch.float32]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_upfirdn2d_half_precision(dtype: torch.dtype) -> None:
    torch.manual_seed(4)
    x = torch.randn(1, 3, 10, 9, device=DEVICE).to(dtype)
    f = torch.rand(6, device=DEVICE)
    got = tup.upfirdn2d(x, f, up=2, down=2, padding=[3, 2, 3, 2], gain=4)
    assert got.dtype == dtype
    assert _err(got, reference.upfirdn2d(_f64(x), _f64(f), up=2, down=2, padding=[3, 2, 3, 2], gain=4)) < TOL[dtype]


# ----------------------------------------------------------------------------------------------- filtered_lrelu

def _check_filtered_lrelu(x: torch.Tensor, fu, fd, b, tol: float = TOL[torch.float32], grads: bool = True,
                          bulk: bool = False, **kw) -> None:
    """Values and gradients against the float64 reference. Half precision must also be as accurate as the
    reference run in that precision (within 1.5x): its gradients carry the kink flips described above."""
    def run(fn, x, b, fu, fd):
        x = x.detach().requires_grad_(grads)
        b = None if b is None else b.detach().requires_grad_(grads)
        y = fn(x, fu, fd, b, **kw)
        if not grads:
            return (y,)
        g = torch.randn(y.shape, generator=torch.Generator().manual_seed(0)).to(y)
        return (y, *torch.autograd.grad(y, (x, b) if b is not None else (x,), g))

    got = run(tfl.filtered_lrelu, x, b, fu, fd)
    assert got[0].dtype == x.dtype and got[0].is_contiguous()
    want = run(reference.filtered_lrelu, _f64(x), _f64(b), _f64(fu), _f64(fd))
    if x.dtype == torch.float32:
        for i, (a, r) in enumerate(zip(got, want)):
            assert (_err_bulk(a, r) if bulk and i > 0 else _err(a, r)) < tol, f"output {i}"
        return
    same = run(reference.filtered_lrelu, x, b, fu, fd)
    for i, (a, s, r) in enumerate(zip(got, same, want)):
        compare = _err if i == 0 else _err_l2
        assert compare(a, r) < 1.5 * compare(s, r) + tol, f"output {i}: {compare(a, r):.3g} vs {compare(s, r):.3g}"


@pytest.mark.parametrize("up,down", list(itertools.product([1, 2, 4], [1, 2, 4])))
def test_filtered_lrelu_matches_reference(up: int, down: int) -> None:
    """Odd sizes, asymmetric padding, with and without clamp/flip/bias, every up/down in {1, 2, 4}."""
    torch.manual_seed(up * 10 + down)
    i = up * 3 + down
    fu = torch.rand(3 * up + i % 2, device=DEVICE) if up > 1 else None
    fd = torch.rand(3 * down + 1, device=DEVICE) if down > 1 else None
    x = torch.randn(2, 3, 11, 9, device=DEVICE)
    b = torch.randn(3, device=DEVICE) if i % 3 else None
    _check_filtered_lrelu(x, fu, fd, b, up=up, down=down, padding=[4, 3, 2, 5], gain=math.sqrt(2), slope=0.2,
                          clamp=0.7 if i % 2 else None, flip_filter=i % 4 == 1)


def test_filtered_lrelu_negative_gain_and_no_filters_with_padding() -> None:
    torch.manual_seed(5)
    x = torch.randn(1, 2, 6, 5, device=DEVICE)
    f = torch.rand(4, device=DEVICE)
    _check_filtered_lrelu(x, f, f, None, up=2, down=2, padding=3, gain=-1.5)
    _check_filtered_lrelu(x, None, None, torch.randn(2, device=DEVICE), up=2, down=1, padding=[1, 0, -1, 2])


def test_inference_path_matches_reference() -> None:
    """Without grad (the explorer) the kernels run without autograd and without writing derivative codes."""
    torch.manual_seed(12)
    f = torch.rand(8, device=DEVICE)
    x = torch.randn(2, 3, 12, 11, device=DEVICE, requires_grad=True)
    b = torch.randn(3, device=DEVICE)
    kw = dict(up=2, down=2, padding=[5, 4, 5, 4], clamp=1.5)
    with torch.no_grad():
        y = tfl.filtered_lrelu(x, f, f, b, **kw)
        z = tba.bias_act(x, b, act="lrelu", clamp=0.5)
    assert y.grad_fn is None and z.grad_fn is None
    assert _err(y, reference.filtered_lrelu(_f64(x), _f64(f), _f64(f), _f64(b), **kw)) < TOL[torch.float32]
    assert _err(z, reference.bias_act(_f64(x), _f64(b), act="lrelu", clamp=0.5)) < TOL[torch.float32]


def test_filtered_lrelu_without_resampling_is_bias_act() -> None:
    """The toRGB layer (no filters, no padding): one elementwise pass, same values as the reference."""
    x = torch.randn(2, 3, 5, 5, device=DEVICE)
    _check_filtered_lrelu(x, None, None, torch.randn(3, device=DEVICE), gain=1.0, slope=1.0, clamp=0.5)


def _layer_cases(res: int) -> list[tuple[str, dict, int]]:
    """One case per distinct (input size, up, down, taps, padding) among the tiny generator's layers."""
    G = Generator(preset_config("tiny", res, 3))
    cases, seen = [], set()
    for layer in G.synthesis.layers():
        n = layer.spec.in_size + layer.conv_kernel - 1
        kw = dict(fu=layer.up_filter, fd=layer.down_filter, up=layer.up_factor, down=layer.down_factor,
                  padding=layer.padding, clamp=layer.conv_clamp,
                  gain=1.0 if layer.spec.is_torgb else math.sqrt(2), slope=1.0 if layer.spec.is_torgb else 0.2)
        key = (n, layer.up_factor, layer.down_factor, *reference.filter_size(layer.up_filter),
               *reference.filter_size(layer.down_filter), tuple(layer.padding))
        if key not in seen:
            seen.add(key)
            cases.append((layer.spec.name, kw, n))
    return cases


@pytest.mark.parametrize("name,kw,n", [c for res in (32, 64) for c in _layer_cases(res)],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_every_generator_layer_matches_reference(name: str, kw: dict, n: int) -> None:
    """Every distinct layer shape of a 16->64 tiny generator (stem, 2x and 4x heads, toRGB), values and grads.

    Two channels stand in for the layer's many: channels are independent planes of the same kernel.
    """
    torch.manual_seed(n)
    kw = dict(kw, fu=None if kw["fu"] is None else kw["fu"].to(DEVICE),
              fd=None if kw["fd"] is None else kw["fd"].to(DEVICE))
    x = torch.randn(1, 2, n, n, device=DEVICE) * 2
    _check_filtered_lrelu(x, b=torch.randn(2, device=DEVICE), **kw)


def test_radial_filters_match_reference() -> None:
    """StyleGAN3-R's 2-D (radial) down filters run as the composition of the Triton ops."""
    cfg = preset_config("tiny", 16, 3)
    cfg.synthesis.use_radial_filters = True
    layer = next(la for la in Generator(cfg).synthesis.layers() if la.down_filter is not None
                 and la.down_filter.ndim == 2)
    n = layer.spec.in_size + layer.conv_kernel - 1
    torch.manual_seed(6)
    x = torch.randn(1, 1, n, n, device=DEVICE)
    _check_filtered_lrelu(x, layer.up_filter.to(DEVICE), layer.down_filter.to(DEVICE), torch.randn(1, device=DEVICE),
                          up=layer.up_factor, down=layer.down_factor, padding=layer.padding, clamp=256.0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_filtered_lrelu_half_precision(dtype: torch.dtype) -> None:
    """fp16 is what the generator's high-resolution layers run on CUDA; bf16 what autocast training gives."""
    torch.manual_seed(7)
    f = torch.rand(12, device=DEVICE)
    x = (torch.randn(2, 3, 13, 10, device=DEVICE) * 3).to(dtype)
    b = torch.randn(3, device=DEVICE).to(dtype)
    _check_filtered_lrelu(x, f, f, b, tol=TOL[dtype], up=2, down=2, padding=[7, 6, 7, 6], clamp=4.0)


def test_filtered_lrelu_second_order_gradients_match_reference() -> None:
    """The path-length regulariser differentiates the generator's backward pass (create_graph=True)."""
    torch.manual_seed(8)
    x = torch.randn(1, 2, 8, 7, device=DEVICE, requires_grad=True)
    w = torch.randn(2, 2, 1, 1, device=DEVICE, requires_grad=True)
    b = torch.randn(2, device=DEVICE, requires_grad=True)
    fu, fd = torch.rand(4, device=DEVICE), torch.rand(6, device=DEVICE)
    kw = dict(up=2, down=2, padding=[2, 1, 3, 2], clamp=1.0)

    def second(fn, x, w, b, fu, fd):
        y = fn(torch.nn.functional.conv2d(x, w), fu, fd, b, **kw)
        (gx,) = torch.autograd.grad(y.pow(3).sum(), x, create_graph=True)
        return torch.autograd.grad(gx.square().sum(), (w, b))

    got = second(tfl.filtered_lrelu, x, w, b, fu, fd)
    want = second(reference.filtered_lrelu, *(_f64(t).requires_grad_(True) for t in (x, w, b)), _f64(fu), _f64(fd))
    for a, r in zip(got, want):
        assert _err(a, r) < 1e-4


def test_many_tiles_share_the_saved_derivative() -> None:
    """Several tiles per axis: tiles overlap at the intermediate rate and each sample's code has one writer."""
    torch.manual_seed(9)
    f = torch.rand(12, device=DEVICE)
    x = torch.randn(1, 1, 70, 61, device=DEVICE)
    kw = dict(up=2, down=2, padding=[7, 6, 7, 6])
    ax = tfl._axis(61, triton_support.host_taps(f), triton_support.host_taps(f), 2, 2, 7, 6, False)
    ay = tfl._axis(70, triton_support.host_taps(f), triton_support.host_taps(f), 2, 2, 7, 6, False)
    py, px = tfl.plan(ay, ax)
    assert py.tiles > 1 and px.tiles > 1
    _check_filtered_lrelu(x, f, f, None, **kw)


def test_filters_longer_than_a_tile_fall_back_to_the_composition(monkeypatch: pytest.MonkeyPatch) -> None:
    def clear() -> None:
        tfl.plan.cache_clear()
        tfl._layer_axes.cache_clear()

    monkeypatch.setattr(tfl, "BLOCKS", (16, 32))
    clear()
    try:
        torch.manual_seed(10)
        fu, fd = torch.rand(4, device=DEVICE), torch.rand(40, device=DEVICE)
        ay = tfl._axis(45, triton_support.host_taps(fu), triton_support.host_taps(fd), 2, 1, 2, 1, False)
        assert tfl.plan(ay, ay) is None
        _check_filtered_lrelu(torch.randn(1, 1, 45, 45, device=DEVICE), fu, fd, None, up=2, padding=[2, 1, 2, 1])
    finally:
        clear()


def test_filtered_lrelu_rejects_bad_input() -> None:
    x = torch.randn(1, 2, 4, 4, device=DEVICE)
    f = torch.rand(12, device=DEVICE)
    with pytest.raises(ValueError, match="smaller than the filter"):
        tfl.filtered_lrelu(x, f, f, up=1, down=1)
    with pytest.raises(ValueError, match="bias shape"):
        tfl.filtered_lrelu(x, b=torch.zeros(3, device=DEVICE))
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        tfl.filtered_lrelu(x[0])


# ----------------------------------------------------------------------------------------------- planner

def _full_stage_matrices(a: tfl.Axis) -> tuple[np.ndarray, np.ndarray]:
    """Stage 1 [n_in, n_mid] and stage 2 [n_mid, n_out] of an axis, straight from the index maps."""
    j, m = np.arange(a.n_in)[:, None], np.arange(a.n_mid)[None, :]
    k = a.up * j - m + a.off1
    m1 = np.where((k >= 0) & (k < len(a.c1)), np.asarray(a.c1)[np.clip(k, 0, len(a.c1) - 1)], 0.0)
    m, o = np.arange(a.n_mid)[:, None], np.arange(a.n_out)[None, :]
    k = m - a.down * o - a.off2
    m2 = np.where((k >= 0) & (k < len(a.c2)), np.asarray(a.c2)[np.clip(k, 0, len(a.c2) - 1)], 0.0)
    return m1, m2


@pytest.mark.parametrize("up,down,f1,f2,pad0,pad1,n", [
    (2, 2, 12, 12, 7, 6, 38), (4, 2, 24, 12, 9, 8, 54), (1, 1, 1, 1, 0, 0, 16), (2, 1, 5, 1, -3, 2, 29),
    (1, 4, 1, 9, 4, 4, 40), (4, 1, 8, 3, 0, 0, 13), (2, 4, 6, 16, 1, 9, 100)])
def test_tiles_reproduce_the_full_axis_maps(up: int, down: int, f1: int, f2: int, pad0: int, pad1: int,
                                            n: int) -> None:
    """For every candidate plan, tile by tile, the band matrices times the tile's inputs equal the full linear
    maps of the axis (forward and transposed): the tiles cover every output, read every input they need,
    and each band matrix is the same for all tiles."""
    rng = np.random.default_rng(up * 100 + down)
    fu = tuple(rng.random(f1)) if f1 > 1 else None
    fd = tuple(rng.random(f2)) if f2 > 1 else None
    for a in (tfl._axis(n, fu, fd, up, down, pad0, pad1, False), ):
        for axis in (a, a.transposed()):
            m1, m2 = _full_stage_matrices(axis)
            x = rng.standard_normal(axis.n_in)
            want = (x @ m1) @ m2
            for p, _ in tfl.plan_candidates(axis, axis)[::7]:
                b1, b2 = tfl.band_matrices(axis, p)
                got = np.full(axis.n_out, np.nan)
                for t in range(p.tiles):
                    j = p.j0 + t * p.j_step + np.arange(p.block_in)
                    xt = np.where((j >= 0) & (j < axis.n_in), x[np.clip(j, 0, axis.n_in - 1)], 0.0)
                    yt = (xt @ b1) @ b2
                    o = t * p.per_tile + np.arange(p.per_tile)
                    keep = o < axis.n_out
                    got[o[keep]] = yt[:p.per_tile][keep]
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------------------------- dispatch

def _fake_cuda(dtype: torch.dtype) -> types.SimpleNamespace:
    return types.SimpleNamespace(device=torch.device("cuda"), dtype=dtype)


def test_dispatch_puts_triton_first_for_cuda_only() -> None:
    assert dispatch.BACKENDS[0] is dispatch.TRITON
    assert not dispatch.TRITON.supports(torch.zeros(1))  # CPU tensors never take the Triton path
    assert dispatch.TRITON.supports(_fake_cuda(torch.float16))
    assert not dispatch.TRITON.supports(_fake_cuda(torch.float64))
    # fir_conv is the CUDA fallback (Triton missing, or float64).
    assert fir_conv.supports(_fake_cuda(torch.float64)) and fir_conv.supports(_fake_cuda(torch.bfloat16))
    assert not fir_conv.supports(torch.zeros(1, dtype=torch.float16))


def test_package_imports_and_runs_without_triton() -> None:
    """A CPU-only torch without Triton: `import kernels` works, the dispatcher never offers Triton."""
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import types, torch, kernels\n"
        "from kernels import dispatch, triton_support\n"
        "assert not triton_support.available()\n"
        "fake = types.SimpleNamespace(device=torch.device('cuda'), dtype=torch.float16)\n"
        "assert not dispatch.TRITON.supports(fake)\n"
        "assert 'kernels.triton_filtered_lrelu' not in sys.modules\n"
        "x = torch.randn(1, 2, 9, 9); f = torch.rand(4)\n"
        "y = kernels.filtered_lrelu(x, f, f, torch.zeros(2), up=2, down=2, padding=3)\n"
        "print(tuple(y.shape))\n")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                         cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(1, 2, 9, 9)"


def test_fir_conv_upfirdn2d_routes() -> None:
    """On CPU the stand-alone upfirdn2d is the matrix form; the convolution form (CUDA's) matches it."""
    torch.manual_seed(11)
    x, f = torch.randn(1, 2, 9, 8), torch.rand(6)
    kw = dict(up=2, down=1, padding=[3, 2, 3, 2], gain=4.0)
    want = reference.upfirdn2d(x, f, **kw)
    assert _err(fir_conv.upfirdn2d(x, f, **kw), want) < 1e-6
    assert _err(fir_conv.upfirdn2d_channels_last(x, f, **kw), want) < 1e-6


@pytest.mark.slow
def test_kernels_compile_for_a_gpu_without_one() -> None:
    """The interpreter accepts programs the GPU compiler rejects: compile each kernel's variants for sm_90."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run([sys.executable, str(REPO / "tests" / "triton_aot.py"), "90"], capture_output=True,
                         text=True, timeout=900, env=env, cwd=REPO)
    if out.returncode == 3:
        pytest.skip(out.stdout.strip())
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 13 and all(line.startswith("ok ") for line in lines), out.stdout


# ----------------------------------------------------------------------------------------------- CUDA only

def _imagenet_layer_cases() -> list[tuple[str, dict, int]]:
    G = Generator(preset_config("imagenet", 256))
    cases, seen = [], set()
    for layer in G.synthesis.layers():
        n = layer.spec.in_size + layer.conv_kernel - 1
        key = (n, layer.up_factor, layer.down_factor, tuple(layer.padding), layer.spec.is_torgb)
        if key in seen:
            continue
        seen.add(key)
        cases.append((layer.spec.name, dict(fu=layer.up_filter, fd=layer.down_filter, up=layer.up_factor,
                                            down=layer.down_factor, padding=layer.padding, clamp=layer.conv_clamp,
                                            gain=1.0 if layer.spec.is_torgb else math.sqrt(2),
                                            slope=1.0 if layer.spec.is_torgb else 0.2), n))
    return cases


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_paper_generator_layers_match_reference(dtype: torch.dtype) -> None:
    """Every distinct layer of the paper's 256x256 ImageNet generator at its real size (4 channels, batch 2)."""
    for name, kw, n in _imagenet_layer_cases():
        torch.manual_seed(n)
        kw = dict(kw, fu=None if kw["fu"] is None else kw["fu"].cuda(),
                  fd=None if kw["fd"] is None else kw["fd"].cuda())
        x = (torch.randn(2, 4, n, n, device="cuda") * 2).to(dtype)
        try:
            _check_filtered_lrelu(x, b=torch.randn(4, device="cuda").to(dtype), tol=TOL[dtype], bulk=True, **kw)
        except AssertionError as e:
            raise AssertionError(f"layer {name} ({dtype}): {e}") from None


@pytest.mark.cuda
@pytest.mark.parametrize("backend", ["triton", "fir_conv"])
def test_cuda_generator_image_matches_reference_backend(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole tiny 64x64 generator on CUDA (fp16 on its high-resolution layers), fast backend vs reference."""
    torch.manual_seed(0)
    G = Generator(preset_config("tiny", 64, 3)).eval().cuda()
    z = torch.randn(4, G.z_dim, device="cuda")
    c = torch.tensor([0, 1, 2, 0], device="cuda")
    with torch.no_grad():
        monkeypatch.setenv("SGXL_KERNELS", "reference")
        want = G(z, c).float()
        monkeypatch.setenv("SGXL_KERNELS", backend)
        assert kernels_backend_name(z) == backend
        got = G(z, c).float()
    assert torch.isfinite(got).all()
    assert (got - want).abs().max() < 0.1 and (got - want).abs().mean() < 5e-3  # float16 layers on both sides


def kernels_backend_name(x: torch.Tensor) -> str:
    return dispatch.select_backend(x).name


@pytest.mark.cuda
def test_cuda_path_length_gradients_match_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """The path-length regulariser's double backward through the stem, Triton vs reference kernels."""
    torch.manual_seed(1)
    cfg = preset_config("tiny", 16, 3)
    cfg.synthesis.num_fp16_res = 0  # float32 throughout: the comparison is about the kernels, not fp16 rounding
    G = Generator(cfg).cuda()
    z = torch.randn(2, G.z_dim, device="cuda")
    c = torch.tensor([0, 1], device="cuda")
    noise = torch.randn(2, 3, 16, 16, device="cuda")

    def pl_grads() -> list[torch.Tensor]:
        ws = G.mapping(z, c)
        img = G.synthesis(ws).float()
        (g,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
        params = [p for p in G.synthesis.parameters() if p.requires_grad]
        return torch.autograd.grad(g.square().sum(), params, allow_unused=True)

    monkeypatch.setenv("SGXL_KERNELS", "reference")
    want = pl_grads()
    monkeypatch.setenv("SGXL_KERNELS", "triton")
    got = pl_grads()
    for a, r in zip(got, want):
        if r is None:
            continue
        assert a is not None and (a - r).norm() <= 0.05 * r.norm() + 1e-6


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_cuda_fir_conv_matches_reference(dtype: torch.dtype) -> None:
    torch.manual_seed(2)
    f = torch.rand(12, device="cuda")
    x = torch.randn(2, 8, 38, 38, device="cuda").to(dtype)
    b = torch.randn(8, device="cuda").to(dtype)
    kw = dict(up=2, down=2, padding=[7, 6, 7, 6], clamp=256.0)
    want = reference.filtered_lrelu(_f64(x), _f64(f), _f64(f), _f64(b), **kw)
    assert _err(fir_conv.filtered_lrelu(x, f, f, b, **kw), want) < TOL[dtype]
    want_up = reference.upfirdn2d(_f64(x), _f64(f), up=2, padding=[6, 5, 6, 5], gain=4)
    assert _err(fir_conv.upfirdn2d(x, f, up=2, padding=[6, 5, 6, 5], gain=4), want_up) < TOL[dtype]
