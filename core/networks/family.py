"""The generator families this project runs, and the one small interface the rest of the code uses.

Three families share the calling convention `G(z, c, psi)`, `G.mapping(z, c, psi)` -> ws
[B, num_ws, w_dim] and `G.synthesis(ws, transform=None, noise_mode="const", noise_seed=0)`:

| family        | generator (module)                           | what differs for a user                      |
|---------------|----------------------------------------------|----------------------------------------------|
| `stylegan-xl` | `Generator` (core/networks/generator.py)     | per-class w_avg, Fourier input, growable     |
| `stylegan3`   | `StyleGAN3Generator` (stylegan3.py)          | one w_avg, Fourier input (T or R)            |
| `stylegan2`   | `StyleGAN2Generator` (stylegan2.py)          | one w_avg, noise inputs, no Fourier input    |

What the CLI, the explorer and the renderer need to know about a generator is in its `traits`
(`GeneratorTraits`, defined in core/networks/traits.py so that the family modules can use it without importing
this module, which imports them): they read those fields instead of testing the generator's class. Checkpoints
store the family name next to the configuration; `build_generator` is the one place that turns the
pair back into a module (no code is loaded from the file).
"""

from __future__ import annotations

from torch import nn

from core.networks.traits import FAMILIES


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
