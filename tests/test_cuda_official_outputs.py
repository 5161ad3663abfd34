"""On a real GPU: the official fixtures, converted to .sgxl, reproduce the official outputs with the CUDA kernels.

The official pickles are large and do not travel to a GPU machine, so this reads a folder of converted files
(`sgxl convert <fixture>.pkl --out DIR/<fixture>.sgxl`) next to copies of their `<fixture>_expected.npz`, named by
`SGXL_CUDA_FIXTURES` (bench/device_check.sh sets it when the folder `.devk/` travels). Skips without a GPU or the
folder. On CPU the same equalities are tested against the pickles themselves (test_official_import.py,
test_stylegan2_3.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from core.io.checkpoint import load_checkpoint

pytestmark = pytest.mark.cuda

FOLDER = Path(os.environ.get("SGXL_CUDA_FIXTURES", "/nonexistent"))
# Kernels on the GPU differ from the CPU reference in summation order (and TF32 where torch allows it for
# convolutions); the official float outputs lie in about [-1, 1], so this still catches any wrong tap or layer.
CUDA_TOLERANCE = 2e-2
# (expected key, psi) pairs, by how each family's fixture stored them.
KEYS = {"sgxl": (("img_psi1", 1.0), ("img_psi05", 0.5)), "nvlabs": (("img_psi1.0", 1.0), ("img_psi0.7", 0.7))}


def fixtures() -> list[str]:
    return sorted(p.stem for p in FOLDER.glob("*.sgxl") if (FOLDER / f"{p.stem}_expected.npz").exists())


@pytest.mark.skipif(not fixtures(), reason=f"no converted fixtures in SGXL_CUDA_FIXTURES ({FOLDER})")
@pytest.mark.parametrize("name", fixtures() or ["none"])
@pytest.mark.parametrize("backend", ["triton", "fir_conv", "reference"])
def test_official_fixture_on_cuda(name: str, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SGXL_KERNELS", backend)
    G = load_checkpoint(FOLDER / f"{name}.sgxl", device="cuda").generator.eval()
    e = np.load(FOLDER / f"{name}_expected.npz")
    z = torch.from_numpy(e["z"]).cuda()
    c = torch.from_numpy(e["c"]).float().cuda() if G.c_dim else None
    keys = KEYS["sgxl" if "img_psi1" in e.files else "nvlabs"]
    with torch.no_grad():
        for key, psi in keys:
            img = G(z, c, psi=psi).float().cpu()
            diff = (img - torch.from_numpy(e[key])).abs().max().item()
            print(f"{name} {backend} {key}: max abs diff {diff:.3g}")
            assert diff < CUDA_TOLERANCE, f"{name} {backend} {key}: max abs diff {diff:.3g}"
