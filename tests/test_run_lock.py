"""One `sgxl train` per run directory: a second is refused with the first one's pid; a dead holder's lock
is taken over; the lock goes away on exit, on Ctrl-C and on a crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import UserInputError
from core.training.lock import LOCK_FILE, RunLock, lock_holder
from tests.helpers import REPO, wait_until

HOLDER = r"""
import signal, sys, time
from core.training.lock import RunLock
# A process started from a non-interactive shell's background job inherits SIGINT ignored, and Python then
# keeps it ignored: restore Ctrl-C's KeyboardInterrupt, which this test is about.
signal.signal(signal.SIGINT, signal.default_int_handler)
with RunLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(3600)  # holds the lock until the test kills it (a shorter nap could end under a slow test)
"""


def start_holder(run: Path) -> subprocess.Popen:
    """A process that takes the lock and sleeps; returns once it holds the lock."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_holder_is_refused_and_release_frees_it(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with RunLock(run):
        assert json.loads((run / LOCK_FILE).read_text())["pid"] == os.getpid()
        assert lock_holder(run) == os.getpid()
        with pytest.raises(UserInputError, match=f"in use by another `sgxl train` \\(pid {os.getpid()}\\)"):
            RunLock(run).acquire()
    assert lock_holder(run) is None and not (run / LOCK_FILE).exists()
    with RunLock(run):  # free again
        pass


def test_lock_is_released_on_an_exception(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(RuntimeError), RunLock(run):
        raise RuntimeError("the trainer crashed")
    assert lock_holder(run) is None
    RunLock(run).acquire().release()


def test_refused_early_leaves_no_empty_run_directory(tmp_path: Path) -> None:
    run = tmp_path / "new_run"
    with RunLock(run):
        assert run.is_dir()
    assert not run.exists()  # created by the lock and still empty: removed with it


def test_cli_train_is_refused_with_the_other_pid_then_takes_over_a_dead_lock(tmp_path: Path) -> None:
    run = tmp_path / "run"
    holder = start_holder(run)
    try:
        proc = subprocess.run([sys.executable, "-m", "core.cli", "train", "--data", str(tmp_path / "none.zip"),
                               "--out", str(run), "--no-progress", "--device", "cpu"], cwd=REPO,
                              env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=300)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert f"in use by another `sgxl train` (pid {holder.pid})" in lines[0]
        # Refused while the lock was held, without waiting for it: a CLI that blocked on the lock would still be
        # waiting when subprocess.run's time-out ends it (the holder never lets go by itself).
        assert holder.poll() is None
    finally:
        holder.kill()  # SIGKILL: no cleanup; the kernel drops the flock, the file stays with a dead pid
        holder.wait()
    assert json.loads((run / LOCK_FILE).read_text())["pid"] == holder.pid
    assert lock_holder(run) is None
    with RunLock(run):  # taken over
        assert json.loads((run / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_ctrl_c_releases_the_lock(tmp_path: Path) -> None:
    run = tmp_path / "run"
    holder = start_holder(run)
    try:
        assert lock_holder(run) == holder.pid
        holder.send_signal(signal.SIGINT)  # KeyboardInterrupt unwinds through the `with`
        holder.wait(timeout=120)
    finally:
        holder.kill()  # no-op when it exited; never leaves a holder behind when the test fails
        holder.wait()
    assert lock_holder(run) is None and not (run / LOCK_FILE).exists()


def test_explorer_does_not_start_a_trainer_into_a_busy_run(tmp_path: Path) -> None:
    """The train panel's launcher refuses before clobbering the running trainer's train.pid and stderr log."""
    from explorer.training_run import PID_FILE, STDERR_FILE, TrainProcess, TrainRequest

    run = tmp_path / "run"
    holder = start_holder(run)
    try:
        (run / STDERR_FILE).write_text("the running trainer's log")
        with pytest.raises(UserInputError, match=f"pid {holder.pid}"):
            TrainProcess.start(TrainRequest(data=str(tmp_path / "ds.zip"), out=str(run)))
        assert (run / STDERR_FILE).read_text() == "the running trainer's log" and not (run / PID_FILE).exists()
    finally:
        holder.kill()
        holder.wait()


IGNORING_SIGINT = r"""
import os, signal, sys
# What a non-interactive shell's background job (`sgxl train ... &`) hands its children: SIGINT ignored.
signal.signal(signal.SIGINT, signal.SIG_IGN)
os.execv(sys.executable, [sys.executable, "-m", "core.cli", *sys.argv[1:]])
"""


def test_stop_while_the_run_loads_works_even_with_sigint_inherited_ignored(tmp_path: Path) -> None:
    """Ctrl-C / the explorer's Stop during loading (before the trainer's own handler): the command ends with
    'interrupted' and exit 130, and writes no snapshot. Before, an inherited SIG_IGN swallowed that signal and
    the run trained on to --kimg."""
    from PIL import Image

    data = tmp_path / "data"
    for c in range(2):
        (data / f"class{c}").mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (16, 16), (40 + 150 * c, 80, 120 + i)).save(data / f"class{c}" / f"{i}.png")
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", IGNORING_SIGINT, "train", "--data", str(data), "--out", str(run),
                             "--preset", "tiny", "--batch", "4", "--kimg", "1000", "--d-input-size", "64",
                             "--no-progress"], cwd=REPO, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        # The run lock is taken before the dataset, the generator and the feature network load (seconds).
        wait_until(lambda: (run / LOCK_FILE).exists() or proc.poll() is not None, "the run lock", 120, 0.05)
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "interrupted" in err, (proc.returncode, err[-2000:])
    assert not list(run.glob("snapshots/*.sgxl")) and not (run / LOCK_FILE).exists()
