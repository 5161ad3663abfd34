"""Writing a dataset in the official StyleGAN format, shared by `sgxl dataset` (dataset_tool) and its presets (emoji).

A dataset is a zip or a folder of PNGs plus `dataset.json` (see `core.data.dataset`). `DatasetWriter` fills a
temporary zip or folder next to the destination and renames it into place on `commit`, so a dataset appears
only when it is complete; `ConversionReport` is what a conversion tells the user.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from core.io import files as fileio


@dataclass
class ConversionReport:
    dest: Path
    resolution: int
    num_images: int  # images written, mirrored copies included
    num_source_images: int  # source files converted
    class_names: list[str]  # [] when unlabelled
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> number of files
    converted: dict[str, int] = field(default_factory=dict)  # conversion (e.g. "CMYK -> RGB") -> number of files
    skipped_files: list[tuple[str, str]] = field(default_factory=list)  # (path relative to source, reason)

    def summary(self) -> str:
        mirrored = f" ({self.num_source_images} + {self.num_images - self.num_source_images} mirrored)" \
            if self.num_images != self.num_source_images else ""
        classes = (f"{len(self.class_names)} classes ({', '.join(self.class_names[:6])}"
                   f"{', ...' if len(self.class_names) > 6 else ''})" if self.class_names else "unlabelled")
        lines = [f"wrote {self.dest}: {self.num_images} images{mirrored}, "
                 f"{self.resolution}x{self.resolution}, {classes}"]
        if self.converted:
            lines.append("converted: " + ", ".join(f"{k} {v}" for k, v in sorted(self.converted.items())))
        if self.skipped:
            total = sum(self.skipped.values())
            lines.append(f"skipped {total} file{'s' if total != 1 else ''}: "
                         + ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())))
            lines.extend(f"  {name}: {why}" for name, why in self.skipped_files[:5])
            if len(self.skipped_files) > 5:
                lines.append(f"  ... and {len(self.skipped_files) - 5} more")
        return "\n".join(lines)


def png_bytes(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="png", compress_level=1)  # fast; PNG is lossless at any level
    return buf.getvalue()


class DatasetWriter:
    """Writes files into a temporary zip or folder next to `dest` (core.io.files naming: a killed
    conversion's leftovers are swept by the next write there); `commit` renames it into place,
    `abort` removes it. A full disk becomes one DiskFullError."""

    def __init__(self, dest: Path):
        self.dest = dest
        self.as_zip = dest.suffix.lower() == ".zip"
        self.temp = fileio.prepare_temp(dest, directory=not self.as_zip)
        self._file = fileio.open_temp(self.temp, "wb") if self.as_zip else None
        self._zip = zipfile.ZipFile(self._file, "w", compression=zipfile.ZIP_STORED) if self.as_zip else None

    def write(self, name: str, data: bytes) -> None:
        try:
            if self._zip is not None:
                self._zip.writestr(name, data)
            else:
                path = self.temp / name
                path.parent.mkdir(parents=True, exist_ok=True)
                with fileio.open_temp(path, "wb") as f:  # inside the temporary folder: renamed with it
                    f.write(data)
        except OSError as e:
            if fileio.is_disk_full(e):
                raise fileio.disk_full_error(self.dest, e) from None
            raise

    def commit(self) -> None:
        try:
            if self._zip is not None:
                self._zip.close()  # writes the zip directory: the last bytes that can hit a full disk
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
            fileio.commit_temp(self.temp, self.dest)
        except OSError as e:
            if fileio.is_disk_full(e):
                raise fileio.disk_full_error(self.dest, e) from None
            raise

    def abort(self) -> None:
        for close in (getattr(self._zip, "close", None), getattr(self._file, "close", None)):
            try:
                if close is not None:
                    close()
            except (OSError, ValueError):
                pass  # the disk may still be full: the temporary file is removed below anyway
        fileio.discard_temp(self.temp)
