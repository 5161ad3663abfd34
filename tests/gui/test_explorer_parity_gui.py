"""The real explorer under Xvfb: every class in a scrolling grid, the wheel over plots, no clipped labels, the
empty view, zoom/pan of the image and layer views, whole-window capture and the copied `sgxl generate` line.

Screenshots are kept under SGXL_GUI_SHOTS (default /tmp/sgxl_gui_shots) for a human to look at; the
39-class grid of the bundled demo is also copied to /tmp/h24c_class_grid.png. Pixel comparisons box-
downscale the screen's view to the texels it shows (see test_explorer_gui.py: MATCH).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.io.checkpoint import load_checkpoint
from core.sampling import to_uint8, ws_from_seeds
from explorer.renderer import Renderer, RenderSettings
from tests.gui.conftest import SHOTS
from tests.helpers import REPO

pytestmark = [pytest.mark.gui]

DEMO = REPO / "assets" / "demo.sgxl"
MATCH = 4.0  # mean abs difference (0..255) below which the screen shows the expected texels
COLS, CELL = 4, 76  # explorer/panels/classes.py


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def crop(shot: np.ndarray, rect: dict) -> np.ndarray:
    x, y, w, h = (int(round(rect[k])) for k in ("x", "y", "w", "h"))
    return shot[y:y + h, x:x + w]


def shrink(pixels: np.ndarray, size: tuple[int, int], box: tuple[float, ...] | None = None) -> np.ndarray:
    return np.asarray(Image.fromarray(pixels).resize(size, Image.BOX, box=box))


def settings_of(d: dict) -> RenderSettings:
    """The app's settings dict (JSON) -> RenderSettings for this process's renderer (no checkpoint key)."""
    tup = {k: tuple(tuple(x) if isinstance(x, list) else x for x in d[k])
           for k in ("seeds", "classes", "mix_classes", "mix_layers", "translate")}
    return RenderSettings(**{**d, **tup, "ckpt": ""})


def render(ckpt: Path, settings: dict) -> np.ndarray:
    r = Renderer("cpu", threaded=False)
    r.set_model(load_checkpoint(ckpt).generator, key="test")
    try:
        return r.render_sync(settings_of(settings))
    finally:
        r.close()


def assert_shows(shown: np.ndarray, expected: np.ndarray, wrong: np.ndarray, what: str) -> None:
    """The screen shows `expected` (within MATCH) and is clearly closer to it than to `wrong`."""
    good, bad = mad(shown, expected), mad(shown, wrong)
    print(f"{what}: MAD {good:.2f} to the expected view, {bad:.2f} to the wrong one")
    assert good < MATCH and good < bad / 2, (what, good, bad)


def centre_of(rect: dict) -> tuple[int, int]:
    return int(rect["x"] + rect["w"] / 2), int(rect["y"] + rect["h"] / 2)


# ----------------------------------------------------------------------------- the class grid

def test_class_grid_shows_all_39_demo_classes_rendered_as_they_scroll_into_view(launch, gui_tools) -> None:
    if not DEMO.exists():
        pytest.skip("the bundled demo checkpoint is missing")
    app = launch(DEMO, args=("--exit-after", "600"))  # a loaded 2-core machine renders slowly
    st = app.wait_shown("first frame", timeout=120)
    assert st["model"]["c_dim"] == 39 and st["classes"]["classes"] == 39

    def settled(s: dict, exactly: bool = True) -> bool:  # the rows in view and one beyond rendered, (only) them
        r0, r1 = s["classes"]["rows_visible"]
        want = set(range(max(r0 - 1, 0) * COLS, min((r1 + 1) * COLS, 39)))
        current = set(s["classes"]["current"])
        return (current == want if exactly else current >= want) and not s["renderer_busy"]

    st = app.wait_for("thumbnails of the rows in view", settled, timeout=240)
    r0, r1 = st["classes"]["rows_visible"]
    assert r0 == 0 and r1 < 10 and st["classes"]["scroll_max"] > 0  # 10 rows do not fit: the box scrolls
    current = st["classes"]["current"]
    assert len(current) < 39 and 38 not in current, "every thumbnail was rendered up front"
    assert st["classes"]["received"] == len(current)  # nothing rendered twice
    shot = top_shot = app.screenshot("h24c_01_class_grid_top")
    G = load_checkpoint(DEMO).generator

    def core(c: int) -> np.ndarray:
        with torch.no_grad():
            return to_uint8(G.synthesis(ws_from_seeds(G, [0], c)))[0]

    def cell(shot: np.ndarray, grid: dict, c: int) -> np.ndarray:
        r, k = divmod(c, COLS)
        pixels = crop(shot, {"x": grid["x"] + k * CELL, "y": grid["y"] + r * CELL, "w": CELL - 1, "h": CELL - 1})
        return shrink(pixels, (64, 64))[18:]  # below the class number drawn in the corner

    grid = st["rects"]["class_grid"]
    for c in (1, 5, 10):
        assert mad(cell(shot, grid, c), core(c)[18:]) < MATCH, c
        assert mad(cell(shot, grid, c), core(c + 1)[18:]) > 2 * MATCH, c  # and not the neighbour's image

    # Scroll the grid with the wheel: the last rows render, and all 39 classes are on offer.
    x, y = int(grid["x"] + 2 * CELL), int(grid["y"] + 2.5 * CELL)
    app.xdotool("mousemove", x, y, "sleep", 0.2, "click", "--repeat", 12, "--delay", 60, 5)
    st = app.wait_for("scrolled to the end", lambda s: s["classes"]["scroll"] == s["classes"]["scroll_max"]
                      and settled(s, exactly=False) and len(s["classes"]["current"]) == 39, timeout=240)
    frames = st["ui_frames"]
    st = app.wait_for("drawn", lambda s: s["ui_frames"] >= frames + 3)
    shot = app.screenshot("h24c_02_class_grid_scrolled")
    shutil.copy(SHOTS / "h24c_02_class_grid_scrolled.png", "/tmp/h24c_class_grid.png")  # for the lead
    grid0, grid = grid, st["rects"]["class_grid"]
    # All 39 cells in one picture: the top rows from the first shot, the rest from the scrolled one.
    top, rows = r1 - 1, -(-39 // COLS)
    first = crop(top_shot, {"x": grid0["x"], "y": grid0["y"], "w": COLS * CELL, "h": top * CELL})
    rest = crop(shot, {"x": grid["x"], "y": grid["y"] + top * CELL, "w": COLS * CELL, "h": (rows - top) * CELL})
    Image.fromarray(np.concatenate([first, rest])).save(SHOTS / "h24c_class_grid_all39.png")
    shutil.copy(SHOTS / "h24c_class_grid_all39.png", "/tmp/h24c_class_grid_all39.png")
    assert abs(grid0["y"] - grid["y"] - st["classes"]["scroll"]) <= 2  # the drawlist moved up with the scroll
    for c in (33, 36, 38):
        assert mad(cell(shot, grid, c), core(c)[18:]) < MATCH, c
    # Click class 37 in the scrolled grid.
    r, k = divmod(37, COLS)
    app.xdotool("mousemove", int(grid["x"] + (k + 0.5) * CELL), int(grid["y"] + (r + 0.5) * CELL), "sleep", 0.2,
                "click", 1)
    st = app.wait_shown("class 37 from the grid", lambda s: s["settings"]["classes"] == [[37, 1.0]], timeout=120)
    assert not st["status_error"], st["status"]


# ----------------------------------------------------------------------------- plots, clipping, empty view

LEFT_ORDER = ["ckpt", "latent", "mix", "xform", "layers", "zoom", "perf", "capture", "train", "invert"]


def test_every_panel_open_nothing_clipped_and_the_wheel_over_a_plot_scrolls(launch, gui_tools,
                                                                            tiny_ckpt: Path) -> None:
    app = launch(tiny_ckpt, args=("--exit-after", "600"))
    st = app.wait_shown("first frame", timeout=120)
    assert [k for k in LEFT_ORDER if k in st["headers"]] == LEFT_ORDER
    # Open every closed panel, the lowest first (opening one does not move the headers above it).
    for key in reversed(LEFT_ORDER):
        h = st["headers"][key]
        if not h["open"]:
            app.xdotool("mousemove", int(h["x"] + 60), int(h["y"] + h["h"] / 2), "sleep", 0.15, "click", 1)
            st = app.wait_for(f"{key} open", lambda s, key=key: s["headers"][key]["open"], timeout=30)
    frames = st["ui_frames"]
    st = app.wait_for("laid out", lambda s: s["ui_frames"] >= frames + 10 and s["time"] > st["time"] + 1.2)
    app.screenshot("h24c_03_all_panels_open")
    assert st["clipped"] == [], st["clipped"]  # the checker: explorer.app.Explorer.clipped_items

    # The wheel over the left column scrolls it until the Train panel's loss plot is fully on screen.
    left = st["rects"]["left"]
    for _ in range(40):
        plot = st["train"]["rects"]["plot_loss"]
        if plot["y"] > left["y"] + 10 and plot["y"] + plot["h"] < left["y"] + left["h"] - 40:
            break
        app.xdotool("mousemove", int(left["x"] + 300), int(left["y"] + 100), "click", 5)
        scroll = st["scroll"]["left"][0]
        st = app.wait_for("scrolled", lambda s, y=scroll: s["scroll"]["left"][0] != y, timeout=20)
    else:
        raise AssertionError(f"the loss plot never came into view: {st['train']['rects']['plot_loss']}")
    # Now the wheel over the plot itself: it scrolls the panel (ImPlot would zoom the plot and keep the wheel).
    x, y = centre_of(plot)
    before = st["scroll"]["left"][0]
    app.xdotool("mousemove", x, y, "sleep", 0.3, "click", "--repeat", 2, "--delay", 120, 5)
    st = app.wait_for("the panel scrolled under the plot", lambda s: s["scroll"]["left"][0] > before, timeout=20)
    app.screenshot("h24c_04_wheel_over_plot_scrolled")
    assert st["train"]["rects"]["plot_loss"]["y"] < plot["y"]  # the plot moved up with the panel


@pytest.mark.parametrize("case", ["none", "broken"])
def test_empty_view_shows_a_sentence_not_a_black_square(launch, gui_tools, tmp_path: Path, case: str) -> None:
    ckpt = None
    if case == "broken":
        ckpt = tmp_path / "broken.sgxl"
        ckpt.write_bytes(b"not a checkpoint")
    app = launch(ckpt)
    expected = "No model loaded" if case == "none" else "broken.sgxl could not be opened"
    st = app.wait_for("placeholder", lambda s: (s["view_placeholder"] or "").startswith(expected)
                      and s["ui_frames"] > 5, timeout=60)
    frames = st["ui_frames"]
    st = app.wait_for("drawn", lambda s: s["ui_frames"] >= frames + 3)
    view = crop(app.screenshot(f"h24c_05_empty_view_{case}"), st["rects"]["view"])
    black = (view.max(axis=2) < 20).mean()
    text = (view.min(axis=2) > 140).mean()
    assert black < 0.01, f"{black:.1%} of the view is black"
    assert text > 0.0005, "no text in the view"
    assert st["classes"]["classes"] == 0 and st["model"] is None


# ----------------------------------------------------------------------------- capture, command, zoom/pan

def test_capture_copy_command_zoom_and_pan(launch, gui_tools, tiny_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "captures"
    app = launch(tiny_ckpt, args=("--exit-after", "600"))
    st = app.wait_shown("first frame", timeout=120)
    res = st["model"]["resolution"]
    # A psi from a slider drag (a float32 value such as 0.5799999833106995) must survive the command.
    r = st["rects"]["psi_slider"]
    y = int(r["y"] + r["h"] / 2)
    app.xdotool("mousemove", int(r["x"] + r["frame_w"] * 0.5), y, "sleep", 0.15, "mousedown", 1, "sleep", 0.15,
                "mousemove", int(r["x"] + r["frame_w"] * 0.47), y, "sleep", 0.15, "mouseup", 1)
    st = app.wait_shown("psi dragged", lambda s: s["settings"]["psi"] not in (1.0, 0.5))
    psi = st["settings"]["psi"]
    # Open the Capture panel, set its folder, save the frame, copy the command.
    h = st["headers"]["capture"]
    app.xdotool("mousemove", int(h["x"] + 60), int(h["y"] + h["h"] / 2), "sleep", 0.15, "click", 1)
    st = app.wait_for("capture open", lambda s: s["headers"]["capture"]["open"]
                      and s["rects"]["capture.copy"]["visible"], timeout=30)
    folder = st["rects"]["capture.save"]  # the folder field is the line above the first button
    app.xdotool("mousemove", int(folder["x"] + 100), int(folder["y"] - 12), "sleep", 0.15, "click", "--repeat", 3, 1,
                "key", "ctrl+a", "type", "--delay", 5, str(out))
    app.xdotool("key", "Return")
    for name in ("save", "copy"):
        x, y = centre_of(st["rects"][f"capture.{name}"])
        app.xdotool("mousemove", x, y, "sleep", 0.2, "click", 1)
    st = app.wait_for("command copied", lambda s: s["capture"]["command"] != "", timeout=30)
    command = st["capture"]["command"]
    assert st["capture"]["clipboard"] == command
    assert f"--trunc={psi!r}" in command and str(out) in command, command
    saved = sorted(out.glob("seed0-class0-psi*.png"))
    assert len(saved) == 1, list(out.iterdir())
    frame = np.asarray(Image.open(saved[0]))
    # Run the printed command as a user would (python -m core.cli = the sgxl entry point).
    args = shlex.split(command)
    run = subprocess.run([sys.executable, "-m", "core.cli", *args[1:]], cwd=REPO, capture_output=True, text=True,
                         timeout=300, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    produced = np.asarray(Image.open(args[args.index("--out") + 1]))
    assert np.array_equal(produced, frame), "the command's PNG differs from the captured frame"
    assert command in app.logs()  # printed on stdout too

    # The whole window as a PNG: the screen (the viewport fills the Xvfb screen) minus the status bar.
    x, y = centre_of(st["rects"]["capture.save_window"])
    app.xdotool("mousemove", x, y, "sleep", 0.2, "click", 1)
    st = app.wait_for("window PNG", lambda s: len(s["capture"]["window_shots"]) == 1, timeout=30)
    window = np.asarray(Image.open(st["capture"]["window_shots"][0]).convert("RGB"))
    shot = app.screenshot("h24c_06_after_window_capture")
    assert window.shape[:2] == tuple(reversed(st["viewport"]))
    for part in ("image", "class_grid"):
        assert mad(crop(window, st["rects"][part]), crop(shot, st["rects"][part])) < 1.0, part

    # Zoom: two wheel notches at the image's centre double the magnification about the centre.
    img = st["rects"]["image"]
    cx, cy = centre_of(img)
    app.xdotool("mousemove", cx, cy, "sleep", 0.3, "click", "--repeat", 2, "--delay", 150, 4)
    st = app.wait_for("zoomed", lambda s: s["zoom"]["zoom"] == 2.0, timeout=30)
    frames = st["ui_frames"]
    st = app.wait_for("drawn", lambda s: s["ui_frames"] >= frames + 3)
    (u0, v0), (u1, v1) = st["zoom"]["uv_min"], st["zoom"]["uv_max"]
    assert abs(u0 - 0.25) < 0.01 and abs(v1 - 0.75) < 0.01
    core = frame  # the frame on screen (checked above against sgxl generate)

    def expected_view(image: np.ndarray, n: int) -> np.ndarray:
        """The texture window [uv_min, uv_max] magnified bilinearly to the view's pixels (as GL samples it),
        then box-shrunk like the screenshot."""
        s = image.shape[0]
        screen = Image.fromarray(image).resize((int(img["w"]), int(img["h"])), Image.BILINEAR,
                                               box=(u0 * s, v0 * s, u1 * s, v1 * s))
        return shrink(np.asarray(screen), (n, n))

    n = res // 2
    zoomed = shrink(crop(app.screenshot("h24c_07_zoomed"), img), (n, n))
    assert_shows(zoomed, expected_view(core, n), shrink(core, (n, n)), "zoom 2x")  # not the whole image
    # Pan: a right-button drag by a quarter of the view moves the window a quarter of it (an eighth of the image).
    app.xdotool("mousemove", cx, cy, "sleep", 0.2, "mousedown", 3, "sleep", 0.2,
                "mousemove", cx + int(img["w"] / 4), cy, "sleep", 0.3, "mouseup", 3)
    st = app.wait_for("panned", lambda s: s["zoom"]["uv_min"][0] < u0 - 0.1, timeout=30)
    frames = st["ui_frames"]
    st = app.wait_for("drawn", lambda s: s["ui_frames"] >= frames + 3)
    (u0, v0), (u1, v1) = st["zoom"]["uv_min"], st["zoom"]["uv_max"]
    assert abs(u0 - 0.125) < 0.01 and st["settings"]["seeds"] == [[0, 1.0]]  # the latent did not move
    panned = shrink(crop(app.screenshot("h24c_08_panned"), img), (n, n))
    assert_shows(panned, expected_view(core, n), zoomed, "panned")  # not the unpanned window

    # The layer view keeps the zoom: pick layer L0 (third entry of the combo's list) in the Layers panel.
    h = st["headers"]["layers"]
    app.xdotool("mousemove", int(h["x"] + 60), int(h["y"] + h["h"] / 2), "sleep", 0.15, "click", 1)
    st = app.wait_for("layers open", lambda s: s["rects"]["layer_combo"]["visible"], timeout=30)
    combo = st["rects"]["layer_combo"]
    app.xdotool("mousemove", int(combo["x"] + 50), int(combo["y"] + combo["h"] / 2), "sleep", 0.2, "click", 1,
                "sleep", 0.5, "mousemove", int(combo["x"] + 50), int(combo["y"] + combo["h"] + 15 + 2 * 17),
                "sleep", 0.2, "click", 1)
    st = app.wait_shown("layer view", lambda s: s["settings"]["layer"].startswith("L0"), timeout=120)
    layer = render(tiny_ckpt, st["displayed"])
    img = st["rects"]["image"]
    (u0, v0), (u1, v1) = st["zoom"]["uv_min"], st["zoom"]["uv_max"]
    assert st["zoom"]["zoom"] == 2.0
    n = layer.shape[0] // 2
    shown = shrink(crop(app.screenshot("h24c_09_layer_zoomed"), img), (n, n))
    assert_shows(shown, expected_view(layer, n), shrink(layer, (n, n)), "layer view zoomed")
    # A right double-click on the image fits it again.
    cx, cy = centre_of(img)
    app.xdotool("mousemove", cx, cy, "sleep", 0.2, "click", "--repeat", 2, "--delay", 80, 3)
    st = app.wait_for("fit", lambda s: s["zoom"]["zoom"] == 1.0, timeout=30)
    assert not st["status_error"], st["status"]
