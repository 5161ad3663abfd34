"""Ranges of user-facing values, shared by the CLI's checks and help and the explorer's sliders.

Kept free of torch and numpy: `sgxl --help` imports this module, and must stay fast.
"""

from __future__ import annotations

import math

from core.errors import UserInputError

# Truncation psi: 1 = no truncation, 0 = the class's mean w, negative values mirror w through the mean.
# The official StyleGAN3 visualizer's slider spans -1..2; outside it images are no longer meaningful
# (|psi| > 2 extrapolates the latent far off the manifold the generator was trained on).
PSI_RANGE = (-1.0, 2.0)
PSI_HELP = f"truncation psi toward the class mean, {PSI_RANGE[0]:g} to {PSI_RANGE[1]:g} (default 1: none)"


def check_psi(psi: float, what: str = "--trunc") -> float:
    """`psi` if it lies in PSI_RANGE, else UserInputError saying the range."""
    lo, hi = PSI_RANGE
    if not (isinstance(psi, (int, float)) and math.isfinite(psi) and lo <= psi <= hi):
        raise UserInputError(f"{what} {psi} is out of range: truncation psi must be between {lo:g} and {hi:g} "
                             "(1 = no truncation, 0 = the class mean)")
    return float(psi)
