"""What a new user tripped over in the CLI (issue 24): argument checks that answer before any work, without
side effects, and a `sgxl --help` that does not wait for torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import main
from core.io.checkpoint import load_checkpoint, save_checkpoint
from core.limits import PSI_RANGE
from tests.helpers import make_tiny_generator

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--preset", "tiny", "--res", "16", "--device", "cpu"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "core.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300)


def test_help_imports_neither_torch_nor_numpy() -> None:
    code = ("import sys, core.cli; core.cli.build_parser().format_help(); "
            "print(sorted(m for m in ('torch', 'numpy', 'PIL', 'scipy') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    # And the real entry point answers --help for every verb.
    result = run_cli("generate", "--help")
    assert result.returncode == 0 and f"{PSI_RANGE[0]:g} to {PSI_RANGE[1]:g}" in " ".join(result.stdout.split())


@pytest.mark.parametrize("verb", ["generate", "video", "metrics"])
@pytest.mark.parametrize("psi", ["-5", "2.5", "nan", "inf"])
def test_trunc_out_of_range_is_refused_before_any_work(tmp_path: Path, capsys, verb: str, psi: str) -> None:
    out = tmp_path / "out" / ("x.json" if verb == "metrics" else "x.mp4" if verb == "video" else "x.png")
    extra = ["--data", str(tmp_path / "absent")] if verb == "metrics" else []
    assert main([verb, *TINY, "--trunc", psi, "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --trunc") and f"between {PSI_RANGE[0]:g} and {PSI_RANGE[1]:g}" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_trunc_at_the_range_ends_is_accepted(tmp_path: Path) -> None:
    for psi in PSI_RANGE:
        assert main(["generate", *TINY, "--seeds", "0", "--trunc", str(psi), "--out", str(tmp_path / "g.png")]) == 0


def test_convert_refuses_to_overwrite_without_overwrite(tmp_path: Path, capsys) -> None:
    src_a = save_checkpoint(tmp_path / "a.sgxl", make_tiny_generator(16, c_dim=3, seed=0), {"kimg": 1.0})
    src_b = save_checkpoint(tmp_path / "b.sgxl", make_tiny_generator(16, c_dim=3, seed=1), {"kimg": 2.0})
    out = tmp_path / "model.sgxl"
    assert main(["convert", str(src_a), "--out", str(out)]) == 0
    before = out.read_bytes()
    for target in (out, tmp_path / "model"):  # the .sgxl suffix is added: `--out model` is model.sgxl too
        capsys.readouterr()
        assert main(["convert", str(src_b), "--out", str(target)]) == 2
        assert capsys.readouterr().err.strip() == f"error: {out} already exists; choose another --out or pass " \
                                                  "--overwrite"
        assert out.read_bytes() == before
    assert main(["convert", str(src_b), "--out", str(out), "--overwrite"]) == 0
    assert load_checkpoint(out).kimg == 2.0
    (tmp_path / "folder.sgxl").mkdir()
    assert main(["convert", str(src_b), "--out", str(tmp_path / "folder.sgxl"), "--overwrite"]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_a_failed_invert_leaves_no_output_folder(tmp_path: Path, capsys) -> None:
    out = tmp_path / "runs" / "inv"
    assert main(["invert", *TINY, "--image", str(tmp_path / "absent.jpg"), "--out", str(out), "--steps", "1",
                 "--pti-steps", "1", "--no-progress"]) == 2
    assert "no photo at" in capsys.readouterr().err
    assert not out.exists()
    # A folder that existed before stays, with what it held.
    out.mkdir(parents=True)
    (out / "keep.txt").write_text("mine")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    assert main(["invert", *TINY, "--image", str(tmp_path / "bad.jpg"), "--out", str(out), "--steps", "1",
                 "--pti-steps", "1", "--no-progress"]) == 2
    assert (out / "keep.txt").read_text() == "mine"


def test_train_refuses_an_existing_run_without_resume_at_once(tmp_path: Path) -> None:
    run = tmp_path / "s16"
    (run / "snapshots").mkdir(parents=True)
    (run / "log.jsonl").write_text(json.dumps({"event": "start"}) + "\n" + json.dumps({"kimg": 0.4}) + "\n")
    (run / "latest.sgxl").write_bytes(b"PK")
    result = run_cli("train", "--data", str(tmp_path / "whatever.zip"), "--out", str(run))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {run} already holds a training run (at 0.400 kimg); continue it with --resume {run}, start a new "
        f"run there with --force-new (the old run is then moved to {run}.old-1), or choose another --out")
    assert sorted(p.name for p in run.iterdir()) == ["latest.sgxl", "log.jsonl", "snapshots"]
