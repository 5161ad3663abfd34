"""A training run seen from the explorer: follow its run directory, start/stop/resume `sgxl train`.

The explorer never trains in its own process. `TrainProcess` starts `python -m core.cli train ...`
in a new session (its own process group), so the GUI's frame loop never waits on torch and a GUI
crash or a Ctrl-C in the GUI's terminal does not reach the trainer. Its stdout/stderr go to files
in the run directory (not pipes: a pipe nobody reads would block the trainer, and a dead reader
would kill it with SIGPIPE). Stop = SIGINT, which the trainer turns into "finish this step, write a
final snapshot". A `train.pid` file lets a restarted explorer find a run that is still going.

`RunFollower` reads the run directory the trainer writes (see core/training/trainer.py):
log.jsonl (one JSON object per line: ticks with kimg / sec_per_kimg / losses, and events
start / snapshot / metrics / error / stopped / done), snapshots/*.sgxl and samples/fakes*.png.
It reads the log incrementally from a byte offset and leaves a partial last line (the trainer
may be mid-write) for the next poll.
"""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import DatasetError, UserInputError
from core.training.lock import lock_holder

LOG_FILE = "log.jsonl"
PID_FILE = "train.pid"
STDOUT_FILE = "train.stdout.log"
STDERR_FILE = "train.stderr.log"
LOSS_KEYS = ("G_loss", "D_loss")
ETA_TICKS = 5  # sec/kimg of the last N ticks estimate the remaining time (the first tick includes start-up)


# ----------------------------------------------------------------------------- dataset check

@dataclass
class DatasetInfo:
    path: str
    num_images: int
    num_classes: int
    class_names: list[str]
    resolution: int
    is_zip: bool

    def summary(self) -> str:
        if self.num_classes:
            names = ", ".join(self.class_names[:6]) + (", ..." if self.num_classes > 6 else "")
            classes = f"{self.num_classes} classes ({names})"
        else:
            classes = "unlabelled (unconditional model)"
        kind = "zip" if self.is_zip else "folder"
        return f"{self.num_images} images, {classes}, {self.resolution}x{self.resolution} ({kind})"


def check_dataset(path: str) -> DatasetInfo:
    """Open `path` as core's ImageDataset would for training; DatasetError/UserInputError say what is wrong.

    Only the first image header is read (a 100k-image zip must not freeze the UI); the trainer checks
    them all when it starts and its error then shows in the panel.
    """
    from core.data.dataset import ImageDataset

    path = path.strip()
    if not path:
        raise UserInputError("choose a dataset: a folder (one sub-folder per class) or a zip made by `sgxl dataset`")
    ds = ImageDataset(Path(path).expanduser(), check_all=False)
    if ds.resolution < 4:
        raise DatasetError(f"{path}: images of {ds.resolution}x{ds.resolution} are too small to train on")
    return DatasetInfo(str(Path(path).expanduser().resolve()), len(ds), ds.num_classes, list(ds.class_names),
                       ds.resolution, ds._files.is_zip)


# ----------------------------------------------------------------------------- feature networks

_PROBE = """
import json
from core.errors import SGXLError
from core.networks.feature_nets import DEIT_ENV, _deit_weight_candidates, lite0_weights_path
out = {"env": DEIT_ENV}
try:
    out["effnet"] = str(lite0_weights_path())
except SGXLError as e:
    out["effnet_error"] = str(e)
import os
explicit = os.environ.get(DEIT_ENV)
out["deit"] = explicit if explicit and os.path.isfile(explicit) else next(map(str, _deit_weight_candidates()), None)
print(json.dumps(out))
"""


def probe_feature_networks(timeout: float = 120.0) -> str:
    """Which feature networks `sgxl train` will find, as one line for the panel.

    Runs in a child process: importing timm pulls in triton, whose bundled LLVM crashes a process
    that already runs Mesa's llvmpipe (measured: SIGSEGV in the explorer under Xvfb).
    """
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    try:
        out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=timeout,
                             env=env, stdin=subprocess.DEVNULL)
        info = json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return "feature networks: could not check (run `sgxl train` to see)"
    parts = ["EfficientNet-lite0 ok" if "effnet" in info else f"EfficientNet-lite0 MISSING ({info['effnet_error']})"]
    parts.append("DeiT-base ok" if info.get("deit") else f"DeiT-base not found (optional: set {info['env']})")
    return "feature networks: " + ", ".join(parts)


# ----------------------------------------------------------------------------- the command line

