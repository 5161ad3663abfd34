"""Late input latching for slider drags: the UI frame that reads a slider move also shows its image.

Dear PyGui reads input only while it draws a frame, and a widget's callback runs after that frame, so the image
of a slider move could reach the screen one UI frame later at the earliest: two UI frames after the move (~20 ms
under Mesa's software GL on 2 cores), even when the frame comes from the renderer's cache. While a slider is
dragged, the X server already knows where the pointer went before that frame starts (the app asks it through
`explorer.input_wake.PointerQuery`). `SliderLatch` computes the value Dear ImGui's slider will take for that
pointer position, with the same float32 arithmetic as ImGui's `SliderBehaviorT` (imgui_widgets.cpp, Dear ImGui
1.92: horizontal, linear sliders), so the app applies it first (the slider's own callback, then the cache or a
render request) and the frame that reads the move draws its image.

Safe by construction: when the frame reads the same position, the slider lands on the value already applied and
queues no callback. When it reads another one (a newer motion arrived in between) the slider's callback runs as
it always did; and a predicted value the slider did not take is undone at once (`verify`), so what the app shows
always follows the slider. Repeated misses (a Dear PyGui whose slider geometry differs from the one modelled
here) turn latching off for the session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

f32 = np.float32
GRAB_PADDING = f32(2.0)  # SliderBehaviorT's grab_padding
GRAB_MIN_SIZE = f32(12.0)  # ImGuiStyle::GrabMinSize (Dear PyGui keeps ImGui's default; a theme may not change it)
MAX_MISSES = 8  # predictions the slider did not take (in a row) before latching is turned off
SLIDER_TYPES = {"mvAppItemType::mvSliderFloat": False, "mvAppItemType::mvSliderInt": True}  # type -> is_int


@dataclass(frozen=True)
class SliderGeometry:
    """What ImGui's slider behaviour depends on: the frame's left edge and width (client pixels), the range,
    integer or float, and the display format (float values are rounded to it)."""

    x0: float
    width: float
    v_min: float
    v_max: float
    is_int: bool
    fmt: str = "%.3f"

    def _bounds(self) -> tuple[np.float32, np.float32, np.float32, np.float32]:
        """(grab size, usable size, usable min, usable max) as SliderBehaviorT computes them."""
        slider_sz = f32(self.width) - GRAB_PADDING * f32(2.0)
        grab_sz = GRAB_MIN_SIZE
        v_range = f32(abs(self.v_max - self.v_min))
        if self.is_int:
            grab_sz = max(f32(slider_sz / (v_range + f32(1))), GRAB_MIN_SIZE)
        grab_sz = min(grab_sz, slider_sz)
        pos_min = f32(self.x0) + GRAB_PADDING + grab_sz * f32(0.5)
        pos_max = f32(self.x0 + self.width) - GRAB_PADDING - grab_sz * f32(0.5)
        return grab_sz, f32(slider_sz - grab_sz), f32(pos_min), f32(pos_max)

    def ratio(self, v: float) -> np.float32:
        """ScaleRatioFromValueT, linear."""
        lo, hi = (self.v_min, self.v_max) if self.v_min < self.v_max else (self.v_max, self.v_min)
        if self.v_min == self.v_max:
            return f32(0.0)
        clamped = min(max(v, lo), hi)
        if self.is_int:
            return f32(f32(int(clamped) - int(self.v_min)) / f32(int(self.v_max) - int(self.v_min)))
        return f32(f32(f32(clamped) - f32(self.v_min)) / f32(f32(self.v_max) - f32(self.v_min)))

    def click_offset(self, v_before: float, mouse_x: float) -> np.float32:
        """g.SliderGrabClickOffset, set in the frame that activated the slider: a press on the grab keeps the
        grab where it was under the pointer (float sliders only)."""
        grab_sz, _, pos_min, pos_max = self._bounds()
        grab_pos = f32(pos_min + f32(pos_max - pos_min) * self.ratio(v_before))
        mouse = f32(mouse_x)
        around = (grab_pos - grab_sz * f32(0.5) - f32(1.0)) <= mouse <= (grab_pos + grab_sz * f32(0.5) + f32(1.0))
        return f32(mouse - grab_pos) if around and not self.is_int else f32(0.0)

    def value_at(self, mouse_x: float, offset: float = 0.0) -> float | int:
        """The value the slider takes with the pointer at `mouse_x` (client pixels) during a drag."""
        _, usable, pos_min, _ = self._bounds()
        t = f32(0.0)
        if usable > 0:
            t = f32(min(max(f32(f32(f32(mouse_x) - f32(offset)) - pos_min) / usable, f32(0.0)), f32(1.0)))
        if self.is_int:
            lo, hi = int(self.v_min), int(self.v_max)
            if t >= 1.0:
                return hi
            off = f32(f32(hi - lo) * t)
            return lo + int(f32(off + f32(-0.5 if lo > hi else 0.5)))  # C truncation toward zero
        v = f32(f32(self.v_min) + f32(f32(self.v_max) - f32(self.v_min)) * t)  # ImLerp
        return round_to_format(v, self.fmt)


def round_to_format(v: np.float32, fmt: str) -> float:
    """RoundScalarWithFormatT: print with the slider's format, read back (a format without a number: unchanged)."""
    start = fmt.find("%")
    while start >= 0 and fmt[start + 1:start + 2] == "%":
        start = fmt.find("%", start + 2)
    if start < 0:
        return float(v)
    spec = start + 1
    while spec < len(fmt) and fmt[spec] in "-+ #0123456789.'":
        spec += 1
    if spec >= len(fmt):
        return float(v)
    text = (fmt[start:spec].replace("'", "") + "f") % float(v)
    try:
        return float(f32(float(text.strip())))
    except ValueError:
        return float(v)


