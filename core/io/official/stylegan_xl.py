"""Official StyleGAN-XL generators (`Generator` stem, `SuperresGenerator` stages) -> our `Generator`.

Official G_ema tensor names -> ours (`core.networks.generator.Generator.state_dict()`):

| official name                                    | ours                              | how          |
|--------------------------------------------------|-----------------------------------|--------------|
| mapping.embed.weight [1000, 320]                 | mapping.embed.weight [c_dim, 320] | rows < c_dim |
| mapping.embed_proj.*, mapping.fc{i}.*, mapping.w_avg | same name                     | copied       |
| synthesis.input.{weight, affine.*, transform, freqs, phases} | same name             | copied       |
| synthesis.L{i}_{size}_{ch}.{weight, bias, affine.*, magnitude_ema} | same name       | copied       |
| synthesis.L{i}_{size}_{ch}.{up_filter, down_filter} | non-persistent buffers         | verified     |

"rows < c_dim": the official mapping reads row `argmax(c)`, always < c_dim, so the other rows of its
1000-row table are never used (an unconditional G never reads the table). "verified": the FIR
filters follow from the config; they must equal ours within 1e-6 (None = identity on both sides).

Official attributes -> `GeneratorConfig`: `z_dim, c_dim, w_dim` -> MappingConfig; `mapping.num_layers`,
`mapping.w_avg_beta`, `mapping.fc0.bias_gain` (= lr_multiplier), embed width -> MappingConfig;
`synthesis.{channel_base, channel_max, num_critical, first_cutoff, first_stopband, last_stopband_rel,
margin_size, output_scale, num_fp16_res, conv_kernel, use_radial_filters}` and the layers'
`filter_size, lrelu_upsampling, conv_clamp` -> SynthesisConfig; the layers' `magnitude_ema_beta` -> the
stem's value and one per growth stage (`GrowthStage.magnitude_ema_beta`: the official train.py sets the
stem's from the batch size, SuperresGenerator's new layers keep 0.999). A
`SuperresGenerator` (paper Sec. 4.2) keeps the stem minus its critically sampled layers, so the
stem's `num_layers` = kept stem layers (before the one gap in the layer indices) + num_critical;
the stem's `sampling_rates`, still stored on the synthesis, confirm it and give the stem resolution.
Later stages number their layers by count, so no gap marks them: the growth stages (up_factor,
head_layers) are found by a search that checks each candidate stage's layers against the official
names and stored specifications (the last stage must match `up_factor` and `head_layer_names`).
After building, every layer's stored specification (channels, sizes, rates, cutoffs, padding...)
is compared with ours, so an architecture we cannot reproduce fails loudly instead of rendering wrong.

The family interface (what `core.io.official` calls for every network family):
`unsupported_reason(og)`, `official_to_config(og)`, `build_generator(cfg)`, `verify_generator(G, og)`,
`official_state_dict(og, cfg)` and `describe_lines(og, cfg)`.
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any

import torch

from core.errors import CheckpointError
from core.io.official.records import OfficialGenerator
from core.networks.generator import Generator, GeneratorConfig
from core.networks.layers import FullyConnectedLayer
from core.networks.mapping import MappingConfig
from core.networks.synthesis import GrowthStage, SynthesisConfig, layer_specs

FAMILY = "StyleGAN-XL"
FILTER_TOLERANCE = 1e-6  # derived FIR filters must equal ours within this (float32 design round-off)


_LAYER_RE = re.compile(r"^L(\d+)_(\d+)_(\d+)$")
_UP_FACTORS = (2, 4, 8, 16)  # official SuperresGenerator accepts these
MAX_RESOLUTION = 2**14
MAX_LAYERS = 1024


def _attr(og: OfficialGenerator, key: str, default: Any = KeyError) -> Any:
    if key in og.attributes:
        return og.attributes[key]
    if default is KeyError:
        raise CheckpointError(f"{og.source}: the generator has no '{key}' attribute; not a StyleGAN-XL generator")
    return default


def unsupported_reason(og: OfficialGenerator) -> str | None:
    """Why this generator cannot be mapped onto ours (None when it can)."""
    if og.class_name not in ("Generator", "SuperresGenerator"):
        return f"generator class '{og.class_name}' is not a StyleGAN-XL Generator or SuperresGenerator"
    if any(name.startswith("synthesis.b4.") for name in og.tensors):
        return ("this is a StyleGAN2 generator (synthesis blocks b4, b8, ...); only StyleGAN-XL "
                "(StyleGAN3-T synthesis) is supported")
    if "synthesis.input.freqs" not in og.tensors:
        return "the synthesis network has no Fourier-feature input; not a StyleGAN3-style generator"
    embed_class = og.module_classes.get("mapping.embed")
    if embed_class != "Embedding":
        z_dim = og.attributes.get("z_dim")
        c_dim = og.attributes.get("c_dim")
        how = ("embeds the class with a fully connected layer (c_dim -> w_dim)" if embed_class
               else "has no class embedding table")
        return (f"this looks like a StyleGAN3 generator (training.networks_stylegan3): its mapping {how}, "
                f"with z_dim {z_dim} and c_dim {c_dim}, whereas StyleGAN-XL uses an Embedding(1000, 320) table, "
                "a 320 -> z_dim projection and z_dim 64; converting StyleGAN3 checkpoints is not supported yet")
    return None


def _layer_segments(names: list[str], source: str) -> list[list[str]]:
    """Layer names split where the index jumps (a SuperresGenerator leaves one gap after the kept stem)."""
    segments: list[list[str]] = []
    prev = None
    for name in names:
        m = _LAYER_RE.match(name)
        if m is None:
            raise CheckpointError(f"{source}: unexpected synthesis layer name '{name}'")
        idx = int(m.group(1))
        if prev is None or idx != prev + 1:
            segments.append([])
        segments[-1].append(name)
        prev = idx
    return segments


def official_to_config(og: OfficialGenerator) -> GeneratorConfig:
    """Our `GeneratorConfig` for an official StyleGAN-XL generator (stem or superres stage)."""
    try:
        return _official_to_config(og)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, ZeroDivisionError, OverflowError) as e:
        raise CheckpointError(f"{og.source}: the generator's attributes are not those of StyleGAN-XL ({e})") from None


def _official_to_config(og: OfficialGenerator) -> GeneratorConfig:
    reason = unsupported_reason(og)
    if reason:
        raise CheckpointError(f"{og.source}: {reason}")
    c_dim = int(_attr(og, "c_dim"))
    embed = og.tensors.get("mapping.embed.weight")
    if c_dim > 0 and (embed is None or embed.ndim != 2 or embed.shape[0] < c_dim):
        raise CheckpointError(f"{og.source}: the class embedding has fewer rows than the {c_dim} classes")
    mapping = MappingConfig(
        z_dim=int(_attr(og, "z_dim")), c_dim=c_dim, w_dim=int(_attr(og, "w_dim")),
        embed_dim=int(embed.shape[1]) if embed is not None else MappingConfig.embed_dim,
        num_layers=int(_attr(og, "mapping.num_layers")),
        lr_multiplier=float(_attr(og, "mapping.fc0.bias_gain", MappingConfig.lr_multiplier)),
        w_avg_beta=float(_attr(og, "mapping.w_avg_beta")),
    )

    names = list(_attr(og, "synthesis.layer_names"))
    if not names:
        raise CheckpointError(f"{og.source}: the synthesis network has no layers")
    first = f"synthesis.{names[0]}."
    per_layer = {}
    for key in ("filter_size", "lrelu_upsampling", "conv_clamp"):
        values = {repr(og.attributes.get(f"synthesis.{n}.{key}")) for n in names}
        if len(values) != 1:
            raise CheckpointError(f"{og.source}: the layers use different {key} values ({', '.join(sorted(values))});"
                                  " our configuration has one value for all layers")
        per_layer[key] = _attr(og, first + key)
    num_critical = int(_attr(og, "synthesis.num_critical"))
    img_res = int(_attr(og, "img_resolution"))
    # Bounds for the stage search below (its work grows with the layer count and log2 of the resolution).
    if not (4 <= img_res <= MAX_RESOLUTION and img_res & (img_res - 1) == 0):
        raise CheckpointError(f"{og.source}: img_resolution {img_res} is not a power of two up to {MAX_RESOLUTION}")
    if len(names) > MAX_LAYERS:
        raise CheckpointError(f"{og.source}: {len(names)} synthesis layers; StyleGAN-XL has a few dozen")
    base = dict(
        img_channels=int(_attr(og, "img_channels")),
        channel_base=int(_attr(og, "synthesis.channel_base")), channel_max=int(_attr(og, "synthesis.channel_max")),
        num_critical=num_critical, first_cutoff=float(_attr(og, "synthesis.first_cutoff")),
        first_stopband=float(_attr(og, "synthesis.first_stopband")),
        last_stopband_rel=float(_attr(og, "synthesis.last_stopband_rel")),
        margin_size=int(_attr(og, "synthesis.margin_size")), output_scale=float(_attr(og, "synthesis.output_scale")),
        num_fp16_res=int(_attr(og, "synthesis.num_fp16_res")),
        conv_kernel=int(_attr(og, "synthesis.conv_kernel", og.attributes.get(first + "conv_kernel", 3))),
        filter_size=int(per_layer["filter_size"]), lrelu_upsampling=int(per_layer["lrelu_upsampling"]),
        use_radial_filters=bool(_attr(og, "synthesis.use_radial_filters")),
        conv_clamp=None if per_layer["conv_clamp"] is None else float(per_layer["conv_clamp"]),
        magnitude_ema_beta=float(_attr(og, first + "magnitude_ema_beta")),  # per stage: _set_stage_betas
    )
    if base["conv_clamp"] is not None and float(base["conv_clamp"]).is_integer():
        base["conv_clamp"] = int(base["conv_clamp"])

    segments = _layer_segments(names, og.source)
    if og.class_name == "Generator":
        if len(segments) != 1:
            raise CheckpointError(f"{og.source}: a stem Generator with gaps in its layer indices is not supported")
        synthesis = SynthesisConfig(stem_resolution=img_res, num_layers=len(names) - 1, **base)
        _, specs = layer_specs(synthesis)
        ours = [spec.name for spec in specs]
        if ours != names:
            raise CheckpointError(f"{og.source}: unsupported architecture: its synthesis layers "
                                  f"({', '.join(names[:4])}, ...) differ from ours ({', '.join(ours[:4])}, ...)")
        for name, spec in zip(names, specs):
            problem = _spec_mismatch(og, name, spec)
            if problem:
                raise CheckpointError(f"{og.source}: unsupported architecture: {problem}")
        _set_stage_betas(og, synthesis, names)
        return GeneratorConfig(mapping=mapping, synthesis=synthesis)

    # SuperresGenerator: only the stem's gap is visible in the names (later stages number their
    # layers by count, which continues without a gap), so search the growth stages.
    if len(segments) != 2:
        raise CheckpointError(f"{og.source}: unexpected layer numbering for a SuperresGenerator "
                              f"({', '.join(names[:6])}, ...)")
    stem_layers = len(segments[0]) + num_critical
    rates = og.attributes.get("synthesis.sampling_rates")
    stem_res_options = [2**k for k in range(2, int(math.log2(img_res)))]
    if isinstance(rates, list) and len(rates) == stem_layers + 1:
        stem_res_options = [int(rates[-1])]  # the stem's last (critically sampled) rate = its resolution
    last_up = og.attributes.get("up_factor")
    head_names = og.attributes.get("head_layer_names")
    last_head = len(head_names) - 1 if isinstance(head_names, list) and head_names else None
    for stem_res in stem_res_options:
        stem = SynthesisConfig(stem_resolution=stem_res, num_layers=stem_layers, **base)
        stages = _search_stages(og, names, stem, img_res, last_up, last_head)
        if stages is not None:
            stem.stages = stages
            _set_stage_betas(og, stem, names)
            return GeneratorConfig(mapping=mapping, synthesis=stem)
    raise CheckpointError(f"{og.source}: unsupported architecture: no StyleGAN-XL growth schedule reproduces "
                          f"its synthesis layers ({', '.join(names[:4])}, ...)")


def _set_stage_betas(og: OfficialGenerator, synthesis: SynthesisConfig, names: list[str]) -> None:
    """The stem's and each growth stage's magnitude_ema_beta from the layers (one value per stage)."""
    _, specs = layer_specs(synthesis)
    by_stage: dict[int, set[float]] = {}
    for name, spec in zip(names, specs):
        by_stage.setdefault(spec.stage, set()).add(float(_attr(og, f"synthesis.{name}.magnitude_ema_beta")))
    for stage, values in sorted(by_stage.items()):
        if len(values) != 1:
            where = "stem" if stage == 0 else f"growth stage {stage}"
            raise CheckpointError(f"{og.source}: the layers of the {where} use different magnitude_ema_beta values "
                                  f"({', '.join(map(repr, sorted(values)))}); ours has one value per stage")
    (synthesis.magnitude_ema_beta,) = by_stage[0]
    for k, stage in enumerate(synthesis.stages, start=1):
        (beta,) = by_stage.get(k, {synthesis.magnitude_ema_beta})
        stage.magnitude_ema_beta = None if beta == synthesis.magnitude_ema_beta else beta


_SPEC_KEYS = ("in_channels", "out_channels", "in_sampling_rate", "out_sampling_rate", "in_cutoff", "out_cutoff",
              "is_torgb", "is_critically_sampled")


def _spec_mismatch(og: OfficialGenerator, name: str, spec: Any) -> str | None:
    """How our layer spec differs from the official layer's name and stored specification (None: it does not)."""
    if spec.name != name:
        return f"layer {name} is {spec.name} in ours"
    p = f"synthesis.{name}."
    for key in _SPEC_KEYS:
        if p + key in og.attributes and not _close(og.attributes[p + key], getattr(spec, key)):
            return f"{p}{key} is {og.attributes[p + key]!r} in the file, {getattr(spec, key)!r} in ours"
    return None