@dataclass
class TrainRequest:
    """What the panel asks `sgxl train` for (None = the CLI's default)."""

    out: str
    data: str | None = None
    preset: str = "tiny"
    grow_from: str | None = None
    keep_d: bool = False  # with grow_from: start D from the snapshot's
    resume: str | None = None
    batch: int | None = None
    kimg: float | None = None
    snap: float | None = None
    tick: float | None = None
    cls_weight: float | None = None
    range_weight: float | None = None
    d_input_size: int | None = None
    device: str = "auto"
    extra: list[str] = field(default_factory=list)

    def args(self) -> list[str]:
        """The arguments after `sgxl`: absolute paths, so the child's working directory does not matter."""
        a = ["train", "--out", _abs(self.out), "--device", self.device, "--no-progress"]
        if self.resume:
            a += ["--resume", _abs(self.resume)]
        if self.data:
            a += ["--data", _abs(self.data)]
        options: list[tuple[str, float | int | None]] = [("--kimg", self.kimg)]
        if not self.resume:  # a resumed run keeps the configuration saved in its snapshot
            a += ["--preset", self.preset]
            if self.grow_from:
                a += ["--grow-from", _abs(self.grow_from)]
            if self.keep_d:
                a += ["--keep-d"]
            options += [("--batch", self.batch), ("--snap", self.snap), ("--tick", self.tick),
                        ("--cls-weight", self.cls_weight), ("--range-weight", self.range_weight),
                        ("--d-input-size", self.d_input_size)]
        for flag, value in options:
            if value is not None:
                a += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
        return a + list(self.extra)


def _abs(path: str) -> str:
    return str(Path(path).expanduser().resolve())


def train_command(request: TrainRequest) -> list[str]:
    return [sys.executable, "-m", "core.cli", *request.args()]


# ----------------------------------------------------------------------------- the process

