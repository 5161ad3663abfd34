"""The real explorer window under Xvfb, driven with xdotool, checked against `core` pixel by pixel.

Comparison: the view shows the 32x32 generator image scaled up (bilinear) to ~780x780 pixels.
The screenshot's image rectangle is box-downscaled back to 32x32 and compared with the image
`core` renders for the settings the app reports. Bilinear magnification followed by a box
average reproduces each texel up to a blur with its neighbours (weight 1/8 per side per axis),
measured at 0.1-0.25 grey levels mean abs difference on these smooth random-weight images (a
wrong frame, e.g. the previous seed, class or psi, differs by 15-30 levels). MATCH = 4 leaves a
wide margin for sharper images and for Mesa's rounding, yet is 4x below the smallest real change
measured; every "changed" assertion also demands the new frame be far (> 2 * MATCH) from the old.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.io.checkpoint import load_checkpoint
from core.sampling import to_uint8, ws_from_seeds
from tests.helpers import REPO

pytestmark = [pytest.mark.gui]

MATCH = 4.0  # mean abs difference (0..255) below which the screen shows the core image (see module doc)


def core_image(ckpt: Path, settings: dict) -> np.ndarray:
    """uint8 [H, W, 3] that core renders for a plain seed/class/psi settings dict from the app."""
    G = load_checkpoint(ckpt).generator
    (seed, w_seed), = settings["seeds"]
    (cls, w_cls), = settings["classes"]
    assert w_seed == 1.0 and w_cls == 1.0
    with torch.no_grad():
        return to_uint8(G.synthesis(ws_from_seeds(G, [seed], cls, settings["psi"])))[0]


def view_region(shot: np.ndarray, rect: dict, size: int) -> np.ndarray:
    """The image view's rectangle of a screenshot, box-downscaled to size x size."""
    x, y, w, h = (int(round(rect[k])) for k in ("x", "y", "w", "h"))
    crop = Image.fromarray(shot[y:y + h, x:x + w])
    return np.asarray(crop.resize((size, size), Image.BOX))


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def slider_x(rect: dict, value: float) -> int:
    """Screen x of `value` on a slider (its frame starts at rect x; the label is drawn to its right)."""
    frac = (value - rect["min"]) / (rect["max"] - rect["min"])
    return int(rect["x"] + 6 + frac * (rect["frame_w"] - 12))


def centre(rect: dict) -> tuple[int, int]:
    return int(rect["x"] + min(rect["w"], 120) / 2), int(rect["y"] + rect["h"] / 2)