@dataclass
class _Drag:
    tag: int | str
    geometry: SliderGeometry
    offset: np.float32
    predicted: float | int | None = None


class SliderLatch:
    """Tracks which slider the left mouse button drags and applies its next value before the frame that reads it.

    The app calls `after_frame` once a UI frame is drawn, `before_frame(pointer_x)` right before the next one
    (where the pointer is then) and `verify` after it. `apply(tag, value)` runs the slider's callback as a
    user's edit would (the app's `invoke`).
    """

    def __init__(self, apply: Callable[[int | str, float | int], None]) -> None:
        self._apply = apply
        self._sliders: list[int | str] = []
        self._values: dict[int | str, float | int] = {}
        self._drag: _Drag | None = None
        self.enabled = True
        self.latched = 0  # frames that showed a move's image in the frame that read it (or started its render)
        self.misses = 0  # predictions the slider did not take
        self._misses_in_row = 0

    def scan(self, dpg) -> None:
        """Find the horizontal sliders (call after building the UI, and when widgets were added)."""
        found = []
        for item in dpg.get_all_items():
            kind = dpg.get_item_info(item).get("type")
            if kind in SLIDER_TYPES and not dpg.get_item_configuration(item).get("vertical", False):
                found.append(item)
        self._sliders = found

    def _geometry(self, dpg, tag: int | str) -> SliderGeometry | None:
        cfg = dpg.get_item_configuration(tag)
        width = cfg.get("width", 0)
        rect = dpg.get_item_state(tag).get("rect_min")
        if width <= 0 or rect is None or cfg.get("callback") is None:
            return None  # an automatic width (ImGui computes it) or no callback to run: not latched
        is_int = SLIDER_TYPES[dpg.get_item_info(tag)["type"]]
        fmt = cfg.get("format") or ("%d" if is_int else "%.3f")
        return SliderGeometry(float(rect[0]), float(width), float(cfg["min_value"]), float(cfg["max_value"]),
                              is_int, fmt)

    def after_frame(self, dpg, mouse_held: bool, ctrl_held: bool) -> None:
        """After a UI frame: remember slider values while no button is held; on a press, find the slider it
        activated and ImGui's grab offset for it (from the value before the press and the pointer then)."""
        if not self.enabled:
            return
        if not mouse_held:
            self._drag = None
            self._values = {tag: dpg.get_value(tag) for tag in self._sliders if dpg.does_item_exist(tag)}
            return
        if self._drag is not None or ctrl_held:  # ctrl+click turns a slider into a text field: not a drag
            return
        for tag in self._sliders:
            if dpg.does_item_exist(tag) and dpg.is_item_active(tag) and tag in self._values:
                geometry = self._geometry(dpg, tag)
                if geometry is not None:
                    mouse_x = dpg.get_mouse_pos(local=False)[0]
                    self._drag = _Drag(tag, geometry, geometry.click_offset(self._values[tag], mouse_x))
                return

    @property
    def dragging(self) -> bool:
        """A slider is being dragged (and latching is on)."""
        return self.enabled and self._drag is not None

    def before_frame(self, dpg, pointer_x: float | None) -> bool:
        """Right before a UI frame: if a slider is dragged and the pointer, now at `pointer_x` (client x; None:
        unknown), gives it a new value, apply it. True when a value was applied."""
        drag = self._drag
        if not self.enabled or drag is None or pointer_x is None or not dpg.does_item_exist(drag.tag):
            return False
        value = drag.geometry.value_at(pointer_x, drag.offset)
        current = dpg.get_value(drag.tag)
        if current is None or value == current:
            return False
        drag.predicted = value
        self._apply(drag.tag, value)
        self.latched += 1
        return True

    def verify(self, dpg) -> None:
        """After the frame that read the input: a predicted value the slider did not take is undone (its callback
        runs with the slider's own value), and too many misses in a row turn latching off."""
        drag = self._drag
        if drag is None or drag.predicted is None:
            return
        predicted, drag.predicted = drag.predicted, None
        if not dpg.does_item_exist(drag.tag):
            return
        actual = dpg.get_value(drag.tag)
        if actual == predicted:
            self._misses_in_row = 0
            return
        self.misses += 1
        self._misses_in_row += 1
        if actual is not None:
            self._apply(drag.tag, actual)
        if self._misses_in_row >= MAX_MISSES:
            self.enabled = False
            self._drag = None
