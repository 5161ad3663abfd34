"""Cheaper inference for previews: which synthesis layers run in bfloat16 (and which skip the anti-aliasing
filters of the last stage), measured per layer.

Float32 is the product's number format: `sgxl generate`, the frame a user captures and every test of
equality with the official outputs use it. A bfloat16 path exists for speed on CPUs whose vector units
multiply bf16 natively (x86 AVX512-BF16 or AMX): there oneDNN runs a 3x3 convolution up to ~2.5x faster
than in float32. It is *not* faster everywhere: StyleGAN3's separable FIR resampling (depthwise
convolutions, `kernels.fir_conv`) measured ~10x slower in bf16 on such a CPU, a 3-channel ToRGB gains
nothing, and casts cost time. So nothing is assumed: `measure_plan` times every layer of a given
synthesis network both ways on this machine and a `PrecisionPlan` names the layers whose modulated
convolution (and, separately, whose filtered leaky ReLU) is faster in bf16.

A plan can also name layers of the *last* growth stage whose leaky ReLU runs plainly at the layer's own
sampling rate: StyleGAN3 (Sec. 3.2) upsamples 2x, applies the nonlinearity and low-pass filters back down
only so that the nonlinearity adds no aliasing; at the highest resolutions those FIR passes over a 2x-sized
signal cost more than the convolution itself. Without them the image is the same network's, with some
aliasing at the finest scale (~26 dB PSNR on the demo model, where bf16 alone is ~52 dB): fine while a
slider moves, never for the exact frame. Only same-rate layers (no resampling) of the last stage qualify:
errors there do not pass through more layers (doing it in every layer measured 10 dB).

A plan is applied with `with running(plan): G.synthesis(ws)`. It is a context variable: it holds for
the current thread only (a worker rendering a preview does not change what another thread computes),
and code outside such a block runs exactly as before, bit for bit.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch

BF16 = torch.bfloat16
# bf16 has to beat float32 by this factor in a layer before the layer runs in bf16: it costs accuracy
# (8 mantissa bits), so a tie, or a difference inside the timing noise of a busy machine, keeps float32.
MIN_SPEEDUP = 1.05


def cpu_bf16_support() -> str | None:
    """The CPU's native bfloat16 instructions ("AMX-BF16" or "AVX512-BF16"), None when it has neither.

    `torch.backends.cpu.get_cpu_capability()` only says "AVX512", which includes CPUs without bf16
    arithmetic (there oneDNN emulates bf16, slower than float32), so read the kernel's CPU flags.
    `SGXL_BF16=0` reports none (to run the float32-only path on any machine).
    """
    if os.environ.get("SGXL_BF16", "") == "0":
        return None
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return None
    if "amx_bf16" in flags:
        return "AMX-BF16"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    return None


@dataclass(frozen=True)
class LayerTiming:
    """One layer's measured forward time (ms, best of the rounds) in each variant."""

    name: str
    float32_ms: float
    conv_bf16_ms: float  # modulated conv in bf16, filtered lrelu in float32 (inf: not measured, no bf16)
    all_bf16_ms: float  # both in bf16 (inf: not measured: no bf16, or it had lost by far in earlier layers)
    plain_ms: float = math.inf  # float32 conv, plain leaky ReLU (inf: the layer does not qualify)


@dataclass(frozen=True)
class PrecisionPlan:
    """Layers (by name) whose modulated convolution / filtered leaky ReLU run in `dtype` instead of float32,
    and layers whose leaky ReLU runs plainly, without oversampling and anti-aliasing filters (`plain`)."""

    conv: frozenset[str] = frozenset()
    fir: frozenset[str] = frozenset()
    plain: frozenset[str] = frozenset()
    dtype: torch.dtype = BF16
    timings: tuple[LayerTiming, ...] = field(default=(), compare=False)

    @property
    def empty(self) -> bool:
        return not self.conv and not self.fir and not self.plain

    def restricted(self, bf16: bool = True, plain: bool = True) -> PrecisionPlan:
        """This plan without its bf16 layers (`bf16=False`) and/or without its plain activations."""
        return PrecisionPlan(conv=self.conv if bf16 else frozenset(), fir=self.fir if bf16 else frozenset(),
                             plain=self.plain if plain else frozenset(), dtype=self.dtype, timings=self.timings)

    def predicted_speedup(self) -> float:
        """Sum of float32 layer times / sum of the chosen variants' times (from the measurement)."""
        if not self.timings:
            return 1.0
        f32 = chosen = 0.0
        for t in self.timings:
            ms = t.all_bf16_ms if t.name in self.fir else t.conv_bf16_ms if t.name in self.conv else t.float32_ms
            if t.name in self.plain and t.name not in self.fir:
                ms -= t.float32_ms - t.plain_ms  # what skipping the filters saved, on top of the conv's dtype
            f32 += t.float32_ms
            chosen += ms
        return f32 / max(chosen, 1e-9)

    def summary(self) -> str:
        n = f" of {len(self.timings)}" if self.timings else ""
        parts = [f"bf16 convs in {len(self.conv)}{n} layers"]
        if self.fir:
            parts.append(f"bf16 FIR in {len(self.fir)}")
        if self.plain:
            parts.append(f"no anti-aliasing in {len(self.plain)} (last stage)")
        return ", ".join(parts) + f": measured {self.predicted_speedup():.2f}x"


