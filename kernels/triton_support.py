"""What the Triton kernels need before `triton` itself is imported: availability and filter taps on the host.

Nothing here imports `triton`: a CPU-only torch without it must still import `kernels` (the dispatcher asks
`available()` and imports `kernels.triton_*` only when a CUDA tensor arrives and Triton is installed).

Tests run the same kernels on CPU tensors through Triton's interpreter (`TRITON_INTERPRET=1`, read when a
kernel is *decorated*, i.e. when `kernels.triton_*` is first imported); on CUDA they are compiled.
"""

from __future__ import annotations

import importlib.util
import os
import weakref
from functools import lru_cache

import torch

DTYPES = (torch.float32, torch.float16, torch.bfloat16)  # what the kernels read and write (they compute in fp32)


@lru_cache(maxsize=1)
def available() -> bool:
    """True when `triton` can be imported (it ships with CUDA builds of torch on Linux)."""
    try:
        if importlib.util.find_spec("triton") is None:
            return False
        import triton  # noqa: F401
    except Exception:  # a broken or blocked install counts as missing
        return False
    return True


def interpreting() -> bool:
    """True when kernels decorated now run in Triton's CPU interpreter."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def supports(x: torch.Tensor) -> bool:
    """CUDA float32/float16/bfloat16 tensors, when Triton is installed."""
    return x.device.type == "cuda" and x.dtype in DTYPES and available()


# Filters are tiny constant buffers of the synthesis layers, on the GPU. Reading their taps for the band
# matrices would cost a device->host sync per call; keep the taps per filter tensor (and its version counter,
# which any in-place change bumps) so that a frame runs without one. Keyed by identity: a tensor's `==` is
# elementwise, so a WeakKeyDictionary cannot hold tensors.
_taps: dict[int, tuple[weakref.ref, int, tuple]] = {}


def host_taps(f: torch.Tensor | None) -> tuple | None:
    """The taps of a 1-D filter as a tuple of floats, or of a 2-D one as a tuple of rows; None stays None."""
    if f is None:
        return None
    hit = _taps.get(id(f))
    if hit is not None and hit[0]() is f and hit[1] == f._version:
        return hit[2]
    values = f.detach().to("cpu", torch.float64).tolist()
    taps = tuple(tuple(row) for row in values) if f.ndim == 2 else tuple(values)
    key = id(f)
    try:
        ref = weakref.ref(f, lambda _, key=key: _taps.pop(key, None))
    except TypeError:  # tensors that refuse weak references are simply not cached
        return taps
    _taps[key] = (ref, f._version, taps)
    return taps
