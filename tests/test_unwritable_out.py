"""Every writer checks its output before any work: one `error:` line, exit 2, nothing created (issue 24, item 1).

Tests run as root in CI, and root ignores permission bits. So each writer is tried with an output under a
regular FILE (which no user can write into), and with a read-only folder: directly when not root, and as
root through a child process that runs as user `nobody`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.cli import main
from core.io.checkpoint import load_checkpoint, save_checkpoint
from tests.helpers import ToyDataset, make_tiny_generator

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--preset", "tiny", "--res", "16", "--device", "cpu"]
NOBODY = 65534


def make_inputs(root: Path) -> dict[str, Path]:
    """A checkpoint, a photo and a dataset folder, readable by anyone (the `nobody` child reads nothing before
    refusing, but the paths must exist)."""
    root.mkdir(parents=True, exist_ok=True)
    ckpt = save_checkpoint(root / "model.sgxl", make_tiny_generator(16, c_dim=2), {"kimg": 1.0},
                           class_names=["a", "b"])
    photo = root / "photo.png"
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(photo)
    data = root / "data"
    ds = ToyDataset(n=4, res=16, classes=2)
    for i in range(len(ds)):
        img, label = ds[i]
        (data / ds.class_names[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(np.asarray(img).transpose(1, 2, 0))).save(data / ds.class_names[label]
                                                                                       / f"{i}.png")
    return {"ckpt": ckpt, "photo": photo, "data": data}


# verb -> (argv given the output location and the inputs, the output path inside that location)
WRITERS: dict[str, Callable[[Path, dict[str, Path]], tuple[list[str], Path]]] = {
    "generate": lambda d, i: (["generate", *TINY, "--seeds", "0", "--out", str(d / "g.png")], d / "g.png"),
    "generate-folder": lambda d, i: (["generate", *TINY, "--seeds", "0", "--out", str(d / "seeds")], d / "seeds"),
    "video": lambda d, i: (["video", *TINY, "--seeds", "0,1", "--frames", "1", "--out", str(d / "v.mp4")],
                           d / "v.mp4"),
    "convert": lambda d, i: (["convert", str(i["ckpt"]), "--out", str(d / "m.sgxl")], d / "m.sgxl"),
    "dataset": lambda d, i: (["dataset", "--source", str(i["data"]), "--res", "16", "--dest", str(d / "ds.zip")],
                             d / "ds.zip"),
    "invert": lambda d, i: (["invert", *TINY, "--image", str(i["photo"]), "--steps", "1", "--pti-steps", "1",
                             "--out", str(d / "inv")], d / "inv"),
    "train": lambda d, i: (["train", "--data", str(i["data"]), "--device", "cpu", "--out", str(d / "run")],
                           d / "run"),
    "metrics": lambda d, i: (["metrics", *TINY, "--data", str(i["data"]), "--num", "2", "--out", str(d / "m.json")],
                             d / "m.json"),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    return make_inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any of the writers' slow steps fails the test: the refusal must come before them."""
    import core.cli
    import core.data.dataset_tool
    import core.io.checkpoint
    import core.training.launch

    def started(*_args, **_kwargs):
        raise AssertionError("work started before the output was checked")

    monkeypatch.setattr(core.cli, "load_model", started)
    monkeypatch.setattr(core.io.checkpoint, "load_checkpoint", started)
    monkeypatch.setattr(core.data.dataset_tool, "convert_dataset", started)
    monkeypatch.setattr(core.training.launch, "run_training", started)


