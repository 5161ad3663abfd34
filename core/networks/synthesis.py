"""StyleGAN3-T synthesis network with StyleGAN-XL's progressive growing (paper Sec. 4.2).

Signal processing view (StyleGAN3, Karras et al. 2021): every layer has a sampling rate s, a
cutoff f_c and a stopband f_t. Cutoffs and stopbands grow geometrically from the first layer to
the last; the last `num_critical` layers are critically sampled (f_c = s/2) for sharp images.
Each layer = modulated 3x3 conv, then `filtered_lrelu`: upsample to 2x the rate, leaky ReLU,
low-pass (windowed-sinc, Kaiser) and downsample to the output rate, so the nonlinearity adds no
aliasing.

Progressive growing: a stage drops the critically sampled layers (and ToRGB) of the previous
network and appends `head_layers` new layers + ToRGB whose cutoffs continue geometrically from
the last kept layer up to the new resolution. Layer names follow the official scheme
`L{index}_{size}_{channels}` so official checkpoints map one to one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.signal
import scipy.special
import torch
from torch import nn

import kernels
from core.networks import precision
from core.networks.layers import FullyConnectedLayer, modulated_conv2d
from core.networks.traits import check_noise_mode


@dataclass
class GrowthStage:
    up_factor: int = 2  # resolution multiplier of this stage (official SuperresGenerator: 2, 4, 8 or 16)
    head_layers: int = 7  # new layers before the new ToRGB
    # EMA decay of this stage's input magnitudes; None = the stem's. The official train.py sets the
    # stem's from the batch size while SuperresGenerator's heads keep 0.999 (it only matters for training).
    magnitude_ema_beta: float | None = None


@dataclass
class SynthesisConfig:
    stem_resolution: int = 16  # resolution of the stem; each growth stage multiplies it by its up_factor
    img_channels: int = 3
    channel_base: int = 32768
    channel_max: int = 512
    num_layers: int = 14  # stem layers, excluding the Fourier input and ToRGB
    num_critical: int = 2
    first_cutoff: float = 2.0
    first_stopband: float = 2**2.1
    last_stopband_rel: float = 2**0.3
    margin_size: int = 10
    output_scale: float = 0.25
    num_fp16_res: int = 4
    conv_kernel: int = 3
    filter_size: int = 6
    lrelu_upsampling: int = 2
    use_radial_filters: bool = False
    conv_clamp: float | None = 256
    magnitude_ema_beta: float = 0.999
    stages: list[GrowthStage] = field(default_factory=list)

    def stage_magnitude_ema_beta(self, stage: int) -> float:
        """magnitude_ema_beta of the layers of `stage` (0 = stem, k = k-th growth stage)."""
        beta = self.stages[stage - 1].magnitude_ema_beta if stage > 0 else None
        return self.magnitude_ema_beta if beta is None else beta

    @property
    def img_resolution(self) -> int:
        res = self.stem_resolution
        for stage in self.stages:
            res *= stage.up_factor
        return res

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SynthesisConfig:
        d = dict(d)
        d["stages"] = [GrowthStage(**s) for s in d.get("stages", [])]
        return cls(**d)


@dataclass(frozen=True)
class LayerSpec:
    """Everything that fixes one synthesis layer's shape and filters."""

    name: str
    stage: int  # 0 = stem, k = k-th growth stage
    is_torgb: bool
    is_critically_sampled: bool
    use_fp16: bool
    in_channels: int
    out_channels: int
    in_size: int
    out_size: int
    in_sampling_rate: int
    out_sampling_rate: int
    in_cutoff: float
    out_cutoff: float
    in_half_width: float
    out_half_width: float


@dataclass(frozen=True)
class InputSpec:
    channels: int
    size: int
    sampling_rate: float
    bandwidth: float


