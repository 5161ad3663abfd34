"""View: zoom into and pan over the image view, for the output image and the layer view alike.

The mouse wheel over the image zooms about the point under the cursor; dragging with the right (or
middle) button pans; the left button keeps dragging the latent, as in the StyleGAN3 visualizer. The
view shows a square window [uv_min, uv_max] of the frame's texture (`ViewZoom.window`), so zooming
costs nothing: no re-render, no new texture, only other texture coordinates for the same image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import dearpygui.dearpygui as dpg

from explorer.panels.base import Panel

ZOOM_STEP = math.sqrt(2)  # one wheel notch; two notches double the magnification
MAX_ZOOM = 64.0
PAN_BUTTONS = (dpg.mvMouseButton_Right, dpg.mvMouseButton_Middle)


@dataclass
class ViewZoom:
    """Magnification and the image point (in [0, 1] texture coordinates) at the centre of the view."""

    zoom: float = 1.0
    centre: tuple[float, float] = (0.5, 0.5)

    def _clamped(self, cx: float, cy: float) -> tuple[float, float]:
        half = 0.5 / self.zoom
        return min(max(cx, half), 1 - half), min(max(cy, half), 1 - half)

    def window(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """(uv_min, uv_max): the part of the image shown, a square of side 1 / zoom that stays inside it."""
        half = 0.5 / self.zoom
        cx, cy = self._clamped(*self.centre)
        return (cx - half, cy - half), (cx + half, cy + half)

    def image_point(self, fx: float, fy: float) -> tuple[float, float]:
        """The image point (texture coordinates) at fraction (fx, fy) of the view's width and height."""
        (u0, v0), _ = self.window()
        return u0 + fx / self.zoom, v0 + fy / self.zoom

    def zoom_at(self, factor: float, fx: float, fy: float) -> None:
        """Zoom by `factor` keeping the image point under view fraction (fx, fy) where it is."""
        u, v = self.image_point(fx, fy)
        self.zoom = min(max(self.zoom * factor, 1.0), MAX_ZOOM)
        if abs(self.zoom - round(self.zoom)) < 1e-9:
            self.zoom = float(round(self.zoom))  # sqrt(2) ** 2 is 2.0000000000000004
        self.centre = self._clamped(u - fx / self.zoom + 0.5 / self.zoom, v - fy / self.zoom + 0.5 / self.zoom)

    def pan(self, dfx: float, dfy: float) -> None:
        """Move the image with the mouse by (dfx, dfy) view widths/heights."""
        cx, cy = self._clamped(*self.centre)
        self.centre = self._clamped(cx - dfx / self.zoom, cy - dfy / self.zoom)

    def reset(self) -> None:
        self.zoom, self.centre = 1.0, (0.5, 0.5)


class ViewPanel(Panel):
    key = "zoom"
    title = "View (zoom / pan)"
    default_open = False

    def __init__(self, app) -> None:
        super().__init__(app)
        self.zoom = ViewZoom()
        self._pan_from: tuple[float, float] | None = None

    def build_root(self) -> None:
        with dpg.handler_registry(tag=self.tag("mouse")):
            dpg.add_mouse_wheel_handler(callback=self._on_wheel)
            for button in PAN_BUTTONS:
                dpg.add_mouse_click_handler(button=button, callback=self._on_pan_start)
            dpg.add_mouse_double_click_handler(button=dpg.mvMouseButton_Right, callback=self._on_fit)

    def build(self) -> None:
        dpg.add_slider_float(label="zoom", tag=self.tag("level"), default_value=1.0, min_value=1.0,
                             max_value=MAX_ZOOM, format="%.2fx", width=220, callback=self._on_zoom_slider)
        dpg.add_button(label="Fit (1x)", tag=self.tag("fit"), callback=self._on_fit)
        dpg.add_text("Wheel over the image: zoom at the cursor. Right- or middle-drag: pan. Right double-click: "
                     "fit. Works for the output image and the layer view.", color=(150, 150, 150), wrap=380)

    # ------------------------------------------------------------------ input

    def _image_rect(self) -> tuple[float, float, float, float] | None:
        image = self.app.image_tag
        if not dpg.does_item_exist(image) or not dpg.is_item_shown(image):
            return None
        (x, y), (w, h) = dpg.get_item_rect_min(image), dpg.get_item_rect_size(image)
        return (x, y, w, h) if w > 1 and h > 1 else None

    def _on_wheel(self, sender, delta, user_data=None) -> None:
        rect = self._image_rect()
        if rect is None or not dpg.is_item_hovered(self.app.image_tag):
            return
        x, y, w, h = rect
        mx, my = dpg.get_mouse_pos(local=False)
        self.zoom_by(ZOOM_STEP ** float(delta), (mx - x) / w, (my - y) / h)

    def zoom_by(self, factor: float, fx: float = 0.5, fy: float = 0.5) -> None:
        self.zoom.zoom_at(factor, min(max(fx, 0.0), 1.0), min(max(fy, 0.0), 1.0))
        dpg.set_value(self.tag("level"), self.zoom.zoom)

    def _on_pan_start(self, sender=None, app_data=None, user_data=None) -> None:
        if self._image_rect() is not None and dpg.is_item_hovered(self.app.image_tag):
            self._pan_from = tuple(dpg.get_mouse_pos(local=False))

    def _on_zoom_slider(self, sender, value, user_data=None) -> None:
        self.zoom_by(float(value) / self.zoom.zoom)  # about the view's centre

    def _on_fit(self, sender=None, app_data=None, user_data=None) -> None:
        if sender == self.tag("fit") or dpg.is_item_hovered(self.app.image_tag):
            self.zoom.reset()
            dpg.set_value(self.tag("level"), 1.0)

    def tick(self, now: float) -> None:
        if self._pan_from is None:
            return
        rect = self._image_rect()
        if rect is None or not any(dpg.is_mouse_button_down(b) for b in PAN_BUTTONS):
            self._pan_from = None
            return
        x, y = self.app.pointer_pos()  # where it is now: this frame shows the pan
        dx, dy = x - self._pan_from[0], y - self._pan_from[1]
        if dx or dy:
            self.zoom.pan(dx / rect[2], dy / rect[3])
            self._pan_from = (x, y)

    def test_state(self) -> dict:
        uv_min, uv_max = self.zoom.window()
        return {"zoom": self.zoom.zoom, "uv_min": list(uv_min), "uv_max": list(uv_max)}
