"""Edits of an inverted (or sampled) latent: class swap, interpolation, style mixing, GANSpace directions.

All edits work on ws [B, num_ws, w_dim], the coordinates a projection produces, and return new ws; G is
only read. The explorer turns each into a slider; the same calls serve the CLI and tests.

**Class swap is done in W, by offset transfer.** The class enters StyleGAN-XL's mapping *before* w (class
embedding concatenated with z), so an inverted w has no z to re-map with another class: a z-space swap would
need a second, much harder inversion through the mapping. What W offers is the per-class centre `w_avg[c]`
that truncation already pulls towards. A w is read as `w_avg[src] + offset` and moved to
`w_avg[dst] + offset`: the offset (pose, colours, layout the photo added to its class's typical image) is
kept, the class centre is exchanged. Truncation commutes with it: truncating a swapped w toward `w_avg[dst]`
equals swapping the truncated w. Fractional `t` or blended class weights give the class slider.

**GANSpace** (Härkönen et al. 2020): PCA of w over many mapped samples; the principal axes are directions
of largest variation and often act as semantic sliders. For a class-conditional model the samples are
centred per class (within-class variation, not "which class"). Directions depend only on the mapping, so the
cache key is a hash of the mapping's tensors (a PTI-tuned copy shares its original's cache entry).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from core.errors import DiskFullError
from core.networks.generator import Generator
from core.sampling import style_mix as _style_mix
from core.sampling import ws_from_seeds

CACHE_ENV = "SGXL_CACHE_DIR"

ClassTarget = int | torch.Tensor  # a class index, or class weights [c_dim] (a blend)


def _w_avg_of(G: Generator, c: ClassTarget) -> torch.Tensor:
    """The truncation centre [w_dim] of a class index or of a class blend.

    StyleGAN2/3 track one w_avg for all classes, so there every class has the same centre (a class swap
    by offset transfer then leaves the latent as it is).
    """
    w_avg = G.mapping.w_avg
    if G.c_dim == 0:
        raise ValueError("this generator is unconditional: it has no classes to swap")
    if isinstance(c, torch.Tensor) and c.is_floating_point():
        if c.shape != (G.c_dim,):
            raise ValueError(f"class weights must have shape [{G.c_dim}], got {tuple(c.shape)}")
        return G.mapping.class_w_avg(c.to(w_avg).unsqueeze(0))[0]
    c = int(c)
    if not 0 <= c < G.c_dim:
        raise ValueError(f"class {c} is out of range 0..{G.c_dim - 1}")
    return G.mapping.mean_w(c)


def class_offset(G: Generator, ws: torch.Tensor, class_idx: ClassTarget) -> torch.Tensor:
    """ws minus the class's w_avg: what the latent adds to the typical image of its class."""
    return ws - _w_avg_of(G, class_idx).to(ws)


def class_swap(G: Generator, ws: torch.Tensor, src: ClassTarget, dst: ClassTarget, t: float = 1.0) -> torch.Tensor:
    """Move ws from class `src` to class `dst` keeping its offset from the class centre (t = 1: all the way)."""
    delta = _w_avg_of(G, dst).to(ws) - _w_avg_of(G, src).to(ws)  # [w_dim]
    return ws + t * delta


