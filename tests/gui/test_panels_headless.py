"""Every panel's callbacks, driven headlessly through the same path a click takes.

A Dear PyGui context without a viewport needs no display: the whole UI is built, and
`Explorer.invoke(tag, value)` sets a widget's value and runs its callback exactly as the main
loop does for a user's edit. The render settings that result must give the image `core` makes.
The renderer runs synchronously here (`threaded=False`), so every request is rendered at once.
"""

from __future__ import annotations

from pathlib import Path

import dearpygui.dearpygui as dpg
import numpy as np
import pytest
import torch
from PIL import Image

from core.errors import SGXLError
from core.io.checkpoint import load_checkpoint
from core.networks import precision
from core.sampling import style_mix, to_uint8, ws_from_seeds, z_from_seed
from explorer.app import Explorer, display_problem
from explorer.app import main as explorer_main
from explorer.renderer import input_transform, layer_image


@pytest.fixture(scope="module")
def G(tiny_ckpt: Path):
    return load_checkpoint(tiny_ckpt).generator


def render(app: Explorer) -> np.ndarray:
    return app.renderer.render_sync(app.state.settings(app.info))


def core(G, seed: int, cls: int, psi: float = 1.0) -> np.ndarray:
    with torch.no_grad():
        return to_uint8(G.synthesis(ws_from_seeds(G, [seed], cls, psi)))[0]


def show_frame(app: Explorer) -> None:
    """One UI frame without drawing: request/upload, then the post-draw bookkeeping."""
    app.tick()
    app.after_render(33.0)


def test_first_frame_is_the_core_image(app: Explorer, G) -> None:
    show_frame(app)
    assert app.frame is not None and app.frames_shown == 1
    assert np.array_equal(app.frame.to_uint8(), core(G, 0, 0))
    assert "Loaded tiny32.sgxl" in app.status_text and not app.status_error


def test_latent_seed_psi_and_slider_sync(app: Explorer, G) -> None:
    app.invoke("latent.seed_input", 7)
    app.invoke("latent.psi", 0.5)
    s = app.state.settings(app.info)
    assert s.seeds == ((7, 1.0),) and s.psi == 0.5 and s.is_plain
    assert dpg.get_value("latent.seed") == 7  # the slider follows the field
    assert np.array_equal(render(app), core(G, 7, 0, 0.5))
    app.invoke("latent.seed", 12)  # and the field follows the slider
    assert dpg.get_value("latent.seed_input") == 12 and app.state.seed == 12


def test_latent_pad_blends_the_four_nearest_seeds(app: Explorer, G) -> None:
    app.latent_panel.drag_by(25, 25)  # 50 px per seed -> offset (0.5, 0.5)
    assert app.state.offset == (0.5, 0.5)
    assert dpg.get_value("latent.offset")[:2] == [0.5, 0.5]
    seeds = app.state.settings(app.info).seeds
    assert seeds == ((0, 0.25), (1, 0.25), (1000, 0.25), (1001, 0.25))
    with torch.no_grad():
        ws = torch.stack([ws_from_seeds(G, [s], 0)[0] for s, _ in seeds]).mean(0, keepdim=True)
        expected = to_uint8(G.synthesis(ws))[0]
    got = render(app)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1  # same math, another summation order
    # Snap: the nearest grid seed becomes the origin.
    app.invoke("latent.offset", [0.6, 1.4])
    app.invoke("latent.snap")
    assert app.state.seed == 1001 and app.state.offset == (0.0, 0.0)
    assert np.array_equal(render(app), core(G, 1001, 0))


def test_latent_interpolation_and_animation(app: Explorer, G) -> None:
    app.invoke("latent.seed_b", 5)
    app.invoke("latent.lerp_t", 1.0)
    assert np.array_equal(render(app), core(G, 5, 0))
    app.invoke("latent.lerp_t", 0.5)
    assert app.state.settings(app.info).seeds == ((0, 0.5), (5, 0.5))
    app.invoke("latent.lerp_t", 0.0)
    app.invoke("latent.speed", 0.5)  # one round trip per 2 s
    app.invoke("latent.animate", True)
    start = app.latent_panel._anim_start
    app.latent_panel.tick(start + 1.0)  # half a period: at seed B
    assert app.state.lerp_t == pytest.approx(1.0)
    assert dpg.get_value("latent.lerp_t") == pytest.approx(1.0)
    app.latent_panel.tick(start + 0.5)
    assert app.state.lerp_t == pytest.approx(0.5)


