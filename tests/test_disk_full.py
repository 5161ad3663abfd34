"""A full disk in the middle of a write, on every writer: one clear error, no temporary file left, the
earlier file intact. And orphan temporary files of a killed writer are removed by the next write.

Two ways to fill a disk without filling one:
- in-process, `core.io.files.open_temp` (where every writer opens its temporary file) is replaced by
  one whose files take N bytes and then raise OSError(ENOSPC), exactly what write(2) does;
- in a child process, RLIMIT_FSIZE makes the kernel refuse writes past N bytes (EFBIG) in that process
  and in the programs it starts (ffmpeg), for writers that do not go through `open_temp`.
A real tmpfs of 1 MB is used too where the test may mount one (root with CAP_SYS_ADMIN).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.errors import DiskFullError
from core.io import files
from core.io.checkpoint import load_checkpoint, save_checkpoint
from tests.helpers import REPO, make_tiny_generator


class _FullFile:
    """A file that takes `room` more bytes, then fails like write(2) on a full disk."""

    def __init__(self, f, disk: FullDisk) -> None:
        self._f, self._disk = f, disk

    def write(self, data) -> int:
        n = len(memoryview(data).cast("B"))
        if n > self._disk.room:
            self._f.write(bytes(memoryview(data).cast("B")[: self._disk.room]))
            self._disk.room = 0
            self._disk.failures += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        self._disk.room -= n
        return self._f.write(data)

    def __getattr__(self, name: str):
        return getattr(self._f, name)

    def __enter__(self) -> _FullFile:
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()


class FullDisk:
    """Replacement for `core.io.files.open_temp`: files whose name contains `match` share `room` bytes."""

    def __init__(self, room: int, match: str = "") -> None:
        self.room, self.match, self.failures = room, match, 0

    def __call__(self, path: Path, mode: str):
        f = open(path, mode)  # noqa: SIM115 - closed by the caller
        return _FullFile(f, self) if self.match in Path(path).name else f


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name]


# ----------------------------------------------------------------------------- checkpoints

def test_checkpoint_write_on_a_full_disk(tmp_path: Path, monkeypatch) -> None:
    G = make_tiny_generator(16)
    path = save_checkpoint(tmp_path / "model.sgxl", G, {"kimg": 1})
    before = path.read_bytes()
    disk = FullDisk(room=100_000)
    monkeypatch.setattr(files, "open_temp", disk)
    with pytest.raises(DiskFullError, match=r"model\.sgxl: the disk is full.*earlier version.*intact"):
        save_checkpoint(path, G, {"kimg": 2})
    assert disk.failures >= 1
    assert path.read_bytes() == before and load_checkpoint(path).kimg == 1
    assert temp_files(tmp_path) == []


def test_orphan_temp_files_of_dead_writers_are_removed_by_the_next_write(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])  # killed below
    try:
        orphan = tmp_path / f".snapshot-000001000.sgxl.{dead.pid}.tmp.sgxl"  # kill -9 during a snapshot write
        orphan.write_bytes(b"half a checkpoint")
        orphan_dir = tmp_path / f".ds.{dead.pid}.tmp"  # a dataset folder being converted
        (orphan_dir / "00000").mkdir(parents=True)
        busy = tmp_path / f".latest.sgxl.{live.pid}.tmp.sgxl"  # another writer, still working
        busy.write_bytes(b"in progress")
        unrelated = tmp_path / ".notes.tmp"
        unrelated.write_text("not ours")
        save_checkpoint(tmp_path / "snapshot-000002000.sgxl", make_tiny_generator(16))
        assert not orphan.exists() and not orphan_dir.exists()
        assert busy.exists() and unrelated.exists()
    finally:
        live.kill()
        live.wait()


# ----------------------------------------------------------------------------- datasets

def _source_folder(root: Path, n: int = 12) -> Path:
    src = root / "photos"
    for i in range(n):
        (src / f"class{i % 2}").mkdir(parents=True, exist_ok=True)
        img = np.random.RandomState(i).randint(0, 255, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(img).save(src / f"class{i % 2}" / f"{i}.png")
    return src


@pytest.mark.parametrize("dest_name", ["ds.zip", "ds_folder"])
def test_dataset_conversion_on_a_full_disk(tmp_path: Path, monkeypatch, dest_name: str) -> None:
    from core.data.dataset_tool import convert_dataset

    src = _source_folder(tmp_path)
    out = tmp_path / "out"
    dest = out / dest_name
    convert_dataset(src, dest, 16, progress=False)  # an earlier, complete dataset
    earlier = sorted(p.relative_to(out) for p in out.rglob("*"))
    disk = FullDisk(room=3000)
    monkeypatch.setattr(files, "open_temp", disk)
    with pytest.raises(DiskFullError, match=f"{dest_name}: the disk is full"):
        convert_dataset(src, dest, 32, progress=False, overwrite=True)
    assert disk.failures >= 1
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == earlier and temp_files(out) == []
    from core.data.dataset import ImageDataset

    assert ImageDataset(dest).resolution == 16  # the earlier dataset, untouched


def test_emoji_dataset_writer_cleans_up_on_a_full_disk(tmp_path: Path, monkeypatch) -> None:
    """The emoji builder shares the dataset writer: its temporary zip goes too."""
    from core.data.writer import DatasetWriter

    disk = FullDisk(room=10)
    monkeypatch.setattr(files, "open_temp", disk)
    writer = DatasetWriter(tmp_path / "emoji.zip")
    with pytest.raises(DiskFullError):
        writer.write("00000/img00000000.png", b"x" * 100)
    writer.abort()
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- generate, metrics, capture

def test_generate_on_a_full_disk_keeps_the_earlier_grid(tmp_path: Path, monkeypatch, capsys) -> None:
    from core.cli import main

    ckpt = save_checkpoint(tmp_path / "m.sgxl", make_tiny_generator(16))
    grid = tmp_path / "out" / "grid.png"
    assert main(["generate", "--ckpt", str(ckpt), "--seeds", "0-3", "--out", str(grid), "--device", "cpu"]) == 0
    before = grid.read_bytes()
    monkeypatch.setattr(files, "open_temp", FullDisk(room=200))
    capsys.readouterr()
    assert main(["generate", "--ckpt", str(ckpt), "--seeds", "4-7", "--out", str(grid), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot write") and "disk is full" in err[0]
    assert grid.read_bytes() == before and temp_files(tmp_path) == []


def test_log_lines_are_never_left_half_written(tmp_path: Path, monkeypatch) -> None:
    log = tmp_path / "log.jsonl"
    files.append_line(log, json.dumps({"kimg": 1}))
    real_write = os.write

    def short_then_full(fd, data):
        if len(data) > 5:
            return real_write(fd, bytes(data[:5]))  # a short write, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "write", short_then_full)
    with pytest.raises(DiskFullError, match="log.jsonl"):
        files.append_line(log, json.dumps({"kimg": 2, "G_loss": 0.5}))
    monkeypatch.undo()
    assert log.read_text() == '{"kimg": 1}\n'


# ----------------------------------------------------------------------------- train snapshots

def test_snapshot_on_a_full_disk_keeps_the_previous_snapshot(tmp_path: Path, monkeypatch) -> None:
    from core.networks.discriminator import DiscriminatorConfig
    from core.networks.feature_nets import EfficientNetFeatures
    from core.training.trainer import TrainConfig, Trainer, build_generator_for
    from tests.helpers import ToyDataset

    ds = ToyDataset(n=8, res=16, classes=2)
    torch.manual_seed(0)
    G, names = build_generator_for(ds, "tiny", None, None, "cpu")
    cfg = TrainConfig(batch=4, kimg=0.016, snapshot_kimg=0.008, tick_kimg=0.004, sample_seeds=1, sample_classes=1,
                      disc=DiscriminatorConfig(input_size=64))
    run = tmp_path / "run"
    trainer = Trainer(G, ds, run, cfg, {"effnet": EfficientNetFeatures(min_size=64)}, class_names=names)
    trainer.state.cur_nimg = 8  # no training steps needed: snapshots are what is tested
    trainer.save_snapshot()
    trainer.state.cur_nimg = 16
    disk = FullDisk(room=50_000, match="snapshot-000000016")  # the second snapshot runs out of space
    monkeypatch.setattr(files, "open_temp", disk)
    with pytest.raises(DiskFullError, match="snapshot-000000016.sgxl: the disk is full"):
        trainer.save_snapshot()
    assert disk.failures >= 1
    assert sorted(p.name for p in (run / "snapshots").iterdir()) == ["snapshot-000000008.sgxl"]
    assert load_checkpoint(run / "latest.sgxl").kimg == 0.008  # the previous snapshot, intact
    assert temp_files(run) == []
    assert all(json.loads(line) for line in (run / "log.jsonl").read_text().splitlines())


# ----------------------------------------------------------------------------- invert

def test_invert_on_a_full_disk(tmp_path: Path, monkeypatch, capsys) -> None:
    from core.cli import main

    ckpt = save_checkpoint(tmp_path / "m.sgxl", make_tiny_generator(16))
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (40, 40, 3), dtype=np.uint8)).save(photo)
    out = tmp_path / "inv"
    out.mkdir()
    (out / "pti.sgxl").write_bytes(b"an earlier result")
    monkeypatch.setattr(files, "open_temp", FullDisk(room=10_000, match="pti.sgxl"))
    rc = main(["invert", "--ckpt", str(ckpt), "--image", str(photo), "--class", "1", "--steps", "2", "--pti-steps",
               "1", "--perceptual-size", "32", "--out", str(out), "--device", "cpu", "--no-progress"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 2 and len(err) == 1 and "pti.sgxl: the disk is full" in err[0]
    assert (out / "pti.sgxl").read_bytes() == b"an earlier result" and temp_files(out) == []


# ----------------------------------------------------------------------------- writers outside open_temp

FSIZE_CHILD = r"""
import contextlib, io, json, resource, signal, sys
from core.cli import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
results = {}
for name, argv in json.loads(sys.argv[1]).items():
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(argv)
        except BaseException as e:
            rc = repr(e)
    results[name] = {"rc": rc, "stderr": err.getvalue()}
