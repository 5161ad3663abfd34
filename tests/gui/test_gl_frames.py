"""Frames as OpenGL textures (explorer/gl_frames.py) in the real explorer under Xvfb + Mesa.

What is checked, per path:
- the GL texture the image widget draws holds exactly the uint8 image `Renderer.render_sync` makes (read
  back from the app with `--test-texture-file`), bit for bit;
- the screen shows it: the screenshot sampled at the screen pixel nearest each texel's centre. The view
  magnifies 32 texels to ~780 pixels with bilinear filtering, so such a pixel sits within half a pixel,
  i.e. 0.02 texel, of the centre: it can differ from the texel by 2% of a neighbour step, which rounds to
  0 on these smooth images (measured: 0 everywhere, on both paths, at 32x32 and 64x64); one level is
  allowed for Mesa's rounding, while a wrong frame differs by tens of levels on average;
- opening a model of another resolution gets a texture of the new size, still exact;
- the fallback to Dear PyGui's raw textures, forced at two stages of the GL path, says so in one log line
  and shows the same pixels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.io.checkpoint import save_checkpoint
from explorer.gl_frames import FAULT_ENV
from explorer.renderer import Renderer, RenderSettings
from tests.gui.conftest import CLASS_NAMES, ExplorerProcess
from tests.helpers import REPO, make_tiny_generator

pytestmark = [pytest.mark.gui]

FALLBACK_LINE = "OpenGL frame upload unavailable"
GL_HOST_PATHS = ("gl", "gl-pbo")
CENTRE_MAX = 1  # max abs difference (levels) of a texel-centre screen pixel from the texel (see module doc)
CENTRE_MEAN = 0.05  # ... and on average


@pytest.fixture(scope="module")
def ckpt64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second model at another resolution (64x64), the same class names."""
    path = tmp_path_factory.mktemp("ckpt64") / "tiny64.sgxl"
    return save_checkpoint(path, make_tiny_generator(64, c_dim=5, seed=1), {"kimg": 1.0, "class_names": CLASS_NAMES})


def settings_from(d: dict) -> RenderSettings:
    """The app's settings dict (JSON: lists) -> RenderSettings (tuples), for render_sync."""
    tuples = {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
              for k, v in d.items()}
    tuples["ckpt"] = ""  # the test's renderer loads the same file under its own key
    return RenderSettings(**tuples)


def render_sync(ckpt: Path, settings: dict) -> np.ndarray:
    renderer = Renderer("cpu", threaded=False)
    try:
        renderer.load(ckpt)
        return renderer.render_sync(settings_from(settings))
    finally:
        renderer.close()


def texel_centres(shot: np.ndarray, rect: dict, size: int) -> np.ndarray:
    """uint8 [size, size, 3]: the screen pixel nearest each texel centre of the image rectangle."""
    x0, y0, w, h = rect["x"], rect["y"], rect["w"], rect["h"]
    centres = (np.arange(size) + 0.5) / size
    xs = np.floor(x0 + centres * w).astype(int)
    ys = np.floor(y0 + centres * h).astype(int)
    return shot[ys[:, None], xs[None, :]]


def assert_screen_shows(app: ExplorerProcess, st: dict, expected: np.ndarray, name: str) -> None:
    shot = app.screenshot(name)
    got = texel_centres(shot, st["rects"]["image"], expected.shape[0]).astype(int)
    diff = np.abs(got - expected.astype(int))
    print(f"{name}: texel centres vs render_sync: max {diff.max()}, mean {diff.mean():.3f}")
    assert diff.max() <= CENTRE_MAX and diff.mean() < CENTRE_MEAN, (diff.max(), diff.mean())


def fallback_lines(app: ExplorerProcess) -> list[str]:
    return [line for line in app.logs().splitlines() if FALLBACK_LINE in line]


def wait_texture(app: ExplorerProcess, what: str, pred=lambda s: True) -> tuple[dict, np.ndarray]:
    """Wait until the frame on screen is in the texture PNG; returns the state and the texture's RGBA."""
    st = app.wait_shown(what, lambda s: pred(s) and s["texture_file_settings"] == s["displayed"], timeout=90)
    return st, np.asarray(Image.open(app.state_file.with_name("texture.png")))


