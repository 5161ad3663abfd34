"""Latent panel: seed (field + slider), a 2-D pad blending the 4 nearest seeds in W, interpolation
toward a second seed (slider + animation) and truncation psi toward the class's own w_avg.

Dragging on the pad (or on the image itself, as in the official visualizer) moves a fractional
position over a grid of seeds; `ExplorerState.seed_weights` turns it into bilinear weights of the
4 surrounding seeds, so the image changes smoothly instead of jumping from seed to seed.
"""

from __future__ import annotations

import math

import dearpygui.dearpygui as dpg

from core.limits import PSI_RANGE  # the same range `sgxl generate --trunc` accepts
from explorer.panels.base import Panel
from explorer.renderer import MAX_SEED, ModelInfo, grid_seed
from explorer.state import SEED_GRID_STRIDE

SEED_SLIDER_MAX = 1023
PAD_SIZE = 150  # px
PAD_PIXELS_PER_SEED = 50.0  # dragging this far moves one seed over
SLIDER_W = 250


def psi_note(per_class_w_avg: bool) -> str:
    centre = ("the chosen class's mean w (per-class w_avg)" if per_class_w_avg
              else "the model's mean w (one w_avg for all classes)")
    return f"psi pulls w toward {centre}, on the first N ws only (the coarse layers) when the cutoff is below " \
           "the number of ws."


