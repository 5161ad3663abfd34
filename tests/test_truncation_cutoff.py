"""Truncation cutoff (psi on the first N ws only): core API, `sgxl generate/video --trunc-cutoff`, official semantics.

The official mappings (StyleGAN2/3 and StyleGAN-XL) truncate `x[:, :truncation_cutoff]` toward the class's
w_avg and leave the other ws as mapped; the StyleGAN3 visualizer's "cutoff" slider feeds that argument.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from PIL import Image

from core.cli import main
from core.errors import UserInputError
from core.io.checkpoint import load_checkpoint, save_checkpoint
from core.sampling import class_input, to_uint8, truncate, ws_from_seeds, z_from_seed
from core.video import interpolation_frames
from tests.helpers import OFFICIAL_FIXTURES, make_tiny_generator


@pytest.fixture(scope="module")
def G():
    return make_tiny_generator(32, c_dim=5, seed=3)


@pytest.fixture
def ckpt_path(G, tmp_path: Path) -> Path:
    return save_checkpoint(tmp_path / "tiny.sgxl", G, {"kimg": 3})


def test_cutoff_truncates_only_the_first_ws(G) -> None:
    seeds, cls, psi = [0, 1, 2], 3, 0.5
    untruncated = ws_from_seeds(G, seeds, cls, 1.0)
    full = ws_from_seeds(G, seeds, cls, psi)
    assert torch.equal(ws_from_seeds(G, seeds, cls, psi, cutoff=None), full)
    assert torch.equal(ws_from_seeds(G, seeds, cls, psi, cutoff=G.num_ws), full)  # all ws: bit for bit the old path
    assert torch.equal(ws_from_seeds(G, seeds, cls, psi, cutoff=0), untruncated)
    for k in (1, 4, G.num_ws - 1):
        ws = ws_from_seeds(G, seeds, cls, psi, cutoff=k)
        assert torch.equal(ws[:, :k], full[:, :k])  # the truncated part: the same arithmetic
        assert torch.equal(ws[:, k:], untruncated[:, k:])  # the rest: as mapped
    # psi 1 with any cutoff is no truncation at all.
    assert torch.equal(ws_from_seeds(G, seeds, cls, 1.0, cutoff=2), untruncated)


def test_cutoff_equals_the_mapping_argument(G) -> None:
    """Our mapping's `truncation_cutoff` follows the official code (`w_avg[c].lerp(x[:, :cutoff], psi)`)."""
    z = torch.cat([z_from_seed(s, G.z_dim) for s in (4, 5)])
    c = class_input(G, 2, 2, "cpu")
    with torch.no_grad():
        for k in (0, 3, G.num_ws):
            official = G.mapping(z, c, psi=0.7, truncation_cutoff=k)
            ours = truncate(G, G.mapping(z, c), c, 0.7, cutoff=k)
            torch.testing.assert_close(ours, official, rtol=0, atol=1e-5)  # lerp vs a + (b - a) * t rounding


@pytest.mark.parametrize("bad", [-1, 99])
def test_cutoff_out_of_range_is_refused(G, bad: int) -> None:
    with pytest.raises(UserInputError, match="cutoff"):
        ws_from_seeds(G, [0], 0, 0.7, cutoff=bad)


def test_official_checkpoint_with_cutoff(tmp_path: Path) -> None:
    """An imported official StyleGAN-XL file: cutoff = num_ws reproduces the official psi 0.7 outputs, and a
    partial cutoff changes only what the official mapping changes."""
    pkl = OFFICIAL_FIXTURES / "sgxl_tiny16_c10.pkl"
    if not pkl.exists():
        pytest.skip("official fixtures are not available")
    from core.io.official import load_official_generator

    G = load_official_generator(pkl).eval()
    ref = np.load(OFFICIAL_FIXTURES / "sgxl_tiny16_c10_expected.npz")
    z, c = torch.from_numpy(ref["z"]), torch.from_numpy(ref["c"])
    with torch.no_grad():
        ws = truncate(G, G.mapping(z, c), c, 0.7, cutoff=G.num_ws)
        np.testing.assert_allclose(G.synthesis(ws).numpy(), ref["img_psi07"], atol=1e-4)
        ws_half = truncate(G, G.mapping(z, c), c, 0.7, cutoff=2)
        official_half = G.mapping(z, c, psi=0.7, truncation_cutoff=2)
        torch.testing.assert_close(ws_half, official_half, rtol=0, atol=1e-5)
        img = G.synthesis(ws_half).numpy()
    # Neither the untruncated nor the fully truncated image.
    assert np.abs(img - ref["img_psi07"]).mean() > 1e-3 and np.abs(img - ref["img_psi1"]).mean() > 1e-3


def test_cli_generate_and_video_take_the_cutoff(G, ckpt_path: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cut.png"
    assert main(["generate", "--ckpt", str(ckpt_path), "--seeds", "7", "--class", "1", "--trunc", "0.3",
                 "--trunc-cutoff", "3", "--out", str(out), "--device", "cpu"]) == 0
    G2 = load_checkpoint(ckpt_path).generator
    with torch.no_grad():
        expected = to_uint8(G2.synthesis(ws_from_seeds(G2, [7], 1, 0.3, cutoff=3)))[0]
        everything = to_uint8(G2.synthesis(ws_from_seeds(G2, [7], 1, 0.3)))[0]
    got = np.asarray(Image.open(out))
    assert np.array_equal(got, expected)
    assert np.abs(got.astype(int) - everything.astype(int)).mean() > 0.5  # the cutoff did change the image

    gif = tmp_path / "cut.gif"
    assert main(["video", "--ckpt", str(ckpt_path), "--seeds", "0,1", "--frames", "2", "--trunc", "0.3",
                 "--trunc-cutoff", "3", "--out", str(gif)]) == 0
    frames = np.stack(imageio.mimread(gif))[..., :3].astype(np.float32)  # GIF: a 256-colour palette
    cut = interpolation_frames(G2, [0, 1], [0, 0], 0.3, 2, cutoff=3).astype(np.float32)
    uncut = interpolation_frames(G2, [0, 1], [0, 0], 0.3, 2).astype(np.float32)
    assert np.abs(frames - cut).mean() < 0.5 * np.abs(frames - uncut).mean()

    capsys.readouterr()
    rc = main(["generate", "--ckpt", str(ckpt_path), "--trunc", "0.5", "--trunc-cutoff", "40",
               "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert rc == 2 and "cutoff must be within 0..10" in err and "Traceback" not in err
