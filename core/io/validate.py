"""The one gate every checkpoint passes before anything is allocated for it.

A checkpoint file decides how big the network built from it is: a config asking for a million
layers, a 10⁹-class embedding table or 10⁶ channels would make `Generator(cfg)` allocate terabytes
or run for hours before any later check could object. So every loader (our `.sgxl` files and
folders, training snapshots with D and optimizer state, and the official `.pkl` importer) calls
this module first:

1. `generator_config_from_dict`: the JSON config, field by field: JSON type (an int is not a
   string, a bool or 64.0), range and cross-field rules -> `GeneratorConfig`, else one
   `CheckpointError` sentence naming the field.
2. `check_model_size`: parameters and activation memory computed from the config alone (the layer
   plan of `core.networks.synthesis.layer_specs`, no tensor made), refused above `LIMITS` unless
   the user allows large models (`--allow-large`, or `SGXL_ALLOW_LARGE=1`). The paper's largest
   model (ImageNet 1024², 41 synthesis layers) is well inside the defaults.
3. `read_zip_member`: a zip member's inflated size is checked against the zip directory, a cap and
   its compression ratio *before* inflating (a 1 MB file can inflate to many GB), then read in
   chunks that stop at the cap whatever the directory claimed.
4. `check_safetensors_header`: the tensor table (names, dtypes, shapes, byte ranges) is read from the
   header and compared with what the config builds before any tensor is materialised.
5. `check_tensor_values`: every floating tensor is finite (NaN/inf weights render black images),
   the generator's tensors are floating point (an integer tensor where a weight belongs is refused,
   not silently cast), with the offending tensor named.

`validate_generator` runs 1-2 (and 5 when tensors are given) in one call: the official importer
calls it on the config it derived from a pickle, before building a generator.

Every generator family (core/networks/family.py) passes the same gate: StyleGAN-XL's config
(`GeneratorConfig`), StyleGAN3's (the StyleGAN2 mapping + StyleGAN-XL's synthesis fields without growth
stages) and StyleGAN2's (its mapping + block synthesis); each config class names its family.
"""

from __future__ import annotations

import json
import math
import os
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.errors import CheckpointError
from core.networks.generator import GeneratorConfig
from core.networks.mapping import MappingConfig
from core.networks.mapping_sg2 import StyleGAN2MappingConfig
from core.networks.stylegan2 import ARCHITECTURES, StyleGAN2Config, StyleGAN2SynthesisConfig
from core.networks.stylegan3 import StyleGAN3Config
from core.networks.synthesis import GrowthStage, SynthesisConfig, layer_specs
from core.networks.traits import FAMILIES

AnyConfig = GeneratorConfig | StyleGAN3Config | StyleGAN2Config

ALLOW_LARGE_ENV = "SGXL_ALLOW_LARGE"
MiB = 2**20
GiB = 2**30


@dataclass(frozen=True)
class Limits:
    """Upper bounds for a model built from a file (override: `--allow-large` / SGXL_ALLOW_LARGE=1).

    The defaults leave room above the paper's largest generator (the `imagenet` preset at 1024²: 237 M
    parameters, 5.4 GB of float32 activations per image by `model_size`) and refuse what no GPU holds.
    """

    max_params: int = 2_000_000_000  # 8 GB of float32 weights
    max_activation_bytes: int = 24 * GiB  # peak activation memory of one image through the synthesis
    max_resolution: int = 8192  # output side in pixels (the layer plan of larger ones is not computed)


LIMITS = Limits()
MAX_CLASSES = 100_000  # class count: ImageNet-21k has 21,841; a larger embedding table is a broken file
MAX_CONFIG_BYTES = 16 * MiB  # config.json (1000 ImageNet class names take ~30 KB)
MAX_SAFETENSORS_HEADER = 64 * MiB
MAX_COMPRESSION_RATIO = 20  # float weights barely compress; a member inflating 20x is a zip bomb
RATIO_CHECK_ABOVE = 64 * MiB  # below this size the ratio does not matter
TRAINING_STATE_ALLOWANCE = 2 * GiB  # D (+ its Adam moments) and small groups in a training snapshot
FLOAT_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64}
DTYPE_NAMES = {"I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "U16": "uint16",
               "U32": "uint32", "U64": "uint64", "BOOL": "bool", "F8_E4M3": "float8", "F8_E5M2": "float8"}
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
               "BOOL": 1, "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}


def large_models_allowed(explicit: bool | None = None) -> bool:
    """`explicit` when given, else the SGXL_ALLOW_LARGE environment variable (set by `--allow-large`)."""
    if explicit is not None:
        return explicit
    return os.environ.get(ALLOW_LARGE_ENV, "").strip().lower() not in ("", "0", "false", "no")


