"""`sgxl dataset`: a folder of photos -> the official StyleGAN dataset format (see `core.data.dataset`).

Every image becomes a square RGB PNG of one resolution (centre crop of the short side, Lanczos resize),
stored as `00000/img00000000.png` with `dataset.json` holding the labels and the class names. Files that
cannot be used are skipped and counted by reason; files in other colour modes are converted and counted.
The output appears only when complete (written to a temporary name, then renamed).
"""

from __future__ import annotations

import io
import json
import warnings
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Literal

import numpy as np

from core.data.dataset import IMAGE_EXTENSIONS, LABELS_FILE
from core.data.writer import ConversionReport, DatasetWriter, png_bytes
from core.errors import DatasetError, UserInputError

Transform = Literal["center-crop", "resize"]
LabelMode = Literal["auto", "folders", "none"]
BACKGROUND = (255, 255, 255)  # transparent pixels are composited on white
# Source files are read whole: one above this is skipped unread. Pixel bombs (small files whose header
# asks for more than twice Pillow's MAX_IMAGE_PIXELS) are skipped by Pillow's check before decoding.
MAX_SOURCE_BYTES = 2**30


class _Skip(Exception):
    """One source file cannot be used; the message is the reason counted in the report."""


# ----------------------------------------------------------------------------- one image

def _to_rgb(img, notes: list[str]):
    """Any PIL mode -> RGB, recording what was done in `notes`."""
    from PIL import Image

    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        notes.append("palette -> RGB")
        return _to_rgb(img, notes) if img.mode == "RGBA" else img
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        if rgba.getextrema()[3][0] < 255:  # some pixel is (partly) transparent
            notes.append("transparent -> on white")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16/32-bit grayscale: scale to 8 bits
        arr = np.asarray(img, dtype=np.float64)
        if arr.max() > 255:
            arr = arr / 257.0
        notes.append("grayscale -> RGB")
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode in ("L", "1"):
        notes.append("grayscale -> RGB")
    else:  # CMYK, YCbCr, LAB, HSV, ...
        notes.append(f"{mode} -> RGB")
    try:
        return img.convert("RGB")
    except ValueError:
        raise _Skip(f"unsupported colour mode {mode}") from None


