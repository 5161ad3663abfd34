"""The explorer given hostile files: the error goes to the status bar, the loaded model stays, the app runs.

Headless panel tests drive the Checkpoint panel exactly as a click does; one GUI test opens a hostile
file in the real app under Xvfb.
"""

from __future__ import annotations

import json
from pathlib import Path

import dearpygui.dearpygui as dpg
import pytest

from core.io import files
from explorer.app import Explorer
from tests.hostile import deflated_zeros_member, read_sgxl, rewrite_sgxl
from tests.test_disk_full import FullDisk, temp_files


def _nan_first(t: dict) -> None:
    name = "G.synthesis.L0_36_128.weight"
    t[name] = t[name].clone()
    t[name].view(-1)[0] = float("nan")


def _huge(cfg: dict) -> None:
    cfg["generator"]["synthesis"]["channel_base"] = 2**24
    cfg["generator"]["synthesis"]["channel_max"] = 16384


def _zip_bomb(path: Path, base: Path) -> Path:
    cfg, _ = read_sgxl(base)
    return deflated_zeros_member(path, "model.safetensors", 96 * 2**20, others={"config.json": json.dumps(cfg)})


@pytest.mark.parametrize("kind, words", [("nan", "non-finite"), ("huge", "--allow-large"), ("bomb", "zip bomb"),
                                         ("types", "must be an integer")])
def test_hostile_checkpoint_goes_to_the_status_bar(app: Explorer, tiny_ckpt: Path, tmp_path: Path, kind: str,
                                                   words: str) -> None:
    bad = tmp_path / f"{kind}.sgxl"
    if kind == "nan":
        rewrite_sgxl(tiny_ckpt, bad, tensors=_nan_first)
    elif kind == "huge":
        rewrite_sgxl(tiny_ckpt, bad, config=_huge)
    elif kind == "bomb":
        _zip_bomb(bad, tiny_ckpt)
    else:
        rewrite_sgxl(tiny_ckpt, bad, config=lambda c: c["generator"]["mapping"].__setitem__("w_dim", "512"))
    dpg.set_value("ckpt.path", str(bad))
    app.invoke("ckpt.load")
    app.tick()  # the load error arrives as a renderer event
    assert app.status_error and bad.name in app.status_text and words in app.status_text, app.status_text
    assert app.info is not None and app.info.path == str(tiny_ckpt)  # the good model stays loaded
    app.invoke("latent.seed_input", 5)  # and the app keeps rendering it
    app.tick()
    app.after_render(33.0)
    assert app.frame is not None and app.frame.settings.seeds == ((5, 1.0),)


def test_capture_on_a_full_disk_is_a_status_message(app: Explorer, tmp_path: Path, monkeypatch) -> None:
    app.tick()
    app.after_render(33.0)
    assert app.frame is not None
    caps = tmp_path / "caps"
    dpg.set_value("capture.dir", str(caps))
    monkeypatch.setattr(files, "open_temp", FullDisk(room=100))
    app.invoke("capture.save")
    assert app.status_error and "disk is full" in app.status_text
    assert list(caps.iterdir()) == [] and temp_files(caps) == []
    monkeypatch.undo()
    app.invoke("capture.save")  # space again: the same button works
    assert not app.status_error and len(list(caps.glob("*.png"))) == 1


def test_gui_shows_a_hostile_checkpoint_error_and_keeps_running(launch, tiny_ckpt: Path, tmp_path: Path) -> None:
    bad = rewrite_sgxl(tiny_ckpt, tmp_path / "diverged.sgxl", tensors=_nan_first)
    app = launch(bad)
    st = app.wait_for("load error in the status bar", lambda s: s["status_error"], timeout=60)
    assert "diverged.sgxl" in st["status"] and "non-finite" in st["status"], st["status"]
    frames = st["ui_frames"]
    st = app.wait_for("UI frames after the error", lambda s: s["ui_frames"] >= frames + 5)
    assert app.proc.poll() is None and st["model"] is None

