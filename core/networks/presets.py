"""Named generator configurations (explicit dataclasses; no registry magic).

- `imagenet`: the paper's ImageNet generator: 16² stem with 10 layers, channel_base 65536,
  channel_max 1024, 1000 classes; each doubling adds 7 head layers (official SuperresGenerator).
- `small`: the small-data setting (channel_base 16384, channel_max 256).
- `tiny`: a CPU-sized model for tests.
- `demo`: the bundled demo checkpoint's size (half of `tiny`'s channels): a 64² frame renders in
  ~65 ms on one core of a 2-core CPU, where `tiny` takes ~165 ms (measured with bench.generator).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.networks.generator import GeneratorConfig

PRESETS = ("imagenet", "small", "tiny", "demo")


def preset_config(name: str, resolution: int = 16, c_dim: int | None = None) -> GeneratorConfig:
    """The preset `name` grown from its 16² stem to `resolution` (a power of two >= 16)."""
    # Imported here, not above: `sgxl --help` reads PRESETS and must not wait for torch (core/cli.py).
    from core.networks.generator import GeneratorConfig
    from core.networks.mapping import MappingConfig
    from core.networks.synthesis import GrowthStage, SynthesisConfig

    if resolution < 16 or 2 ** int(math.log2(resolution)) != resolution:
        raise ValueError("resolution must be a power of two >= 16")
    stages = [GrowthStage(up_factor=2, head_layers=7) for _ in range(int(math.log2(resolution // 16)))]
    if name == "imagenet":
        mapping = MappingConfig(c_dim=1000 if c_dim is None else c_dim)
        synthesis = SynthesisConfig(stem_resolution=16, channel_base=65536, channel_max=1024, num_layers=10)
    elif name == "small":
        mapping = MappingConfig(c_dim=10 if c_dim is None else c_dim)
        synthesis = SynthesisConfig(stem_resolution=16, channel_base=16384, channel_max=256, num_layers=10)
    elif name in ("tiny", "demo"):
        mapping = MappingConfig(c_dim=10 if c_dim is None else c_dim, w_dim=256)
        channel_base, channel_max = (4096, 128) if name == "tiny" else (2048, 64)
        synthesis = SynthesisConfig(stem_resolution=16, channel_base=channel_base, channel_max=channel_max,
                                    num_layers=6)
        stages = [GrowthStage(up_factor=2, head_layers=4) for _ in stages]
    else:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    synthesis.stages = stages
    return GeneratorConfig(mapping=mapping, synthesis=synthesis)
