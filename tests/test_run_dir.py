"""`sgxl train --out`: an existing run is never silently mixed with a new one; --force-new moves it aside
whole; --keep N; latest.sgxl a link; the progress bar ends at 100 %."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest

from core.errors import UserInputError
from core.io.checkpoint import load_checkpoint
from core.training.run_dir import check_out_dir, last_kimg, move_run_aside, run_dir_of
from tests.helpers import ToyDataset


def fake_run(run: Path, kimg: float = 0.4) -> Path:
    (run / "snapshots").mkdir(parents=True)
    (run / "snapshots" / "snapshot-000000400.sgxl").write_bytes(b"PK old")
    os.symlink("snapshots/snapshot-000000400.sgxl", run / "latest.sgxl")
    (run / "samples").mkdir()
    (run / "log.jsonl").write_text(json.dumps({"event": "start"}) + "\n" + json.dumps({"kimg": kimg}) + "\n")
    return run


def test_what_counts_as_a_run_and_when_out_is_refused(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "s16")
    assert last_kimg(run) == 0.4
    # A new, empty or launch-files-only folder: a new run may start there.
    assert check_out_dir(tmp_path / "new") is False
    (tmp_path / "launched").mkdir()
    (tmp_path / "launched" / "train.stderr.log").write_text("")
    assert check_out_dir(tmp_path / "launched") is False
    # An existing run: refused without --resume; --resume of that very run (dir, latest.sgxl or a snapshot) goes on.
    with pytest.raises(UserInputError, match=r"already holds a training run \(at 0.400 kimg\); continue it with "
                                             r"--resume .*--force-new"):
        check_out_dir(run)
    for resume in (run, run / "latest.sgxl", run / "snapshots" / "snapshot-000000400.sgxl"):
        assert run_dir_of(resume) == run
        assert check_out_dir(run, resume=str(resume)) is False
    # --resume of ANOTHER run into this one would mix them too.
    other = fake_run(tmp_path / "other")
    with pytest.raises(UserInputError, match="already holds a training run"):
        check_out_dir(run, resume=str(other))
    # --force-new: allowed (the caller moves the run aside later), but not together with resuming that run,
    # nor growing from a snapshot inside it.
    assert check_out_dir(run, force_new=True) is True
    assert check_out_dir(run, resume=str(other), force_new=True) is True
    with pytest.raises(UserInputError, match="--force-new would move aside the run that --resume"):
        check_out_dir(run, resume=str(run), force_new=True)
    with pytest.raises(UserInputError, match="give the new stage its own --out"):
        check_out_dir(run, grow_from=str(run / "latest.sgxl"), force_new=True)
    # Only log.jsonl (a run that stopped before its first snapshot): no --resume to offer.
    (tmp_path / "early").mkdir()
    (tmp_path / "early" / "log.jsonl").write_text("")
    with pytest.raises(UserInputError, match=r"already holds a training run; start a new run there with --force-new"):
        check_out_dir(tmp_path / "early")


def test_move_aside_keeps_the_old_run_whole_and_resumable(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "s16")
    (run / "train.stdout.log").write_text("the explorer's launch file stays")
    (tmp_path / "s16.old-1").mkdir()  # taken: the next free name is used
    dest = move_run_aside(run)
    assert dest == tmp_path / "s16.old-2"
    assert sorted(p.name for p in dest.iterdir()) == ["latest.sgxl", "log.jsonl", "samples", "snapshots"]
    assert (dest / "latest.sgxl").read_bytes() == b"PK old"  # its link still resolves inside the moved run
    assert sorted(p.name for p in run.iterdir()) == ["train.stdout.log"]
    assert check_out_dir(run) is False


def test_train_refuses_then_force_new_moves_aside_keep_and_progress(tmp_path: Path, monkeypatch, capsys) -> None:
    """Through the launcher on a toy dataset: a second start in the same --out is refused, --force-new moves
    the first run to OUT.old-1 and starts afresh; --keep 1 leaves one snapshot; latest.sgxl links to it;
    6 images at batch 4 end at 100 % without tqdm's overshoot warning."""
    import core.data.dataset
    from core.training import launch

    def open_toy(path: str) -> ToyDataset:
        data = ToyDataset(n=8, res=16, classes=2)
        data.path = path
        return data

    monkeypatch.setattr(core.data.dataset, "ImageDataset", open_toy)
    out = tmp_path / "run"

    def options(**kw) -> launch.TrainOptions:
        base = dict(data="toy", out=str(out), preset="tiny", batch=4, kimg=0.006, snapshot_kimg=0.002,
                    tick_kimg=0.004, d_input_size=64, seed=1, device="cpu", progress=True, keep=1)
        return launch.TrainOptions(**{**base, **kw})

    umask = os.umask(0o022)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            last = launch.run_training(options())
    finally:
        os.umask(umask)
    err = capsys.readouterr().err
    assert not [w for w in caught if "tqdm" in type(w.message).__module__], [str(w.message) for w in caught]
    assert "100%" in err and "0.01/0.01 kimg" in err
    # Snapshots at 4 and 8 images (the last step passes the 6-image target); --keep 1 removed the first.
    assert last == out / "snapshots" / "snapshot-000000008.sgxl"
    assert [p.name for p in (out / "snapshots").iterdir()] == ["snapshot-000000008.sgxl"]
    latest = out / "latest.sgxl"
    assert latest.is_symlink() and latest.resolve() == last.resolve()
    assert last.stat().st_mode & 0o777 == 0o644  # the umask's mode, not 0600
    assert load_checkpoint(latest).kimg == 0.008
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    snaps = [r for r in log if r.get("event") == "snapshot"]
    assert [r["kimg"] for r in snaps] == [0.004, 0.008] and snaps[1]["removed"] == [
        str(out / "snapshots" / "snapshot-000000004.sgxl")]

    with pytest.raises(UserInputError, match="already holds a training run"):
        launch.run_training(options(kimg=0.004))
    launch.run_training(options(kimg=0.004, force_new=True, progress=False))
    old = tmp_path / "run.old-1"
    assert load_checkpoint(old / "latest.sgxl").kimg == 0.008  # the first run, whole, resumable from there
    assert len((old / "log.jsonl").read_text().splitlines()) == len(log)
    new_log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert new_log[0]["event"] == "start" and new_log[0]["start_kimg"] == 0  # a fresh log, not appended
    assert load_checkpoint(latest).kimg == 0.004
