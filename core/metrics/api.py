"""`compute_metrics`: generate images with G, extract features, compare them with a dataset's.

The one entry point used by `sgxl metrics`, the trainer's snapshot hook and the explorer. Metric names say
which feature space they were computed in (never call a number FID unless it is Inception's; docs/PAPER.md):

    requested          reported as                             features
    fd_effnet          fd_effnet                               EfficientNet-lite0 (offline default)
    fid                fid                                     Inception-v3 file (user-provided)
    kid | kid_effnet   kid_effnet (+ _std)                     EfficientNet-lite0
    kid_inception      kid_inception (+ _std)                  Inception-v3 file
    pr | pr_effnet     precision_effnet, recall_effnet         EfficientNet-lite0
    pr_inception       precision_inception, recall_inception   Inception-v3 file
    is                 is (+ _std)                             Inception-v3 file, 1008-way softmax, no bias
    is_effnet          is_effnet (+ _std)                      EfficientNet-lite0 ImageNet classifier
    class_acc          class_acc (+ ceiling, per class)        linear probe on EfficientNet-lite0 (class_acc.py)

Generated classes follow the dataset's label distribution (as the official metrics draw random dataset
labels), except for class_acc, which generates its own images in equal numbers per class; the generated
image is turned into uint8 as the official metric code does, round(x·127.5 + 127.5).
With `per_class`, FD metrics are also computed per class (generated vs real images of that class) and averaged
over the classes that have at least 2 images on both sides.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from core.errors import UserInputError
from core.metrics.class_acc import ClassProbe, ProbeConfig, balanced_labels, class_accuracy, class_probe
from core.metrics.features import FeatureExtractor, load_extractor
from core.metrics.frechet import frechet_distance_to_features, mean_cov
from core.metrics.inception_score import inception_score
from core.metrics.kid import kernel_inception_distance
from core.metrics.precision_recall import precision_recall
from core.metrics.stats import dataset_stats


@dataclass(frozen=True)
class MetricSpec:
    kind: str  # "fd", "kid", "pr", "is", "class_acc"
    space: str  # feature extractor name: "effnet" or "inception"

    @property
    def keys(self) -> list[str]:
        """The names this metric is reported under."""
        if self.kind == "fd":
            return ["fid" if self.space == "inception" else f"fd_{self.space}"]
        if self.kind == "pr":
            return [f"precision_{self.space}", f"recall_{self.space}"]
        if self.kind == "is":
            return ["is" if self.space == "inception" else f"is_{self.space}"]
        if self.kind == "class_acc":
            return ["class_acc"]
        return [f"{self.kind}_{self.space}"]


METRICS: dict[str, MetricSpec] = {
    "fd_effnet": MetricSpec("fd", "effnet"),
    "fid": MetricSpec("fd", "inception"),
    "fd_inception": MetricSpec("fd", "inception"),
    "kid": MetricSpec("kid", "effnet"),
    "kid_effnet": MetricSpec("kid", "effnet"),
    "kid_inception": MetricSpec("kid", "inception"),
    "pr": MetricSpec("pr", "effnet"),
    "pr_effnet": MetricSpec("pr", "effnet"),
    "pr_inception": MetricSpec("pr", "inception"),
    "is": MetricSpec("is", "inception"),
    "is_inception": MetricSpec("is", "inception"),
    "is_effnet": MetricSpec("is", "effnet"),
    "class_acc": MetricSpec("class_acc", "effnet"),
}


def parse_metrics(metrics: str | Sequence[str]) -> list[MetricSpec]:
    """'fd_effnet,kid,pr' or a list of names -> specs (duplicates removed, order kept)."""
    names = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    specs: list[MetricSpec] = []
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        if name not in METRICS:
            raise UserInputError(f"unknown metric {raw!r}; choose from {', '.join(METRICS)}")
        if METRICS[name] not in specs:
            specs.append(METRICS[name])
    if not specs:
        raise UserInputError("no metrics given")
    return specs


@dataclass
class MetricsReport:
    values: dict[str, float]  # every reported number, e.g. {"fd_effnet": 12.3, "kid_effnet": 0.01, ...}
    feature_spaces: dict[str, str]  # metric key -> feature space in words
    per_class: dict[str, dict[str, float | None]] = field(default_factory=dict)  # "fd_effnet" -> {class: FD}
    details: dict[str, dict] = field(default_factory=dict)  # extra JSON fields of a metric (class_acc: ceiling...)
    per_class_details: dict[str, dict] = field(default_factory=dict)  # extra fields of its per-class entry
    num_gen: int = 0
    num_real: int = 0
    seconds: float = 0.0
    settings: dict = field(default_factory=dict)

    def flat(self) -> dict[str, float]:
        """Numbers only (for log lines): the values, `<fd>_class_mean` when per-class FD was computed and
        `class_acc_ceiling` (class_acc is itself the mean over classes, so it gets no `_class_mean`)."""
        out = dict(self.values)
        for key, classes in self.per_class.items():
            if key == "class_acc":
                continue
            done = [v for v in classes.values() if v is not None]
            out[f"{key}_class_mean"] = float(np.mean(done)) if done else float("nan")
        for key, extra in self.details.items():
            if "ceiling" in extra:
                out[f"{key}_ceiling"] = extra["ceiling"]
        return out

    def to_dict(self) -> dict:
        metrics = {}
        for key, value in self.values.items():
            if key.endswith("_std"):
                continue
            entry: dict = {"value": value, "feature_space": self.feature_spaces[key]}
            if f"{key}_std" in self.values:
                entry["std"] = self.values[f"{key}_std"]
            metrics[key] = {**entry, **self.details.get(key, {})}
        per_class = {}
        for key, classes in self.per_class.items():
            done = [v for v in classes.values() if v is not None]
            per_class[key] = {"feature_space": self.feature_spaces[key],
                              "mean": float(np.mean(done)) if done else float("nan"), "classes": classes,
                              **self.per_class_details.get(key, {})}
        return {"metrics": metrics, "per_class": per_class, "num_gen": self.num_gen, "num_real": self.num_real,
                "seconds": round(self.seconds, 2), **self.settings}


def generated_to_uint8(img: torch.Tensor) -> torch.Tensor:
    """Generator output [B, 3, H, W] in about [-1, 1] -> uint8, rounded as the official metric code does."""
    return (img * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def generation_labels(G, dataset_labels: np.ndarray, num: int, seed: int) -> np.ndarray | None:
    """Class of every generated image: the dataset's label distribution, shuffled (None when unconditional)."""
    if G.c_dim == 0:
        return None
    labels = np.asarray(dataset_labels, dtype=np.int64)
    labels = labels[labels >= 0]
    if labels.size == 0:  # unlabelled data for a conditional G: classes uniformly
        labels = np.arange(G.c_dim)
    if labels.max() >= G.c_dim:
        raise UserInputError(f"the dataset has labels up to {labels.max()} but the generator has {G.c_dim} classes")
    rng = np.random.RandomState(seed)
    reps = -(-num // labels.size)  # tiles of the label list: class shares match the dataset's
    return np.concatenate([rng.permutation(labels) for _ in range(reps)])[:num]


@torch.no_grad()
def generated_features(G, extractors: dict[str, FeatureExtractor], want_probs: set[str], num: int,
                       labels: np.ndarray | None, psi: float = 1.0, seed: int = 0, batch: int = 32,
                       device: torch.device | str = "cpu", progress: bool = True
                       ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Generate `num` images batch by batch and run each extractor on them (images are not kept).

    -> (features per extractor name [num, D], probabilities per extractor name in `want_probs` [num, K]).
    """
    from tqdm import tqdm

    z_all = torch.from_numpy(np.random.RandomState(seed).randn(num, G.z_dim)).float()
    feats: dict[str, list] = {n: [] for n in extractors}
    probs: dict[str, list] = {n: [] for n in want_probs}
    for start in tqdm(range(0, num, batch), desc="generating + features", unit="batch", disable=not progress):
        z = z_all[start:start + batch].to(device)
        c = torch.from_numpy(labels[start:start + batch]).to(device) if labels is not None else None
        images = generated_to_uint8(G(z, c, psi=psi))
        for name, ex in extractors.items():
            f, p = ex.extract(images, want_probs=name in want_probs)
            feats[name].append(f.numpy().astype(np.float32))
            if p is not None:
                probs[name].append(p.numpy())
    return ({n: np.concatenate(v) for n, v in feats.items()}, {n: np.concatenate(v) for n, v in probs.items()})


def real_image_count(num: int, num_real: int | str | None, dataset_size: int) -> int:
    """How many dataset images the statistics use: `num_real` (a count or "all"), by default as many as the
    generated images (`num`); never more than the dataset holds."""
    if num_real is None:
        return min(num, dataset_size)
    if num_real == "all":
        return dataset_size
    if isinstance(num_real, bool) or not isinstance(num_real, int) or num_real < 2:
        raise UserInputError(f"num_real must be a count of at least 2 or 'all', not {num_real!r}")
    return min(num_real, dataset_size)


def compute_metrics(
    G,
    dataset,
    metrics: str | Sequence[str] = ("fd_effnet",),
    num: int = 10000,
    num_real: int | str | None = None,
    psi: float = 1.0,
    seed: int = 0,
    batch: int = 32,
    per_class: bool = False,
    device: str | torch.device | None = None,
    inception_weights: str | Path | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    progress: bool = True,
    extractors: dict[str, FeatureExtractor] | None = None,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    is_splits: int = 10,
) -> MetricsReport:
    """Metrics of generator `G` against `dataset` (items: (uint8 [3, R, R], label)).

    num: generated images; num_real: dataset images, a fixed random subset of that many (default: as many as
    `num`, so a quick `--num 200` does not extract features of a whole large dataset), or "all"; each subset's
    features are cached per dataset and count. class_acc always fits its probe on every labelled dataset image,
    so that the probe is one per dataset.
    extractors: a dict to reuse loaded feature networks across calls (filled in as needed).
    """
    t0 = time.time()
    specs = parse_metrics(metrics)
    if num < 2:
        raise UserInputError("--num must be at least 2")
    real_count = real_image_count(num, num_real, len(dataset))
    want_class = any(s.kind == "class_acc" for s in specs)
    if want_class and G.c_dim == 0:
        raise UserInputError("class_acc needs a class-conditional generator; this model is unconditional "
                             "(it has no classes to recognise)")
    device = torch.device(device) if device is not None else next(G.parameters()).device
    extractors = extractors if extractors is not None else {}
    for space in dict.fromkeys(s.space for s in specs):  # load the inception file first: fail before any work
        if space not in extractors:
            extractors[space] = load_extractor(space, device, inception_weights)
    used = {s.space: extractors[s.space] for s in specs}
    want_probs = {s.space for s in specs if s.kind == "is"}
    if want_probs and num < is_splits:
        raise UserInputError(f"the Inception Score needs --num >= {is_splits} (its number of splits)")

    real = {name: dataset_stats(dataset, ex, real_count, batch=batch, cache_dir=cache_dir,
                                use_cache=use_cache, progress=progress)
            for name, ex in used.items() if any(s.space == name and s.kind not in ("is", "class_acc") for s in specs)}
    dataset_labels = np.asarray(getattr(dataset, "labels", None) if getattr(dataset, "labels", None) is not None
                                else [dataset[i][1] for i in range(len(dataset))], dtype=np.int64)
    labels = generation_labels(G, dataset_labels, num, seed)
    # class_acc's probe before any image is generated: unlabelled data fails here, a cached probe costs nothing.
    probe = class_probe(dataset, used["effnet"], ProbeConfig(), batch=max(batch, 64), cache_dir=cache_dir,
                        use_cache=use_cache, progress=progress) if want_class else None
    if probe is not None and num < len(np.unique(probe.labels)):
        raise UserInputError(f"class_acc needs --num >= {len(np.unique(probe.labels))} (one generated image per "
                             "class at least)")
    main_specs = [s for s in specs if s.kind != "class_acc"]
    class_result = None
    was_training = G.training
    G.eval()
    try:
        gen, gen_probs = {}, {}
        if main_specs:
            gen, gen_probs = generated_features(G, {s.space: used[s.space] for s in main_specs}, want_probs, num,
                                                labels, psi, seed, batch, device, progress)
        if probe is not None:
            class_result = _class_acc(G, dataset, probe, used["effnet"], num, psi, seed, batch, device, progress)
    finally:
        G.train(was_training)

    values: dict[str, float] = {}
    spaces: dict[str, str] = {}
    per_class_out: dict[str, dict[str, float | None]] = {}
    for spec in specs:
        ex = used[spec.space]
        for key in spec.keys:
            spaces[key] = ex.probs_description if spec.kind == "is" else ex.description
        if spec.kind == "fd":
            key = spec.keys[0]
            stats = real[spec.space]
            values[key] = frechet_distance_to_features(stats.mu, stats.sigma, gen[spec.space])
            if per_class:
                per_class_out[key] = _per_class_fd(stats.features, stats.labels, gen[spec.space], labels,
                                                   getattr(dataset, "class_names", None))
        elif spec.kind == "kid":
            result = kernel_inception_distance(real[spec.space].features, gen[spec.space], kid_subsets,
                                               kid_subset_size, seed)
            values[spec.keys[0]], values[f"{spec.keys[0]}_std"] = result.mean, result.std
        elif spec.kind == "pr":
            values[spec.keys[0]], values[spec.keys[1]] = precision_recall(real[spec.space].features, gen[spec.space])
        elif spec.kind == "is":
            mean, std = inception_score(gen_probs[spec.space], is_splits)
            values[spec.keys[0]], values[f"{spec.keys[0]}_std"] = mean, std
    details: dict[str, dict] = {}
    per_class_details: dict[str, dict] = {}
    if class_result is not None:
        values["class_acc"], spaces["class_acc"] = class_result.value, class_result.space
        details["class_acc"] = class_result.details
        per_class_out["class_acc"] = class_result.per_class
        per_class_details["class_acc"] = class_result.per_class_details
    for key in list(values):
        if key.endswith("_std"):
            spaces[key] = spaces[key[:-4]]
    num_real_used = max([s.features.shape[0] for s in real.values()]
                        + ([class_result.num_real] if class_result else []), default=0)
    return MetricsReport(values, spaces, per_class_out, details, per_class_details, num_gen=num,
                         num_real=num_real_used, seconds=time.time() - t0, settings={"truncation": psi, "seed": seed})


@dataclass
class _ClassAccResult:
    value: float
    space: str
    details: dict
    per_class: dict[str, float | None]
    per_class_details: dict
    num_real: int


def _class_acc(G, dataset, probe: ClassProbe, extractor: FeatureExtractor, num: int, psi: float, seed: int,
               batch: int, device: torch.device, progress: bool) -> _ClassAccResult:
    """class_acc (class_acc.py): the dataset's probe labels `num` images generated in equal numbers per class
    (the classes that have real images), with the same seeds -> z as the other metrics."""
    classes = np.unique(probe.labels)  # generation_labels has checked that they are all < G.c_dim
    labels = balanced_labels(classes, num)
    feats, _ = generated_features(G, {extractor.name: extractor}, set(), num, labels, psi, seed, batch, device,
                                  progress)
    acc = class_accuracy(probe.predict(feats[extractor.name]), labels)
    ceiling = probe.ceiling
    names = getattr(dataset, "class_names", None) or []

    def name(k: int) -> str:
        return names[k] if k < len(names) else str(k)

    missing = [name(k) for k in range(G.c_dim) if k not in set(classes.tolist())]
    details = {"plain": acc.plain, "ceiling": ceiling.balanced, "ceiling_plain": ceiling.plain,
               "chance": 1.0 / len(classes), "classes": len(classes), "images_per_class": num // len(classes),
               "class_draw": "equal number per class (class i % K for image i)", "classifier": probe.config.describe(),
               "generator_classes_without_real_images": missing}
    per_class = {name(k): acc.per_class[int(k)] for k in classes}
    per_class_details = {"ceiling": {name(k): ceiling.per_class[int(k)] for k in classes},
                         "real_images": {name(k): ceiling.counts[int(k)] for k in classes},
                         "generated_images": {name(k): acc.counts[int(k)] for k in classes}}
    space = f"linear probe fitted on the real dataset's {extractor.description}"
    return _ClassAccResult(acc.balanced, space, details, per_class, per_class_details, len(probe.labels))


def _per_class_fd(real_feats: np.ndarray, real_labels: np.ndarray, gen_feats: np.ndarray,
                  gen_labels: np.ndarray | None, class_names: list[str] | None) -> dict[str, float | None]:
    """FD per class; None for a class with fewer than 2 real or generated images."""
    if gen_labels is None:
        raise UserInputError("per-class metrics need a class-conditional generator")
    out: dict[str, float | None] = {}
    for k in np.unique(real_labels[real_labels >= 0]):
        name = class_names[k] if class_names and k < len(class_names) else str(int(k))
        r, g = real_feats[real_labels == k], gen_feats[gen_labels == k]
        out[name] = frechet_distance_to_features(*mean_cov(r), g) if len(r) >= 2 and len(g) >= 2 else None
    return out
