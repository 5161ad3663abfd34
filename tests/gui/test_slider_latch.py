"""explorer.slider_latch without a display: ImGui's slider arithmetic on hand-worked cases, and the latch's
bookkeeping (apply, verify, undo, turning itself off) against a stand-in for the few Dear PyGui calls it makes.
Whether the arithmetic matches the real Dear ImGui is tested in the real window
(tests/gui/test_explorer_gui.py::test_slider_moves_are_latched_into_the_frame_that_reads_them)."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.slider_latch import MAX_MISSES, SliderGeometry, SliderLatch, round_to_format

# The psi slider's geometry: frame 250 px wide at x 16, range -1 .. 2, two decimals. ImGui: slider_sz = 250 - 2 * 2
# = 246, grab 12 (GrabMinSize), usable 234 px from x = 16 + 2 + 6 = 24.
PSI = SliderGeometry(x0=16, width=250, v_min=-1.0, v_max=2.0, is_int=False, fmt="%.2f")


@pytest.mark.parametrize("mouse_x, value", [(24, -1.0), (258, 2.0), (141, 0.5), (10, -1.0), (400, 2.0),
                                             (25, -0.99), (180, 1.0)])
def test_float_slider_value_from_pointer(mouse_x: float, value: float) -> None:
    assert PSI.value_at(mouse_x) == pytest.approx(value, abs=1e-6)


def test_float_values_are_rounded_to_the_format_like_imgui() -> None:
    # 1 px = 3 / 234 of the range: 25 px -> -1 + 3/234 = -0.98718 -> "%.2f" -> -0.99 (read back as a float32).
    v = PSI.value_at(25)
    assert v == float(np.float32(-0.99))
    three = SliderGeometry(x0=16, width=250, v_min=-1.0, v_max=2.0, is_int=False, fmt="%.3f")
    assert three.value_at(25) == pytest.approx(-0.987, abs=1e-6)
    assert round_to_format(np.float32(1.504), "%.2fx") == pytest.approx(1.5)  # the zoom slider
    assert round_to_format(np.float32(0.123456), "no number") == pytest.approx(0.123456)
    assert round_to_format(np.float32(0.126), "100%% at %.2f") == pytest.approx(0.13)


def test_press_on_the_grab_keeps_its_offset() -> None:
    # psi 1.0: grab centre at 24 + 234 * 2/3 = 180; the grab is 12 px wide, ImGui is 1 px generous either side.
    assert PSI.click_offset(1.0, 183) == 3
    assert PSI.click_offset(1.0, 187) == 7 and PSI.click_offset(1.0, 173) == -7
    assert PSI.click_offset(1.0, 188) == 0 and PSI.click_offset(1.0, 120) == 0  # off the grab: the value jumps
    assert PSI.value_at(183, offset=3) == pytest.approx(1.0) and PSI.value_at(186, offset=3) == pytest.approx(1.04)


def test_int_slider_grab_covers_one_unit_and_values_round_like_imgui() -> None:
    # Range 0 .. 1: the grab is 246 / 2 = 123 px, usable 123 px from 16 + 2 + 61.5 = 79.5.
    cutoff = SliderGeometry(x0=16, width=250, v_min=0, v_max=1, is_int=True, fmt="%d")
    assert cutoff.value_at(140) == 0 and cutoff.value_at(141) == 1 and cutoff.value_at(500) == 1
    assert cutoff.click_offset(0, 80) == 0  # int sliders never keep a grab offset
    seeds = SliderGeometry(x0=16, width=250, v_min=0, v_max=1000, is_int=True, fmt="%d")
    assert seeds.value_at(24) == 0 and seeds.value_at(141) == 500 and seeds.value_at(258) == 1000
    assert isinstance(seeds.value_at(141), int)


class FakeDpg:
    """The Dear PyGui calls SliderLatch makes, over one slider with a settable state."""

    def __init__(self) -> None:
        self.value, self.active, self.mouse, self.width = 1.0, False, (183.0, 300.0), 250

    def get_all_items(self) -> list[int]:
        return [7, 8]

    def get_item_info(self, item: int) -> dict:
        return {"type": "mvAppItemType::mvSliderFloat" if item == 7 else "mvAppItemType::mvButton"}

    def get_item_configuration(self, item: int) -> dict:
        return {"width": self.width, "min_value": -1.0, "max_value": 2.0, "format": "%.2f", "vertical": False,
                "callback": print}

    def get_item_state(self, item: int) -> dict:
        return {"rect_min": [16.0, 290.0]}

    def does_item_exist(self, item: int) -> bool:
        return True

    def get_value(self, item: int) -> float:
        return self.value

    def is_item_active(self, item: int) -> bool:
        return self.active

    def get_mouse_pos(self, local: bool = False) -> tuple[float, float]:
        return self.mouse


def start_drag(dpg: FakeDpg, latch: SliderLatch, ctrl: bool = False) -> None:
    latch.scan(dpg)
    latch.after_frame(dpg, mouse_held=False, ctrl_held=False)  # values before the press
    dpg.active = True  # the frame that read the press activated the slider (pressed 3 px right of the grab)
    latch.after_frame(dpg, mouse_held=True, ctrl_held=ctrl)


def test_latch_applies_the_predicted_value_and_keeps_what_the_slider_took() -> None:
    applied = []
    dpg, latch = FakeDpg(), SliderLatch(apply=lambda tag, v: applied.append((tag, v)))
    start_drag(dpg, latch)
    assert latch.before_frame(dpg, 186) and applied == [(7, pytest.approx(1.04))]
    dpg.value = applied[-1][1]  # the frame read the same position: the slider has the value already
    latch.verify(dpg)
    assert (latch.latched, latch.misses) == (1, 0) and len(applied) == 1
    assert not latch.before_frame(dpg, 186)  # same position, same value: nothing to do
    assert not latch.before_frame(dpg, None)  # no new pointer input


def test_a_value_the_slider_did_not_take_is_undone_and_misses_turn_latching_off() -> None:
    applied = []
    dpg, latch = FakeDpg(), SliderLatch(apply=lambda tag, v: applied.append((tag, v)))
    start_drag(dpg, latch)
    for i in range(MAX_MISSES):
        assert latch.enabled
        assert latch.before_frame(dpg, 200 + i)
        dpg.value = 0.25  # the slider took another value (say, it reads newer input, or differs from the model)
        latch.verify(dpg)
        assert applied[-1] == (7, 0.25)  # ... and the app follows the slider, not the prediction
    assert not latch.enabled and latch.misses == MAX_MISSES
    assert not latch.before_frame(dpg, 120)


def test_ctrl_click_and_automatic_widths_are_not_latched() -> None:
    dpg, latch = FakeDpg(), SliderLatch(apply=lambda tag, v: pytest.fail("applied"))
    start_drag(dpg, latch, ctrl=True)  # ctrl+click makes the slider a text field
    assert not latch.before_frame(dpg, 120)
    dpg, latch = FakeDpg(), SliderLatch(apply=lambda tag, v: pytest.fail("applied"))
    dpg.width = 0  # ImGui computes the width: not known here
    start_drag(dpg, latch)
    assert not latch.before_frame(dpg, 120)
    latch.after_frame(dpg, mouse_held=False, ctrl_held=False)  # the release ends any drag
    assert not latch.before_frame(dpg, 120)