def test_class_list_filter_grid_and_blend(app: Explorer, G) -> None:
    app.invoke("class.item.3", True)
    assert app.state.class_idx == 3 and dpg.get_value("class.item.3") and not dpg.get_value("class.item.0")
    assert np.array_equal(render(app), core(G, 0, 3))
    app.invoke("class.filter", "fr")
    assert app.class_panel.visible == [4] and app.class_panel.grid_classes() == (4,)
    assert not dpg.is_item_shown("class.item.0") and dpg.is_item_shown("class.item.4")
    app.class_panel.click_grid_cell(0, 0)
    assert app.state.class_idx == 4
    app.invoke("class.filter", "")
    assert app.class_panel.grid_classes() == (0, 1, 2, 3, 4)
    app.class_panel.click_grid_cell(1, 0)
    assert app.state.class_idx == 1
    # Blend the class embedding 75% "dog" + 25% "frog" (float class weights into the mapping).
    app.invoke("class.b", "4: frog")
    app.invoke("class.t", 0.25)
    app.invoke("latent.psi", 0.6)
    s = app.state.settings(app.info)
    assert s.classes == ((1, 0.75), (4, 0.25))
    c = torch.zeros([1, 5])
    c[0, 1], c[0, 4] = 0.75, 0.25
    with torch.no_grad():
        ws = G.mapping(z_from_seed(0, G.z_dim), c, psi=0.6)  # truncates toward c @ w_avg (the blend's centre)
        expected = to_uint8(G.synthesis(ws))[0]
    got = render(app)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    assert np.abs(got.astype(int) - core(G, 0, 1, 0.6).astype(int)).mean() > 1  # the blend is not class 1


def test_class_thumbnails_show_the_seed_in_each_class(app: Explorer, G) -> None:
    app.invoke("latent.psi", 0.7)
    app.tick()  # the main view's frame
    app.settings_changed_at = -1e9  # thumbnails wait until the view has been idle for a moment
    for _ in range(3):  # a few thumbnails per request: request (rendered synchronously here), take, repeat
        app.class_panel.tick(app.clock())
    for i in range(5):
        thumb = app.class_panel.thumbnail(i)
        assert thumb is not None, i
        diff = np.abs(thumb.astype(int) - core(G, 0, i, 0.7).astype(int))
        assert diff.max() <= 1, i  # batched vs single synthesis: float summation order only


def test_style_mixing_layers(app: Explorer, G) -> None:
    app.invoke("mix.seed", 9)
    app.invoke("mix.layer.0", True)
    app.invoke("mix.layer.1", True)
    assert app.state.settings(app.info).mix_layers == ()  # not enabled yet
    app.invoke("mix.enabled", True)
    s = app.state.settings(app.info)
    assert s.mix_seed == 9 and s.mix_layers == (0, 1)
    with torch.no_grad():
        ws = style_mix(ws_from_seeds(G, [0], 0), ws_from_seeds(G, [9], 0), [0, 1])
        expected = to_uint8(G.synthesis(ws))[0]
    assert np.array_equal(render(app), expected)
    app.invoke("mix.preset.fine")
    assert app.state.mix_layers == {6, 7, 8, 9}
    assert dpg.get_value("mix.layer.9") and not dpg.get_value("mix.layer.0")
    app.invoke("mix.class", "2: bird")
    with torch.no_grad():
        ws = style_mix(ws_from_seeds(G, [0], 0), ws_from_seeds(G, [9], 2), [6, 7, 8, 9])
        expected = to_uint8(G.synthesis(ws))[0]
    assert np.array_equal(render(app), expected)


