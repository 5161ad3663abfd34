"""The explorer's UI state: what the widgets hold, turned into one `RenderSettings` per tick.

Panels edit this object (and nothing else); `ExplorerState.settings(info)` is the only place
that turns UI values into render settings, so the headless tests, the GUI and the renderer all
agree on what a given set of widget values means.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from explorer.renderer import MAX_SEED, ModelInfo, RenderSettings, blend_weights, grid_seed_weights

SEED_GRID_STRIDE = 1000  # the 2-D pad's y axis steps seeds by this much (x steps by 1)


@dataclass
class ExplorerState:
    # Latent (seed, 2-D pad offset, interpolation to a second seed, truncation).
    seed: int = 0
    offset: tuple[float, float] = (0.0, 0.0)  # fractional position on the seed grid (drag pad)
    seed_b: int = 1
    lerp_t: float = 0.0  # 0 = seed (+ pad), 1 = seed_b
    animate: bool = False
    anim_speed: float = 0.25  # interpolation round trips per second
    psi: float = 1.0
    trunc_cutoff: int | None = None  # psi on the first N ws only (the official truncation_cutoff); None = all ws
    latent: str = ""  # a latent registered in the renderer (an inverted photo) instead of the seeds; "" = seeds
    # Class (selected class, blend toward a second class).
    class_idx: int = 0
    class_b: int = 0
    class_t: float = 0.0
    class_filter: str = ""
    # Style mixing.
    mix_enabled: bool = False
    mix_seed: int = 1
    mix_class: int | None = None  # None = the main class blend
    mix_layers: set[int] = field(default_factory=set)
    # Input transform (models with a Fourier-feature input: StyleGAN-XL, StyleGAN3).
    translate: tuple[float, float] = (0.0, 0.0)
    rotate: float = 0.0
    # Noise inputs (StyleGAN2): const = the stored noise (as the official tools), random = from noise_seed, none.
    noise_mode: str = "const"
    noise_seed: int = 0
    # Layer view.
    layer: str = ""  # "" = output image
    channel: int = 0
    layer_view: str = "channels"

    def reset_for_model(self, info: ModelInfo) -> None:
        """Keep what still makes sense for a new model (seed, psi), clamp the rest."""
        c = max(info.c_dim, 1)
        self.class_idx = min(self.class_idx, c - 1)
        self.class_b = min(self.class_b, c - 1)
        if self.mix_class is not None and self.mix_class >= info.c_dim:
            self.mix_class = None
        self.mix_layers = {i for i in self.mix_layers if i < info.num_ws}
        if self.trunc_cutoff is not None and self.trunc_cutoff >= info.num_ws:
            self.trunc_cutoff = None  # "all ws" (the default) carries over to a model with more ws
        if self.layer and self.layer not in info.layer_names:
            self.layer = ""
        self.channel = 0

    def seed_weights(self) -> tuple[tuple[int, float], ...]:
        a = grid_seed_weights(self.seed, self.offset, SEED_GRID_STRIDE)
        if self.lerp_t <= 0.0:
            return a
        b = ((int(self.seed_b) % (MAX_SEED + 1), 1.0),)
        if self.lerp_t >= 1.0:
            return b
        return blend_weights(a, b, self.lerp_t)

    def latent_blend(self) -> tuple[tuple[int, float], ...]:
        """With an inverted latent shown, the "seed -> seed B" slider interpolates the latent toward seed B."""
        t = min(max(self.lerp_t, 0.0), 1.0)
        return ((int(self.seed_b) % (MAX_SEED + 1), t),) if t > 0 else ()

    def class_weights(self, info: ModelInfo | None) -> tuple[tuple[int, float], ...]:
        if info is not None and info.c_dim == 0:
            return ()
        a = ((self.class_idx, 1.0),)
        if self.class_t <= 0.0 or self.class_b == self.class_idx:
            return a
        if self.class_t >= 1.0:
            return ((self.class_b, 1.0),)
        return blend_weights(a, ((self.class_b, 1.0),), self.class_t)

    def settings(self, info: ModelInfo | None) -> RenderSettings:
        """The render settings these widget values stand for (the cache key of the frame)."""
        mixing = self.mix_enabled and bool(self.mix_layers)
        mix_classes: tuple[tuple[int, float], ...] = ()
        if mixing and self.mix_class is not None and (info is None or info.c_dim > 0):
            mix_classes = ((self.mix_class, 1.0),)
        # Controls a model does not have leave the settings (the cache key) at their defaults.
        transform = info is None or info.has_input_transform
        noise = info is not None and info.has_noise
        return RenderSettings(
            ckpt=info.key if info else "",
            seeds=self.latent_blend() if self.latent else self.seed_weights(),
            latent=self.latent,
            classes=self.class_weights(info),
            psi=float(self.psi),
            trunc_cutoff=self.trunc_cutoff,
            mix_seed=int(self.mix_seed) if mixing else None,
            mix_classes=mix_classes,
            mix_layers=tuple(sorted(self.mix_layers)) if mixing else (),
            translate=(float(self.translate[0]), float(self.translate[1])) if transform else (0.0, 0.0),
            rotate=float(self.rotate) if transform else 0.0,
            noise_mode=self.noise_mode if noise else "const",
            noise_seed=int(self.noise_seed) if noise and self.noise_mode == "random" else 0,
            layer=self.layer,
            channel=int(self.channel) if self.layer else 0,
            layer_view=self.layer_view if self.layer else "channels",
        )
