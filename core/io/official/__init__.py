"""Open official StyleGAN `.pkl` snapshots safely: nothing from the file ever runs.

The parts, each in its own module:
- `unpickler`: the restricted `pickle.Unpickler` (allow-list, inert records and stubs), `read_official_pickle`.
- `tensors`: tensors, legacy storages and numpy values rebuilt from data, every view bounds-checked.
- `records`: the generator's persistent-module records walked to flat official names (`OfficialGenerator`).
- one module per network family (`stylegan_xl`, `stylegan3`, `stylegan2` for StyleGAN2 and 2-ADA) mapping
  official names and attributes to our configuration and state dict, and verifying the architecture.

A family module provides `KINDS` (class name -> description), `label(og)` (what to call the file's
generator), `unsupported_reason(og)`, `official_to_config(og)`, `build_generator(cfg)`,
`verify_generator(G, og)`, `official_state_dict(og, cfg)` (tensors under our names) and
`describe_lines(og, cfg)`; `family_of(og)` picks the module that matches the generator in the file
(StyleGAN2 and StyleGAN3 by their `matches(og)`, StyleGAN-XL otherwise).
"""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from core.errors import CheckpointError
from core.io.loaded import Checkpoint
from core.io.official import stylegan2, stylegan3, stylegan_xl
from core.io.official.machine import MAX_DEPTH, TooDeep
from core.io.official.records import (
    OfficialGenerator,
    TooLarge,
    _plain,
    official_generator_from_snapshot,
    read_official_generator,
)
from core.io.official.unpickler import InertObject, PersistentRecord, _check_path, read_official_pickle
from core.io.validate import check_model_size, validate_generator

__all__ = [
    "InertObject", "OfficialGenerator", "PersistentRecord", "describe_official", "family_of",
    "generator_from_official", "load_official_checkpoint", "load_official_generator",
    "official_generator_from_snapshot", "official_to_config", "read_official_generator", "read_official_pickle",
]


def family_of(og: OfficialGenerator) -> tuple[ModuleType, str | None]:
    """The family module whose names `og` uses, and why it cannot be converted (None: it can)."""
    for family in (stylegan2, stylegan3):
        if family.matches(og):
            return family, family.unsupported_reason(og)
    return stylegan_xl, stylegan_xl.unsupported_reason(og)


def official_to_config(og: OfficialGenerator) -> Any:
    """Our generator configuration for an official generator (raises CheckpointError saying why not)."""
    family, reason = family_of(og)
    if reason:
        raise CheckpointError(f"{og.source}: {reason}")
    return family.official_to_config(og)