def _spec_matches(og: OfficialGenerator, name: str, spec: Any) -> bool:
    return _spec_mismatch(og, name, spec) is None


def _search_stages(og: OfficialGenerator, names: list[str], stem: SynthesisConfig, img_res: int,
                   last_up: Any, last_head: int | None) -> list[GrowthStage] | None:
    """Growth stages (up_factor, head_layers) whose layers reproduce `names` (depth-first, pruned per stage).

    A stage's kept layers (all but its critically sampled ones and ToRGB) are final once the stage
    exists, so each candidate stage is checked against the official layers at their positions.
    """
    num_critical = stem.num_critical

    def specs_of(stages: list[GrowthStage]) -> list | None:
        cfg = copy.copy(stem)
        cfg.stages = stages
        try:
            return layer_specs(cfg)[1]
        except (ValueError, ZeroDivisionError, IndexError, OverflowError):
            return None

    def search(stages: list[GrowthStage], res: int) -> list[GrowthStage] | None:
        for up in _UP_FACTORS:
            if res * up > img_res or img_res % (res * up):
                continue
            final = res * up == img_res
            for head in range(num_critical + 1, len(names) + num_critical + 1):
                if final and last_head is not None and head != last_head:
                    continue
                if final and last_up is not None and up != last_up:
                    continue
                cand = stages + [GrowthStage(up_factor=up, head_layers=head)]
                specs = specs_of(cand)
                if specs is None:
                    continue
                check = specs if final else specs[: len(specs) - (num_critical + 1)]
                if len(check) > len(names) or (final and len(specs) != len(names)):
                    continue
                if not all(_spec_matches(og, n, sp) for n, sp in zip(names, check)):
                    continue
                if final:
                    return cand
                found = search(cand, res * up)
                if found is not None:
                    return found
        return None

    stem_specs = specs_of([])
    kept = len(stem_specs) - (num_critical + 1) if stem_specs else 0
    if not stem_specs or not all(_spec_matches(og, n, sp) for n, sp in zip(names[:kept], stem_specs[:kept])):
        return None
    return search([], stem.stem_resolution)


