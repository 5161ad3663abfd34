"""Official StyleGAN2, StyleGAN2-ADA and StyleGAN3 generators (NVlabs pickles) -> our modules, nothing run.

The pickle is read by the restricted unpickler of core/io/official.py into an `OfficialGenerator`
(names -> tensors, names -> attributes); this module maps that onto `StyleGAN2Generator` /
`StyleGAN3Generator`. Tensor names are the official `state_dict()` names, one to one:

| official (StyleGAN2 / 2-ADA)                              | ours              | how       |
|-----------------------------------------------------------|-------------------|-----------|
| mapping.{embed, fc{i}}.{weight, bias}, mapping.w_avg       | same name         | copied    |
| synthesis.b{r}.const, .conv{0,1}.{weight, bias, noise_strength, noise_const, affine.*}, .torgb.* | same | copied |
| synthesis.b{r}.resample_filter, .conv{0,1}.resample_filter | derived filter    | verified  |

| official (StyleGAN3-T/R)                                  | ours              | how       |
|-----------------------------------------------------------|-------------------|-----------|
| mapping.*                                                 | same name         | copied    |
| synthesis.input.*, synthesis.L{i}_{size}_{ch}.{weight, bias, affine.*, magnitude_ema} | same | copied |
| synthesis.L{i}_{size}_{ch}.{up_filter, down_filter}       | our filter design | verified  |

Configuration: the sizes come from the generator's attributes (z_dim, c_dim, w_dim, img_resolution,
layer attributes) and from `_init_kwargs` of the top-level generator (channel_base, channel_max,
output_scale...; the official defaults where absent). After building, every stored layer attribute
(channels, sampling rates, cutoffs, padding, fp16 flags, gains) is compared with ours and every tensor
shape must match, so a file we would render differently is refused with the reason.

StyleGAN2-ADA (`training.networks`) and the StyleGAN3 repository's `training.networks_stylegan2` store
the same tensors; the latter adds a `fused_modconv_default` attribute to its blocks, which is how the
two are told apart (recorded in the checkpoint's meta, for information).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from core.errors import CheckpointError
from core.io.official import FILTER_TOLERANCE, OfficialGenerator, _attr, _close, _verify_architecture
from core.networks.layers import FullyConnectedLayer
from core.networks.mapping_sg2 import StyleGAN2MappingConfig
from core.networks.stylegan2 import StyleGAN2Config, StyleGAN2Generator, StyleGAN2SynthesisConfig, setup_filter_1d
from core.networks.stylegan3 import StyleGAN3Config, StyleGAN3Generator
from core.networks.synthesis import SynthesisConfig

# Official defaults of the synthesis keyword arguments (used when a file's `_init_kwargs` omit them).
_SG3_DEFAULTS = dict(channel_base=32768, channel_max=512, num_layers=14, num_critical=2, first_cutoff=2.0,
                     first_stopband=2**2.1, last_stopband_rel=2**0.3, margin_size=10, output_scale=0.25,
                     num_fp16_res=4, conv_kernel=3, filter_size=6, lrelu_upsampling=2, use_radial_filters=False,
                     conv_clamp=256, magnitude_ema_beta=0.999)
_SG2_DEFAULTS = dict(channel_base=32768, channel_max=512)


def is_stylegan2(og: OfficialGenerator) -> bool:
    """StyleGAN2 / 2-ADA: synthesis blocks b4, b8, ... starting from a learned constant."""
    return "synthesis.b4.const" in og.tensors


def is_stylegan3(og: OfficialGenerator) -> bool:
    """StyleGAN3: a Fourier-feature input and StyleGAN2's mapping (no Embedding table, unlike StyleGAN-XL)."""
    return (og.class_name == "Generator" and "synthesis.input.freqs" in og.tensors
            and og.module_classes.get("mapping.embed") in (None, "FullyConnectedLayer"))


def _synthesis_kwargs(og: OfficialGenerator) -> dict:
    """The synthesis keyword arguments the file was built with (StyleGAN3 repo: flat; 2-ADA: `synthesis_kwargs`)."""
    kwargs = dict(og.init_kwargs)
    nested = kwargs.pop("synthesis_kwargs", None)
    if isinstance(nested, dict):
        kwargs.update(nested)
    return kwargs


