"""Helpers shared by tests: tiny generators, the path of the optional official fixtures, waiting on a state."""

from __future__ import annotations

import errno
import os
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from core.networks.generator import Generator
from core.networks.presets import preset_config

if TYPE_CHECKING:  # bench/ imports this module too, where pytest need not be installed
    import pytest

REPO = Path(__file__).resolve().parents[1]


def wait_until(condition: Callable[[], object], what: str, timeout: float = 60.0, poll_s: float = 0.005) -> None:
    """Poll `condition` until it holds; generous time-out, as a loaded 2-core machine can stall a thread or a
    process for seconds. Tests wait on the state they need, never for a fixed time."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll_s)
OFFICIAL_FIXTURES = REPO.parent / "shared" / "fixtures" / "official"


def make_tiny_generator(res: int = 16, c_dim: int = 5, seed: int = 0) -> Generator:
    """A random-init 'tiny' generator; its w_avg is set to distinct per-class values so truncation shows."""
    torch.manual_seed(seed)
    G = Generator(preset_config("tiny", res, c_dim=c_dim)).eval()
    with torch.no_grad():
        G.mapping.w_avg.copy_(torch.randn_like(G.mapping.w_avg) * 0.5)
    return G


class ToyDataset:
    """In-memory class-conditional dataset: class k has a bright colour channel k (mod 3) plus noise."""

    def __init__(self, n: int = 32, res: int = 16, classes: int = 3, seed: int = 0) -> None:
        import numpy as np

        rng = np.random.RandomState(seed)
        self.resolution, self.num_classes = res, classes
        self.class_names = [f"class{i}" for i in range(classes)]
        self.labels = rng.randint(0, classes, n)
        self.images = []
        for label in self.labels:
            img = rng.randint(0, 60, (3, res, res)).astype(np.uint8)
            img[label % 3] += 150
            self.images.append(img)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], int(self.labels[i])


def install_persistence_stand_in(monkeypatch: pytest.MonkeyPatch, body: Callable[[dict], object]) -> Callable:
    """Register `body` as `torch_utils.persistence._reconstruct_persistent_obj`, so pickle can name it.

    Official snapshots reduce every persistent module to a call of that function; tests write such
    pickles with this stand-in (and remove it again through monkeypatch).
    """
    package, module = types.ModuleType("torch_utils"), types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta: dict) -> object:
        return body(meta)

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    module._reconstruct_persistent_obj = _reconstruct_persistent_obj
    package.persistence = module
    monkeypatch.setitem(sys.modules, "torch_utils", package)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", module)
    return _reconstruct_persistent_obj


class OfficialRecord:
    """Pickles like an official persistent module: REDUCE(_reconstruct_persistent_obj, (meta,))."""

    def __init__(self, fn: object, class_name: str, state: dict) -> None:
        self.fn, self.class_name, self.state = fn, class_name, state

    def __reduce__(self) -> tuple:
        meta = {"type": "class", "version": 6, "module_src": "", "class_name": self.class_name, "state": self.state}
        return self.fn, (meta,)


def writable_official(obj: object, fn: object) -> object:
    """What the safe reader read (records, dicts, tensors, the mapping's Embedding stub) as picklable objects.

    `fn` is the persistence stand-in of `install_persistence_stand_in`; the result pickles (with pickle or
    dill) as the official training loop pickles a generator.
    """
    from core.io.official import InertObject, PersistentRecord

    if isinstance(obj, PersistentRecord):
        return OfficialRecord(fn, obj.class_name, writable_official(obj.state, fn))
    if isinstance(obj, dict):
        return type(obj)((k, writable_official(v, fn)) for k, v in obj.items())
    if isinstance(obj, list):
        return [writable_official(v, fn) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.clone()
    if isinstance(obj, InertObject) and obj.class_name == "Embedding":
        weight = obj.state["_parameters"]["weight"]
        embed = torch.nn.Embedding(*weight.shape)
        with torch.no_grad():
            embed.weight.copy_(weight)
        return embed
    if isinstance(obj, InertObject):
        raise TypeError(f"cannot write {obj!r} back")
    return obj


def no_links(monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """Make the filesystem behave as one whose best link is `kind`: "hardlink" (no symbolic links, as Windows
    without the privilege) or "pointer" (neither, as FAT); "symlink" changes nothing."""
    def refuse(*_args, **_kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    if kind in ("hardlink", "pointer"):
        monkeypatch.setattr(os, "symlink", refuse)
    if kind == "pointer":
        monkeypatch.setattr(os, "link", refuse)
