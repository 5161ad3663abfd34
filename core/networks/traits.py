"""What every generator family provides to the rest of the code: `GeneratorTraits`, the family names, noise modes.

Kept apart from `core.networks.family` (which builds a generator of a named family and so imports every family
module) because the family modules themselves need these: each generator's `traits` property returns a
`GeneratorTraits`, and the synthesis networks check noise modes here.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def check_noise_mode(noise_mode: str) -> None:
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"unknown noise mode {noise_mode!r}; use one of {', '.join(NOISE_MODES)}")