def mapping_config(og: OfficialGenerator) -> StyleGAN2MappingConfig:
    """The StyleGAN2/3 mapping's configuration, from its attributes and tensor shapes."""
    c_dim = int(_attr(og, "c_dim"))
    num_layers = int(_attr(og, "mapping.num_layers"))
    w_dim = int(_attr(og, "w_dim"))
    for i in range(num_layers):
        if og.attributes.get(f"mapping.fc{i}.activation", "lrelu") != "lrelu":
            raise CheckpointError(f"{og.source}: unsupported architecture: mapping.fc{i} uses activation "
                                  f"{og.attributes[f'mapping.fc{i}.activation']!r}, ours leaky ReLU")
    if "mapping.w_avg" not in og.tensors:
        raise CheckpointError(f"{og.source}: the mapping tracks no w_avg (w_avg_beta None), so it cannot truncate")
    embed = og.tensors.get("mapping.embed.weight")
    if c_dim > 0 and (embed is None or embed.ndim != 2 or embed.shape[1] != c_dim):
        raise CheckpointError(f"{og.source}: the class embedding does not take the {c_dim} classes")
    fc0 = og.tensors.get("mapping.fc0.weight")
    hidden = None
    if num_layers > 1 and fc0 is not None and int(fc0.shape[0]) != w_dim:
        hidden = int(fc0.shape[0])
    return StyleGAN2MappingConfig(
        z_dim=int(_attr(og, "z_dim")), c_dim=c_dim, w_dim=w_dim, num_layers=num_layers,
        embed_features=int(embed.shape[0]) if c_dim > 0 and int(embed.shape[0]) != w_dim else None,
        layer_features=hidden,
        lr_multiplier=float(_attr(og, "mapping.fc0.bias_gain", 0.01)),
        w_avg_beta=float(_attr(og, "mapping.w_avg_beta")))


# ----------------------------------------------------------------------------- StyleGAN2 / 2-ADA


def _same_everywhere(og: OfficialGenerator, keys: list[str], what: str) -> Any:
    values = {repr(og.attributes.get(k)) for k in keys}
    if len(values) != 1:
        raise CheckpointError(f"{og.source}: unsupported architecture: the layers use different {what} values "
                              f"({', '.join(sorted(values))}); ours has one for all layers")
    return og.attributes.get(keys[0])


def stylegan2_config(og: OfficialGenerator) -> StyleGAN2Config:
    res = int(_attr(og, "img_resolution"))
    if res < 4 or res & (res - 1):
        raise CheckpointError(f"{og.source}: img_resolution {res} is not a power of two")
    kwargs = _synthesis_kwargs(og)
    resolutions = [2**i for i in range(2, int(math.log2(res)) + 1)]
    blocks = [f"synthesis.b{r}" for r in resolutions]
    convs = [f"{b}.conv1" for b in blocks] + [f"{b}.conv0" for b in blocks[1:]]
    architecture = _same_everywhere(og, [f"{b}.architecture" for b in blocks], "architecture")
    conv_clamp = _same_everywhere(og, [f"{k}.conv_clamp" for k in convs] + [f"{b}.torgb.conv_clamp" for b in blocks],
                                  "conv_clamp")
    use_noise = _same_everywhere(og, [f"{k}.use_noise" for k in convs], "use_noise")
    activation = _same_everywhere(og, [f"{k}.activation" for k in convs], "activation")
    if activation != "lrelu":
        raise CheckpointError(f"{og.source}: unsupported architecture: synthesis activation {activation!r}")
    for key in convs:
        kernel = og.tensors.get(f"{key}.weight")
        if kernel is not None and tuple(kernel.shape[2:]) != (3, 3):
            raise CheckpointError(f"{og.source}: unsupported architecture: {key} has a "
                                  f"{tuple(kernel.shape[2:])} kernel, ours 3x3")
    num_fp16_res = sum(bool(og.attributes.get(f"{b}.use_fp16")) for b in blocks)
    synthesis = StyleGAN2SynthesisConfig(
        img_resolution=res, img_channels=int(_attr(og, "img_channels")),
        channel_base=int(kwargs.get("channel_base", _SG2_DEFAULTS["channel_base"])),
        channel_max=int(kwargs.get("channel_max", _SG2_DEFAULTS["channel_max"])),
        num_fp16_res=num_fp16_res,
        conv_clamp=None if conv_clamp is None else (int(conv_clamp) if float(conv_clamp).is_integer()
                                                    else float(conv_clamp)),
        architecture=str(architecture), use_noise=bool(use_noise))
    return StyleGAN2Config(mapping=mapping_config(og), synthesis=synthesis)


