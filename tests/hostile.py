"""Builders of hostile and broken files for the tests: forged checkpoints, zip bombs, PNG bombs."""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save


def read_sgxl(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("config.json")), st_load(zf.read("model.safetensors"))


def write_sgxl(path: Path, config: dict | list | str, tensors: dict[str, torch.Tensor] | None = None,
               blob: bytes | None = None) -> Path:
    """A `.sgxl` zip with exactly these members (config may be any JSON value, or raw text)."""
    text = config if isinstance(config, str) else json.dumps(config)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("config.json", text)
        zf.writestr("model.safetensors", blob if blob is not None else st_save(tensors or {}))
    return path


def rewrite_sgxl(src: Path, dst: Path, config: Callable[[dict], object] | None = None,
                 tensors: Callable[[dict], None] | None = None) -> Path:
    """Copy `src` to `dst`, letting `config(cfg)` edit the JSON in place (or return a replacement) and
    `tensors(t)` edit the tensor dict in place."""
    cfg, t = read_sgxl(src)
    if config is not None:
        replaced = config(cfg)
        cfg = cfg if replaced is None else replaced
    if tensors is not None:
        tensors(t)
    return write_sgxl(dst, cfg, t)


def patch_zip_size(path: Path, member: str, file_size: int) -> None:
    """Make the zip's central directory claim `file_size` inflated bytes for `member` (data unchanged)."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    pos = 0
    while True:
        pos = data.index(b"PK\x01\x02", pos)
        (name_len,) = struct.unpack_from("<H", data, pos + 28)
        if data[pos + 46:pos + 46 + name_len] == name:
            struct.pack_into("<I", data, pos + 24, file_size)
            break
        pos += 4
    path.write_bytes(bytes(data))


def deflated_zeros_member(path: Path, member: str, size: int, others: dict[str, bytes] | None = None) -> Path:
    """A zip whose `member` is `size` zero bytes, deflated (a few hundred KB on disk per 100 MB)."""
    chunk = bytes(2**20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, content in (others or {}).items():
            zf.writestr(name, content)
        with zf.open(member, "w", force_zip64=True) as f:
            left = size
            while left:
                n = min(left, len(chunk))
                f.write(chunk[:n])
                left -= n
    return path


def png_bytes(res: int = 16, seed: int = 0) -> bytes:
    rng = np.random.RandomState(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.randint(0, 255, (res, res, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A tiny valid-looking PNG whose header claims width x height pixels (a decompression bomb's header)."""
    data = bytearray(png_bytes(16))
    assert data[12:16] == b"IHDR"
    struct.pack_into(">II", data, 16, width, height)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def dataset_zip(path: Path, images: dict[str, bytes], labels: object = None,
                class_names: list[str] | None = None) -> Path:
    """A dataset zip in the official layout; `labels` is written as dataset.json's 'labels' when given."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, content in images.items():
            zf.writestr(name, content)
        if labels is not None or class_names is not None:
            meta: dict = {"labels": labels}
            if class_names is not None:
                meta["class_names"] = class_names
            zf.writestr("dataset.json", json.dumps(meta))
    return path
