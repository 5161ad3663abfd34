"""The explorer's Invert panel: photo check, the worker child process, cancel, and loading the result.

Headless: the whole UI is built in a Dear PyGui context without a viewport and buttons are pressed
through `Explorer.invoke` (the path a click takes). A finished run directory is made by a stand-in
child that copies exactly the files the worker writes (explorer/invert_worker.py); the loaded frame
must then be core's synthesis of the pivot with the tuned generator, and the other panels must act
on that latent. One test runs the real worker (a 16x16 model, 3 + 2 steps) end to end; another
cancels a real worker mid-run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dearpygui.dearpygui as dpg
import numpy as np
import pytest
import torch
from PIL import Image

from core.inversion.edit import class_swap
from core.inversion.photo import load_photo
from core.io.checkpoint import load_checkpoint, save_checkpoint
from core.sampling import style_mix, to_uint8, ws_from_seeds
from explorer.app import Explorer
from explorer.invert_worker import PROGRESS_FILE
from tests.gui.conftest import CLASS_NAMES
from tests.helpers import REPO, make_tiny_generator

PIVOT_CLASS = 2


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """A 60x40 photo: the panel must show (and the worker use) its centre 40x40 square."""
    img = np.zeros((40, 60, 3), np.uint8)
    img[:, :, 0] = np.linspace(0, 255, 60, dtype=np.uint8)[None, :]
    img[:, 20:40, 2] = 200
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    Image.fromarray(img).save(path)
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, torch.nn.Module, torch.Tensor]:
    """The files a finished worker leaves (a 'tuned' 32x32 generator + pivot), and the G and ws inside."""
    run = tmp_path_factory.mktemp("template")
    G_tuned = make_tiny_generator(32, c_dim=5, seed=7)  # other weights than the original: a tuned copy
    with torch.no_grad():
        ws = ws_from_seeds(G_tuned, [5], PIVOT_CLASS) + 0.1 * torch.randn(1, G_tuned.num_ws, G_tuned.w_dim)
    save_checkpoint(run / "pti.sgxl", G_tuned, {"kind": "pti", "kimg": 12.5}, class_names=CLASS_NAMES,
                    extra_tensors={"pivot": {"ws": ws, "class": torch.tensor([PIVOT_CLASS])}})
    Image.fromarray(np.full((32, 32, 3), 77, np.uint8)).save(run / "preview.png")
    rows = [{"event": "start", "steps": 2, "pti_steps": 1, "class": PIVOT_CLASS, "class_name": "bird"},
            {"phase": "projection", "step": 1, "total": 2, "loss": 0.9, "psnr": 11.0},
            {"phase": "projection", "step": 2, "total": 2, "loss": 0.7, "psnr": 12.0},
            {"phase": "pti", "step": 1, "total": 1, "loss": 0.5, "psnr": 14.5},
            {"event": "done", "result": "pti.sgxl", "pti": {"psnr": 14.5}}]
    (run / PROGRESS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run, G_tuned, ws


def frame(app: Explorer) -> np.ndarray:
    app.tick()
    app.after_render(33.0)
    return app.frame.to_uint8()


def synth(G, ws) -> np.ndarray:
    with torch.no_grad():
        return to_uint8(G.synthesis(ws))[0]


def wait_exit(app: Explorer, timeout: float) -> None:
    panel = app.invert_panel
    deadline = time.time() + timeout
    while time.time() < deadline:
        panel.poll()
        if panel.proc is not None and not panel.running and panel._handled_exit:
            return
        time.sleep(0.1)
    raise AssertionError(f"the worker did not finish in {timeout} s: {panel.status_text}\n"
                         f"{panel.proc.stderr_tail() if panel.proc else ''}")


def copy_command(src: Path, dst: Path) -> list[str]:
    """A stand-in worker: writes the finished run's files into the output folder, then exits 0."""
    return [sys.executable, "-c", f"import shutil; shutil.copytree({str(src)!r}, {str(dst)!r}, dirs_exist_ok=True)"]


# ----------------------------------------------------------------------------- headless