def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own child that has exited but was not reaped) counts as gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _cmdline(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None


class TrainProcess:
    """One `sgxl train` child (started here) or one found through a run directory's train.pid (attached)."""

    def __init__(self, run_dir: Path, pid: int, popen: subprocess.Popen | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.pid = pid
        self.popen = popen
        self.stop_requested_at: float | None = None
        self.launched_at: float | None = None  # set when started here (log records older than this are history)
        self._returncode: int | None = None

    @classmethod
    def start(cls, request: TrainRequest, env: dict[str, str] | None = None) -> TrainProcess:
        run_dir = Path(_abs(request.out))
        holder = lock_holder(run_dir)
        if holder is not None:  # checked here too: starting would clobber its train.pid and stderr log
            raise UserInputError(f"{run_dir} is in use by another `sgxl train` (pid {holder}): Attach it to watch, "
                                 "or choose another run dir")
        run_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ if env is None else env)
        # The child imports `core` from the same tree as this explorer, wherever it is started from.
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        env.setdefault("PYTHONUNBUFFERED", "1")
        if request.device != "cuda" and "OMP_NUM_THREADS" not in env:
            # Leave a core to the UI: with every core busy, torch's OpenMP threads stall at each op's barrier
            # whenever the UI preempts one of them (measured: see Explorer.__init__), which costs more than the core.
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 2) - 1))
        cmd = train_command(request)
        with open(run_dir / STDOUT_FILE, "ab") as out, open(run_dir / STDERR_FILE, "wb") as err:
            popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                     cwd=run_dir, start_new_session=True)
        proc = cls(run_dir, popen.pid, popen)
        proc.launched_at = time.time()
        tmp = run_dir / (PID_FILE + ".tmp")
        tmp.write_text(json.dumps({"pid": popen.pid, "cmd": cmd, "started": time.time()}))
        os.replace(tmp, run_dir / PID_FILE)
        return proc

    @classmethod
    def find(cls, run_dir: str | Path) -> TrainProcess | None:
        """The `sgxl train` process still writing `run_dir` (from its train.pid), or None."""
        run_dir = Path(run_dir)
        try:
            pid = int(json.loads((run_dir / PID_FILE).read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not _pid_alive(pid):
            return None
        cmd = _cmdline(pid)
        # The pid may have been reused by an unrelated process since: it must be a trainer of this run.
        if cmd is not None and not ("train" in cmd and str(run_dir.resolve()) in cmd):
            return None
        return cls(run_dir, pid)

    def poll(self) -> int | None:
        """None while running; else the exit code (-1 when it was not our child and the code is unknown)."""
        if self._returncode is not None:
            return self._returncode
        if self.popen is not None:
            self._returncode = self.popen.poll()
        elif not _pid_alive(self.pid):
            self._returncode = -1
        return self._returncode

    @property
    def running(self) -> bool:
        return self.poll() is None

    def stop(self) -> None:
        """Graceful: the trainer finishes the step it is in and writes a final snapshot."""
        if self.running:
            self.stop_requested_at = self.stop_requested_at or time.time()
            os.kill(self.pid, signal.SIGINT)

    def kill(self) -> None:
        if self.running:
            os.killpg(self.pid, signal.SIGKILL) if self.popen is not None else os.kill(self.pid, signal.SIGKILL)
            if self.popen is not None:
                self.popen.wait()

    def stderr_tail(self, lines: int = 8) -> str:
        return stderr_tail(self.run_dir, lines)


def stderr_tail(run_dir: str | Path, lines: int = 8) -> str:
    """The last lines of the trainer's stderr (tracebacks end there; `error: ...` is the CLI's verdict)."""
    try:
        with open(Path(run_dir) / STDERR_FILE, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    kept = [ln for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])


# ----------------------------------------------------------------------------- following the log

@dataclass
class SnapshotEntry:
    kimg: float
    path: str


class RunFollower:
    """Incremental reader of a run directory. `poll()` reads what was appended since the last call."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.reset()

    def reset(self) -> None:
        self._offset = 0
        self._inode: int | None = None
        self.records = 0
        self.bad_lines = 0
        self.series: dict[str, list[float]] = {"kimg": [], "sec_per_kimg": [], **{k: [] for k in LOSS_KEYS}}
        self.metrics: dict[str, tuple[list[float], list[float]]] = {}  # name -> (kimg, value)
        self.snapshots: list[SnapshotEntry] = []
        self.errors: list[str] = []
        self.total_kimg: float | None = None
        self.kimg = 0.0
        self.resolution: int | None = None
        self.num_images: int | None = None
        self.last_event: str | None = None  # start / stopped / done / error (the latest of them)
        self.last_sample: Path | None = None
        self.started_at: float | None = None
        self.last_record_at: float | None = None
        self.version = 0  # bumped whenever something visible changed

    # -------------------------------------------------------------- reading
    def poll(self) -> bool:
        """Read the new complete lines of log.jsonl; True when anything changed."""
        path = self.run_dir / LOG_FILE
        try:
            st = path.stat()
        except OSError:
            return False
        if (self._inode is not None and st.st_ino != self._inode) or st.st_size < self._offset:
            self.reset()  # the log was replaced or truncated: read it again from the start
        self._inode = st.st_ino
        if st.st_size == self._offset:
            return False
        with open(path, "rb") as f:
            f.seek(self._offset)
            chunk = f.read(st.st_size - self._offset)
        end = chunk.rfind(b"\n")
        if end < 0:
            return False  # only a partial line so far
        self._offset += end + 1
        changed = False
        for line in chunk[:end].split(b"\n"):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                self.bad_lines += 1
                continue
            if isinstance(record, dict):
                self._apply(record)
                changed = True
        if changed:
            self.version += 1
        return changed

    def _apply(self, r: dict) -> None:
        self.records += 1
        self.last_record_at = r.get("time", self.last_record_at)
        event = r.get("event")
        kimg = _num(r.get("kimg"))
        if event is None:
            if kimg is None:
                return
            self.kimg = kimg
            self.series["kimg"].append(kimg)
            for key in ("sec_per_kimg", *LOSS_KEYS):
                self.series[key].append(_num(r.get(key), math.nan))
            return
        if event == "start":
            self.errors = []  # a new leg (a resume) starts clean; the log keeps the old message
            config = r.get("config") or {}
            self.total_kimg = _num(config.get("kimg"), self.total_kimg)
            self.resolution = r.get("resolution", self.resolution)
            self.num_images = r.get("num_images", self.num_images)
            self.started_at = r.get("time", self.started_at)
            start_kimg = _num(r.get("start_kimg"))
            if start_kimg is not None:
                self.kimg = start_kimg
            self.last_event = "start"
        elif event == "snapshot":
            path = str(r.get("path", ""))
            if path and all(s.path != path for s in self.snapshots):
                self.snapshots.append(SnapshotEntry(kimg if kimg is not None else self.kimg, path))
            self.last_sample = self._sample_for(kimg) or self.last_sample
        elif event == "metrics":
            for name, value in r.items():
                v = _num(value)
                if name in ("time", "event", "kimg") or v is None:
                    continue
                xs, ys = self.metrics.setdefault(name, ([], []))
                xs.append(kimg if kimg is not None else self.kimg)
                ys.append(v)
        elif event == "error":
            self.errors.append(str(r.get("message", "training failed")))
            self.last_event = "error"
        elif event in ("stopped", "done"):
            if kimg is not None:
                self.kimg = kimg
            self.last_event = event

    def _sample_for(self, kimg: float | None) -> Path | None:
        samples = self.run_dir / "samples"
        if kimg is not None:
            exact = samples / f"fakes{int(round(kimg * 1000)):09d}.png"
            if exact.is_file():
                return exact
        found = sorted(samples.glob("fakes*.png"))
        return found[-1] if found else None

    # -------------------------------------------------------------- derived values
    def existing_snapshots(self) -> list[SnapshotEntry]:
        """Logged snapshots whose file is still there, oldest first (a deleted one cannot be opened)."""
        return [s for s in self.snapshots if Path(s.path).is_file()]

    @property
    def progress(self) -> float:
        if not self.total_kimg:
            return 0.0
        return max(0.0, min(1.0, self.kimg / self.total_kimg))

    def sec_per_kimg(self) -> float | None:
        recent = [v for v in self.series["sec_per_kimg"][-ETA_TICKS:] if math.isfinite(v)]
        return statistics.median(recent) if recent else None

    def eta_seconds(self) -> float | None:
        speed = self.sec_per_kimg()
        if speed is None or self.total_kimg is None:
            return None
        return max(0.0, self.total_kimg - self.kimg) * speed

    @property
    def finished(self) -> bool:
        return self.last_event in ("stopped", "done")


def _num(value, default=None):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return float(value)


def format_seconds(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