class LatentPanel(Panel):
    key = "latent"
    title = "Latent"

    def __init__(self, app) -> None:
        super().__init__(app)
        # A pad drag: where the pointer was pressed and the pad position then (see tick).
        self._drag_from: tuple[tuple[float, float], tuple[float, float]] | None = None
        self._anim_start = 0.0
        self._drawn: tuple | None = None  # (offset, seed weights, latent) the pad was last drawn for

    def build_root(self) -> None:
        with dpg.handler_registry(tag=self.tag("mouse")):
            dpg.add_mouse_click_handler(button=dpg.mvMouseButton_Left, callback=self._on_mouse_down)
            dpg.add_mouse_release_handler(button=dpg.mvMouseButton_Left, callback=self._on_mouse_up)

    def build(self) -> None:
        s = self.state
        # A double shown without decimals: Dear PyGui's int fields are 32-bit, seeds go up to 2**32 - 1.
        dpg.add_input_double(label="seed", tag=self.tag("seed_input"), default_value=s.seed, width=150,
                             format="%.0f", step=1, step_fast=100, min_value=0, max_value=MAX_SEED,
                             min_clamped=True, max_clamped=True, callback=self._on_seed)
        dpg.add_slider_int(label="seed##slider", tag=self.tag("seed"), default_value=s.seed, min_value=0,
                           max_value=SEED_SLIDER_MAX, width=SLIDER_W, callback=self._on_seed)
        dpg.add_text("Drag on the pad or the image to move between seeds:", color=(170, 170, 170))
        with dpg.group(horizontal=True):
            dpg.add_drawlist(PAD_SIZE, PAD_SIZE, tag=self.tag("pad"))
            with dpg.group():
                dpg.add_drag_floatx(label="offset", size=2, tag=self.tag("offset"), default_value=[0.0, 0.0],
                                    speed=0.01, width=150, callback=self._on_offset)
                dpg.add_button(label="Snap to seed", tag=self.tag("snap"), callback=self._on_snap)
                dpg.add_button(label="Reset offset", tag=self.tag("reset"), callback=self._on_reset)
                dpg.add_text("", tag=self.tag("blend"), wrap=230)
        dpg.add_separator()
        dpg.add_input_int(label="seed B", tag=self.tag("seed_b"), default_value=s.seed_b, width=150,
                          min_value=0, min_clamped=True, callback=self._on_seed_b)
        dpg.add_slider_float(label="seed -> seed B", tag=self.tag("lerp_t"), default_value=s.lerp_t,
                             min_value=0.0, max_value=1.0, width=SLIDER_W, callback=self._on_lerp)
        with dpg.group(horizontal=True):
            dpg.add_checkbox(label="animate", tag=self.tag("animate"), default_value=s.animate,
                             callback=self._on_animate)
            dpg.add_slider_float(label="speed", tag=self.tag("speed"), default_value=s.anim_speed,
                                 min_value=0.05, max_value=2.0, width=150, callback=self._on_speed)
        dpg.add_separator()
        dpg.add_slider_float(label="psi (truncation)", tag=self.tag("psi"), default_value=s.psi,
                             min_value=PSI_RANGE[0], max_value=PSI_RANGE[1], width=SLIDER_W, format="%.2f",
                             callback=self._on_psi)
        dpg.add_slider_int(label="cutoff (first N ws)", tag=self.tag("cutoff"), default_value=1, min_value=0,
                           max_value=1, width=SLIDER_W, callback=self._on_cutoff)
        dpg.add_text(psi_note(True), color=(150, 150, 150), wrap=380, tag=self.tag("psi_note"))
        self._draw_pad()

    def on_model(self, info: ModelInfo) -> None:
        dpg.set_value(self.tag("psi_note"), psi_note(info.traits is None or info.traits.per_class_w_avg))
        cutoff = self.state.trunc_cutoff
        dpg.configure_item(self.tag("cutoff"), max_value=info.num_ws)
        dpg.set_value(self.tag("cutoff"), info.num_ws if cutoff is None else cutoff)

    # ------------------------------------------------------------------ callbacks (all on the main thread)

    def _on_seed(self, sender, value, user_data=None) -> None:
        self.set_seed(int(round(value)))

    def set_seed(self, seed: int) -> None:
        self.state.latent = ""  # a seed edit switches from an inverted photo back to the seeds
        self.state.seed = min(max(int(seed), 0), MAX_SEED)
        dpg.set_value(self.tag("seed_input"), float(self.state.seed))
        dpg.set_value(self.tag("seed"), min(self.state.seed, SEED_SLIDER_MAX))

    def _on_offset(self, sender, value, user_data=None) -> None:
        self.set_offset(float(value[0]), float(value[1]))

    def set_offset(self, x: float, y: float) -> None:
        self.state.latent = ""
        self.state.offset = (x, y)
        dpg.set_value(self.tag("offset"), [x, y])

    def _on_snap(self, sender=None, app_data=None, user_data=None) -> None:
        """Make the nearest grid seed the new origin: the seed the pad's blend is closest to, also left of or above
        seed 0 (the grid wraps there, `grid_seed`)."""
        ox, oy = self.state.offset
        self.set_seed(grid_seed(self.state.seed, round(ox), round(oy), SEED_GRID_STRIDE))
        self.set_offset(0.0, 0.0)

    def _on_reset(self, sender=None, app_data=None, user_data=None) -> None:
        self.set_offset(0.0, 0.0)

    def _on_seed_b(self, sender, value, user_data=None) -> None:
        # Seed B and the interpolation slider keep an inverted latent: they interpolate it toward seed B.
        self.state.seed_b = min(max(int(value), 0), MAX_SEED)

    def _on_lerp(self, sender, value, user_data=None) -> None:
        self.state.lerp_t = float(value)

    def _on_animate(self, sender, value, user_data=None) -> None:
        self.state.animate = bool(value)
        self._anim_start = self.app.clock() - self._phase_time(self.state.lerp_t)

    def _on_speed(self, sender, value, user_data=None) -> None:
        t = self.state.lerp_t
        self.state.anim_speed = float(value)
        self._anim_start = self.app.clock() - self._phase_time(t)

    def _on_psi(self, sender, value, user_data=None) -> None:
        self.state.psi = float(value)

    def _on_cutoff(self, sender, value, user_data=None) -> None:
        info = self.app.info
        n = int(value)
        # Every ws (the default) is None, so the frame's cache key and copied command stay those of plain psi.
        self.state.trunc_cutoff = None if info is None or n >= info.num_ws else max(n, 0)

    # ------------------------------------------------------------------ drag pad + animation

    def _phase_time(self, t: float) -> float:
        """Seconds into the animation at which the ping-pong curve is at `t` (so toggling does not jump)."""
        t = min(max(t, 0.0), 1.0)
        return math.acos(1 - 2 * t) / (2 * math.pi * max(self.state.anim_speed, 1e-3))

    def _on_mouse_down(self, sender=None, app_data=None, user_data=None) -> None:
        if dpg.is_item_hovered(self.tag("pad")) or dpg.is_item_hovered(self.app.image_tag):
            x, y = dpg.get_mouse_pos(local=False)
            self._drag_from = ((x, y), self.state.offset)

    def _on_mouse_up(self, sender=None, app_data=None, user_data=None) -> None:
        self._drag_from = None

    def drag_by(self, dx_px: float, dy_px: float, origin: tuple[float, float] | None = None) -> None:
        """Move the pad position by a pointer path in pixels from `origin` (default: the position now); the drag
        handler passes the path since the press and the position then (tests call this too)."""
        ox, oy = self.state.offset if origin is None else origin
        offset = (ox + dx_px / PAD_PIXELS_PER_SEED, oy + dy_px / PAD_PIXELS_PER_SEED)
        if offset != self.state.offset:
            self.set_offset(*offset)

    def tick(self, now: float) -> None:
        if self._drag_from is not None:
            if not dpg.is_mouse_button_down(dpg.mvMouseButton_Left):
                self._drag_from = None
            else:
                x, y = self.app.pointer_pos()  # where it is now: this frame shows the move's result
                (x0, y0), origin = self._drag_from
                # From the press, not summed move by move: back at a pixel already visited, the position (the
                # frame's cache key) is exactly the one it was, so scrubbing back and forth is served from the cache.
                self.drag_by(x - x0, y - y0, origin)
        if self.state.animate:
            phase = 2 * math.pi * self.state.anim_speed * (now - self._anim_start)
            self.state.lerp_t = 0.5 - 0.5 * math.cos(phase)  # ping-pong 0 -> 1 -> 0
            dpg.set_value(self.tag("lerp_t"), self.state.lerp_t)
        if self._drawn != (self.state.offset, self.state.seed_weights(), self.state.latent):
            self._draw_pad()

    def _draw_pad(self) -> None:
        """Grid lines every seed, the 4 blended seeds' cell, and the current position (centre = seed)."""
        pad = self.tag("pad")
        dpg.delete_item(pad, children_only=True)
        ox, oy = self.state.offset
        c = PAD_SIZE / 2
        dpg.draw_rectangle((0, 0), (PAD_SIZE, PAD_SIZE), color=(90, 90, 90), fill=(25, 25, 30), parent=pad)
        # The view scrolls with the position: grid lines sit at integer offsets.
        step = PAD_PIXELS_PER_SEED
        for k in range(-3, 4):
            gx = c + (math.floor(ox) + k - ox) * step
            gy = c + (math.floor(oy) + k - oy) * step
            if 0 <= gx <= PAD_SIZE:
                dpg.draw_line((gx, 0), (gx, PAD_SIZE), color=(70, 70, 80), parent=pad)
            if 0 <= gy <= PAD_SIZE:
                dpg.draw_line((0, gy), (PAD_SIZE, gy), color=(70, 70, 80), parent=pad)
        dpg.draw_circle((c, c), 5, color=(255, 200, 60), fill=(255, 200, 60), parent=pad)
        weights = self.state.seed_weights()
        self._drawn = (self.state.offset, weights, self.state.latent)
        if self.state.latent:  # an inverted photo is shown; any seed edit switches back to seeds
            dpg.set_value(self.tag("blend"), f"showing latent {self.state.latent!r}; seed -> seed B interpolates it "
                                             "(edit the seed or pad to leave it)")
            return
        blend = ", ".join(f"{s} x{w:.2f}" for s, w in weights[:5])
        dpg.set_value(self.tag("blend"), f"seeds: {blend}")
