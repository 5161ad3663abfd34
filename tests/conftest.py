"""Shared fixtures."""

from __future__ import annotations

import os
import sys

import pytest
import torch

# Without a GPU the Triton kernels are tested in Triton's interpreter. `TRITON_INTERPRET` is read when
# `triton.language` is first imported (its own library functions, e.g. `tl.zeros`, are `@jit`-decorated
# then), and timm imports it: so it is set here, before any test module can import timm.
if not torch.cuda.is_available() and "triton.language" not in sys.modules:
    os.environ.setdefault("TRITON_INTERPRET", "1")

# The explorer builds a compiled synthesis in the background when it opens a checkpoint (15-30 s of CPU per
# checkpoint, explorer/compiled.py): tests that do not test that start it with the eager renderer only.
os.environ.setdefault("SGXL_COMPILED", "off")

from core.networks.generator import Generator  # noqa: E402
from tests.helpers import make_tiny_generator  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `cuda` need a real GPU: without one they skip (CI, the CPU-only machines)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture
def tiny_g16() -> Generator:
    return make_tiny_generator(16)