def interpolate(ws_a: torch.Tensor, ws_b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Linear interpolation in W (t = 0: a, t = 1: b), e.g. between two inversions or an inversion and a sample."""
    if ws_a.shape[1:] != ws_b.shape[1:]:
        raise ValueError(f"latents of different shapes {tuple(ws_a.shape)} and {tuple(ws_b.shape)}")
    return ws_a.lerp(ws_b.to(ws_a), t)


def interpolation_path(ws_a: torch.Tensor, ws_b: torch.Tensor, frames: int) -> torch.Tensor:
    """[frames, num_ws, w_dim] from ws_a to ws_b inclusive (ws of batch 1)."""
    if frames < 2:
        raise ValueError("an interpolation path needs at least 2 frames")
    t = torch.linspace(0, 1, frames, device=ws_a.device).view(-1, 1, 1)
    return interpolate(ws_a.expand(frames, -1, -1), ws_b.expand(frames, -1, -1), t)


def sample_ws(G: Generator, seed: int, class_idx: int | None, psi: float = 1.0) -> torch.Tensor:
    """[1, num_ws, w_dim] of a seed (the same w `sgxl generate` draws), to interpolate or mix an inversion with."""
    return ws_from_seeds(G, [seed], class_idx, psi, G.mapping.w_avg.device)


def style_mix(ws: torch.Tensor, ws_other: torch.Tensor, layers: Sequence[int]) -> torch.Tensor:
    """ws with the ws of `layers` (indices into num_ws) taken from ws_other."""
    num_ws = ws.shape[1]
    if any(not 0 <= i < num_ws for i in layers):
        raise ValueError(f"style-mix layers must be within 0..{num_ws - 1}")
    return _style_mix(ws, ws_other.to(ws).expand_as(ws), layers)


# ----------------------------------------------------------------------------- GANSpace

@dataclass
class GANSpace:
    """Principal directions of w: `directions` [k, w_dim] orthonormal rows, `stdevs` [k] along each."""

    directions: torch.Tensor
    stdevs: torch.Tensor
    mean: torch.Tensor  # [w_dim] mean of the (class-centred) samples' w
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.directions.shape[0]

    def apply(self, ws: torch.Tensor, coeffs: Sequence[float] | dict[int, float],
              layers: Sequence[int] | None = None) -> torch.Tensor:
        """ws + sum_i coeffs[i] * stdevs[i] * directions[i] on `layers` (default all): slider values in sigmas."""
        items = coeffs.items() if isinstance(coeffs, dict) else enumerate(coeffs)
        delta = torch.zeros(ws.shape[-1], dtype=ws.dtype, device=ws.device)
        for i, value in items:
            if not 0 <= i < len(self):
                raise ValueError(f"GANSpace has {len(self)} directions; got index {i}")
            delta = delta + float(value) * float(self.stdevs[i]) * self.directions[i].to(ws)
        out = ws.clone()
        idx = list(range(ws.shape[1])) if layers is None else list(layers)
        out[:, idx] = out[:, idx] + delta
        return out


@torch.no_grad()
def compute_ganspace(G: Generator, num_samples: int = 10000, num_components: int = 20, seed: int = 0,
                     class_idx: int | None = None, max_classes: int = 16, batch: int = 2048) -> GANSpace:
    """PCA of mapped w. Conditional G: samples of `class_idx`, or of up to `max_classes` random classes each
    centred on its own sample mean (within-class directions)."""
    device = G.mapping.w_avg.device
    gen = torch.Generator().manual_seed(seed)
    if G.c_dim == 0 or class_idx is not None:
        groups = [class_idx if G.c_dim else None]
    else:
        n_cls = min(G.c_dim, max_classes)
        groups = torch.randperm(G.c_dim, generator=gen)[:n_cls].tolist()
    per = max(2, num_samples // len(groups))
    centred, means = [], []
    for c in groups:
        ws = []
        for start in range(0, per, batch):
            n = min(batch, per - start)
            z = torch.randn([n, G.z_dim], generator=gen).to(device)
            cls = None if c is None else torch.full([n], int(c), dtype=torch.long, device=device)
            ws.append(G.mapping(z, cls)[:, 0].double())
        w = torch.cat(ws)  # [per, w_dim]
        means.append(w.mean(dim=0))
        centred.append(w - means[-1])
    x = torch.cat(centred)  # [N, w_dim]
    k = min(num_components, x.shape[0] - 1, x.shape[1])
    _, s, vh = torch.linalg.svd(x, full_matrices=False)  # rows of vh: orthonormal principal axes, by variance
    directions = vh[:k].float().cpu()
    stdevs = (s[:k] / (x.shape[0] - 1) ** 0.5).float().cpu()
    meta = {"num_samples": int(x.shape[0]), "num_components": int(k), "seed": seed, "class_idx": class_idx,
            "classes": [c for c in groups if c is not None], "explained_variance_ratio":
            float((s[:k].square().sum() / s.square().sum()).item())}
    return GANSpace(directions, stdevs, torch.stack(means).mean(dim=0).float().cpu(), meta)


def mapping_hash(G: Generator) -> str:
    """sha256 over the mapping's tensors (names, shapes, dtypes, bytes): what GANSpace directions depend on."""
    h = hashlib.sha256()
    for name, t in sorted(G.mapping.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "sgxl")


def ganspace_cache_path(G: Generator, cache_dir: str | Path | None = None, num_samples: int = 10000,
                        num_components: int = 20, seed: int = 0, class_idx: int | None = None) -> Path:
    cls = "all" if class_idx is None else class_idx
    key = f"{mapping_hash(G)[:24]}-n{num_samples}-k{num_components}-s{seed}-c{cls}"
    return Path(cache_dir or default_cache_dir()) / "ganspace" / f"{key}.safetensors"


def ganspace_directions(G: Generator, cache_dir: str | Path | None = None, num_samples: int = 10000,
                        num_components: int = 20, seed: int = 0, class_idx: int | None = None) -> GANSpace:
    """GANSpace directions of G, read from the cache when computed before (same mapping, same settings)."""
    from safetensors import safe_open
    from safetensors.torch import save as st_save

    from core.io.files import atomic_write_bytes

    path = ganspace_cache_path(G, cache_dir, num_samples, num_components, seed, class_idx)
    if path.is_file():
        try:
            with safe_open(str(path), framework="pt") as f:
                tensors = {k: f.get_tensor(k) for k in ("directions", "stdevs", "mean")}
                meta = json.loads((f.metadata() or {}).get("meta", "{}"))
            return GANSpace(tensors["directions"], tensors["stdevs"], tensors["mean"], {**meta, "cached": str(path)})
        except Exception:  # a damaged cache entry is recomputed, never trusted
            pass
    space = compute_ganspace(G, num_samples, num_components, seed, class_idx)
    data = st_save({"directions": space.directions.contiguous(), "stdevs": space.stdevs.contiguous(),
                    "mean": space.mean.contiguous()}, metadata={"meta": json.dumps(space.meta)})
    try:
        atomic_write_bytes(path, data)
    except (OSError, DiskFullError):  # a read-only or full cache disk must not stop the edit
        pass
    return space
