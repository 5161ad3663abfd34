"""Our checkpoint format: tensors in safetensors, everything else in JSON; loading runs no code.

A checkpoint is one `.sgxl` file: a zip holding `model.safetensors` and `config.json`. A folder
holding those two files is accepted too. Tensor names are prefixed by the module they belong to:
`G.` for the generator (official G_ema names after the prefix), and any extra groups a caller
saves (the trainer stores `D.`, `G_opt.`...). `config.json`:

    {"format": "sgxl-checkpoint", "version": 1,
     "generator": GeneratorConfig.to_dict(), "class_names": [...] | null,
     "meta": {"kimg": ..., "stage": ..., "dataset": ..., "metrics": ...}}

Writes are atomic (temp file in the same folder, then rename), so a crash never leaves a half
written checkpoint in place of a good one.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from core.errors import CheckpointError
from core.io.loaded import Checkpoint
from core.io.official import load_official_checkpoint
from core.networks.generator import Generator, GeneratorConfig

FORMAT = "sgxl-checkpoint"
VERSION = 1
SUFFIX = ".sgxl"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    config = {
        "format": FORMAT,
        "version": VERSION,
        "generator": generator.cfg.to_dict(),
        "class_names": class_names,
        "meta": meta,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("config.json", json.dumps(config, indent=2))
        zf.writestr("model.safetensors", save_safetensors_bytes(tensors))
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _read_parts(path: Path) -> tuple[dict, bytes]:
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        if path.is_dir():
            return json.loads((path / "config.json").read_text()), (path / "model.safetensors").read_bytes()
        with zipfile.ZipFile(path) as zf:
            return json.loads(zf.read("config.json")), zf.read("model.safetensors")
    except FileNotFoundError as e:
        raise CheckpointError(f"{path} is not a checkpoint: missing {Path(e.filename or '?').name}") from None
    except KeyError as e:
        raise CheckpointError(f"{path} is not a checkpoint: the archive has no {e}") from None
    except zipfile.BadZipFile:
        raise CheckpointError(f"{path} is not a .sgxl checkpoint (not a zip archive, or truncated)") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{path} has a corrupt config.json") from None


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a `.sgxl` checkpoint (or an official StyleGAN-XL `.pkl`, converted safely on the fly)."""
    path = Path(path)
    if path.suffix == ".pkl":
        return load_official_checkpoint(path, device=device)
    config, blob = _read_parts(path)
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a StyleGAN-XL explorer checkpoint (format {config.get('format')!r})")
    if int(config.get("version", 0)) > VERSION:
        raise CheckpointError(f"{path} was written by a newer version (format {config['version']}); please upgrade")
    try:
        tensors = load_safetensors_bytes(blob)
    except Exception as e:  # safetensors raises its own error types for corrupt headers/data
        raise CheckpointError(f"{path} has corrupt tensor data ({e})") from None
    try:
        gen_cfg = GeneratorConfig.from_dict(config["generator"])
        G = Generator(gen_cfg)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path} has an invalid generator configuration ({e})") from None

    g_state = {k[2:]: v for k, v in tensors.items() if k.startswith("G.")}
    expected = G.state_dict()
    missing = sorted(set(expected) - set(g_state))
    unexpected = sorted(set(g_state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not match its configuration: missing {missing[:3]}, unexpected {unexpected[:3]}")
    for k, v in g_state.items():
        if v.shape != expected[k].shape:
            raise CheckpointError(f"{path}: tensor {k} has shape {tuple(v.shape)}, expected {tuple(expected[k].shape)}")
    G.load_state_dict(g_state)
    G.eval().to(device)

    extra: dict[str, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        group, _, name = k.partition(".")
        if group != "G":
            extra.setdefault(group, {})[name] = v
    class_names = config.get("class_names")
    return Checkpoint(generator=G, config=gen_cfg, class_names=class_names, meta=config.get("meta", {}),
                      extra_tensors=extra, path=path)