def _band_specs(
    first_cutoff: float, first_stopband: float, img_resolution: int, num_layers: int, num_critical: int,
    cfg: SynthesisConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Geometric progression of cutoffs f_c and stopbands f_t (StyleGAN3 Sec. 3.2 / Fig. 4)."""
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * cfg.last_stopband_rel
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
    sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    return cutoffs, stopbands, sampling_rates


def _make_specs(
    cutoffs: np.ndarray, stopbands: np.ndarray, sampling_rates: np.ndarray, channels: np.ndarray,
    img_resolution: int, first_index: int, stage: int, num_layers: int, cfg: SynthesisConfig,
) -> list[LayerSpec]:
    half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
    sizes = sampling_rates + cfg.margin_size * 2
    sizes[-2:] = img_resolution
    specs = []
    for idx in range(num_layers + 1):
        prev = max(idx - 1, 0)
        out_size = int(sizes[idx])
        out_channels = int(channels[idx])
        specs.append(LayerSpec(
            name=f"L{idx + first_index}_{out_size}_{out_channels}",
            stage=stage,
            is_torgb=idx == num_layers,
            is_critically_sampled=idx >= num_layers - cfg.num_critical,
            use_fp16=bool(sampling_rates[idx] * (2**cfg.num_fp16_res) > img_resolution),
            in_channels=int(channels[prev]), out_channels=out_channels,
            in_size=int(sizes[prev]), out_size=out_size,
            in_sampling_rate=int(sampling_rates[prev]), out_sampling_rate=int(sampling_rates[idx]),
            in_cutoff=float(cutoffs[prev]), out_cutoff=float(cutoffs[idx]),
            in_half_width=float(half_widths[prev]), out_half_width=float(half_widths[idx]),
        ))
    return specs


def layer_specs(cfg: SynthesisConfig) -> tuple[InputSpec, list[LayerSpec]]:
    """The Fourier input and every synthesis layer, stem first, then each growth stage's head."""
    res = cfg.stem_resolution
    cutoffs, stopbands, rates = _band_specs(
        cfg.first_cutoff, cfg.first_stopband, res, cfg.num_layers, cfg.num_critical, cfg)
    channels = np.rint(np.minimum((cfg.channel_base / 2) / cutoffs, cfg.channel_max))
    channels[-1] = cfg.img_channels
    specs = _make_specs(cutoffs, stopbands, rates, channels, res, 0, 0, cfg.num_layers, cfg)
    input_spec = InputSpec(channels=int(channels[0]), size=int(specs[0].in_size),
                           sampling_rate=float(rates[0]), bandwidth=float(cutoffs[0]))

    for stage_idx, stage in enumerate(cfg.stages, start=1):
        # Drop the previous network's critically sampled layers and its ToRGB.
        while specs and specs[-1].is_critically_sampled:
            specs.pop()
        last = specs[-1]
        res *= stage.up_factor
        # The new head continues from the last kept layer (official SuperresGenerator; it always
        # uses 2 critical layers when computing the bands).
        cutoffs, stopbands, rates = _band_specs(
            last.out_cutoff, last.out_half_width + last.out_cutoff, res, stage.head_layers, 2, cfg)
        rates[0] = last.out_sampling_rate
        channels = np.rint(np.minimum((cfg.channel_base / 2) / cutoffs, cfg.channel_max))
        channels[0] = last.out_channels
        channels[-1] = cfg.img_channels
        specs += _make_specs(cutoffs, stopbands, rates, channels, res, len(specs) + 1, stage_idx,
                             stage.head_layers, cfg)
    return input_spec, specs


def design_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False
                          ) -> torch.Tensor | None:
    """Kaiser-windowed sinc low-pass (separable 1-D), or a radially symmetric jinc (2-D); None = identity."""
    if numtaps == 1:
        return None
    if not radial:
        return torch.as_tensor(scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs),
                               dtype=torch.float32)
    coords = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(coords, coords))
    f = scipy.special.j1(2 * cutoff * (np.pi * r)) / (np.pi * r)
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2)))
    window = np.kaiser(numtaps, beta)
    f *= np.outer(window, window)
    f /= np.sum(f)
    return torch.as_tensor(f, dtype=torch.float32)