# ----------------------------------------------------------------------------- weights


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) == bool(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)), abs(float(b)))
    return a == b


def _verify_architecture(G: Generator, og: OfficialGenerator) -> None:
    """Every stored layer specification must equal ours, or the images would silently differ."""
    problems = []

    def check(key: str, ours: Any) -> None:
        if key in og.attributes and not _close(og.attributes[key], ours):
            problems.append(f"{key}: official {og.attributes[key]!r}, ours {ours!r}")

    spec = G.synthesis.input.spec
    check("synthesis.input.channels", spec.channels)
    check("synthesis.input.size", [spec.size, spec.size])
    check("synthesis.input.sampling_rate", spec.sampling_rate)
    check("synthesis.input.bandwidth", spec.bandwidth)
    for layer in G.synthesis.layers():
        s, p = layer.spec, f"synthesis.{layer.spec.name}."
        for key in ("is_torgb", "is_critically_sampled", "use_fp16", "in_channels", "out_channels",
                    "in_sampling_rate", "out_sampling_rate", "in_cutoff", "out_cutoff", "in_half_width",
                    "out_half_width"):
            check(p + key, getattr(s, key))
        check(p + "in_size", [s.in_size, s.in_size])
        check(p + "out_size", [s.out_size, s.out_size])
        check(p + "up_factor", layer.up_factor)
        check(p + "down_factor", layer.down_factor)
        check(p + "padding", layer.padding)
        check(p + "conv_kernel", layer.conv_kernel)
        check(p + "magnitude_ema_beta", layer.magnitude_ema_beta)
    for name, module in G.named_modules():
        if isinstance(module, FullyConnectedLayer):
            check(f"{name}.activation", module.activation)
            check(f"{name}.weight_gain", module.weight_gain)
            check(f"{name}.bias_gain", module.bias_gain)
    check("num_ws", G.num_ws)
    if problems:
        raise CheckpointError(f"{og.source}: unsupported architecture: it differs from ours in "
                              f"{len(problems)} places, e.g. {'; '.join(problems[:3])}")