# ----------------------------------------------------------------------------- config fields

# (kind, low, high): "int" / "float" ranges are inclusive; "pow2" is an int power of two in range.
_MAPPING_FIELDS: dict[str, tuple[str, float, float]] = {
    "z_dim": ("int", 1, 4096),
    "c_dim": ("int", 0, MAX_CLASSES),
    "w_dim": ("int", 1, 4096),
    "embed_dim": ("int", 1, 4096),
    "num_layers": ("int", 1, 32),
    "lr_multiplier": ("float", 1e-6, 100.0),
    "w_avg_beta": ("float", 0.0, 1.0),
}
_SYNTHESIS_FIELDS: dict[str, tuple[str, float, float]] = {
    "stem_resolution": ("pow2", 4, 4096),
    "img_channels": ("int", 1, 4),
    "channel_base": ("int", 1, 2**24),
    "channel_max": ("int", 1, 16384),
    "num_layers": ("int", 1, 256),
    "num_critical": ("int", 0, 255),
    "first_cutoff": ("float", 1e-3, 1e5),
    "first_stopband": ("float", 1e-3, 1e5),
    "last_stopband_rel": ("float", 1e-3, 100.0),
    "margin_size": ("int", 0, 1024),
    "output_scale": ("float", -1e3, 1e3),
    "num_fp16_res": ("int", 0, 64),
    "conv_kernel": ("int", 1, 15),
    "filter_size": ("int", 1, 64),
    "lrelu_upsampling": ("int", 1, 16),
    "use_radial_filters": ("bool", 0, 1),
    "conv_clamp": ("float?", 1e-6, 1e9),
    "magnitude_ema_beta": ("float", 0.0, 1.0),
}
# StyleGAN2/3's mapping (core/networks/mapping_sg2.py) and StyleGAN2's block synthesis (core/networks/stylegan2.py).
_SG2_MAPPING_FIELDS: dict[str, tuple[str, float, float]] = {
    "z_dim": ("int", 1, 4096),
    "c_dim": ("int", 0, MAX_CLASSES),
    "w_dim": ("int", 1, 4096),
    "num_layers": ("int", 1, 32),
    "embed_features": ("int?", 1, 4096),
    "layer_features": ("int?", 1, 4096),
    "lr_multiplier": ("float", 1e-6, 100.0),
    "w_avg_beta": ("float", 0.0, 1.0),
}
_SG2_SYNTHESIS_FIELDS: dict[str, tuple[str, float, float]] = {
    "img_resolution": ("pow2", 4, 8192),
    "img_channels": ("int", 1, 4),
    "channel_base": ("int", 1, 2**24),
    "channel_max": ("int", 1, 16384),
    "num_fp16_res": ("int", 0, 64),
    "conv_clamp": ("float?", 1e-6, 1e9),
    "use_noise": ("bool", 0, 1),
}
_SG2_OTHER_FIELDS = ("architecture", "resample_filter")  # a string and a list, checked by `_check_sg2_synthesis`
_STAGE_FIELDS: dict[str, tuple[str, float, float]] = {
    "up_factor": ("pow2", 2, 16),
    "head_layers": ("int", 3, 256),
    "magnitude_ema_beta": ("float?", 0.0, 1.0),
}
MAX_STAGES = 16


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null",
            float: "a number", int: "an integer"}.get(type(value), type(value).__name__)