@pytest.mark.parametrize("verb", WRITERS)
def test_output_under_a_regular_file_is_refused_before_any_work(tmp_path: Path, inputs, no_work, capsys,
                                                                verb: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    argv, out = WRITERS[verb](blocker / "sub", inputs)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: cannot write {out}: {blocker} is a file, not a folder\n"
    assert "wrote" not in captured.out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def run_as_nobody(argv: list[str], home: Path) -> subprocess.CompletedProcess:
    """`sgxl ARGV` as user nobody (util-linux `setpriv`: drops root's capabilities with the user)."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "PYTHONPATH": str(ROOT),
           "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", sys.executable, "-m", "core.cli"]
    return subprocess.run([*cmd, *argv], capture_output=True, text=True, cwd=home, env=env, timeout=300)


@pytest.fixture(scope="module")
def readonly_place(tmp_path_factory):
    """(a folder no one but root may write, the inputs, whether the CLI must run as `nobody` to feel it)."""
    if os.geteuid() != 0:
        base = tmp_path_factory.mktemp("ro")
        ro = base / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        yield ro, make_inputs(base / "inputs"), False
        ro.chmod(0o755)
        return
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without util-linux setpriv: no way to run the CLI as an ordinary user")
    base = Path(tempfile.mkdtemp(prefix="sgxl-ro-"))  # outside pytest's root-only (0700) folder
    try:
        base.chmod(0o755)
        inputs = make_inputs(base / "inputs")
        for p in [base / "inputs", *(base / "inputs").rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        ro = base / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            probe = run_as_nobody(["--help"], base)
        except OSError as e:
            probe = subprocess.CompletedProcess([], 1, "", str(e))
        if probe.returncode != 0:
            pytest.skip(f"cannot run the CLI as nobody here: {probe.stderr.strip()[-200:]}")
        yield ro, inputs, True
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("verb", WRITERS)
def test_output_in_a_read_only_folder_is_refused(readonly_place, capsys, monkeypatch, verb: str) -> None:
    ro, inputs, as_nobody = readonly_place
    argv, out = WRITERS[verb](ro, inputs)
    if as_nobody:
        result = run_as_nobody(argv, ro.parent)
        rc, err, stdout = result.returncode, result.stderr, result.stdout
    else:
        rc = main(argv)
        captured = capsys.readouterr()
        err, stdout = captured.err, captured.out
    assert rc == 2, err
    assert err == f"error: cannot write {out}: {ro} is not writable (no permission to write there)\n"
    assert "wrote" not in stdout
    assert list(ro.iterdir()) == []


def test_video_never_claims_a_file_that_is_not_there(tmp_path: Path, monkeypatch, capsys) -> None:
    """An encoder that returns without writing (imageio-ffmpeg ignores ffmpeg's exit status) is an error."""
    import core.video

    monkeypatch.setattr(core.video, "write_video", lambda path, frames, fps=30: path)
    out = tmp_path / "v.mp4"
    assert main(["video", *TINY, "--seeds", "0,1", "--frames", "1", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "wrote" not in captured.out
    assert captured.err == f"error: the video encoder finished, but {out} is not there; nothing was written\n"


@pytest.mark.parametrize(("suffix", "fmt"), [(".bmp", "BMP"), (".tif", "TIFF"), (".webp", "WEBP"), (".jpg", "JPEG"),
                                             (".png", "PNG")])
def test_generate_writes_the_image_format_its_suffix_names(tmp_path: Path, suffix: str, fmt: str) -> None:
    out = tmp_path / f"grid{suffix}"
    assert main(["generate", *TINY, "--seeds", "0-1", "--out", str(out)]) == 0
    assert out.is_file()  # not a folder named grid.bmp
    with Image.open(out) as im:
        assert im.format == fmt and im.size == (32, 16)


@pytest.mark.parametrize(("name", "words"), [("grid.xyz", "Pillow does not write .xyz images"),
                                             ("grid.xbm", "Pillow cannot write an RGB image as XBM")])
def test_generate_refuses_a_suffix_pillow_cannot_write_before_any_work(tmp_path: Path, no_work, capsys, name: str,
                                                                      words: str) -> None:
    assert main(["generate", *TINY, "--out", str(tmp_path / "out" / name)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write {tmp_path / 'out' / name}: ") and words in err
    assert not (tmp_path / "out").exists()


def test_generate_to_a_folder_writes_one_png_per_seed(tmp_path: Path) -> None:
    out = tmp_path / "seeds"
    assert main(["generate", *TINY, "--seeds", "3-4", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["seed0003.png", "seed0004.png"]


def test_checkpoints_respect_the_umask(tmp_path: Path) -> None:
    G = make_tiny_generator(16, c_dim=2)
    old = os.umask(0o022)
    try:
        for umask, mode in ((0o022, 0o644), (0o027, 0o640), (0o002, 0o664)):
            os.umask(umask)
            path = save_checkpoint(tmp_path / f"u{umask:o}.sgxl", G, {"kimg": 0})
            assert path.stat().st_mode & 0o777 == mode, oct(path.stat().st_mode)  # not 0600 (mkstemp's)
            assert load_checkpoint(path).kimg == 0
    finally:
        os.umask(old)
