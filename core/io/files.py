"""Writing files so that a crash, a kill or a full disk never leaves a half-written file in place.

Every writer in the project (checkpoints, datasets, images, videos, logs, caches) goes through here:

- A file is written under a temporary name in the same folder, `.<name>.<pid>.tmp<suffix>` (the
  suffix is kept so format-by-extension writers such as ffmpeg still work), flushed to disk, then
  renamed over the target in one step. Readers see the old file or the new one, never a mixture.
- Any failure (an exception, Ctrl-C, a full disk) removes the temporary file; the target, if it
  existed, is untouched.
- A writer killed with SIGKILL cannot clean up: its temporary file stays. The next write into the
  same folder (by any process) removes temporary files whose writer process no longer exists.
- A full disk (ENOSPC), an exhausted quota (EDQUOT) or the file-size limit (EFBIG) becomes one
  `DiskFullError` naming the file, instead of a raw OSError traceback.
- Before any long work, a writer checks that its output can be written at all (`check_writable`,
  `image_format`): a folder it may not write into, a path under a regular file, or an image suffix
  Pillow cannot write is one `UserInputError` up front, not a traceback after minutes of work.
"""

from __future__ import annotations

import errno
import io
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from core.errors import DiskFullError, UserInputError

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp(?:\.[A-Za-z0-9]+)?$")
_cleaned_folders: set[str] = set()  # folders already swept by this process (a sweep per write would be O(n²))


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def disk_full_error(path: Path | str, exc: OSError) -> DiskFullError:
    """The one message for a write that ran out of space, naming the file and what was kept."""
    path = Path(path)
    what = {errno.EDQUOT: "the disk quota is exhausted", errno.EFBIG: "the file-size limit was reached"}.get(
        exc.errno, "the disk is full")
    try:
        free = shutil.disk_usage(path.parent if path.parent.exists() else ".").free
        space = f" ({free / 2**20:.0f} MB free)"
    except OSError:
        space = ""
    return DiskFullError(f"cannot write {path}: {what}{space}; nothing was written in its place (an earlier "
                         "version, if any, is intact). Free some space or choose another output location")


def temp_path(path: Path) -> Path:
    """The temporary name `path` is written under: `.<name>.<pid>.tmp<suffix>` in the same folder."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OSError:
        return False
    try:  # a zombie has exited; only its parent has not collected the exit code yet
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def remove_stale_temps(folder: Path | str) -> list[Path]:
    """Remove temporary files (and folders) in `folder` left by writers that no longer run; -> what was removed.

    Only names of the form `.<name>.<pid>.tmp[.<suffix>]` whose pid is dead are touched: a live writer's
    file, this process's own files and anything else are kept.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name) if entry.name.startswith(".") else None
        if match is None:
            continue
        pid = int(match["pid"])
        if pid == os.getpid() or pid_alive(pid):
            continue
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        except OSError:
            pass  # another process removed it first, or it is not ours to remove
    return removed


def _sweep_once(folder: Path) -> None:
    key = str(folder.resolve())
    if key not in _cleaned_folders:
        _cleaned_folders.add(key)
        remove_stale_temps(folder)


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def prepare_temp(path: Path | str, directory: bool = False) -> Path:
    """Create the folder of `path`, sweep stale temporary files there, -> the temporary path to write.

    With `directory=True` the temporary path is created as an empty folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_once(path.parent)
    tmp = temp_path(path)
    _remove(tmp)
    if directory:
        tmp.mkdir()
    return tmp


def commit_temp(tmp: Path, path: Path | str) -> None:
    """Move a finished temporary file (or folder) to `path` in one step; an existing folder is replaced."""
    path = Path(path)
    if tmp.is_dir() and path.is_dir():
        old = path.with_name(f".{path.name}.{os.getpid()}.tmp.old")
        os.rename(path, old)
        os.rename(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


def discard_temp(tmp: Path) -> None:
    _remove(tmp)


@contextmanager
def atomic_path(path: Path | str, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it is renamed to `path`, on any failure removed.

    With `directory=True` the temporary path is created as an empty folder (for datasets written as a
    folder); an existing target folder is replaced only after the new one is complete.
    """
    tmp = prepare_temp(path, directory)
    try:
        yield tmp
        commit_temp(tmp, path)
    except BaseException as e:
        discard_temp(tmp)
        if is_disk_full(e):
            raise disk_full_error(path, e) from None
        raise


def open_temp(path: Path, mode: str) -> IO:
    """Open a temporary file for writing (one place, so tests can simulate a full disk here)."""
    return open(path, mode)  # noqa: SIM115 - closed by atomic_open


