"""Official StyleGAN3-T / StyleGAN3-R generators (NVlabs `training.networks_stylegan3`) -> `StyleGAN3Generator`.

StyleGAN-XL's synthesis is StyleGAN3's, so the synthesis side maps exactly as in stylegan_xl.py (same
layer names, same stored layer specifications, same FIR filters, checked with the same functions);
the mapping is StyleGAN2's (stylegan2.py `mapping_config`): a fully connected class embedding, z 512,
one w_avg.

| official name                                                  | ours              | how       |
|----------------------------------------------------------------|-------------------|-----------|
| mapping.{embed, fc{i}}.{weight, bias}, mapping.w_avg            | same name         | copied    |
| synthesis.input.{weight, affine.*, transform, freqs, phases}   | same name         | copied    |
| synthesis.L{i}_{size}_{ch}.{weight, bias, affine.*, magnitude_ema} | same name     | copied    |
| synthesis.L{i}_{size}_{ch}.{up_filter, down_filter}            | our filter design | verified  |

Configuration: the synthesis stores `num_layers, num_critical, margin_size, output_scale, num_fp16_res`
(read them: released T/R models use output_scale 0.25, other files differ); each layer stores
`conv_kernel, conv_clamp, magnitude_ema_beta`; `channel_base, channel_max, first_cutoff,
first_stopband, last_stopband_rel, filter_size, lrelu_upsampling, use_radial_filters` come from the
generator's `_init_kwargs` (the official defaults where absent; config R sets conv_kernel 1 and
use_radial_filters). Every stored layer specification is then compared with ours.
"""

from __future__ import annotations

import torch

from core.errors import CheckpointError
from core.io.official.records import OfficialGenerator
from core.io.official.stylegan2 import attr, mapping_config, plain_clamp, same_everywhere, synthesis_kwargs
from core.io.official.stylegan_xl import _verify_architecture, _verify_filters
from core.networks.stylegan3 import StyleGAN3Config, StyleGAN3Generator
from core.networks.synthesis import SynthesisConfig

FAMILY = "StyleGAN3"
KINDS = {"Generator": "StyleGAN3 generator"}
# Official SynthesisNetwork / SynthesisLayer defaults (used when the file's `_init_kwargs` omit them).
_DEFAULTS = dict(channel_base=32768, channel_max=512, first_cutoff=2.0, first_stopband=2**2.1,
                 last_stopband_rel=2**0.3, conv_kernel=3, filter_size=6, lrelu_upsampling=2, use_radial_filters=False)


def matches(og: OfficialGenerator) -> bool:
    """A Fourier-feature input with StyleGAN2's mapping (StyleGAN-XL's has an Embedding table instead)."""
    return ("synthesis.input.freqs" in og.tensors
            and og.module_classes.get("mapping.embed") in (None, "FullyConnectedLayer"))


def label(og: OfficialGenerator) -> str:
    kwargs = {**_DEFAULTS, **synthesis_kwargs(og)}
    return "StyleGAN3-R" if kwargs["use_radial_filters"] or int(kwargs["conv_kernel"]) == 1 else "StyleGAN3-T"


def unsupported_reason(og: OfficialGenerator) -> str | None:
    if og.class_name != "Generator":
        return f"generator class '{og.class_name}' with a StyleGAN3 mapping is not a StyleGAN3 Generator"
    return None


def official_to_config(og: OfficialGenerator) -> StyleGAN3Config:
    try:
        return _official_to_config(og)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{og.source}: the generator's attributes are not those of StyleGAN3 ({e})") from None


def _official_to_config(og: OfficialGenerator) -> StyleGAN3Config:
    kwargs = {**_DEFAULTS, **synthesis_kwargs(og)}
    names = list(attr(og, "synthesis.layer_names"))
    if not names:
        raise CheckpointError(f"{og.source}: the synthesis network has no layers")
    per_layer = {key: same_everywhere(og, [f"synthesis.{n}.{key}" for n in names], key)
                 for key in ("conv_clamp", "magnitude_ema_beta")}
    synthesis = SynthesisConfig(
        stem_resolution=int(attr(og, "img_resolution")), img_channels=int(attr(og, "img_channels")),
        channel_base=int(kwargs["channel_base"]), channel_max=int(kwargs["channel_max"]),
        num_layers=int(attr(og, "synthesis.num_layers")), num_critical=int(attr(og, "synthesis.num_critical")),
        first_cutoff=float(kwargs["first_cutoff"]), first_stopband=float(kwargs["first_stopband"]),
        last_stopband_rel=float(kwargs["last_stopband_rel"]), margin_size=int(attr(og, "synthesis.margin_size")),
        output_scale=float(attr(og, "synthesis.output_scale")), num_fp16_res=int(attr(og, "synthesis.num_fp16_res")),
        conv_kernel=int(og.attributes.get(f"synthesis.{names[0]}.conv_kernel", kwargs["conv_kernel"])),
        filter_size=int(kwargs["filter_size"]), lrelu_upsampling=int(kwargs["lrelu_upsampling"]),
        use_radial_filters=bool(kwargs["use_radial_filters"]), conv_clamp=plain_clamp(per_layer["conv_clamp"]),
        magnitude_ema_beta=float(per_layer["magnitude_ema_beta"]))
    return StyleGAN3Config(mapping=mapping_config(og), synthesis=synthesis)


def build_generator(cfg: StyleGAN3Config) -> StyleGAN3Generator:
    try:
        return StyleGAN3Generator(cfg)
    except (ValueError, ZeroDivisionError, IndexError) as e:
        raise CheckpointError(f"unsupported architecture: {e}") from None


def verify_generator(G: StyleGAN3Generator, og: OfficialGenerator) -> None:
    """Layer names, every stored layer specification, gains and FIR filters must equal ours."""
    names = list(attr(og, "synthesis.layer_names"))
    if names != G.synthesis.layer_names:
        raise CheckpointError(f"{og.source}: unsupported architecture: its synthesis layers "
                              f"({', '.join(names[:4])}, ...) differ from ours "
                              f"({', '.join(G.synthesis.layer_names[:4])}, ...)")
    _verify_architecture(G, og)
    _verify_filters(G, og)


def official_state_dict(og: OfficialGenerator, cfg: StyleGAN3Config) -> dict[str, torch.Tensor]:
    """The file's tensors under our names (the same names); the verified FIR filters are not loaded."""
    return {name: t for name, t in og.tensors.items() if not name.endswith((".up_filter", ".down_filter"))}


def describe_lines(og: OfficialGenerator, cfg: StyleGAN3Config) -> list[str]:
    """`sgxl info` lines on how the file maps onto our configuration."""
    return [f"architecture     {line}" for line in cfg.describe()]
