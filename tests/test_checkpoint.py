"""Checkpoint save/load: identical images after a round trip, atomic writes, clear errors."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch

from core.errors import CheckpointError
from core.io.checkpoint import load_checkpoint, save_checkpoint
from core.sampling import ws_from_seeds
from tests.helpers import make_tiny_generator

NAMES = ["cat", "dog", "fox", "owl", "eel"]


def test_roundtrip_gives_identical_images(tmp_path: Path) -> None:
    G = make_tiny_generator(32)
    path = save_checkpoint(tmp_path / "model.sgxl", G, {"kimg": 12.5, "stage": 1}, class_names=NAMES,
                           extra_tensors={"D": {"w": torch.arange(4.0)}})
    ckpt = load_checkpoint(path)
    assert ckpt.class_names == NAMES and ckpt.kimg == 12.5 and ckpt.meta["stage"] == 1
    assert torch.equal(ckpt.extra_tensors["D"]["w"], torch.arange(4.0))
    with torch.no_grad():
        a = G.synthesis(ws_from_seeds(G, [0, 1], 2, psi=0.7))
        b = ckpt.generator.synthesis(ws_from_seeds(ckpt.generator, [0, 1], 2, psi=0.7))
    assert torch.equal(a, b)
    # The grown generator's frozen layers stay frozen after loading (the trainer relies on it).
    assert {n for n, p in ckpt.generator.named_parameters() if p.requires_grad} == \
        {n for n, p in G.named_parameters() if p.requires_grad}


def test_suffix_is_added_and_no_temp_files_remain(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "sub" / "model", make_tiny_generator(16))
    assert path.name == "model.sgxl" and path.exists()
    assert [p.name for p in path.parent.iterdir()] == ["model.sgxl"]


def test_failed_write_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    G = make_tiny_generator(16)
    path = save_checkpoint(tmp_path / "model.sgxl", G, {"kimg": 1})

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("core.io.files.os.replace", boom)
    with pytest.raises(OSError):
        save_checkpoint(path, G, {"kimg": 2})
    monkeypatch.undo()
    assert load_checkpoint(path).kimg == 1
    assert [p.name for p in tmp_path.iterdir()] == ["model.sgxl"]


def test_folder_checkpoint_is_accepted(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.sgxl", make_tiny_generator(16))
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(path) as zf:
        zf.extractall(folder)
    assert load_checkpoint(folder).generator.img_resolution == 16


def test_clear_errors_for_bad_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.sgxl")
    junk = tmp_path / "junk.sgxl"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(CheckpointError, match="not a zip"):
        load_checkpoint(junk)
    good = save_checkpoint(tmp_path / "good.sgxl", make_tiny_generator(16))
    truncated = tmp_path / "truncated.sgxl"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError):
        load_checkpoint(truncated)


def test_mismatched_config_is_reported(tmp_path: Path) -> None:
    good = save_checkpoint(tmp_path / "good.sgxl", make_tiny_generator(16))
    with zipfile.ZipFile(good) as zf:
        config = json.loads(zf.read("config.json"))
        blob = zf.read("model.safetensors")
    config["generator"]["synthesis"]["channel_max"] = 64  # shapes no longer match the tensors
    bad = tmp_path / "bad.sgxl"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.safetensors", blob)
    with pytest.raises(CheckpointError, match="does not match|shape"):
        load_checkpoint(bad)
    config["format"] = "something-else"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.safetensors", blob)
    with pytest.raises(CheckpointError, match="not a StyleGAN-XL explorer checkpoint"):
        load_checkpoint(bad)


def test_wrong_number_of_class_names_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="class names"):
        save_checkpoint(tmp_path / "m.sgxl", make_tiny_generator(16), class_names=["a", "b"])
