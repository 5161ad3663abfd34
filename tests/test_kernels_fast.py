"""The CPU fast paths (`kernels.fir_conv`, `kernels.fir_matmul`) against the reference: values, gradients,
every generator layer.

Forward values in float32 agree to ~1e-6 relative (same products, different summation order). The
gradient of leaky ReLU jumps (1 vs slope) at 0, so a pre-activation within rounding of 0 can take the
other branch in float32; gradients are therefore compared in float64, where that does not happen.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from core.networks.generator import Generator
from core.networks.presets import preset_config
from kernels import fir_conv, fir_matmul, reference

# Both CPU fast paths implement these two ops; each test below runs for both.
UPFIRDN2D = {"fir_matmul": fir_matmul.upfirdn2d, "fir_conv": fir_conv.upfirdn2d_channels_last}
FILTERED_LRELU = {"fir_matmul": fir_matmul.filtered_lrelu, "fir_conv": fir_conv.filtered_lrelu}


def _close(a: torch.Tensor, b: torch.Tensor, tol: float) -> None:
    scale = b.abs().max().clamp_min(1.0)
    err = (a - b).abs().max() / scale
    assert a.shape == b.shape and err < tol, f"shape {tuple(a.shape)} vs {tuple(b.shape)}, rel err {err:.3g}"


@pytest.mark.parametrize("up,down,pad,flip,gain,taps,size", [
    (u, d, p, fl, g, t, s) for (u, d), p, fl, g, t, s in itertools.product(
        [(1, 1), (2, 1), (1, 2), (2, 2), (4, 2), (3, 1), (1, 3)],
        [(0, 0, 0, 0), (3, 2, 1, 4), (-1, 2, 0, -2)],
        [False, True], [1.0, 4.0], [1, 4, 7], [(9, 8), (5, 11)])
    if t > 1 or fl is False])
@pytest.mark.parametrize("path", sorted(UPFIRDN2D))
def test_upfirdn2d_matches_reference(path, up, down, pad, flip, gain, taps, size) -> None:
    upfirdn2d = UPFIRDN2D[path]
    torch.manual_seed(hash((up, down, pad, flip, gain, taps, size)) % 2**31)
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    f = torch.rand(taps, dtype=torch.float64) + 0.1
    upx, downx = up, down
    try:
        want = reference.upfirdn2d(x, f, up=upx, down=[downx, 1], padding=pad, flip_filter=flip, gain=gain)
    except ValueError:
        with pytest.raises(ValueError):
            upfirdn2d(x, f, up=upx, down=[downx, 1], padding=pad, flip_filter=flip, gain=gain)
        return
    got = upfirdn2d(x, f, up=upx, down=[downx, 1], padding=pad, flip_filter=flip, gain=gain)
    _close(got, want, 1e-12)


def test_upfirdn2d_without_filter_and_with_2d_filter_falls_back() -> None:
    x = torch.randn(1, 2, 6, 7)
    _close(fir_matmul.upfirdn2d(x, None, up=2, padding=[1, 0, 0, 1], gain=3.0),
           reference.upfirdn2d(x, None, up=2, padding=[1, 0, 0, 1], gain=3.0), 1e-6)
    f2 = torch.rand(3, 4)
    assert torch.equal(fir_matmul.upfirdn2d(x, f2, down=2), reference.upfirdn2d(x, f2, down=2))


def test_resample_matrix_is_banded_polyphase() -> None:
    """Upsampling by 2 with a 4-tap filter: each output sample touches only 2 inputs (the polyphase taps)."""
    m = fir_matmul.resample_matrix(6, np.array([1.0, 2.0, 3.0, 4.0]), up=2, down=1, pad0=2, pad1=1,
                                   flip_filter=False, gain=1.0)
    assert m.shape == (6, 12)
    assert ((m != 0).sum(axis=0) <= 2).all()
    assert np.allclose(m.sum(axis=1)[1:-1], 10.0)  # each interior input sample meets every tap once


@pytest.mark.parametrize("path", sorted(FILTERED_LRELU))
@pytest.mark.parametrize("clamp", [None, 0.7])
@pytest.mark.parametrize("up,down", [(1, 1), (2, 2), (4, 2), (2, 1), (1, 2)])
def test_filtered_lrelu_values_and_gradients_match_reference(up: int, down: int, clamp: float | None,
                                                             path: str) -> None:
    torch.manual_seed(up * 10 + down)
    x = torch.randn(2, 4, 11, 9, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    fu = torch.rand(3 * up, dtype=torch.float64) if up > 1 else None
    fd = torch.rand(3 * down, dtype=torch.float64) if down > 1 else None
    kw = dict(up=up, down=down, padding=[4, 3, 2, 5], gain=math.sqrt(2), slope=0.2, clamp=clamp)
    want = reference.filtered_lrelu(x, fu, fd, b, **kw)
    got = FILTERED_LRELU[path](x, fu, fd, b, **kw)
    _close(got, want, 1e-12)
    g = torch.randn_like(want)
    gx_w, gb_w = torch.autograd.grad(want, (x, b), g)
    gx_g, gb_g = torch.autograd.grad(got, (x, b), g)
    _close(gx_g, gx_w, 1e-12)
    _close(gb_g, gb_w, 1e-12)


@pytest.mark.parametrize("path", sorted(FILTERED_LRELU))
def test_filtered_lrelu_gradcheck(path: str) -> None:
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, requires_grad=True)
    fu = torch.tensor([0.3, 0.8, 0.6, 0.1], dtype=torch.float64)
    fd = torch.tensor([0.5, 0.9, 0.2], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda t, c: FILTERED_LRELU[path](t, fu, fd, c, up=2, down=2, padding=[2, 1, 1, 2]), (x, b))


@pytest.mark.parametrize("path", sorted(FILTERED_LRELU))
@pytest.mark.parametrize("bias", [False, True])
def test_inference_path_leaves_the_input_alone(path: str, bias: bool) -> None:
    """Without grad the activation runs in place on the op's own intermediate, never on the caller's tensor."""
    x = torch.randn(1, 3, 8, 8)
    b = torch.zeros(3) if bias else None
    before = x.clone()
    with torch.no_grad():
        y = FILTERED_LRELU[path](x, None, None, b, gain=2.0, clamp=0.5)
    assert torch.equal(x, before)
    _close(y, reference.filtered_lrelu(x, None, None, b, gain=2.0, clamp=0.5), 1e-6)


@pytest.mark.parametrize("path", sorted(FILTERED_LRELU))
def test_negative_gain_is_not_folded(path: str) -> None:
    x = torch.randn(1, 2, 6, 6)
    f = torch.rand(4)
    _close(FILTERED_LRELU[path](x, f, f, None, up=2, down=2, padding=3, gain=-1.5),
           reference.filtered_lrelu(x, f, f, None, up=2, down=2, padding=3, gain=-1.5), 1e-6)


@pytest.mark.parametrize("path", sorted(FILTERED_LRELU))
@pytest.mark.parametrize("res", [16, 32, 64])
def test_every_generator_layer_matches_reference(res: int, path: str) -> None:
    """All up/down factors, paddings and filters the generator uses (stem and grown heads)."""
    G = Generator(preset_config("tiny", res, 3)).double()
    torch.manual_seed(res)
    for layer in G.synthesis.layers():
        n = layer.spec.in_size + layer.conv_kernel - 1
        x = torch.randn(1, layer.spec.out_channels, n, n, dtype=torch.float64)
        kw = dict(fu=layer.up_filter, fd=layer.down_filter, b=layer.bias.detach(), up=layer.up_factor,
                  down=layer.down_factor, padding=layer.padding, clamp=layer.conv_clamp,
                  gain=1.0 if layer.spec.is_torgb else math.sqrt(2), slope=1.0 if layer.spec.is_torgb else 0.2)
        got = FILTERED_LRELU[path](x, **kw)
        assert got.is_contiguous()  # the layout the next modulated convolution gets
        _close(got, reference.filtered_lrelu(x, **kw), 1e-12)


@pytest.mark.parametrize("backend", ["fir_matmul", "fir_conv"])
def test_generator_image_same_with_fast_and_reference_backend(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    G = Generator(preset_config("tiny", 32, 3)).eval()
    z = torch.randn(2, G.z_dim)
    c = torch.tensor([0, 2])
    with torch.no_grad():
        monkeypatch.setenv("SGXL_KERNELS", "reference")
        want = G(z, c)
        monkeypatch.setenv("SGXL_KERNELS", backend)
        got = G(z, c)
    assert (got - want).abs().max() < 1e-4  # images in [-1, 1]: far below one uint8 level (0.0078)


@pytest.mark.parametrize("n,up,down,taps", [(150, 4, 2, 24), (200, 1, 2, 12), (97, 2, 1, 12)])
def test_long_axes_use_band_blocks_and_match_reference(n: int, up: int, down: int, taps: int) -> None:
    """Axes longer than DENSE_MAX_IN run as diagonal blocks of the band; values and gradients unchanged."""
    f = torch.rand(taps, dtype=torch.float64)
    r = fir_matmul._resampler(n, f, up, down, 7, 6, False, 1.0, torch.float64, torch.device("cpu"))
    assert r.blocks and sum(r1 - r0 for _, _, r0, r1, _ in r.blocks) < len(r.blocks) * n / 2
    x = torch.randn(1, 2, n, n // 3, dtype=torch.float64, requires_grad=True)
    kw = dict(up=[1, up], down=[1, down], padding=[0, 0, 7, 6])
    want = reference.upfirdn2d(x, f, **kw)
    got = fir_matmul.upfirdn2d(x, f, **kw)
    _close(got, want, 1e-12)
    g = torch.randn_like(want)
    _close(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(want, x, g)[0], 1e-12)


def test_fir_conv_takes_channels_last_input_and_matches_reference_gradients() -> None:
    """The 4x-upsampling layer shape of a 64x64 head, fed channels-last (what a channels-last caller passes)."""
    torch.manual_seed(4)
    fu, fd = torch.rand(24, dtype=torch.float64), torch.rand(12, dtype=torch.float64)
    x = torch.randn(2, 5, 30, 30, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    kw = dict(up=4, down=2, padding=[-6, -9, -6, -9], clamp=256.0)
    want = reference.filtered_lrelu(x, fu, fd, None, **kw)
    got = fir_conv.filtered_lrelu(x, fu, fd, None, **kw)
    _close(got, want, 1e-12)
    g = torch.randn_like(want)
    _close(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(want, x, g)[0], 1e-12)


def test_fir_conv_sends_2d_filters_to_the_reference() -> None:
    x = torch.randn(1, 2, 9, 9)
    f2 = torch.rand(4, 4)
    assert torch.equal(fir_conv.filtered_lrelu(x, f2, f2, None, up=2, down=2, padding=2),
                       reference.filtered_lrelu(x, f2, f2, None, up=2, down=2, padding=2))
