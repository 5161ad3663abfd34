"""Our checkpoint format: tensors in safetensors, everything else in JSON; loading runs no code.

A checkpoint is one `.sgxl` file: a zip holding `model.safetensors` and `config.json`. A folder
holding those two files is accepted too. Tensor names are prefixed by the module they belong to:
`G.` for the generator (official G_ema names after the prefix), and any extra groups a caller
saves (the trainer stores `D.`, `G_opt.`...). `config.json`:

    {"format": "sgxl-checkpoint", "version": 1 | 2, "family": "stylegan-xl" | "stylegan3" | "stylegan2",
     "generator": <the family's config>.to_dict(), "class_names": [...] | null,
     "meta": {"kimg": ..., "stage": ..., "dataset": ..., "metrics": ...}}

`family` names the generator family (core/networks/family.py); a file without it is StyleGAN-XL.
StyleGAN-XL checkpoints are written as version 1 (readable by every release); the other families as
version 2, so an older release says "written by a newer version" instead of misreading the config.

Writes are atomic (core.io.files: temp file in the same folder, then rename), so a crash or a full
disk never leaves a half written checkpoint in place of a good one. Loads pass core.io.validate
first: nothing is allocated for a file until its config, sizes and tensor table have been checked.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from core.errors import CheckpointError
from core.io.files import atomic_open
from core.io.loaded import Checkpoint
from core.io.official import load_official_checkpoint
from core.io.pointer import resolve_pointer
from core.io.validate import (
    MAX_CONFIG_BYTES,
    check_class_names,
    check_generator_header,
    check_meta,
    check_safetensors_header,
    check_tensor_values,
    read_zip_member,
    safetensors_cap,
    validate_generator,
)
from core.networks.family import build_generator
from core.networks.generator import Generator

FORMAT = "sgxl-checkpoint"
VERSION = 2  # the newest version this code reads and writes
SUFFIX = ".sgxl"


def save_checkpoint(
    path: str | Path,
    generator: Generator,
    meta: dict | None = None,
    class_names: list[str] | None = None,
    extra_tensors: dict[str, dict[str, torch.Tensor]] | None = None,
) -> Path:
    """Save `generator` (+ optional tensor groups) as a `.sgxl` file; returns the path written."""
    path = Path(path)
    if path.suffix != SUFFIX:
        path = path.with_suffix(SUFFIX)
    meta = dict(meta or {})
    if class_names is None:
        class_names = meta.pop("class_names", None)
    if class_names is not None and len(class_names) != generator.c_dim:
        raise CheckpointError(f"{len(class_names)} class names given for a generator with {generator.c_dim} classes")

    tensors = {f"G.{k}": v for k, v in generator.state_dict().items()}
    for group, group_tensors in (extra_tensors or {}).items():
        if group == "G" or "." in group:
            raise ValueError(f"invalid tensor group name {group!r}")
        tensors.update({f"{group}.{k}": v for k, v in group_tensors.items()})
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    family = generator.family
    config = {
        "format": FORMAT,
        "version": 1 if family == "stylegan-xl" else VERSION,
        "family": family,
        "generator": generator.cfg.to_dict(),
        "class_names": class_names,
        "meta": meta,
    }
    blob = save_safetensors_bytes(tensors)
    del tensors
    with atomic_open(path) as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("config.json", json.dumps(config, indent=2))
        zf.writestr("model.safetensors", blob)
    return path


def _read_member_file(path: Path, name: str, cap: int) -> bytes:
    member = path / name
    if not member.is_file():
        raise CheckpointError(f"{path} is not a checkpoint: missing {name}")
    size = member.stat().st_size
    if size > cap:
        raise CheckpointError(f"{path}: {name} is {size / 2**20:,.1f} MB, more than this configuration can need "
                              f"({cap / 2**20:,.1f} MB); refusing to read it")
    return member.read_bytes()


class _Parts:
    """A checkpoint's two members, read one at a time with size caps (folder or zip)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zf: zipfile.ZipFile | None = None
        if not path.exists():
            raise CheckpointError(f"no checkpoint at {path}")
        if not path.is_dir():
            try:
                self.zf = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError):
                raise CheckpointError(f"{path} is not a .sgxl checkpoint (not a zip archive, or truncated)") from None

    def read(self, name: str, cap: int) -> bytes:
        if self.zf is None:
            return _read_member_file(self.path, name, cap)
        try:
            return read_zip_member(self.zf, name, cap, str(self.path))
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError) as e:
            raise CheckpointError(f"{self.path} has a corrupt {name} ({e})") from None

    def close(self) -> None:
        if self.zf is not None:
            self.zf.close()


def _read_config(parts: _Parts) -> dict:
    try:
        config = json.loads(parts.read("config.json", MAX_CONFIG_BYTES))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise CheckpointError(f"{parts.path} has a corrupt config.json") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{parts.path} has a corrupt config.json (not a JSON object)")
    return config


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu", allow_large: bool | None = None
                    ) -> Checkpoint:
    """Load a `.sgxl` checkpoint (or an official StyleGAN-XL `.pkl`, converted safely on the fly).

    Everything in the file is checked (core.io.validate) before the generator is built: config field
    types and ranges, the model's size, member sizes, tensor names/shapes/dtypes, finite values.
    `allow_large` lifts the size limits (default: the SGXL_ALLOW_LARGE environment variable).
    """
    path = Path(path)
    if path.suffix == ".pkl":
        return load_official_checkpoint(path, device=device)
    path = resolve_pointer(path)  # a run's latest.sgxl may be a small pointer file (core/io/pointer.py)
    parts = _Parts(path)
    try:
        config = _read_config(parts)
        if config.get("format") != FORMAT:
            raise CheckpointError(f"{path} is not a StyleGAN-XL explorer checkpoint (format "
                                  f"{str(config.get('format'))[:40]!r})")
        version = config.get("version", 0)
        if isinstance(version, bool) or not isinstance(version, int):
            raise CheckpointError(f"{path} has a corrupt config.json (version {str(version)[:20]!r})")
        if version > VERSION:
            raise CheckpointError(f"{path} was written by a newer version (format {version}); please upgrade")
        source = str(path)
        family = config.get("family", "stylegan-xl")  # files written before other families existed: StyleGAN-XL
        gen_cfg = validate_generator(config.get("generator"), source=source, allow_large=allow_large,
                                     family=family)
        class_names = check_class_names(config.get("class_names"), gen_cfg.mapping.c_dim, source)
        meta = check_meta(config.get("meta", {}), source)
        blob = parts.read("model.safetensors", safetensors_cap(gen_cfg, source))
    finally:
        parts.close()
    check_generator_header(check_safetensors_header(blob, source), gen_cfg, source)
    try:
        tensors = load_safetensors_bytes(blob)
    except Exception as e:  # safetensors raises its own error types for corrupt headers/data
        raise CheckpointError(f"{path} has corrupt tensor data ({e})") from None
    del blob
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        group, _, name = k.partition(".")
        groups.setdefault(group, {})[name] = v
    del tensors
    for group, group_tensors in groups.items():
        check_tensor_values(group_tensors, source, floating=group in ("G", "G_train"), prefix=f"{group}.")
    try:
        G = build_generator(family, gen_cfg)
    except (KeyError, TypeError, ValueError, ZeroDivisionError, OverflowError, RuntimeError) as e:
        raise CheckpointError(f"{path} has an invalid generator configuration ({e})") from None
    G.load_state_dict(groups.pop("G"))
    G.eval().to(device)
    return Checkpoint(generator=G, config=gen_cfg, class_names=class_names, meta=meta,
                      extra_tensors=groups, path=path)