def test_photo_check_shows_the_centre_crop_and_bad_photos_say_why(app: Explorer, photo: Path,
                                                                  tmp_path: Path) -> None:
    panel = app.invert_panel
    app.invoke("invert.photo", str(photo))
    st = panel.test_state()
    assert st["crop_shape"] == [32, 32] and not st["status_error"]
    assert "60x40 RGB" in dpg.get_value("invert.photo_info") and "crop 40x40 at (10, 0)" in dpg.get_value(
        "invert.photo_info")
    shown = np.asarray(dpg.get_value(panel._textures["crop"]), np.float32).reshape(32, 32, 4)[..., :3]
    expected = load_photo(photo, 32).to_uint8()
    assert np.array_equal(np.rint(shown * 255).astype(np.uint8), expected)  # exactly the worker's target

    # Crop sliders: half the short side, centred at the right edge -> kept inside the photo; the preview and
    # the worker's --box follow.
    app.invoke("invert.crop_zoom", 0.5)
    app.invoke("invert.crop_centre", [1.0, 0.5, 0.0, 0.0])
    assert "crop 20x20 at (40, 10)" in dpg.get_value("invert.photo_info")
    shown = np.asarray(dpg.get_value(panel._textures["crop"]), np.float32).reshape(32, 32, 4)[..., :3]
    assert np.array_equal(np.rint(shown * 255).astype(np.uint8), load_photo(photo, 32, (40, 10, 20)).to_uint8())
    cmd = panel.request().command()
    assert cmd[cmd.index("--box") + 1] == "40,10,20"
    app.invoke("invert.crop_zoom", 1.0)
    app.invoke("invert.crop_centre", [0.5, 0.5, 0.0, 0.0])

    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    dpg.set_value("invert.photo", str(bad))
    app.invoke("invert.start")
    assert panel.proc is None and panel.status_error and "not an image file" in panel.status_text
    assert app.status_error and "invert:" in app.status_text and panel.test_state()["crop_shape"] is None
    dpg.set_value("invert.photo", str(tmp_path / "missing.jpg"))
    app.invoke("invert.start")
    assert panel.proc is None and "no photo at" in panel.status_text


def test_finished_run_loads_tuned_model_and_latent_for_every_panel(app: Explorer, tiny_ckpt: Path, photo: Path,
                                                                   finished_run, tmp_path: Path) -> None:
    src, G_tuned, ws = finished_run
    G_orig = load_checkpoint(tiny_ckpt).generator
    panel = app.invert_panel
    out = tmp_path / "inv"
    dpg.set_value("invert.photo", str(photo))
    dpg.set_value("invert.run_dir", str(out))
    panel.start(command=copy_command(src, out))
    panel.proc.popen.wait(timeout=120)
    panel.poll()
    st = panel.test_state()
    assert st["result"] == str(out / "pti.sgxl") and st["done"] and not st["status_error"], st["status"]
    assert "PSNR 14.50 dB" in st["status"] and st["step"] == 3 and st["total"] == 3
    assert dpg.get_value("invert.series.projection")[:2] == [[1.0, 2.0], [0.9, 0.7]]
    assert dpg.get_value("invert.series.pti")[:2] == [[3.0], [0.5]]  # PTI steps count on after projection
    assert st["preview_shape"] == [32, 32] and dpg.is_item_shown("invert.revert")

    # The tuned generator is the model, the pivot is the latent: the frame is core's G_tuned(ws).
    assert app.info.path == str(out / "pti.sgxl") and app.state.latent == st["latent"] != ""
    assert app.state.class_idx == PIVOT_CLASS and app.state.psi == 1.0
    assert np.array_equal(frame(app), synth(G_tuned, ws))
    # psi truncates toward the class centre, the class list swaps classes by offset transfer, style mixing
    # takes layers from a seed: each on the inverted latent.
    w_avg = G_tuned.mapping.w_avg
    app.invoke("latent.psi", 0.5)
    expected = synth(G_tuned, w_avg[PIVOT_CLASS] + (ws - w_avg[PIVOT_CLASS]) * 0.5)
    assert np.abs(frame(app).astype(int) - expected.astype(int)).max() <= 1
    app.invoke("latent.psi", 1.0)
    app.invoke("class.item.4", True)
    swapped = class_swap(G_tuned, ws, PIVOT_CLASS, 4)
    assert np.abs(frame(app).astype(int) - synth(G_tuned, swapped).astype(int)).max() <= 1
    app.invoke("mix.seed", 9)
    app.invoke("mix.layer.0", True)
    app.invoke("mix.enabled", True)
    mixed = style_mix(swapped, ws_from_seeds(G_tuned, [9], 4), [0])
    assert np.abs(frame(app).astype(int) - synth(G_tuned, mixed).astype(int)).max() <= 1
    app.invoke("mix.enabled", False)
    app.invoke("class.item.2", True)

    # Interpolation with a generated image: seed B and the "seed -> seed B" slider keep the latent and blend
    # the photo's ws (in class 2) toward seed 7's ws in the same class.
    app.invoke("latent.seed_b", 7)
    app.invoke("latent.lerp_t", 0.25)
    assert app.state.latent
    blended = 0.75 * class_swap(G_tuned, ws, PIVOT_CLASS, 2) + 0.25 * ws_from_seeds(G_tuned, [7], 2)
    assert np.abs(frame(app).astype(int) - synth(G_tuned, blended).astype(int)).max() <= 1
    app.invoke("latent.lerp_t", 0.0)

    # Revert: the original generator comes back and keeps the latent (same ws shape).
    app.invoke("invert.revert")
    assert app.info.path == str(tiny_ckpt) and app.state.latent == st["latent"]
    assert "latent is kept" in panel.status_text and not dpg.is_item_shown("invert.revert")
    assert np.array_equal(frame(app), synth(G_orig, ws))
    # A seed edit switches back to the seeds.
    app.invoke("latent.seed_input", 3)
    assert app.state.latent == "" and np.array_equal(frame(app), synth(G_orig, ws_from_seeds(G_orig, [3], 2)))


