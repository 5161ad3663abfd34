"""`latest.sgxl`: a link to the newest snapshot of a run, not a second full copy of it.

A run's `latest.sgxl` names its newest `snapshots/snapshot-*.sgxl`. It is written, in order of
preference, as

1. a relative symbolic link (`latest.sgxl -> snapshots/snapshot-000000400.sgxl`): every tool
   (cp, scp, other programs) reads the snapshot through it, and `ls -l` shows which one it is;
2. a hard link, where the filesystem has no symbolic links but hard links (e.g. Windows without
   the symlink privilege): the same file under two names, still read by every tool;
3. a small JSON pointer file `{"format": "sgxl-pointer", "target": "snapshots/..."}`, where the
   filesystem has neither (FAT, exFAT, some network shares). Only this project's loader follows
   it: `load_checkpoint` resolves it first, so `--resume`, `--grow-from`, `sgxl info/convert`
   and the explorer all accept it like the snapshot itself.

The target is always relative to the link's folder, so a run directory moved or copied as a whole
keeps a working `latest.sgxl`. Each write replaces the old link in one rename (never a moment
without `latest.sgxl`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath

from core.errors import CheckpointError
from core.io.files import atomic_write_text, temp_path

POINTER_FORMAT = "sgxl-pointer"
MAX_POINTER_BYTES = 4096  # a pointer is ~100 bytes; anything bigger is a real checkpoint (or not ours)


def point_to(link: str | Path, target: str | Path) -> str:
    """Make `link` name `target` (a file in `link`'s folder or below it); -> "symlink", "hardlink" or "pointer".

    The new link is made under a temporary name and renamed over `link`, so readers see the old
    target or the new one, never nothing.
    """
    link, target = Path(link), Path(target)
    rel = PurePosixPath(Path(os.path.relpath(target, link.parent)).as_posix())
    if rel.is_absolute() or ".." in rel.parts:
        raise ValueError(f"{target} is not inside {link.parent}")
    tmp = temp_path(link)  # the project's temporary name: a killed writer's leftover is swept like any other
    links = (("symlink", lambda: os.symlink(str(rel), tmp)), ("hardlink", lambda: os.link(target, tmp)))
    for kind, make in links:
        tmp.unlink(missing_ok=True)
        try:
            make()
            os.replace(tmp, link)
            tmp.unlink(missing_ok=True)  # rename() of two names of one file does nothing: drop the spare name
            return kind
        except OSError:  # this filesystem (or platform, or privilege) has no such links: try the next kind
            tmp.unlink(missing_ok=True)
    atomic_write_text(link, json.dumps({"format": POINTER_FORMAT, "target": str(rel)}) + "\n")
    return "pointer"


def resolve_pointer(path: str | Path) -> Path:
    """The file `path` stands for: the target of a pointer file, else `path` itself.

    Symbolic and hard links need nothing (the OS follows them); a link whose target was removed
    gets an error that says so instead of "no such file".
    """
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise CheckpointError(f"{path} links to {os.readlink(path)}, which no longer exists (removed, or the run "
                              "directory was copied without its snapshots/ folder)")
    try:
        if not path.is_file() or path.stat().st_size > MAX_POINTER_BYTES:
            return path
        head = path.read_bytes()
    except OSError:
        return path
    if not head.lstrip().startswith(b"{"):  # a checkpoint is a zip ("PK...")
        return path
    try:
        record = json.loads(head)
    except (ValueError, UnicodeDecodeError):
        return path  # not a pointer: the loader says what is wrong with the file
    if not isinstance(record, dict) or record.get("format") != POINTER_FORMAT:
        return path
    target = record.get("target")
    rel = PurePosixPath(target) if isinstance(target, str) and target else None
    if rel is None or rel.is_absolute() or ".." in rel.parts:
        raise CheckpointError(f"{path} is a corrupt pointer file (its target must be a relative path inside its "
                              "folder)")
    resolved = path.parent / Path(*rel.parts)
    if not resolved.is_file():
        raise CheckpointError(f"{path} points to {resolved}, which no longer exists (removed, or the run directory "
                              "was copied without its snapshots/ folder)")
    return resolved
