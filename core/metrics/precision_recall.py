"""Improved precision and recall (Kynkäänniemi et al. 2019): k-NN manifolds in feature space, k = 3.

The manifold of a feature set is the union of balls around its points, each with the radius of that point's
k-th nearest neighbour within the set (the point itself not counted). Precision = share of generated points
inside the real manifold (are the samples realistic?); recall = share of real points inside the generated
manifold (is the data covered?). Identical sets give exactly (1, 1): each point lies at distance 0 from itself.
"""

from __future__ import annotations

import numpy as np
import torch


def _sq_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[n, d], [m, d] -> [n, m] squared Euclidean distances (float64, clamped at 0 against rounding)."""
    return ((a * a).sum(1, keepdim=True) + (b * b).sum(1)[None] - 2.0 * a @ b.T).clamp_min_(0.0)


def knn_radii(features: torch.Tensor, k: int = 3, batch: int = 1024) -> torch.Tensor:
    """[N] squared distance of every point to its k-th nearest neighbour in the same set (itself excluded)."""
    n = features.shape[0]
    if n <= k:
        raise ValueError(f"a k-NN manifold with k={k} needs more than {k} points, got {n}")
    radii = torch.empty(n, dtype=features.dtype)
    for start in range(0, n, batch):
        d = _sq_distances(features[start:start + batch], features)
        # The (k+1)-th smallest: the smallest is the point itself at distance ~0.
        radii[start:start + batch] = d.kthvalue(k + 1, dim=1).values
    return radii


def manifold_coverage(manifold: torch.Tensor, radii: torch.Tensor, probes: torch.Tensor, batch: int = 1024) -> float:
    """Share of `probes` that lie within at least one ball (centre in `manifold`, squared radius `radii`)."""
    inside = 0
    for start in range(0, probes.shape[0], batch):
        d = _sq_distances(probes[start:start + batch], manifold)
        inside += int((d <= radii[None]).any(dim=1).sum())
    return inside / probes.shape[0]


def precision_recall(real: np.ndarray, gen: np.ndarray, k: int = 3) -> tuple[float, float]:
    """(precision, recall) of generated features [M, d] against real features [N, d]."""
    real_t = torch.as_tensor(np.asarray(real), dtype=torch.float64)
    gen_t = torch.as_tensor(np.asarray(gen), dtype=torch.float64)
    if real_t.ndim != 2 or gen_t.ndim != 2 or real_t.shape[1] != gen_t.shape[1]:
        raise ValueError(f"feature sets must be [N, d] with one d, got {tuple(real_t.shape)} and {tuple(gen_t.shape)}")
    precision = manifold_coverage(real_t, knn_radii(real_t, k), gen_t)
    recall = manifold_coverage(gen_t, knn_radii(gen_t, k), real_t)
    return precision, recall
