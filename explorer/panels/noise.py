"""Noise: how StyleGAN2's per-layer noise inputs are fed (shown only for models that have them).

StyleGAN2 adds a noise image, scaled by a learned per-layer strength, after every convolution (paper
Sec. 2, "stochastic variation": hair, freckles, background texture). "const" uses the noise images stored
in the model (what the official tools and `sgxl generate` use), "random" draws new ones from the noise
seed (the same seed always gives the same noise), "none" leaves them out. StyleGAN3 and StyleGAN-XL have
no noise inputs, so the panel hides for them.
"""

from __future__ import annotations

import dearpygui.dearpygui as dpg

from core.networks.traits import NOISE_MODES
from explorer.panels.base import Panel
from explorer.renderer import MAX_SEED, ModelInfo


class NoisePanel(Panel):
    key = "noise"
    title = "Noise"

    def build(self) -> None:
        s = self.state
        dpg.add_radio_button(list(NOISE_MODES), tag=self.tag("mode"), default_value=s.noise_mode, horizontal=True,
                             callback=self._on_mode)
        dpg.add_input_int(label="noise seed", tag=self.tag("seed"), default_value=s.noise_seed, width=150,
                          min_value=0, min_clamped=True, callback=self._on_seed, enabled=s.noise_mode == "random")
        dpg.add_text("const: the model's stored noise (as the official tools); random: drawn from the noise seed; "
                     "none: no noise.", color=(150, 150, 150), wrap=380)

    def on_model(self, info: ModelInfo) -> None:
        if dpg.does_item_exist(f"{self.key}.header"):
            dpg.configure_item(f"{self.key}.header", show=info.has_noise)

    def _on_mode(self, sender, value, user_data=None) -> None:
        self.set_mode(str(value))

    def set_mode(self, mode: str) -> None:
        if mode not in NOISE_MODES:
            return
        self.state.noise_mode = mode
        dpg.set_value(self.tag("mode"), mode)
        dpg.configure_item(self.tag("seed"), enabled=mode == "random")

    def _on_seed(self, sender, value, user_data=None) -> None:
        self.state.noise_seed = min(max(int(value), 0), MAX_SEED)