print("RESULTS " + json.dumps(results))
"""


def test_cli_writers_under_a_file_size_limit(tmp_path: Path) -> None:
    """Each CLI writer hits the kernel's limit mid-write (ffmpeg too): one error line, earlier files intact."""
    from core.cli import main

    ckpt = save_checkpoint(tmp_path / "m.sgxl", make_tiny_generator(16))
    src = _source_folder(tmp_path)
    outs = {"grid": tmp_path / "o" / "grid.png", "gif": tmp_path / "o" / "lerp.gif",
            "mp4": tmp_path / "o" / "lerp.mp4", "dataset": tmp_path / "o" / "ds.zip",
            "convert": tmp_path / "o" / "export.sgxl"}
    for p in outs.values():  # earlier versions of every output
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"earlier " + p.name.encode())
    common = ["--ckpt", str(ckpt), "--device", "cpu"]
    cases = {
        "grid": ["generate", *common, "--seeds", "0-15", "--out", str(outs["grid"])],
        "gif": ["video", *common, "--seeds", "0,1", "--frames", "8", "--out", str(outs["gif"])],
        "dataset": ["dataset", "--source", str(src), "--dest", str(outs["dataset"]), "--res", "32", "--overwrite"],
        "convert": ["convert", str(ckpt), "--out", str(outs["convert"]), "--overwrite"],
    }
    try:
        import imageio_ffmpeg  # noqa: F401

        cases["mp4"] = ["video", *common, "--seeds", "0,1", "--frames", "30", "--out", str(outs["mp4"])]
    except ImportError:
        pass
    assert main(["generate", *common, "--seeds", "0", "--out", str(tmp_path / "warm.png")]) == 0  # limit > 1 image
    proc = subprocess.run([sys.executable, "-c", FSIZE_CHILD, json.dumps(cases), "1000"], cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1"),
                          capture_output=True, text=True, timeout=600)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULTS ")), None)
    assert line is not None, proc.stderr[-3000:]
    results = json.loads(line[len("RESULTS "):])
    for name, r in results.items():
        lines = [ln for ln in r["stderr"].splitlines() if ln.strip() and not ln.startswith("note:")
                 and "%|" not in ln]
        assert r["rc"] == 2, (name, r)
        assert len(lines) == 1 and lines[0].startswith(f"error: cannot write {outs[name]}"), (name, r["stderr"])
        assert any(w in lines[0] for w in ("file-size limit", "disk is full", "is the disk full?")), lines[0]
        assert outs[name].read_bytes() == b"earlier " + outs[name].name.encode(), name
    assert temp_files(tmp_path / "o") == []


# ----------------------------------------------------------------------------- a real full disk

@pytest.fixture
def tiny_tmpfs(tmp_path: Path):
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def test_real_full_disk(tiny_tmpfs: Path) -> None:
    small = tiny_tmpfs / "small.txt"
    files.atomic_write_text(small, "kept")
    with pytest.raises(DiskFullError, match="the disk is full"):
        save_checkpoint(tiny_tmpfs / "big.sgxl", make_tiny_generator(32))  # ~6 MB into 1 MB
    assert small.read_text() == "kept" and sorted(p.name for p in tiny_tmpfs.iterdir()) == ["small.txt"]