def test_explorer_drag_click_and_pixels_match_core(launch, gui_tools, tiny_ckpt: Path) -> None:
    app = launch(tiny_ckpt)
    st = app.wait_shown("first frame", timeout=60)
    assert st["model"]["c_dim"] == 5 and st["model"]["class_names"][0] == "cat"
    assert not st["status_error"], st["status"]
    assert st["settings"]["seeds"] == [[0, 1.0]] and st["settings"]["classes"] == [[0, 1.0]]
    res = st["model"]["resolution"]
    rects = st["rects"]
    for name in ("image", "seed_slider", "psi_slider"):
        assert rects[name]["visible"], name
    # The view keeps the image square and fills most of the window's height.
    assert abs(rects["image"]["w"] - rects["image"]["h"]) <= 1 and rects["image"]["h"] > 600

    settings0 = st["settings"]
    shot0 = app.screenshot("01_first_start")
    img0 = view_region(shot0, rects["image"], res)
    assert mad(img0, core_image(tiny_ckpt, st["settings"])) < MATCH

    # 1. Drag the psi slider from 1.0 down toward -0.6: truncation past the class mean.
    r = rects["psi_slider"]
    y = int(r["y"] + r["h"] / 2)
    x0, x1 = slider_x(r, 1.0), slider_x(r, -0.6)
    xm = (x0 + x1) // 2
    app.drag(y, x0, [xm, x1], "psi drag")
    st = app.wait_shown("psi drag", lambda s: s["settings"]["psi"] < 0.0)
    assert -0.9 < st["settings"]["psi"] < -0.3
    shot1 = app.screenshot("02_psi_dragged")
    img1 = view_region(shot1, st["rects"]["image"], res)
    assert mad(img1, img0) > 2 * MATCH, "dragging psi did not change the image"
    assert mad(img1, core_image(tiny_ckpt, st["settings"])) < MATCH

    # 2. Drag the seed slider to the right: a new seed.
    r = st["rects"]["seed_slider"]
    y = int(r["y"] + r["h"] / 2)
    x0, x1 = slider_x(r, 0), slider_x(r, 400)
    app.drag(y, x0, [x1], "seed drag")
    st = app.wait_shown("seed drag", lambda s: s["settings"]["seeds"][0][0] > 100)
    shot2 = app.screenshot("03_seed_dragged")
    img2 = view_region(shot2, st["rects"]["image"], res)
    assert mad(img2, img1) > 2 * MATCH, "dragging the seed slider did not change the image"
    assert mad(img2, core_image(tiny_ckpt, st["settings"])) < MATCH

    # 3. Click class 3 ("fish") in the class list.
    x, y = centre(st["rects"]["class_items"]["3"])
    app.xdotool("mousemove", x, y, "sleep", 0.15, "click", 1)
    st = app.wait_shown("class 3", lambda s: s["settings"]["classes"] == [[3, 1.0]])
    shot3 = app.screenshot("04_class3_clicked")
    img3 = view_region(shot3, st["rects"]["image"], res)
    assert mad(img3, img2) > 2 * MATCH, "picking a class did not change the image"
    assert mad(img3, core_image(tiny_ckpt, st["settings"])) < MATCH

    # 4. Click the thumbnail of class 1 in the grid (cells are 76 px, 4 per row; class 1 = row 0, col 1).
    g = st["rects"]["class_grid"]
    app.xdotool("mousemove", int(g["x"] + 76 * 1.5), int(g["y"] + 38), "sleep", 0.15, "click", 1)
    st = app.wait_shown("class 1 from the grid", lambda s: s["settings"]["classes"] == [[1, 1.0]])
    img4 = view_region(app.screenshot("05_grid_class1"), st["rects"]["image"], res)
    assert mad(img4, core_image(tiny_ckpt, st["settings"])) < MATCH
    assert st["main_window"] == st["viewport"]

    # 5. Resize the window: the main window (not Dear PyGui's primary window, see Explorer.build_ui) follows
    # the viewport, and the view lays the image out again, still matching the core's image.
    app.xdotool("search", "--name", "StyleGAN-XL explorer", "windowsize", 1200, 800)
    st = app.wait_for("resized", lambda s: s["viewport"] == [1200, 800] and s["main_window"] == [1200, 800]
                      and s["rects"]["image"]["h"] < rects["image"]["h"] - 100)
    st = app.wait_shown("resized (drawn)")
    img5 = view_region(app.screenshot("06_resized"), st["rects"]["image"], res)
    assert mad(img5, core_image(tiny_ckpt, st["settings"])) < MATCH
    print(f"screen vs core MAD: first {mad(img0, core_image(tiny_ckpt, settings0)):.2f}, "
          f"class1 {mad(img4, core_image(tiny_ckpt, st['settings'])):.2f}; "
          f"changes: psi {mad(img1, img0):.1f}, seed {mad(img2, img1):.1f}, class {mad(img3, img2):.1f}, "
          f"grid {mad(img4, img3):.1f}")
    assert not st["status_error"], st["status"]


