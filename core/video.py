"""Interpolation videos: lerp in W between key seeds (and their classes), written as MP4 or GIF."""

from __future__ import annotations

import errno
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from core.errors import SGXLError, UserInputError
from core.networks.generator import Generator
from core.sampling import to_uint8, ws_from_seeds


@torch.no_grad()
def interpolation_frames(
    G: Generator, seeds: Sequence[int], classes: Sequence[int | None], psi: float, frames_between: int,
    loop: bool = False, batch: int = 8, noise_mode: str = "const", noise_seed: int = 0, cutoff: int | None = None,
) -> np.ndarray:
    """uint8 [N, H, W, 3]: linear interpolation in W from each key (seed, class) to the next.

    Each key's w already carries its class (the class embedding enters the mapping), so lerping w
    between keys of different classes blends the classes too. `cutoff`: truncate the first N ws only.
    """
    if frames_between < 1:
        raise UserInputError("--frames must be at least 1")
    device = next(G.parameters()).device
    keys = torch.cat([ws_from_seeds(G, [s], c, psi, device, cutoff)
                      for s, c in zip(seeds, classes)])  # [K, num_ws, w_dim]
    if loop:
        keys = torch.cat([keys, keys[:1]])
    if len(keys) < 2:
        raise UserInputError("give at least two seeds to interpolate between (or use --loop)")
    path = []
    for a, b in zip(keys[:-1], keys[1:]):
        for t in torch.arange(frames_between, dtype=torch.float32) / frames_between:
            path.append(a.lerp(b, float(t)))
    if not loop:
        path.append(keys[-1])
    ws = torch.stack(path)
    noise = {"noise_mode": noise_mode, "noise_seed": noise_seed}  # StyleGAN2's noise inputs (ignored by others)
    return np.concatenate([to_uint8(G.synthesis(ws[i:i + batch], **noise), G.traits.uint8_offset)
                           for i in range(0, len(ws), batch)])


def write_video(path: Path, frames: np.ndarray, fps: int = 30) -> Path:
    """Write `frames` as .mp4 (imageio-ffmpeg) or .gif; falls back to .gif when ffmpeg is unavailable.

    Written under a temporary name and renamed when complete (core.io.files): a full disk or a failed
    encoder leaves no partial video and keeps an earlier file of the same name.
    """
    import imageio.v2 as imageio

    from core.io.files import atomic_path, atomic_write_bytes, check_video_path, disk_full_error, is_disk_full

    check_video_path(path)
    if path.suffix.lower() == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401

            with atomic_path(path) as tmp:
                # Sizes not divisible by 16 are fine for libx264 with macro_block_size=1.
                imageio.mimwrite(tmp, list(frames), fps=fps, codec="libx264", quality=8, macro_block_size=1)
                _check_complete(tmp, path, len(frames))
            return path
        except (ImportError, RuntimeError, OSError) as e:
            if is_disk_full(e):
                raise disk_full_error(path, e) from None
            for code, words in ((errno.ENOSPC, "No space left"), (errno.EFBIG, "File too large")):
                if words in str(e):  # ffmpeg died of it: imageio-ffmpeg reports a broken pipe + ffmpeg's log
                    raise disk_full_error(path, OSError(code, words)) from None
            path = path.with_suffix(".gif")
            print(f"note: cannot write MP4 ({e}); writing {path.name} instead")
    # Encoded in memory, then written in one atomic step (the GIF writer's own file handling would
    # report a failed write twice, the second time from a destructor).
    atomic_write_bytes(path, imageio.mimwrite("<bytes>", list(frames), format="GIF", duration=1000 / fps, loop=0))
    return path


def _check_complete(written: Path, path: Path, expected_frames: int) -> None:
    """imageio-ffmpeg ignores ffmpeg's exit status: a video cut short (a full disk while ffmpeg writes) would
    pass as written. Count the frames in the file (ffmpeg reads the container, no decoding) before keeping it."""
    import imageio_ffmpeg

    try:
        frames, _ = imageio_ffmpeg.count_frames_and_secs(str(written))
    except (RuntimeError, OSError, ValueError):
        frames = 0
    if frames != expected_frames:
        raise SGXLError(f"cannot write {path}: the video encoder stopped after {frames} of {expected_frames} frames "
                        "(is the disk full?); nothing was written in its place (an earlier version, if any, is "
                        "intact)")
