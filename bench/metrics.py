"""Metric costs and noise floor: feature-extraction img/s per input size, and FD between two halves of a dataset.

    python bench/metrics.py [--data /tmp/emoji64.zip] [--res 64,256] [--batch 32] [--repeats 3] [--splits 5]

1. Throughput: images/s of each available feature network (EfficientNet-lite0 always; Inception-v3 when
   $SGXL_INCEPTION_WEIGHTS names the file) on uint8 inputs of each size (median of `--repeats` timed runs
   after one warm-up). The net always sees 224² (299² for Inception), so the input size only changes the resize.
2. Noise floor: FD (and KID, precision/recall) between two random disjoint halves of a real dataset, over
   `--splits` random splits, at the full half size and at smaller sample sizes. FD is biased upward at small N,
   so a model's FD at that N cannot be read closer to 0 than this floor.

Prints tables and writes bench/results/metrics.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import environment, median_seconds, print_table, write_json  # noqa: E402
from core.data.dataset import ImageDataset  # noqa: E402
from core.errors import UserInputError  # noqa: E402
from core.metrics.features import EffNetExtractor, load_extractor  # noqa: E402
from core.metrics.frechet import frechet_distance_to_features, mean_cov  # noqa: E402
from core.metrics.kid import kernel_inception_distance  # noqa: E402
from core.metrics.precision_recall import precision_recall  # noqa: E402
from core.metrics.stats import dataset_stats  # noqa: E402


def throughput(extractors: dict, sizes: list[int], batch: int, repeats: int, device: torch.device) -> list[dict]:
    """Median seconds per batch; the sizes take turns within each repeat, so a load change on a shared
    machine affects them alike instead of biasing whichever ran last."""
    cases = [(name, ex, res, torch.randint(0, 256, (batch, 3, res, res), dtype=torch.uint8, device=device))
             for name, ex in extractors.items() for res in sizes]
    times: dict[tuple[str, int], list[float]] = {(name, res): [] for name, _, res, _ in cases}
    for _ in range(repeats):
        for name, ex, res, x in cases:
            times[(name, res)].append(median_seconds(lambda ex=ex, x=x: ex.extract(x), repeats=1,
                                                     warmup=1 if not times[(name, res)] else 0,
                                                     cuda=device.type == "cuda"))
    rows = []
    for (name, res), ts in times.items():
        sec = statistics.median(ts)
        rows.append({"features": name, "input": f"{res}x{res}", "batch": batch, "runs": len(ts),
                     "median_s": round(sec, 3), "img_per_s": round(batch / sec, 1),
                     "ms_per_img": round(1000 * sec / batch, 1)})
    return rows


def noise_floor(features: np.ndarray, sizes: list[int], splits: int, kid_subset: int) -> list[dict]:
    """FD / KID / P-R between disjoint random halves (each of `n` items) over `splits` random splits."""
    rows = []
    for n in sizes:
        fds, kids, precs, recs = [], [], [], []
        for s in range(splits):
            perm = np.random.RandomState(1000 + s).permutation(len(features))
            a, b = features[perm[:n]], features[perm[n:2 * n]]
            fds.append(frechet_distance_to_features(*mean_cov(a), b))  # exact; M x M when n <= D
            kids.append(kernel_inception_distance(a, b, num_subsets=50, max_subset_size=kid_subset, seed=s).mean)
            p, r = precision_recall(a, b)
            precs.append(p)
            recs.append(r)
        rows.append({"n_per_half": n, "splits": splits,
                     "fd_effnet_mean": round(float(np.mean(fds)), 3), "fd_effnet_std": round(float(np.std(fds)), 3),
                     "kid_effnet_mean": round(float(np.mean(kids)), 5), "kid_effnet_std": round(float(np.std(kids)), 5),
                     "precision_mean": round(float(np.mean(precs)), 3), "recall_mean": round(float(np.mean(recs)), 3)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/tmp/emoji64.zip", help="real dataset for the noise floor")
    ap.add_argument("--res", default="64,256", help="input sizes for the throughput table")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--splits", type=int, default=5, help="random half/half splits for the noise floor")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--cache-dir", help="dataset statistics cache (default: the library's)")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)

    extractors: dict = {"effnet": EffNetExtractor(device)}
    try:
        extractors["inception"] = load_extractor("inception", device)
    except UserInputError:
        print("note: no Inception file ($SGXL_INCEPTION_WEIGHTS unset): timing EfficientNet-lite0 only")
    rows = throughput(extractors, [int(r) for r in args.res.split(",")], args.batch, args.repeats, device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    print_table(rows, ["features", "input", "batch", "runs", "median_s", "img_per_s", "ms_per_img"])
    print(f"(load average {load:.1f} on {os.cpu_count()} CPUs when timed)" if load is not None else "")

    dataset = ImageDataset(args.data)
    t0 = time.time()
    stats = dataset_stats(dataset, extractors["effnet"], batch=args.batch, cache_dir=args.cache_dir)
    extract_s = time.time() - t0
    half = len(dataset) // 2
    sizes = sorted({n for n in (100, 250, 500) if n < half} | {half})
    floor = noise_floor(stats.features, sizes, args.splits, kid_subset=min(1000, half))
    print(f"\nnoise floor: {dataset} ({len(dataset)} images, features "
          f"{'from cache' if stats.from_cache else f'extracted in {extract_s:.0f} s'})")
    print_table(floor, ["n_per_half", "splits", "fd_effnet_mean", "fd_effnet_std", "kid_effnet_mean",
                        "kid_effnet_std", "precision_mean", "recall_mean"])
    path = write_json("metrics", {
        "benchmark": "metrics", "env": {**environment(), "load_average_1min": load}, "throughput": rows,
        "noise_floor": {"dataset": str(args.data), "num_images": len(dataset), "resolution": dataset.resolution,
                        "feature_space": extractors["effnet"].description, "rows": floor,
                        "dataset_extraction_s": None if stats.from_cache else round(extract_s, 1)}})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
