"""Which classifier should class_acc use? Real-data held-out accuracy of candidate classifiers on a dataset's
EfficientNet-lite0 pooled features (the features class_acc and fd_effnet use).

    python bench/class_probe.py --data /tmp/emoji16.zip,/tmp/emoji32.zip,/tmp/emoji64.zip [--folds 5]

Build the data with `sgxl dataset --preset noto-emoji --res N --labels subgroup --dest /tmp/emojiN.zip`.
Every real image is predicted once by a classifier fitted on the other folds of a stratified k-fold split
(`core.metrics.class_acc.stratified_folds`; the emoji classes hold 11 to 258 images, so a single split would
leave one or two test images in the small ones). Reported: plain accuracy (share of all images), balanced
accuracy (mean of the per-class accuracies: class_acc generates equal numbers per class, so this is the
ceiling it is compared with), the worst class, and the median seconds of one fit (+ predict).

Candidates: k-NN (cosine on centred features, k = 1, 5, 10, similarity-weighted votes), nearest class mean
(cosine), ridge regression onto one-hot targets (class-balanced sample weights), the shrinkage LDA of
core/metrics/class_acc.py at several shrinkages, and with --logreg multinomial logistic regression (L-BFGS,
class-balanced, L2 on standardised features; slow on a CPU: minutes per fit). Prints a table and writes
bench/results/class_probe.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import environment, print_table, write_json  # noqa: E402
from core.data.dataset import ImageDataset  # noqa: E402
from core.metrics.class_acc import ProbeConfig, class_accuracy, fit_probe, stratified_folds  # noqa: E402
from core.metrics.features import EffNetExtractor  # noqa: E402
from core.metrics.stats import dataset_stats  # noqa: E402

Fit = Callable[[np.ndarray, np.ndarray, int], Callable[[np.ndarray], np.ndarray]]


def knn(k: int) -> Fit:
    def fit(x: np.ndarray, y: np.ndarray, num_classes: int) -> Callable[[np.ndarray], np.ndarray]:
        mu = x.mean(axis=0)

        def unit(a: np.ndarray) -> np.ndarray:
            a = a - mu
            return a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-12)

        bank = unit(x)

        def predict(xt: np.ndarray) -> np.ndarray:
            sim = unit(xt) @ bank.T
            nn = np.argsort(-sim, axis=1)[:, :k]
            rows = np.arange(len(xt))[:, None]
            votes = np.zeros((len(xt), num_classes))
            # Similarity-weighted votes; the rank term breaks exact ties toward the nearer neighbour.
            np.add.at(votes, (np.broadcast_to(rows, nn.shape), y[nn]), sim[rows, nn] + 1e-6 * (k - np.arange(k)))
            return votes.argmax(axis=1)

        return predict

    return fit


def nearest_mean(x: np.ndarray, y: np.ndarray, num_classes: int) -> Callable[[np.ndarray], np.ndarray]:
    mu = x.mean(axis=0)
    means = np.stack([(x[y == c] - mu).mean(axis=0) if (y == c).any() else np.zeros(x.shape[1])
                      for c in range(num_classes)])
    means /= np.linalg.norm(means, axis=1, keepdims=True) + 1e-12
    return lambda xt: ((xt - mu) @ means.T).argmax(axis=1)


def lda(shrinkage: float) -> Fit:
    config = replace(ProbeConfig(), shrinkage=shrinkage)
    return lambda x, y, num_classes: fit_probe(x, y, num_classes, config).predict


def balance_weights(y: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-item weight N / (K · n_class): every class weighs the same in a fit."""
    return len(y) / (num_classes * np.bincount(y, minlength=num_classes)[y])


def ridge(lam: float) -> Fit:
    def fit(x: np.ndarray, y: np.ndarray, num_classes: int) -> Callable[[np.ndarray], np.ndarray]:
        mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-6
        xs = (x - mu) / sd
        w = balance_weights(y, num_classes)[:, None]
        targets = np.eye(num_classes)[y]
        xm, tm = (w * xs).sum(0) / w.sum(), (w * targets).sum(0) / w.sum()
        xc = xs - xm
        coef = np.linalg.solve(xc.T @ (w * xc) + lam * len(y) * np.eye(x.shape[1]), xc.T @ (w * (targets - tm)))
        return lambda xt: (((xt - mu) / sd - xm) @ coef).argmax(axis=1)

    return fit


