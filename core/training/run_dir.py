"""A training run directory: what marks it as holding a run, when `sgxl train` may write into it, and
which snapshots it keeps.

`sgxl train --out DIR` decides from what DIR holds:

- nothing of a run (missing, empty, or only the explorer's launch files): a new run starts there;
- a run, and `--resume` names that run: it continues;
- a run, without `--resume`: refused. Starting a second run there would mix both runs' logs and
  snapshots, and `--resume DIR` would then continue whichever wrote `latest.sgxl` last. The error
  says `--resume DIR`, or `--force-new`;
- a run, with `--force-new`: the old run's files are moved together to a new sibling folder
  `DIR.old-N` (the first free N), nothing is deleted, and the old run stays complete and resumable
  there (`--resume DIR.old-N`: latest.sgxl points inside its own folder). The move happens only
  after the new run's inputs (dataset, checkpoints) have loaded, so a refused start moves nothing.

`--keep N` keeps the newest N snapshots (by their image count) and removes older ones after each
snapshot; the one latest.sgxl points to is never removed.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

from core.errors import UserInputError

logger = logging.getLogger(__name__)

# What a trainer writes into its run directory (core/training/trainer.py). The explorer's own files
# (train.pid, train.*.log) and the run lock belong to whoever launches the next run, not to a run.
RUN_FILES = ("log.jsonl", "latest.sgxl", "snapshots", "samples", "tensorboard")
LATEST = "latest.sgxl"
SNAPSHOTS = "snapshots"
_SNAPSHOT_NAME = re.compile(r"^snapshot-(\d+)\.sgxl$")


def run_dir_of(resume: str | Path) -> Path:
    """The run directory a `--resume` argument belongs to: the folder itself, the folder holding its
    latest.sgxl, or the run above its snapshots/ folder."""
    path = Path(resume)
    if path.is_dir():
        return path
    return path.parent.parent if path.parent.name == SNAPSHOTS else path.parent


def run_files(run_dir: str | Path) -> list[Path]:
    """The run files present in `run_dir` (empty: it holds no run)."""
    run_dir = Path(run_dir)
    return [run_dir / name for name in RUN_FILES if os.path.lexists(run_dir / name)]


def last_kimg(run_dir: str | Path) -> float | None:
    """How far the run in `run_dir` got, from the last record of its log that says (None: unknown)."""
    try:
        with open(Path(run_dir) / "log.jsonl", "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65536))  # the tail is enough: records are short, the log can be long
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            kimg = json.loads(line).get("kimg")
        except (ValueError, AttributeError):
            continue
        if isinstance(kimg, (int, float)):
            return float(kimg)
    return None


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def aside_name(run_dir: str | Path) -> Path:
    """Where --force-new moves the run in `run_dir`: the first `DIR.old-N` that does not exist."""
    run_dir = Path(os.path.abspath(run_dir))
    n = 1
    while os.path.lexists(run_dir.with_name(f"{run_dir.name}.old-{n}")):
        n += 1
    return run_dir.with_name(f"{run_dir.name}.old-{n}")


def check_out_dir(out: str | Path, resume: str | None = None, force_new: bool = False,
                  grow_from: str | None = None) -> bool:
    """Refuse an `--out` that holds another run (see the module docstring); -> True when --force-new will have
    to move an old run aside (`move_run_aside`, once the new run's inputs have loaded)."""
    out = Path(out)
    resumes_here = resume is not None and _same_dir(run_dir_of(resume), out)
    if force_new and resumes_here:
        raise UserInputError(f"--force-new would move aside the run that --resume {resume} continues; drop one of "
                             "them")
    if not run_files(out) or resumes_here:
        return False
    if force_new:
        if grow_from is not None and _same_dir(run_dir_of(grow_from), out):
            raise UserInputError(f"--grow-from {grow_from} lies in the run that --force-new would move aside; give "
                                 "the new stage its own --out")
        return True
    kimg = last_kimg(out)
    at = f" (at {kimg:.3f} kimg)" if kimg is not None else ""
    resumable = os.path.exists(out / LATEST)
    options = (f"continue it with --resume {out}, start a new run there with --force-new" if resumable
               else "start a new run there with --force-new")
    raise UserInputError(f"{out} already holds a training run{at}; {options} (the old run is then moved to "
                         f"{aside_name(out)}), or choose another --out")


def move_run_aside(run_dir: str | Path) -> Path:
    """Move the run files of `run_dir` into a new sibling `DIR.old-N`; -> that folder."""
    run_dir = Path(run_dir)
    for _ in range(100):  # another process may claim the same name between the check and the mkdir
        dest = aside_name(run_dir)
        try:
            dest.mkdir()
            break
        except FileExistsError:
            continue
    else:
        raise UserInputError(f"cannot find a free name to move the old run in {run_dir} to")
    moved: list[Path] = []
    try:
        for src in run_files(run_dir):
            os.rename(src, dest / src.name)
            moved.append(src)
    except OSError as e:
        for src in reversed(moved):  # put back what moved: the old run stays whole in one place
            try:
                os.rename(dest / src.name, src)
            except OSError:
                pass
        try:
            dest.rmdir()
        except OSError:
            pass
        raise UserInputError(f"cannot move the old run in {run_dir} to {dest} ({e.strerror}); choose another --out "
                             "or move it yourself") from None
    logger.warning("--force-new: moved the previous run in %s to %s (resume it with --resume %s)", run_dir, dest,
                   dest)
    return dest


def snapshot_files(snapshot_dir: str | Path) -> list[Path]:
    """The run's snapshot files, oldest first (by the image count in their name)."""
    try:
        entries = list(os.scandir(snapshot_dir))
    except OSError:
        return []
    found = [(int(m[1]), Path(e.path)) for e in entries if (m := _SNAPSHOT_NAME.match(e.name)) and e.is_file()]
    return [p for _, p in sorted(found)]


def prune_snapshots(snapshot_dir: str | Path, keep: int, protect: Path | None = None) -> list[Path]:
    """Remove all but the newest `keep` snapshots (0 = keep all); `protect` (latest's target) is never removed.
    -> the removed files."""
    if keep <= 0:
        return []
    snaps = snapshot_files(snapshot_dir)
    removed = []
    for path in snaps[:-keep]:
        if protect is not None and path.name == protect.name:
            continue
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            pass
    return removed
