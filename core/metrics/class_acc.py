"""`class_acc`: how often a generated image is recognised as the class it was conditioned on.

A classifier that never saw a generated image labels each one; class_acc is the share labelled with the
class G was asked for. The classifier is a linear probe fitted on the real dataset's EfficientNet-lite0 pooled
features (the features `fd_effnet` uses, taken from the same cached dataset statistics): linear discriminant
analysis with a shrunk shared covariance and equal class priors, in closed form. bench/class_probe.py chose it
by real-data held-out accuracy on the noto-emoji dataset (39 subgroup classes) at 16², 32² and 64²: the best
plain accuracy measured at 32² and 64² and within 0.01 of the best balanced one there, ahead of k-NN, nearest
class mean and ridge at 16²; L-BFGS logistic regression was better at 16² (+0.015 plain, +0.026 balanced) but
takes 30-100x longer to fit on a CPU (minutes per fit, where this takes seconds).

Ceiling: the same classifier's accuracy on real images it did not see. Every real image is predicted once
by a probe fitted on the other folds of a stratified k-fold split (small classes, 11 images in the emoji
set, would leave a single held-out split with one or two images per class). It is reported balanced (the
mean of the per-class accuracies) and plain (share of all images). Generated images are drawn in equal
numbers per class, so class_acc is itself a balanced accuracy and is compared with the balanced ceiling:
a generator whose images are as recognisable as real ones scores about that.

The probe is fitted once per (dataset content, feature network, probe settings) and cached next to the
dataset statistics (`stats.default_cache_dir`), keyed by the same content hash: editing the dataset gives a
new key, so a stale probe is never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.errors import UserInputError
from core.metrics.features import FeatureExtractor
from core.metrics.stats import _atomic_save_npz, dataset_stats, default_cache_dir

logger = logging.getLogger(__name__)

PROBE_VERSION = 1  # bump when fitting changes in a way that alters cached probes


@dataclass(frozen=True)
class ProbeConfig:
    """Classifier settings (the defaults are the ones bench/class_probe.py measured best)."""

    shrinkage: float = 0.3  # share of the shared covariance replaced by its mean variance times I (Ledoit-Wolf form)
    folds: int = 5  # stratified k-fold for the held-out ceiling
    seed: int = 0  # fold assignment

    def describe(self) -> str:
        return (f"shrinkage LDA (shared covariance, {self.shrinkage:g} shrinkage, equal class priors) on the real "
                f"dataset's EfficientNet-lite0 pooled features; ceiling = {self.folds}-fold held-out real images")


@dataclass
class ClassAccuracy:
    """Predictions scored against targets, overall and per class."""

    plain: float  # share of all items predicted correctly
    balanced: float  # mean over classes (with items) of the per-class share
    per_class: dict[int, float]  # class -> share correct, for classes with at least one item
    counts: dict[int, int]  # class -> items


def class_accuracy(pred: np.ndarray, target: np.ndarray) -> ClassAccuracy:
    pred, target = np.asarray(pred), np.asarray(target)
    ok = pred == target
    per_class = {int(k): float(ok[target == k].mean()) for k in np.unique(target)}
    counts = {int(k): int((target == k).sum()) for k in np.unique(target)}
    return ClassAccuracy(float(ok.mean()) if ok.size else float("nan"),
                         float(np.mean(list(per_class.values()))) if per_class else float("nan"), per_class, counts)


def stratified_folds(labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """Fold index (0..folds-1) of every item: each class is dealt round the folds in a random order.

    The deal continues from class to class, so classes smaller than `folds` do not all land in fold 0.
    """
    labels = np.asarray(labels)
    rng = np.random.RandomState(seed)
    fold = np.empty(len(labels), dtype=np.int64)
    start = 0
    for k in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == k))
        fold[idx] = (start + np.arange(len(idx))) % folds
        start += len(idx)
    return fold


@dataclass
class LinearProbe:
    """A linear classifier: logits = (x - center) @ weight + bias; classes without training items are never
    predicted (bias -inf)."""

    center: np.ndarray  # [D]
    weight: np.ndarray  # [D, K]
    bias: np.ndarray  # [K]

    def logits(self, features: np.ndarray) -> np.ndarray:
        return (np.asarray(features, dtype=np.float64) - self.center) @ self.weight + self.bias

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.logits(features).argmax(axis=1)


def fit_probe(features: np.ndarray, labels: np.ndarray, num_classes: int,
              config: ProbeConfig = ProbeConfig()) -> LinearProbe:
    """Linear discriminant analysis with a shrunk shared covariance and equal class priors (closed form).

    Each class is a Gaussian N(mean_k, Σ) with one Σ for all: the pooled within-class covariance S, shrunk
    toward (tr S / D)·I, because 1280 dimensions from ~1500 images leave S badly conditioned. The most likely
    class is argmax_k x·Σ⁻¹m_k - ½ m_k·Σ⁻¹m_k (m_k = mean_k - center). Equal priors, not the class shares:
    generated images come in equal numbers per class, and a big real class must not absorb the small ones.
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    present = np.bincount(y, minlength=num_classes) > 0
    means = np.zeros((num_classes, x.shape[1]))
    for k in np.flatnonzero(present):
        means[k] = x[y == k].mean(axis=0)
    center = means[present].mean(axis=0)  # scores do not depend on it; it keeps the numbers small
    resid = x - means[y]
    dof = max(len(y) - int(present.sum()), 1)
    cov = resid.T @ resid / dof
    scale = np.trace(cov) / cov.shape[0]
    if scale <= 0:  # one item per class: no spread to estimate, fall back to the nearest class mean
        scale = 1.0
    cov = (1 - config.shrinkage) * cov + (config.shrinkage * scale + 1e-9 * scale) * np.eye(cov.shape[0])
    m = means - center  # [K, D]
    weight = np.linalg.solve(cov, m.T)  # [D, K] = Σ⁻¹ m_kᵀ
    bias = -0.5 * np.einsum("kd,dk->k", m, weight)
    bias[~present] = -np.inf
    return LinearProbe(center, weight, bias)


