"""Layers: show one synthesis layer's activations (3 channels as RGB) or their FFT magnitude.

The activations come from `G.synthesis.iter_layers(ws)`. StyleGAN3 layers work on a grid with a
margin (e.g. 36x36 for a 32x32 image), so the view shows that larger grid; the FFT view shows
where the energy sits in frequency, i.e. how well each layer's filters suppress aliasing.
"""

from __future__ import annotations

import dearpygui.dearpygui as dpg

from explorer.panels.base import Panel
from explorer.renderer import LAYER_VIEWS, ModelInfo

OUTPUT = "output image"


class LayersPanel(Panel):
    key = "layers"
    title = "Layers"
    default_open = False

    def __init__(self, app) -> None:
        super().__init__(app)
        self.labels: list[str] = [OUTPUT]
        self.names: list[str] = [""]
        self.channels: list[int] = [3]

    def build(self) -> None:
        dpg.add_combo([OUTPUT], label="layer", tag=self.tag("layer"), default_value=OUTPUT, width=220,
                      callback=self._on_layer)
        dpg.add_slider_int(label="channel", tag=self.tag("channel"), min_value=0, max_value=2, width=220,
                           callback=self._on_channel)
        dpg.add_radio_button(list(LAYER_VIEWS), tag=self.tag("view"), default_value=LAYER_VIEWS[0],
                             horizontal=True, callback=self._on_view)
        dpg.add_text("channels c, c+1, c+2 shown as R, G, B (+-3 std)", tag=self.tag("info"),
                     color=(170, 170, 170), wrap=380)

    def on_model(self, info: ModelInfo) -> None:
        self.names = ["", *info.layer_names]
        self.channels = [3, *info.layer_channels]
        self.labels = [OUTPUT] + [f"{n} ({c} ch)" for n, c in zip(info.layer_names, info.layer_channels)]
        dpg.configure_item(self.tag("layer"), items=self.labels)
        self.select_layer(self.state.layer)

    def _on_layer(self, sender, label, user_data=None) -> None:
        self.select_layer(self.names[self.labels.index(label)] if label in self.labels else "")

    def select_layer(self, name: str) -> None:
        i = self.names.index(name) if name in self.names else 0
        self.state.layer = self.names[i]
        self.state.channel = min(self.state.channel, self.channels[i] - 1)
        dpg.set_value(self.tag("layer"), self.labels[i])
        dpg.configure_item(self.tag("channel"), max_value=max(self.channels[i] - 1, 0))
        dpg.set_value(self.tag("channel"), self.state.channel)
        if self.names[i]:
            dpg.set_value(self.tag("info"), f"{self.names[i]}: {self.channels[i]} channels; shows channels "
                          "c, c+1, c+2 as R, G, B (+-3 std), or the log magnitude of their centred 2-D FFT")
        else:
            dpg.set_value(self.tag("info"), "the generator's output image")

    def _on_channel(self, sender, value, user_data=None) -> None:
        self.state.channel = int(value)

    def _on_view(self, sender, value, user_data=None) -> None:
        self.state.layer_view = str(value)
