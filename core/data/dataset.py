"""Training images: a folder with one sub-folder per class, or the official StyleGAN dataset format.

Official format (zip or folder, as written by `sgxl dataset` / `core.data.dataset_tool`):

    00000/img00000000.png, 00000/img00000001.png, ...   square RGB PNGs of one resolution
    dataset.json  {"labels": [["00000/img00000000.png", 6], ...] or null, "class_names": [...]}

`class_names` is our addition (optional); without it the number of classes is max(label) + 1.
A folder without `dataset.json` is read as one class per sub-folder (sorted names = classes 0, 1, ...), or as
unlabelled when its images lie directly inside it; a zip without `dataset.json` is unlabelled.

Unlabelled datasets have `num_classes == 0` (an unconditional model, c_dim 0) and every label is -1.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from core.errors import DatasetError

# Hostile files: a dataset image is refused before decoding when its header asks for more pixels than
# this (a decompression bomb: a few KB of PNG that decode to GBs), and no member is read past a cap.
MAX_IMAGE_SIDE = 8192
MAX_IMAGE_PIXELS = MAX_IMAGE_SIDE**2
MAX_IMAGE_BYTES = 4 * MAX_IMAGE_PIXELS + 2**20  # an uncompressed RGBA file of the largest allowed image
MAX_LABELS_BYTES = 128 * 2**20  # dataset.json: ImageNet's 1.28 M labels take ~45 MB
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".gif"})
LABELS_FILE = "dataset.json"


def is_image_name(name: str) -> bool:
    path = PurePosixPath(name)
    hidden = any(part.startswith(".") or part == "__MACOSX" for part in path.parts)
    return not hidden and path.suffix.lower() in IMAGE_EXTENSIONS


class _Files:
    """Read-only access to the files of a folder or a zip, by POSIX path relative to the root.

    A zip is opened lazily and once per process, so the object can be handed to DataLoader workers
    (forked or spawned): a worker never reuses its parent's file handle.
    """

    def __init__(self, path: Path):
        if not path.exists():
            raise DatasetError(f"dataset {path} does not exist")
        self.path = path
        self.is_zip = path.is_file()
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid = -1
        if self.is_zip and not zipfile.is_zipfile(path):
            raise DatasetError(f"{path} is neither a folder nor a zip file")

    def _archive(self) -> zipfile.ZipFile:
        if self._zip is None or self._zip_pid != os.getpid():
            self._zip = zipfile.ZipFile(self.path)  # the parent's handle (if any) is left to the parent
            self._zip_pid = os.getpid()
        return self._zip

    def names(self) -> list[str]:
        if self.is_zip:
            return sorted(n for n in self._archive().namelist() if not n.endswith("/"))
        return sorted(p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file())

    def read(self, name: str, cap: int = MAX_IMAGE_BYTES) -> bytes:
        """The bytes of `name`, refused (DatasetError) before reading when larger than `cap`."""
        if self.is_zip:
            info = self._archive().getinfo(name)
            size, packed = info.file_size, info.compress_size
        else:
            size = packed = (self.path / name).stat().st_size
        if size > cap or (size > 64 * 2**20 and size > 20 * max(packed, 1)):
            raise DatasetError(f"{self.path}/{name} is {size / 2**20:,.0f} MB when unpacked "
                               f"({packed / 2**20:,.1f} MB stored): too large to read safely (limit "
                               f"{cap / 2**20:,.0f} MB); remove it from the dataset")
        if not self.is_zip:
            return (self.path / name).read_bytes()
        with self._archive().open(info) as f:  # zipfile stops at the directory's size, checked above
            return f.read(cap + 1)

    def close(self) -> None:
        if self._zip is not None and self._zip_pid == os.getpid():
            self._zip.close()
        self._zip = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_zip": None, "_zip_pid": -1}


class ImageDataset(torch.utils.data.Dataset):
    """Square RGB images of one resolution with integer class labels; item -> (uint8 [3, R, R] tensor, label).

    xflip: append a horizontally mirrored copy of every image (doubles the length, like the official
    `--mirror`). max_size: keep a fixed random subset (seeded by `random_seed`) of at most this many images
    before mirroring. check_all: read every image header at start-up (fast; catches a bad file before
    training); otherwise only the first image is checked and the others when they are loaded.
    """

    def __init__(self, path: str | Path, xflip: bool = False, max_size: int | None = None, random_seed: int = 0,
                 check_all: bool = True):
        self.path = Path(path)
        self._files = _Files(self.path)
        names = self._files.names()
        images = [n for n in names if is_image_name(n) and n != LABELS_FILE]
        if not images:
            raise DatasetError(f"no images found in {self.path} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
        if LABELS_FILE in names:
            labels, self.class_names = self._read_labels_file(images)
        elif not self._files.is_zip:
            labels, self.class_names = self._labels_from_folders(images)
        else:
            labels, self.class_names = None, []
        self.has_labels = labels is not None
        self.num_classes = len(self.class_names)
        self._names = images
        self._labels = np.asarray(labels if labels is not None else [-1] * len(images), dtype=np.int64)

        self.resolution = self._check_header(images[0], None)
        for name in images[1:] if check_all else []:
            self._check_header(name, self.resolution)

        # Subset then mirror, both deterministic (official Dataset semantics).
        raw_idx = np.arange(len(images), dtype=np.int64)
        if max_size is not None and max_size < len(raw_idx):
            if max_size <= 0:
                raise DatasetError(f"max_size must be positive, got {max_size}")
            np.random.RandomState(random_seed % (1 << 31)).shuffle(raw_idx)
            raw_idx = np.sort(raw_idx[:max_size])
        flips = np.zeros(len(raw_idx), dtype=bool)
        if xflip:
            raw_idx = np.concatenate([raw_idx, raw_idx])
            flips = np.concatenate([flips, np.ones_like(flips)])
        self._raw_idx = raw_idx
        self._xflip = flips

    # ------------------------------------------------------------------------- labels

    def _read_labels_file(self, images: list[str]) -> tuple[list[int] | None, list[str]]:
        try:
            meta = json.loads(self._files.read(LABELS_FILE, MAX_LABELS_BYTES))
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise DatasetError(f"{self.path}/{LABELS_FILE} is not valid JSON: {e}") from None
        if not isinstance(meta, dict):
            raise DatasetError(f"{self.path}/{LABELS_FILE} must hold a JSON object with a 'labels' entry")
        class_names = meta.get("class_names") or []
        if not isinstance(class_names, list) or not all(isinstance(n, str) for n in class_names):
            raise DatasetError(f"'class_names' in {self.path}/{LABELS_FILE} must be a list of strings")
        entries = meta.get("labels")
        if entries is None:
            return None, []
        try:
            by_name = {str(name): label for name, label in entries}
        except (TypeError, ValueError):
            raise DatasetError(f"'labels' in {self.path}/{LABELS_FILE} must be a list of [file name, class] "
                               "pairs") from None
        unlabelled = [n for n in images if n not in by_name]
        if unlabelled:
            raise DatasetError(f"{LABELS_FILE} has {len(by_name)} labels for {len(images)} images: "
                               f"{len(unlabelled)} images have no label (first: {unlabelled[0]})")
        absent = sorted(set(by_name) - set(images))
        if absent:
            raise DatasetError(f"{LABELS_FILE} has {len(by_name)} labels for {len(images)} images: "
                               f"{len(absent)} labels name missing files (first: {absent[0]})")
        labels = []
        for name in images:
            label = by_name[name]
            if isinstance(label, list) and len(label) == 1:
                label = label[0]
            if isinstance(label, bool) or not isinstance(label, int):
                raise DatasetError(f"label of {name} in {LABELS_FILE} is {label!r}; only integer class labels "
                                   "are supported")
            labels.append(label)
        from core.io.validate import MAX_CLASSES  # the generator's limit (imported here: it loads the networks)

        if len(class_names) > MAX_CLASSES:
            raise DatasetError(f"{LABELS_FILE} names {len(class_names)} classes; at most {MAX_CLASSES} are supported")
        num_classes = len(class_names) if class_names else max(labels) + 1
        if not class_names and num_classes > MAX_CLASSES:
            # Without names the class count is max(label) + 1 (the official format's rule): an absurd label
            # would make an embedding table and a name list of that many classes. Refuse it up front.
            name, label = max(zip(images, labels), key=lambda item: item[1])
            raise DatasetError(f"label {label} of {name} in {LABELS_FILE} is out of range: labels count classes "
                               f"0..N-1 and at most {MAX_CLASSES} classes are supported (list 'class_names' in "
                               f"{LABELS_FILE} to name them)")
        bad = [(n, label) for n, label in zip(images, labels) if not 0 <= label < num_classes]
        if bad:
            raise DatasetError(f"label {bad[0][1]} of {bad[0][0]} is outside 0..{num_classes - 1} "
                               f"({len(class_names)} class names in {LABELS_FILE})" if class_names else
                               f"label {bad[0][1]} of {bad[0][0]} is negative")
        return labels, class_names or [str(i) for i in range(num_classes)]

    def _labels_from_folders(self, images: list[str]) -> tuple[list[int] | None, list[str]]:
        top_level = [n for n in images if "/" not in n]
        nested = [n for n in images if "/" in n]
        if not nested:
            return None, []  # a flat folder: unlabelled
        if top_level:
            raise DatasetError(f"{self.path} mixes images at its top level (e.g. {top_level[0]}) with class "
                               "sub-folders; move them into a class folder or remove them")
        class_names = sorted({n.split("/", 1)[0] for n in nested})
        index = {c: i for i, c in enumerate(class_names)}
        return [index[n.split("/", 1)[0]] for n in images], class_names

    # ------------------------------------------------------------------------- images

    def _check_header(self, name: str, resolution: int | None) -> int:
        """Open only the header of one image; -> its resolution, or DatasetError naming the file."""
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(self._files.read(name))) as img:
                size, mode = img.size, img.mode
        except Image.DecompressionBombError as e:
            raise DatasetError(f"{self.path}/{name} is too large to decode safely ({e})") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, zipfile.BadZipFile) as e:
            raise DatasetError(f"{self.path}/{name} cannot be read as an image ({e})") from None
        self._check_shape(name, size, mode, resolution)
        return size[0]

    def _check_shape(self, name: str, size: tuple[int, int], mode: str, resolution: int | None) -> None:
        hint = "; convert the images with `sgxl dataset --source DIR --dest OUT.zip --res R`"
        if size[0] * size[1] > MAX_IMAGE_PIXELS or max(size) > MAX_IMAGE_SIDE:
            raise DatasetError(f"{self.path}/{name} claims {size[0]}x{size[1]} pixels: too large to decode safely "
                               f"(at most {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}; a decompression bomb?){hint}")
        if mode != "RGB":
            raise DatasetError(f"{self.path}/{name} has mode {mode}, but images must be RGB{hint}")
        if size[0] != size[1]:
            raise DatasetError(f"{self.path}/{name} is {size[0]}x{size[1]}, but images must be square{hint}")
        if resolution is not None and size[0] != resolution:
            raise DatasetError(f"{self.path}/{name} is {size[0]}x{size[1]}, but the first image is "
                               f"{resolution}x{resolution}: all images must have one resolution{hint}")

    def _load(self, raw: int) -> np.ndarray:
        """-> uint8 [3, R, R] of source image `raw` (not mirrored)."""
        from PIL import Image, UnidentifiedImageError

        name = self._names[raw]
        try:
            with Image.open(io.BytesIO(self._files.read(name))) as img:
                self._check_shape(name, img.size, img.mode, self.resolution)  # before decoding a single pixel
                img.load()
                arr = np.asarray(img)  # [R, R, 3]
        except Image.DecompressionBombError as e:
            raise DatasetError(f"{self.path}/{name} is too large to decode safely ({e})") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, zipfile.BadZipFile) as e:
            raise DatasetError(f"{self.path}/{name} cannot be read as an image ({e})") from None
        return arr.transpose(2, 0, 1)  # [3, R, R]

    def get_image(self, idx: int) -> np.ndarray:
        """uint8 [3, R, R] numpy image of dataset item `idx` (mirrored for the second half when xflip)."""
        arr = self._load(int(self._raw_idx[idx]))
        if self._xflip[idx]:
            arr = arr[:, :, ::-1]
        return np.ascontiguousarray(arr)

    def get_label(self, idx: int) -> int:
        return int(self._labels[self._raw_idx[idx]])

    def image_name(self, idx: int) -> str:
        """The file behind item `idx`, relative to the dataset root."""
        return self._names[int(self._raw_idx[idx])]

    @property
    def labels(self) -> np.ndarray:
        """int64 [len(self)]: the label of every item (-1 when unlabelled)."""
        return self._labels[self._raw_idx]

    def __len__(self) -> int:
        return len(self._raw_idx)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self.get_image(idx)), self.get_label(idx)

    def close(self) -> None:
        self._files.close()

    def __enter__(self) -> ImageDataset:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "zip" if self._files.is_zip else "folder"
        return (f"ImageDataset({str(self.path)!r}, {kind}, {len(self)} items, {self.resolution}x{self.resolution}, "
                f"{self.num_classes} classes)")
