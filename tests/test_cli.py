"""`sgxl` end to end: files written and read back, clear one-line errors for bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from PIL import Image

from core.cli import main, parse_int_list
from core.errors import UserInputError
from core.io.checkpoint import load_checkpoint, save_checkpoint
from core.sampling import to_uint8, ws_from_seeds
from tests.helpers import make_tiny_generator

NAMES = ["red panda", "tabby cat", "tiger cat", "owl", "eel"]


@pytest.fixture
def ckpt_path(tmp_path: Path) -> Path:
    return save_checkpoint(tmp_path / "tiny.sgxl", make_tiny_generator(32), {"kimg": 3}, class_names=NAMES)


def test_parse_int_list() -> None:
    assert parse_int_list("0-3,7, 10-11") == [0, 1, 2, 3, 7, 10, 11]
    for bad in ["", "a", "3-1", "-2"]:
        with pytest.raises(UserInputError):
            parse_int_list(bad)


def test_generate_grid_matches_core(ckpt_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    assert main(["generate", "--ckpt", str(ckpt_path), "--seeds", "0-3", "--class", "owl", "--trunc", "0.7",
                 "--cols", "2", "--out", str(out), "--device", "cpu"]) == 0
    grid = np.asarray(Image.open(out))
    assert grid.shape == (64, 64, 3)
    G = load_checkpoint(ckpt_path).generator
    with torch.no_grad():
        expected = to_uint8(G.synthesis(ws_from_seeds(G, [0, 1, 2, 3], 3, psi=0.7)))
    assert np.array_equal(grid[:32, 32:], expected[1])  # seed 1 sits top-right
    assert np.array_equal(grid[32:, :32], expected[2])


def test_generate_class_rows(ckpt_path: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "rows.png"
    assert main(["generate", "--ckpt", str(ckpt_path), "--seeds", "0-2", "--classes", "owl,0", "--out", str(out),
                 "--device", "cpu"]) == 0
    assert "rows = 2 classes" in capsys.readouterr().out
    grid = np.asarray(Image.open(out))
    assert grid.shape == (64, 96, 3)  # 2 rows (classes) x 3 columns (seeds)
    G = load_checkpoint(ckpt_path).generator
    with torch.no_grad():
        owl = to_uint8(G.synthesis(ws_from_seeds(G, [0, 1, 2], 3)))
        first = to_uint8(G.synthesis(ws_from_seeds(G, [0, 1, 2], 0)))  # each row is one batch
    assert np.array_equal(grid[:32, 32:64], owl[1]) and np.array_equal(grid[32:, 64:], first[2])

    folder = tmp_path / "all"
    assert main(["generate", "--ckpt", str(ckpt_path), "--seeds", "4", "--classes", "all", "--out", str(folder)]) == 0
    assert sorted(f.name for f in folder.iterdir()) == [f"class{c:04d}_seed0004.png" for c in range(5)]
    assert main(["generate", "--ckpt", str(ckpt_path), "--class", "1", "--classes", "2", "--out", str(out)]) == 2
    assert "not both" in capsys.readouterr().err


def test_generate_per_seed_files_and_style_mix(ckpt_path: Path, tmp_path: Path) -> None:
    plain, mixed = tmp_path / "plain", tmp_path / "mixed"
    assert main(["generate", "--ckpt", str(ckpt_path), "--seeds", "5,6", "--out", str(plain)]) == 0
    assert main(["generate", "--ckpt", str(ckpt_path), "--seeds", "5,6", "--out", str(mixed),
                 "--style-mix-seed", "9", "--style-mix-class", "2", "--style-mix-layers", "0-5"]) == 0
    a = np.asarray(Image.open(plain / "seed0005.png"))
    b = np.asarray(Image.open(mixed / "seed0005.png"))
    assert a.shape == b.shape == (32, 32, 3)
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 1


def test_video_mp4_and_gif(ckpt_path: Path, tmp_path: Path) -> None:
    mp4, gif = tmp_path / "lerp.mp4", tmp_path / "lerp.gif"
    assert main(["video", "--ckpt", str(ckpt_path), "--seeds", "0,1", "--classes", "0,4", "--frames", "4",
                 "--out", str(mp4)]) == 0
    frames = imageio.mimread(mp4)
    assert len(frames) == 5 and frames[0].shape[:2] == (32, 32)
    assert main(["video", "--ckpt", str(ckpt_path), "--seeds", "0,1", "--frames", "3", "--loop",
                 "--out", str(gif)]) == 0
    assert len(imageio.mimread(gif)) == 6


def test_info(ckpt_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(ckpt_path)]) == 0
    out = capsys.readouterr().out
    assert "32x32" in out and "red panda" in out and "kimg: 3" in out


@pytest.mark.parametrize("args, message", [
    (["--seeds", "x"], "cannot read seeds"),
    (["--class", "99"], "out of range"),
    (["--class", "cat"], "matches 2 classes"),
    (["--class", "zebra"], "no class is named"),
    (["--style-mix-seed", "1", "--style-mix-layers", "0-40"], "style-mix-layers"),
])
def test_bad_input_gives_one_line_error(ckpt_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        args: list[str], message: str) -> None:
    rc = main(["generate", "--ckpt", str(ckpt_path), "--out", str(tmp_path / "x.png"), *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err


def test_missing_checkpoint_through_the_console_script(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "core.cli", "generate", "--ckpt", str(tmp_path / "nope.sgxl")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: no checkpoint at")
    assert "Traceback" not in result.stderr


def test_generate_with_builtin_preset(tmp_path: Path) -> None:
    out = tmp_path / "p.png"
    assert main(["generate", "--preset", "tiny", "--res", "16", "--seeds", "0", "--out", str(out)]) == 0
    assert np.asarray(Image.open(out)).shape == (16, 16, 3)


def test_convert_exports_a_snapshot_without_its_training_state(tmp_path: Path) -> None:
    G = make_tiny_generator(16)
    extra = {"D": {"w": torch.randn(64, 64)}, "opt_G": {"m": torch.randn(64, 64)}}
    snap = save_checkpoint(tmp_path / "snap.sgxl", G, {"kimg": 7.5}, class_names=NAMES, extra_tensors=extra)
    out = tmp_path / "export.sgxl"
    assert main(["convert", str(snap), "--out", str(out)]) == 0
    ck = load_checkpoint(out)
    assert ck.extra_tensors == {} and ck.class_names == NAMES and ck.meta["kimg"] == 7.5
    assert out.stat().st_size < snap.stat().st_size
    for k, v in G.state_dict().items():
        assert torch.equal(ck.generator.state_dict()[k], v), k


def test_train_rejects_a_too_small_discriminator_input(tmp_path: Path, capsys) -> None:
    assert main(["train", "--data", str(tmp_path / "none.zip"), "--d-input-size", "32", "--out",
                 str(tmp_path / "run")]) == 2
    assert "--d-input-size 32 is too small" in capsys.readouterr().err


def test_train_keep_d_needs_grow_from(tmp_path: Path, capsys) -> None:
    assert main(["train", "--data", str(tmp_path / "none.zip"), "--keep-d", "--out", str(tmp_path / "run")]) == 2
    assert "--keep-d goes with --grow-from" in capsys.readouterr().err