def _verify_stylegan2(G: StyleGAN2Generator, og: OfficialGenerator) -> None:
    problems = []

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
        for name, layer in block.convs():
            check(f"{p}{name}.up", layer.up)
            check(f"{p}{name}.padding", 1)
            check(f"{p}{name}.resolution", layer.resolution)
        check(p + "torgb.weight_gain", block.torgb.weight_gain)
    _check_fc_layers(G, og, problems)
    if problems:
        raise CheckpointError(f"{og.source}: unsupported architecture: it differs from ours in "
                              f"{len(problems)} places, e.g. {'; '.join(problems[:3])}")


def _check_fc_layers(G: nn.Module, og: OfficialGenerator, problems: list[str]) -> None:
    for name, module in G.named_modules():
        if isinstance(module, FullyConnectedLayer):
            for key in ("activation", "weight_gain", "bias_gain"):
                official = og.attributes.get(f"{name}.{key}")
                if official is not None and not _close(official, getattr(module, key)):
                    problems.append(f"{name}.{key}: official {official!r}, ours {getattr(module, key)!r}")


def stylegan2_from_official(og: OfficialGenerator) -> StyleGAN2Generator:
    """Our StyleGAN2 generator with every tensor of the official one (strict; filters verified)."""
    cfg = stylegan2_config(og)
    try:
        G = StyleGAN2Generator(cfg)
    except ValueError as e:
        raise CheckpointError(f"{og.source}: unsupported architecture: {e}") from None
    _verify_stylegan2(G, og)
    f = setup_filter_1d(cfg.synthesis.resample_filter)
    expected_2d = torch.outer(f, f)  # the official code stores the 2-D filter

    def derived(name: str, tensor: torch.Tensor) -> bool:
        if not name.endswith(".resample_filter"):
            return False
        if tuple(tensor.shape) != tuple(expected_2d.shape):
            raise CheckpointError(f"{og.source}: unsupported architecture: {name} is a {list(tensor.shape)} filter, "
                                  f"ours [1, 3, 3, 1] (4x4)")
        diff = (tensor.to(torch.float32) - expected_2d).abs().max().item()
        if not diff <= FILTER_TOLERANCE:
            raise CheckpointError(f"{og.source}: unsupported architecture: {name} is not the [1, 3, 3, 1] "
                                  f"low-pass filter (differs by {diff:.3g})")
        return True

    load_tensors(G, og, derived)
    return G.eval().requires_grad_(False)


def stylegan2_variant(og: OfficialGenerator) -> str:
    """Which official code wrote the file (the two compute the same images)."""
    if "synthesis.b4.fused_modconv_default" in og.attributes:
        return "StyleGAN2 (NVlabs/stylegan3 training.networks_stylegan2)"
    return "StyleGAN2-ADA (NVlabs/stylegan2-ada-pytorch training.networks)"


# ----------------------------------------------------------------------------- StyleGAN3-T / R