def test_input_transform(app: Explorer, G) -> None:
    plain = render(app)
    app.invoke("xform.tx", 0.25)
    app.invoke("xform.rotate", 30.0)
    s = app.state.settings(app.info)
    assert s.translate == (0.25, 0.0) and s.rotate == 30.0
    with torch.no_grad():
        transform = input_transform((0.25, 0.0), 30.0)
        expected = to_uint8(G.synthesis(ws_from_seeds(G, [0], 0), transform=transform))[0]
    got = render(app)
    assert np.array_equal(got, expected) and np.abs(got.astype(int) - plain.astype(int)).mean() > 1
    app.invoke("xform.reset")
    assert app.state.settings(app.info).transform_is_identity and np.array_equal(render(app), plain)


def test_layers_channels_and_fft(app: Explorer, G) -> None:
    label = next(x for x in dpg.get_item_configuration("layers.layer")["items"] if x.startswith("L3_"))
    app.invoke("layers.layer", label)
    app.invoke("layers.channel", 5)
    s = app.state.settings(app.info)
    assert s.layer == "L3_36_128" and s.channel == 5
    with torch.no_grad():
        acts = dict(G.synthesis.iter_layers(ws_from_seeds(G, [0], 0)))["L3_36_128"]
        expected = to_uint8(layer_image(acts, 5, "channels"))[0]
    got = render(app)
    assert got.shape == (36, 36, 3) and np.array_equal(got, expected)
    app.invoke("layers.view", "fft")
    fft = render(app)
    assert np.array_equal(fft, to_uint8(layer_image(acts, 5, "fft"))[0])
    assert not np.array_equal(fft, got)
    show_frame(app)  # a frame of another shape gets its own texture
    assert app.view.shape == (36, 36)
    app.invoke("layers.layer", "output image")
    assert app.state.settings(app.info).layer == ""


def test_capture_saves_the_frame_on_screen(app: Explorer, G, tmp_path: Path) -> None:
    app.invoke("capture.save")  # nothing shown yet -> a status-bar error, not an exception
    assert app.status_error and "nothing to save" in app.status_text
    app.invoke("latent.seed_input", 3)
    show_frame(app)
    dpg.set_value("capture.dir", str(tmp_path / "caps"))
    app.invoke("capture.save")
    saved = list((tmp_path / "caps").glob("*.png"))
    assert len(saved) == 1 and saved[0].name == "seed3-class0-psi1.00.png"
    assert np.array_equal(np.asarray(Image.open(saved[0])), core(G, 3, 0))


def test_checkpoint_panel_info_recent_and_bad_file(app: Explorer, tiny_ckpt: Path, tmp_path: Path) -> None:
    info = dpg.get_value("ckpt.info")
    assert "resolution 32x32, 5 classes" in info and "12.5 kimg" in info and "1.62 M parameters" in info
    assert app.checkpoint_panel.recent == [str(tiny_ckpt.resolve())]
    assert dpg.get_item_user_data("ckpt.recent.0") == str(tiny_ckpt.resolve())
    bad = tmp_path / "bad.sgxl"
    bad.write_bytes(b"garbage")
    dpg.set_value("ckpt.path", str(bad))
    app.invoke("ckpt.load")
    app.tick()  # the load error arrives as a renderer event
    assert app.status_error and "bad.sgxl" in app.status_text
    assert app.info is not None and app.info.path == str(tiny_ckpt)  # the good model stays loaded
    app.invoke("ckpt.recent.0")  # reopen from the recent list
    app.tick()
    assert not app.status_error and app.info.path == str(tiny_ckpt.resolve())


def test_perf_panel_reports(app: Explorer) -> None:
    show_frame(app)
    app.perf_panel.tick(app.clock() + 1)
    text = dpg.get_value("perf.text")
    assert "render" in text and "device cpu" in text and "memory" in text
    # No window, so no GL context: the view uses raw textures, and the panel says so (no GL facts to show).
    assert "frames: raw" in text and "GL vendor" not in text
    s = app.perf_panel.summary()
    assert s["renders"] >= 1 and s["rss_mb"] > 0 and s["frame_path"] == "raw" and s["gl"] == {}
    app.invoke("perf.fps", 20)
    assert app.fps_cap == 20


