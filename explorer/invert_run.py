"""An inversion seen from the explorer: start `explorer.invert_worker` as a child, follow its files, cancel it.

Like training (explorer/training_run.py), the inversion never runs in the explorer's process: the worker
needs timm, and timm's triton/LLVM crashes a process that runs Mesa's llvmpipe. The child gets its own
session (process group) and writes stdout/stderr to files in its run directory; Cancel terminates the
group. `InvertFollower` reads progress.jsonl incrementally (a partial last line waits for the next poll).

Nothing here imports torch-heavy modules: the explorer loads the result itself (pti.sgxl) once the
worker's "done" line is there and the process has exited cleanly.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from explorer.invert_worker import PREVIEW_FILE, PROGRESS_FILE, RESULT_FILE

STDOUT_FILE = "invert.stdout.log"
STDERR_FILE = "invert.stderr.log"


@dataclass
class InvertRequest:
    """What the panel asks the worker for."""

    ckpt: str
    image: str
    out: str
    class_idx: int | None = None  # None: automatic (predicted for ImageNet models, else class 0)
    steps: int = 1000
    pti_steps: int = 350
    w_plus: bool = False
    perceptual_size: int | None = None
    preview_every: int = 1
    device: str = "cpu"
    box: tuple[int, int, int] | None = None

    def command(self) -> list[str]:
        a = [sys.executable, "-m", "explorer.invert_worker", "--ckpt", _abs(self.ckpt), "--image", _abs(self.image),
             "--out", _abs(self.out), "--class", str(-1 if self.class_idx is None else self.class_idx),
             "--steps", str(self.steps), "--pti-steps", str(self.pti_steps), "--preview-every",
             str(self.preview_every), "--device", self.device]
        if self.w_plus:
            a.append("--w-plus")
        if self.perceptual_size:
            a += ["--perceptual-size", str(self.perceptual_size)]
        if self.box is not None:
            a += ["--box", ",".join(map(str, self.box))]
        return a


def _abs(path: str) -> str:
    return str(Path(path).expanduser().resolve())


class InvertProcess:
    """One worker child (own process group; output to files in the run directory)."""

    def __init__(self, run_dir: Path, popen: subprocess.Popen) -> None:
        self.run_dir = run_dir
        self.popen = popen
        self.pid = popen.pid
        self.cancelled = False

    @classmethod
    def start(cls, request: InvertRequest, command: list[str] | None = None,
              env: dict[str, str] | None = None) -> InvertProcess:
        run_dir = Path(_abs(request.out))
        run_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ if env is None else env)
        root = str(Path(__file__).resolve().parents[1])  # the child imports this same tree
        env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.pop("DISPLAY", None)  # the worker draws nothing: keep it away from the X server
        # No thread settings here: the worker uses `sgxl invert`'s default (all cores but one, which leaves a
        # core to the UI), because the thread count changes the numbers (core.inversion.pipeline.default_threads).
        with open(run_dir / STDOUT_FILE, "wb") as out, open(run_dir / STDERR_FILE, "wb") as err:
            popen = subprocess.Popen(command or request.command(), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                     env=env, cwd=run_dir, start_new_session=True)
        return cls(run_dir, popen)

    def poll(self) -> int | None:
        return self.popen.poll()

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def cancel(self, timeout: float = 5.0) -> None:
        """Terminate the worker's process group (SIGTERM, then SIGKILL) and reap it."""
        self.cancelled = True
        if not self.running:
            return
        try:
            os.killpg(self.pid, signal.SIGTERM)
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait()
        except ProcessLookupError:
            self.popen.wait()

    def stderr_tail(self, lines: int = 6) -> str:
        try:
            text = (self.run_dir / STDERR_FILE).read_bytes()[-16384:].decode(errors="replace")
        except OSError:
            return ""
        kept = [ln for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
        return "\n".join(kept[-lines:])


@dataclass
class InvertFollower:
    """Incremental reader of a worker's run directory."""

    run_dir: Path
    offset: int = 0
    start: dict | None = None
    done: dict | None = None
    error: str | None = None
    phase: str = ""
    step: int = 0
    total: int = 0
    steps: dict[str, tuple[list[float], list[float]]] = field(
        default_factory=lambda: {"projection": ([], []), "pti": ([], [])})  # phase -> (global step, loss)
    last: dict = field(default_factory=dict)  # the newest step row
    last_psnr: float | None = None
    version: int = 0

    def poll(self) -> bool:
        path = self.run_dir / PROGRESS_FILE
        try:
            size = path.stat().st_size
        except OSError:
            return False
        if size <= self.offset:
            return False
        with open(path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read(size - self.offset)
        end = chunk.rfind(b"\n")
        if end < 0:
            return False
        self.offset += end + 1
        for line in chunk[:end].split(b"\n"):
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if isinstance(r, dict):
                self._apply(r)
        self.version += 1
        return True

    def _apply(self, r: dict) -> None:
        event = r.get("event")
        if event == "start":
            self.start = r
        elif event == "done":
            self.done = r
        elif event == "error":
            self.error = str(r.get("message", "inversion failed"))
        elif "phase" in r and "step" in r:
            self.phase, self.step, self.total = str(r["phase"]), int(r["step"]), int(r.get("total", 0))
            offset = 0 if self.phase == "projection" else int((self.start or {}).get("steps", 0))
            xs, ys = self.steps.setdefault(self.phase, ([], []))
            loss = r.get("loss")
            if isinstance(loss, (int, float)) and math.isfinite(loss):
                xs.append(float(offset + self.step))
                ys.append(float(loss))
            if isinstance(r.get("psnr"), (int, float)):
                self.last_psnr = float(r["psnr"])
            self.last = r

    @property
    def total_steps(self) -> int:
        s = self.start or {}
        return int(s.get("steps", 0)) + int(s.get("pti_steps", 0))

    @property
    def global_step(self) -> int:
        if not self.phase:
            return 0
        return self.step + (int((self.start or {}).get("steps", 0)) if self.phase == "pti" else 0)

    @property
    def preview(self) -> Path:
        return self.run_dir / PREVIEW_FILE

    @property
    def result(self) -> Path:
        return self.run_dir / RESULT_FILE


def default_run_dir(image: str) -> Path:
    return Path("runs") / "invert" / f"{Path(image).stem or 'photo'}-{time.strftime('%Y%m%d-%H%M%S')}"