def test_drag_shows_previews_and_ends_on_the_exact_frame(launch, gui_tools, tiny_ckpt: Path) -> None:
    """Progressive refinement in the real window: while the psi slider is held and moved the view may show
    bf16 previews; once the input rests the exact frame of the last position is on screen, and stays."""
    app = launch(tiny_ckpt)
    app.wait_shown("first frame", timeout=60)
    # The bf16 plan is measured in the background after the load; previews need it settled.
    st = app.wait_for("bf16 plan", lambda s: s["preview"]["state"] not in ("waiting", "measuring"), timeout=120)
    previews_possible = st["preview"]["state"] == "ready" and st["preview"]["progressive"]
    res = st["model"]["resolution"]
    r = st["rects"]["psi_slider"]
    y = int(r["y"] + r["h"] / 2)
    xs = [slider_x(r, v) for v in (1.0, 0.8, 0.6, 0.4, 0.2, 0.0)]
    app.drag(y, xs[0], xs[1:], "psi drag")
    st = app.wait_shown("exact frame at rest", lambda s: abs(s["settings"]["psi"]) < 0.1)
    assert not st["displayed_preview"] and st["displayed"] == st["settings"]
    # The press and the release (XTest: device events) woke the UI loop through XInput 2 raw events (the moves
    # are pointer warps, which make none). Each came after frames without input, so each woke it.
    assert st["input_wake"]["on"], st["input_wake"]["note"]
    assert st["input_wake"]["wakes"] >= 1, st["input_wake"]
    if previews_possible:  # this CPU has native bf16 and some layer measured faster in it
        assert st["renderer_stats"]["previews"] >= 1, st["renderer_stats"]
    img = view_region(app.screenshot("07_exact_after_drag"), st["rects"]["image"], res)
    assert mad(img, core_image(tiny_ckpt, st["settings"])) < MATCH
    frames = st["ui_frames"]
    later = app.wait_for("more UI frames", lambda s: s["ui_frames"] >= frames + 10)
    assert later["displayed"] == st["displayed"] and not later["displayed_preview"]  # nothing replaced it
    print(f"preview: {st['preview']['text']}; renderer {st['renderer_stats']}")


def test_slider_moves_are_latched_into_the_frame_that_reads_them(launch, gui_tools, tiny_ckpt: Path) -> None:
    """explorer.slider_latch: while a slider is dragged, the app computes the value Dear ImGui's slider takes for
    the pointer's position and applies it before the UI frame that reads the move. Every move of these drags
    (a float slider pressed on its grab, so with ImGui's grab offset, and an int slider pressed off its grab)
    must be predicted exactly: latched, and no miss (a miss would be undone, but would show ImGui and the model
    here disagree). The frame at rest is the exact one of where the slider ended, as without latching."""
    app = launch(tiny_ckpt)
    st = app.wait_shown("first frame", timeout=60)
    res = st["model"]["resolution"]
    assert st["slider_latch"] == {"on": True, "latched": 0, "misses": 0}
    r = st["rects"]["psi_slider"]
    y = int(r["y"] + r["h"] / 2)
    x_grab = slider_x(r, 1.0) + 3  # on the grab, right of its centre: ImGui keeps that offset under the pointer
    xs = [x_grab - 3, x_grab - 17, x_grab - 40, x_grab - 41, x_grab - 90, x_grab - 60, x_grab - 17]
    app.drag(y, x_grab, xs, "psi drag", device_events=True)
    st = app.wait_shown("psi at rest", lambda s: s["settings"]["psi"] < 1.0)
    psi_moves = st["slider_latch"]["latched"]
    assert st["slider_latch"]["misses"] == 0, st["slider_latch"]
    # Nearly every move latched: one the X server takes in between the app's question and the frame's own read of
    # the input (a window of well under a millisecond per frame) is read as before, without a latch.
    assert psi_moves >= len(xs) - 2, st["slider_latch"]
    r = st["rects"]["seed_slider"]
    y = int(r["y"] + r["h"] / 2)
    x0 = int(r["x"] + r["frame_w"] / 2)  # off the grab (seed 0 sits at the left end): the value jumps there
    xs = [x0 + 1, x0 + 7, x0 + 30, x0 - 55, x0 - 54, int(r["x"] + r["frame_w"]) + 20, x0 + 11]
    app.drag(y, x0, xs, "seed drag", device_events=True)
    st = app.wait_shown("seed at rest", lambda s: s["settings"]["seeds"][0][0] > 0 and not s["mouse_held"])
    assert st["slider_latch"]["misses"] == 0, st["slider_latch"]
    assert st["slider_latch"]["latched"] - psi_moves >= len(xs) - 2, st["slider_latch"]
    img = view_region(app.screenshot("08_after_latched_drags"), st["rects"]["image"], res)
    assert mad(img, core_image(tiny_ckpt, st["settings"])) < MATCH
    assert not st["status_error"], st["status"]