def _load_strict(G: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load `state` into `G`: every tensor must have its place and shape, and every place a tensor."""
    ours = G.state_dict()
    unmapped = [name for name in state if name not in ours]
    if unmapped:
        raise CheckpointError(f"{source}: unsupported architecture: {len(unmapped)} official tensors have no "
                              f"place in our generator, e.g. {', '.join(unmapped[:3])}")
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(ours[name].shape):
            raise CheckpointError(f"{source}: tensor {name} has shape {list(tensor.shape)}, "
                                  f"ours {list(ours[name].shape)}")
        if ours[name].is_floating_point() and not tensor.is_floating_point():
            raise CheckpointError(f"{source}: tensor {name} holds {tensor.dtype} values where the generator "
                                  "needs floating point numbers")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{source}: tensor {name} holds NaN or infinite values; the images would be "
                                  "blank (a diverged or damaged snapshot)")
    missing = sorted(set(ours) - set(state))
    if missing:
        raise CheckpointError(f"{source}: the file lacks {len(missing)} tensors our generator needs, "
                              f"e.g. {', '.join(missing[:3])}")
    G.load_state_dict({name: tensor.to(ours[name].dtype).clone() for name, tensor in state.items()}, strict=True)


def generator_from_official(og: OfficialGenerator) -> nn.Module:
    """Build our generator for `og` and load every official tensor into it (strict: nothing left over)."""
    family, reason = family_of(og)
    if reason:
        raise CheckpointError(f"{og.source}: {reason}")
    cfg = family.official_to_config(og)
    validate_generator(cfg, source=og.source)  # config ranges and size limits, before anything is allocated
    try:
        G = family.build_generator(cfg)
    except (ValueError, TypeError, RuntimeError, ZeroDivisionError, OverflowError, IndexError, KeyError,
            MemoryError) as e:
        raise CheckpointError(f"{og.source}: cannot build a generator with the file's settings "
                              f"({type(e).__name__}: {e})") from None
    family.verify_generator(G, og)
    _load_strict(G, family.official_state_dict(og, cfg), og.source)
    return G.eval().requires_grad_(False)


def load_official_generator(path: str | Path) -> nn.Module:
    """Our generator with the weights of an official `.pkl` (G_ema, fallback G)."""
    return generator_from_official(read_official_generator(path))


def _jsonable(value: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise TooDeep
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    return repr(value)


def _trained_kimg(data: dict) -> float | None:
    """progress['cur_nimg'] / 1000 when it is a number or a one-element tensor (else unknown: None)."""
    progress = data.get("progress")
    nimg = progress.get("cur_nimg") if isinstance(progress, dict) else None
    if isinstance(nimg, torch.Tensor) and nimg.numel() == 1 and not nimg.is_complex():
        nimg = nimg.item()
    if isinstance(nimg, (int, float)) and not isinstance(nimg, bool) and math.isfinite(nimg):
        return float(nimg) / 1000
    return None


def _snapshot_meta(data: dict, og: OfficialGenerator, path: Path) -> dict:
    family, _ = family_of(og)
    meta: dict[str, Any] = {"source": f"official {family.label(og)} snapshot", "source_file": path.name,
                            "official_class": og.class_name, "official_key": og.attributes.get("_snapshot_key")}
    kimg = _trained_kimg(data)
    if kimg is not None:
        meta["kimg"] = kimg
    if isinstance(data.get("training_set_kwargs"), dict):
        try:
            meta["training_set_kwargs"] = _jsonable(_plain(data["training_set_kwargs"]))
        except (TooDeep, TooLarge, RecursionError):
            raise CheckpointError(f"{path}: corrupt snapshot: its training_set_kwargs nest without end or are "
                                  "too large") from None
    if isinstance(og.attributes.get("path_stem"), str):
        meta["path_stem"] = og.attributes["path_stem"]
    return meta


def load_official_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """An official `.pkl` as our `Checkpoint` (converted in memory, nothing run)."""
    path = _check_path(path)
    data = read_official_pickle(path)
    og = official_generator_from_snapshot(data, source=str(path))
    G = generator_from_official(og).to(device)
    return Checkpoint(generator=G, config=G.cfg, class_names=None, meta=_snapshot_meta(data, og, path), path=path)


def describe_official(path: str | Path) -> str:
    """A human-readable summary of an official `.pkl` (for `sgxl info`); reads, never runs, never converts."""
    path = _check_path(path)
    data = read_official_pickle(path)
    og = official_generator_from_snapshot(data, source=str(path))
    family, reason = family_of(og)
    a = og.attributes
    lines = [f"official pickle  {path}", f"entries          {', '.join(map(str, data))}"]
    lines.append(f"generator        {og.class_name} ({family.KINDS.get(og.class_name, 'unknown kind')}, "
                 f"from {a.get('_snapshot_key')})")
    res = a.get("img_resolution")
    lines.append(f"resolution       {res}x{res}")
    lines.append(f"latents          z {a.get('z_dim')}, w {a.get('w_dim')}, num_ws {a.get('num_ws')}")
    lines.append(f"classes          {a.get('c_dim')}")
    layer_names = a.get("synthesis.layer_names")
    blocks = a.get("synthesis.block_resolutions")  # StyleGAN2 has blocks b4, b8, ... instead of layer names
    layer_names = ([str(n) for n in layer_names] if isinstance(layer_names, list)
                   else [f"b{r}" for r in blocks] if isinstance(blocks, list) else [])
    lines.append(f"layers           {len(layer_names)}: {', '.join(layer_names)}")
    n_params = sum(t.numel() for k, t in og.tensors.items() if k in og.parameter_names)
    n_mapping = sum(t.numel() for k, t in og.tensors.items() if k in og.parameter_names and k.startswith("mapping."))
    lines.append(f"params           {n_params:,} (mapping {n_mapping:,}, synthesis {n_params - n_mapping:,})")
    kimg = _trained_kimg(data)
    if kimg is not None:
        lines.append(f"trained          {kimg:.1f} kimg")
    try:
        cfg = official_to_config(og)
        check_model_size(cfg, og.source)  # "supported" only when it would also load
    except CheckpointError as e:
        lines.append(f"conversion       not supported: {e}")
        return "\n".join(lines)
    lines.extend(family.describe_lines(og, cfg))
    lines.append("conversion       supported: `sgxl convert` writes it as a .sgxl checkpoint")
    return "\n".join(lines)
