"""bf16 preview plans (core.networks.precision): what they change, what they leave alone, and the measurement."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from core.networks import precision
from core.sampling import to_uint8, ws_from_seeds
from kernels import fir_conv, reference
from tests.helpers import make_tiny_generator


@pytest.fixture(scope="module")
def G():
    torch.set_num_threads(1)  # tiny renders: one thread avoids OpenMP stalls on a busy 2-core machine
    return make_tiny_generator(32, c_dim=5).requires_grad_(False)


def all_convs(G) -> precision.PrecisionPlan:
    return precision.PrecisionPlan(conv=frozenset(layer.spec.name for layer in G.synthesis.layers()))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean()
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


@torch.no_grad()
def test_plan_changes_only_what_runs_inside_its_block(G) -> None:
    ws = ws_from_seeds(G, [3], 1, 0.8)
    exact = G.synthesis(ws)
    with precision.running(all_convs(G)):
        preview = G.synthesis(ws)
    assert preview.dtype == torch.float32 and preview.shape == exact.shape
    assert not torch.equal(preview, exact)  # it really ran in bf16 ...
    assert psnr(to_uint8(preview), to_uint8(exact)) > 30  # ... and is still the same picture
    assert torch.equal(G.synthesis(ws), exact)  # and afterwards float32 is bit for bit what it was
    with precision.running(precision.PrecisionPlan()):  # an empty plan is float32
        assert torch.equal(G.synthesis(ws), exact)


@torch.no_grad()
def test_a_plan_holds_for_its_own_thread_only(G) -> None:
    ws = ws_from_seeds(G, [4], 2, 1.0)
    exact = G.synthesis(ws)
    inside, go, other = threading.Event(), threading.Event(), {}

    def render_in_other_thread() -> None:
        inside.wait(30)
        other["img"] = G.synthesis(ws)
        go.set()

    t = threading.Thread(target=render_in_other_thread)
    t.start()
    with precision.running(all_convs(G)):
        inside.set()  # the other thread renders while this one is inside the block
        assert go.wait(60)
    t.join()
    assert torch.equal(other["img"], exact)


@torch.no_grad()
def test_layer_dtypes_name_the_planned_layers_on_cpu_only(G) -> None:
    names = [layer.spec.name for layer in G.synthesis.layers()]
    plan = precision.PrecisionPlan(conv=frozenset(names[:2]), fir=frozenset(names[1:2]))
    cpu = torch.device("cpu")
    assert precision.layer_dtypes(names[0], cpu) == (None, None)  # no plan active
    with precision.running(plan):
        assert precision.layer_dtypes(names[0], cpu) == (torch.bfloat16, None)
        assert precision.layer_dtypes(names[1], cpu) == (torch.bfloat16, torch.bfloat16)
        assert precision.layer_dtypes(names[2], cpu) == (None, None)
        assert precision.layer_dtypes(names[0], torch.device("cuda")) == (None, None)  # CUDA keeps its fp16


@torch.no_grad()
def test_measure_plan_times_every_layer_and_picks_only_faster_ones(G) -> None:
    ws = ws_from_seeds(G, [0], 0, 1.0)
    plan = precision.measure_plan(G.synthesis, ws, rounds=2)
    names = [layer.spec.name for layer in G.synthesis.layers()]
    assert [t.name for t in plan.timings] == names
    assert plan.conv <= set(names) and plan.fir <= plan.conv  # a bf16 FIR only follows a bf16 conv
    for t in plan.timings:
        assert min(t.float32_ms, t.conv_bf16_ms, t.all_bf16_ms) > 0
        if t.name in plan.fir:
            assert t.all_bf16_ms * precision.MIN_SPEEDUP < t.float32_ms
        elif t.name in plan.conv:
            assert t.conv_bf16_ms * precision.MIN_SPEEDUP < t.float32_ms
        else:
            assert t.float32_ms <= min(t.conv_bf16_ms, t.all_bf16_ms) * precision.MIN_SPEEDUP
    assert plan.predicted_speedup() >= 1.0 and "of" in plan.summary()
    assert precision.measure_plan(G.synthesis, ws, should_stop=lambda: True) is None
    assert precision.measure_plan(torch.nn.Linear(2, 2), ws) is None  # no per-layer access: no plan


def qualifying(G) -> list[str]:
    final = max(layer.spec.stage for layer in G.synthesis.layers())
    return [x.spec.name for x in G.synthesis.layers() if precision.qualifies_for_plain(x, final)]


def test_only_same_rate_layers_of_the_last_stage_qualify_for_the_plain_activation(G) -> None:
    layers = G.synthesis.layers()
    final = max(layer.spec.stage for layer in layers)
    names = qualifying(G)
    assert names  # the 32x32 tiny model has a growth stage with same-rate layers
    for layer in layers:
        expected = (layer.spec.stage == final and not layer.spec.is_torgb and layer.up_factor == layer.down_factor)
        assert (layer.spec.name in names) == expected
    stem = make_tiny_generator(16, c_dim=5)  # a stem alone: no earlier stage carries the image
    assert not qualifying(stem)


@torch.no_grad()
def test_plain_activation_is_the_same_picture_with_aliasing(G) -> None:
    ws = ws_from_seeds(G, [5], 3, 1.0)
    exact = G.synthesis(ws)
    plan = precision.PrecisionPlan(plain=frozenset(qualifying(G)))
    with precision.running(plan):
        preview = G.synthesis(ws)
    assert preview.shape == exact.shape and not torch.equal(preview, exact)
    assert psnr(to_uint8(preview), to_uint8(exact)) > 25  # aligned: a one-pixel shift would be far worse
    assert torch.equal(G.synthesis(ws), exact)


@torch.no_grad()
def test_measure_plan_without_bf16_only_considers_the_plain_activation(G) -> None:
    plan = precision.measure_plan(G.synthesis, ws_from_seeds(G, [0], 0, 1.0), rounds=2, bf16=False)
    assert not plan.conv and not plan.fir and plan.plain <= set(qualifying(G))
    for t in plan.timings:
        assert t.conv_bf16_ms == t.all_bf16_ms == float("inf")
        assert (t.plain_ms < float("inf")) == (t.name in qualifying(G))
        assert (t.name in plan.plain) == (t.plain_ms * precision.MIN_SPEEDUP < t.float32_ms)


def test_cpu_bf16_support_reads_the_cpu_flags(monkeypatch) -> None:
    with open("/proc/cpuinfo") as f:
        flags = next(line for line in f if line.startswith("flags")).split()
    expected = "AMX-BF16" if "amx_bf16" in flags else "AVX512-BF16" if "avx512_bf16" in flags else None
    assert precision.cpu_bf16_support() == expected
    monkeypatch.setenv("SGXL_BF16", "0")
    assert precision.cpu_bf16_support() is None


@pytest.mark.parametrize("up,down", [(2, 2), (4, 2), (1, 1)])
def test_fir_conv_in_bf16_is_the_reference_to_bf16_precision(up: int, down: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 8, 20, 20)
    f = torch.tensor(np_kaiser_lowpass(12)) if up > 1 else None
    fd = torch.tensor(np_kaiser_lowpass(12)) if down > 1 else None
    b = torch.randn(8)
    args = dict(up=up, down=down, padding=(5, 5, 5, 5) if up > 1 else 0, clamp=256)
    ref = reference.filtered_lrelu(x, f, fd, b, **args)
    got = fir_conv.filtered_lrelu(x.bfloat16(), f, fd, b.bfloat16(), **args)
    assert fir_conv.supports(x.bfloat16()) and got.dtype == torch.bfloat16 and got.shape == ref.shape
    err = (got.float() - ref).abs().max() / ref.abs().max()
    assert err < 3e-2  # bf16 keeps 8 mantissa bits: ~0.4% per rounding, a few roundings deep


def np_kaiser_lowpass(taps: int) -> np.ndarray:
    import scipy.signal

    return scipy.signal.firwin(taps, cutoff=0.25, width=0.2, fs=1.0).astype(np.float32)