@contextmanager
def atomic_open(path: Path | str, mode: str = "wb") -> Iterator[IO]:
    """`with atomic_open(p) as f: f.write(...)`: `p` appears complete (flushed to disk) or not at all."""
    with atomic_path(path) as tmp:
        f = open_temp(tmp, mode)
        try:
            yield f
            f.flush()
            os.fsync(f.fileno())
        finally:
            f.close()


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same folder and an atomic rename."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_with(path: Path | str, write: Callable[[IO], None]) -> None:
    """`write(f)` into a temporary file, then rename: for writers that take a file object (PIL, numpy)."""
    with atomic_open(path, "wb") as f:
        write(f)


def _existing_ancestor(path: Path) -> Path:
    """`path` or its nearest ancestor that exists (as anything: a folder, or a file in the way)."""
    probe = Path(os.path.abspath(path))
    while True:
        try:
            os.stat(probe)
            return probe
        except OSError:  # missing, or a file in the way (ENOTDIR), or a folder we may not search
            if probe.parent == probe:
                return probe
            probe = probe.parent


def check_writable(path: Path | str, folder: bool = False) -> None:
    """Refuse, up front and in one line, an output that cannot be written.

    folder=False: `path` is a file to create or replace (atomically, so in its parent folder);
    folder=True: files go inside the folder `path`, created with its parents when missing. Either
    way the nearest existing ancestor must be a folder this process may write into. Permission bits
    are checked with os.access, so a process running as root passes them (as its writes would),
    but not a path under a regular file or on a read-only filesystem.
    """
    path = Path(path)
    if not folder and path.is_dir():
        raise UserInputError(f"cannot write {path}: it is a folder; give a file name")
    if folder and path.exists() and not path.is_dir():
        raise UserInputError(f"cannot write into {path}: it is a file, not a folder")
    where = _existing_ancestor(path if folder else path.parent)
    if not where.is_dir():
        raise UserInputError(f"cannot write {path}: {where} is a file, not a folder")
    if not os.access(where, os.W_OK | os.X_OK):
        reason = "it is on a read-only filesystem" if _read_only_fs(where) else "no permission to write there"
        raise UserInputError(f"cannot write {path}: {where} is not writable ({reason})")


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows)
        return False


def remove_empty_dirs(path: Path | str) -> None:
    """Remove folder `path` and the empty folders below it, if nothing but empty folders is there
    (a writer that failed before writing anything leaves no empty output folder behind)."""
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        return
    for child in path.iterdir():
        remove_empty_dirs(child)
    try:
        path.rmdir()
    except OSError:
        pass  # not empty: what was written stays


def image_format(path: Path | str) -> str:
    """The Pillow format `path`'s suffix names, checked to encode an RGB image; UserInputError otherwise.

    Any format Pillow writes works (.png, .jpg, .webp, .bmp, .tif, .gif, ...); a suffix Pillow does not
    know, or one it cannot write an RGB image in (.xbm, .h5, ...), is refused before any work is done.
    """
    from PIL import Image

    path = Path(path)
    Image.init()
    ext = path.suffix.lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise UserInputError(f"cannot write {path}: Pillow does not write {ext or 'suffix-less'} images; use .png, "
                             ".jpg, .webp, .bmp, .tif, ...")
    try:  # some formats need a plugin or a mode we do not have (e.g. XBM is 1-bit only): find out now
        Image.new("RGB", (4, 4)).save(io.BytesIO(), format=fmt)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserInputError(f"cannot write {path}: Pillow cannot write an RGB image as {fmt} ({e})") from None
    return fmt


VIDEO_SUFFIXES = (".mp4", ".gif")


def check_video_path(path: Path | str) -> None:
    """Refuse, before any frame is rendered, a video path that cannot be written (its suffix, its folder)."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserInputError(f"video output must end in .mp4 or .gif, got {path.name}")
    check_writable(path)


def save_image(path: Path | str, image) -> Path:
    """Save a uint8 [H, W, 3] (or [H, W] / [H, W, 1]) array as an image file, atomically.

    The format comes from the suffix (`image_format`: any format Pillow writes; UserInputError otherwise).
    """
    import numpy as np
    from PIL import Image

    path = Path(path)
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    fmt = image_format(path)
    buf = io.BytesIO()  # encode first: the file is open only for the short write
    Image.fromarray(arr).save(buf, format=fmt)
    atomic_write_bytes(path, buf.getvalue())
    return path


def append_line(path: Path | str, line: str) -> None:
    """Append one line to a log file; on a failed write the file is cut back, so no half line is left."""
    path = Path(path)
    data = memoryview((line.rstrip("\n") + "\n").encode("utf-8"))
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            while data:  # unbuffered: a short write on a nearly full disk is retried, then fails
                data = data[os.write(fd, data):]
        except OSError as e:
            try:
                os.ftruncate(fd, start)
            except OSError:
                pass
            if is_disk_full(e):
                raise disk_full_error(path, e) from None
            raise
    finally:
        os.close(fd)
