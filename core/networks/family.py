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
    # Image -> uint8 as the family's official tools round it: StyleGAN-XL's gen_images.py computes
    # (x + 1) * 127.5, NVlabs' StyleGAN2/3 gen_images.py x * 127.5 + 128 (both clamp, then truncate).
    uint8_offset: float = 127.5


def family_classes(family: str) -> tuple[type, type]:
    """(config class, generator class) of a family; the one place a family name becomes code."""
    if family == "stylegan-xl":
        from core.networks.generator import Generator, GeneratorConfig

        return GeneratorConfig, Generator
    if family == "stylegan3":
        from core.networks.stylegan3 import StyleGAN3Config, StyleGAN3Generator

        return StyleGAN3Config, StyleGAN3Generator
    if family == "stylegan2":
        from core.networks.stylegan2 import StyleGAN2Config, StyleGAN2Generator

        return StyleGAN2Config, StyleGAN2Generator
    raise ValueError(f"unknown generator family {str(family)[:40]!r}; this version knows {', '.join(FAMILIES)}")


def build_generator(family: str, config: dict | object) -> nn.Module:
    """A freshly initialised generator of `family` from its configuration (a dataclass, or its dict)."""
    config_class, generator_class = family_classes(family)
    cfg = config_class.from_dict(config) if isinstance(config, dict) else config
    if not isinstance(cfg, config_class):
        raise ValueError(f"a {type(cfg).__name__} does not configure a {family} generator")
    return generator_class(cfg)


def check_noise_mode(noise_mode: str) -> None:
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"unknown noise mode {noise_mode!r}; use one of {', '.join(NOISE_MODES)}")