def test_gl_texture_holds_core_pixels_and_follows_a_new_resolution(launch, gui_tools, tiny_ckpt: Path,
                                                                   ckpt64: Path) -> None:
    app = launch(tiny_ckpt, recent=[ckpt64], args=("--test-texture-file", "{workdir}/texture.png"))
    st, texture = wait_texture(app, "first frame")
    view = st["frame_view"]
    # "auto" times both host uploads per texture size and keeps the faster (explorer/gl_frames.py): with glTexSubImage2D
    # or through a pixel-buffer object, both are the GL path (on a loaded machine either can measure faster).
    assert view["frame_path"] in GL_HOST_PATHS, view
    assert view["gl"]["vendor"] and view["gl"]["renderer"] and view["gl"]["version"]
    expected = render_sync(tiny_ckpt, st["displayed"])
    assert texture.shape == (32, 32, 4) and st["image_shape"] == [32, 32]
    assert np.array_equal(texture[..., :3], expected) and (texture[..., 3] == 255).all()
    assert_screen_shows(app, st, expected, "gl_01_first_frame")

    # Another model, 64x64: the view finds a texture of the new size and keeps the GL path.
    app.xdotool("mousemove", *centre_of(st["rects"]["recent_items"][str(ckpt64.resolve())]), "sleep", 0.15,
                "click", 1)
    st, texture = wait_texture(app, "the 64x64 model", lambda s: s["model"] and s["model"]["resolution"] == 64)
    assert st["image_shape"] == [64, 64] and texture.shape == (64, 64, 4)
    assert st["frame_view"]["frame_path"] in GL_HOST_PATHS and st["frame_view"]["uploads"] >= 2
    expected64 = render_sync(ckpt64, st["displayed"])
    assert np.array_equal(texture[..., :3], expected64)
    assert_screen_shows(app, st, expected64, "gl_02_model64")
    assert not fallback_lines(app), app.logs()
    assert not st["status_error"], st["status"]


@pytest.mark.parametrize("stage", ["find", "upload"])
def test_fallback_to_raw_textures_shows_the_same_pixels(launch, gui_tools, tiny_ckpt: Path, ckpt64: Path,
                                                        stage: str) -> None:
    """The GL path breaks (its texture is not found / its first upload fails): one log line, raw textures."""
    app = launch(tiny_ckpt, recent=[ckpt64], env={FAULT_ENV: stage},
                 args=("--test-texture-file", "{workdir}/texture.png"))
    st = app.wait_shown("first frame", timeout=90)
    view = st["frame_view"]
    assert view["frame_path"] == "raw" and f"{FAULT_ENV}={stage}" in view["fallback_reason"], view
    assert view["gl"]["renderer"]  # the GL facts were read before it broke
    assert st["texture_file_settings"] is None  # raw textures cannot be read back
    assert_screen_shows(app, st, render_sync(tiny_ckpt, st["displayed"]), f"raw_{stage}_01_first_frame")

    if stage == "find":
        assert len(fallback_lines(app)) == 1, app.logs()
        return
    # The raw path also follows a model of another resolution.
    app.xdotool("mousemove", *centre_of(st["rects"]["recent_items"][str(ckpt64.resolve())]), "sleep", 0.15,
                "click", 1)
    st = app.wait_shown("the 64x64 model", lambda s: s["model"] and s["model"]["resolution"] == 64, timeout=90)
    assert st["image_shape"] == [64, 64] and st["frame_view"]["frame_path"] == "raw"
    assert_screen_shows(app, st, render_sync(ckpt64, st["displayed"]), f"raw_{stage}_02_model64")
    assert len(fallback_lines(app)) == 1, app.logs()
    assert not st["status_error"], st["status"]


def centre_of(rect: dict) -> tuple[int, int]:
    return int(rect["x"] + min(rect["w"], 120) / 2), int(rect["y"] + rect["h"] / 2)


@pytest.mark.parametrize("path", ["gl", "gl-pbo"])
def test_both_host_uploads_write_exactly_the_frame(xvfb: str, path: str) -> None:
    """Random (sharp) frames of two sizes through glTexSubImage2D from client memory and through a pixel-buffer
    object: the texture reads back as exactly the last frame (bench/upload_probe.py: the real explorer window
    fed synthetic frames)."""
    env = dict(os.environ, DISPLAY=xvfb, PYTHONPATH=str(REPO))
    env.pop("WAYLAND_DISPLAY", None)
    out = subprocess.run([sys.executable, str(REPO / "bench" / "upload_probe.py"), "--sizes", "16,48", "--path",
                          path, "--frames", "3"], cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    assert [r["size"] for r in results] == [16, 48]
    for r in results:
        assert r["path"] == path and r["texture_matches_frame"] is True and not r["fallback_reason"], r
    assert FALLBACK_LINE not in out.stderr