def _check_value(value: Any, kind: str, lo: float, hi: float, where: str, source: str) -> Any:
    bad = f"{source}: config field {where}"
    if kind == "bool":
        if not isinstance(value, bool):
            raise CheckpointError(f"{bad} must be true or false, not {_type_name(value)} ({value!r:.40})")
        return value
    if kind in ("float?", "int?") and value is None:
        return None
    if kind in ("int", "int?", "pow2"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise CheckpointError(f"{bad} must be an integer, not {_type_name(value)} ({value!r:.40})")
        if not lo <= value <= hi:
            raise CheckpointError(f"{bad} = {value} is outside the supported range {int(lo)}..{int(hi)}")
        if kind == "pow2" and value & (value - 1):
            raise CheckpointError(f"{bad} = {value} must be a power of two")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CheckpointError(f"{bad} must be a number, not {_type_name(value)} ({value!r:.40})")
    value = float(value)
    if not math.isfinite(value) or not lo <= value <= hi:
        raise CheckpointError(f"{bad} = {value!r} is outside the supported range {lo:g}..{hi:g}")
    return value


def _check_fields(d: Any, fields: dict[str, tuple[str, float, float]], where: str, source: str,
                  defaults: Any, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise CheckpointError(f"{source}: config field {where} must be an object, not {_type_name(d)}")
    unknown = sorted(set(d) - set(fields) - set(optional))
    if unknown:
        raise CheckpointError(f"{source}: config field {where} has unknown entries {unknown[:3]} (a newer or "
                              "foreign file?)")
    out = {}
    for name, (kind, lo, hi) in fields.items():
        value = d[name] if name in d else getattr(defaults, name)
        out[name] = _check_value(value, kind, lo, hi, f"{where}.{name}", source)
    return out


def generator_config_from_dict(d: Any, source: str = "checkpoint", family: str = "stylegan-xl") -> AnyConfig:
    """A checkpoint's `generator` JSON object -> the family's config, or one CheckpointError naming the bad field.

    Missing fields take the dataclass defaults (older files); unknown fields are refused.
    """
    if family not in FAMILIES:
        raise CheckpointError(f"{source}: unknown generator family {str(family)[:40]!r} (a newer or foreign file?); "
                              f"this version knows {', '.join(FAMILIES)}")
    if not isinstance(d, dict):
        raise CheckpointError(f"{source}: config field generator must be an object, not {_type_name(d)}")
    unknown = sorted(set(d) - {"mapping", "synthesis"})
    if unknown:
        raise CheckpointError(f"{source}: config field generator has unknown entries {unknown[:3]}")
    if "mapping" not in d or "synthesis" not in d:
        raise CheckpointError(f"{source}: config field generator needs 'mapping' and 'synthesis'")
    if family == "stylegan2":
        return _stylegan2_config_from_dict(d, source)
    if family == "stylegan3":
        mapping = StyleGAN2MappingConfig(**_check_fields(d["mapping"], _SG2_MAPPING_FIELDS, "generator.mapping",
                                                         source, StyleGAN3Config().mapping))
        syn = _check_fields(d["synthesis"], _SYNTHESIS_FIELDS, "generator.synthesis", source, SynthesisConfig(),
                            optional=("stages",))
        if d["synthesis"].get("stages"):
            raise CheckpointError(f"{source}: config field generator.synthesis.stages must be empty: a StyleGAN3 "
                                  "generator has no growth stages")
        cfg3 = StyleGAN3Config(mapping=mapping, synthesis=SynthesisConfig(**syn))
        check_generator_config(cfg3, source)
        return cfg3
    mapping = MappingConfig(**_check_fields(d["mapping"], _MAPPING_FIELDS, "generator.mapping", source,
                                            MappingConfig()))
    syn_d = d["synthesis"]
    syn = _check_fields(syn_d, _SYNTHESIS_FIELDS, "generator.synthesis", source, SynthesisConfig(),
                        optional=("stages",))
    stages_d = syn_d.get("stages", [])
    if not isinstance(stages_d, list):
        raise CheckpointError(f"{source}: config field generator.synthesis.stages must be a list, not "
                              f"{_type_name(stages_d)}")
    if len(stages_d) > MAX_STAGES:
        raise CheckpointError(f"{source}: config field generator.synthesis.stages has {len(stages_d)} growth "
                              f"stages; at most {MAX_STAGES} are supported")
    stages = [GrowthStage(**_check_fields(s, _STAGE_FIELDS, f"generator.synthesis.stages[{i}]", source,
                                          GrowthStage())) for i, s in enumerate(stages_d)]
    cfg = GeneratorConfig(mapping=mapping, synthesis=SynthesisConfig(**syn, stages=stages))
    check_generator_config(cfg, source)
    return cfg


def _stylegan2_config_from_dict(d: dict, source: str) -> StyleGAN2Config:
    defaults = StyleGAN2Config()
    mapping = StyleGAN2MappingConfig(**_check_fields(d["mapping"], _SG2_MAPPING_FIELDS, "generator.mapping", source,
                                                     defaults.mapping))
    syn_d = d["synthesis"]
    syn = _check_fields(syn_d, _SG2_SYNTHESIS_FIELDS, "generator.synthesis", source, defaults.synthesis,
                        optional=_SG2_OTHER_FIELDS)
    for name in _SG2_OTHER_FIELDS:
        syn[name] = syn_d.get(name, getattr(defaults.synthesis, name))
    cfg = StyleGAN2Config(mapping=mapping, synthesis=StyleGAN2SynthesisConfig(**syn))
    check_generator_config(cfg, source)
    return cfg


def _check_sg2_synthesis(s: StyleGAN2SynthesisConfig, source: str) -> None:
    where = f"{source}: config field generator.synthesis"
    if not isinstance(s.architecture, str) or s.architecture not in ARCHITECTURES:
        raise CheckpointError(f"{where}.architecture = {str(s.architecture)[:40]!r}: only "
                              f"{', '.join(ARCHITECTURES)} is supported")
    taps = s.resample_filter
    if not isinstance(taps, list) or not 1 <= len(taps) <= 16 or not all(
            isinstance(t, int) and not isinstance(t, bool) and 0 <= t <= 1000 for t in taps) or sum(taps) == 0:
        raise CheckpointError(f"{where}.resample_filter must be a list of 1..16 small non-negative integers "
                              f"(e.g. [1, 3, 3, 1]), not {str(taps)[:40]}")


def _check_field_values(to_check: list[tuple[str, Any, dict[str, tuple[str, float, float]]]], source: str) -> None:
    for where, obj, fields in to_check:
        for name, (kind, lo, hi) in fields.items():
            value = getattr(obj, name)
            if kind in ("float", "float?") and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if isinstance(value, (np.integer, np.floating, np.bool_)):
                value = value.item()
            _check_value(value, kind, lo, hi, f"{where}.{name}", source)


def check_generator_config(cfg: AnyConfig, source: str = "checkpoint") -> None:
    """Ranges and cross-field rules of a generator config object (from JSON, or derived from an official file)."""
    if not isinstance(cfg, (GeneratorConfig, StyleGAN3Config, StyleGAN2Config)):
        raise CheckpointError(f"{source}: not a generator configuration")
    if cfg.family == "stylegan2":
        _check_field_values([("generator.mapping", cfg.mapping, _SG2_MAPPING_FIELDS),
                             ("generator.synthesis", cfg.synthesis, _SG2_SYNTHESIS_FIELDS)], source)
        _check_sg2_synthesis(cfg.synthesis, source)
        return
    if cfg.family == "stylegan3":
        if cfg.synthesis.stages:
            raise CheckpointError(f"{source}: a StyleGAN3 generator has no growth stages")
        _check_field_values([("generator.mapping", cfg.mapping, _SG2_MAPPING_FIELDS),
                             ("generator.synthesis", cfg.synthesis, _SYNTHESIS_FIELDS)], source)
        _check_synthesis_rules(cfg.synthesis, source)
        return
    to_check = [("generator.mapping", cfg.mapping, _MAPPING_FIELDS), ("generator.synthesis", cfg.synthesis,
                                                                      _SYNTHESIS_FIELDS)]
    if len(cfg.synthesis.stages) > MAX_STAGES:
        raise CheckpointError(f"{source}: {len(cfg.synthesis.stages)} growth stages; at most {MAX_STAGES} are "
                              "supported")
    to_check += [(f"generator.synthesis.stages[{i}]", st, _STAGE_FIELDS) for i, st in enumerate(cfg.synthesis.stages)]
    _check_field_values(to_check, source)
    _check_synthesis_rules(cfg.synthesis, source)


def _check_synthesis_rules(s: SynthesisConfig, source: str) -> None:
    """Cross-field rules of the StyleGAN3-style synthesis (StyleGAN-XL and StyleGAN3)."""
    if s.num_critical >= s.num_layers:
        raise CheckpointError(f"{source}: config field generator.synthesis.num_critical ({s.num_critical}) must be "
                              f"smaller than num_layers ({s.num_layers})")
    if s.conv_kernel % 2 == 0:
        raise CheckpointError(f"{source}: config field generator.synthesis.conv_kernel = {s.conv_kernel} must be "
                              "odd")
    if s.first_stopband <= s.first_cutoff:
        raise CheckpointError(f"{source}: config field generator.synthesis.first_stopband ({s.first_stopband:g}) "
                              f"must exceed first_cutoff ({s.first_cutoff:g})")
    res = s.stem_resolution * math.prod(st.up_factor for st in s.stages)
    if res > LIMITS.max_resolution:
        raise CheckpointError(f"{source}: the configuration makes {res}x{res} images; at most "
                              f"{LIMITS.max_resolution}x{LIMITS.max_resolution} is supported")


# ----------------------------------------------------------------------------- size from the config alone

@dataclass(frozen=True)
class ModelSize:
    params: int  # elements of every persistent tensor of the generator (weights and buffers)
    activation_bytes: int  # peak float32 activation memory of one image through the synthesis
    num_layers: int
    resolution: int

    @property
    def param_bytes(self) -> int:
        return 4 * self.params

    def describe(self) -> str:
        return (f"{self.params / 1e6:,.1f} M parameters ({self.param_bytes / GiB:.2f} GB), "
                f"{self.activation_bytes / GiB:.2f} GB of activations per image, {self.num_layers} synthesis "
                f"layers, {self.resolution}x{self.resolution}")


def _layer_plan(cfg: GeneratorConfig, source: str):
    try:
        with np.errstate(all="raise"):
            input_spec, specs = layer_specs(cfg.synthesis)
    except (FloatingPointError, ValueError, ZeroDivisionError, OverflowError, IndexError) as e:
        raise CheckpointError(f"{source}: the synthesis configuration does not describe a valid network ({e})") \
            from None
    for spec in specs:
        numbers = (spec.in_channels, spec.out_channels, spec.in_size, spec.out_size, spec.in_sampling_rate,
                   spec.out_sampling_rate)
        if min(numbers) < 1 or not all(math.isfinite(v) and v > 0 for v in (
                spec.in_cutoff, spec.out_cutoff, spec.in_half_width, spec.out_half_width)):
            raise CheckpointError(f"{source}: the synthesis configuration gives layer {spec.name} an impossible "
                                  "shape or band (check channel_base, cutoffs and stopbands)")
    return input_spec, specs


def expected_state_shapes(cfg: AnyConfig, source: str = "checkpoint") -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in the generator's `state_dict()`, computed without building it."""
    if cfg.family == "stylegan2":
        return {**_sg2_mapping_shapes(cfg.mapping), **_sg2_synthesis_shapes(cfg.synthesis, cfg.mapping.w_dim)}
    if cfg.family == "stylegan3":
        return {**_sg2_mapping_shapes(cfg.mapping), **_synthesis_shapes(cfg, source)}
    m = cfg.mapping
    shapes: dict[str, tuple[int, ...]] = {}
    conditional = m.c_dim > 0
    if conditional:
        shapes["mapping.embed.weight"] = (m.c_dim, m.embed_dim)
        shapes["mapping.embed_proj.weight"] = (m.z_dim, m.embed_dim)
        shapes["mapping.embed_proj.bias"] = (m.z_dim,)
    features = [m.z_dim * (2 if conditional else 1)] + [m.w_dim] * m.num_layers
    for i in range(m.num_layers):
        shapes[f"mapping.fc{i}.weight"] = (features[i + 1], features[i])
        shapes[f"mapping.fc{i}.bias"] = (features[i + 1],)
    shapes["mapping.w_avg"] = (m.c_dim, m.w_dim) if conditional else (m.w_dim,)
    return {**shapes, **_synthesis_shapes(cfg, source)}


def _synthesis_shapes(cfg: GeneratorConfig | StyleGAN3Config, source: str) -> dict[str, tuple[int, ...]]:
    """The StyleGAN3-style synthesis (StyleGAN-XL's and StyleGAN3's): Fourier input + the layer plan."""
    m = cfg.mapping
    shapes: dict[str, tuple[int, ...]] = {}
    input_spec, specs = _layer_plan(cfg, source)
    c = input_spec.channels
    shapes.update({
        "synthesis.input.weight": (c, c), "synthesis.input.affine.weight": (4, m.w_dim),
        "synthesis.input.affine.bias": (4,), "synthesis.input.transform": (3, 3),
        "synthesis.input.freqs": (c, 2), "synthesis.input.phases": (c,)})
    for spec in specs:
        k = 1 if spec.is_torgb else cfg.synthesis.conv_kernel
        p = f"synthesis.{spec.name}."
        shapes[p + "affine.weight"] = (spec.in_channels, m.w_dim)
        shapes[p + "affine.bias"] = (spec.in_channels,)
        shapes[p + "weight"] = (spec.out_channels, spec.in_channels, k, k)
        shapes[p + "bias"] = (spec.out_channels,)
        shapes[p + "magnitude_ema"] = ()
    return shapes


def _sg2_mapping_shapes(m: StyleGAN2MappingConfig) -> dict[str, tuple[int, ...]]:
    embed = m.w_dim if m.embed_features is None else m.embed_features
    hidden = m.w_dim if m.layer_features is None else m.layer_features
    shapes: dict[str, tuple[int, ...]] = {}
    if m.c_dim > 0:
        shapes["mapping.embed.weight"] = (embed, m.c_dim)
        shapes["mapping.embed.bias"] = (embed,)
    features = [m.z_dim + (embed if m.c_dim > 0 else 0)] + [hidden] * (m.num_layers - 1) + [m.w_dim]
    for i in range(m.num_layers):
        shapes[f"mapping.fc{i}.weight"] = (features[i + 1], features[i])
        shapes[f"mapping.fc{i}.bias"] = (features[i + 1],)
    shapes["mapping.w_avg"] = (m.w_dim,)
    return shapes


def _sg2_synthesis_shapes(s: StyleGAN2SynthesisConfig, w_dim: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for r in s.block_resolutions:
        p, out = f"synthesis.b{r}.", s.channels(r)
        if r == 4:
            shapes[p + "const"] = (out, r, r)
            convs = [("conv1", out)]
        else:
            convs = [("conv0", s.channels(r // 2)), ("conv1", out)]
        for name, inn in convs:
            shapes.update({f"{p}{name}.affine.weight": (inn, w_dim), f"{p}{name}.affine.bias": (inn,),
                           f"{p}{name}.weight": (out, inn, 3, 3), f"{p}{name}.bias": (out,)})
            if s.use_noise:
                shapes.update({f"{p}{name}.noise_const": (r, r), f"{p}{name}.noise_strength": ()})
        shapes.update({p + "torgb.affine.weight": (out, w_dim), p + "torgb.affine.bias": (out,),
                       p + "torgb.weight": (s.img_channels, out, 1, 1), p + "torgb.bias": (s.img_channels,)})
    return shapes


def model_size(cfg: AnyConfig, source: str = "checkpoint") -> ModelSize:
    """Parameters and peak per-image activation memory of the generator `cfg` builds, from the config alone."""
    shapes = expected_state_shapes(cfg, source)
    params = sum(math.prod(s) for s in shapes.values())
    if cfg.family == "stylegan2":
        s = cfg.synthesis
        # Per block: its input, the transposed-conv output before the FIR filter, the conv1 output and the image.
        peak = max(s.channels(r // 2) * (r // 2) ** 2 + 3 * s.channels(r) * (r + 2) ** 2 + 2 * s.img_channels * r * r
                   for r in s.block_resolutions)
        num_layers = 2 * len(s.block_resolutions) - 1 + len(s.block_resolutions)  # convs + ToRGBs
        return ModelSize(params=params, activation_bytes=4 * peak, num_layers=num_layers,
                         resolution=s.img_resolution)
    input_spec, specs = _layer_plan(cfg, source)
    syn = cfg.synthesis
    peak = input_spec.channels * input_spec.size**2
    for spec in specs:
        # One layer alive at a time: its input, the conv output, the upsampled pre-activation and its
        # filtered copy (filtered_lrelu), and the output (StyleGAN3 Sec. 3.2's 2x-rate nonlinearity).
        k = 1 if spec.is_torgb else syn.conv_kernel
        tmp_rate = max(spec.in_sampling_rate, spec.out_sampling_rate) * (1 if spec.is_torgb else syn.lrelu_upsampling)
        up = max(1, round(tmp_rate / spec.in_sampling_rate))
        conv_side = spec.in_size + k - 1
        tmp_side = conv_side * up + 2 * syn.filter_size * up
        elements = (spec.in_channels * spec.in_size**2 + spec.out_channels * conv_side**2
                    + 2 * spec.out_channels * tmp_side**2 + spec.out_channels * spec.out_size**2)
        peak = max(peak, elements)
    return ModelSize(params=params, activation_bytes=4 * peak, num_layers=len(specs), resolution=syn.img_resolution)


def check_model_size(cfg: AnyConfig, source: str = "checkpoint", allow_large: bool | None = None) -> ModelSize:
    """`model_size(cfg)`, refused with the numbers when above `LIMITS` unless large models are allowed."""
    size = model_size(cfg, source)
    if large_models_allowed(allow_large):
        return size
    over = []
    if size.params > LIMITS.max_params:
        over.append(f"{size.params / 1e6:,.0f} M parameters (limit {LIMITS.max_params / 1e6:,.0f} M)")
    if size.activation_bytes > LIMITS.max_activation_bytes:
        over.append(f"{size.activation_bytes / GiB:,.1f} GB of activations per image (limit "
                    f"{LIMITS.max_activation_bytes / GiB:.0f} GB)")
    if over:
        raise CheckpointError(f"{source}: the configuration asks for {' and '.join(over)}; refusing to build it. "
                              f"If this model is genuinely that large, pass --allow-large (or set "
                              f"{ALLOW_LARGE_ENV}=1)")
    return size


# ----------------------------------------------------------------------------- the rest of config.json

def check_class_names(names: Any, c_dim: int, source: str = "checkpoint") -> list[str] | None:
    """null, or one string per class."""
    if names is None:
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise CheckpointError(f"{source}: config field class_names must be a list of strings or null")
    if len(names) != c_dim:
        raise CheckpointError(f"{source}: config field class_names has {len(names)} names for {c_dim} classes")
    return names


_META_TYPES: dict[str, tuple[type, ...]] = {"kimg": (int, float), "stage": (int,), "resolution": (int,),
                                            "dataset": (str, type(None)), "train_state": (dict,),
                                            "train_config": (dict,), "metrics": (dict, type(None)),
                                            "final": (bool,)}


def check_meta(meta: Any, source: str = "checkpoint") -> dict:
    """The `meta` object: free-form, but the entries loaders read have their JSON types (kimg a finite number...)."""
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise CheckpointError(f"{source}: config field meta must be an object, not {_type_name(meta)}")
    for key, types in _META_TYPES.items():
        if key not in meta:
            continue
        value = meta[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise CheckpointError(f"{source}: config field meta.{key} must not be {_type_name(value)} "
                                  f"({str(value)[:40]!r})")
    kimg = meta.get("kimg", 0)
    if not (math.isfinite(kimg) and kimg >= 0):
        raise CheckpointError(f"{source}: config field meta.kimg = {kimg!r} is not a finite non-negative number")
    state = meta.get("train_state", {})
    for key, value in state.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise CheckpointError(f"{source}: config field meta.train_state.{key} must be a finite number, not "
                                  f"{str(value)[:40]!r}")
    return meta


# ----------------------------------------------------------------------------- tensors

def check_tensor_values(tensors: Mapping[str, torch.Tensor], source: str = "checkpoint",
                        floating: bool = True, prefix: str = "") -> None:
    """Every floating tensor finite; with `floating`, every tensor floating point (generator weights/buffers)."""
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(f"{source}: {prefix}{name} is not a tensor")
        if not (t.is_floating_point() or t.is_complex()):
            if floating:
                raise CheckpointError(f"{source}: tensor {prefix}{name} holds {str(t.dtype).removeprefix('torch.')} "
                                      "values where floating-point weights belong; the file is corrupt or not a "
                                      "generator")
            continue
        if t.is_complex():
            raise CheckpointError(f"{source}: tensor {prefix}{name} is complex; only real tensors are supported")
        if t.numel() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise CheckpointError(f"{source}: tensor {prefix}{name} holds {bad} non-finite values (NaN or inf); "
                                  "the model would render black or garbage images. The file is damaged, or a "
                                  "training run diverged: use an earlier snapshot")


def validate_generator(cfg: AnyConfig | dict, tensors: Mapping[str, torch.Tensor] | None = None,
                       source: str = "checkpoint", check_shapes: bool = True,
                       allow_large: bool | None = None, family: str = "stylegan-xl") -> AnyConfig:
    """The gate before building a generator: config fields, size limits and (given tensors) their values.

    `cfg` may be the JSON object of a `.sgxl` file (of `family`) or a config object (the official importer's,
    which names its own family). With `check_shapes`, `tensors` must be exactly the generator's state
    (names and shapes); without, only dtypes and finiteness are checked (the official importer maps names
    and shapes itself).
    """
    if not isinstance(cfg, (GeneratorConfig, StyleGAN3Config, StyleGAN2Config)):
        cfg = generator_config_from_dict(cfg, source, family)  # a JSON value: an object, or one clear error
    check_generator_config(cfg, source)
    check_model_size(cfg, source, allow_large)
    if tensors is not None:
        if check_shapes:
            check_state_shapes({k: tuple(v.shape) for k, v in tensors.items()}, expected_state_shapes(cfg, source),
                               source)
        check_tensor_values(tensors, source, floating=True)
    return cfg


def check_state_shapes(actual: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]],
                       source: str = "checkpoint", prefix: str = "") -> None:
    missing = sorted(set(expected) - set(actual))
    unexpected = sorted(set(actual) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{source} does not match its configuration: {len(missing)} tensors missing "
                              f"{[prefix + k for k in missing[:3]]}, {len(unexpected)} unexpected "
                              f"{[prefix + k for k in unexpected[:3]]}")
    for k, shape in expected.items():
        if tuple(actual[k]) != tuple(shape):
            raise CheckpointError(f"{source}: tensor {prefix}{k} has shape {list(actual[k])}, the configuration "
                                  f"builds {list(shape)}")


# ----------------------------------------------------------------------------- containers

def read_zip_member(zf: zipfile.ZipFile, name: str, cap: int, source: str = "checkpoint") -> bytes:
    """Read one zip member, refusing before inflating when it is larger than `cap` or inflates suspiciously."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise CheckpointError(f"{source} is not a checkpoint: the archive has no {name}") from None
    if info.file_size > cap:
        raise CheckpointError(f"{source}: {name} would inflate to {info.file_size / MiB:,.1f} MB, more than this "
                              f"configuration can need ({cap / MiB:,.1f} MB); refusing to read it")
    if info.file_size > RATIO_CHECK_ABOVE and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
        raise CheckpointError(f"{source}: {name} would inflate {info.file_size / max(info.compress_size, 1):,.0f}-"
                              f"fold (to {info.file_size / MiB:,.0f} MB): a zip bomb, not a checkpoint")
    out = bytearray()
    with zf.open(info) as f:  # zipfile itself stops at the directory's size; the cap guards its absence
        while chunk := f.read(min(16 * MiB, cap + 1 - len(out))):
            out += chunk
            if len(out) > cap:
                raise CheckpointError(f"{source}: {name} inflates beyond {cap / MiB:,.1f} MB; refusing to read it")
    return bytes(out)


def safetensors_cap(cfg: AnyConfig, source: str = "checkpoint") -> int:
    """Largest `model.safetensors` a checkpoint of `cfg` can need: the generator and a training snapshot's
    extras (G_train and its Adam moments = 4x G, plus D with its moments), with float64 headroom."""
    return 2 * 5 * model_size(cfg, source).param_bytes + TRAINING_STATE_ALLOWANCE + MAX_SAFETENSORS_HEADER


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]


def check_safetensors_header(blob: bytes | memoryview, source: str = "checkpoint") -> dict[str, TensorInfo]:
    """Parse and check a safetensors header (8-byte length + JSON) without touching the tensor bytes.

    Every entry needs a known dtype, a non-negative integer shape and a byte range of exactly
    numel x itemsize inside the file; the ranges must not overlap.
    """
    if len(blob) < 8:
        raise CheckpointError(f"{source} has corrupt tensor data (truncated header)")
    (n,) = struct.unpack("<Q", bytes(blob[:8]))
    if n > min(len(blob) - 8, MAX_SAFETENSORS_HEADER):
        raise CheckpointError(f"{source} has corrupt tensor data (header of {n} bytes in a {len(blob)}-byte file)")
    try:
        header = json.loads(bytes(blob[8:8 + n]))
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(f"{source} has corrupt tensor data (unreadable header)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{source} has corrupt tensor data (header is not an object)")
    data_len = len(blob) - 8 - n
    out: dict[str, TensorInfo] = {}
    ranges = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("dtype"), str) \
                or not isinstance(entry.get("shape"), list) or not isinstance(entry.get("data_offsets"), list):
            raise CheckpointError(f"{source}: tensor {name} has a corrupt header entry")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in DTYPE_BYTES:
            raise CheckpointError(f"{source}: tensor {name} has unsupported dtype {dtype!r:.20}")
        if len(shape) > 8 or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40
                                     for d in shape):
            raise CheckpointError(f"{source}: tensor {name} has an invalid shape {shape!r:.60}")
        if len(offsets) != 2 or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets) \
                or not 0 <= offsets[0] <= offsets[1] <= data_len:
            raise CheckpointError(f"{source}: tensor {name} points outside the file")
        if offsets[1] - offsets[0] != math.prod(shape) * DTYPE_BYTES[dtype]:
            raise CheckpointError(f"{source}: tensor {name} has {offsets[1] - offsets[0]} bytes for shape {shape} "
                                  f"of {dtype}")
        ranges.append((offsets[0], offsets[1], name))
        out[name] = TensorInfo(dtype, tuple(shape))
    ranges.sort()
    for (_, end, a), (start, _, b) in zip(ranges, ranges[1:]):
        if start < end:
            raise CheckpointError(f"{source}: tensors {a} and {b} overlap in the file")
    return out


def check_generator_header(infos: Mapping[str, TensorInfo], cfg: AnyConfig, source: str = "checkpoint",
                           groups: tuple[str, ...] = ("G", "G_train")) -> None:
    """Before loading: each generator group in the file has exactly the names, shapes and float dtypes `cfg` builds."""
    expected = expected_state_shapes(cfg, source)
    for group in groups:
        state = {k[len(group) + 1:]: v for k, v in infos.items() if k.startswith(group + ".")}
        if not state and group != "G":
            continue
        check_state_shapes({k: v.shape for k, v in state.items()}, expected, source, prefix=group + ".")
        for k, v in state.items():
            if v.dtype not in FLOAT_DTYPES:
                raise CheckpointError(f"{source}: tensor {group}.{k} holds {DTYPE_NAMES.get(v.dtype, v.dtype)} values "
                                      "where floating-point "
                                      "weights belong; the file is corrupt or not a generator")
