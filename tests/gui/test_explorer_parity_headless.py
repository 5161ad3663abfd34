"""Explorer fixes a new user asked for and StyleGAN3-visualizer parity, headless (no display needed).

Truncation cutoff control, the seed grid left of / above seed 0 and "Snap to seed", a model of another
size dropping an inverted latent without an error, the lazily rendered class grid, zoom/pan arithmetic
and the "copy command" line. Widgets are driven with `Explorer.invoke` (the path a click takes).
"""

from __future__ import annotations

from pathlib import Path

import dearpygui.dearpygui as dpg
import numpy as np
import pytest
import torch

from core.io.checkpoint import load_checkpoint, save_checkpoint
from core.sampling import to_uint8, ws_from_seeds
from explorer.app import Explorer
from explorer.renderer import MAX_SEED, grid_seed, grid_seed_weights
from explorer.state import SEED_GRID_STRIDE
from tests.gui.conftest import headless_explorer
from tests.helpers import make_tiny_generator


@pytest.fixture(scope="module")
def G(tiny_ckpt: Path):
    return load_checkpoint(tiny_ckpt).generator


def render(app: Explorer) -> np.ndarray:
    return app.renderer.render_sync(app.state.settings(app.info))


def core(G, seed: int, cls: int, psi: float = 1.0, cutoff: int | None = None) -> np.ndarray:
    with torch.no_grad():
        return to_uint8(G.synthesis(ws_from_seeds(G, [seed], cls, psi, cutoff=cutoff)))[0]


def show_frame(app: Explorer) -> None:
    app.tick()
    app.after_render(33.0)


# ----------------------------------------------------------------------------- truncation cutoff

def test_cutoff_slider_truncates_the_first_ws_only(app: Explorer, G) -> None:
    assert dpg.get_item_configuration("latent.cutoff")["max_value"] == G.num_ws
    assert dpg.get_value("latent.cutoff") == G.num_ws and app.state.trunc_cutoff is None  # default: all ws
    app.invoke("latent.psi", 0.3)
    app.invoke("latent.cutoff", 4)
    s = app.state.settings(app.info)
    assert s.trunc_cutoff == 4 and s.is_plain
    cut = render(app)
    assert np.array_equal(cut, core(G, 0, 0, 0.3, cutoff=4))
    assert np.abs(cut.astype(int) - core(G, 0, 0, 0.3).astype(int)).mean() > 0.5
    # Thumbnails follow the cutoff too (their cache key includes it).
    t = app.renderer.render_thumbnails(s, (0, 1))
    assert t is not None and np.array_equal(t.images[0], cut)
    # The whole range again is "all ws" (None): the same cache key as before the slider moved.
    app.invoke("latent.cutoff", G.num_ws)
    assert app.state.trunc_cutoff is None
    assert np.array_equal(render(app), core(G, 0, 0, 0.3))


def test_cutoff_applies_to_an_inverted_latent(app: Explorer, G) -> None:
    with torch.no_grad():
        ws = ws_from_seeds(G, [9], 2) + 0.05 * torch.randn(1, G.num_ws, G.w_dim)
    app.renderer.register_latent("photo", ws, 2)
    app.state.latent, app.state.class_idx, app.state.psi, app.state.trunc_cutoff = "photo", 2, 0.5, 3
    centre = G.mapping.w_avg[2]
    expected_ws = ws.clone()
    expected_ws[:, :3] = centre + (ws[:, :3] - centre) * 0.5
    with torch.no_grad():
        expected = to_uint8(G.synthesis(expected_ws))[0]
    assert np.array_equal(render(app), expected)


