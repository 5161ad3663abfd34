"""The real explorer window with official StyleGAN2 and StyleGAN3 files (the NVlabs fixtures), under Xvfb.

Each test opens an official `.pkl` as a user would, takes a screenshot and compares the image view
(box-downscaled to the model's resolution, see test_explorer_gui.py for the tolerance) with what
`Renderer.render_sync` makes for the settings the app reports. Which panels show depends on the model:
an unconditional model has no class panel, StyleGAN2 has noise controls and no input transform.
Screenshots are kept under $SGXL_GUI_SHOTS (default /tmp/sgxl_gui_shots) for a human to look at.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from explorer.renderer import Renderer, RenderSettings
from tests.gui.test_explorer_gui import MATCH, centre, mad, view_region
from tests.helpers import OFFICIAL_FIXTURES

pytestmark = [pytest.mark.gui]


def fixture(name: str) -> Path:
    path = OFFICIAL_FIXTURES / f"{name}.pkl"
    if not path.exists():
        pytest.skip(f"official fixture {path} not found")
    return path


def settings_from(d: dict) -> RenderSettings:
    """The app's reported settings (JSON lists) as the RenderSettings they came from."""
    pairs = {k: tuple(tuple(p) for p in d[k]) for k in ("seeds", "classes", "mix_classes")}
    return RenderSettings(**{**d, **pairs, "mix_layers": tuple(d["mix_layers"]), "translate": tuple(d["translate"]),
                             "ckpt": ""})


def reference(path: Path, settings: dict) -> np.ndarray:
    r = Renderer("cpu", threaded=False)
    r.load(path)
    return r.render_sync(settings_from(settings))


def test_stylegan2_file_in_the_explorer(launch, gui_tools) -> None:
    path = fixture("sg2_tiny32")
    app = launch(path)
    st = app.wait_shown("first frame of the StyleGAN2 file", timeout=90)
    assert not st["status_error"], st["status"]
    assert "StyleGAN2" in st["status"] and st["model"]["label"].startswith("StyleGAN2")
    assert (st["model"]["c_dim"], st["model"]["num_ws"], st["model"]["has_noise"]) == (5, 8, True)
    panels = st["panels_shown"]
    assert panels["class"] and panels["noise"] and not panels["xform"], panels
    img = view_region(app.screenshot("sg2_01_opened"), st["rects"]["image"], 32)
    first = mad(img, reference(path, st["settings"]))
    assert first < MATCH

    # Pick class 3 in the class list: a conditional StyleGAN2 model changes its image with the class.
    x, y = centre(st["rects"]["class_items"]["3"])
    app.xdotool("mousemove", x, y, "sleep", 0.15, "click", 1)
    st = app.wait_shown("class 3", lambda s: s["settings"]["classes"] == [[3, 1.0]])
    img3 = view_region(app.screenshot("sg2_02_class3"), st["rects"]["image"], 32)
    assert mad(img3, img) > 2 * MATCH, "picking a class did not change the image"
    assert mad(img3, reference(path, st["settings"])) < MATCH
    print(f"StyleGAN2 screen vs render_sync MAD: first {first:.2f}, class 3 "
          f"{mad(img3, reference(path, st['settings'])):.2f}; class change {mad(img3, img):.1f}")


def test_unconditional_stylegan3_file_has_no_class_panel(launch, gui_tools) -> None:
    path = fixture("sg3t_tiny32")
    app = launch(path)
    st = app.wait_shown("first frame of the StyleGAN3-T file", timeout=90)
    assert not st["status_error"], st["status"]
    assert "StyleGAN3-T" in st["status"] and "unconditional" in st["status"]
    assert st["model"]["c_dim"] == 0 and st["settings"]["classes"] == []
    panels = st["panels_shown"]
    assert not panels["class"] and not panels["noise"] and panels["xform"], panels
    assert st["rects"]["class_items"] == {}
    shot = app.screenshot("sg3t_01_opened")
    img = view_region(shot, st["rects"]["image"], 32)
    first = mad(img, reference(path, st["settings"]))
    assert first < MATCH
    # The right column (the class panel's) is gone and the view takes its place: nothing is drawn right of it.
    assert not st["rects"]["right"]["shown"], st["rects"]["right"]
    right = st["rects"]["image"]["x"] + st["rects"]["image"]["w"] + 40
    assert right > st["viewport"][0] - 400  # the image is centred in the wider view
    column = shot[60:st["viewport"][1] - 60, int(right):st["viewport"][0] - 30]
    assert column.std() < 8, "something is drawn where the hidden class panel was"

    # Drag the seed slider: a new seed, still the image render_sync makes.
    r = st["rects"]["seed_slider"]
    y = int(r["y"] + r["h"] / 2)
    x0 = int(r["x"] + 6)
    app.xdotool("mousemove", x0, y, "sleep", 0.15, "mousedown", 1, "sleep", 0.15,
                "mousemove", x0 + 120, y, "sleep", 0.15, "mouseup", 1)
    st = app.wait_shown("seed drag", lambda s: s["settings"]["seeds"][0][0] > 50)
    img2 = view_region(app.screenshot("sg3t_02_seed_dragged"), st["rects"]["image"], 32)
    assert mad(img2, img) > 2 * MATCH, "dragging the seed slider did not change the image"
    assert mad(img2, reference(path, st["settings"])) < MATCH
    print(f"StyleGAN3-T screen vs render_sync MAD: first {first:.2f}, "
          f"after the drag {mad(img2, reference(path, st['settings'])):.2f}; seed change {mad(img2, img):.1f}")
