"""The explorer with StyleGAN2 and StyleGAN3 models, headless: which panels show, and noise / style-mix controls.

Random-init StyleGAN2 / StyleGAN3 generators (tests/test_stylegan2_3.py) are saved as .sgxl; each panel
is driven through `Explorer.invoke`, the same path a click takes, and the image must be the one `core`
renders for the same settings.
"""

from __future__ import annotations

from pathlib import Path

import dearpygui.dearpygui as dpg
import numpy as np
import pytest
import torch

from core.io.checkpoint import save_checkpoint
from core.sampling import style_mix, to_uint8, ws_from_seeds
from tests.gui.conftest import headless_explorer
from tests.test_stylegan2_3 import tiny_sg2, tiny_sg3


def shown(tag: str) -> bool:
    return bool(dpg.is_item_shown(tag))


def render(app) -> np.ndarray:
    return app.renderer.render_sync(app.state.settings(app.info))


@pytest.fixture(scope="module")
def sg2_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("sg2") / "sg2.sgxl", tiny_sg2(c_dim=3), class_names=["a", "b", "c"])


def test_stylegan2_shows_noise_hides_transform(sg2_ckpt: Path, tmp_path: Path) -> None:
    with headless_explorer(tmp_path, sg2_ckpt) as app:
        G = app.renderer._model.G
        assert shown("noise.header") and shown("class.header") and not shown("xform.header")
        assert "StyleGAN2" in app.status_text and "StyleGAN2" in dpg.get_value("ckpt.info")
        assert "one w_avg for all classes" in dpg.get_value("latent.psi_note")
        ws = ws_from_seeds(G, [0], 0)
        with torch.no_grad():
            const = to_uint8(G.synthesis(ws), 128.0)[0]
            random9 = to_uint8(G.synthesis(ws, noise_mode="random", noise_seed=9), 128.0)[0]
            none = to_uint8(G.synthesis(ws, noise_mode="none"), 128.0)[0]
        assert np.array_equal(render(app), const)
        assert not dpg.get_item_configuration("noise.seed")["enabled"]  # the seed only matters for "random"
        app.invoke("noise.mode", "random")
        app.invoke("noise.seed", 9)
        s = app.state.settings(app.info)
        assert (s.noise_mode, s.noise_seed) == ("random", 9) and not s.is_plain
        assert dpg.get_item_configuration("noise.seed")["enabled"]
        assert np.array_equal(render(app), random9)
        app.invoke("noise.mode", "none")
        s = app.state.settings(app.info)
        assert (s.noise_mode, s.noise_seed) == ("none", 0)  # no seed in the cache key when it changes nothing
        assert np.array_equal(render(app), none) and not np.array_equal(none, const)

        # Style mixing: one checkbox per w, labelled with the layers it drives (ToRGB shares the next conv's w).
        labels = [dpg.get_item_configuration(f"mix.layer.{i}")["label"] for i in range(G.num_ws)]
        assert labels[1] == "w1  b8.conv0 + b4.torgb" and labels[-1] == f"w{G.num_ws - 1}  b16.torgb"
        assert not dpg.does_item_exist(f"mix.layer.{G.num_ws}")
        app.invoke("noise.mode", "const")
        app.invoke("mix.seed", 4)
        app.invoke("mix.preset.fine", user_data="fine")
        s = app.state.settings(app.info)
        assert s.mix_layers == (4, 5) and s.mix_seed == 4  # the last third of the 6 ws
        with torch.no_grad():
            mixed = to_uint8(G.synthesis(style_mix(ws, ws_from_seeds(G, [4], 0), [4, 5])), 128.0)[0]
        assert np.array_equal(render(app), mixed)

        # A transform left over from another model never reaches a StyleGAN2 render.
        app.state.translate = (0.3, 0.0)
        assert app.state.settings(app.info).transform_is_identity


def test_unconditional_stylegan3_hides_the_class_panel_and_noise(tmp_path: Path) -> None:
    ckpt = save_checkpoint(tmp_path / "sg3.sgxl", tiny_sg3(c_dim=0, radial=True))
    with headless_explorer(tmp_path, ckpt) as app:
        assert not shown("class.header") and not shown("noise.header") and shown("xform.header")
        assert "StyleGAN3-R" in app.status_text and "unconditional" in app.status_text
        app.state.noise_mode = "random"  # left over from a StyleGAN2 model: ignored
        assert app.state.settings(app.info).noise_mode == "const"
        G = app.renderer._model.G
        with torch.no_grad():
            expected = to_uint8(G.synthesis(ws_from_seeds(G, [0], None)), 128.0)[0]
        assert np.array_equal(render(app), expected)
        app.invoke("xform.tx", 0.25)
        assert not np.array_equal(render(app), expected)  # StyleGAN3's input moves


def test_switching_families_restores_the_panels(sg2_ckpt: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    with headless_explorer(tmp_path, sg2_ckpt) as app:
        assert shown("noise.header") and not shown("xform.header")
        app.load_checkpoint_sync(str(tiny_ckpt))  # StyleGAN-XL, conditional
        assert not shown("noise.header") and shown("xform.header") and shown("class.header")
        assert "per-class w_avg" in dpg.get_value("latent.psi_note")