_PLAN: ContextVar[PrecisionPlan | None] = ContextVar("sgxl_precision_plan", default=None)


@contextmanager
def running(plan: PrecisionPlan | None) -> Iterator[None]:
    """Run the synthesis layers named in `plan` in reduced precision inside this block (this thread only)."""
    token = _PLAN.set(plan)
    try:
        yield
    finally:
        _PLAN.reset(token)


def layer_dtypes(name: str, device: torch.device) -> tuple[torch.dtype | None, torch.dtype | None]:
    """(conv dtype, filtered-lrelu dtype) the active plan gives layer `name`; None = the layer's default."""
    plan = _PLAN.get()
    if plan is None or device.type != "cpu":
        return None, None
    return (plan.dtype if name in plan.conv else None), (plan.dtype if name in plan.fir else None)


def plain_activation(name: str, device: torch.device) -> bool:
    """Does the active plan run layer `name`'s leaky ReLU without oversampling and anti-aliasing filters?"""
    plan = _PLAN.get()
    return plan is not None and device.type == "cpu" and name in plan.plain


def qualifies_for_plain(layer: torch.nn.Module, final_stage: int) -> bool:
    """A same-rate (no resampling), non-ToRGB layer of the last growth stage of a grown model (a stem alone
    has no earlier stage to carry the image: without its filters it measured 10 dB; see the module doc)."""
    spec = layer.spec
    return (final_stage > 0 and spec.stage == final_stage and not spec.is_torgb
            and layer.up_factor == layer.down_factor)


def supports(synthesis: torch.nn.Module) -> bool:
    """Can `measure_plan` time this network layer by layer (StyleGAN3/XL synthesis: `input` + `layers()`)?"""
    return hasattr(synthesis, "input") and hasattr(synthesis, "layers")


@torch.no_grad()
def measure_plan(synthesis: torch.nn.Module, ws: torch.Tensor, rounds: int = 5, bf16: bool = True,
                 plain: bool = True, should_stop: Callable[[], bool] | None = None) -> PrecisionPlan | None:
    """Time each layer of `synthesis` on `ws` [1, num_ws, w_dim]: float32, conv-bf16 and all-bf16 (`bf16`),
    and the plain activation for the layers that qualify (`plain`).

    The variants alternate within each round and each keeps its best time, so a burst of load from
    another process slows all of them alike rather than deciding the outcome (and with one torch thread
    the clock is this thread's CPU time). A layer gets a variant only when that is at least `MIN_SPEEDUP`
    faster. The all-bf16 variant (bf16 FIR too) is dropped for the remaining layers once it lost by more
    than 2x in two layers: the FIR kernels are the same in every layer, and on CPUs where bf16 depthwise
    convolutions are slow (~10x here) measuring them again would only cost time. Returns None for a
    network without per-layer access (`input` + `layers()`), or as soon as `should_stop()` turns true.
    """
    if not supports(synthesis):
        return None
    # With one torch thread every op runs on this thread, so its CPU time is the cost without the time other
    # processes held the core (a shared 2-core machine); with more threads, wall time is what counts.
    clock = time.thread_time if torch.get_num_threads() == 1 else time.perf_counter
    layers = synthesis.layers()
    final_stage = max(layer.spec.stage for layer in layers)
    ws_list = ws.to(torch.float32).unbind(dim=1)
    x = synthesis.input(ws_list[0])
    timings, fir_losses = [], 0
    for layer, w in zip(layers, ws_list[1:]):
        name = {layer.spec.name}
        variants: list[PrecisionPlan | None] = [PrecisionPlan(), None, None, None]
        if bf16:
            variants[1] = PrecisionPlan(conv=frozenset(name))
            if fir_losses < 2:
                variants[2] = PrecisionPlan(conv=frozenset(name), fir=frozenset(name))
        if plain and qualifies_for_plain(layer, final_stage):
            variants[3] = PrecisionPlan(plain=frozenset(name))
        best = [math.inf] * 4
        for r in range(rounds + 1):  # round 0 warms oneDNN's kernel cache up for this shape: not counted
            if should_stop is not None and should_stop():
                return None
            for i, plan in enumerate(variants):
                if plan is None or (r > 1 and best[i] > 2 * min(best)):
                    continue  # not measured, or hopeless: spare the time
                with running(plan):
                    t0 = clock()
                    layer(x, w)
                    ms = (clock() - t0) * 1000
                if r > 0:
                    best[i] = min(best[i], ms)
        if variants[2] is not None:
            fir_losses += best[2] > 2 * min(best[:2])
        timings.append(LayerTiming(layer.spec.name, *best))
        x = layer(x, w)  # float32: the next layer is measured on the exact activations
    conv, fir, plain_layers = set(), set(), set()
    for t in timings:
        fastest = min(t.float32_ms, t.conv_bf16_ms, t.all_bf16_ms)
        if t.float32_ms > fastest * MIN_SPEEDUP:
            conv.add(t.name)
            if fastest == t.all_bf16_ms:
                fir.add(t.name)
        if t.float32_ms > t.plain_ms * MIN_SPEEDUP and t.name not in fir:
            plain_layers.add(t.name)
    return PrecisionPlan(conv=frozenset(conv), fir=frozenset(fir), plain=frozenset(plain_layers),
                         timings=tuple(timings))