def test_frame_rate_drops_while_the_worker_renders_a_main_view_frame(app: Explorer, monkeypatch) -> None:
    """Full rate with input, IDLE_FPS without; RENDERING_FPS while a main-view frame renders (a requested one:
    input read then would wait for it anyway; the exact refinement at rest: the UI's CPU slowed it), but not
    while only thumbnails render."""
    from explorer.app import IDLE_FPS, RENDERING_FPS

    app.fps_cap = 60
    assert app.frame_rate(had_callbacks=True) == 60
    app._active_until = 0.0
    monkeypatch.setattr(app, "_is_active", lambda had_callbacks: had_callbacks)
    assert app.frame_rate(had_callbacks=False) == IDLE_FPS
    for working, expected in (("frame", RENDERING_FPS), ("refine", RENDERING_FPS), ("thumbs", 60), (None, 60)):
        app.renderer._working = working
        assert app.frame_rate(had_callbacks=True) == expected, working
    app.renderer._working = "frame"
    app.fps_cap = RENDERING_FPS - 5  # a user's lower cap stays the cap
    assert app.frame_rate(had_callbacks=True) == RENDERING_FPS - 5
    app.renderer._working = None


def test_perf_panel_preview_switches(app: Explorer, monkeypatch) -> None:
    r = app.renderer
    st = app.perf_panel.preview_state()
    assert st["bf16"] and st["plain"] and st["progressive"]  # shipped defaults
    assert st["bf16_support"] == precision.cpu_bf16_support()
    if st["bf16_support"] is None:
        assert "bf16: not on this CPU" in st["text"]
        assert not dpg.get_item_configuration("perf.bf16")["enabled"]
    names = app.info.layer_names
    plan = precision.PrecisionPlan(conv=frozenset(names[1:3]), plain=frozenset(names[-2:-1]))
    monkeypatch.setattr(r, "bf16_support", "AVX512-BF16")  # as on a CPU with native bf16
    r.set_preview_plan(plan)
    app.perf_panel.tick(app.clock() + 1)
    text = dpg.get_value("perf.preview")
    assert "previews: bf16 convs in 2 layers, no anti-aliasing in 1 (last stage)" in text
    assert "bf16: AVX512-BF16" in text and r.preview_plan == plan
    app.invoke("perf.bf16", False)  # the plain layers stay
    assert r.preview_plan == precision.PrecisionPlan(plain=plan.plain)
    assert "switched off" in dpg.get_value("perf.preview")
    app.invoke("perf.plain", False)  # nothing left: no previews
    assert r.preview_plan is None and "previews: off" in dpg.get_value("perf.preview")
    app.invoke("perf.bf16", True)
    app.invoke("perf.plain", True)
    assert r.preview_plan == plan
    app.invoke("perf.progressive", False)
    assert not r.progressive and "progressive off" in dpg.get_value("perf.preview")


def test_render_error_goes_to_status_bar(app: Explorer) -> None:
    app.state.layer = "no_such_layer"  # as if a stale widget value slipped through
    app.tick()  # requests the frame; the error comes back as a renderer event ...
    app.tick()  # ... which the next UI frame shows
    assert app.status_error and "no layer 'no_such_layer'" in app.status_text
    app.state.layer = ""
    show_frame(app)
    assert not app.status_error


def test_no_display_exits_2_with_advice(monkeypatch, capsys) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert display_problem() is not None
    assert explorer_main(None, "cpu") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no display" in err[0] and "sgxl generate" in err[0]


def test_unreachable_x_display_exits_2(monkeypatch, capsys) -> None:
    monkeypatch.setenv("DISPLAY", ":987")  # no such server: GLFW would abort the process
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    problem = display_problem()
    if problem is None:
        pytest.skip("libX11 not found: only the DISPLAY variable can be checked")
    assert explorer_main(None, "cpu") == 2
    assert ":987" in capsys.readouterr().err


def test_bad_device_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(SGXLError, match="no CUDA GPU"):
        Explorer(device="cuda", threaded=False)