def test_latent_that_does_not_fit_the_model_is_dropped(app: Explorer, finished_run, photo: Path,
                                                       tmp_path: Path) -> None:
    src, _, _ = finished_run
    app.invert_panel.load_result(src / "pti.sgxl")
    assert app.state.latent
    small = save_checkpoint(tmp_path / "small.sgxl", make_tiny_generator(16, c_dim=5), {"kimg": 1})
    app.load_checkpoint_sync(str(small))  # 8 ws instead of 10
    assert app.state.latent == "" and "does not fit" in app.invert_panel.status_text
    frame(app)
    assert not app.status_error


def test_cancel_kills_the_worker_and_loads_nothing(app: Explorer, tiny_ckpt: Path, photo: Path,
                                                   tmp_path: Path) -> None:
    panel = app.invert_panel
    out = tmp_path / "cancelled"
    dpg.set_value("invert.photo", str(photo))
    dpg.set_value("invert.run_dir", str(out))
    dpg.set_value("invert.steps", 100000)
    dpg.set_value("invert.net_size", 32)
    app.invoke("invert.start")
    assert panel.running and dpg.is_item_shown("invert.cancel") and not dpg.is_item_shown("invert.start")
    pid = panel.proc.pid
    deadline = time.time() + 180  # the worker imports torch and builds its networks first: slow under load
    while panel.follower.global_step < 1 and panel.running and time.time() < deadline:
        time.sleep(0.2)
        panel.poll()
    assert panel.follower.global_step >= 1, panel.proc.stderr_tail()  # it was really inverting
    app.invoke("invert.cancel")
    assert not panel.running and panel.proc.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone and reaped
    assert "cancelled" in panel.status_text and dpg.is_item_shown("invert.start")
    panel.poll()  # the worker is reaped (above), so nothing can arrive later: no need to wait before looking
    assert not (out / "pti.sgxl").exists() and app.info.path == str(tiny_ckpt) and app.state.latent == ""
    assert panel.result_path is None and "cancelled" in panel.status_text


