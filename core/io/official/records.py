"""An official generator as plain data: its persistent-module records walked to flat official names.

`G_ema` (fallback `G`) of a snapshot is a tree of `PersistentRecord`s (and inert stubs such as the
mapping's `Embedding`); walking `_modules` gives `OfficialGenerator.tensors` named as the official
`state_dict()` names them (`mapping.fc0.weight`, `synthesis.L9_16_1024.up_filter`) and every plain
attribute (`synthesis.L0_36_128.in_cutoff`, `synthesis.layer_names`, `head_layer_names`...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import CheckpointError
from core.io.official.machine import MAX_DEPTH, TooDeep
from core.io.official.unpickler import InertObject, PersistentRecord, read_official_pickle


@dataclass
class OfficialGenerator:
    """An official generator as plain data (names as in the official `state_dict()`)."""

    class_name: str
    init_kwargs: dict
    tensors: dict[str, torch.Tensor]  # "mapping.fc0.weight", "synthesis.L9_16_1024.up_filter", ...
    attributes: dict[str, Any]  # "synthesis.L0_36_128.in_size", "synthesis.layer_names", "head_layer_names"
    module_classes: dict[str, str] = field(default_factory=dict)  # "" (root), "mapping", "mapping.embed", ...
    parameter_names: set[str] = field(default_factory=set)  # which tensors are parameters (not buffers)
    source: str = ""


MAX_VALUES = 2_000_000  # plain values one walk may produce (shared references would otherwise multiply)


class TooLarge(Exception):
    """A walk over loaded values exceeded its budget (e.g. a list holding the same huge list 1000 times)."""


class Budget:
    """How many more values a walk may produce; shared by every attribute of one generator."""

    def __init__(self, limit: int = MAX_VALUES) -> None:
        self.left = limit

    def spend(self, n: int = 1) -> None:
        self.left -= n
        if self.left < 0:
            raise TooLarge


def _plain(value: Any, depth: int = 0, budget: Budget | None = None) -> Any:
    """Attribute values as plain Python (numpy scalars/arrays -> numbers/lists).

    Raises TooDeep on nesting beyond MAX_DEPTH (cycles included), TooLarge beyond the budget.
    """
    if depth > MAX_DEPTH:
        raise TooDeep
    budget = budget or Budget()
    budget.spend()
    if isinstance(value, np.generic):  # first: np.float64 is also a Python float
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str, bytes, torch.Tensor)):
        return value
    if isinstance(value, np.ndarray):
        budget.spend(value.size)
        return value.tolist()
    if isinstance(value, (list, tuple)):
        items = [_plain(v, depth + 1, budget) for v in value]
        return tuple(items) if type(value) is tuple else items
    if isinstance(value, dict):
        return {k: _plain(v, depth + 1, budget) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        budget.spend(len(value))
        return sorted(map(str, value))
    if isinstance(value, PersistentRecord):
        return f"<module {value.class_name}>"
    return repr(value)


def _module_state(obj: Any) -> tuple[str, dict] | None:
    if isinstance(obj, PersistentRecord):
        return obj.class_name, obj.state
    if isinstance(obj, InertObject) and isinstance(obj.state, dict) and "_parameters" in obj.state:
        return obj.class_name, obj.state
    return None


def _flatten(obj: Any, prefix: str, og: OfficialGenerator, budget: Budget, parents: tuple[int, ...] = ()) -> None:
    budget.spend()
    found = _module_state(obj)
    if found is None:
        raise CheckpointError(f"{og.source}: '{prefix.rstrip('.') or 'generator'}' is not a module "
                              f"({type(obj).__name__}); the file is not a StyleGAN generator snapshot")
    if id(obj) in parents:
        raise CheckpointError(f"{og.source}: corrupt generator: module '{prefix.rstrip('.')}' contains itself")
    if len(parents) > MAX_DEPTH:
        raise TooDeep
    parents = (*parents, id(obj))
    class_name, state = found
    og.module_classes[prefix.rstrip(".")] = class_name
    for group in ("_parameters", "_buffers"):
        entries = state.get(group) or {}
        if not isinstance(entries, dict):
            raise CheckpointError(f"{og.source}: corrupt module '{prefix.rstrip('.')}'")
        for name, tensor in entries.items():
            key = prefix + name
            if tensor is None:
                og.attributes[key] = None
                continue
            if not isinstance(tensor, torch.Tensor):
                raise CheckpointError(f"{og.source}: '{key}' is not a tensor")
            og.tensors[key] = tensor
            if group == "_parameters":
                og.parameter_names.add(key)
    modules = state.get("_modules") or {}
    if not isinstance(modules, dict):
        raise CheckpointError(f"{og.source}: corrupt module '{prefix.rstrip('.')}'")
    for name, sub in modules.items():
        if sub is not None:
            _flatten(sub, f"{prefix}{name}.", og, budget, parents)
    for key, value in state.items():
        if not key.startswith("_") and key != "training":
            og.attributes[prefix + key] = _plain(value, budget=budget)


def official_generator_from_snapshot(data: dict, source: str = "snapshot") -> OfficialGenerator:
    """G_ema (fallback G) of a snapshot dict read by `read_official_pickle`, flattened to names."""
    key = "G_ema" if data.get("G_ema") is not None else "G" if data.get("G") is not None else None
    if key is None:
        keys = ", ".join(map(str, list(data)[:8])) or "none"
        raise CheckpointError(f"{source} holds no generator: it has no 'G_ema' or 'G' entry (keys: {keys})")
    record = data[key]
    if not isinstance(record, PersistentRecord):
        raise CheckpointError(f"{source}: '{key}' is not a StyleGAN generator module")
    og = OfficialGenerator(class_name=record.class_name, init_kwargs={}, tensors={}, attributes={}, source=source)
    try:
        budget = Budget()
        init_kwargs = _plain(record.state.get("_init_kwargs") or {}, budget=budget)
        og.init_kwargs = init_kwargs if isinstance(init_kwargs, dict) else {}
        _flatten(record, "", og, budget)
    except (TooDeep, RecursionError):
        raise CheckpointError(f"{source}: corrupt generator: its attributes nest without end") from None
    except TooLarge:
        raise CheckpointError(f"{source}: corrupt generator: its attributes hold more than {MAX_VALUES:,} values "
                              "(repeated references?); no StyleGAN generator does") from None
    og.attributes["_snapshot_key"] = key
    return og


def read_official_generator(path: str | Path) -> OfficialGenerator:
    """The generator (G_ema, else G) of an official snapshot, as names -> tensors and attributes."""
    return official_generator_from_snapshot(read_official_pickle(path), source=str(path))