def test_frame_view_without_a_gl_context_falls_back_once(app: Explorer, G) -> None:
    """enable_gl() in a context that has no window: one log line, raw textures, frames of any size shown."""
    lines: list[str] = []
    app.view.log = lines.append
    assert not app.view.enable_gl() and app.view.path == "raw"
    assert len(lines) == 1 and "OpenGL frame upload unavailable" in lines[0]
    assert "no current OpenGL context" in lines[0]
    show_frame(app)
    assert app.view.shape == (32, 32) and app.frame is not None
    cfg = dpg.get_item_configuration(app.view.texture)
    assert (cfg["width"], cfg["height"]) == (32, 32)
    texture = app.view._raw_array.reshape(32, 32, 3)  # a raw texture draws from the array it was handed
    assert np.array_equal(np.rint(texture * 255).astype(np.uint8), core(G, 0, 0))
    assert app.view.read_back() is None and app.view.summary()["fallback_reason"]
    assert len(lines) == 1


def test_cuda_frames_without_interop_take_the_host_copy_with_one_log_line(app: Explorer) -> None:
    """A frame with a GPU tensor where CUDA-GL interop cannot start (no CUDA here; no GL context either):
    the interop is tried once, says why in one line, and the host path is used from then on."""
    from explorer.gl_frames import FrameView
    from explorer.renderer import Frame, RenderSettings

    lines: list[str] = []
    view = FrameView(app.texture_registry, app.image_tag, log=lines.append)
    view._gl = object()  # as if OpenGL were up: only the interop's own set-up is under test
    rgba = np.zeros((2, 2, 4), np.uint8)
    frame = Frame(settings=RenderSettings(), generation=0, rgba=rgba, render_ms=0.0, device_rgba=torch.from_numpy(rgba))
    assert not view._cuda_ready(frame) and not view._cuda_ready(frame)
    assert len(lines) == 1 and "CUDA-OpenGL interop unavailable" in lines[0] and "host memory" in lines[0]


def test_pointer_input_wakes_the_loop_only_after_a_frame_without_input(app: Explorer) -> None:
    """explorer.input_wake calls `_on_pointer` from its thread. Input over the window (or anywhere during a drag)
    wakes an armed wait; input that came while the last frame drew (after it read the input) skips the wait; and
    after a frame that read input itself nothing is armed, so a stream of input (a drag) keeps the frame cap."""
    app._input_wake = object()  # stands for a running watcher (the headless app has no X display)
    app._viewport_rect = (100, 50, 800, 600)
    app.mouse_held = False

    def armed_wait(input_seen: bool, callbacks_queued: bool = False) -> None:
        app._wake.clear()
        app._woken_by_input = False
        app._input_seen = input_seen
        app._draw_started = app.clock()
        app._arm_input_wake(callbacks_queued)

    armed_wait(input_seen=False)
    assert app._wake_armed and not app._wake.is_set()
    app._on_pointer(50, 60, 0)  # another program's window: nothing
    assert not app._wake.is_set() and app.input_wakes == 0
    app._on_pointer(500, 300, 0)  # over the window: the wait ends now
    assert app._wake.is_set() and app._woken_by_input and app.input_wakes == 1 and not app._wake_armed

    armed_wait(input_seen=False)
    app.mouse_held = True  # a drag that left the window still counts
    app._on_pointer(5, 5, 0x100)
    assert app._wake.is_set() and app.input_wakes == 2
    app.mouse_held = False

    armed_wait(input_seen=True)  # the frame just drawn read input: a stream of it stays at the frame cap
    assert not app._wake_armed
    app._on_pointer(500, 300, 0)
    assert not app._wake.is_set() and app.input_wakes == 2
    armed_wait(input_seen=False, callbacks_queued=True)  # (queued callbacks: the next frame comes anyway)
    assert not app._wake_armed

    app._draw_started = app.clock()
    app._on_pointer(500, 300, 0)  # while a frame draws (not armed): remembered ...
    app._wake.clear()
    app._input_seen = False
    app._arm_input_wake(False)  # ... and the wait after that frame is skipped
    assert app._wake.is_set() and app._woken_by_input and app.input_wakes == 3

    app._input_wake = None  # no watcher (no X11, no XInput 2.1): never armed
    armed_wait(input_seen=False)
    assert not app._wake_armed
