"""Official StyleGAN2 and StyleGAN2-ADA generators (NVlabs pickles) -> our `StyleGAN2Generator`.

Two official modules write these files and store the same tensors: stylegan2-ada-pytorch's
`training.networks` and the StyleGAN3 repository's `training.networks_stylegan2` (which adds a
`fused_modconv_default` attribute to its blocks: that is how `variant()` tells them apart; both compute
the same images at inference). Tensor names are the official `state_dict()` names, one to one:

| official name                                                          | ours       | how      |
|------------------------------------------------------------------------|------------|----------|
| mapping.{embed, fc{i}}.{weight, bias}, mapping.w_avg                    | same name  | copied   |
| synthesis.b{r}.const                                                   | same name  | copied   |
| synthesis.b{r}.conv{0,1}.{weight, bias, noise_strength, noise_const, affine.*} | same name | copied |
| synthesis.b{r}.torgb.{weight, bias, affine.*}                          | same name  | copied   |
| synthesis.b{r}.resample_filter, synthesis.b{r}.conv{0,1}.resample_filter | [1,3,3,1] filter | verified |

Configuration: `z_dim, c_dim, w_dim, img_resolution, img_channels` and `mapping.{num_layers, w_avg_beta,
fc0.bias_gain}` are attributes; the widths of the class embedding and hidden mapping layers come from
tensor shapes; `architecture`, `conv_clamp`, `use_noise` and `use_fp16` from the blocks and layers (each
must be the same in every layer); `channel_base` / `channel_max` from the generator's `_init_kwargs`
(flat in the StyleGAN3 repo, under `synthesis_kwargs` in 2-ADA; the official defaults where absent).
After building, the stored block and layer attributes (channels, up factors, fp16 flags, gains, num_ws)
and every tensor shape must equal ours.

The StyleGAN3 importer (stylegan3.py) reuses `mapping_config`: StyleGAN3's mapping is this one.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from core.errors import CheckpointError
from core.io.official.records import OfficialGenerator
from core.io.official.stylegan_xl import FILTER_TOLERANCE, _close
from core.networks.layers import FullyConnectedLayer
from core.networks.mapping_sg2 import StyleGAN2MappingConfig
from core.networks.stylegan2 import StyleGAN2Config, StyleGAN2Generator, StyleGAN2SynthesisConfig, setup_filter_1d

FAMILY = "StyleGAN2"
KINDS = {"Generator": "StyleGAN2 / StyleGAN2-ADA generator"}
_DEFAULTS = dict(channel_base=32768, channel_max=512)  # official SynthesisNetwork defaults


def matches(og: OfficialGenerator) -> bool:
    """StyleGAN2 / 2-ADA: synthesis blocks b4, b8, ... starting from a learned constant."""
    return "synthesis.b4.const" in og.tensors


def attr(og: OfficialGenerator, key: str, default: Any = KeyError) -> Any:
    if key in og.attributes:
        return og.attributes[key]
    if default is KeyError:
        raise CheckpointError(f"{og.source}: the generator has no '{key}' attribute; not a StyleGAN2/3 generator "
                              "as the official code stores it")
    return default


def synthesis_kwargs(og: OfficialGenerator) -> dict:
    """The synthesis keyword arguments the file was built with (StyleGAN3 repo: flat; 2-ADA: `synthesis_kwargs`)."""
    kwargs = dict(og.init_kwargs)
    nested = kwargs.pop("synthesis_kwargs", None)
    if isinstance(nested, dict):
        kwargs.update(nested)
    return kwargs


def same_everywhere(og: OfficialGenerator, keys: list[str], what: str) -> Any:
    """The one value the layers share for an attribute (refused when it is missing or differs)."""
    for key in keys:
        attr(og, key)
    values = {repr(og.attributes[k]) for k in keys}
    if len(values) != 1:
        raise CheckpointError(f"{og.source}: unsupported architecture: the layers use different {what} values "
                              f"({', '.join(sorted(values))}); ours has one for all layers")
    return og.attributes[keys[0]]


def plain_clamp(value: Any) -> int | float | None:
    """conv_clamp as JSON-friendly config: None, or 256 rather than 256.0."""
    if value is None:
        return None
    return int(value) if float(value).is_integer() else float(value)


def mapping_config(og: OfficialGenerator) -> StyleGAN2MappingConfig:
    """The StyleGAN2/3 mapping's configuration, from its attributes and tensor shapes."""
    c_dim = int(attr(og, "c_dim"))
    num_layers = int(attr(og, "mapping.num_layers"))
    w_dim = int(attr(og, "w_dim"))
    for i in range(num_layers):
        activation = og.attributes.get(f"mapping.fc{i}.activation", "lrelu")
        if activation != "lrelu":
            raise CheckpointError(f"{og.source}: unsupported architecture: mapping.fc{i} uses activation "
                                  f"{activation!r}, ours leaky ReLU")
    if "mapping.w_avg" not in og.tensors:
        raise CheckpointError(f"{og.source}: the mapping tracks no w_avg (w_avg_beta None), so it cannot truncate")
    embed = og.tensors.get("mapping.embed.weight")
    if c_dim > 0 and (embed is None or embed.ndim != 2 or embed.shape[1] != c_dim):
        raise CheckpointError(f"{og.source}: the class embedding does not take the {c_dim} classes")
    fc0 = og.tensors.get("mapping.fc0.weight")
    hidden = int(fc0.shape[0]) if num_layers > 1 and fc0 is not None and int(fc0.shape[0]) != w_dim else None
    return StyleGAN2MappingConfig(
        z_dim=int(attr(og, "z_dim")), c_dim=c_dim, w_dim=w_dim, num_layers=num_layers,
        embed_features=int(embed.shape[0]) if c_dim > 0 and int(embed.shape[0]) != w_dim else None,
        layer_features=hidden, lr_multiplier=float(attr(og, "mapping.fc0.bias_gain", 0.01)),
        w_avg_beta=float(attr(og, "mapping.w_avg_beta")))


