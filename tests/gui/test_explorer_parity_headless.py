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


# ----------------------------------------------------------------------------- class grid: every class, lazily

def test_rows_in_view() -> None:
    from explorer.panels.classes import rows_in_view

    assert rows_in_view(0, 380, 39) == range(0, 5)  # 76 px rows: 0..4 overlap 0..380
    assert rows_in_view(173, 587, 39) == range(2, 10)  # scrolled to the end of 10 rows
    assert rows_in_view(0, 10_000, 39) == range(0, 10)
    assert rows_in_view(0, 300, 0) == range(0, 0)
    assert rows_in_view(76, 76, 1000, ahead=1) == range(0, 3)


def test_class_grid_holds_every_class_and_renders_only_rows_in_view(tmp_path: Path) -> None:
    """A 200-class model: the grid has all 200 cells, but thumbnails come only for the rows in view (+ one),
    a few per renderer job; scrolling further brings the next rows; clicking a cell far down picks its class."""
    from explorer.panels.classes import CELL, GRID_COLS, PREFETCH_ROWS, THUMB_BATCH

    ckpt = save_checkpoint(tmp_path / "c200.sgxl", make_tiny_generator(16, c_dim=200, seed=1), {"kimg": 1})
    with headless_explorer(tmp_path, ckpt) as app:
        panel = app.class_panel
        assert panel.grid_classes() == tuple(range(200))
        assert dpg.get_item_configuration("class.grid")["height"] == 50 * CELL  # 200 / 4 rows
        assert "200 classes" in dpg.get_value("class.grid_label")
        show_frame(app)
        app.settings_changed_at -= 10
        panel._view = range(0, 2)  # as if two rows were on screen (no viewport here)
        panel.rows_visible = lambda: panel._view  # noqa: E731 - the scroll position a viewport would report
        for _ in range(10):
            panel.tick(app.clock())
        rows = 2 + PREFETCH_ROWS
        assert panel.thumbs_received == rows * GRID_COLS  # 12 of 200: only what is (nearly) in view
        assert panel.requests == rows * GRID_COLS // THUMB_BATCH + 0  # 4 per job
        assert sorted(c for c in range(200) if panel.thumbnail_current(c)) == list(range(rows * GRID_COLS))
        G = load_checkpoint(ckpt).generator
        for c in (0, 5, 11):
            assert np.abs(panel.thumbnail(c).astype(int) - core(G, 0, c).astype(int)).max() <= 1
        # Scroll to rows 40..41: their classes come next, nothing in between.
        panel._view = range(40, 42)
        for _ in range(10):
            panel.tick(app.clock())
        current = {c for c in range(200) if panel.thumbnail_current(c)}
        assert set(range(160, 168)) <= current and not current & set(range(12, 156))
        assert panel.thumbs_received == rows * GRID_COLS + 16  # rows 39..42
        # A new seed: every thumbnail is stale (drawn dimmed) until its new one arrives.
        app.invoke("latent.seed_input", 3)
        show_frame(app)
        assert not any(panel.thumbnail_current(c) for c in range(200))
        panel.click_grid_cell(2, 41)
        assert app.state.class_idx == 41 * GRID_COLS + 2


def test_class_grid_filter_resets_the_grid(app: Explorer) -> None:
    app.invoke("class.filter", "i")  # "bird", "fish" -> 2 of 5
    assert app.class_panel.grid_classes() == (2, 3)
    assert dpg.get_value("class.grid_label").startswith("The current image in each class (2 of 5 classes")


# ----------------------------------------------------------------------------- zoom / pan

def test_zoom_keeps_the_point_under_the_cursor() -> None:
    from explorer.panels.view import MAX_ZOOM, ZOOM_STEP, ViewZoom

    z = ViewZoom()
    assert z.window() == ((0.0, 0.0), (1.0, 1.0))
    z.zoom_at(ZOOM_STEP, 0.3, 0.7)
    z.zoom_at(ZOOM_STEP, 0.3, 0.7)
    assert z.zoom == 2.0
    (u0, v0), (u1, v1) = z.window()
    assert (u1 - u0, v1 - v0) == (0.5, 0.5)
    assert z.image_point(0.3, 0.7) == pytest.approx((0.3, 0.7))  # the point under the cursor stayed
    assert (u0, v0) == pytest.approx((0.15, 0.35))
    z.pan(0.2, 0.0)  # dragging right by a fifth of the view shows what is left of it
    assert z.window()[0] == pytest.approx((0.15 - 0.1, 0.35))
    z.pan(10.0, -10.0)  # never past the image's edges
    assert z.window() == ((0.0, 0.5), (0.5, 1.0))
    for _ in range(40):
        z.zoom_at(ZOOM_STEP, 0.5, 0.5)
    assert z.zoom == MAX_ZOOM
    z.zoom_at(1e-6, 0.5, 0.5)
    assert z.zoom == 1.0 and z.window() == ((0.0, 0.0), (1.0, 1.0))


