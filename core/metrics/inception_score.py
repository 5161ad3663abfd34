"""Inception Score (Salimans et al. 2016) from a classifier's class probabilities.

IS = exp(E_x KL(p(y|x) || p(y))): high when each image is confidently one class (low entropy p(y|x)) and the
classes are varied (high entropy marginal p(y)). It ranges from 1 (every image gives the same distribution)
to the number of classes. As in the reference code, the N images are cut into `splits` consecutive parts,
the score is computed per part (with that part's marginal) and the mean and std over parts are reported.

It is only "the" Inception Score with the probabilities of the standard Inception-v3 (1008 outputs, no
output bias); from any other classifier it is an IS in that classifier's space and is named accordingly.
"""

from __future__ import annotations

import numpy as np


def _xlogy_ratio(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """p * (log p - log q) with the limit 0 where p == 0 (one-hot rows would give 0 * -inf otherwise)."""
    out = np.zeros_like(p)
    mask = p > 0
    out[mask] = p[mask] * (np.log(p[mask]) - np.log(np.broadcast_to(q, p.shape)[mask]))
    return out


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """probs [N, K] (rows sum to 1) -> (mean, std) of the IS over `splits` parts."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < splits:
        raise ValueError(f"need [N, K] probabilities with N >= splits ({splits}), got shape {p.shape}")
    if not np.allclose(p.sum(axis=1), 1.0, atol=1e-3) or (p < 0).any():
        raise ValueError("rows of probs must be probability distributions (non-negative, summing to 1)")
    n = p.shape[0]
    scores = []
    for i in range(splits):
        part = p[i * n // splits:(i + 1) * n // splits]
        marginal = part.mean(axis=0, keepdims=True)  # p(y) over this part
        kl = _xlogy_ratio(part, marginal).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))
