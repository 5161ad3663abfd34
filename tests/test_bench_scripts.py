"""The A/B and GPU-demo training scripts: argument handling and the commands they would run (no training here;
both were run end to end on CPU with tiny budgets, see their docstrings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import ab_train, gpu_demo_train


def test_ab_dry_run_prints_one_train_command_per_arm(tmp_path: Path, capsys) -> None:
    data = tmp_path / "emoji16.zip"
    data.write_bytes(b"")
    code = ab_train.main(["--data", str(data), "--root", str(tmp_path / "ab"), "--arms", "official,d64,old-recipe",
                          "--arm", "mine=--d-input-size 128 --blur-fade-kimg 10@HEAD~1", "--kimg", "0.2",
                          "--dry-run", "--no-metrics"])
    assert code == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("[")]
    assert [line.split("]")[0][1:] for line in lines] == ["official", "d64", "old-recipe", "mine"]
    assert all(" train --data " in line and "--kimg 0.2" in line and "--preset demo" in line for line in lines)
    assert "--d-input-size 64" in lines[1] and "(with the code of a65253a)" in lines[2]
    assert "--blur-fade-kimg 10" in lines[3] and "(with the code of HEAD~1)" in lines[3]
    assert not (tmp_path / "ab" / "_src").exists()  # a dry run makes no worktree


def test_ab_refuses_unknown_arms_and_bad_numbers(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="unknown arm 'nope'"):
        ab_train.main(["--arms", "nope", "--dry-run"])
    with pytest.raises(SystemExit, match="--parallel >= 1"):
        ab_train.main(["--arms", "d64", "--parallel", "0", "--dry-run"])


def test_ab_resumes_an_unfinished_arm_and_skips_a_finished_one(tmp_path: Path, capsys) -> None:
    root = tmp_path / "ab"
    for name, kimg in (("d64", 0.1), ("d128", 0.3)):
        (root / name).mkdir(parents=True)
        (root / name / "latest.sgxl").write_bytes(b"")
        (root / name / "log.jsonl").write_text(f'{{"event": "done", "kimg": {kimg}}}\n')
    ab_train.main(["--data", str(tmp_path / "d.zip"), "--root", str(root), "--arms", "d64,d128", "--kimg", "0.2",
                   "--dry-run", "--no-metrics"])
    out = capsys.readouterr().out
    assert f"train --resume {(root / 'd64').resolve()} --kimg 0.2" in out
    assert "[d128] already at 0.3 kimg: not retrained" in out


def test_ab_reports_cpu_hours_from_the_trainers_cpu_time() -> None:
    log = [{"event": "start", "start_kimg": 0.0},
           {"kimg": 0.1, "sec_per_kimg": 300.0, "cpu_sec_per_kimg": 110.0},  # shared the core: wall > CPU
           {"kimg": 0.2, "sec_per_kimg": 130.0, "cpu_sec_per_kimg": 120.0},
           {"kimg": 0.3, "sec_per_kimg": 125.0, "cpu_sec_per_kimg": 125.0}]
    assert ab_train.training_cost(log, 30.0) == {"sec_per_kimg": 130.0, "cpu_sec_per_kimg": 120.0, "cpu_hours": 1.0}
    older = [{k: v for k, v in r.items() if k != "cpu_sec_per_kimg"} for r in log]  # a run of older code
    assert ab_train.training_cost(older, 30.0) == {"sec_per_kimg": 130.0}


def test_gpu_demo_names_the_missing_dataset(tmp_path: Path) -> None:
    (tmp_path / "emoji16.zip").write_bytes(b"")
    assert gpu_demo_train.find_zip(tmp_path, 16) == tmp_path / "emoji16.zip"
    with pytest.raises(SystemExit, match="no dataset zip for 32²"):
        gpu_demo_train.find_zip(tmp_path, 32)


def test_gpu_demo_auto_blur_fade_follows_the_ab_verdict(tmp_path: Path) -> None:
    import argparse
    import json

    args = argparse.Namespace(blur_fade_kimg="auto", root=tmp_path)
    assert gpu_demo_train.pick_blur_fade(args) == 300.0  # no A/B ran: the official fade
    (tmp_path / "ab").mkdir()

    def verdict(official: float, short: float) -> float:
        arms = [{"name": "official", "result": {"fd_effnet": official}},
                {"name": "blur-short", "result": {"fd_effnet": short}}]
        (tmp_path / "ab" / "results.json").write_text(json.dumps({"arms": arms}))
        return gpu_demo_train.pick_blur_fade(argparse.Namespace(blur_fade_kimg="auto", root=tmp_path))

    assert verdict(50.0, 40.0) == 5.0  # the short arm's fade (bench/ab_train.py's 'blur-short')
    assert verdict(40.0, 50.0) == 300.0
    assert gpu_demo_train.pick_blur_fade(argparse.Namespace(blur_fade_kimg="12.5", root=tmp_path)) == 12.5
