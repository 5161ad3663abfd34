"""Pick the implementation of each StyleGAN op for a given tensor.

Backends are tried in the order of `BACKENDS`; the first whose `supports(x)` is true runs.
Fast paths come first in that tuple and must match `kernels.reference` (tests compare them).
On CUDA, `triton` runs (fused Triton kernels, float32/float16/bfloat16; no nvcc build: Triton compiles each kernel
variant on its first use and caches it on disk), or `fir_conv` where Triton is not installed. On CPU `fir_conv`
runs (its `filtered_lrelu` is 1.2-2.7x faster than `fir_matmul`'s, 1.6-2x with backward, bench/ops.py);
`fir_matmul` stays selectable for comparison and provides the stand-alone CPU `upfirdn2d` of both.
`SGXL_KERNELS=<name>` forces one backend (e.g. `reference` everywhere, to bisect a numerical difference);
a forced backend that does not support a tensor leaves it to the reference.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from kernels import fir_conv, fir_matmul, reference, triton_support


@dataclass(frozen=True)
class Backend:
    name: str
    supports: Callable[[torch.Tensor], bool]
    bias_act: Callable[..., torch.Tensor]
    upfirdn2d: Callable[..., torch.Tensor]
    filtered_lrelu: Callable[..., torch.Tensor]


REFERENCE = Backend(
    name="reference",
    supports=lambda x: True,
    bias_act=reference.bias_act,
    upfirdn2d=reference.upfirdn2d,
    filtered_lrelu=reference.filtered_lrelu,
)

FIR_MATMUL = Backend(
    name="fir_matmul",
    supports=fir_matmul.supports,
    bias_act=fir_matmul.bias_act,
    upfirdn2d=fir_matmul.upfirdn2d,
    filtered_lrelu=fir_matmul.filtered_lrelu,
)

FIR_CONV = Backend(
    name="fir_conv",
    supports=fir_conv.supports,
    bias_act=fir_conv.bias_act,
    upfirdn2d=fir_conv.upfirdn2d,
    filtered_lrelu=fir_conv.filtered_lrelu,
)


# The Triton modules import `triton` (and decorate their kernels) on first use only: a CPU-only torch without
# Triton must import this package, and `TRITON_INTERPRET` is read when the kernels are decorated.
def _triton_bias_act(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    from kernels import triton_bias_act

    return triton_bias_act.bias_act(x, *args, **kwargs)


def _triton_upfirdn2d(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    from kernels import triton_upfirdn2d

    return triton_upfirdn2d.upfirdn2d(x, *args, **kwargs)


def _triton_filtered_lrelu(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    from kernels import triton_filtered_lrelu

    return triton_filtered_lrelu.filtered_lrelu(x, *args, **kwargs)


TRITON = Backend(
    name="triton",
    supports=triton_support.supports,
    bias_act=_triton_bias_act,
    upfirdn2d=_triton_upfirdn2d,
    filtered_lrelu=_triton_filtered_lrelu,
)

BACKENDS: tuple[Backend, ...] = (TRITON, FIR_CONV, FIR_MATMUL, REFERENCE)


def select_backend(x: torch.Tensor) -> Backend:
    """The backend that runs ops on `x` (the reference when `SGXL_KERNELS=reference`)."""
    forced = os.environ.get("SGXL_KERNELS", "")
    if forced and forced not in {b.name for b in BACKENDS}:
        names = ", ".join(b.name for b in BACKENDS)
        raise ValueError(f"SGXL_KERNELS={forced!r} names no kernel backend; use one of {names}")
    for backend in BACKENDS:
        if forced and backend.name != forced:
            continue
        if backend.supports(x):
            return backend
    return REFERENCE


def bias_act(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    return select_backend(x).bias_act(x, *args, **kwargs)


def upfirdn2d(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    return select_backend(x).upfirdn2d(x, *args, **kwargs)


def filtered_lrelu(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    return select_backend(x).filtered_lrelu(x, *args, **kwargs)
