"""Feature statistics of a dataset (features, mean, covariance), cached on disk.

Real-image features are the same for every checkpoint evaluated against a dataset, and extracting them is
the slow part on a CPU, so they are cached. The cache key is (dataset content hash, feature network, items
used, format version): the hash covers the bytes of the dataset itself (the zip file, or every file of a
folder) plus the item list and labels, so editing, adding or removing an image gives a new key and the old
entry is never used again. In-memory datasets are hashed from their decoded images and labels.

Cache folder: the `cache_dir` argument, else $SGXL_CACHE_DIR, else ~/.cache/sgxl/metrics. Entries are .npz
files written atomically (temp file + rename), so a crash never leaves a half-written entry behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.errors import DiskFullError
from core.metrics.features import FeatureExtractor
from core.metrics.frechet import mean_cov

logger = logging.getLogger(__name__)

CACHE_ENV = "SGXL_CACHE_DIR"
CACHE_VERSION = 1  # bump when feature extraction changes in a way that alters cached numbers


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "sgxl" / "metrics")


def _hash_file(h: hashlib._Hash, path: Path) -> None:
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)


def dataset_fingerprint(dataset) -> str:
    """sha256 (hex) of a dataset's content: its source bytes when it has a `path`, else its decoded items."""
    h = hashlib.sha256()
    path = getattr(dataset, "path", None)
    if path is not None and Path(path).exists():
        path = Path(path)
        if path.is_file():  # a zip: its bytes hold every image and dataset.json
            _hash_file(h, path)
        else:
            for f in sorted(p for p in path.rglob("*") if p.is_file()):
                h.update(f.relative_to(path).as_posix().encode() + b"\0")
                _hash_file(h, f)
        # Which items (subset, mirroring) in which order, with which labels.
        names = [dataset.image_name(i) for i in range(len(dataset))] if hasattr(dataset, "image_name") else []
        labels = np.asarray(getattr(dataset, "labels", []), dtype=np.int64)
        h.update(json.dumps({"len": len(dataset), "names": names}).encode())
        h.update(labels.tobytes())
    else:
        for i in range(len(dataset)):
            img, label = dataset[i]
            arr = np.ascontiguousarray(np.asarray(img))
            h.update(f"{arr.shape}{arr.dtype}{int(label)}".encode())
            h.update(arr.tobytes())
    return h.hexdigest()


def select_items(num_items: int, max_items: int | None, seed: int = 0) -> np.ndarray:
    """Indices of the items used: all, or a fixed random subset (sorted) when `max_items` is smaller.

    Random rather than the first N: datasets are often stored sorted by class.
    """
    if max_items is None or max_items >= num_items:
        return np.arange(num_items)
    if max_items < 2:
        raise ValueError("statistics need at least 2 items")
    return np.sort(np.random.RandomState(seed).choice(num_items, max_items, replace=False))


@dataclass
class DatasetStats:
    """Features of (a subset of) a dataset in one feature space, with their Gaussian fit."""

    features: np.ndarray  # float32 [N, D]
    labels: np.ndarray  # int64 [N] (-1 when unlabelled)
    mu: np.ndarray  # float64 [D]
    sigma: np.ndarray  # float64 [D, D]
    extractor: str  # feature network name
    fingerprint: str  # dataset content hash
    cache_path: Path | None = None
    from_cache: bool = False

    def of_class(self, label: int) -> np.ndarray:
        return self.features[self.labels == label]


def _stack_images(items: Sequence) -> tuple[torch.Tensor, list[int]]:
    imgs, labels = [], []
    for img, label in items:
        imgs.append(torch.as_tensor(np.asarray(img)))
        labels.append(int(label))
    x = torch.stack(imgs)  # [B, C, H, W]
    if x.dtype != torch.uint8:
        raise ValueError(f"dataset images must be uint8 [C, H, W], got {x.dtype}")
    return x, labels


def extract_dataset_features(dataset, extractor: FeatureExtractor, indices: np.ndarray, batch: int = 64,
                             progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Features [N, D] float32 and labels [N] of dataset items `indices` (no cache)."""
    from tqdm import tqdm

    feats, labels = [], []
    for start in tqdm(range(0, len(indices), batch), desc=f"dataset features ({extractor.name})", unit="batch",
                      disable=not progress):
        x, y = _stack_images([dataset[int(i)] for i in indices[start:start + batch]])
        f, _ = extractor.extract(x)
        feats.append(f.numpy().astype(np.float32))
        labels.extend(y)
    return np.concatenate(feats), np.asarray(labels, dtype=np.int64)


def _atomic_save_npz(path: Path, **arrays) -> None:
    from core.io.files import atomic_write_with

    atomic_write_with(path, lambda f: np.savez(f, **arrays))


def dataset_stats(dataset, extractor: FeatureExtractor, max_items: int | None = None, batch: int = 64,
                  cache_dir: str | Path | None = None, use_cache: bool = True, progress: bool = True) -> DatasetStats:
    """Features, mean and covariance of `dataset` in `extractor`'s space; read from / written to the cache."""
    fingerprint = dataset_fingerprint(dataset)
    indices = select_items(len(dataset), max_items)
    key_fields = {"version": CACHE_VERSION, "dataset": fingerprint, "extractor": extractor.name,
                  "dim": extractor.dim, "items": len(indices), "of": len(dataset)}
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()[:24]
    path = Path(cache_dir or default_cache_dir()) / f"{extractor.name}-{len(indices)}-{key}.npz"
    if use_cache and path.is_file():
        try:
            with np.load(path) as z:
                if json.loads(str(z["key"])) == key_fields:
                    return DatasetStats(z["features"], z["labels"], z["mu"], z["sigma"], extractor.name,
                                        fingerprint, path, from_cache=True)
        except (OSError, ValueError, KeyError) as e:  # unreadable entry: recompute and overwrite it
            logger.warning("ignoring unreadable statistics cache %s (%s)", path, e)
    features, labels = extract_dataset_features(dataset, extractor, indices, batch, progress)
    mu, sigma = mean_cov(features)
    if use_cache:
        try:
            _atomic_save_npz(path, features=features, labels=labels, mu=mu, sigma=sigma,
                             key=np.asarray(json.dumps(key_fields)))
        except (OSError, DiskFullError) as e:  # a read-only or full cache disk must not stop the metric
            logger.warning("cannot write the statistics cache %s (%s)", path, e)
            path = None
    return DatasetStats(features, labels, mu, sigma, extractor.name, fingerprint, path if use_cache else None)