def test_zoom_slider_and_fit(app: Explorer) -> None:
    app.invoke("zoom.level", 4.0)
    assert app.view_panel.zoom.zoom == 4.0
    assert app.view_panel.zoom.window() == ((0.375, 0.375), (0.625, 0.625))
    app.invoke("zoom.fit")
    assert app.view_panel.zoom.zoom == 1.0 and dpg.get_value("zoom.level") == 1.0


# ----------------------------------------------------------------------------- copy command

def run_command(command: str, tmp_path: Path) -> np.ndarray:
    """Run a copied `sgxl generate ...` line in this process (core.cli.main) and read the PNG it writes."""
    import shlex

    from PIL import Image

    from core.cli import main

    args = shlex.split(command)
    assert args[:2] == ["sgxl", "generate"]
    out = Path(args[args.index("--out") + 1])
    assert main(args[1:]) == 0
    return np.asarray(Image.open(out))


@pytest.mark.parametrize("edit", ["plain", "cutoff", "mix", "transform", "unconditional", "stylegan2-noise",
                                  "stylegan3"])
def test_copied_command_reproduces_the_frame(tmp_path: Path, tiny_ckpt: Path, edit: str) -> None:
    from tests.test_stylegan2_3 import tiny_sg2, tiny_sg3

    ckpt = tiny_ckpt
    if edit == "unconditional":
        ckpt = save_checkpoint(tmp_path / "uncond.sgxl", make_tiny_generator(16, c_dim=0, seed=4), {"kimg": 1})
    if edit == "stylegan2-noise":
        ckpt = save_checkpoint(tmp_path / "sg2.sgxl", tiny_sg2(c_dim=5), {"kimg": 1})
    if edit == "stylegan3":
        ckpt = save_checkpoint(tmp_path / "sg3.sgxl", tiny_sg3(c_dim=5), {"kimg": 1})
    with headless_explorer(tmp_path, ckpt) as app:
        dpg.set_value("capture.dir", str(tmp_path / "out"))
        app.invoke("latent.seed_input", 123)
        app.invoke("latent.psi", 0.7)
        if edit != "unconditional":
            app.class_panel.select(3)
        if edit == "cutoff":
            app.invoke("latent.cutoff", 5)
        if edit == "mix":
            app.invoke("mix.seed", 9)
            app.invoke("mix.preset.fine")
            app.invoke("mix.class", "1: dog")
        if edit in ("transform", "stylegan3"):
            app.invoke("xform.tx", -0.125)
            app.invoke("xform.rotate", -30.5)
        if edit == "stylegan2-noise":
            app.invoke("noise.mode", "random")
            app.invoke("noise.seed", 17)
            app.invoke("latent.cutoff", 3)
        show_frame(app)
        command = app.capture_panel.copy_command()
        assert command and dpg.get_value("capture.command") == command
        assert app.capture_panel.clipboard == command
        assert "--seeds=123" in command and f"--trunc={app.state.psi!r}" in command
        assert ("--class=3" in command) == (edit != "unconditional")
        assert ("--noise-mode=random --noise-seed=17" in command) == (edit == "stylegan2-noise")
        captured = app.capture_panel.save(tmp_path / "captured")
        from PIL import Image

        shot = np.asarray(Image.open(captured))
        assert np.array_equal(shot, app.frame.to_uint8())
        assert np.array_equal(run_command(command, tmp_path), shot)  # byte for byte


