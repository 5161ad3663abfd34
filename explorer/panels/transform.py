"""Input transform: translate / rotate the Fourier features of the synthesis input.

StyleGAN3-T (the synthesis StyleGAN-XL uses) is equivariant to translation (StyleGAN3 Sec. 3):
moving the input's coordinate grid moves the image content without texture sticking. The 3x3
matrix goes to `G.synthesis(ws, transform=...)`.
"""

from __future__ import annotations

import dearpygui.dearpygui as dpg

from explorer.panels.base import Panel
from explorer.renderer import ModelInfo


class TransformPanel(Panel):
    key = "xform"
    title = "Input transform"
    default_open = False

    def build(self) -> None:
        s = self.state
        for axis, value in (("x", s.translate[0]), ("y", s.translate[1])):
            dpg.add_slider_float(label=f"translate {axis}", tag=self.tag(f"t{axis}"), default_value=value,
                                 min_value=-1.0, max_value=1.0, width=220, format="%.3f",
                                 callback=self._on_translate)
        dpg.add_slider_float(label="rotate (deg)", tag=self.tag("rotate"), default_value=s.rotate,
                             min_value=-180.0, max_value=180.0, width=220, format="%.1f",
                             callback=self._on_rotate)
        dpg.add_button(label="Reset transform", tag=self.tag("reset"), callback=self._on_reset)

    def on_model(self, info: ModelInfo) -> None:
        # StyleGAN2 starts from a learned constant: there is no input grid to move, so the panel hides.
        if dpg.does_item_exist(f"{self.key}.header"):
            dpg.configure_item(f"{self.key}.header", show=info.has_input_transform)

    def _on_translate(self, sender, value, user_data=None) -> None:
        self.state.translate = (float(dpg.get_value(self.tag("tx"))), float(dpg.get_value(self.tag("ty"))))

    def _on_rotate(self, sender, value, user_data=None) -> None:
        self.state.rotate = float(value)

    def _on_reset(self, sender=None, app_data=None, user_data=None) -> None:
        self.state.translate = (0.0, 0.0)
        self.state.rotate = 0.0
        for name in ("tx", "ty", "rotate"):
            dpg.set_value(self.tag(name), 0.0)