def logreg(l2: float, max_iter: int = 300) -> Fit:
    def fit(x: np.ndarray, y: np.ndarray, num_classes: int) -> Callable[[np.ndarray], np.ndarray]:
        mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-6
        xs, yt = torch.from_numpy((x - mu) / sd), torch.from_numpy(y)
        w = torch.from_numpy(len(y) / (num_classes * np.maximum(np.bincount(y, minlength=num_classes), 1)))
        weight = torch.zeros(x.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
        bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([weight, bias], max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(xs @ weight + bias, yt, weight=w)
            loss = loss + 0.5 * l2 * (weight * weight).sum()
            loss.backward()
            return loss

        opt.step(closure)
        coef, b = weight.detach().numpy(), bias.detach().numpy()
        return lambda xt: (((xt - mu) / sd) @ coef + b).argmax(axis=1)

    return fit


def evaluate(fit: Fit, x: np.ndarray, y: np.ndarray, folds: int) -> dict:
    num_classes = int(y.max()) + 1
    fold = stratified_folds(y, folds, seed=0)
    pred = np.empty_like(y)
    seconds = []
    for f in range(folds):
        test = fold == f
        t0 = time.perf_counter()
        pred[test] = fit(x[~test], y[~test], num_classes)(x[test])
        seconds.append(time.perf_counter() - t0)
    acc = class_accuracy(pred, y)
    return {"plain": round(acc.plain, 3), "balanced": round(acc.balanced, 3),
            "worst_class": round(min(acc.per_class.values()), 3), "fit_s": round(statistics.median(seconds), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/tmp/emoji16.zip,/tmp/emoji32.zip,/tmp/emoji64.zip")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--shrinkage", default="0.1,0.3,0.6", help="LDA shrinkages")
    ap.add_argument("--ridge", default="0.1,1", help="ridge strengths (times N, on standardised features)")
    ap.add_argument("--logreg", default="", help="logistic-regression L2 strengths, e.g. 0.01,0.1 (slow)")
    ap.add_argument("--cache-dir", help="dataset statistics cache (default: $SGXL_CACHE_DIR or ~/.cache/sgxl)")
    args = ap.parse_args()

    candidates: dict[str, Fit] = {"knn k=1": knn(1), "knn k=5": knn(5), "knn k=10": knn(10),
                                  "nearest class mean": nearest_mean}
    for lam in filter(None, args.ridge.split(",")):
        candidates[f"ridge {float(lam):g} balanced"] = ridge(float(lam))
    for alpha in filter(None, args.shrinkage.split(",")):
        candidates[f"LDA shrinkage {float(alpha):g}"] = lda(float(alpha))
    for l2 in filter(None, args.logreg.split(",")):
        candidates[f"logreg l2={float(l2):g} balanced"] = logreg(float(l2))

    extractor = EffNetExtractor()
    rows = []
    for data in args.data.split(","):
        dataset = ImageDataset(data)
        stats = dataset_stats(dataset, extractor, cache_dir=args.cache_dir)
        x, y = stats.features.astype(np.float64), stats.labels
        counts = np.bincount(y)
        print(f"{data}: {len(y)} images, {len(counts)} classes ({counts.min()}..{counts.max()} per class), "
              f"{dataset.resolution}x{dataset.resolution}", flush=True)
        for name, fit in candidates.items():
            row = {"data": Path(data).name, "classifier": name, **evaluate(fit, x, y, args.folds)}
            print(f"  {name:<28} plain {row['plain']:.3f}  balanced {row['balanced']:.3f}  "
                  f"worst {row['worst_class']:.3f}  fit {row['fit_s']:.2f} s", flush=True)
            rows.append(row)
    print()
    print_table(rows, ["data", "classifier", "plain", "balanced", "worst_class", "fit_s"])
    path = write_json("class_probe", {"environment": environment(), "folds": args.folds, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