def check_fc_layers(G: torch.nn.Module, og: OfficialGenerator, problems: list[str]) -> None:
    """Each fully connected layer's activation and gains must equal the file's."""
    for name, module in G.named_modules():
        if isinstance(module, FullyConnectedLayer):
            for key in ("activation", "weight_gain", "bias_gain"):
                official = og.attributes.get(f"{name}.{key}")
                if official is not None and not _close(official, getattr(module, key)):
                    problems.append(f"{name}.{key}: official {official!r}, ours {getattr(module, key)!r}")


# ----------------------------------------------------------------------------- the family interface


def label(og: OfficialGenerator) -> str:
    return variant(og)


def variant(og: OfficialGenerator) -> str:
    """Which official code wrote the file (the two compute the same images)."""
    if "synthesis.b4.fused_modconv_default" in og.attributes:
        return "StyleGAN2 (NVlabs/stylegan3, training.networks_stylegan2)"
    return "StyleGAN2-ADA (NVlabs/stylegan2-ada-pytorch, training.networks)"


def unsupported_reason(og: OfficialGenerator) -> str | None:
    if og.class_name != "Generator":
        return f"generator class '{og.class_name}' with StyleGAN2 synthesis blocks is not a StyleGAN2 Generator"
    return None


def official_to_config(og: OfficialGenerator) -> StyleGAN2Config:
    try:
        return _official_to_config(og)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{og.source}: the generator's attributes are not those of StyleGAN2 ({e})") from None