def test_explorer_process_never_imports_timm() -> None:
    """timm (triton's LLVM) crashes a process running Mesa's llvmpipe: the explorer must not load it."""
    code = ("import sys, explorer.app, explorer.panels.invert, explorer.invert_run, core.inversion.photo, "
            "core.inversion.edit; print(sorted(m for m in ('timm', 'triton', 'core.networks.feature_nets') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- the real worker


def test_real_worker_end_to_end_loads_the_result(app: Explorer, photo: Path, tmp_path: Path) -> None:
    G16 = make_tiny_generator(16, c_dim=3, seed=1)
    ckpt = save_checkpoint(tmp_path / "tiny16.sgxl", G16, {"kimg": 2}, class_names=["a", "b", "c"])
    app.load_checkpoint_sync(str(ckpt))
    panel = app.invert_panel
    out = tmp_path / "real"
    dpg.set_value("invert.photo", str(photo))
    dpg.set_value("invert.run_dir", str(out))
    dpg.set_value("invert.class", "1: b")
    for name, value in (("steps", 3), ("pti_steps", 2), ("net_size", 32)):
        dpg.set_value(f"invert.{name}", value)
    app.invoke("invert.start")
    wait_exit(app, 300)
    st = panel.test_state()
    assert st["result"] == str(out / "pti.sgxl") and not st["status_error"], st["status"]
    assert st["step"] == 5 and st["total"] == 5 and st["losses"] == 5 and st["preview_shape"] == [16, 16]
    tuned = load_checkpoint(out / "pti.sgxl")
    ws = tuned.extra_tensors["pivot"]["ws"]
    assert int(tuned.extra_tensors["pivot"]["class"][0]) == 1 and app.state.class_idx == 1
    assert app.info.path == str(out / "pti.sgxl") and app.state.latent
    assert np.array_equal(frame(app), synth(tuned.generator, ws))
    assert np.array_equal(frame(app), np.asarray(Image.open(out / "pti.png")))  # what the worker saw at the end
    assert app.invert_panel.original == (str(ckpt), "cpu")


def test_panel_and_cli_give_the_same_inversion(app: Explorer, tmp_path: Path) -> None:
    """The panel's worker and `sgxl invert` with the same photo, class and steps end in the same numbers.

    They used to drift apart after a few steps: the worker ran with another thread count (the float sums
    differ in the last bits and Adam amplifies that), loaded the photo through a crop box (no reduced JPEG
    decoding) and fed the perceptual network 224² where the CLI used its default. Now both build the same
    `InvertOptions` for `core.inversion.pipeline.run_invert`. The photo is a JPEG big enough to be decoded
    at reduced scale, and the panel's fields keep their defaults (crop, perceptual size) apart from these.
    """
    rng = np.random.default_rng(3)
    img = np.zeros((140, 200, 3), np.uint8)
    img[..., 0] = np.linspace(0, 255, 200, dtype=np.uint8)[None, :]
    img[40:100, 60:140, 1] = 220
    img = np.clip(img + rng.integers(0, 40, img.shape), 0, 255).astype(np.uint8)
    photo = tmp_path / "photo.jpg"
    Image.fromarray(img).save(photo, quality=90)
    G16 = make_tiny_generator(16, c_dim=3, seed=1)
    ckpt = save_checkpoint(tmp_path / "tiny16.sgxl", G16, {"kimg": 2}, class_names=["a", "b", "c"])
    app.load_checkpoint_sync(str(ckpt))
    gui, cli = tmp_path / "gui", tmp_path / "cli"
    dpg.set_value("invert.photo", str(photo))
    dpg.set_value("invert.run_dir", str(gui))
    dpg.set_value("invert.class", "1: b")
    dpg.set_value("invert.steps", 4)
    dpg.set_value("invert.pti_steps", 3)
    app.invoke("invert.start")
    command = [sys.executable, "-m", "core.cli", "invert", "--ckpt", str(ckpt), "--image", str(photo), "--class",
               "1", "--steps", "4", "--pti-steps", "3", "--out", str(cli), "--device", "cpu", "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 0, done.stderr
    wait_exit(app, 300)
    assert app.invert_panel.result_path == str(gui / "pti.sgxl"), app.invert_panel.status_text

    a, b = (json.loads((d / "metrics.json").read_text()) for d in (gui, cli))
    assert a["threads"] == b["threads"] and a["photo"] == b["photo"] and a["perceptual"] == b["perceptual"]
    assert "decoded the 200x140 JPEG at reduced scale" in a["photo"]["notes"][0]
    for phase, steps in (("projection", 4), ("pti", 3)):
        assert a[phase]["config"] | {"preview_every": 1} == b[phase]["config"] | {"preview_every": 1}
        rows_a, rows_b = a[phase]["steps"], b[phase]["steps"]
        assert len(rows_a) == len(rows_b) == steps
        for ra, rb in zip(rows_a, rows_b):
            assert ra["loss"] == pytest.approx(rb["loss"], rel=1e-6, abs=1e-7), (phase, ra, rb)
        assert a[phase]["final"]["psnr"] == pytest.approx(b[phase]["final"]["psnr"], abs=1e-4)
    # The step rows the panel plotted are the CLI's too.
    plotted = [r for r in map(json.loads, (gui / PROGRESS_FILE).read_text().splitlines()) if "phase" in r]
    cli_rows = b["projection"]["steps"] + b["pti"]["steps"]
    assert [r["loss"] for r in plotted] == pytest.approx([r["loss"] for r in cli_rows], rel=1e-5)
    ws_a, ws_b = (load_checkpoint(d / "pti.sgxl").extra_tensors["pivot"]["ws"] for d in (gui, cli))
    assert torch.allclose(ws_a, ws_b, atol=1e-6)
    for name in ("target.png", "projected.png", "pti.png"):
        diff = np.abs(np.asarray(Image.open(gui / name), np.int16) - np.asarray(Image.open(cli / name), np.int16))
        assert diff.max() <= 1, name
