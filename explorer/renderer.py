"""The explorer's renderer: render settings -> frames, off the UI thread, cached, newest request wins.

`RenderSettings` is the single source of truth for one frame: the UI builds one per tick from its
widgets and hands it to `Renderer.request`; the worker thread renders only the newest one (requests
that were overwritten before the worker got to them are dropped) and the UI thread only uploads
finished frames. Frames are cached by (model, settings) so scrubbing back over seeds/psi/classes
is instant. Every request carries the renderer's generation counter; loading a model bumps it, so
a frame that was started before a model change is thrown away rather than shown.

Progressive refinement: while the user drags (`request(settings, interactive=True)`) the worker
renders a *preview*: the same network with the layers that this CPU runs faster in bfloat16 switched
to bf16, and the last stage's same-rate layers without their anti-aliasing filters where that is faster
(`core.networks.precision`, measured per layer in the background after a model loads). When
the input rests for `rest_s` the exact float32 frame of the newest settings replaces the preview; a
newer request interrupts that refinement between two synthesis layers. So the last frame shown after
the input stops is always the exact one. Until a new frame is ready the previous one stays on screen.

Frames reach the UI as uint8 RGBA [H, W, 4] numpy arrays (alpha 255): the format both of the UI's
upload paths take (an OpenGL texture, or Dear PyGui's raw texture after one conversion).

Exact CPU frames of the interactive path (requests, `render_frame`) come from the synthesis network compiled ahead
of time (`explorer.compiled`, `core.networks.aot`) once this checkpoint's package is built; equal to the eager
network up to float rounding. Previews, layer views and `render_sync` always run eagerly.

`Renderer.render_sync(settings)` is the headless API: for a plain seed/class/psi it runs exactly
`core.sampling.ws_from_seeds` + `G.synthesis` + `core.sampling.to_uint8`, i.e. the image that
`sgxl generate` writes for the same settings.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from core.errors import SGXLError, UserInputError
from core.networks import precision
from core.networks.traits import NOISE_MODES, GeneratorTraits
from core.sampling import input_transform, style_mix, to_uint8, truncate, ws_from_seeds, z_from_seed
from explorer.compiled import CompiledSynthesis

MAX_SEED = 2**32 - 1  # np.random.RandomState accepts 0 .. 2**32 - 1
LAYER_VIEWS = ("channels", "fft")
Weights = tuple[tuple[int, float], ...]  # sparse (index, weight) pairs
REST_S = 0.1  # input resting this long (seconds) after a preview -> render the exact frame (interruptible)


@dataclass(frozen=True)
class RenderSettings:
    """Everything that determines one frame (hashable: it is the cache key)."""

    ckpt: str = ""  # model key (path, device, mtime); "" = whatever model is loaded
    seeds: Weights = ((0, 1.0),)  # seeds blended in W with these weights (sum to 1)
    classes: Weights = ((0, 1.0),)  # sparse class weights [c_dim]; () for an unconditional model
    psi: float = 1.0  # truncation toward the (blended) class's w_avg
    trunc_cutoff: int | None = None  # psi applies to the first N ws only (official truncation_cutoff); None = all
    mix_seed: int | None = None  # style mixing: ws of `mix_layers` come from this seed ...
    mix_classes: Weights = ()  # ... in these classes (() = same as `classes`)
    mix_layers: tuple[int, ...] = ()  # indices into num_ws
    translate: tuple[float, float] = (0.0, 0.0)  # Fourier-input translation (output-image units)
    rotate: float = 0.0  # Fourier-input rotation, degrees
    layer: str = ""  # "" = the output image; "input" or a synthesis layer name = show its activations
    channel: int = 0  # first channel shown (channels c, c+1, c+2 as RGB)
    layer_view: str = "channels"  # "channels" or "fft" (log magnitude of the 2-D FFT)
    latent: str = ""  # ws registered with `Renderer.register_latent`, used instead of the seed blend when set;
    #                   `seeds` then holds seeds blended INTO the latent with their weights (the latent keeps 1 - sum)
    noise_mode: str = "const"  # noise inputs (StyleGAN2 only): const / random (from noise_seed) / none
    noise_seed: int = 0

    @classmethod
    def single(cls, seed: int, class_idx: int | None, psi: float = 1.0, ckpt: str = "") -> RenderSettings:
        """One seed in one class: the settings `sgxl generate --seeds S --class C --trunc psi` uses."""
        classes = () if class_idx is None else ((int(class_idx), 1.0),)
        return cls(ckpt=ckpt, seeds=((int(seed), 1.0),), classes=classes, psi=float(psi))

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def is_plain(self) -> bool:
        """True when this is exactly one seed, one class (or none), no mixing, no transform, no layer view."""
        one_class = len(self.classes) <= 1 and all(w == 1.0 for _, w in self.classes)
        return (len(self.seeds) == 1 and self.seeds[0][1] == 1.0 and one_class and not self.mix_layers
                and self.transform_is_identity and not self.layer and not self.latent and self.noise_mode == "const")

    @property
    def transform_is_identity(self) -> bool:
        return self.translate == (0.0, 0.0) and self.rotate == 0.0


def blend_weights(a: Weights, b: Weights, t: float) -> Weights:
    """(1 - t) * a + t * b on sparse weights, zeros dropped, sorted by index (a canonical cache key)."""
    out: dict[int, float] = {}
    for idx, w in a:
        out[idx] = out.get(idx, 0.0) + w * (1.0 - t)
    for idx, w in b:
        out[idx] = out.get(idx, 0.0) + w * t
    return tuple(sorted((i, w) for i, w in out.items() if w != 0.0))


def grid_seed(seed: int, ix: int, iy: int, stride: int = 1000) -> int:
    """The seed at integer grid position (ix, iy) from `seed`: `seed + ix + iy * stride`, wrapped to 0..MAX_SEED.

    Wrapping (as the official visualizer masks seeds to 32 bits) defines the grid everywhere, also left of
    and above seed 0: one step left of seed 0 is seed 2**32 - 1. The pad's blend and "Snap to seed" both
    use this, so snapping lands on the seed the image shows.
    """
    return (int(seed) + int(ix) + int(iy) * stride) % (MAX_SEED + 1)


def grid_seed_weights(seed: int, offset: tuple[float, float], stride: int = 1000) -> Weights:
    """Seeds on a 2-D grid around `seed` and their bilinear weights for a fractional `offset`.

    Grid cell (ix, iy) holds seed `grid_seed(seed, ix, iy)`; a fractional position blends the 4
    nearest seeds in W (as the official visualizer's latent drag does), so dragging is smooth.
    """
    x, y = offset
    x0, y0 = math.floor(x), math.floor(y)
    fx, fy = x - x0, y - y0
    out: dict[int, float] = {}
    corners = ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy))
    for dx, dy, w in corners:
        if w > 0:
            s = grid_seed(seed, x0 + dx, y0 + dy, stride)
            out[s] = out.get(s, 0.0) + w
    return tuple(sorted(out.items()))


def layer_image(x: torch.Tensor, channel: int, view: str) -> torch.Tensor:
    """Activations [1, C, h, w] -> a displayable [1, 3, h, w] in [-1, 1] (channels c..c+2 as RGB, or FFT)."""
    if view not in LAYER_VIEWS:
        raise UserInputError(f"unknown layer view {view!r}; use one of {', '.join(LAYER_VIEWS)}")
    c = x.shape[1]
    idx = [min(channel + k, c - 1) for k in range(3)] if channel < c else [c - 1] * 3
    a = x[0, idx].to(torch.float32)  # [3, h, w]
    if view == "fft":
        # Log magnitude of the centred 2-D spectrum per channel, scaled to its own maximum: aliasing
        # shows as energy away from the centre (StyleGAN3 Fig. 2 style).
        mag = torch.log1p(torch.fft.fftshift(torch.fft.fft2(a), dim=(-2, -1)).abs())
        mag = mag / mag.flatten(1).amax(dim=1).clamp_min(1e-8)[:, None, None]
        return (mag * 2 - 1).unsqueeze(0)
    scale = a.flatten(1).std(dim=1).clamp_min(1e-8)[:, None, None] * 3  # +-3 std -> [-1, 1]
    return (a / scale).clamp(-1, 1).unsqueeze(0)


@dataclass(frozen=True)
class ModelInfo:
    key: str
    path: str
    device: str
    resolution: int
    c_dim: int
    class_names: tuple[str, ...]
    num_params: int
    kimg: float
    num_ws: int
    w_dim: int
    layer_names: tuple[str, ...]  # what the layer view can show ("input" + the synthesis layers for StyleGAN3/XL)
    layer_channels: tuple[int, ...]
    traits: GeneratorTraits | None = None  # what this generator family has (noise, input transform, ws labels...)

    @property
    def label(self) -> str:
        return self.traits.label if self.traits else "StyleGAN-XL"

    @property
    def has_noise(self) -> bool:
        return bool(self.traits and self.traits.has_noise)

    @property
    def has_input_transform(self) -> bool:
        return self.traits is None or self.traits.has_input_transform

    @property
    def ws_labels(self) -> tuple[str, ...]:
        """What each of the num_ws ws drives (the style-mixing checkboxes)."""
        return self.traits.ws_labels if self.traits else self.layer_names[: self.num_ws]

    def class_name(self, idx: int) -> str:
        return self.class_names[idx] if idx < len(self.class_names) else f"class {idx}"


@dataclass
class Frame:
    settings: RenderSettings
    generation: int
    rgba: np.ndarray  # uint8 [H, W, 4], alpha 255: the image `core.sampling.to_uint8` makes, plus alpha
    render_ms: float
    cached: bool = False
    # CPU time of the worker thread for it: below render_ms when other threads or processes held the core
    # (with one torch thread all of the render runs on the worker thread; with more this undercounts)
    render_cpu_ms: float = 0.0
    preview: bool = False  # a preview (bf16, no last-stage anti-aliasing) while the input moves; exact follows
    compiled: bool = False  # exact, from the ahead-of-time compiled synthesis (explorer.compiled)
    requested_at: float = 0.0  # time.perf_counter() when the UI asked for it
    started_at: float = 0.0  # ... when the worker started on it (requested_at for cache hits)
    finished_at: float = 0.0  # ... when it was ready for the UI
    # The same RGBA tensor on the GPU when rendered with CUDA (explorer/gl_frames.py copies it into the GL
    # texture without a host round trip); None on the CPU.
    device_rgba: torch.Tensor | None = None

    def to_uint8(self) -> np.ndarray:
        """uint8 [H, W, 3]: the image without its alpha channel."""
        return np.ascontiguousarray(self.rgba[..., :3])

    @property
    def rgb(self) -> np.ndarray:
        """float32 [H, W, 3] = uint8 / 255: what Dear PyGui's raw textures take (made on each access)."""
        return np.divide(self.rgba[..., :3], np.float32(255), dtype=np.float32)


@dataclass
class Thumbnails:
    key: tuple
    classes: tuple[int, ...]
    images: np.ndarray  # uint8 [N, t, t, 3]


@dataclass
class _Model:
    G: torch.nn.Module
    info: ModelInfo


@dataclass(frozen=True)
class Latent:
    """Registered ws (e.g. an inverted photo) and the class it lives in (None: unconditional)."""

    ws: torch.Tensor  # [1, num_ws, w_dim] on the CPU
    class_idx: int | None


@dataclass
class _Job:
    kind: str  # "load" | "frame" | "refine" | "thumbs" | "calibrate"
    generation: int
    payload: object
    requested_at: float = field(default_factory=time.perf_counter)
    seq: int = 0
    preview: bool = False  # a frame job: render the preview (when a preview plan is usable)


class _Interrupted(Exception):
    """A refinement gave way to a newer request (raised between two synthesis layers)."""


def model_key(path: str | Path, device: str) -> str:
    p = Path(path)
    try:
        st = p.stat()
        return f"{p.resolve()}|{device}|{st.st_mtime_ns}|{st.st_size}"
    except OSError:
        return f"{p}|{device}"


def resolve_device(device: str) -> str:
    if device in ("auto", "", None):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserInputError("CUDA was asked for, but PyTorch sees no CUDA GPU; use the CPU")
    if device not in ("cpu", "cuda"):
        raise UserInputError(f"unknown device {device!r}; use cpu, cuda or auto")
    return device


class Renderer:
    """Renders `RenderSettings` with one model on one device; a worker thread serves `request()`.

    Previews (on the CPU), measured per layer in the background after each model load
    (`core.networks.precision.measure_plan`): bf16 "auto" runs the layers that are faster in bfloat16 on
    this CPU in bf16 (where it has native bf16, `precision.cpu_bf16_support`), "off" never; `plain_preview`
    lets the last stage's same-rate layers skip their anti-aliasing filters where that is faster.
    progressive: interactive requests get the preview, then the exact frame once the input rests.
    """

    def __init__(self, device: str = "cpu", cache_mb: int = 256, thumb_size: int = 64,
                 threaded: bool = True, bf16: str = "off", plain_preview: bool = False, progressive: bool = True,
                 rest_s: float = REST_S, compiled: str = "off") -> None:
        if bf16 not in ("auto", "off"):
            raise ValueError(f"bf16 must be 'auto' or 'off', not {bf16!r}")
        if compiled not in ("auto", "off"):
            raise ValueError(f"compiled must be 'auto' or 'off', not {compiled!r}")
        # Exact CPU frames of the interactive path from the ahead-of-time compiled synthesis, once built.
        self.compiled = CompiledSynthesis(compiled == "auto")
        self.device = resolve_device(device)
        self.cache_bytes = cache_mb << 20
        self.thumb_size = thumb_size
        self.rest_s = rest_s
        self.progressive = progressive
        self.bf16_enabled = bf16 == "auto"
        self.plain_preview = plain_preview
        self.bf16_support = precision.cpu_bf16_support()  # instructions of this CPU (used on device "cpu")
        self._plan: precision.PrecisionPlan | None = None  # measured for the current model
        self._plan_state = "waiting"  # waiting | measuring | ready | unavailable (see preview_status)
        self._model: _Model | None = None
        self._hooks: list = []
        self._generation = 0
        self._lock = threading.Condition()
        # (model key, settings, preview) -> frame; previews are kept apart and never served as exact frames
        self._cache: OrderedDict[tuple[str, RenderSettings, bool], Frame] = OrderedDict()
        self._cache_used = 0
        self._pending: dict[str, _Job] = {}  # kind -> newest job of that kind (older ones are dropped)
        self._refine: _Job | None = None  # the exact frame owed for the preview on screen ...
        self._refine_at = 0.0  # ... rendered from this time on (the input rested)
        self._frame: Frame | None = None  # newest finished frame not yet taken by the UI
        self._thumbs: Thumbnails | None = None
        self._events: list[tuple[str, object]] = []
        self._latents: dict[str, Latent] = {}
        self.stats = {"renders": 0, "previews": 0, "cache_hits": 0, "dropped": 0, "stale": 0, "interrupted": 0,
                      "compiled": 0, "last_render_ms": 0.0, "last_preview_ms": 0.0}
        self.on_frame: Callable[[], None] | None = None  # called (worker thread) when a frame is ready
        self._stop = False
        self._working: str | None = None  # kind of the job the worker is on ...
        self._working_seq = 0  # ... and its request number
        self._seq = 0  # request counter: a frame is never shown after a frame of a newer request
        self._published_seq = 0
        self._published_preview = False  # ... and an exact frame may replace the preview of its own request
        self._thread: threading.Thread | None = None
        if threaded:
            self._thread = threading.Thread(target=self._run, name="sgxl-renderer", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ model

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def info(self) -> ModelInfo | None:
        model = self._model
        return model.info if model else None

    def load(self, path: str | Path, device: str | None = None) -> ModelInfo:
        """Load a checkpoint (.sgxl or official .pkl) synchronously; raises SGXLError on a bad file."""
        from core.io.checkpoint import load_checkpoint

        dev = resolve_device(device or self.device)
        try:
            ckpt = load_checkpoint(path, device=dev)
        except SGXLError:
            raise
        except ImportError as e:
            raise SGXLError(f"cannot open {Path(path).name}: {e}") from None
        except Exception as e:  # a corrupt file can fail inside torch/zip/pickle readers in many ways
            raise SGXLError(f"cannot open {Path(path).name}: {type(e).__name__}: {e}") from None
        kimg = float(ckpt.meta.get("kimg", 0.0))
        return self.set_model(ckpt.generator, key=model_key(path, dev), path=str(path),
                              class_names=ckpt.class_names, kimg=kimg, device=dev)

    def set_model(self, G: torch.nn.Module, key: str, path: str = "", class_names: list[str] | None = None,
                  kimg: float = 0.0, device: str | None = None) -> ModelInfo:
        """Use generator `G` from now on; bumps the generation so in-flight frames are discarded."""
        dev = resolve_device(device or self.device)
        G = G.eval().requires_grad_(False).to(dev)
        traits = G.traits
        info = ModelInfo(
            key=key, path=path, device=dev, resolution=int(G.img_resolution), c_dim=int(G.c_dim),
            class_names=tuple(class_names or ()), num_params=int(G.parameter_counts()["total"]), kimg=kimg,
            num_ws=int(G.num_ws), w_dim=int(G.w_dim), layer_names=traits.layer_names,
            layer_channels=traits.layer_channels, traits=traits)
        with self._lock:
            self._remove_hooks()
            self._model = _Model(G=G, info=info)
            # A refinement is interruptible between the synthesis's top-level modules (its layers).
            self._hooks = [m.register_forward_pre_hook(self._between_layers) for m in G.synthesis.children()]
            self.device = dev
            self._generation += 1
            self._frame = None
            self._thumbs = None
            self._refine = None
            self._plan, self._plan_state = None, "waiting"
            self._pending.pop("frame", None)
            self._pending.pop("thumbs", None)
            generation = self._generation
            self._lock.notify_all()
        self.compiled.start(G, path, dev, generation)
        return info

    def _remove_hooks(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    def _between_layers(self, module: torch.nn.Module, args: tuple) -> None:
        """Forward pre-hook: a refinement on the worker thread stops as soon as a newer frame is asked for."""
        if (self._working == "refine" and threading.current_thread() is self._thread
                and self._seq > self._working_seq):
            raise _Interrupted

    def register_latent(self, name: str, ws: torch.Tensor, class_idx: int | None = None) -> None:
        """Make `ws` [1, num_ws, w_dim] renderable as `RenderSettings(latent=name)`.

        Re-registering a name drops the frames cached for its old ws (the name is part of the cache key).
        """
        if not name:
            raise ValueError("a latent needs a non-empty name")
        if ws.dim() != 3 or ws.shape[0] != 1:
            raise UserInputError(f"a latent must be ws of shape [1, num_ws, w_dim], got {tuple(ws.shape)}")
        with self._lock:
            self._latents[name] = Latent(ws.detach().to("cpu", torch.float32).clone(), class_idx)
            self._cache_drop(lambda k: k[1].latent == name)

    def latent(self, name: str) -> Latent | None:
        with self._lock:
            return self._latents.get(name)

    def latent_fits(self, name: str, info: ModelInfo | None = None) -> bool:
        """Can the model (`info`, default the loaded one) render this latent: same ws shape, its class exists?"""
        lat, info = self.latent(name), info or self.info
        if lat is None or info is None:
            return False
        cls_ok = lat.class_idx is None if info.c_dim == 0 else (lat.class_idx or 0) < info.c_dim
        return tuple(lat.ws.shape[1:]) == (info.num_ws, info.w_dim) and cls_ok

    def load_async(self, path: str | Path, device: str | None = None) -> None:
        """Load on the worker thread; `poll_events()` later yields ("loaded", info) or ("error", message)."""
        self._submit(_Job("load", self._generation, (str(path), device)))

    # ------------------------------------------------------------------ previews (bf16, plain head, progressive)

    def set_bf16(self, enabled: bool) -> None:
        """Use (after measuring) or stop using bf16 in previews; previews made with the old setting are dropped."""
        with self._lock:
            self.bf16_enabled = bool(enabled)
            self._cache_drop(lambda k: k[2])
            self._lock.notify_all()  # the worker may measure now

    def set_plain_preview(self, enabled: bool) -> None:
        """Let previews skip the last stage's anti-aliasing filters (where measured faster), or not."""
        with self._lock:
            self.plain_preview = bool(enabled)
            self._cache_drop(lambda k: k[2])
            self._lock.notify_all()

    def set_progressive(self, enabled: bool) -> None:
        with self._lock:
            self.progressive = bool(enabled)

    def set_preview_plan(self, plan: precision.PrecisionPlan | None) -> None:
        """Use this plan for previews instead of measuring one (tests, benchmarks); None measures again."""
        with self._lock:
            self._plan = plan
            self._plan_state = "waiting" if plan is None else "ready"
            self._cache_drop(lambda k: k[2])
            self._lock.notify_all()

    @property
    def preview_plan(self) -> precision.PrecisionPlan | None:
        """The plan previews run with now: the measured one less what is switched off (None: no previews)."""
        plan = self._plan
        if plan is None or self._plan_state != "ready" or not self._on_cpu():
            return None
        plan = plan.restricted(bf16=self._bf16_usable(), plain=self.plain_preview)
        return None if plan.empty else plan

    def _on_cpu(self) -> bool:
        model = self._model
        return (model.info.device if model else self.device) == "cpu"

    def _bf16_usable(self) -> bool:
        return self.bf16_enabled and self.bf16_support is not None and self._on_cpu()

    def preview_status(self) -> dict:
        """What the Performance panel shows: CPU support, switches, measuring state and the plan."""
        if not self._on_cpu():
            state = "unsupported"  # on CUDA the generator already runs its high-resolution layers in fp16
        elif not (self._bf16_usable() or self.plain_preview):
            state = "off"
        elif self._plan_state == "ready" and self.preview_plan is None:
            state = "no gain"  # measured: nothing switched on is faster here
        else:
            state = self._plan_state
        return {"bf16_support": self.bf16_support, "device": self.device, "bf16": self.bf16_enabled,
                "plain": self.plain_preview, "progressive": self.progressive, "state": state,
                "plan": self.preview_plan if state == "ready" else self._plan}

    def calibrate_preview(self, should_stop: Callable[[], bool] | None = None) -> precision.PrecisionPlan | None:
        """Measure the preview plan of the loaded model on this thread (the worker does this when idle)."""
        model = self._model
        if model is None:
            raise SGXLError("no model is loaded: open a checkpoint first")
        with self._lock:
            generation, self._plan_state = self._generation, "measuring"
        G, dev = model.G, model.info.device
        classes = ((0, 1.0),) if G.c_dim else ()
        plan = None
        try:
            with torch.no_grad():
                ws = ws_for(G, ((0, 1.0),), classes, 1.0, dev)
                # bf16 is measured only where the CPU multiplies it natively; the switches filter the plan later.
                plan = precision.measure_plan(G.synthesis, ws, bf16=self.bf16_support is not None,
                                              should_stop=should_stop)
        finally:
            with self._lock:
                if generation == self._generation:  # not measured for a model loaded since
                    unavailable = plan is None and not precision.supports(G.synthesis)
                    self._plan = plan
                    self._plan_state = "unavailable" if unavailable else "ready" if plan is not None else "waiting"
                    self._cache_drop(lambda k: k[2])
        return plan

    def _wants_calibration(self) -> bool:
        return (self._thread is not None and self._model is not None and self._on_cpu()
                and (self._bf16_usable() or self.plain_preview) and self._plan_state == "waiting")

    def _previewing(self) -> bool:
        """Interactive requests get previews: progressive mode, a worker thread, and a preview that is faster."""
        return self.progressive and self._thread is not None and self.preview_plan is not None

    # ------------------------------------------------------------------ headless rendering

    @torch.no_grad()
    def render_sync(self, settings: RenderSettings) -> np.ndarray:
        """uint8 [H, W, 3]: exactly the image `core` produces for these settings (no cache, this thread)."""
        model = self._require_model(settings)
        return to_uint8(self._render_tensor(model.G, settings), model.G.traits.uint8_offset)[0]

    def render_frame(self, settings: RenderSettings) -> Frame:
        """The frame the UI would show for `settings` (cache + device->host path), on this thread."""
        model = self._require_model(settings)
        return self._frame_for(model, settings, self._generation, time.perf_counter())

    @torch.no_grad()
    def render_thumbnails(self, settings: RenderSettings, classes: tuple[int, ...],
                          should_stop: Callable[[], bool] | None = None) -> Thumbnails | None:
        """The current seed blend rendered in each of `classes`: uint8 [N, t, t, 3] (t = thumb size).

        Renders in small batches and gives up (returns None) as soon as `should_stop()` says a
        main-view frame is waiting, so thumbnails never delay scrubbing.
        """
        model = self._require_model(settings)
        G, dev = model.G, model.info.device
        # Small batches (one image from 64x64 up): a main-view request waits at most one batch.
        batch = int(min(4, max(1, (64 / G.img_resolution) ** 2)))
        images = []
        for start in range(0, len(classes), batch):
            if should_stop is not None and should_stop():
                return None
            chunk = classes[start:start + batch]
            ws = torch.cat([self._base_ws(G, settings, ((c, 1.0),), dev) for c in chunk])
            transform = input_transform(settings.translate, settings.rotate)
            img = G.synthesis(ws, transform=transform, noise_mode=settings.noise_mode,
                              noise_seed=settings.noise_seed)  # [n, 3, R, R]
            if img.shape[-1] > self.thumb_size:
                size = (self.thumb_size, self.thumb_size)
                img = torch.nn.functional.interpolate(img, size=size, mode="area")  # [n, 3, t, t]
            images.append(to_uint8(img, G.traits.uint8_offset))
        key = self.thumb_key(settings, classes)
        empty = np.zeros([0, self.thumb_size, self.thumb_size, 3], np.uint8)
        return Thumbnails(key=key, classes=tuple(classes), images=np.concatenate(images) if images else empty)

    def thumb_key(self, settings: RenderSettings, classes: tuple[int, ...]) -> tuple:
        info = self.info
        return (info.key if info else "", settings.seeds, settings.latent, settings.psi, settings.trunc_cutoff,
                settings.translate, settings.rotate, settings.noise_mode, settings.noise_seed, tuple(classes))

    # ------------------------------------------------------------------ asynchronous API (UI thread)

    def request(self, settings: RenderSettings, interactive: bool = False) -> None:
        """Ask for a frame; a cached one is ready at once, otherwise the worker renders the newest request.

        `interactive`: the input is moving (a drag, an animation): a preview is enough for now, and the
        exact frame follows once the input rests (progressive refinement).
        """
        now = time.perf_counter()
        model = self._model
        with self._lock:
            self._seq += 1
            seq = self._seq
            self._refine = None  # a newer request supersedes the refinement of an older one
            previewing = self._previewing()
            if model is not None:
                hit = self._cache_get(model.info.key, settings, False)
                preview_hit = None if hit is not None or not previewing else \
                    self._cache_get(model.info.key, settings, True)
                if hit is not None or preview_hit is not None:
                    if self._pending.pop("frame", None) is not None:
                        self.stats["dropped"] += 1  # an older request is now stale
                    self._publish(replace(hit or preview_hit, generation=self._generation, cached=True,
                                          requested_at=now, started_at=now, finished_at=now), seq)
                    self.stats["cache_hits"] += 1
                    if hit is not None:
                        return
                    # A cached preview is on screen now; the exact frame follows (at rest, if interactive).
                    job = _Job("refine", self._generation, settings, now, seq)
                    if interactive:
                        self._schedule_refine(job, now)
                        return
                    self._submit(replace(job, kind="frame"))
                    return
        self._submit(_Job("frame", self._generation, settings, now, seq, preview=interactive and previewing))

    def request_thumbnails(self, settings: RenderSettings, classes: tuple[int, ...]) -> None:
        self._submit(_Job("thumbs", self._generation, (settings, tuple(classes))))

    def take_frame(self) -> Frame | None:
        """The newest finished frame of the current model (None if nothing new since the last call)."""
        with self._lock:
            frame, self._frame = self._frame, None
            if frame is not None and frame.generation != self._generation:
                self.stats["stale"] += 1
                return None
            return frame

    def has_frame(self) -> bool:
        """A frame is waiting for `take_frame` (cheap: the UI loop asks every frame)."""
        return self._frame is not None

    def take_thumbnails(self) -> Thumbnails | None:
        with self._lock:
            thumbs, self._thumbs = self._thumbs, None
            return thumbs

    def poll_events(self) -> list[tuple[str, object]]:
        with self._lock:
            events, self._events = self._events, []
            return events

    def busy(self) -> bool:
        """Frames are owed: requested, rendering, or an exact frame still to replace a preview."""
        with self._lock:
            return (bool(self._pending) or self._refine is not None
                    or self._working not in (None, "calibrate"))

    def rendering_main_view(self) -> bool:
        """The worker is rendering a main-view frame: a requested one or the exact refinement of a preview
        (not thumbnails). The UI draws less meanwhile (cheap: the UI loop asks every frame)."""
        return self._working in ("frame", "refine")

    def wait_idle(self, timeout: float) -> bool:
        """Block until no frame is owed (see `busy`); False on time-out. For tests and benchmarks."""
        deadline = time.perf_counter() + timeout
        with self._lock:
            while self.busy():
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
        return True

    def close(self) -> None:
        self.compiled.stop()
        with self._lock:
            self._stop = True
            self._remove_hooks()
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def cache_info(self) -> dict:
        with self._lock:
            return {"entries": len(self._cache), "mb": self._cache_used / 2**20}

    # ------------------------------------------------------------------ worker

    def _submit(self, job: _Job) -> None:
        with self._lock:
            if job.kind in self._pending:
                self.stats["dropped"] += 1  # latest request wins: the older one was never started
            self._pending[job.kind] = job
            self._lock.notify_all()
        if self._thread is None:  # synchronous mode (tests, benchmarks without threads)
            self._work_once()

    def _run(self) -> None:
        while True:
            with self._lock:
                while True:
                    if self._stop:
                        return
                    now = time.perf_counter()
                    if self._pending or (self._refine is not None and now >= self._refine_at):
                        break
                    if self._wants_calibration():
                        break
                    self._lock.wait(None if self._refine is None else self._refine_at - now)
            self._work_once()

    def _next_job(self) -> _Job | None:
        """Under the lock: a model load first, then the main view, its refinement, thumbnails, measuring."""
        for kind in ("load", "frame"):
            if kind in self._pending:
                return self._pending.pop(kind)
        if self._refine is not None and time.perf_counter() >= self._refine_at:
            job, self._refine = self._refine, None
            return job
        if "thumbs" in self._pending:
            return self._pending.pop("thumbs")
        if self._wants_calibration():
            return _Job("calibrate", self._generation, None)
        return None

    def _schedule_refine(self, job: _Job, requested_at: float) -> None:
        """Under the lock: render the exact frame of `job` once the input rested `rest_s` since `requested_at`."""
        self._refine = replace(job, kind="refine", preview=False)
        self._refine_at = requested_at + self.rest_s
        self._lock.notify_all()

    def _publish(self, frame: Frame, seq: int) -> bool:
        """Under the lock: hand `frame` to the UI unless a newer one was handed out (or it is this request's
        preview after its exact frame). True when published."""
        newer = seq > self._published_seq
        refines = seq == self._published_seq and self._published_preview and not frame.preview
        if not (newer or refines):
            return False
        self._frame = frame
        self._published_seq, self._published_preview = seq, frame.preview
        if self.on_frame is not None:
            self.on_frame()
        return True

    def _work_once(self) -> None:
        with self._lock:
            job = self._next_job()
            if job is None:
                return
            self._working, self._working_seq = job.kind, job.seq
            generation, model = self._generation, self._model
        try:
            if job.kind == "load":
                path, device = job.payload
                info = self.load(path, device)
                self._post("loaded", info)
                return
            if job.generation != generation or model is None:
                with self._lock:
                    self.stats["stale"] += 1  # requested before a model change: ignore
                return
            if job.kind == "calibrate":
                def frame_waiting() -> bool:
                    return bool(self._pending) or self._stop

                self.calibrate_preview(should_stop=frame_waiting)
            elif job.kind in ("frame", "refine"):
                try:
                    frame = self._frame_for(model, job.payload, job.generation, job.requested_at, job.preview)
                except _Interrupted:
                    with self._lock:
                        self.stats["interrupted"] += 1
                    return
                with self._lock:
                    # Only the current model's frames, and never one older than a frame already handed out.
                    if frame.generation != self._generation:
                        self.stats["stale"] += 1  # the model changed while it rendered
                    elif self._publish(frame, job.seq) and frame.preview and job.seq == self._seq:
                        self._schedule_refine(job, job.requested_at)
            else:
                settings, classes = job.payload
                def frame_waiting() -> bool:
                    return "frame" in self._pending

                thumbs = self.render_thumbnails(settings, classes, should_stop=frame_waiting)
                with self._lock:
                    if thumbs is None:  # interrupted by a main-view request: retry after it
                        self._pending.setdefault("thumbs", job)
                    elif job.generation == self._generation:
                        self._thumbs = thumbs
        except SGXLError as e:
            self._post("error", str(e))
        except Exception as e:  # keep the app alive; the status bar shows what went wrong
            self._post("error", f"render failed: {type(e).__name__}: {e}")
        finally:
            with self._lock:
                self._working = None
                self._lock.notify_all()  # wait_idle

    def _post(self, kind: str, payload: object) -> None:
        with self._lock:
            self._events.append((kind, payload))

    # ------------------------------------------------------------------ rendering

    def _require_model(self, settings: RenderSettings) -> _Model:
        model = self._model
        if model is None:
            raise SGXLError("no model is loaded: open a checkpoint first")
        if settings.ckpt and settings.ckpt != model.info.key:
            raise SGXLError("these settings belong to another checkpoint than the one loaded")
        return model

    def _frame_for(self, model: _Model, settings: RenderSettings, generation: int,
                   requested_at: float, preview: bool = False) -> Frame:
        """The exact frame of `settings`, or with `preview` the preview (exact when no preview plan is usable)."""
        t0, cpu0 = time.perf_counter(), time.thread_time()
        hit = self._cache_get(model.info.key, settings, False)
        plan = self.preview_plan if preview else None
        if hit is None and plan is not None:
            hit = self._cache_get(model.info.key, settings, True)
        if hit is not None:
            self.stats["cache_hits"] += 1
            return replace(hit, generation=generation, cached=True, requested_at=requested_at, started_at=t0,
                           finished_at=t0)
        compiled = self.compiled.run_for(generation) if plan is None and not settings.layer else None
        with torch.no_grad(), precision.running(plan):
            img = self._render_tensor(model.G, settings, compiled)  # [1, 3, H, W] on the model's device
            offset = model.G.traits.uint8_offset if not settings.layer else 127.5  # the family's official rounding
        rgba, device_rgba = self._to_host_rgba(img, offset)
        ms = (time.perf_counter() - t0) * 1000
        frame = Frame(settings=settings, generation=generation, rgba=rgba, render_ms=ms,
                      render_cpu_ms=(time.thread_time() - cpu0) * 1000, preview=plan is not None,
                      compiled=compiled is not None,
                      requested_at=requested_at, started_at=t0, finished_at=time.perf_counter(),
                      device_rgba=device_rgba)
        self.stats["previews" if frame.preview else "renders"] += 1
        self.stats["compiled"] += frame.compiled
        self.stats["last_preview_ms" if frame.preview else "last_render_ms"] = ms
        self._cache_put(model.info.key, settings, frame)
        return frame

    def _render_tensor(self, G: torch.nn.Module, s: RenderSettings,
                       compiled: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor] | None = None
                       ) -> torch.Tensor:
        """[1, 3, H, W] (or a layer's image); `compiled`: the compiled synthesis to run instead of G.synthesis."""
        dev = next(G.parameters()).device
        _validate(G, s)
        ws = self._base_ws(G, s, s.classes, dev)  # [1, num_ws, w_dim]
        if s.mix_layers and s.mix_seed is not None:
            ws_b = ws_for(G, ((s.mix_seed, 1.0),), s.mix_classes or s.classes, s.psi, dev, s.trunc_cutoff)
            ws = style_mix(ws, ws_b, s.mix_layers)
        transform = input_transform(s.translate, s.rotate)
        noise = {"noise_mode": s.noise_mode, "noise_seed": s.noise_seed}
        if not s.layer:
            if compiled is not None:
                return compiled(ws, transform)
            return G.synthesis(ws, transform=transform, **noise)  # [1, 3, H, W]
        for name, x in G.synthesis.iter_layers(ws, transform, **noise):
            if name == s.layer:
                return layer_image(x, s.channel, s.layer_view)
        raise UserInputError(f"this model has no layer {s.layer!r}")

    def _base_ws(self, G: torch.nn.Module, s: RenderSettings, classes: Weights, dev: torch.device | str
                 ) -> torch.Tensor:
        """[1, num_ws, w_dim] before style mixing: the seed blend, or the registered latent moved to `classes`."""
        if not s.latent:
            return ws_for(G, s.seeds, classes, s.psi, dev, s.trunc_cutoff)
        lat = self.latent(s.latent)
        if lat is None:
            raise UserInputError(f"no latent {s.latent!r} is registered")
        if tuple(lat.ws.shape[1:]) != (G.num_ws, G.w_dim):
            raise UserInputError(f"the latent {s.latent!r} has ws of shape {tuple(lat.ws.shape[1:])}, this model "
                                 f"needs ({G.num_ws}, {G.w_dim})")
        ws = latent_ws(G, lat, classes, s.psi, dev, s.trunc_cutoff)
        t = sum(w for _, w in s.seeds)  # seeds next to a latent are blended into it (interpolation to seed B)
        if t > 0:
            seeds = tuple((seed, w / t) for seed, w in s.seeds)
            ws = (1 - t) * ws + t * ws_for(G, seeds, classes, s.psi, dev, s.trunc_cutoff)
        return ws

    @staticmethod
    def _to_host_rgba(img: torch.Tensor, offset: float = 127.5) -> tuple[np.ndarray, torch.Tensor | None]:
        """[1, C, H, W] in [-1, 1] on the model's device -> (uint8 [H, W, 4] numpy, alpha 255; the same on the
        GPU when rendered with CUDA, for CUDA-GL interop in explorer/gl_frames.py, else None).

        The quantisation is `core.sampling.to_uint8`'s arithmetic (the shown image equals the saved
        one), written straight into the RGBA buffer: one pass, no float copy of the frame. On CUDA it
        all happens on the GPU, then one non-blocking copy into a *fresh* pinned host buffer (torch's
        caching host allocator makes that cheap) that the worker thread - never the UI thread - waits
        for (so the GPU tensor is finished too when the UI gets it). A fresh buffer per frame matters
        because the UI may still show (or upload from) the last one: refilling it would tear.
        """
        x = img[0]  # [C, H, W]
        if x.shape[0] == 1:
            x = x.expand(3, -1, -1)  # grayscale
        h, w = x.shape[-2:]
        x = (x[:3].to(torch.float32) + 1) * 127.5  # core.sampling.to_uint8's arithmetic, bit for bit
        if offset != 127.5:  # the generator family's official rounding (GeneratorTraits.uint8_offset)
            x = x + (offset - 127.5)
        rgba = torch.empty([h, w, 4], dtype=torch.uint8, device=x.device)
        rgba[..., 3] = 255
        rgba[..., :3] = x.clamp_(0, 255).permute(1, 2, 0)
        if not rgba.is_cuda:
            return rgba.numpy(), None
        host = torch.empty(rgba.shape, dtype=torch.uint8, pin_memory=True)
        host.copy_(rgba, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        done.synchronize()
        return host.numpy(), rgba

    # ------------------------------------------------------------------ cache

    def _cache_get(self, key: str, settings: RenderSettings, preview: bool = False) -> Frame | None:
        with self._lock:
            frame = self._cache.get((key, settings, preview))
            if frame is not None:
                self._cache.move_to_end((key, settings, preview))
            return frame

    def _cache_put(self, key: str, settings: RenderSettings, frame: Frame) -> None:
        with self._lock:
            ck = (key, settings, frame.preview)
            if ck in self._cache:
                return
            self._cache[ck] = frame
            self._cache_used += frame.rgba.nbytes
            while self._cache_used > self.cache_bytes and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._cache_used -= old.rgba.nbytes

    def _cache_drop(self, which: Callable[[tuple[str, RenderSettings, bool]], bool]) -> None:
        with self._lock:
            for key in [k for k in self._cache if which(k)]:
                self._cache_used -= self._cache.pop(key).rgba.nbytes


def _validate(G: torch.nn.Module, s: RenderSettings) -> None:
    if not s.seeds and not s.latent:
        raise UserInputError("no seed given")
    for seed, _ in s.seeds + (((s.mix_seed, 1.0),) if s.mix_seed is not None else ()):
        if not 0 <= seed <= MAX_SEED:
            raise UserInputError(f"seed {seed} is out of range 0..{MAX_SEED}")
    for idx, _ in s.classes + s.mix_classes:
        if not 0 <= idx < G.c_dim:
            raise UserInputError(f"class {idx} is out of range: this model has classes 0..{G.c_dim - 1}")
    if G.c_dim > 0 and not s.classes:
        raise UserInputError("this model is class-conditional: choose a class")
    for layer in s.mix_layers:
        if not 0 <= layer < G.num_ws:
            raise UserInputError(f"style-mix layer {layer} is out of range 0..{G.num_ws - 1}")
    traits = G.traits
    if not s.transform_is_identity and not traits.has_input_transform:
        raise UserInputError(f"this {traits.label} model has no Fourier-feature input to translate or rotate")
    if s.noise_mode not in NOISE_MODES:
        raise UserInputError(f"unknown noise mode {s.noise_mode!r}; use one of {', '.join(NOISE_MODES)}")
    if s.trunc_cutoff is not None and not 0 <= s.trunc_cutoff <= G.num_ws:
        raise UserInputError(f"the truncation cutoff must be within 0..{G.num_ws} (this model has {G.num_ws} ws)")


def class_vector(G: torch.nn.Module, classes: Weights, batch: int,
                 device: torch.device | str) -> torch.Tensor | None:
    """Sparse class weights -> float [batch, c_dim] (the mapping accepts blends); None if unconditional."""
    if G.c_dim == 0:
        return None
    c = torch.zeros([G.c_dim], dtype=torch.float32)
    for idx, w in classes:
        c[idx] += w
    return c.unsqueeze(0).repeat(batch, 1).to(device)


def ws_for(G: torch.nn.Module, seeds: Weights, classes: Weights, psi: float, device: torch.device | str,
           cutoff: int | None = None) -> torch.Tensor:
    """[1, num_ws, w_dim]: the W blend of `seeds` in the class blend `classes`, truncated by `psi` (first `cutoff`).

    One seed in one class is literally `core.sampling.ws_from_seeds` (the same w as `sgxl generate`,
    bit for bit; the image too when generate renders that seed alone: in a larger batch float rounding
    may move a pixel by one level); blends map every seed with the blended class input,
    truncate each toward the blended class centre (`c @ w_avg`) and average in W.
    """
    if len(seeds) == 1 and seeds[0][1] == 1.0 and len(classes) <= 1 and all(w == 1.0 for _, w in classes):
        class_idx = classes[0][0] if classes else None
        return ws_from_seeds(G, [seeds[0][0]], class_idx if G.c_dim else None, psi, device, cutoff)
    z = torch.cat([z_from_seed(s, G.z_dim) for s, _ in seeds]).to(device)  # [S, z_dim]
    c = class_vector(G, classes, len(seeds), device)  # [S, c_dim] or None
    ws = truncate(G, G.mapping(z, c), c, psi, cutoff)  # [S, num_ws, w_dim]
    weights = torch.tensor([w for _, w in seeds], dtype=torch.float32, device=ws.device)
    return (ws * weights[:, None, None]).sum(dim=0, keepdim=True)  # [1, num_ws, w_dim]


def latent_ws(G: torch.nn.Module, lat: Latent, classes: Weights, psi: float, device: torch.device | str,
              cutoff: int | None = None) -> torch.Tensor:
    """A registered latent in the class blend `classes`, truncated by `psi`: [1, num_ws, w_dim].

    Class change by offset transfer (core/inversion/edit.py `class_swap`): w - w_avg[src] + c @ w_avg, so
    the latent keeps what it adds to its own class's typical image; then truncation toward c @ w_avg,
    the same centre the seed path truncates to. In its own class at psi = 1 this is the latent itself.
    """
    ws = lat.ws.to(device)
    if G.c_dim == 0:
        centre = G.mapping.mean_w(None)  # [w_dim]
    else:
        c = class_vector(G, classes, 1, device)  # [1, c_dim]
        centre = G.mapping.class_w_avg(c)[0]  # [w_dim]: c @ w_avg (StyleGAN2/3: their one w_avg)
        src = lat.class_idx if lat.class_idx is not None else 0
        if not (len(classes) == 1 and classes[0] == (src, 1.0)):  # exactly its own class: no arithmetic at all
            ws = ws - G.mapping.mean_w(src) + centre
    if psi != 1.0 and cutoff != 0:
        n = ws.shape[1] if cutoff is None else cutoff
        ws = torch.cat([centre + (ws[:, :n] - centre) * psi, ws[:, n:]], dim=1)  # core.sampling.truncate's arithmetic
    return ws