def test_pad_drag_moves_the_seed_blend_by_the_pointer_s_path(launch, gui_tools, tiny_ckpt: Path) -> None:
    """The 2-D seed pad in the real window: a drag moves the position by exactly the pointer's path
    (PAD_PIXELS_PER_SEED px per seed; the app reads the pointer right before each frame, so that frame shows the
    move), measured from the press (back where it was pressed, the frame comes from the cache), the settings blend
    the four nearest grid seeds, and the exact frame of the end position stays."""
    from explorer.panels.latent import PAD_PIXELS_PER_SEED, SEED_GRID_STRIDE
    from explorer.renderer import grid_seed_weights

    app = launch(tiny_ckpt)
    st = app.wait_shown("first frame", timeout=60)
    pad = st["rects"]["pad"]
    cx, cy = int(pad["x"] + pad["w"] / 2), int(pad["y"] + pad["h"] / 2)
    app.drag(cy, cx, [cx + 20, cx + 30, cx + 35], "pad drag", device_events=True, ys=[cy + 10, cy + 5, cy - 7])
    expected = grid_seed_weights(0, (35 / PAD_PIXELS_PER_SEED, -7 / PAD_PIXELS_PER_SEED), SEED_GRID_STRIDE)
    st = app.wait_shown("pad at rest", lambda s: len(s["settings"]["seeds"]) == 4)
    got = {s: w for s, w in st["settings"]["seeds"]}
    assert got.keys() == dict(expected).keys()
    for seed, w in expected:
        assert abs(got[seed] - w) < 1e-6, (got, expected)
    # A second drag away and back to where it was pressed: the same position exactly, its frame from the cache.
    hits, end = st["renderer_stats"]["cache_hits"], st["settings"]
    app.drag(cy, cx, [cx + 10, cx + 13, cx], "pad drag back", device_events=True, ys=[cy - 5, cy - 9, cy])
    st = app.wait_shown("pad back at rest", lambda s: not s["mouse_held"])
    assert st["settings"] == end  # not merely close: the sum of the moves would drift in the last digits
    assert st["renderer_stats"]["cache_hits"] > hits, st["renderer_stats"]
    frames = st["ui_frames"]
    later = app.wait_for("more UI frames", lambda s: s["ui_frames"] >= frames + 5)
    assert later["displayed"] == st["settings"] and not later["displayed_preview"]
    assert not st["status_error"], st["status"]


def test_bad_checkpoint_shows_in_status_bar_and_app_keeps_running(launch, tmp_path: Path) -> None:
    bad = tmp_path / "broken.sgxl"
    bad.write_bytes(b"this is not a zip archive")
    app = launch(bad)
    st = app.wait_for("load error in the status bar", lambda s: s["status_error"], timeout=60)
    assert "broken.sgxl" in st["status"] and "not a .sgxl checkpoint" in st["status"]
    frames = st["ui_frames"]
    st = app.wait_for("UI frames after the error", lambda s: s["ui_frames"] >= frames + 5)
    assert app.proc.poll() is None and st["model"] is None and st["displayed"] is None


def test_without_display_the_process_exits_2_instead_of_aborting(tiny_ckpt: Path) -> None:
    """`python -m explorer.app` with no DISPLAY: one line of advice and exit code 2, not a GLFW SIGABRT."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run([sys.executable, "-m", "explorer.app", "--ckpt", str(tiny_ckpt)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "no display" in lines[0] and "sgxl generate" in lines[0]


def test_sgxl_explore_without_display(monkeypatch, capsys, tiny_ckpt: Path) -> None:
    """The CLI verb reaches `explorer.app.main` and returns its exit code."""
    from core.cli import main as sgxl

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert sgxl(["explore", str(tiny_ckpt), "--device", "cpu"]) == 2
    assert "sgxl generate" in capsys.readouterr().err
