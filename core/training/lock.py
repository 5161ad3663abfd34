"""One trainer per run directory: `sgxl train` holds `<run>/train.lock` while it runs.

Two trainers writing one run directory would overwrite each other's snapshots, samples and log
lines. The lock is an advisory `flock` on `train.lock`, which records the holder's pid: the kernel
drops it when the holder exits in any way (normal end, Ctrl-C, an exception, SIGKILL), so a lock
left by a dead process is simply taken over by the next trainer. Where `flock` does not exist
(Windows) the file is created exclusively and a holder whose pid is dead counts as gone.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from core.errors import UserInputError
from core.io.files import pid_alive

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = "train.lock"


def _owner(path: Path) -> dict:
    try:
        owner = json.loads(path.read_text())
        return owner if isinstance(owner, dict) else {}
    except (OSError, ValueError):
        return {}


def _busy_error(run_dir: Path, owner: dict) -> UserInputError:
    pid = owner.get("pid", "unknown")
    host = owner.get("host")
    where = f" on {host}" if host and host != socket.gethostname() else ""
    return UserInputError(f"{run_dir} is in use by another `sgxl train` (pid {pid}{where}); wait for it to finish "
                          "or stop it, or choose another --out")


def lock_holder(run_dir: str | Path) -> int | None:
    """The pid of the trainer holding `run_dir`'s lock, or None when no live trainer holds it."""
    path = Path(run_dir) / LOCK_FILE
    if not path.exists():
        return None
    owner = _owner(path)
    if fcntl is None:
        pid = owner.get("pid")
        return pid if isinstance(pid, int) and pid_alive(pid) else None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _owner(path).get("pid")
        return pid if isinstance(pid, int) else -1
    finally:
        os.close(fd)  # closing drops the probe's own shared lock
    return None


class RunLock:
    """`with RunLock(run_dir):` — held for the block; a second holder gets UserInputError naming the pid."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None
        self._created_dir = False

    def acquire(self) -> RunLock:
        self._created_dir = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}).encode()
        for _ in range(10):  # retried only when a releasing holder unlinked the file under us
            fd = self._open_locked()
            if fd is None:
                continue
            os.ftruncate(fd, 0)
            os.write(fd, record)
            self._fd = fd
            return self
        raise UserInputError(f"cannot take the lock {self.path}: it keeps changing; is another trainer starting?")

    def _open_locked(self) -> int | None:
        if fcntl is None:
            try:
                return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                owner = _owner(self.path)
                pid = owner.get("pid")
                if isinstance(pid, int) and pid_alive(pid):
                    raise _busy_error(self.run_dir, owner) from None
                self.path.unlink(missing_ok=True)  # a dead trainer's lock: take it over
                return None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _busy_error(self.run_dir, _owner(self.path)) from None
        try:  # the previous holder may have unlinked the file between our open and our flock
            same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            return None
        return fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still holding it: a waiting opener re-checks the inode
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None
        if self._created_dir:  # a trainer refused early (bad data...) leaves no empty run directory behind
            try:
                self.run_dir.rmdir()
            except OSError:
                pass  # not empty: the run wrote something

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