def stylegan3_config(og: OfficialGenerator) -> StyleGAN3Config:
    kwargs = {**_SG3_DEFAULTS, **_synthesis_kwargs(og)}
    names = list(_attr(og, "synthesis.layer_names"))
    if not names:
        raise CheckpointError(f"{og.source}: the synthesis network has no layers")
    first = f"synthesis.{names[0]}."
    per_layer = {key: _same_everywhere(og, [f"synthesis.{n}.{key}" for n in names], key)
                 for key in ("conv_clamp", "magnitude_ema_beta")}
    conv_clamp = per_layer["conv_clamp"]
    synthesis = SynthesisConfig(
        stem_resolution=int(_attr(og, "img_resolution")), img_channels=int(_attr(og, "img_channels")),
        channel_base=int(kwargs["channel_base"]), channel_max=int(kwargs["channel_max"]),
        num_layers=int(_attr(og, "synthesis.num_layers")), num_critical=int(_attr(og, "synthesis.num_critical")),
        first_cutoff=float(kwargs["first_cutoff"]), first_stopband=float(kwargs["first_stopband"]),
        last_stopband_rel=float(kwargs["last_stopband_rel"]), margin_size=int(_attr(og, "synthesis.margin_size")),
        output_scale=float(_attr(og, "synthesis.output_scale")),
        num_fp16_res=int(_attr(og, "synthesis.num_fp16_res")),
        conv_kernel=int(og.attributes.get(first + "conv_kernel", kwargs["conv_kernel"])),
        filter_size=int(kwargs["filter_size"]), lrelu_upsampling=int(kwargs["lrelu_upsampling"]),
        use_radial_filters=bool(kwargs["use_radial_filters"]),
        conv_clamp=None if conv_clamp is None else (int(conv_clamp) if float(conv_clamp).is_integer()
                                                    else float(conv_clamp)),
        magnitude_ema_beta=float(per_layer["magnitude_ema_beta"]),
    )
    return StyleGAN3Config(mapping=mapping_config(og), synthesis=synthesis)


def stylegan3_from_official(og: OfficialGenerator) -> StyleGAN3Generator:
    """Our StyleGAN3 generator with every tensor of the official one (strict; FIR filters verified)."""
    cfg = stylegan3_config(og)
    try:
        G = StyleGAN3Generator(cfg)
    except (ValueError, ZeroDivisionError, IndexError) as e:
        raise CheckpointError(f"{og.source}: unsupported architecture: {e}") from None
    names = list(_attr(og, "synthesis.layer_names"))
    if names != G.synthesis.layer_names:
        raise CheckpointError(f"{og.source}: unsupported architecture: its synthesis layers "
                              f"({', '.join(names[:4])}, ...) differ from ours "
                              f"({', '.join(G.synthesis.layer_names[:4])}, ...)")
    _verify_architecture(G, og)  # every stored layer specification, gains and num_ws
    filters = dict(G.named_buffers())  # includes the non-persistent up/down filters

    def derived(name: str, tensor: torch.Tensor) -> bool:
        if not name.endswith((".up_filter", ".down_filter")):
            return False
        mine = filters.get(name)
        if mine is None or mine.shape != tensor.shape:
            raise CheckpointError(f"{og.source}: filter {name} {list(tensor.shape)} has no counterpart "
                                  f"{None if mine is None else list(mine.shape)} in our design")
        diff = (mine - tensor.to(mine.dtype)).abs().max().item() if tensor.numel() else 0.0
        if not diff <= FILTER_TOLERANCE:
            raise CheckpointError(f"{og.source}: filter {name} differs from our filter design by {diff:.3g}")
        return True

    for name in (k for k in og.attributes if k.endswith((".up_filter", ".down_filter"))):
        if og.attributes[name] is None and filters.get(name) is not None:
            raise CheckpointError(f"{og.source}: {name} is an identity filter in the file but not in our design")
    load_tensors(G, og, derived)
    return G.eval().requires_grad_(False)


# ----------------------------------------------------------------------------- tensors


def load_tensors(G: nn.Module, og: OfficialGenerator, derived: Any) -> None:
    """Copy every official tensor into `G` by name (strict both ways); `derived(name, t)` True = verified, skip."""
    ours = G.state_dict()
    new_state: dict[str, torch.Tensor] = {}
    unmapped = []
    for name, tensor in og.tensors.items():
        if derived(name, tensor):
            continue
        if name not in ours:
            unmapped.append(name)
            continue
        if tuple(tensor.shape) != tuple(ours[name].shape):
            raise CheckpointError(f"{og.source}: unsupported architecture: tensor {name} has shape "
                                  f"{list(tensor.shape)}, ours {list(ours[name].shape)}")
        new_state[name] = tensor.to(ours[name].dtype).clone()
    if unmapped:
        raise CheckpointError(f"{og.source}: unsupported architecture: {len(unmapped)} official tensors have no "
                              f"place in our generator, e.g. {', '.join(unmapped[:3])}")
    missing = sorted(set(ours) - set(new_state))
    if missing:
        raise CheckpointError(f"{og.source}: the file lacks {len(missing)} tensors our generator needs, "
                              f"e.g. {', '.join(missing[:3])}")
    G.load_state_dict(new_state, strict=True)