def _verify_filters(G: Generator, og: OfficialGenerator) -> None:
    """The file's FIR filters (saved buffers) must equal the ones our design derives from the config."""
    derived = dict(G.named_buffers())  # includes the non-persistent up/down filters
    for name, tensor in og.tensors.items():
        if not name.endswith((".up_filter", ".down_filter")):
            continue
        mine = derived.get(name)
        if mine is None or mine.shape != tensor.shape:
            raise CheckpointError(f"{og.source}: filter {name} {list(tensor.shape)} has no counterpart "
                                  f"{None if mine is None else list(mine.shape)} in our design")
        diff = (mine - tensor.to(mine.dtype)).abs().max().item() if tensor.numel() else 0.0
        if not diff <= FILTER_TOLERANCE:
            raise CheckpointError(f"{og.source}: filter {name} differs from our filter design by {diff:.3g}")
    for name in (k for k in og.attributes if k.endswith((".up_filter", ".down_filter"))):
        if og.attributes[name] is None and derived.get(name) is not None:
            raise CheckpointError(f"{og.source}: {name} is an identity filter in the file but not in our design")


# ----------------------------------------------------------------------------- the family interface

KINDS = {"Generator": "StyleGAN-XL stem generator", "SuperresGenerator": "StyleGAN-XL progressive stage"}


