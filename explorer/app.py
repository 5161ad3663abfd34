"""The StyleGAN-XL explorer window (Dear PyGui): image view, panels on both sides, status bar.

Threading: all Dear PyGui callbacks run on the main thread (`manual_callback_management`), so
panels edit `ExplorerState` without locks. Once per UI frame the state becomes a `RenderSettings`;
if it differs from the last request it goes to the renderer's worker thread (newest wins, cached
results come back at once) and the main thread only uploads finished frames, once each, into the
GL texture of the main view (`explorer.gl_frames`: uint8 RGBA with PyOpenGL, or straight from CUDA;
Dear PyGui's raw textures as the fallback). The loop caps its own frame rate (vsync does nothing
under Xvfb, and an uncapped Dear PyGui loop burns a whole core).

No display: the GLFW that Dear PyGui bundles aborts the process when it cannot open one, which
Python cannot catch, so `main()` checks for a display before creating the viewport.

    python -m explorer.app --ckpt model.sgxl [--device cpu] [--fps 60] [--frame-path auto]
                           [--test-state-file s.json]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import inspect
import json
import os
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

import dearpygui.dearpygui as dpg
import torch

from core.errors import SGXLError
from explorer.gl_frames import FRAME_PATHS, FrameView
from explorer.input_wake import InputWake, PointerQuery
from explorer.panels.capture import CapturePanel
from explorer.panels.checkpoint import CheckpointPanel
from explorer.panels.classes import ClassPanel
from explorer.panels.invert import InvertPanel
from explorer.panels.latent import LatentPanel
from explorer.panels.layers import LayersPanel
from explorer.panels.noise import NoisePanel
from explorer.panels.perf import PerfPanel
from explorer.panels.stylemix import StyleMixPanel
from explorer.panels.train import TrainPanel
from explorer.panels.transform import TransformPanel
from explorer.panels.view import ViewPanel
from explorer.renderer import Frame, ModelInfo, Renderer, RenderSettings, resolve_device
from explorer.slider_latch import SliderLatch
from explorer.state import ExplorerState

IDLE_FPS = 10  # frame rate with no input, no animation and nothing rendering (saves the CPU for torch)
ACTIVE_SECONDS = 1.0  # stay at the full frame rate this long after the last sign of activity
# Frame rate while the worker renders a main-view frame. A requested frame cannot be interrupted, so input
# read meanwhile waits for it anyway; drawing the unchanged image 60 times a second would only take CPU from
# it (a UI frame costs ~15 ms of CPU under Mesa's software GL, most of it llvmpipe rasterising the window). The
# exact refinement after a preview is interruptible, but it only starts once the input rested, and new input
# read up to one frame later still stops it between two layers. A finished frame wakes the loop at once (and
# that frame reads the input too), so a lower cap costs the slider -> screen path nothing. Measured on 2 cores
# (bench/explorer_latency, demo, interleaved rounds): 60 -> 30 fps: exact frame in the app 52.9 -> 44.9 ms;
# 30 -> 15 fps: exact 54.4 -> 45.6 ms, preview 36.6 -> 34.7 ms, slider -> new frame on screen 71.7 -> 65.8 ms.
RENDERING_FPS = 15
LEFT_W = 430
RIGHT_W = 340
STATUS_H = 34
LAYOUT_STATE_S = 0.2  # --test-state-file: widget rectangles and panel states are refreshed this often
WINDOW_BG = (37, 37, 38, 255)  # Dear PyGui's default window background, shown as the viewport's clear colour
NO_DISPLAY_HINT = ("error: no display found, so the explorer window cannot open (set DISPLAY, or use "
                   "`sgxl generate --ckpt CKPT --seeds 0-7 --class 0 --out grid.png` to render without one)")


def display_problem() -> str | None:
    """Why no window can open here (None when a display looks usable). Never touches GLFW."""
    if os.environ.get("WAYLAND_DISPLAY"):
        return None
    display = os.environ.get("DISPLAY")
    if not display:
        return "no DISPLAY or WAYLAND_DISPLAY is set"
    lib = ctypes.util.find_library("X11")
    if lib is None:
        return None  # cannot check further; trust DISPLAY
    try:
        x11 = ctypes.CDLL(lib)
        x11.XOpenDisplay.restype = ctypes.c_void_p
        x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
        handle = x11.XOpenDisplay(display.encode())
        if not handle:
            return f"cannot connect to the X display {display!r}"
        x11.XCloseDisplay(handle)
    except (OSError, AttributeError):
        return None
    return None


class Explorer:
    """The app: state + renderer + panels. `build_ui()` needs a Dear PyGui context, not a viewport."""

    image_tag = "view.image"
    texture_registry = "textures"

    def __init__(self, device: str = "auto", fps_cap: int = 60, test_state_file: str | Path | None = None,
                 recent_file: Path | None = None, threaded: bool = True, torch_threads: int | None = None,
                 frame_path: str = "auto", test_texture_file: str | Path | None = None, bf16: str = "auto",
                 plain_preview: bool = True, progressive: bool = True, compiled: str | None = None) -> None:
        self.device = resolve_device(device)
        # torch_threads: None = all cores but one (CPU), 0 = leave torch's setting alone, n = use n.
        if torch_threads is None and self.device == "cpu":
            # Leave one core to the UI (Dear PyGui + Mesa's software rasterizer): with every core busy,
            # torch's OpenMP workers stall at each op's barrier whenever the UI preempts one of them,
            # which measured 20x slower renders on 2 cores (3.2 s instead of 0.13 s per 32x32 image).
            torch_threads = max(1, min(torch.get_num_threads(), (os.cpu_count() or 2) - 1))
        if torch_threads:
            torch.set_num_threads(torch_threads)
        # compiled None: SGXL_COMPILED (the test suite sets off: a build takes 15-30 s of CPU), else auto.
        compiled = compiled or os.environ.get("SGXL_COMPILED", "auto")
        self.renderer = Renderer(self.device, threaded=threaded, bf16=bf16, plain_preview=plain_preview,
                                 progressive=progressive, compiled=compiled if compiled in ("auto", "off") else "auto")
        self._wake = threading.Event()  # set when the renderer has a new frame: the UI loop draws it at once
        self.renderer.on_frame = self._wake.set
        # Pointer input wakes the loop too (explorer.input_wake), but only the first input after a UI frame that
        # saw none: a stream of input (a drag) runs at the frame cap. Set from the watcher's thread.
        self._input_wake: InputWake | None = None
        self.input_wake_note = "not started"  # why there is no watcher (Performance panel, test state)
        self.input_wakes = 0
        self._wake_armed = False
        self._woken_by_input = False
        self._input_seen = True  # the last UI frame read input (or callbacks ran)
        self._pointer_at = -1.0  # clock() of the last pointer input over the window (or during a drag)
        self._pointer_query: PointerQuery | None = None  # where the pointer is now (slider latching)
        self._draw_started = 0.0  # clock() when the last UI frame started drawing (and reading input)
        self._viewport_rect: tuple[int, int, int, int] | None = None  # screen x, y, width, height
        # A dragged slider's next value is applied before the frame that reads it (explorer.slider_latch).
        self.slider_latch = SliderLatch(apply=self.invoke)
        self.state = ExplorerState()
        self.info: ModelInfo | None = None
        self.fps_cap = fps_cap
        self.test_state_file = Path(test_state_file) if test_state_file else None
        # Tests: after each new frame reaches the screen, what the view's GL texture holds, as a PNG.
        self.test_texture_file = Path(test_texture_file) if test_texture_file else None
        self.texture_file_settings: dict | None = None  # the settings of the frame in that PNG
        self.current_settings: RenderSettings | None = None  # what the widgets say now
        self.frame: Frame | None = None  # the frame on screen
        self._requested: RenderSettings | None = None
        self._incoming: Frame | None = None  # newest frame not yet in the view's texture
        self._pending_display: Frame | None = None  # in the texture; on screen once the UI frame is drawn
        self.view = FrameView(self.texture_registry, self.image_tag, frame_path)
        self._loading: str | None = None
        self._load_failed: str | None = None  # the checkpoint whose load failed last (the view says so)
        self._uv_shown: tuple | None = None  # texture window of the image item (zoom / pan)
        self.view_has_frame = False  # the view's texture holds a frame (else a placeholder text shows instead)
        self._clipped: list[dict] = []  # test state: widgets sticking out of their column (see clipped_items)
        self._clipped_at = -1e9  # ... made at this time (clipped_items is throttled)
        self.status_text = ""
        self.status_error = False
        self._status_kind = "info"
        self.frames_shown = 0
        self.ui_frames = 0
        self.frame_times_ms: deque[float] = deque(maxlen=120)
        self.work_times_ms: deque[float] = deque(maxlen=120)  # a UI frame's own work (tick + draw), no sleep
        self.render_times_ms: deque[float] = deque(maxlen=60)
        self.latencies_ms: deque[float] = deque(maxlen=200)
        self.ui_fps = 0.0
        self.last_latency_ms = 0.0
        self.last_latency_parts: dict[str, float] = {}
        self.displayed_at = 0.0
        self.settings_changed_at = 0.0
        self._active_until = 0.0
        self._mouse: tuple[float, float] | None = None
        self.mouse_held = False  # a mouse button is down (a drag in progress): thumbnails wait
        self._layout_cache: tuple[float, tuple, dict] | None = None  # see _layout_state
        self._layout_dirty = 0

        self.checkpoint_panel = CheckpointPanel(self, recent_file)
        self.latent_panel = LatentPanel(self)
        self.class_panel = ClassPanel(self)
        self.mix_panel = StyleMixPanel(self)
        self.transform_panel = TransformPanel(self)
        self.noise_panel = NoisePanel(self)
        self.layers_panel = LayersPanel(self)
        self.view_panel = ViewPanel(self)
        self.perf_panel = PerfPanel(self)
        self.capture_panel = CapturePanel(self)
        self.train_panel = TrainPanel(self)
        self.invert_panel = InvertPanel(self)
        self.left_panels = [self.checkpoint_panel, self.latent_panel, self.noise_panel, self.mix_panel,
                            self.transform_panel, self.layers_panel, self.view_panel, self.perf_panel,
                            self.capture_panel, self.train_panel, self.invert_panel]
        self.right_panels = [self.class_panel]
        self.panels = self.left_panels + self.right_panels

    @staticmethod
    def clock() -> float:
        return time.perf_counter()

    # ------------------------------------------------------------------ UI construction

    def build_ui(self) -> None:
        with dpg.texture_registry(tag=self.texture_registry):
            placeholder = self.view.build()
        for panel in self.panels:
            panel.build_root()
        # Not Dear PyGui's "primary window": that one always draws its background, a full-window blended quad
        # that costs Mesa's software rasteriser ~11 ms a frame at 1600x1000 (measured; ~1 ms without it), time
        # the renderer needs on a 2-core CPU. This window has no background (the viewport's clear colour, the
        # same grey, shows through), fills the viewport (`_fit_main_window`) and stays behind dialogs.
        # For the same reason the child windows (panel columns, view, status bar) draw no background of their
        # own: Dear PyGui fills each with an opaque quad of the window grey, blended pixel by pixel; the three
        # columns together cost llvmpipe ~11 ms of CPU a frame at 1600x1000 (measured: 18.3 -> 7.7 ms with a
        # 900x900 image in the view). A colour with alpha 0 is skipped by Dear ImGui, and the viewport's
        # clear colour under them is the same grey, so nothing looks different.
        with dpg.theme() as no_child_background, dpg.theme_component(dpg.mvAll):
            dpg.add_theme_color(dpg.mvThemeCol_ChildBg, (0, 0, 0, 0))
        dpg.bind_theme(no_child_background)
        with dpg.window(tag="main", no_scrollbar=True, no_background=True, no_title_bar=True, no_move=True,
                        no_resize=True, no_collapse=True, no_close=True, no_bring_to_front_on_focus=True,
                        no_saved_settings=True, pos=(0, 0)):
            with dpg.group(horizontal=True):
                with dpg.child_window(tag="left", width=LEFT_W, height=-STATUS_H):
                    for panel in self.left_panels:
                        with dpg.collapsing_header(label=panel.title, default_open=panel.default_open,
                                                   tag=f"{panel.key}.header"):
                            panel.build()
                with dpg.child_window(tag="view", width=-RIGHT_W - 8, height=-STATUS_H, no_scrollbar=True):
                    dpg.add_image(placeholder, tag=self.image_tag, width=1, height=1, show=False)
                    # Until a frame arrives (no model, loading, a failed load) a sentence, not a black square.
                    dpg.add_text("", tag="view.placeholder", color=(170, 170, 170), wrap=420)
                with dpg.child_window(tag="right", width=RIGHT_W, height=-STATUS_H):
                    for panel in self.right_panels:
                        with dpg.collapsing_header(label=panel.title, default_open=True,
                                                   tag=f"{panel.key}.header"):
                            panel.build()
            with dpg.child_window(tag="statusbar", height=STATUS_H - 8, no_scrollbar=True):
                dpg.add_text("", tag="status")
        self.set_status("No checkpoint loaded: open a .sgxl or an official .pkl in the Checkpoint panel")

    # ------------------------------------------------------------------ services for panels

    def set_status(self, text: str, error: bool = False, kind: str | None = None) -> None:
        self.status_text, self.status_error = text, error
        self._status_kind = kind or ("error" if error else "info")
        if dpg.does_item_exist("status"):
            dpg.set_value("status", text)
            dpg.configure_item("status", color=(255, 110, 100) if error else (200, 200, 200))
        if error:
            print(f"explorer: {text}", file=sys.stderr)

    def open_checkpoint(self, path: str, device: str | None = None) -> None:
        """Load in the background; the status bar says "Loading..." until the model (or an error) arrives."""
        self._loading = str(path)
        self.set_status(f"Loading {path} ...", kind="loading")
        self.renderer.load_async(path, device or self.device)

    def load_checkpoint_sync(self, path: str, device: str | None = None) -> ModelInfo:
        """Headless/tests: load now on this thread and update every panel."""
        info = self.renderer.load(path, device or self.device)
        self._on_loaded(info)
        return info

    def set_device(self, device: str) -> None:
        try:
            dev = resolve_device(device)
        except SGXLError as e:
            self.set_status(str(e), error=True)
            return
        self.device = dev
        if self.info is not None and self.info.path and self.info.device != dev:
            self.open_checkpoint(self.info.path, dev)

    def _on_loaded(self, info: ModelInfo) -> None:
        self.info = info
        self._loading = None
        self._load_failed = None
        self._requested = None
        self.state.reset_for_model(info)
        for panel in self.panels:
            panel.on_model(info)
        self.slider_latch.scan(dpg)  # (panels may have added sliders for this model)
        self._fit_columns()
        # Panels that tick before the next settings refresh (class thumbnails) must not send the old
        # model's settings to the new model: the renderer would refuse them as another checkpoint's. Taken
        # after `on_model`, which drops what the new model cannot render (an inverted latent of another size).
        self.current_settings = self.state.settings(info)
        classes = f"{info.c_dim} classes" if info.c_dim else "unconditional"
        name = Path(info.path).name or "model"
        self.set_status(f"Loaded {name} ({info.label}): {info.resolution}x{info.resolution}, {classes}, "
                        f"{info.num_params / 1e6:.2f} M parameters, on {info.device}")

    def _fit_columns(self) -> None:
        """Hide the right column when none of its panels applies (an unconditional model has no class panel)."""
        if not dpg.does_item_exist("right"):
            return
        used = any(dpg.is_item_shown(f"{p.key}.header") for p in self.right_panels
                   if dpg.does_item_exist(f"{p.key}.header"))
        dpg.configure_item("right", show=used)
        dpg.configure_item("view", width=-RIGHT_W - 8 if used else -1)

    # ------------------------------------------------------------------ callbacks

    def call(self, callback: Callable, sender, app_data, user_data) -> None:
        """Run one widget callback; errors go to the status bar instead of ending the app."""
        try:
            n = len(inspect.signature(callback).parameters)
            callback(*(sender, app_data, user_data)[:n])
        except SGXLError as e:
            self.set_status(str(e), error=True)
        except Exception as e:
            traceback.print_exc()
            self.set_status(f"{type(e).__name__}: {e}", error=True)

    def run_callbacks(self, jobs: list | None = None) -> bool:
        """Run the queued widget callbacks (or `jobs`, already taken from the queue) on this (the main)
        thread; True if there were any."""
        jobs = (dpg.get_callback_queue() if jobs is None else jobs) or []
        for job in jobs:
            if job[0] is not None:
                self.call(job[0], job[1], job[2], job[3])
        return bool(jobs)

    def _is_active(self, had_callbacks: bool) -> bool:
        """Input, animation, loading or rendering in the last ACTIVE_SECONDS -> full frame rate."""
        now = self.clock()
        mouse = tuple(dpg.get_mouse_pos(local=False))
        self.mouse_held = any(dpg.is_mouse_button_down(b) for b in (0, 1, 2))
        self._input_seen = had_callbacks or mouse != self._mouse
        busy = (self._input_seen or self._pending_display is not None or self.mouse_held
                or self._incoming is not None or self.state.animate or self._loading is not None
                or self.renderer.busy())
        self._mouse = mouse
        if busy:
            self._active_until = now + ACTIVE_SECONDS
        return now < self._active_until

    def frame_rate(self, had_callbacks: bool) -> int:
        """The UI's frame cap now: full while there is input or work, IDLE_FPS when idle, RENDERING_FPS
        while the worker renders a main-view frame (see RENDERING_FPS)."""
        fps = self.fps_cap if self._is_active(had_callbacks) else min(IDLE_FPS, self.fps_cap)
        if self.renderer.rendering_main_view():
            fps = min(fps, RENDERING_FPS)
        return fps

    def invoke(self, tag: str, value=None, user_data=None) -> None:
        """Set a widget's value and run its callback exactly as a user's edit would (headless tests)."""
        if value is not None:
            dpg.set_value(tag, value)
        callback = dpg.get_item_callback(tag)
        if callback is None:
            raise KeyError(f"{tag} has no callback")
        app_data = dpg.get_value(tag) if value is None else value
        self.call(callback, tag, app_data, dpg.get_item_user_data(tag) if user_data is None else user_data)

    # ------------------------------------------------------------------ per-frame work

    def tick(self) -> None:
        """Everything a UI frame does except drawing: events, panels, render requests, uploads, layout."""
        now = self.clock()
        for kind, payload in self.renderer.poll_events():
            if kind == "loaded":
                self._on_loaded(payload)
            elif kind == "error":
                loading = self._status_kind == "loading"
                self.set_status(str(payload), error=True, kind="load_error" if loading else "render_error")
                if loading:
                    self._load_failed = self._loading
                self._loading = None
        for panel in self.panels:
            panel.tick(now)
        self.sync_view(now)
        self._layout()

    def sync_view(self, now: float) -> None:
        """Request a frame for what the widgets say (if it changed) and put the newest finished one in the texture."""
        if self.info is not None:
            settings = self.state.settings(self.info)
            self.current_settings = settings
            if settings != self._requested:
                self._requested = settings
                self.settings_changed_at = now
                # A drag or an animation: a preview will do until the input rests (progressive refinement).
                self.renderer.request(settings, interactive=self.mouse_held or self.state.animate)
        frame = self.renderer.take_frame()
        if frame is not None:
            self._incoming = frame  # newest wins: one not yet in the texture is replaced
        if self._incoming is not None:
            self._upload(self._incoming)

    def _upload(self, frame: Frame) -> None:
        """Put the finished frame into the view's texture (a texture of a new size may take a UI frame)."""
        if not self.view.show(frame):
            return
        self._incoming = None
        self._pending_display = frame
        self.view_has_frame = True
        if self._status_kind == "render_error":
            self.set_status("ready")

    def placeholder_text(self) -> str:
        """What the view says while it has no frame to show."""
        if self._loading is not None:
            return f"Loading {Path(self._loading).name} ..."
        if self.info is None and self._load_failed is not None:
            return (f"{Path(self._load_failed).name} could not be opened (the status bar below says why).\n\n"
                    "Open another checkpoint in the Checkpoint panel.")
        if self.info is None:
            return ("No model loaded.\n\nOpen a checkpoint (.sgxl, or an official StyleGAN-XL / StyleGAN .pkl) in "
                    "the Checkpoint panel on the left.")
        return "Rendering the first frame ..."

    def _layout(self) -> None:
        """Scale the image to the view (keeping its aspect ratio) and centre it; a placeholder text without a frame."""
        if not dpg.does_item_exist("view") or self.view.shape is None:
            return
        vw, vh = dpg.get_item_rect_size("view")
        if vw <= 16 or vh <= 16:
            return
        if dpg.is_item_shown(self.image_tag) != self.view_has_frame:
            dpg.configure_item(self.image_tag, show=self.view_has_frame)
            dpg.configure_item("view.placeholder", show=not self.view_has_frame)
        if not self.view_has_frame:
            text = self.placeholder_text()
            if dpg.get_value("view.placeholder") != text:
                dpg.set_value("view.placeholder", text)
            dpg.set_item_pos("view.placeholder", [max(8, int(vw / 2 - 210)), int(vh / 2 - 40)])
            return
        h, w = self.view.shape
        scale = min((vw - 16) / w, (vh - 16) / h)
        iw, ih = max(1, int(w * scale)), max(1, int(h * scale))
        cfg = dpg.get_item_configuration(self.image_tag)
        if (iw, ih) != (cfg["width"], cfg["height"]):
            dpg.configure_item(self.image_tag, width=iw, height=ih)
            dpg.set_item_pos(self.image_tag, [int((vw - iw) / 2), int((vh - ih) / 2)])
        uv = self.view_panel.zoom.window()  # zoom / pan: the part of the frame shown
        if uv != self._uv_shown:
            dpg.configure_item(self.image_tag, uv_min=uv[0], uv_max=uv[1])
            self._uv_shown = uv

    def _fit_main_window(self) -> None:
        """Keep the main window the size of the viewport's client area (the user may resize the viewport)."""
        size = [dpg.get_viewport_client_width(), dpg.get_viewport_client_height()]
        if size != [dpg.get_item_width("main"), dpg.get_item_height("main")]:
            dpg.configure_item("main", width=size[0], height=size[1])
        x, y = dpg.get_viewport_pos()
        self._viewport_rect = (int(x), int(y), size[0], size[1])

    def _on_pointer(self, x: int, y: int, buttons: int) -> None:
        """The input watcher's callback (on its thread): pointer input over the window, or anywhere during a drag
        (which may leave it), wakes the loop if it is armed (see `run`). `buttons` (the X button mask) is unused:
        a press over the window is inside it, and one elsewhere is another program's."""
        rect = self._viewport_rect
        inside = rect is not None and rect[0] <= x < rect[0] + rect[2] and rect[1] <= y < rect[1] + rect[3]
        if not (inside or self.mouse_held):
            return
        self._pointer_at = self.clock()
        if self._wake_armed:
            self._wake_by_input()

    @property
    def pointer_query_on(self) -> bool:
        return self._pointer_query is not None

    def pointer_pos(self) -> tuple[float, float]:
        """Where the pointer is now, in the window's client pixels (Dear PyGui's screen coordinates): asked of the X
        server where it can be (so a drag handled before a frame acts on the position that frame reads, and the
        frame shows its result), else where the last UI frame saw it."""
        if self._pointer_query is not None and self._viewport_rect is not None:
            x, y, _ = self._pointer_query.position()
            return float(x - self._viewport_rect[0]), float(y - self._viewport_rect[1])
        x, y = dpg.get_mouse_pos(local=False)
        return float(x), float(y)

    def _latch_slider(self) -> bool:
        """Right before a UI frame: a dragged slider takes the value the pointer gives it now (explorer.slider_latch),
        so this frame shows its image (cached) or its render starts a frame sooner. True when a value was applied."""
        if not self.slider_latch.dragging or self._pointer_query is None:
            return False
        return self.slider_latch.before_frame(dpg, self.pointer_pos()[0])

    def _arm_input_wake(self, callbacks_queued: bool) -> None:
        """Before the loop's wait: pointer input is read at once (the frame that reads it, then at once the one that
        shows its result), also input that came while the last frame drew, after that frame had read the input;
        unless that frame read input too (or left callbacks): a stream of input (a drag) stays at the frame cap."""
        self._wake_armed = self._input_wake is not None and not (self._input_seen or callbacks_queued)
        if self._wake_armed and self._pointer_at > self._draw_started:
            self._wake_by_input()

    def _wake_by_input(self) -> None:
        self._wake_armed = False
        self._woken_by_input = True
        self.input_wakes += 1
        self._wake.set()

    def after_render(self, frame_ms: float | None = None, work_ms: float | None = None,
                     write_state: bool = True) -> None:
        """Bookkeeping once a UI frame is drawn: the uploaded frame is now on screen. `write_state`: also write
        the test-state file (if any) now; the main loop writes it itself when no frame follows at once."""
        now = self.clock()
        if self._pending_display is not None:
            frame, self._pending_display = self._pending_display, None
            self.frame = frame
            self.frames_shown += 1
            self.displayed_at = time.time()  # called right after the frame was drawn
            self.last_latency_ms = (now - frame.requested_at) * 1000
            # Where the time went: waiting for the worker, rendering, waiting for the UI to upload+draw.
            self.last_latency_parts = {"queue_ms": (frame.started_at - frame.requested_at) * 1000,
                                       "render_ms": (frame.finished_at - frame.started_at) * 1000,
                                       "render_cpu_ms": 0.0 if frame.cached else frame.render_cpu_ms,
                                       "to_screen_ms": (now - frame.finished_at) * 1000}
            self.latencies_ms.append(self.last_latency_ms)
            if self.test_texture_file is not None:
                self._write_test_texture(frame)
            if not frame.cached:
                self.render_times_ms.append(frame.render_ms)
        self.ui_frames += 1
        if work_ms is not None:
            self.work_times_ms.append(work_ms)
        if frame_ms is not None:
            self.frame_times_ms.append(frame_ms)
            fps = 1000.0 / max(frame_ms, 1e-3)
            self.ui_fps = 0.9 * self.ui_fps + 0.1 * fps if self.ui_fps else fps
        if write_state:
            self.write_test_state()

    # ------------------------------------------------------------------ test state (for GUI tests / bench)

    @staticmethod
    def rect(tag: str | int, slider: bool = False) -> dict | None:
        if not dpg.does_item_exist(tag):
            return None
        st = dpg.get_item_state(tag)
        # Child windows report no rect_min; their screen position is in "pos" (no window manager: the
        # viewport's client area sits at the screen origin under Xvfb).
        x, y = st.get("rect_min") or dpg.get_item_pos(tag)
        w, h = st.get("rect_size") or (dpg.get_item_width(tag), dpg.get_item_height(tag))
        out = {"x": x, "y": y, "w": w, "h": h, "visible": bool(st.get("visible", True)),
               "shown": bool(dpg.is_item_shown(tag))}  # configured to show (a hidden item's rect is stale)
        if slider:
            out["frame_w"] = dpg.get_item_width(tag)  # the slider itself; the label is drawn right of it
            cfg = dpg.get_item_configuration(tag)
            out["min"], out["max"] = cfg.get("min_value"), cfg.get("max_value")
        return out

    def clipped_items(self) -> list[dict]:
        """What sticks out of its column in the open panels (clipped labels and texts), for GUI tests.

        Two checks: a widget whose rectangle ends right of its column's content (the column's right edge
        less the window padding and the scrollbar when it has one), and a column or child window with a
        horizontal overflow (some widgets, e.g. simple plots, report no rectangle, but their label still
        widens the content). Rectangles come from the last drawn frame, also for widgets scrolled out of
        view; hidden widgets and closed panels are skipped.
        """
        out = []

        def overflow(tag: int | str, panel: str) -> None:
            over = dpg.get_item_state(tag).get("scroll_max", [0.0, 0.0])[0]
            if over > 4:  # ImGui widens a selectable's row by half the item spacing (4 px): no text is cut there
                out.append({"panel": panel, "item": dpg.get_item_alias(tag) or str(tag), "type": "mvChildWindow",
                            "over_px": over, "label": "content wider than the window"})

        for column, panels in (("left", self.left_panels), ("right", self.right_panels)):
            if not dpg.does_item_exist(column) or not dpg.is_item_shown(column):
                continue
            x0 = dpg.get_item_pos(column)[0]  # screen x: the main window sits at the viewport's origin
            right = x0 + dpg.get_item_width(column) - 8 - (14 if dpg.get_y_scroll_max(column) > 0 else 0)
            overflow(column, column)
            for panel in panels:
                header = f"{panel.key}.header"
                if not dpg.does_item_exist(header) or not dpg.get_value(header) or not dpg.is_item_shown(header):
                    continue
                stack = list(dpg.get_item_children(header, 1) or [])
                while stack:
                    item = stack.pop()
                    if not dpg.is_item_shown(item):
                        continue
                    stack.extend(dpg.get_item_children(item, 1) or [])
                    kind = dpg.get_item_type(item).split("::")[-1]
                    if kind == "mvChildWindow":
                        overflow(item, panel.key)
                    st = dpg.get_item_state(item)
                    if kind == "mvGroup" or "rect_min" not in st or "rect_size" not in st or st["rect_size"][0] <= 0:
                        continue  # a group is the union of its widgets, which are checked one by one
                    width = st["rect_size"][0]
                    if kind == "mvSelectable":  # spans the whole row (and a bit more, see overflow): its label counts
                        width = dpg.get_text_size(dpg.get_item_label(item) or "")[0]
                    over = st["rect_min"][0] + width - right
                    if over > 1:
                        label = dpg.get_item_label(item) or str(dpg.get_value(item))[:60]
                        out.append({"panel": panel.key, "item": dpg.get_item_alias(item) or str(item), "type": kind,
                                    "over_px": over, "label": label})
        return out

    def header_state(self, key: str) -> dict | None:
        r = self.rect(f"{key}.header")
        return None if r is None else {**r, "open": bool(dpg.get_value(f"{key}.header"))}

    def _clipped_throttled(self) -> list[dict]:
        """`clipped_items()` at most twice a second (it walks every widget of the open panels)."""
        now = self.clock()
        if now - self._clipped_at > 0.5:
            self._clipped, self._clipped_at = self.clipped_items(), now
        return self._clipped

    def _layout_state(self) -> dict:
        """The slowly changing part of the test state: widget rectangles and the train/invert panels.

        Asking Dear PyGui for ~50 rectangles and building the panels' states every frame showed as a
        large part of the UI thread under `--test-state-file` (py-spy, during a drag): the benchmark
        partly measured its own probe. They change with layout and panel events, not per frame, so they
        are refreshed every LAYOUT_STATE_S, and at once when the layout changed (see below).
        """
        now = self.clock()
        # What moves widgets: the viewport's size, a new model (panels shown/hidden, class list), a frame of
        # another size (the image is laid out again). Dear PyGui updates rectangles when it next draws, so
        # after such a change the state is rebuilt for a few UI frames in a row. Scrolling a column or the class
        # grid and opening or closing a panel move widgets too (tests click what they read right after).
        scrolls = tuple(dpg.get_y_scroll(t) for t in ("left", "right", self.class_panel.tag("grid_box"))
                        if dpg.does_item_exist(t))
        headers = tuple(bool(dpg.get_value(f"{p.key}.header")) for p in self.panels
                        if dpg.does_item_exist(f"{p.key}.header"))
        key = (dpg.get_viewport_client_width(), dpg.get_viewport_client_height(), self.view.shape,
               self.info.key if self.info else None, scrolls, headers)
        cached = self._layout_cache
        if cached is None or cached[1] != key:
            self._layout_dirty = 3
        elif self._layout_dirty == 0 and now < cached[0] + LAYOUT_STATE_S:
            return cached[2]
        self._layout_dirty = max(0, self._layout_dirty - 1)
        class_items = {}
        for i in self.class_panel.visible[:40]:
            r = self.rect(self.class_panel.tag(f"item.{i}"))
            if r is not None:
                class_items[str(i)] = r
        state = {
            "rects": {
                "image": self.rect(self.image_tag),
                "seed_slider": self.rect(self.latent_panel.tag("seed"), slider=True),
                "psi_slider": self.rect(self.latent_panel.tag("psi"), slider=True),
                "pad": self.rect(self.latent_panel.tag("pad")),
                "class_grid": self.rect(self.class_panel.tag("grid")),
                "view": self.rect("view"),
                "layer_combo": self.rect(self.layers_panel.tag("layer")),
                **{f"capture.{n}": self.rect(self.capture_panel.tag(n)) for n in ("save", "save_window", "copy")},
                "class_items": class_items,
                "left": self.rect("left"),
                "right": self.rect("right"),
                "latent_header": self.rect(f"{self.latent_panel.key}.header"),
                "recent_items": {p: self.rect(self.checkpoint_panel.tag(f"recent.{i}"))
                                 for i, p in enumerate(self.checkpoint_panel.recent)},
            },
            "panels_shown": {p.key: bool(dpg.is_item_shown(f"{p.key}.header")) for p in self.panels
                             if dpg.does_item_exist(f"{p.key}.header")},
            "headers": {p.key: self.header_state(p.key) for p in self.panels},
            "train": self.train_panel.test_state(),
            "invert": self.invert_panel.test_state(),
            "preview": self.perf_panel.preview_state(),
        }
        self._layout_cache = (now, key, state)
        return state

    def test_state(self) -> dict:
        info = self.info
        return {
            "pid": os.getpid(),
            "time": time.time(),
            "ui_frames": self.ui_frames,
            "frames_shown": self.frames_shown,
            "displayed_at": self.displayed_at,
            "status": self.status_text,
            "status_error": self.status_error,
            "loading": self._loading,
            "model": None if info is None else {
                "key": info.key, "path": info.path, "resolution": info.resolution, "c_dim": info.c_dim,
                "label": info.label, "has_noise": info.has_noise, "num_ws": info.num_ws,
                "class_names": list(info.class_names), "device": info.device},
            "settings": None if self.current_settings is None else self.current_settings.to_dict(),
            "displayed": None if self.frame is None else self.frame.settings.to_dict(),
            "displayed_preview": self.frame is not None and self.frame.preview,
            "displayed_compiled": self.frame is not None and self.frame.compiled,
            "compiled": {"state": self.renderer.compiled.state, "frames": self.renderer.stats["compiled"]},
            "mouse_held": self.mouse_held,  # as the app saw it after the last frame (tests wait on these in drags)
            "mouse_pos": list(self._mouse or (0, 0)),
            "image_shape": list(self.view.shape or (0, 0)),
            "view_placeholder": None if self.view_has_frame else self.placeholder_text(),
            "classes": self.class_panel.test_state(),  # per frame: tests wait on thumbnails and scrolling
            "capture": self.capture_panel.test_state(),
            "zoom": self.view_panel.test_state(),
            "clipped": self._clipped_throttled(),
            "scroll": {c: [dpg.get_y_scroll(c), dpg.get_y_scroll_max(c)] for c in ("left", "right")
                       if dpg.does_item_exist(c)},
            "frame_view": self.view.summary(),
            "texture_file_settings": self.texture_file_settings,
            "ui_work_ms": sorted(self.work_times_ms)[len(self.work_times_ms) // 2] if self.work_times_ms else 0.0,
            "viewport": [dpg.get_viewport_client_width(), dpg.get_viewport_client_height()],
            "main_window": [dpg.get_item_width("main"), dpg.get_item_height("main")],
            "ui_fps": self.ui_fps,
            "input_wake": {"on": self._input_wake is not None, "note": self.input_wake_note,
                           "wakes": self.input_wakes},
            "slider_latch": {"on": self.slider_latch.enabled, "latched": self.slider_latch.latched,
                             "misses": self.slider_latch.misses},
            "last_latency_ms": self.last_latency_ms,
            "last_latency_parts": self.last_latency_parts,
            "renderer_stats": dict(self.renderer.stats),
            "renderer_busy": self.renderer.busy(),
            "render_ms": self.renderer.stats["last_render_ms"],
            **self._layout_state(),
        }

    def _write_test_texture(self, frame: Frame) -> None:
        from PIL import Image

        texels = self.view.read_back()  # None on the raw path: Dear PyGui keeps those textures to itself
        if texels is None:
            self.texture_file_settings = None
            return
        tmp = self.test_texture_file.with_name(self.test_texture_file.name + ".tmp.png")
        Image.fromarray(texels, "RGBA").save(tmp)
        os.replace(tmp, self.test_texture_file)
        self.texture_file_settings = frame.settings.to_dict()

    def write_test_state(self) -> None:
        """Write the test state to `--test-state-file` (nothing without one)."""
        if self.test_state_file is None:
            return
        tmp = self.test_state_file.with_name(self.test_state_file.name + ".tmp")
        tmp.write_text(json.dumps(self.test_state()))
        os.replace(tmp, self.test_state_file)  # readers never see half a file

    # ------------------------------------------------------------------ main loop

    def run(self, ckpt_path: str | None, width: int = 1600, height: int = 1000,
            exit_after: float | None = None) -> int:
        """Open the window and loop until it is closed (or `exit_after` seconds passed)."""
        dpg.create_context()
        try:
            dpg.configure_app(manual_callback_management=True)
            self.build_ui()
            self.slider_latch.scan(dpg)
            dpg.create_viewport(title="StyleGAN-XL explorer", width=width, height=height, x_pos=0, y_pos=0,
                                clear_color=WINDOW_BG)
            dpg.setup_dearpygui()
            dpg.show_viewport()
            self._fit_main_window()
            # One drawn frame creates Dear PyGui's GL context and leaves it current on this thread: only
            # then can the view find its textures' GL names (else it keeps raw textures, with one log line).
            dpg.render_dearpygui_frame()
            self.view.enable_gl()
            self._input_wake, self.input_wake_note = InputWake.start(self._on_pointer)
            self._pointer_query = PointerQuery.open()
            if ckpt_path:
                self.open_checkpoint(ckpt_path)
            start = last = self.clock()
            jobs, early_ok = None, True
            while dpg.is_dearpygui_running():
                t_work = self.clock()
                had_callbacks = self.run_callbacks(jobs)
                self._fit_main_window()
                self.tick()
                if self._latch_slider():  # as late as can be: the frame must read the pointer where it was asked
                    self.sync_view(self.clock())
                self._draw_started = self.clock()
                dpg.render_dearpygui_frame()
                now = self.clock()
                self.after_render((now - last) * 1000, (now - t_work) * 1000, write_state=False)  # on screen now
                self.slider_latch.verify(dpg)
                self.slider_latch.after_frame(dpg, dpg.is_mouse_button_down(0), dpg.is_key_down(dpg.mvKey_ModCtrl))
                last = now
                if exit_after is not None and now - start > exit_after:
                    self.write_test_state()
                    break
                # Own frame cap (vsync does not throttle under Xvfb/llvmpipe); drop to IDLE_FPS when idle,
                # because drawing the UI competes with torch for the same CPU cores. An image the renderer just
                # finished is drawn at once, whenever it arrives (at most one per render). And Dear PyGui reads
                # input only while it draws, so an edit shows one frame after the frame that read it: draw that
                # next frame at once too, but at most once between two capped frames (a drag queues callbacks
                # every frame), instead of adding a whole frame period to every slider move.
                fps = self.frame_rate(had_callbacks)
                self._woken_by_input = False
                self._wake.clear()  # before looking: a frame finished after the look still wakes the wait
                jobs = dpg.get_callback_queue() or []
                has_frame = self.renderer.has_frame()
                early = not has_frame and early_ok and bool(jobs or self._incoming is not None)
                if not (has_frame or early):
                    # The test state is written once the frames drawn at once are done: a write between the
                    # frame that read an edit and the one that shows it (~1 ms, more under load) would sit on
                    # the input -> screen path that tests and benchmarks measure through this very file.
                    self.write_test_state()
                if has_frame:
                    continue
                if early:
                    early_ok = False
                    continue
                budget = 1.0 / max(fps, 1) - (self.clock() - t_work)
                self._arm_input_wake(bool(jobs))
                woke = budget > 0 and self._wake.wait(budget)
                self._wake_armed = False
                early_ok = not woke or self._woken_by_input
        finally:
            if self._input_wake is not None:
                self._input_wake.close()
            if self._pointer_query is not None:
                self._pointer_query.close()
            self.invert_panel.close()  # an inversion nobody will load is not left running
            self.renderer.close()
            self.view.close()
            dpg.destroy_context()
        return 0


def run_app(ckpt_path: str | None, device: str = "auto", fps: int = 60, test_state_file: str | None = None,
            width: int = 1600, height: int = 1000, exit_after: float | None = None,
            recent_file: str | None = None, torch_threads: int | None = None, frame_path: str = "auto",
            test_texture_file: str | None = None, bf16: str = "auto", plain_preview: bool = True,
            progressive: bool = True, compiled: str | None = None) -> int:
    problem = display_problem()
    if problem is not None:
        print(f"{NO_DISPLAY_HINT} [{problem}]", file=sys.stderr)
        return 2
    try:
        app = Explorer(device=device, fps_cap=fps, test_state_file=test_state_file,
                       recent_file=Path(recent_file) if recent_file else None, torch_threads=torch_threads,
                       frame_path=frame_path, test_texture_file=test_texture_file, bf16=bf16,
                       plain_preview=plain_preview, progressive=progressive, compiled=compiled)
    except SGXLError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return app.run(ckpt_path, width=width, height=height, exit_after=exit_after)


def main(ckpt_path: str | None = None, device: str = "auto") -> int:
    """`sgxl explore [CKPT]`: open the explorer; 2 (with one line of advice) when there is no display."""
    return run_app(ckpt_path, device)


def _cli(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m explorer.app",
                                description="StyleGAN-XL latent-space explorer")
    p.add_argument("ckpt_pos", nargs="?", metavar="CKPT", help="checkpoint (.sgxl or official .pkl)")
    p.add_argument("--ckpt", help="checkpoint (same as the positional argument)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--fps", type=int, default=60, help="UI frame-rate cap (default 60)")
    p.add_argument("--width", type=int, default=1600)
    p.add_argument("--height", type=int, default=1000)
    p.add_argument("--test-state-file", help="write the UI state as JSON every frame (GUI tests, benchmarks)")
    p.add_argument("--test-texture-file", help="write the view's GL texture as PNG after each new frame (GUI tests)")
    p.add_argument("--exit-after", type=float, help="close after this many seconds")
    p.add_argument("--recent-file", help="where the recent-checkpoints list lives (default ~/.config/sgxl/)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: all cores but one)")
    p.add_argument("--frame-path", choices=FRAME_PATHS, default="auto",
                   help="how frames reach the screen: auto (OpenGL texture uploads, from CUDA where it can, else "
                        "Dear PyGui raw textures), gl, gl-pbo (via a pixel-buffer object) or raw")
    p.add_argument("--bf16", choices=("auto", "off"), default="auto",
                   help="previews in bf16 where this CPU measures it faster (needs AVX512-BF16 or AMX; default auto)")
    p.add_argument("--no-plain-preview", action="store_true",
                   help="previews keep the last stage's anti-aliasing filters (default: skipped where faster)")
    p.add_argument("--no-progressive", action="store_true",
                   help="render every frame exactly, also while dragging (no previews)")
    p.add_argument("--compiled", choices=("auto", "off"), default=None,
                   help="exact CPU frames from the synthesis compiled ahead of time, built once per checkpoint in the "
                        "background (needs a C++ compiler; default auto, or $SGXL_COMPILED)")
    a = p.parse_args(argv)
    return run_app(a.ckpt or a.ckpt_pos, a.device, a.fps, a.test_state_file, a.width, a.height, a.exit_after,
                   a.recent_file, a.threads, a.frame_path, a.test_texture_file, a.bf16, not a.no_plain_preview,
                   not a.no_progressive, a.compiled)


if __name__ == "__main__":
    sys.exit(_cli())
