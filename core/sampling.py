"""Seeds -> latents -> images: the one sampling path shared by the CLI, the explorer and tests.

Same seed, same image as the official tools: z = `np.random.RandomState(seed).randn(1, z_dim)`,
truncation toward the class's `w_avg` on all ws (one w_avg for StyleGAN2/3; with a cutoff, on the first N ws
only: the official `truncation_cutoff`), uint8 = `(x * 127.5 + offset)` clamped to 0..255 and truncated, offset
127.5 for StyleGAN-XL (its gen_images.py: `(x + 1) * 127.5`) and 128 for StyleGAN2/3 (NVlabs gen_images.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from core.errors import UserInputError
from core.networks.generator import Generator


def z_from_seed(seed: int, z_dim: int) -> torch.Tensor:
    """[1, z_dim] float32 latent of `seed` (official `get_w_from_seed`)."""
    return torch.from_numpy(np.random.RandomState(seed).randn(1, z_dim)).to(torch.float32)


def class_input(G: Generator, class_idx: int | None, batch: int, device: torch.device | str) -> torch.Tensor | None:
    """LongTensor [batch] of `class_idx` for a conditional G, None for an unconditional one."""
    if G.c_dim == 0:
        return None
    if class_idx is None or not 0 <= class_idx < G.c_dim:
        raise ValueError(f"choose a class between 0 and {G.c_dim - 1}")
    return torch.full([batch], int(class_idx), dtype=torch.long, device=device)


def truncate(G: Generator, w: torch.Tensor, c: torch.Tensor | None, psi: float, cutoff: int | None = None
             ) -> torch.Tensor:
    """`w_avg[class] + (w - w_avg[class]) * psi` on the first `cutoff` ws (all of them when None).

    The cutoff is the official mappings' `truncation_cutoff` (StyleGAN2/3, StyleGAN-XL, and the StyleGAN3
    visualizer's "cutoff" slider): ws from index `cutoff` on keep their untruncated value, so psi tames
    only the coarse layers that those ws drive. 0 truncates nothing, num_ws everything.
    """
    num_ws = w.shape[1]
    if cutoff is not None and not 0 <= cutoff <= num_ws:
        raise UserInputError(f"the truncation cutoff must be within 0..{num_ws} (this model has {num_ws} ws), "
                             f"got {cutoff}")
    if psi == 1 or cutoff == 0:
        return w
    c_weights = G.mapping.class_weights(c, w.shape[0], w.device)
    w_avg = G.mapping.class_w_avg(c_weights).unsqueeze(1)  # [B or 1, 1, w_dim]
    if cutoff is None or cutoff == num_ws:
        return w_avg + (w - w_avg) * psi
    out = w.clone()
    out[:, :cutoff] = w_avg + (w[:, :cutoff] - w_avg) * psi  # the same arithmetic on the truncated part
    return out


@torch.no_grad()
def ws_from_seeds(
    G: Generator, seeds: Sequence[int], class_idx: int | None, psi: float = 1.0, device: str | torch.device = "cpu",
    cutoff: int | None = None,
) -> torch.Tensor:
    """[len(seeds), num_ws, w_dim] latents for `seeds` in class `class_idx`, truncated by `psi` (first `cutoff` ws)."""
    z = torch.cat([z_from_seed(s, G.z_dim) for s in seeds]).to(device)
    c = class_input(G, class_idx, len(seeds), device)
    return truncate(G, G.mapping(z, c), c, psi, cutoff)


def input_transform(translate: tuple[float, float], rotate_deg: float) -> torch.Tensor | None:
    """3x3 transform for `G.synthesis(ws, transform=...)`; None for the identity.

    The synthesis input expects the *inverse* of the wanted image transform (StyleGAN3 Sec. 3.1:
    the Fourier features are sampled through it), so build rotate+translate and invert it.
    """
    if tuple(translate) == (0.0, 0.0) and rotate_deg == 0.0:
        return None
    a = math.radians(rotate_deg)
    m = np.array([[math.cos(a), math.sin(a), translate[0]],
                  [-math.sin(a), math.cos(a), translate[1]],
                  [0.0, 0.0, 1.0]])
    return torch.from_numpy(np.linalg.inv(m)).to(torch.float32)  # [3, 3]


def style_mix(ws_a: torch.Tensor, ws_b: torch.Tensor, layers: Sequence[int]) -> torch.Tensor:
    """ws_a with the ws of `layers` (indices into num_ws) taken from ws_b."""
    out = ws_a.clone()
    idx = list(layers)
    if idx:
        out[:, idx] = ws_b[:, idx]
    return out


def to_uint8(img: torch.Tensor, offset: float = 127.5) -> np.ndarray:
    """[B, 3, H, W] in about [-1, 1] -> uint8 [B, H, W, 3]: `x * 127.5 + offset`, clamped, truncated.

    `offset` is the generator's `traits.uint8_offset`: 127.5 as StyleGAN-XL's tools round, 128 as NVlabs'
    StyleGAN2/3 tools do, so each family's images equal its official tools' bytes.
    """
    x = (img.detach().to(torch.float32) + 1) * 127.5  # StyleGAN-XL's arithmetic, kept bit for bit
    if offset != 127.5:
        x = x + (offset - 127.5)
    x = x.clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def image_grid(images: np.ndarray, cols: int | None = None) -> np.ndarray:
    """uint8 [B, H, W, C] -> one uint8 [rows*H, cols*W, C] grid, row-major."""
    b, h, w, ch = images.shape
    cols = cols or int(np.ceil(np.sqrt(b)))
    rows = int(np.ceil(b / cols))
    grid = np.zeros([rows * h, cols * w, ch], dtype=np.uint8)
    for i in range(b):
        r, c = divmod(i, cols)
        grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = images[i]
    return grid