def label(og: OfficialGenerator) -> str:
    return FAMILY


def build_generator(cfg: GeneratorConfig) -> Generator:
    return Generator(cfg)


def verify_generator(G: Generator, og: OfficialGenerator) -> None:
    """Every stored layer specification and FIR filter of the file must equal ours (else a clear error)."""
    _verify_architecture(G, og)
    _verify_filters(G, og)


def official_state_dict(og: OfficialGenerator, cfg: GeneratorConfig) -> dict[str, torch.Tensor]:
    """The file's tensors under our names (see the table above); derived filters are verified, not loaded."""
    state: dict[str, torch.Tensor] = {}
    for name, tensor in og.tensors.items():
        if name.endswith((".up_filter", ".down_filter")):
            continue
        if name == "mapping.embed.weight":
            if cfg.mapping.c_dim == 0:
                continue  # unconditional: the official mapping never reads its embedding table
            tensor = tensor[: cfg.mapping.c_dim]  # rows argmax(c) < c_dim are the only ones used
        state[name] = tensor
    return state


def describe_lines(og: OfficialGenerator, cfg: GeneratorConfig) -> list[str]:
    """`sgxl info` lines on how the file maps onto our configuration."""
    s = cfg.synthesis
    stages = ", ".join(f"x{st.up_factor} with {st.head_layers} head layers" for st in s.stages) or "none"
    lines = [f"stages           stem {s.stem_resolution}² with {s.num_layers} layers; growth stages: {stages}",
             f"channels         base {s.channel_base}, max {s.channel_max}"]
    if any(st.magnitude_ema_beta is not None for st in s.stages):  # train.py's mix (matters for training only)
        betas = ", ".join(f"stage {k} {s.stage_magnitude_ema_beta(k):.6g}" for k in range(1, len(s.stages) + 1))
        lines.append(f"magnitude EMA    stem {s.magnitude_ema_beta:.6g}, {betas}")
    if og.class_name == "SuperresGenerator":
        lines.append(f"head layers      {', '.join(map(str, og.attributes.get('head_layer_names') or []))}")
    return lines
