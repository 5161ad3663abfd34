"""The bundled demo model (assets/demo.sgxl): loads safely, matches its model card, is the default everywhere."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.cli import DEMO_CHECKPOINT, main
from core.io.checkpoint import load_checkpoint
from core.networks.generator import count_parameters
from core.sampling import to_uint8, ws_from_seeds
from tests.helpers import REPO

MODEL_CARD = REPO / "assets" / "MODEL_CARD.md"


def test_demo_checkpoint_is_small_class_conditional_64px() -> None:
    assert DEMO_CHECKPOINT.exists(), "assets/demo.sgxl is part of the product"
    assert DEMO_CHECKPOINT.stat().st_size <= 25 * 2**20
    ckpt = load_checkpoint(DEMO_CHECKPOINT)
    G = ckpt.generator
    assert G.img_resolution == 64 and G.c_dim == len(ckpt.class_names) >= 30
    assert ckpt.extra_tensors == {}  # G_ema only: no discriminator or optimizer state shipped
    assert "smileys" in " ".join(ckpt.class_names).lower() or "face" in " ".join(ckpt.class_names).lower()


def test_model_card_states_the_checkpoint_facts() -> None:
    card = MODEL_CARD.read_text()
    G = load_checkpoint(DEMO_CHECKPOINT).generator
    total = count_parameters(G)["total"]
    assert f"{total:,}" in card, f"the card must state the parameter count {total:,}"
    for needed in ("Apache", "Noto", "kimg", "fd_effnet", "sgxl train", "Limitations"):
        assert needed in card, needed
    for image in re.findall(r"\]\(([^)]+\.png)\)", card):
        assert (MODEL_CARD.parent / image).exists(), image


def test_generate_defaults_to_the_demo(tmp_path: Path, capsys) -> None:
    out = tmp_path / "grid.png"
    assert main(["generate", "--seeds", "0-3", "--class", "0", "--out", str(out), "--device", "cpu"]) == 0
    assert "random-init" not in capsys.readouterr().err
    G = load_checkpoint(DEMO_CHECKPOINT).generator
    with torch.no_grad():
        # The same batch as the grid's: batch size changes the float rounding (a 1-level difference at a pixel
        # or two of the demo), so only the same computation is compared bit for bit.
        first = to_uint8(G.synthesis(ws_from_seeds(G, [0, 1, 2, 3], 0, 1.0)))[0]
    grid = np.asarray(Image.open(out).convert("RGB"))
    assert np.array_equal(grid[:64, :64], first)


def test_demo_classes_look_different() -> None:
    """Trained class conditioning: class means differ more than seeds within a class (random init: they do not)."""
    G = load_checkpoint(DEMO_CHECKPOINT).generator
    with torch.no_grad():
        per_class = []
        for c in range(min(G.c_dim, 8)):
            imgs = G.synthesis(ws_from_seeds(G, list(range(6)), c, 1.0))  # [6, 3, 64, 64]
            per_class.append(imgs.mean(dim=(2, 3)))  # mean colour per image [6, 3]
    colours = torch.stack(per_class)  # [classes, seeds, 3]
    between = colours.mean(dim=1).std(dim=0).mean()
    within = colours.std(dim=1).mean()
    assert between > 0.5 * within, (between, within)


def test_demo_generates_distinct_images_per_class() -> None:
    """Every class gives its own image for the same seed, and its own class-mean image (psi 0)."""
    G = load_checkpoint(DEMO_CHECKPOINT).generator
    classes = list(range(G.c_dim))
    with torch.no_grad():
        same_seed = torch.cat([G.synthesis(ws_from_seeds(G, [0], c, 1.0)) for c in classes])  # [C, 3, 64, 64]
        class_means = torch.cat([G.synthesis(ws_from_seeds(G, [0], c, 0.0)) for c in classes])
    off_diagonal = ~torch.eye(len(classes), dtype=torch.bool)
    for imgs in (same_seed, class_means):
        flat = imgs.flatten(1)
        distance = (flat[:, None] - flat[None]).abs().mean(dim=2)  # [C, C] mean abs difference in [-1, 1] units
        assert distance[off_diagonal].min() > 0.01, distance[off_diagonal].min()
