"""Shared fixtures."""

from __future__ import annotations

import pytest

from core.networks.generator import Generator
from tests.helpers import make_tiny_generator


@pytest.fixture
def tiny_g16() -> Generator:
    return make_tiny_generator(16)
