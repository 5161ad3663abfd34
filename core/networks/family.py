"""The generator families this project runs, and the one small interface the rest of the code uses.

Three families share the calling convention `G(z, c, psi)`, `G.mapping(z, c, psi)` -> ws
[B, num_ws, w_dim] and `G.synthesis(ws, transform=None, noise_mode="const", noise_seed=0)`:

| family        | generator (module)                           | what differs for a user                      |
|---------------|----------------------------------------------|----------------------------------------------|
| `stylegan-xl` | `Generator` (core/networks/generator.py)     | per-class w_avg, Fourier input, growable     |
| `stylegan3`   | `StyleGAN3Generator` (stylegan3.py)          | one w_avg, Fourier input (T or R)            |
| `stylegan2`   | `StyleGAN2Generator` (stylegan2.py)          | one w_avg, noise inputs, no Fourier input    |

What the CLI, the explorer and the renderer need to know about a generator is in its `traits`
(`GeneratorTraits`): they read those fields instead of testing the generator's class. Checkpoints
store the family name next to the configuration; `build_generator` is the one place that turns the
pair back into a module (no code is loaded from the file).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

FAMILIES = ("stylegan-xl", "stylegan3", "stylegan2")
NOISE_MODES = ("const", "random", "none")


@dataclass(frozen=True)
class GeneratorTraits:
    family: str  # one of FAMILIES
    label: str  # e.g. "StyleGAN-XL", "StyleGAN3-R", "StyleGAN2"
    has_noise: bool  # per-layer noise inputs: `noise_mode` / `noise_seed` change the image
    has_input_transform: bool  # Fourier-feature input: `transform=` translates / rotates the image
    per_class_w_avg: bool  # truncation centre per class (StyleGAN-XL) or one w_avg for all (StyleGAN2/3)
    trainable: bool  # our trainer can continue and grow it (StyleGAN-XL only)
    ws_labels: tuple[str, ...]  # what each of the num_ws ws drives (the style-mixing checkboxes)
    layer_names: tuple[str, ...]  # what `synthesis.iter_layers` yields, in order
    layer_channels: tuple[int, ...]  # channels of each of those activations


def build_generator(family: str, config: dict) -> nn.Module:
    """A freshly initialised generator of `family` from its configuration dict (a checkpoint's config.json)."""
    if family == "stylegan-xl":
        from core.networks.generator import Generator, GeneratorConfig

        return Generator(GeneratorConfig.from_dict(config))
    if family == "stylegan3":
        from core.networks.stylegan3 import StyleGAN3Config, StyleGAN3Generator

        return StyleGAN3Generator(StyleGAN3Config.from_dict(config))
    if family == "stylegan2":
        from core.networks.stylegan2 import StyleGAN2Config, StyleGAN2Generator

        return StyleGAN2Generator(StyleGAN2Config.from_dict(config))
    raise ValueError(f"unknown generator family {family!r}; this version knows {', '.join(FAMILIES)}")


def check_noise_mode(noise_mode: str) -> None:
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"unknown noise mode {noise_mode!r}; use one of {', '.join(NOISE_MODES)}")