class SynthesisInput(nn.Module):
    """Fourier features whose rotation/translation is predicted from w (StyleGAN3 Sec. 3.1).

    `transform` is a user-given 3x3 inverse transform of the output image (the explorer's
    translate/rotate); the learned affine predicts (cos, sin, tx, ty).
    """

    def __init__(self, spec: InputSpec, w_dim: int) -> None:
        super().__init__()
        self.spec = spec
        freqs = torch.randn([spec.channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs /= radii * radii.square().exp().pow(0.25)  # uniform-ish on a disc of radius bandwidth
        freqs *= spec.bandwidth
        self.weight = nn.Parameter(torch.randn([spec.channels, spec.channels]))
        self.affine = FullyConnectedLayer(w_dim, 4, weight_init=0, bias_init=[1, 0, 0, 0])
        self.register_buffer("transform", torch.eye(3, 3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", torch.rand([spec.channels]) - 0.5)

    def forward(self, w: torch.Tensor, transform: torch.Tensor | None = None) -> torch.Tensor:
        batch, device = w.shape[0], w.device
        user = self.transform if transform is None else transform.to(device, torch.float32)
        user = user.expand(batch, 3, 3) if user.ndim == 2 else user  # [B, 3, 3]

        t = self.affine(w)  # [B, 4] = (r_c, r_s, t_x, t_y)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        m_r = torch.eye(3, device=device).unsqueeze(0).repeat([batch, 1, 1])  # inverse rotation
        m_r[:, 0, 0] = t[:, 0]
        m_r[:, 0, 1] = -t[:, 1]
        m_r[:, 1, 0] = t[:, 1]
        m_r[:, 1, 1] = t[:, 0]
        m_t = torch.eye(3, device=device).unsqueeze(0).repeat([batch, 1, 1])  # inverse translation
        m_t[:, 0, 2] = -t[:, 2]
        m_t[:, 1, 2] = -t[:, 3]
        transforms = m_r @ m_t @ user  # rotate the image, then translate, then the user's transform

        freqs = self.freqs.unsqueeze(0)  # [1, C, 2]
        phases = self.phases.unsqueeze(0) + (freqs @ transforms[:, :2, 2:]).squeeze(2)  # [B, C]
        freqs = freqs @ transforms[:, :2, :2]  # [B, C, 2]
        # Fade out frequencies the user transform pushed beyond the band (would alias).
        bandwidth, rate = self.spec.bandwidth, self.spec.sampling_rate
        amplitudes = (1 - (freqs.norm(dim=2) - bandwidth) / (rate / 2 - bandwidth)).clamp(0, 1)  # [B, C]

        size = self.spec.size
        theta = torch.eye(2, 3, device=device)
        theta[0, 0] = 0.5 * size / rate
        theta[1, 1] = 0.5 * size / rate
        grids = torch.nn.functional.affine_grid(theta.unsqueeze(0), [1, 1, size, size], align_corners=False)

        x = (grids.unsqueeze(3) @ freqs.permute(0, 2, 1).unsqueeze(1).unsqueeze(2)).squeeze(3)  # [B, H, W, C]
        x = x + phases.unsqueeze(1).unsqueeze(2)
        x = torch.sin(x * (np.pi * 2)) * amplitudes.unsqueeze(1).unsqueeze(2)
        x = x @ (self.weight / np.sqrt(self.spec.channels)).t()  # trainable 1x1 mapping
        return x.permute(0, 3, 1, 2).contiguous()  # [B, C, H, W]


class SynthesisLayer(nn.Module):
    """Modulated conv + filtered leaky ReLU (or the final ToRGB: 1x1 conv, no nonlinearity)."""

    def __init__(self, spec: LayerSpec, w_dim: int, cfg: SynthesisConfig) -> None:
        super().__init__()
        self.spec = spec
        self.conv_kernel = 1 if spec.is_torgb else cfg.conv_kernel
        self.conv_clamp = cfg.conv_clamp
        self.magnitude_ema_beta = cfg.stage_magnitude_ema_beta(spec.stage)
        self.affine = FullyConnectedLayer(w_dim, spec.in_channels, bias_init=1)
        self.weight = nn.Parameter(
            torch.randn([spec.out_channels, spec.in_channels, self.conv_kernel, self.conv_kernel]))
        self.bias = nn.Parameter(torch.zeros([spec.out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))

        # Temporarily raise the sampling rate for the nonlinearity (StyleGAN3 Sec. 3.2).
        tmp_rate = max(spec.in_sampling_rate, spec.out_sampling_rate) * (1 if spec.is_torgb else cfg.lrelu_upsampling)
        self.up_factor = int(np.rint(tmp_rate / spec.in_sampling_rate))
        self.down_factor = int(np.rint(tmp_rate / spec.out_sampling_rate))
        up_taps = cfg.filter_size * self.up_factor if self.up_factor > 1 and not spec.is_torgb else 1
        down_taps = cfg.filter_size * self.down_factor if self.down_factor > 1 and not spec.is_torgb else 1
        down_radial = cfg.use_radial_filters and not spec.is_critically_sampled
        self.register_buffer("up_filter", design_lowpass_filter(
            up_taps, spec.in_cutoff, spec.in_half_width * 2, tmp_rate), persistent=False)
        self.register_buffer("down_filter", design_lowpass_filter(
            down_taps, spec.out_cutoff, spec.out_half_width * 2, tmp_rate, radial=down_radial), persistent=False)

        # Padding so that the output has out_size samples, centred (StyleGAN3 Appendix C.3).
        pad_total = (spec.out_size - 1) * self.down_factor + 1
        pad_total -= (spec.in_size + self.conv_kernel - 1) * self.up_factor
        pad_total += up_taps + down_taps - 2
        pad_lo = (pad_total + self.up_factor) // 2
        pad_hi = pad_total - pad_lo
        self.padding = [pad_lo, pad_hi, pad_lo, pad_hi]

    def forward(self, x: torch.Tensor, w: torch.Tensor, update_emas: bool = False) -> torch.Tensor:
        if update_emas:
            magnitude = x.detach().to(torch.float32).square().mean()
            self.magnitude_ema.copy_(magnitude.lerp(self.magnitude_ema, self.magnitude_ema_beta))
        input_gain = self.magnitude_ema.rsqrt()

        styles = self.affine(w)  # [B, in_channels]
        if self.spec.is_torgb:
            styles = styles * (1 / math.sqrt(self.spec.in_channels * self.conv_kernel**2))

        # A bf16 preview plan (core.networks.precision, this thread only) may name this layer; else as official.
        conv_dtype, fir_dtype = precision.layer_dtypes(self.spec.name, x.device)
        dtype = conv_dtype or (torch.float16 if (self.spec.use_fp16 and x.device.type == "cuda") else torch.float32)
        x = modulated_conv2d(x.to(dtype), self.weight, styles, demodulate=not self.spec.is_torgb,
                             padding=self.conv_kernel - 1, input_gain=input_gain)
        if conv_dtype is not None or fir_dtype is not None:
            x = x.to(fir_dtype or torch.float32)  # the FIR runs in the dtype measured faster for it
        gain = 1.0 if self.spec.is_torgb else math.sqrt(2)
        slope = 1.0 if self.spec.is_torgb else 0.2
        if precision.plain_activation(self.spec.name, x.device):
            return self._plain_activation(x, gain, slope)
        up_filter = None if self.up_filter is None else self.up_filter.to(x.device)
        down_filter = None if self.down_filter is None else self.down_filter.to(x.device)
        return kernels.filtered_lrelu(
            x, fu=up_filter, fd=down_filter, b=self.bias.to(x.dtype), up=self.up_factor,
            down=self.down_factor, padding=self.padding, gain=gain, slope=slope, clamp=self.conv_clamp)

    def _plain_activation(self, x: torch.Tensor, gain: float, slope: float) -> torch.Tensor:
        """Preview only (precision.PrecisionPlan.plain): bias, leaky ReLU and clamp at this layer's own rate on
        the centred `out_size` crop, without the 2x oversampling and low-pass of `filtered_lrelu` (the same
        samples: the filtered output is centred on the same grid, so the crop lines up)."""
        n, size = x.shape[-1], self.spec.out_size
        lo = (n - size) // 2
        x = x[..., lo:lo + size, lo:lo + size].float() + self.bias.view(1, -1, 1, 1)
        x = torch.nn.functional.leaky_relu(x, slope) * gain
        return x if self.conv_clamp is None else x.clamp(-self.conv_clamp, self.conv_clamp)

    def extra_repr(self) -> str:
        s = self.spec
        return (f"{s.in_channels}->{s.out_channels}, size {s.in_size}->{s.out_size}, "
                f"rate {s.in_sampling_rate}->{s.out_sampling_rate}, cutoff {s.in_cutoff:.3g}->{s.out_cutoff:.3g}, "
                f"up {self.up_factor}, down {self.down_factor}, torgb={s.is_torgb}")


class SynthesisNetwork(nn.Module):
    def __init__(self, cfg: SynthesisConfig, w_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.w_dim = w_dim
        self.img_resolution = cfg.img_resolution
        self.img_channels = cfg.img_channels
        input_spec, specs = layer_specs(cfg)
        self.input = SynthesisInput(input_spec, w_dim)
        self.layer_names: list[str] = []
        for spec in specs:
            setattr(self, spec.name, SynthesisLayer(spec, w_dim, cfg))
            self.layer_names.append(spec.name)
        self.num_ws = len(self.layer_names) + 1  # one w for the input, one per layer

    def layers(self) -> list[SynthesisLayer]:
        return [getattr(self, name) for name in self.layer_names]

    def layer_info(self) -> list[tuple[str, int]]:
        """(name, channels) of each activation `iter_layers` yields."""
        return [("input", self.input.spec.channels)] + [(x.spec.name, x.spec.out_channels) for x in self.layers()]

    def ws_labels(self) -> list[str]:
        """What each w drives: w0 the Fourier input's transform, then one w per layer."""
        return ["input", *self.layer_names]

    def iter_layers(self, ws: torch.Tensor, transform: torch.Tensor | None = None, update_emas: bool = False,
                    noise_mode: str = "const", noise_seed: int = 0) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield ("input", x) then (layer name, activation) for every layer; the explorer shows these.

        `noise_mode` / `noise_seed` are accepted for a uniform call across generator families: this
        synthesis has no noise inputs (StyleGAN3 removed them), so they change nothing.
        """
        check_noise_mode(noise_mode)
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must have shape [B, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        ws_list = ws.to(torch.float32).unbind(dim=1)
        x = self.input(ws_list[0], transform)
        yield "input", x
        for name, w in zip(self.layer_names, ws_list[1:]):
            x = getattr(self, name)(x, w, update_emas=update_emas)
            yield name, x

    def forward(self, ws: torch.Tensor, transform: torch.Tensor | None = None, update_emas: bool = False,
                noise_mode: str = "const", noise_seed: int = 0) -> torch.Tensor:
        *_, (_, x) = self.iter_layers(ws, transform, update_emas, noise_mode)  # the last layer's output
        if self.cfg.output_scale != 1:
            x = x * self.cfg.output_scale
        return x.to(torch.float32)  # [B, img_channels, R, R]