def _convert_one(data: bytes, name: str, resolution: int, transform: Transform, min_size: int,
                 notes: list[str]):
    """Encoded bytes -> PIL RGB image of resolution x resolution, or _Skip with the reason."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    is_image_ext = PurePosixPath(name).suffix.lower() in IMAGE_EXTENSIONS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's warnings about odd metadata; real failures raise
            img = Image.open(io.BytesIO(data))
            img.load()  # decode now: truncated files fail here, not later
            img = ImageOps.exif_transpose(img)  # camera photos: apply the orientation tag
    except Image.DecompressionBombError:
        raise _Skip("too large to decode safely") from None
    except UnidentifiedImageError:
        raise _Skip("corrupt image" if is_image_ext else "not an image") from None
    except (OSError, SyntaxError, ValueError):
        raise _Skip("corrupt image") from None
    w, h = img.size
    if min(w, h) < min_size:
        raise _Skip(f"smaller than {min_size}px")
    img = _to_rgb(img, notes)
    if transform == "center-crop":
        crop = min(w, h)
        left, top = (w - crop) // 2, (h - crop) // 2
        img = img.crop((left, top, left + crop, top + crop))
    if min(w, h) < resolution:
        notes.append("upscaled")
    if img.size != (resolution, resolution):
        img = img.resize((resolution, resolution), Image.LANCZOS)
    return img


# ----------------------------------------------------------------------------- conversion

def _list_files(source: Path) -> list[str]:
    files = []
    for p in source.rglob("*"):
        rel = p.relative_to(source)
        if p.is_file() and not any(part.startswith(".") or part == "__MACOSX" for part in rel.parts):
            files.append(rel.as_posix())
    return sorted(files)


def convert_dataset(source: str | Path, dest: str | Path, resolution: int, transform: Transform = "center-crop",
                    labels: LabelMode = "auto", mirror: bool = False, max_images: int | None = None,
                    progress: bool = True, min_size: int | None = None, overwrite: bool = False) -> ConversionReport:
    """Convert a folder of images to the official dataset format (a zip when `dest` ends in .zip, else a folder).

    labels: "folders" = one class per sub-folder of `source` (sorted names are classes 0, 1, ...), "none" =
    unlabelled, "auto" = folders when some image lies in a sub-folder. transform: "center-crop" (crop the short
    side, then resize) or "resize" (squash to square). mirror: also store a left-right mirrored copy of every
    image (ImageDataset(xflip=True) does the same at load time without the disk cost). max_images: convert at
    most this many source images, a deterministic random subset so every class keeps images. min_size: skip
    images whose short side is below it (default resolution // 2; smaller ones would be blurry upscales).
    """
    from PIL import Image
    from tqdm import tqdm

    source, dest = Path(source), Path(dest)
    if resolution < 4 or resolution & (resolution - 1):
        raise UserInputError(f"--res must be a power of two (4, 8, ..., 1024), got {resolution}")
    if transform not in ("center-crop", "resize"):
        raise UserInputError(f"unknown transform {transform!r}; use center-crop or resize")
    if labels not in ("auto", "folders", "none"):
        raise UserInputError(f"unknown label mode {labels!r}; use auto, folders or none")
    if max_images is not None and max_images <= 0:
        raise UserInputError(f"--max-images must be positive, got {max_images}")
    if not source.is_dir():
        raise DatasetError(f"source folder {source} does not exist" if not source.exists()
                           else f"source {source} is not a folder")
    if dest.resolve().is_relative_to(source.resolve()):
        raise DatasetError(f"the output {dest} must not lie inside the source folder {source}")
    if dest.exists():
        if not overwrite:
            raise DatasetError(f"{dest} already exists; choose another --dest or pass --overwrite")
        if dest.is_dir() and not (dest / LABELS_FILE).is_file():
            raise DatasetError(f"{dest} is a folder that is not a converted dataset; refusing to overwrite it")
    min_size = resolution // 2 if min_size is None else min_size

    files = _list_files(source)
    image_like = [f for f in files if PurePosixPath(f).suffix.lower() in IMAGE_EXTENSIONS]
    if not image_like:
        raise DatasetError(f"no images found in {source} ({len(files)} other files)")
    use_folders = labels == "folders" or (labels == "auto" and any("/" in f for f in image_like))
    class_names = sorted({f.split("/", 1)[0] for f in image_like if "/" in f}) if use_folders else []
    class_index = {c: i for i, c in enumerate(class_names)}
    if use_folders and not class_names:
        raise DatasetError(f"labels from folders were asked for, but {source} has no sub-folders with images")

    order = list(range(len(files)))
    if max_images is not None:  # a seeded subset spread over all classes, not the first classes only
        order = list(np.random.RandomState(0).permutation(len(files)))

    skipped: Counter[str] = Counter()
    converted: Counter[str] = Counter()
    skipped_files: list[tuple[str, str]] = []
    label_entries: list[list] = []
    num_source = 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    writer = DatasetWriter(dest)
    try:
        bar = tqdm(order, desc=f"converting to {resolution}x{resolution}", unit="file", disable=not progress)
        for i in bar:
            if max_images is not None and num_source >= max_images:
                break
            name = files[i]
            try:
                folder = name.split("/", 1)[0] if "/" in name else None
                if use_folders and folder not in class_index:
                    raise _Skip("outside class folders")
                notes: list[str] = []
                if (source / name).stat().st_size > MAX_SOURCE_BYTES:
                    raise _Skip(f"file larger than {MAX_SOURCE_BYTES // 2**30} GB")
                img = _convert_one((source / name).read_bytes(), name, resolution, transform, min_size, notes)
            except _Skip as e:
                skipped[str(e)] += 1
                skipped_files.append((name, str(e)))
                continue
            converted.update(notes)
            label = class_index[folder] if use_folders else None
            for flip in (False, True) if mirror else (False,):
                idx = len(label_entries)
                out_name = f"{idx // 1000:05d}/img{idx:08d}.png"
                out = img.transpose(Image.FLIP_LEFT_RIGHT) if flip else img
                writer.write(out_name, png_bytes(out))
                label_entries.append([out_name, label])
            num_source += 1
        if not label_entries:
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(skipped.items()))
            raise DatasetError(f"no usable images in {source}: all {sum(skipped.values())} files were skipped "
                               f"({reasons})")
        meta = {"labels": label_entries if use_folders else None}
        if use_folders:
            meta["class_names"] = class_names
        writer.write(LABELS_FILE, json.dumps(meta, indent=0).encode())
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return ConversionReport(dest=dest, resolution=resolution, num_images=len(label_entries),
                            num_source_images=num_source, class_names=class_names, skipped=dict(skipped),
                            converted=dict(converted), skipped_files=skipped_files)