def test_cutoff_beyond_a_new_models_ws_goes_back_to_all(app: Explorer, tmp_path: Path) -> None:
    app.invoke("latent.cutoff", 9)  # of 10
    assert app.state.trunc_cutoff == 9
    small = save_checkpoint(tmp_path / "small.sgxl", make_tiny_generator(16, c_dim=5), {"kimg": 1})
    app.load_checkpoint_sync(str(small))  # 8 ws
    assert app.state.trunc_cutoff is None and dpg.get_value("latent.cutoff") == 8
    assert dpg.get_item_configuration("latent.cutoff")["max_value"] == 8
    show_frame(app)
    assert not app.status_error


# ----------------------------------------------------------------------------- seed grid below seed 0

def test_seed_grid_wraps_left_of_and_above_seed_0() -> None:
    assert grid_seed(0, -1, 0) == MAX_SEED
    assert grid_seed(5, -2, -1, 1000) == (5 - 2 - 1000) % 2**32
    assert grid_seed(MAX_SEED, 1, 0) == 0
    # Bilinear weights around a negative position: the 4 wrapped neighbours.
    w = dict(grid_seed_weights(0, (-0.25, -1.5), 1000))
    assert set(w) == {grid_seed(0, dx, dy) for dx in (-1, 0) for dy in (-2, -1)}
    assert abs(sum(w.values()) - 1) < 1e-12 and w[grid_seed(0, 0, -1)] == pytest.approx(0.75 * 0.5)


def test_snap_below_seed_0_lands_on_the_seed_on_screen(app: Explorer, G) -> None:
    """Dragging the pad left of / above seed 0 and pressing Snap keeps the seed the image was nearest to."""
    app.latent_panel.drag_by(-60, -45)  # 50 px per seed: offset (-1.2, -0.9)
    ox, oy = app.state.offset
    assert (round(ox, 6), round(oy, 6)) == (-1.2, -0.9)
    weights = dict(app.state.settings(app.info).seeds)
    nearest = max(weights, key=weights.get)  # the seed with the largest weight: what the image mostly shows
    expected_seed = (0 - 1 - SEED_GRID_STRIDE) % 2**32
    assert nearest == expected_seed
    app.invoke("latent.snap")
    assert app.state.seed == expected_seed and app.state.offset == (0.0, 0.0)
    assert dpg.get_value("latent.seed_input") == expected_seed  # the field shows seeds above 2**31 too
    assert np.array_equal(render(app), core(G, expected_seed, 0))
    app.latent_panel.tick(app.clock())  # redraws the pad and its text
    assert dpg.get_value("latent.blend") == f"seeds: {expected_seed} x1.00"
    # Typing a large seed works the same way.
    app.invoke("latent.seed_input", float(MAX_SEED))
    assert app.state.seed == MAX_SEED and app.state.settings(app.info).seeds == ((MAX_SEED, 1.0),)


# ----------------------------------------------------------------------------- model change with a latent

def test_another_size_drops_the_inverted_latent_without_an_error(tmp_path: Path, tiny_ckpt: Path) -> None:
    """The real path: open_checkpoint loads on the renderer, the class grid is idle and may render thumbnails."""
    small = save_checkpoint(tmp_path / "small.sgxl", make_tiny_generator(16, c_dim=5), {"kimg": 1})
    with headless_explorer(tmp_path, tiny_ckpt) as app:
        G = app.renderer._model.G
        app.renderer.register_latent("inv", ws_from_seeds(G, [3], 2), 2)
        app.state.latent = "inv"
        show_frame(app)
        app.settings_changed_at -= 10  # the view has been still: thumbnails are due
        errors: list[str] = []
        set_status = app.set_status

        def record(text: str, error: bool = False, kind: str | None = None) -> None:
            if error:
                errors.append(text)
            set_status(text, error, kind)

        app.set_status = record
        app.open_checkpoint(str(small))
        for _ in range(6):
            show_frame(app)
        assert errors == [] and not app.status_error
        assert app.state.latent == "" and app.info.resolution == 16
        assert app.status_text.startswith("Loaded small.sgxl")
        assert app.frame is not None and app.frame.settings.latent == ""
