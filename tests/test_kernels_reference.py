"""`kernels.reference` against independent numpy/scipy oracles.

The reference must follow the semantics of the official StyleGAN3 `torch_utils.ops` (the oracle every fast
path in `kernels/` is tested against):
- upfirdn2d: zero-insertion upsampling, pad (negative = crop), FIR filter as a TRUE convolution (unless
  `flip_filter`), keep every `down`-th sample; a 1-D filter runs along x then y, each pass with gain**0.5.
- bias_act: clamp(act(x + b) * gain).
- filtered_lrelu: bias -> upfirdn2d(fu, up, padding, gain=up**2) -> lrelu * gain -> clamp -> upfirdn2d(fd, down)
  (StyleGAN3 paper Sec. 3.2: the nonlinearity runs at a temporarily higher sampling rate).
The oracles here are written from those definitions with numpy/scipy, never with the reference's code path.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.signal
import torch

import kernels
from kernels import dispatch, reference

# --------------------------------------------------------------------------------------------------------------
# Oracles.


def _scipy_upfirdn_1d(x: np.ndarray, h: np.ndarray, up: int, down: int, pad0: int, pad1: int, axis: int
                      ) -> np.ndarray:
    """upfirdn along one axis with StyleGAN semantics, computed by `scipy.signal.upfirdn`.

    Index mapping. Let u be x upsampled by zero insertion (u[m] = x[m / up] when up divides m, else 0) and
    K = len(h). scipy computes the FULL convolution y_s[n] = sum_k h[k] u[n - k] (n = 0, 1, ...) and then keeps
    y_s[::down]. The StyleGAN op pads u with pad0 zeros in front (crops -pad0 samples when negative), so
    padded[j] = u[j - pad0], then takes the VALID true convolution z[j] = sum_k h[k] padded[j + K - 1 - k]
    = y_s[j + K - 1 - pad0], then keeps z[::down]. Hence

        out[i] = y_s[i * down + offset],  offset = K - 1 - pad0,  i = 0 .. (L * up + pad0 + pad1 - K) // down,

    with y_s = 0 outside its support. To let scipy do the downsampling too, h is delayed by `delay` leading
    zeros (y_s'[n] = y_s[n - delay]) so that offset + delay is a multiple of `down`; then
    out[i] = scipy_out[i + (offset + delay) // down].
    """
    x = np.moveaxis(x, axis, -1)
    k = len(h)
    offset = k - 1 - pad0
    delay = (-offset) % down
    y = scipy.signal.upfirdn(np.concatenate([np.zeros(delay), h]), x, up=up, down=down, axis=-1)
    start = (offset + delay) // down
    n_out = (x.shape[-1] * up + pad0 + pad1 - k) // down + 1
    idx = np.arange(n_out) + start
    valid = (idx >= 0) & (idx < y.shape[-1])
    out = np.zeros(x.shape[:-1] + (n_out,))
    out[..., valid] = y[..., idx[valid]]
    return np.moveaxis(out, -1, axis)


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else v


def _scipy_upfirdn2d(x: np.ndarray, f: np.ndarray, up=1, down=1, padding=(0, 0, 0, 0), flip=False, gain=1.0
                     ) -> np.ndarray:
    """Separable oracle: rows (x, last axis) then columns (y); each pass carries gain**0.5."""
    upx, upy = _pair(up)
    downx, downy = _pair(down)
    x0, x1, y0, y1 = padding
    # flip_filter turns the true convolution into a correlation = a convolution with the reversed filter.
    h = (f[::-1] if flip else f) * math.sqrt(gain)
    x = _scipy_upfirdn_1d(x, h, upx, downx, x0, x1, axis=-1)
    return _scipy_upfirdn_1d(x, h, upy, downy, y0, y1, axis=-2)


def _direct_upfirdn2d(x: np.ndarray, f: np.ndarray, up=(1, 1), down=(1, 1), padding=(0, 0, 0, 0), flip=False,
                      gain=1.0) -> np.ndarray:
    """2-D (non-separable) filter, straight from the definition with explicit loops over output pixels.

    The padded, upsampled canvas P has P[yy, xx] = x[(yy - y0) / upy, (xx - x0) / upx] where both divide and
    land inside x, else 0. The valid true convolution is out[i, j] = sum_{a,b} f[a, b] P[i*dy + fh-1-a,
    j*dx + fw-1-b]; with flip_filter it is the correlation sum_{a,b} f[a, b] P[i*dy + a, j*dx + b].
    """
    upx, upy = up
    downx, downy = down
    x0, x1, y0, y1 = padding
    n, c, h, w = x.shape
    fh, fw = f.shape

    def canvas(yy: int, xx: int) -> np.ndarray:
        sy, sx = yy - y0, xx - x0
        if sy % upy or sx % upx:
            return np.zeros((n, c))
        r, s = sy // upy, sx // upx
        if 0 <= r < h and 0 <= s < w:
            return x[:, :, r, s]
        return np.zeros((n, c))

    out_h = (h * upy + y0 + y1 - fh) // downy + 1
    out_w = (w * upx + x0 + x1 - fw) // downx + 1
    out = np.zeros((n, c, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            acc = np.zeros((n, c))
            for a in range(fh):
                for b in range(fw):
                    if flip:
                        acc += f[a, b] * canvas(i * downy + a, j * downx + b)
                    else:
                        acc += f[a, b] * canvas(i * downy + fh - 1 - a, j * downx + fw - 1 - b)
            out[:, :, i, j] = acc * gain
    return out


def _np_filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip) -> np.ndarray:
    """filtered_lrelu composed from the numpy/scipy oracles (None filter = [1])."""
    one = np.ones(1)
    x = x + b[None, :, None, None]
    x = _scipy_upfirdn2d(x, one if fu is None else fu, up=up, padding=padding, flip=flip, gain=up**2)
    x = np.where(x >= 0, x, x * slope) * gain
    if clamp is not None:
        x = np.clip(x, -clamp, clamp)
    return _scipy_upfirdn2d(x, one if fd is None else fd, down=down, flip=flip)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------------------------------------------
# upfirdn2d.

# (up, down, padding [x0, x1, y0, y1], filter taps, gain): up != down, odd sizes, asymmetric and negative padding.
UPFIRDN_CASES = [
    (1, 1, [0, 0, 0, 0], 5, 1.0),
    (1, 1, [2, 1, 0, 3], 4, 1.0),
    (2, 1, [2, 1, 3, 0], 4, 4.0),
    (1, 2, [1, 2, 0, 1], 5, 1.0),
    (4, 1, [3, 2, 1, 4], 6, 16.0),
    (1, 4, [3, 3, 2, 5], 3, 0.5),
    (2, 2, [-1, 3, 2, -2], 5, 1.0),
    (4, 2, [-3, 5, 2, -1], 7, 2.5),
    (2, 4, [3, -2, -1, 4], 4, 1.0),
    (4, 4, [-5, -6, 2, 2], 8, 3.0),
    ((2, 1), (1, 4), [2, -1, 4, 1], 5, 1.0),  # per-axis factors [x, y]
    ((1, 4), (2, 1), [-1, 0, -3, 2], 3, 2.0),
]


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("case", UPFIRDN_CASES, ids=lambda c: f"up{c[0]}-down{c[1]}-pad{c[2]}-k{c[3]}-g{c[4]}")
def test_upfirdn2d_matches_scipy_separable(case, flip: bool) -> None:
    up, down, padding, taps, gain = case
    rng = _rng(taps)
    x = rng.standard_normal((2, 3, 7, 5))  # [N, C, H=7, W=5]: odd, non-square
    f = rng.uniform(0.1, 1.0, taps)  # asymmetric: flipping it matters
    out = reference.upfirdn2d(_t(x), _t(f), up=up, down=down, padding=padding, flip_filter=flip, gain=gain)
    expected = _scipy_upfirdn2d(x, f, up, down, padding, flip, gain)
    assert out.dtype == torch.float64
    assert tuple(out.shape) == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_upfirdn2d_flip_matters_with_asymmetric_filter() -> None:
    rng = _rng(1)
    x, f = _t(rng.standard_normal((1, 1, 6, 6))), _t(np.array([1.0, 2.0, 5.0]))
    a = reference.upfirdn2d(x, f, up=2, padding=2)
    b = reference.upfirdn2d(x, f, up=2, padding=2, flip_filter=True)
    assert a.shape == b.shape
    assert not torch.allclose(a, b)
    # A true convolution of an impulse reproduces the filter in order; a correlation reverses it.
    impulse = torch.zeros(1, 1, 1, 5, dtype=torch.float64)
    impulse[..., 2] = 1.0
    row = reference.upfirdn2d(impulse, torch.tensor([[1.0, 2.0, 5.0]], dtype=torch.float64), padding=[1, 1, 0, 0])
    np.testing.assert_array_equal(row[0, 0, 0].numpy(), [0.0, 1.0, 2.0, 5.0, 0.0])
    row = reference.upfirdn2d(impulse, torch.tensor([[1.0, 2.0, 5.0]], dtype=torch.float64), padding=[1, 1, 0, 0],
                              flip_filter=True)
    np.testing.assert_array_equal(row[0, 0, 0].numpy(), [0.0, 5.0, 2.0, 1.0, 0.0])


def test_upfirdn2d_padding_forms_and_identity_filter() -> None:
    rng = _rng(2)
    x = _t(rng.standard_normal((1, 2, 5, 7)))
    f = _t(rng.uniform(0.1, 1.0, 4))
    a = reference.upfirdn2d(x, f, up=2, padding=3)
    b = reference.upfirdn2d(x, f, up=2, padding=[3, 3])
    c = reference.upfirdn2d(x, f, up=2, padding=[3, 3, 3, 3])
    assert torch.equal(a, b) and torch.equal(a, c)
    # [px, py] means x gets px on both sides and y gets py.
    d = reference.upfirdn2d(x, f, up=2, padding=[3, 1])
    np.testing.assert_allclose(d.numpy(), _scipy_upfirdn2d(x.numpy(), f.numpy(), 2, 1, (3, 3, 1, 1)), atol=1e-12)
    # f=None is the identity filter: plain zero insertion, then every down-th sample.
    up = reference.upfirdn2d(x, None, up=2)
    assert up.shape == (1, 2, 10, 14)
    assert torch.equal(up[:, :, ::2, ::2], x) and not up[:, :, 1::2].any() and not up[:, :, :, 1::2].any()
    assert torch.equal(reference.upfirdn2d(x, None, down=2), x[:, :, ::2, ::2])


def test_upfirdn2d_keeps_float32() -> None:
    x = torch.randn(1, 2, 5, 5)
    out = reference.upfirdn2d(x, torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8, up=2, padding=[2, 1, 2, 1])
    assert out.dtype == torch.float32 and out.shape == (1, 2, 10, 10)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize(
    "up,down,padding",
    [((1, 1), (1, 1), (0, 0, 0, 0)), ((2, 2), (1, 1), (2, 1, 1, 3)), ((1, 1), (2, 2), (1, 0, 2, 1)),
     ((2, 1), (1, 2), (-1, 2, 3, -1)), ((4, 2), (2, 4), (-2, 3, 1, 4))],
)
def test_upfirdn2d_2d_filter_matches_direct_formula(up, down, padding, flip: bool) -> None:
    rng = _rng(3)
    x = rng.standard_normal((1, 2, 5, 4))  # tiny, non-square
    f = rng.uniform(-1.0, 1.0, (3, 4))  # non-separable, non-square, asymmetric [fh, fw]
    out = reference.upfirdn2d(_t(x), _t(f), up=up, down=down, padding=padding, flip_filter=flip, gain=1.5)
    expected = _direct_upfirdn2d(x, f, up, down, padding, flip, gain=1.5)
    assert tuple(out.shape) == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_upfirdn2d_rejects_bad_input() -> None:
    x, f = torch.randn(1, 1, 4, 4), torch.ones(3)
    with pytest.raises(ValueError):
        reference.upfirdn2d(x[0], f)  # not [N, C, H, W]
    with pytest.raises(ValueError):
        reference.upfirdn2d(x, torch.ones(2, 2, 2))  # 3-D filter
    with pytest.raises(ValueError):
        reference.upfirdn2d(x, f, padding=-1)  # 2x2 after cropping, smaller than the filter
    with pytest.raises(ValueError):
        reference.upfirdn2d(x, f, up=0)


# --------------------------------------------------------------------------------------------------------------
# bias_act.

SQRT2 = math.sqrt(2)
# act -> (independent formula f(x, alpha), default alpha, default gain), as in StyleGAN's bias_act table.
ACTS = {
    "linear": (lambda x, a: x, 0.0, 1.0),
    "relu": (lambda x, a: torch.where(x > 0, x, torch.zeros_like(x)), 0.0, SQRT2),
    "lrelu": (lambda x, a: torch.where(x >= 0, x, x * a), 0.2, SQRT2),
    "tanh": (lambda x, a: (torch.exp(2 * x) - 1) / (torch.exp(2 * x) + 1), 0.0, 1.0),
    "sigmoid": (lambda x, a: 1 / (1 + torch.exp(-x)), 0.0, 1.0),
}


@pytest.mark.parametrize("act", sorted(ACTS))
def test_bias_act_defaults_match_formula(act: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    b = torch.randn(3, dtype=torch.float64)
    func, alpha, gain = ACTS[act]
    expected = func(x + b[None, :, None, None], alpha) * gain
    torch.testing.assert_close(reference.bias_act(x, b, act=act), expected, rtol=1e-12, atol=1e-12)
    assert reference.ACTIVATIONS[act].default_alpha == alpha
    assert reference.ACTIVATIONS[act].default_gain == pytest.approx(gain)


@pytest.mark.parametrize("act", sorted(ACTS))
def test_bias_act_alpha_gain_clamp(act: str) -> None:
    torch.manual_seed(1)
    x = 3 * torch.randn(4, 6, dtype=torch.float64)  # [N, C] like a fully connected layer
    b = torch.randn(6, dtype=torch.float64)
    func = ACTS[act][0]
    out = reference.bias_act(x, b, act=act, alpha=0.05, gain=1.7, clamp=0.9)
    expected = (func(x + b, 0.05) * 1.7).clamp(-0.9, 0.9)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    assert out.abs().max() <= 0.9
    # clamp=None means no clamping at all.
    torch.testing.assert_close(reference.bias_act(x, b, act=act, alpha=0.05, gain=1.7), func(x + b, 0.05) * 1.7)


def test_bias_act_clamp_actually_clamps() -> None:
    x = torch.tensor([-10.0, -1.0, -0.1, 0.0, 0.1, 1.0, 10.0], dtype=torch.float64)
    out = reference.bias_act(x, act="lrelu", clamp=1.0)
    expected = torch.tensor([-1.0, -0.2 * SQRT2, -0.02 * SQRT2, 0.0, 0.1 * SQRT2, 1.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(out, expected)
    assert reference.bias_act(x, act="lrelu").max() == pytest.approx(10 * SQRT2)


def test_bias_act_bias_along_other_dims() -> None:
    torch.manual_seed(2)
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    b5, b2 = torch.randn(5, dtype=torch.float64), torch.randn(2, dtype=torch.float64)
    torch.testing.assert_close(reference.bias_act(x, b5, dim=3, act="lrelu"),
                               ACTS["lrelu"][0](x + b5, 0.2) * SQRT2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(reference.bias_act(x, b2, dim=0, act="linear"),
                               x + b2[:, None, None, None], rtol=0, atol=0)
    assert torch.equal(reference.bias_act(x), x)  # no bias, linear, gain 1


def test_bias_act_rejects_bad_bias_and_unknown_activation() -> None:
    x = torch.randn(2, 3, 4, 5)
    with pytest.raises(ValueError):
        reference.bias_act(x, torch.randn(4))  # x.shape[1] == 3
    with pytest.raises(ValueError):
        reference.bias_act(x, torch.randn(3, 1))  # not 1-D
    with pytest.raises(ValueError):
        reference.bias_act(x, torch.randn(3), dim=2)  # x.shape[2] == 4
    with pytest.raises(ValueError):
        reference.bias_act(x, act="gelu")


# --------------------------------------------------------------------------------------------------------------
# filtered_lrelu.

# (up, down, fu taps, fd taps, padding, flip, clamp, gain, slope)
FLRELU_CASES = [
    (2, 2, 6, 5, [3, 2, 1, 4], False, None, SQRT2, 0.2),
    (2, 2, 6, 5, [3, 2, 1, 4], True, 0.7, SQRT2, 0.2),
    (4, 2, 8, 5, [-2, 3, 4, -1], False, 0.5, 2.0, 0.1),
    (2, 1, 4, None, [2, 1, 2, 1], False, None, SQRT2, 0.2),
    (1, 2, None, 4, [1, 2, 0, 1], True, None, 1.0, 0.3),
    (1, 1, None, None, [0, 0, 0, 0], False, 0.4, 1.0, 0.2),  # ToRGB-like: bias, lrelu, clamp only
    (4, 4, 8, 8, [5, 4, 3, 6], False, None, SQRT2, 0.2),
]


@pytest.mark.parametrize("case", FLRELU_CASES, ids=lambda c: f"up{c[0]}-down{c[1]}-flip{c[5]}-clamp{c[6]}")
def test_filtered_lrelu_matches_explicit_composition(case) -> None:
    up, down, ku, kd, padding, flip, clamp, gain, slope = case
    rng = _rng(up * 10 + down)
    x = rng.standard_normal((2, 3, 7, 5))  # [N, C, H, W]
    b = rng.standard_normal(3)
    fu = None if ku is None else rng.uniform(0.1, 1.0, ku)
    fd = None if kd is None else rng.uniform(0.1, 1.0, kd)
    out = reference.filtered_lrelu(_t(x), None if fu is None else _t(fu), None if fd is None else _t(fd), _t(b),
                                   up=up, down=down, padding=padding, gain=gain, slope=slope, clamp=clamp,
                                   flip_filter=flip)
    expected = _np_filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip)
    assert tuple(out.shape) == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-11, atol=1e-11)
    w, h = reference.filtered_lrelu_output_size((5, 7), None if fu is None else _t(fu),
                                                None if fd is None else _t(fd), up, down, padding)
    assert (h, w) == out.shape[2:]


def _expected_out_size(n: int, up: int, down: int, p0: int, p1: int, ku: int, kd: int) -> int:
    """Independent derivation: valid conv with fu, valid conv with fd, then keep samples 0, down, 2*down, ..."""
    after_fd = (n * up + p0 + p1 - ku + 1) - kd + 1
    return -(-after_fd // down)


def _lowpass(taps: int, up_or_down: int) -> torch.Tensor | None:
    # StyleGAN3 designs these with scipy.signal.firwin at the temporary rate; None when a single tap.
    if taps == 1:
        return None
    return torch.as_tensor(scipy.signal.firwin(taps, cutoff=2.0, width=4.0, fs=16.0 * up_or_down))


@pytest.mark.parametrize("padding", [[11, 10, 11, 10], [-6, -9, -6, -9], [9, 8, 9, 8], [0, 0, 0, 0], [3, -2, 1, 4]])
@pytest.mark.parametrize("up,down", list(itertools.product([1, 2, 4], [1, 2, 4])))
def test_filtered_lrelu_output_size_matches_output(up: int, down: int, padding: list[int]) -> None:
    # Taps as in the StyleGAN3 generator: filter_size (6) * factor for factor 2/4, a single tap (None) for 1.
    ku, kd = (6 * up if up > 1 else 1), (6 * down if down > 1 else 1)
    fu, fd = _lowpass(ku, up), _lowpass(kd, down)
    x = torch.randn(1, 1, 45, 48)  # [N, C, H, W], non-square so width/height cannot be swapped unnoticed
    out = reference.filtered_lrelu(x, fu, fd, torch.zeros(1), up=up, down=down, padding=padding)
    x0, x1, y0, y1 = padding
    expected = (_expected_out_size(48, up, down, x0, x1, ku, kd), _expected_out_size(45, up, down, y0, y1, ku, kd))
    assert reference.filtered_lrelu_output_size((48, 45), fu, fd, up, down, padding) == expected
    assert (out.shape[3], out.shape[2]) == expected


# StyleGAN3 SynthesisLayer geometry: (in rate, out rate, in size, out size, is_torgb, lrelu_upsampling).
GENERATOR_LAYERS = [
    (16, 16, 36, 36, False, 2),  # constant rate: up 2, down 2, 12/12 taps
    (16, 32, 36, 52, False, 2),  # rate doubles: up 4, down 2, 24/12 taps, negative padding (crop)
    (32, 32, 52, 52, False, 2),
    (64, 64, 64, 64, False, 2),  # critically sampled head, no margin
    (16, 32, 36, 52, False, 1),  # up 2, down 1
    (16, 16, 36, 36, False, 4),  # up 4, down 4, 24/24 taps
    (16, 16, 16, 16, True, 2),  # ToRGB: up 1, down 1, no filters
]


@pytest.mark.parametrize("layer", GENERATOR_LAYERS, ids=str)
def test_filtered_lrelu_generator_padding_gives_out_size(layer) -> None:
    in_rate, out_rate, in_size, out_size, is_torgb, lrelu_up = layer
    conv_kernel, filter_size = (1 if is_torgb else 3), 6
    tmp_rate = max(in_rate, out_rate) * (1 if is_torgb else lrelu_up)
    up, down = tmp_rate // in_rate, tmp_rate // out_rate
    ku = filter_size * up if up > 1 and not is_torgb else 1
    kd = filter_size * down if down > 1 and not is_torgb else 1
    # Padding that centres out_size samples (StyleGAN3 Appendix C.3).
    pad_total = (out_size - 1) * down + 1 - (in_size + conv_kernel - 1) * up + ku + kd - 2
    pad_lo = (pad_total + up) // 2
    padding = [pad_lo, pad_total - pad_lo, pad_lo, pad_total - pad_lo]
    fu, fd = _lowpass(ku, up), _lowpass(kd, down)
    size = in_size + conv_kernel - 1  # the modulated conv pads by conv_kernel - 1
    x = torch.randn(1, 2, size, size)
    out = reference.filtered_lrelu(x, fu, fd, torch.zeros(2), up=up, down=down, padding=padding, clamp=256)
    assert out.shape == (1, 2, out_size, out_size)
    assert reference.filtered_lrelu_output_size((size, size), fu, fd, up, down, padding) == (out_size, out_size)


def test_filtered_lrelu_clamp_actually_clamps() -> None:
    torch.manual_seed(3)
    x = 3 * torch.randn(1, 2, 8, 8, dtype=torch.float64)
    fu = torch.as_tensor(scipy.signal.firwin(12, cutoff=2.0, width=4.0, fs=32.0))
    free = reference.filtered_lrelu(x, fu, None, up=2, padding=[6, 5, 6, 5])
    clamped = reference.filtered_lrelu(x, fu, None, up=2, padding=[6, 5, 6, 5], clamp=0.5)
    assert free.abs().max() > 1.0  # without a clamp values do exceed it
    assert clamped.abs().max() == pytest.approx(0.5)
    torch.testing.assert_close(clamped, free.clamp(-0.5, 0.5))


def test_filtered_lrelu_gain_scales() -> None:
    torch.manual_seed(4)
    x = torch.randn(1, 2, 7, 6, dtype=torch.float64)
    b = torch.randn(2, dtype=torch.float64)
    fu, fd = torch.rand(8, dtype=torch.float64), torch.rand(5, dtype=torch.float64)
    kwargs = dict(b=b, up=2, down=2, padding=[3, 2, 4, 1])
    one = reference.filtered_lrelu(x, fu, fd, gain=1.0, **kwargs)
    three = reference.filtered_lrelu(x, fu, fd, gain=3.0, **kwargs)
    torch.testing.assert_close(three, 3 * one, rtol=1e-12, atol=1e-12)
    # The default gain is sqrt(2) and the default slope 0.2, as in StyleGAN3.
    torch.testing.assert_close(reference.filtered_lrelu(x, fu, fd, **kwargs),
                               reference.filtered_lrelu(x, fu, fd, gain=SQRT2, slope=0.2, **kwargs))


# --------------------------------------------------------------------------------------------------------------
# Gradients (float64 finite differences).


@pytest.mark.parametrize("up,down", [(2, 1), (1, 2)])
def test_upfirdn2d_gradcheck(up: int, down: int) -> None:
    torch.manual_seed(5)
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    f = torch.tensor([0.2, 0.5, 0.9, 0.4], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda t: reference.upfirdn2d(t, f, up=up, down=down, padding=[2, 1, 1, 2], gain=1.5), (x,))


def _away_from(values: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Magnitudes in [lo, hi] with random signs: keeps finite differences off the kinks."""
    return torch.sign(torch.randn_like(values)) * (lo + (hi - lo) * torch.rand_like(values))


def test_bias_act_gradcheck_lrelu() -> None:
    torch.manual_seed(6)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    pre = _away_from(torch.zeros(2, 3, 2, 2, dtype=torch.float64), 0.05, 2.0)  # x + b, off the kink at 0
    x = (pre - b.detach()[None, :, None, None]).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t, c: reference.bias_act(t, c, act="lrelu"), (x, b))


def test_bias_act_gradcheck_lrelu_with_clamp() -> None:
    torch.manual_seed(7)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    # |lrelu(x + b) * sqrt2| lands either well inside (< 0.6) or well outside (> 1.2) the clamp at 0.9.
    inner = _away_from(torch.zeros(2, 3, 2, 2, dtype=torch.float64), 0.05, 0.6 / SQRT2)
    outer = _away_from(torch.zeros(2, 3, 2, 2, dtype=torch.float64), 1.2 / SQRT2, 3.0)
    outer = torch.where(outer > 0, outer, outer / 0.2)  # negative side is scaled by the slope
    pre = torch.where(torch.rand_like(inner) < 0.5, inner, outer)
    x = (pre - b.detach()[None, :, None, None]).requires_grad_(True)
    func = lambda t, c: reference.bias_act(t, c, act="lrelu", clamp=0.9)  # noqa: E731
    out = func(x, b)
    assert (out.abs() == 0.9).any() and (out.abs() < 0.9).any()  # both regimes are exercised
    assert torch.autograd.gradcheck(func, (x, b))


@pytest.mark.parametrize("channels", [1, 2])
def test_filtered_lrelu_gradcheck(channels: int) -> None:
    torch.manual_seed(8)
    x = torch.randn(1, channels, 4, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(channels, dtype=torch.float64, requires_grad=True)
    fu = torch.tensor([0.3, 0.8, 0.6, 0.1], dtype=torch.float64)
    fd = torch.tensor([0.5, 0.9, 0.2], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda t, c: reference.filtered_lrelu(t, fu, fd, c, up=2, down=2, padding=[2, 1, 1, 2]), (x, b))


# --------------------------------------------------------------------------------------------------------------
# Dispatch.


def test_dispatch_matches_reference_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """On CPU the dispatcher runs the fast path; it agrees with the reference to float rounding."""
    monkeypatch.delenv("SGXL_KERNELS", raising=False)
    torch.manual_seed(9)
    x = torch.randn(2, 3, 9, 8)
    b = torch.randn(3)
    f = torch.rand(6)
    assert torch.equal(kernels.bias_act(x, b, act="lrelu", clamp=0.5),
                       reference.bias_act(x, b, act="lrelu", clamp=0.5))
    torch.testing.assert_close(kernels.upfirdn2d(x, f, up=2, padding=[3, 2, 1, 4]),
                               reference.upfirdn2d(x, f, up=2, padding=[3, 2, 1, 4]))
    torch.testing.assert_close(
        kernels.filtered_lrelu(x, f, f, b, up=2, down=2, padding=[5, 4, 5, 4], clamp=1.0),
        reference.filtered_lrelu(x, f, f, b, up=2, down=2, padding=[5, 4, 5, 4], clamp=1.0))


def test_select_backend_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SGXL_KERNELS", raising=False)
    assert kernels.select_backend(torch.zeros(1, 1, 4, 4)).name == "fir_conv"
    assert kernels.select_backend(torch.zeros(1, 1, 4, 4, dtype=torch.float16)).name == "reference"
    monkeypatch.setenv("SGXL_KERNELS", "no-such-backend")
    with pytest.raises(ValueError, match="names no kernel backend"):
        kernels.select_backend(torch.zeros(1, 1, 4, 4))


def test_env_forces_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args, **kwargs):
        raise AssertionError("the fast backend ran although SGXL_KERNELS=reference")

    fast = dispatch.Backend(name="fast", supports=lambda x: True, bias_act=boom, upfirdn2d=boom, filtered_lrelu=boom)
    monkeypatch.setattr(dispatch, "BACKENDS", (fast, dispatch.REFERENCE))
    x = torch.randn(1, 2, 6, 6)
    monkeypatch.delenv("SGXL_KERNELS", raising=False)
    assert dispatch.select_backend(x) is fast  # the first supporting backend wins by default
    monkeypatch.setenv("SGXL_KERNELS", "reference")
    assert dispatch.select_backend(x) is dispatch.REFERENCE
    assert kernels.select_backend(x).name == "reference"
    assert torch.equal(kernels.upfirdn2d(x, torch.ones(2), down=2), reference.upfirdn2d(x, torch.ones(2), down=2))
    assert torch.equal(kernels.bias_act(x, act="relu"), reference.bias_act(x, act="relu"))
    assert torch.equal(kernels.filtered_lrelu(x, b=torch.ones(2)), reference.filtered_lrelu(x, b=torch.ones(2)))
