"""StyleGAN2 generator (Karras et al. 2020, configs E-F), as StyleGAN2-ADA and the StyleGAN3 repository run it.

Synthesis: one block per resolution 4, 8, ..., R. The 4x4 block starts from a learned constant; every
other block upsamples with a modulated 3x3 conv (`conv0`, up=2) and refines with a second one
(`conv1`). Each conv is modulated by its own w through an affine layer and demodulated (paper Sec. 2.2,
Eq. 1-3), then receives per-pixel noise scaled by a learned per-layer strength, then bias, leaky ReLU
x sqrt(2) and a clamp to +-conv_clamp. "skip" architecture (paper Fig. 7b): each block's ToRGB (a
modulated, not demodulated, 1x1 conv) adds to the running image, which is upsampled between blocks.

Upsampling is a transposed convolution (stride 2) followed by the FIR low-pass [1, 3, 3, 1] (x4 gain)
- the official `conv2d_resample` order - and the skip image is upsampled with the same filter
(`upfirdn2d`, kernels/). The block of resolution r reads ws[i : i + num_conv + 1]; its ToRGB shares
its w with the next block's first conv, so num_ws = (number of convs) + 1.

Noise: `noise_mode` "const" adds each layer's stored `noise_const` image (what the official
gen_images.py and our `generate` use), "random" draws fresh noise from a generator seeded with
`noise_seed` (one noise image per layer, shared by the batch: the same seed gives the same image on
every device and in any batch; the official "random" draws per sample from the global RNG), "none"
adds nothing.

The stylegan2-ada-pytorch (`training.networks`) and stylegan3-repo (`training.networks_stylegan2`)
versions compute the same inference-time function; they differ in defaults (conv_clamp, fp16
resolutions, w_avg_beta), which an imported file always states, and in when the weights are fused with
the styles (a speed choice: both fuse in evaluation at float32). fp16 runs only on CUDA, as there.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import torch
from torch import nn

import kernels
from core.networks.layers import FullyConnectedLayer
from core.networks.mapping import ClassInput
from core.networks.mapping_sg2 import StyleGAN2MappingConfig, StyleGAN2MappingNetwork
from core.networks.traits import GeneratorTraits, check_noise_mode

ARCHITECTURES = ("skip",)  # the generator architecture of every released StyleGAN2 / 2-ADA model


@dataclass
class StyleGAN2SynthesisConfig:
    img_resolution: int = 256
    img_channels: int = 3
    channel_base: int = 32768  # channels at resolution r: min(channel_base // r, channel_max)
    channel_max: int = 512
    num_fp16_res: int = 4  # the N highest resolutions run in fp16 (CUDA only)
    conv_clamp: float | None = 256
    architecture: str = "skip"
    resample_filter: list[int] = field(default_factory=lambda: [1, 3, 3, 1])
    use_noise: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def block_resolutions(self) -> list[int]:
        return [2**i for i in range(2, int(math.log2(self.img_resolution)) + 1)]

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)


@dataclass
class StyleGAN2Config:
    family: ClassVar[str] = "stylegan2"
    mapping: StyleGAN2MappingConfig = field(default_factory=StyleGAN2MappingConfig)
    synthesis: StyleGAN2SynthesisConfig = field(default_factory=StyleGAN2SynthesisConfig)

    def to_dict(self) -> dict:
        return {"mapping": self.mapping.to_dict(), "synthesis": self.synthesis.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> StyleGAN2Config:
        return cls(mapping=StyleGAN2MappingConfig(**d["mapping"]),
                   synthesis=StyleGAN2SynthesisConfig(**d["synthesis"]))

    def describe(self) -> list[str]:
        """Architecture facts for `sgxl info` (one line each)."""
        s = self.synthesis
        chans = ", ".join(f"{r}²:{s.channels(r)}" for r in s.block_resolutions)
        return [f"StyleGAN2 {s.architecture} generator; channels per block {chans}",
                f"mapping {self.mapping.num_layers} layers; conv_clamp {s.conv_clamp}; "
                f"noise inputs {'yes' if s.use_noise else 'no'}; fp16 blocks {s.num_fp16_res} (CUDA only)"]


def setup_filter_1d(taps: list[int]) -> torch.Tensor:
    """The separable FIR filter, normalized to unit DC gain: [1,3,3,1] -> [1,3,3,1] / 8.

    The official code stores the 2-D outer product normalized by its sum; that equals outer(f, f) of this.
    """
    f = torch.as_tensor(taps, dtype=torch.float32)
    return f / f.sum()


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    demodulate: bool = True,
    up: int = 1,
    resample_filter: torch.Tensor | None = None,
) -> torch.Tensor:
    """StyleGAN2's modulated conv: x [B, I, H, W], weight [O, I, k, k], styles [B, I] -> [B, O, H*up, W*up].

    One grouped convolution with per-sample weights (official "fused" path). Unlike StyleGAN3's variant
    (core/networks/layers.py) the weights are pre-normalized only in fp16, to keep them in range there.
    """
    batch = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (1 / math.sqrt(in_ch * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
    w = weight.unsqueeze(0) * styles.reshape(batch, 1, in_ch, 1, 1)  # [B, O, I, k, k]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [B, O]
        w = w * dcoefs.reshape(batch, out_ch, 1, 1, 1)
    x = x.reshape(1, batch * in_ch, *x.shape[2:])  # the batch becomes conv groups
    if up == 1:
        w = w.reshape(batch * out_ch, in_ch, kh, kw).to(x.dtype)
        x = torch.nn.functional.conv2d(x, w, padding=kh // 2, groups=batch)
    else:
        x = _conv_transpose_up(x, w.to(x.dtype), up, resample_filter)
    return x.reshape(batch, out_ch, *x.shape[2:])


def _conv_transpose_up(x: torch.Tensor, w: torch.Tensor, up: int, f: torch.Tensor) -> torch.Tensor:
    """Upsampling conv of the official `conv2d_resample`: transposed conv (stride `up`), then FIR filter.

    x [1, B*I, H, W], w [B, O, I, k, k] -> [1, B*O, H*up, W*up]. The padding is what keeps the result
    aligned with a zero-insertion upsample followed by the filter and a "same" k x k convolution.
    """
    batch, out_ch, in_ch, kh, kw = w.shape
    fw = f.shape[0]
    pad = kw // 2  # the conv's own padding, with respect to the upsampled image
    p0 = pad + (fw + up - 1) // 2 - (kw - 1)
    p1 = pad + (fw - up) // 2 - (kw - up)
    wt = w.transpose(1, 2).reshape(batch * in_ch, out_ch, kh, kw)  # conv_transpose2d wants [in, out/groups, k, k]
    x = torch.nn.functional.conv_transpose2d(x, wt, stride=up, groups=batch)  # [1, B*O, (H-1)*up + k, ...]
    return kernels.upfirdn2d(x, f.to(x.device), padding=[p0, p1, p0, p1], gain=up**2)


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally upsampling x2) + noise + bias + leaky ReLU, clamped."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: int,
                 use_noise: bool, conv_clamp: float | None) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.resolution, self.up, self.use_noise, self.conv_clamp = resolution, up, use_noise, conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 3, 3]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def noise(self, mode: str, gen: torch.Generator | None, device: torch.device) -> torch.Tensor | None:
        """The noise added after the conv, scaled by the learned strength ([R, R] or [1, 1, R, R]), or None.

        "random" draws one noise image per layer from `gen` and shares it across the batch, so an image
        depends only on its latent and the noise seed, not on its batch or its position in it.
        """
        if not self.use_noise or mode == "none":
            return None
        if mode == "const":
            return self.noise_const * self.noise_strength
        noise = torch.randn([1, 1, self.resolution, self.resolution], generator=gen)  # drawn on the CPU
        return noise.to(device) * self.noise_strength

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None,
                resample_filter: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)  # [B, in_channels]
        x = modulated_conv2d(x, self.weight, styles, up=self.up, resample_filter=resample_filter)
        if noise is not None:
            x = x + noise.to(x.dtype)
        return kernels.bias_act(x, self.bias.to(x.dtype), act="lrelu", clamp=self.conv_clamp)  # gain sqrt(2)

    def extra_repr(self) -> str:
        return f"{self.in_channels}->{self.out_channels}, resolution {self.resolution}, up {self.up}"


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv to the image channels (styles scaled by 1/sqrt(fan-in), no demodulation)."""

    def __init__(self, in_channels: int, img_channels: int, w_dim: int, conv_clamp: float | None) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([img_channels, in_channels, 1, 1]))
        self.bias = nn.Parameter(torch.zeros([img_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False)
        return kernels.bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution: [const |] conv0 (up x2) -> conv1 -> ToRGB added to the upsampled skip image."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 cfg: StyleGAN2SynthesisConfig, use_fp16: bool) -> None:
        super().__init__()
        self.in_channels, self.resolution, self.use_fp16 = in_channels, resolution, use_fp16
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2, use_noise=cfg.use_noise,
                                        conv_clamp=cfg.conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, up=1, use_noise=cfg.use_noise,
                                    conv_clamp=cfg.conv_clamp)
        self.torgb = ToRGBLayer(out_channels, cfg.img_channels, w_dim, cfg.conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2

    def convs(self) -> list[tuple[str, SynthesisLayer]]:
        return [("conv1", self.conv1)] if self.in_channels == 0 else [("conv0", self.conv0), ("conv1", self.conv1)]


class StyleGAN2Synthesis(nn.Module):
    def __init__(self, cfg: StyleGAN2SynthesisConfig, w_dim: int) -> None:
        super().__init__()
        res = cfg.img_resolution
        if res < 4 or res & (res - 1):
            raise ValueError(f"StyleGAN2 needs a power-of-two resolution >= 4, got {res}")
        if cfg.architecture not in ARCHITECTURES:
            raise ValueError(f"StyleGAN2 generator architecture {cfg.architecture!r} is not supported (only "
                             f"{', '.join(ARCHITECTURES)}, the one every released StyleGAN2 model uses)")
        self.cfg = cfg
        self.w_dim = w_dim
        self.img_resolution = res
        self.img_channels = cfg.img_channels
        self.register_buffer("resample_filter", setup_filter_1d(cfg.resample_filter), persistent=False)
        fp16_resolution = max(2 ** (int(math.log2(res)) + 1 - cfg.num_fp16_res), 8)
        self.block_resolutions = cfg.block_resolutions
        self.num_ws = 1  # the last ToRGB's w
        for r in self.block_resolutions:
            block = SynthesisBlock(cfg.channels(r // 2) if r > 4 else 0, cfg.channels(r), w_dim, r, cfg,
                                   use_fp16=r >= fp16_resolution)
            setattr(self, f"b{r}", block)
            self.num_ws += block.num_conv

    def blocks(self) -> list[SynthesisBlock]:
        return [getattr(self, f"b{r}") for r in self.block_resolutions]

    def layer_info(self) -> list[tuple[str, int]]:
        """(name, channels) of each activation `iter_layers` yields: every conv, then the block's image so far."""
        out = []
        for block in self.blocks():
            out += [(f"b{block.resolution}.{n}", layer.out_channels) for n, layer in block.convs()]
            out.append((f"b{block.resolution}.torgb", self.img_channels))
        return out

    def ws_labels(self) -> list[str]:
        """Which layers each w drives (a ToRGB shares its w with the next block's first conv)."""
        labels = []
        for block in self.blocks():
            for name, _ in block.convs():
                labels.append(f"b{block.resolution}.{name}")
        for i, block in enumerate(self.blocks()[:-1]):
            idx = sum(b.num_conv for b in self.blocks()[: i + 1])  # the w of the next block's conv0
            labels[idx] += f" + b{block.resolution}.torgb"
        labels.append(f"b{self.img_resolution}.torgb")
        return labels

    def iter_layers(self, ws: torch.Tensor, transform: torch.Tensor | None = None, update_emas: bool = False,
                    noise_mode: str = "const", noise_seed: int = 0) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield (name, activation) for every conv, and (b{r}.torgb, image so far) after each block.

        The last item is the output image [B, img_channels, R, R] (float32). `update_emas` is accepted for a
        uniform call across families; this synthesis tracks no running averages.
        """
        if transform is not None:
            raise ValueError("a StyleGAN2 generator has no Fourier-feature input to translate or rotate")
        check_noise_mode(noise_mode)
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must have shape [B, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        ws = ws.to(torch.float32)
        batch, device = ws.shape[0], ws.device
        gen = torch.Generator().manual_seed(int(noise_seed)) if noise_mode == "random" else None
        f = self.resample_filter
        x = img = None
        w_idx = 0
        for block in self.blocks():
            r = block.resolution
            dtype = torch.float16 if block.use_fp16 and device.type == "cuda" else torch.float32
            block_ws = ws[:, w_idx: w_idx + block.num_conv + 1].unbind(dim=1)
            w_idx += block.num_conv
            if block.in_channels == 0:
                x = block.const.to(dtype).unsqueeze(0).repeat([batch, 1, 1, 1])  # [B, C, 4, 4]
            else:
                x = x.to(dtype)
            for (name, layer), w in zip(block.convs(), block_ws):
                x = layer(x, w, layer.noise(noise_mode, gen, device), f)
                yield f"b{r}.{name}", x
            if img is not None:  # upsample the skip image: zero insertion + [1,3,3,1] low-pass (x4 gain)
                img = kernels.upfirdn2d(img, f, up=2, padding=[2, 1, 2, 1], gain=4)
            y = block.torgb(x, block_ws[-1]).to(torch.float32)
            img = y if img is None else img + y
            yield f"b{r}.torgb", img

    def forward(self, ws: torch.Tensor, transform: torch.Tensor | None = None, update_emas: bool = False,
                noise_mode: str = "const", noise_seed: int = 0) -> torch.Tensor:
        *_, (_, img) = self.iter_layers(ws, transform, noise_mode=noise_mode, noise_seed=noise_seed)
        return img  # [B, img_channels, R, R]


class StyleGAN2Generator(nn.Module):
    family = "stylegan2"

    def __init__(self, cfg: StyleGAN2Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.synthesis = StyleGAN2Synthesis(cfg.synthesis, cfg.mapping.w_dim)
        self.num_ws = self.synthesis.num_ws
        self.mapping = StyleGAN2MappingNetwork(cfg.mapping, self.num_ws)
        self.z_dim, self.c_dim, self.w_dim = cfg.mapping.z_dim, cfg.mapping.c_dim, cfg.mapping.w_dim
        self.img_resolution = cfg.synthesis.img_resolution
        self.img_channels = cfg.synthesis.img_channels

    def forward(self, z: torch.Tensor, c: ClassInput = None, psi: float = 1.0, truncation_cutoff: int | None = None,
                update_emas: bool = False, transform: torch.Tensor | None = None, noise_mode: str = "const",
                noise_seed: int = 0) -> torch.Tensor:
        ws = self.mapping(z, c, psi=psi, truncation_cutoff=truncation_cutoff, update_emas=update_emas)
        return self.synthesis(ws, transform=transform, noise_mode=noise_mode, noise_seed=noise_seed)

    @property
    def traits(self) -> GeneratorTraits:
        info = self.synthesis.layer_info()
        return GeneratorTraits(
            family=self.family, label="StyleGAN2", has_noise=self.cfg.synthesis.use_noise, has_input_transform=False,
            per_class_w_avg=False, trainable=False, ws_labels=tuple(self.synthesis.ws_labels()),
            layer_names=tuple(n for n, _ in info), layer_channels=tuple(c for _, c in info), uint8_offset=128.0)

    def parameter_counts(self) -> dict[str, int]:
        counts = {"mapping": sum(p.numel() for p in self.mapping.parameters())}
        for block in self.synthesis.blocks():
            counts[f"b{block.resolution}"] = sum(p.numel() for p in block.parameters())
        counts["total"] = sum(p.numel() for p in self.parameters())
        return counts
