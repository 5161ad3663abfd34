"""Style mixing: a second seed (and class) whose w replaces the main w at the checked layers.

Each synthesis layer reads its own w (ws[:, i]; in StyleGAN-XL/3 index 0 drives the Fourier input, in
StyleGAN2 a block's ToRGB shares its w with the next block's first conv), so choosing which indices come
from the second latent mixes coarse (early) or fine (late) styles (`core.sampling.style_mix`). The
checkbox labels are the model's `ws_labels`.
"""

from __future__ import annotations

import dearpygui.dearpygui as dpg

from explorer.panels.base import Panel
from explorer.renderer import MAX_SEED, ModelInfo

SAME_CLASS = "(same class as main)"


def preset_layers(name: str, num_ws: int) -> set[int]:
    """coarse / middle / fine thirds of the ws, all, or none."""
    third = max(1, num_ws // 3)
    ranges = {"coarse": range(0, third), "middle": range(third, 2 * third), "fine": range(2 * third, num_ws),
              "all": range(num_ws), "none": range(0)}
    return set(ranges[name])


class StyleMixPanel(Panel):
    key = "mix"
    title = "Style mixing"
    default_open = False

    def build(self) -> None:
        s = self.state
        dpg.add_checkbox(label="enable style mixing", tag=self.tag("enabled"), default_value=s.mix_enabled,
                         callback=self._on_enabled)
        dpg.add_input_int(label="mix seed", tag=self.tag("seed"), default_value=s.mix_seed, width=120,
                          min_value=0, min_clamped=True, callback=self._on_seed)
        dpg.add_combo([SAME_CLASS], label="mix class", tag=self.tag("class"), default_value=SAME_CLASS,
                      width=220, callback=self._on_class)
        with dpg.group(horizontal=True):
            for name in ("coarse", "middle", "fine", "all", "none"):
                dpg.add_button(label=name, tag=self.tag(f"preset.{name}"), user_data=name,
                               callback=self._on_preset)
        dpg.add_text("ws taken from the mix seed:", color=(170, 170, 170))
        dpg.add_group(tag=self.tag("layers"))

    def on_model(self, info: ModelInfo) -> None:
        dpg.delete_item(self.tag("layers"), children_only=True)
        for i, name in enumerate(info.ws_labels):
            dpg.add_checkbox(label=f"w{i}  {name}", tag=self.tag(f"layer.{i}"), parent=self.tag("layers"),
                             default_value=i in self.state.mix_layers, user_data=i, callback=self._on_layer)
        items = [SAME_CLASS] + [f"{i}: {info.class_name(i)}" for i in range(info.c_dim)]
        dpg.configure_item(self.tag("class"), items=items, show=info.c_dim > 0)
        mc = self.state.mix_class
        dpg.set_value(self.tag("class"), SAME_CLASS if mc is None else items[mc + 1])

    def _on_enabled(self, sender, value, user_data=None) -> None:
        self.state.mix_enabled = bool(value)

    def _on_seed(self, sender, value, user_data=None) -> None:
        self.state.mix_seed = min(max(int(value), 0), MAX_SEED)

    def _on_class(self, sender, label, user_data=None) -> None:
        self.state.mix_class = None if label == SAME_CLASS else int(str(label).split(":", 1)[0])

    def _on_layer(self, sender, checked, user_data) -> None:
        if checked:
            self.state.mix_layers.add(int(user_data))
        else:
            self.state.mix_layers.discard(int(user_data))

    def _on_preset(self, sender, app_data, user_data) -> None:
        info = self.app.info
        if info is None:
            return
        self.state.mix_layers = preset_layers(str(user_data), info.num_ws)
        for i in range(info.num_ws):
            dpg.set_value(self.tag(f"layer.{i}"), i in self.state.mix_layers)
        if self.state.mix_layers and not self.state.mix_enabled:
            self.state.mix_enabled = True
            dpg.set_value(self.tag("enabled"), True)