def _official_to_config(og: OfficialGenerator) -> StyleGAN2Config:
    res = int(attr(og, "img_resolution"))
    if res < 4 or res & (res - 1):
        raise CheckpointError(f"{og.source}: img_resolution {res} is not a power of two >= 4")
    kwargs = synthesis_kwargs(og)
    blocks = [f"synthesis.b{2**i}" for i in range(2, int(math.log2(res)) + 1)]
    convs = [f"{b}.conv1" for b in blocks] + [f"{b}.conv0" for b in blocks[1:]]
    architecture = same_everywhere(og, [f"{b}.architecture" for b in blocks], "architecture")
    conv_clamp = same_everywhere(og, [f"{k}.conv_clamp" for k in convs] + [f"{b}.torgb.conv_clamp" for b in blocks],
                                 "conv_clamp")
    use_noise = same_everywhere(og, [f"{k}.use_noise" for k in convs], "use_noise")
    activation = same_everywhere(og, [f"{k}.activation" for k in convs], "activation")
    if activation != "lrelu":
        raise CheckpointError(f"{og.source}: unsupported architecture: the synthesis uses activation {activation!r}, "
                              "ours leaky ReLU")
    for key in convs:
        kernel = og.tensors.get(f"{key}.weight")
        if kernel is not None and tuple(kernel.shape[2:]) != (3, 3):
            raise CheckpointError(f"{og.source}: unsupported architecture: {key} has a "
                                  f"{tuple(kernel.shape[2:])} kernel, ours 3x3")
    # The official rule puts fp16 on the N highest resolutions (never below 8), so N = the fp16 blocks.
    num_fp16_res = sum(bool(og.attributes.get(f"{b}.use_fp16")) for b in blocks)
    synthesis = StyleGAN2SynthesisConfig(
        img_resolution=res, img_channels=int(attr(og, "img_channels")),
        channel_base=int(kwargs.get("channel_base", _DEFAULTS["channel_base"])),
        channel_max=int(kwargs.get("channel_max", _DEFAULTS["channel_max"])),
        num_fp16_res=num_fp16_res, conv_clamp=plain_clamp(conv_clamp), architecture=str(architecture),
        use_noise=bool(use_noise))
    return StyleGAN2Config(mapping=mapping_config(og), synthesis=synthesis)


def build_generator(cfg: StyleGAN2Config) -> StyleGAN2Generator:
    try:
        return StyleGAN2Generator(cfg)
    except ValueError as e:
        raise CheckpointError(f"unsupported architecture: {e}") from None


def verify_generator(G: StyleGAN2Generator, og: OfficialGenerator) -> None:
    """The stored block/layer attributes and the FIR filters of the file must equal ours (else a clear error)."""
    problems: list[str] = []

    def check(key: str, ours: Any) -> None:
        if key in og.attributes and not _close(og.attributes[key], ours):
            problems.append(f"{key}: official {og.attributes[key]!r}, ours {ours!r}")

    check("num_ws", G.num_ws)
    check("synthesis.num_ws", G.synthesis.num_ws)
    check("synthesis.block_resolutions", G.synthesis.block_resolutions)
    for block in G.synthesis.blocks():
        p = f"synthesis.b{block.resolution}."
        check(p + "in_channels", block.in_channels)
        check(p + "use_fp16", block.use_fp16)
        check(p + "num_conv", block.num_conv)
        check(p + "num_torgb", 1)
        for name, layer in block.convs():
            check(f"{p}{name}.in_channels", layer.in_channels)
            check(f"{p}{name}.out_channels", layer.out_channels)
            check(f"{p}{name}.up", layer.up)
            check(f"{p}{name}.padding", 1)
            check(f"{p}{name}.resolution", layer.resolution)
        check(p + "torgb.weight_gain", block.torgb.weight_gain)
    check_fc_layers(G, og, problems)
    if problems:
        raise CheckpointError(f"{og.source}: unsupported architecture: it differs from ours in "
                              f"{len(problems)} places, e.g. {'; '.join(problems[:3])}")

    f = setup_filter_1d(G.cfg.synthesis.resample_filter)
    expected = torch.outer(f, f)  # the official code stores the 2-D filter, normalized to unit sum
    for name, tensor in og.tensors.items():
        if not name.endswith(".resample_filter"):
            continue
        if tuple(tensor.shape) != tuple(expected.shape):
            raise CheckpointError(f"{og.source}: unsupported architecture: {name} is a {list(tensor.shape)} filter, "
                                  "ours the 4x4 [1, 3, 3, 1] low-pass")
        diff = (tensor.to(torch.float32) - expected).abs().max().item()
        if not diff <= FILTER_TOLERANCE:
            raise CheckpointError(f"{og.source}: unsupported architecture: {name} is not the [1, 3, 3, 1] "
                                  f"low-pass filter (differs by {diff:.3g})")


def official_state_dict(og: OfficialGenerator, cfg: StyleGAN2Config) -> dict[str, torch.Tensor]:
    """The file's tensors under our names (the same names); the verified resample filters are not loaded."""
    return {name: t for name, t in og.tensors.items() if not name.endswith(".resample_filter")}


def describe_lines(og: OfficialGenerator, cfg: StyleGAN2Config) -> list[str]:
    """`sgxl info` lines on how the file maps onto our configuration."""
    return [f"written by       {variant(og)}"] + [f"architecture     {line}" for line in cfg.describe()]