def test_a_preview_on_screen_is_captured_as_the_exact_frame(app: Explorer, G, tmp_path: Path) -> None:
    """While dragging, the view may show a preview (bf16, no last-stage anti-aliasing); "Save PNG" writes the
    exact frame of its settings, which is what the copied command reproduces."""
    import dataclasses

    from PIL import Image

    app.invoke("latent.seed_input", 5)
    app.invoke("latent.psi", 0.6)
    app.invoke("latent.cutoff", 2)
    show_frame(app)
    exact = app.frame.to_uint8().copy()
    assert np.array_equal(exact, core(G, 5, 0, 0.6, cutoff=2))
    wrong = np.zeros_like(app.frame.rgba)
    app.frame = dataclasses.replace(app.frame, preview=True, rgba=wrong)  # an approximate image on screen
    shot = np.asarray(Image.open(app.capture_panel.save(tmp_path / "cap")))
    assert np.array_equal(shot, exact)


def test_copy_command_says_why_not(app: Explorer) -> None:
    app.latent_panel.drag_by(20, 0)  # between two seeds
    show_frame(app)
    assert app.capture_panel.copy_command() == ""
    assert "blends several seeds" in app.status_text and not app.status_error
    app.invoke("latent.snap")
    app.invoke("class.t", 0.5)
    app.invoke("class.b", "2: bird")
    app.invoke("layers.layer", app.layers_panel.labels[2])
    show_frame(app)
    assert app.capture_panel.copy_command() == ""
    assert "class embedding is blended" in app.status_text and "layer's activations" in app.status_text


def test_generate_translate_rotate_match_the_renderer(tmp_path: Path, tiny_ckpt: Path, G, capsys) -> None:
    from PIL import Image

    from core.cli import main
    from explorer.renderer import Renderer, RenderSettings

    out = tmp_path / "t.png"
    assert main(["generate", "--ckpt", str(tiny_ckpt), "--seeds", "4", "--class", "2", "--translate=-0.25,0.1",
                 "--rotate", "-20", "--out", str(out), "--device", "cpu"]) == 0
    r = Renderer("cpu", threaded=False)
    r.set_model(G, key="k")
    expected = r.render_sync(RenderSettings(seeds=((4, 1.0),), classes=((2, 1.0),), translate=(-0.25, 0.1),
                                            rotate=-20.0))
    r.close()
    assert np.array_equal(np.asarray(Image.open(out)), expected)
    assert np.abs(expected.astype(int) - core(G, 4, 2).astype(int)).mean() > 1
    capsys.readouterr()
    assert main(["generate", "--ckpt", str(tiny_ckpt), "--translate", "x", "--out", str(out)]) == 2
    assert "cannot read --translate" in capsys.readouterr().err


# ----------------------------------------------------------------------------- empty view

def test_the_view_says_what_it_waits_for(tmp_path: Path, tiny_ckpt: Path) -> None:
    with headless_explorer(tmp_path) as app:
        assert not app.view_has_frame and app.placeholder_text().startswith("No model loaded")
        assert not dpg.is_item_shown(app.image_tag)  # no 1x1 black texture stretched over the view
        bad = tmp_path / "bad.sgxl"
        bad.write_bytes(b"not a zip")
        app.open_checkpoint(str(bad))
        show_frame(app)
        assert app.status_error and app.placeholder_text().startswith("bad.sgxl could not be opened")
        app.open_checkpoint(str(tiny_ckpt))
        assert app.placeholder_text() == "Loading tiny32.sgxl ..."
        show_frame(app)
        show_frame(app)
        assert app.view_has_frame and app.frame is not None


def test_settings_the_command_does_not_carry_are_refused() -> None:
    """A RenderSettings field the command builder does not know (a later addition) is never silently dropped."""
    import dataclasses

    from explorer.panels.capture import HANDLED_FIELDS, why_not_generate
    from explorer.renderer import RenderSettings

    assert HANDLED_FIELDS <= {f.name for f in dataclasses.fields(RenderSettings)}
    plain = RenderSettings(seeds=((4, 1.0),), classes=((1, 1.0),), psi=0.5, trunc_cutoff=3)
    assert why_not_generate(plain) == []

    @dataclasses.dataclass(frozen=True)
    class Later(RenderSettings):
        sharpen: float = 0.0

    assert why_not_generate(Later(**dataclasses.asdict(plain))) == []
    assert "sharpen = 0.5" in why_not_generate(Later(**dataclasses.asdict(plain), sharpen=0.5))[0]
