"""The explorer's exact frames from the compiled synthesis (explorer/compiled.py), in the real app under Xvfb.

The user's path: open a checkpoint, frames render eagerly while a background process builds the compiled
synthesis, then the exact frames come from it - the same pixels as `Renderer.render_sync` up to one level (float
rounding), on screen too; a second start loads the built package and uses it from its first frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.networks import aot
from tests.gui.test_gl_frames import render_sync, texel_centres, wait_texture

pytestmark = [pytest.mark.gui,
              pytest.mark.skipif(aot.compiler() is None, reason="no C++ compiler to build a compiled synthesis")]


def test_exact_frames_come_from_the_compiled_synthesis_once_it_is_built(launch, gui_tools, tiny_ckpt: Path,
                                                                        tmp_path: Path) -> None:
    env = {"SGXL_COMPILED": "auto", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    app = launch(tiny_ckpt, env=env, args=("--test-texture-file", "{workdir}/texture.png"))
    st, _ = wait_texture(app, "the first frame")
    assert st["compiled"]["state"] in ("building", "ready")
    st = app.wait_for("the background build", lambda s: s["compiled"]["state"] != "building", timeout=900)
    assert st["compiled"]["state"] == "ready", app.logs()

    # A click on the psi slider asks for a new frame: its exact frame comes from the compiled synthesis.
    first = st["displayed"]
    r = st["rects"]["psi_slider"]
    app.xdotool("mousemove", int(r["x"] + 0.3 * r["frame_w"]), int(r["y"] + r["h"] / 2), "sleep", 0.15, "click", 1)
    st, texture = wait_texture(app, "a compiled exact frame",
                               lambda s: s["displayed"] != first and s["displayed_compiled"])
    expected = render_sync(tiny_ckpt, st["displayed"])  # the eager renderer
    diff = np.abs(texture[..., :3].astype(int) - expected.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.05, (diff.max(), diff.mean())
    shot = np.abs(texel_centres(app.screenshot("compiled_01_exact_frame"), st["rects"]["image"], 32).astype(int)
                  - expected.astype(int))
    assert shot.max() <= 2 and shot.mean() < 0.1, (shot.max(), shot.mean())  # + Mesa's rounding of one level
    assert st["compiled"]["frames"] >= 1 and not st["status_error"], st["status"]

    # A second start finds the package built: compiled from its first frame on, no build.
    again = launch(tiny_ckpt, env=env)
    st2 = again.wait_shown("the first frame of a second start", lambda s: s["displayed_compiled"])
    assert st2["compiled"]["state"] == "ready"