def heldout_predictions(features: np.ndarray, labels: np.ndarray, num_classes: int,
                        config: ProbeConfig = ProbeConfig()) -> np.ndarray:
    """Each item's class as predicted by a probe fitted on the other stratified folds."""
    labels = np.asarray(labels)
    fold = stratified_folds(labels, config.folds, config.seed)
    pred = np.empty(len(labels), dtype=np.int64)
    for f in range(config.folds):
        test = fold == f
        if test.any():
            pred[test] = fit_probe(features[~test], labels[~test], num_classes, config).predict(features[test])
    return pred


@dataclass
class ClassProbe:
    """The fitted classifier of one dataset, with its own held-out accuracy (the ceiling)."""

    probe: LinearProbe  # fitted on every real item
    num_classes: int
    labels: np.ndarray  # [N] real labels
    heldout_pred: np.ndarray  # [N] k-fold held-out predictions of the real items
    config: ProbeConfig
    fingerprint: str
    cache_path: Path | None = None
    from_cache: bool = False

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.probe.predict(features)

    @property
    def ceiling(self) -> ClassAccuracy:
        return class_accuracy(self.heldout_pred, self.labels)


def class_probe(dataset, extractor: FeatureExtractor, config: ProbeConfig = ProbeConfig(), batch: int = 64,
                cache_dir: str | Path | None = None, use_cache: bool = True, progress: bool = True) -> ClassProbe:
    """The probe of `dataset` in `extractor`'s space: read from the cache, or fitted (on all labelled items)
    and written to it. The real features come from (and go to) the dataset statistics cache."""
    stats = dataset_stats(dataset, extractor, None, batch=batch, cache_dir=cache_dir, use_cache=use_cache,
                          progress=progress)
    keep = stats.labels >= 0
    if not keep.any():
        raise UserInputError("class_acc needs a labelled dataset (dataset.json labels, or one sub-folder per "
                             "class); this one has no labels")
    num_classes = max(int(getattr(dataset, "num_classes", 0) or 0), int(stats.labels.max()) + 1)
    key_fields = {"version": PROBE_VERSION, "dataset": stats.fingerprint, "extractor": extractor.name,
                  "dim": extractor.dim, "items": int(keep.sum()), "classes": num_classes, "probe": asdict(config)}
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()[:24]
    path = Path(cache_dir or default_cache_dir()) / f"classprobe-{extractor.name}-{key}.npz"
    if use_cache and path.is_file():
        try:
            with np.load(path) as z:
                if json.loads(str(z["key"])) == key_fields:
                    probe = LinearProbe(z["center"], z["weight"], z["bias"])
                    return ClassProbe(probe, num_classes, z["labels"], z["heldout_pred"], config, stats.fingerprint,
                                      path, from_cache=True)
        except (OSError, ValueError, KeyError) as e:  # unreadable entry: refit and overwrite it
            logger.warning("ignoring unreadable class-probe cache %s (%s)", path, e)
    features, labels = stats.features[keep], stats.labels[keep]
    heldout = heldout_predictions(features, labels, num_classes, config)
    probe = fit_probe(features, labels, num_classes, config)
    saved: Path | None = None
    if use_cache:
        try:
            _atomic_save_npz(path, center=probe.center, weight=probe.weight, bias=probe.bias,
                             labels=labels, heldout_pred=heldout, key=np.asarray(json.dumps(key_fields)))
            saved = path
        except OSError as e:  # a read-only cache must not stop the metric
            logger.warning("cannot write the class-probe cache %s (%s)", path, e)
    return ClassProbe(probe, num_classes, labels, heldout, config, stats.fingerprint, saved)


def balanced_labels(classes: np.ndarray, num: int) -> np.ndarray:
    """Conditioning class of each of `num` generated images: the classes in turn, so every class gets
    num // K or num // K + 1 images (equal shares, unlike the dataset-proportion draw of the other metrics)."""
    classes = np.asarray(classes, dtype=np.int64)
    return classes[np.arange(num) % len(classes)]


def format_class_acc(result: dict) -> list[str]:
    """Text lines for the `class_acc` entries of a metrics JSON (`MetricsReport.to_dict()`): the overall
    numbers against the real-data ceiling, then one row per class (generated vs real held-out accuracy)."""
    m, pc = result["metrics"]["class_acc"], result["per_class"]["class_acc"]
    lo, hi = min(pc["generated_images"].values()), max(pc["generated_images"].values())
    lines = [f"class_acc {m['value']:.3f}: share of generated images the real-data probe labels with their "
             f"class ({m['classes']} classes x {lo if lo == hi else f'{lo}-{hi}'} images; chance {m['chance']:.3f})",
             f"  ceiling, real images held out: balanced {m['ceiling']:.3f}, plain {m['ceiling_plain']:.3f}"]
    if m.get("generator_classes_without_real_images"):
        lines.append(f"  not evaluated (no real images): {', '.join(m['generator_classes_without_real_images'])}")
    width = max(len("class"), *(len(n) for n in pc["classes"]))
    lines.append(f"  {'class':<{width}}  generated  real held-out  real images")
    for n, acc in pc["classes"].items():
        lines.append(f"  {n:<{width}}  {acc:>9.3f}  {pc['ceiling'][n]:>13.3f}  {pc['real_images'][n]:>11d}")
    return lines
