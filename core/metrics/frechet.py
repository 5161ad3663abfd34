"""Fréchet distance between two Gaussians fitted to feature sets (FID when the features are Inception's).

    FD = |mu1 - mu2|² + tr(S1) + tr(S2) - 2 tr((S1 S2)^½)

The hard part is tr((S1 S2)^½). S1 S2 is not symmetric, and with fewer samples than feature dimensions (the
usual case here: 1280-d EfficientNet features, a few thousand images) both covariances are singular, where a
general matrix square root (`scipy.linalg.sqrtm`) loses accuracy or returns complex noise. We use the
symmetric form instead: S1 S2 = S1^½ (S1^½ S2 S1^½) S1^-½ is similar to the symmetric PSD matrix
M = S1^½ S2 S1^½, so the eigenvalues of S1 S2 are those of M and tr((S1 S2)^½) = Σ sqrt(eig(M)). Both steps are
symmetric eigendecompositions (`eigh`), which are backward stable and need no inverse, so singular covariances
are fine. The scipy route (the reference implementations': sqrtm of the product, retry with eps·I added to the
diagonals when the result is not finite) is kept as `method="scipy"` for comparison.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.linalg

logger = logging.getLogger(__name__)


def mean_cov(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[N, D] features -> (mean [D], covariance [D, D]) in float64, unbiased (N - 1), as the reference FID."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors [N, D] for a covariance, got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix via `eigh`.

    Eigenvalues that rounding pushed slightly below zero are clipped to 0 (a covariance cannot have them).
    """
    a = np.asarray(a, dtype=np.float64)
    a = (a + a.T) / 2  # exact symmetry, so eigh's assumption holds bit-for-bit
    vals, vecs = np.linalg.eigh(a)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """tr((S1 S2)^½) for symmetric PSD S1, S2 through the symmetric form S1^½ S2 S1^½ (see the module notes)."""
    root1 = sqrtm_psd(s1)
    m = root1 @ np.asarray(s2, dtype=np.float64) @ root1
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(eig, 0.0, None)).sum())


def trace_sqrt_product_scipy(s1: np.ndarray, s2: np.ndarray, eps: float = 1e-6) -> float:
    """tr((S1 S2)^½) with `scipy.linalg.sqrtm` of the product, as the reference FID code does.

    When the root is not finite (singular product), retry with eps·I added to both covariances; the tiny
    imaginary part sqrtm returns for a real PSD-like product is dropped.
    """
    s1 = np.asarray(s1, dtype=np.float64)
    s2 = np.asarray(s2, dtype=np.float64)
    root = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(root).all():
        logger.warning("sqrtm of the covariance product is not finite; adding %g to the diagonals", eps)
        offset = np.eye(s1.shape[0]) * eps
        root = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    return float(np.real(np.trace(root)))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     method: str = "eigh") -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2); method "eigh" (default) or "scipy"."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched statistics: mu {mu1.shape} / {mu2.shape}, sigma {sigma1.shape} / {sigma2.shape}")
    if method == "eigh":
        tr_covmean = trace_sqrt_product(sigma1, sigma2)
    elif method == "scipy":
        tr_covmean = trace_sqrt_product_scipy(sigma1, sigma2)
    else:
        raise ValueError(f"unknown method {method!r}; use 'eigh' or 'scipy'")
    diff = mu1 - mu2
    traces = float(np.trace(sigma1) + np.trace(sigma2))
    fd = float(diff @ diff + traces - 2 * tr_covmean)
    # The exact value is >= 0; rounding can leave about -1e-12 * traces for identical statistics. Anything more
    # negative would be a real error and is returned as is, not hidden.
    return 0.0 if -1e-9 * (traces + 1.0) < fd < 0 else fd


def frechet_distance_features(a: np.ndarray, b: np.ndarray, method: str = "eigh") -> float:
    """FD between the Gaussians fitted to two feature sets [N, D] and [M, D]."""
    return frechet_distance(*mean_cov(a), *mean_cov(b), method=method)


def frechet_distance_to_features(mu1: np.ndarray, sigma1: np.ndarray, features: np.ndarray) -> float:
    """FD between N(mu1, sigma1) and the Gaussian fitted to `features` [M, D]; exact, and cheap when M <= D.

    With Y the centred features, S2 = Yᵀ Y / (M-1), and the non-zero eigenvalues of S1 S2 = (S1 Yᵀ)(Y / (M-1))
    are those of the M x M symmetric PSD matrix Y S1 Yᵀ / (M-1) (AB and BA share them). So a few hundred
    generated images need an M x M eigenproblem instead of two D x D ones (D = 1280 or 2048).
    """
    y = np.asarray(features, dtype=np.float64)
    m, d = y.shape
    if m < 2:
        raise ValueError("need at least 2 feature vectors")
    if m > d:  # full rank anyway: the D x D route is the cheaper one
        return frechet_distance(mu1, sigma1, *mean_cov(y))
    mu1, sigma1 = np.asarray(mu1, np.float64), np.asarray(sigma1, np.float64)
    mu2 = y.mean(axis=0)
    yc = y - mu2
    small = yc @ sigma1 @ yc.T / (m - 1)
    tr_covmean = float(np.sqrt(np.clip(np.linalg.eigvalsh((small + small.T) / 2), 0.0, None)).sum())
    diff = mu1 - mu2
    traces = float(np.trace(sigma1) + (yc * yc).sum() / (m - 1))
    fd = float(diff @ diff + traces - 2 * tr_covmean)
    return 0.0 if -1e-9 * (traces + 1.0) < fd < 0 else fd
