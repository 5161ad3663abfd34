"""Shared fixtures."""

from __future__ import annotations

import pytest
import torch

from core.networks.generator import Generator
from tests.helpers import make_tiny_generator


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
