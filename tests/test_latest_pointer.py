"""latest.sgxl as a link (symlink, hard link, or a small pointer file where the filesystem has neither),
every reader following it, and snapshot pruning (--keep)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from core.cli import main
from core.errors import CheckpointError
from core.io.checkpoint import load_checkpoint, save_checkpoint
from core.io.pointer import POINTER_FORMAT, point_to, resolve_pointer
from core.training.run_dir import prune_snapshots, snapshot_files
from tests.helpers import make_tiny_generator, no_links

KINDS = ("symlink", "hardlink", "pointer")


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory) -> list[Path]:
    """A run directory with two snapshots of different generators (told apart by their kimg)."""
    run = tmp_path_factory.mktemp("run")
    paths = []
    for i, nimg in enumerate((8, 16)):
        paths.append(save_checkpoint(run / "snapshots" / f"snapshot-{nimg:09d}.sgxl",
                                     make_tiny_generator(16, c_dim=3, seed=i), {"kimg": nimg / 1000},
                                     class_names=["a", "b", "c"]))
    return paths


def fresh_run(tmp_path: Path, snapshots: list[Path]) -> tuple[Path, list[Path]]:
    run = tmp_path / "run"
    (run / "snapshots").mkdir(parents=True)
    copies = [Path(shutil.copy2(p, run / "snapshots" / p.name)) for p in snapshots]
    return run, copies


@pytest.mark.parametrize("kind", KINDS)
def test_latest_is_a_link_every_reader_follows(tmp_path: Path, snapshots: list[Path], kind: str, monkeypatch,
                                               capsys) -> None:
    no_links(monkeypatch, kind)
    run, (first, second) = fresh_run(tmp_path, snapshots)
    latest = run / "latest.sgxl"
    assert point_to(latest, first) == kind
    assert load_checkpoint(latest).kimg == 0.008
    assert point_to(latest, second) == kind  # replaced in one rename
    ckpt = load_checkpoint(latest)
    assert ckpt.kimg == 0.016
    ref = load_checkpoint(second).generator.state_dict()
    for k, v in ckpt.generator.state_dict().items():
        assert torch.equal(v, ref[k]), k
    # Not a second copy: a link, or a pointer of a few dozen bytes.
    if kind == "symlink":
        assert latest.is_symlink() and os.readlink(latest) == "snapshots/snapshot-000000016.sgxl"
    elif kind == "hardlink":
        assert os.path.samefile(latest, second) and not latest.is_symlink()
    else:
        assert latest.stat().st_size < 200 and POINTER_FORMAT in latest.read_text()
        assert resolve_pointer(latest) == second
    assert latest.is_file()  # what the explorer's Resume button checks
    assert sorted(p.name for p in run.iterdir()) == ["latest.sgxl", "snapshots"]  # no temporary file left behind

    # The CLI readers: info, convert (export), generate from it.
    assert main(["info", str(latest)]) == 0
    assert "kimg: 0.016" in capsys.readouterr().out
    assert main(["convert", str(latest), "--out", str(tmp_path / "export.sgxl")]) == 0
    assert load_checkpoint(tmp_path / "export.sgxl").kimg == 0.016
    assert main(["generate", "--ckpt", str(latest), "--seeds", "0", "--out", str(tmp_path / "g.png")]) == 0

    # A run directory moved (or copied) as a whole keeps a working latest.sgxl: the target is relative.
    moved = tmp_path / "elsewhere" / "run"
    moved.parent.mkdir()
    shutil.copytree(run, moved, symlinks=True)
    shutil.rmtree(run)
    assert load_checkpoint(moved / "latest.sgxl").kimg == 0.016


def test_a_link_to_a_removed_snapshot_says_so(tmp_path: Path, snapshots: list[Path], monkeypatch) -> None:
    run, (first, _) = fresh_run(tmp_path, snapshots)
    point_to(run / "latest.sgxl", first)
    first.unlink()
    with pytest.raises(CheckpointError, match="no longer exists"):
        load_checkpoint(run / "latest.sgxl")
    no_links(monkeypatch, "pointer")
    run2, (first2, _) = fresh_run(tmp_path / "p", snapshots)
    point_to(run2 / "latest.sgxl", first2)
    first2.unlink()
    with pytest.raises(CheckpointError, match="points to .*no longer exists"):
        load_checkpoint(run2 / "latest.sgxl")


def test_a_pointer_cannot_lead_outside_its_folder(tmp_path: Path, snapshots: list[Path]) -> None:
    bad = tmp_path / "run" / "latest.sgxl"
    bad.parent.mkdir()
    for target in ("../outside.sgxl", str(snapshots[0].resolve()), ""):
        bad.write_text(f'{{"format": "{POINTER_FORMAT}", "target": "{target}"}}')
        with pytest.raises(CheckpointError, match="corrupt pointer"):
            load_checkpoint(bad)
    bad.write_text('{"format": "something else"}')  # not a pointer: the loader says what it is not
    with pytest.raises(CheckpointError):
        load_checkpoint(bad)
    with pytest.raises(ValueError, match="not inside"):
        point_to(bad, snapshots[0])


def test_keep_n_removes_the_oldest_snapshots_only(tmp_path: Path, snapshots: list[Path]) -> None:
    snap_dir = tmp_path / "snapshots"
    snap_dir.mkdir()
    names = [f"snapshot-{n:09d}.sgxl" for n in (8, 16, 96, 100, 1000)]  # numeric order differs from text order
    for name in names:
        shutil.copy(snapshots[0], snap_dir / name)
    (snap_dir / "notes.txt").write_text("not a snapshot")
    assert [p.name for p in snapshot_files(snap_dir)] == names
    assert prune_snapshots(snap_dir, 0) == []  # 0 = keep all
    removed = prune_snapshots(snap_dir, 2)
    assert [p.name for p in removed] == names[:3]
    assert sorted(p.name for p in snap_dir.iterdir()) == sorted(names[3:] + ["notes.txt"])
    # The snapshot latest.sgxl points to is never removed, even when it is not among the newest N.
    assert prune_snapshots(snap_dir, 1, protect=snap_dir / names[3]) == []
    assert (snap_dir / names[3]).exists()
