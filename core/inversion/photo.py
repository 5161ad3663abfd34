"""Photos -> inversion targets: read with Pillow, any mode -> RGB, square crop, resize to the model resolution.

Odd inputs are handled or refused with a sentence a user can act on: EXIF rotation is applied; grayscale,
palette, CMYK and 16-bit images are converted; transparent pixels are composited onto white (what a viewer
shows, where a plain RGB convert would expose whatever colour hides under alpha 0); large JPEGs are decoded
at reduced size (Pillow's `draft`); images smaller than the model are upsampled with a note; images
below 8 px, Pillow's decompression-bomb limit, or files that are not images are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import UserInputError

MIN_SIDE = 8  # below this there is nothing to invert

Box = tuple[int, int, int]  # (left, top, size) of a square crop, in the photo's (EXIF-rotated) pixels


@dataclass
class Photo:
    """A photo prepared as an inversion target."""

    target: torch.Tensor  # [1, 3, R, R] float in [-1, 1] (the generator's range)
    original_size: tuple[int, int]  # (width, height) as decoded and EXIF-rotated (big JPEGs: reduced, see notes)
    mode: str  # Pillow mode of the file, e.g. "RGB", "L", "RGBA", "CMYK"
    box: Box  # the square that was cropped, in `original_size` pixels
    notes: list[str] = field(default_factory=list)  # what was done that a user may want to know

    def to_uint8(self) -> np.ndarray:
        """[R, R, 3] uint8 of the target (exactly what the inversion compares against, rounded)."""
        x = ((self.target[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255)
        return x.to(torch.uint8).cpu().numpy()


def photo_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of the photo as it will be used (after EXIF rotation), read from its header only."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            orientation = img.getexif().get(0x0112, 1)
    except FileNotFoundError:
        raise UserInputError(f"no photo at {path}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise UserInputError(f"{Path(path).name} is not an image file Pillow can read ({e})") from None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)  # these EXIF orientations swap the axes


def crop_box(size: tuple[int, int], zoom: float = 1.0, centre: tuple[float, float] = (0.5, 0.5)) -> Box:
    """A square of `zoom` x the short side, centred at `centre` (fractions of width/height), kept inside."""
    width, height = size
    side = max(1, int(round(min(width, height) * min(max(zoom, 1e-3), 1.0))))
    left = int(round(centre[0] * width - side / 2))
    top = int(round(centre[1] * height - side / 2))
    return min(max(left, 0), width - side), min(max(top, 0), height - side), side


def center_crop_box(width: int, height: int) -> Box:
    """The largest centred square: (left, top, size)."""
    size = min(width, height)
    return (width - size) // 2, (height - size) // 2, size


def open_photo(path: str | Path, draft_size: int | None = None) -> Image.Image:
    """Open and fully decode an image file, turning every failure into a UserInputError.

    `draft_size`: a JPEG is decoded at 1/2, 1/4 or 1/8 scale straight from its DCT blocks when that still
    leaves at least `draft_size` pixels on each side (cheap for 50-megapixel photos).
    """
    path = Path(path)
    if not path.exists():
        raise UserInputError(f"no photo at {path}")
    if path.is_dir():
        raise UserInputError(f"{path} is a folder; give one image file")
    try:
        img = Image.open(path)
        if draft_size is not None and img.format == "JPEG":
            full = img.size
            img.draft(img.mode, (draft_size, draft_size))
            if img.size != full:
                img.info["sgxl_decoded_from"] = full
        img.load()
    except UnidentifiedImageError:
        raise UserInputError(f"{path} is not an image file Pillow can read (PNG, JPEG, WebP, ...)") from None
    except Image.DecompressionBombError:
        raise UserInputError(f"{path} has more pixels than Pillow's safety limit ({Image.MAX_IMAGE_PIXELS:,}); "
                             "downscale it first") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt data
        raise UserInputError(f"cannot decode {path}: {e}") from None
    return img


def has_alpha(img: Image.Image) -> bool:
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        return True
    return img.mode in ("P", "L", "RGB") and "transparency" in img.info


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB: alpha over white, 16-bit and float scaled to 8 bit, CMYK/palette/gray converted."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        if arr.max() > top:  # 32-bit data of unknown range: stretch what is there
            arr = (arr - arr.min()) / max(arr.max() - arr.min(), 1e-12) * top
        img = Image.fromarray((arr / top * 255).round().clip(0, 255).astype(np.uint8), "L")
    if has_alpha(img):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def prepare_photo(img: Image.Image, resolution: int, box: Box | None = None) -> Photo:
    """A decoded Pillow image -> `Photo` at `resolution`² (the explorer passes its own crop `box`)."""
    mode = img.mode
    notes: list[str] = []
    img = ImageOps.exif_transpose(img)
    width, height = img.size
    if min(width, height) < MIN_SIDE:
        raise UserInputError(f"the photo is {width}x{height} pixels; it needs at least {MIN_SIDE} on each side")
    if box is None:
        box = center_crop_box(width, height)
        if width != height:
            notes.append(f"cropped the centre {box[2]}x{box[2]} square of the {width}x{height} photo")
    left, top, size = box
    if size < MIN_SIDE or left < 0 or top < 0 or left + size > width or top + size > height:
        raise UserInputError(f"crop box {box} does not fit inside the {width}x{height} photo")
    if mode not in ("RGB", "L"):
        notes.append(f"converted the {mode} image to RGB" + (" over white" if has_alpha(img) else ""))
    if size < resolution:
        notes.append(f"upsampled the {size}x{size} crop to {resolution}x{resolution}: expect a blurry target")
    rgb = to_rgb(img.crop((left, top, left + size, top + size)))
    if rgb.size != (resolution, resolution):
        rgb = rgb.resize((resolution, resolution), Image.Resampling.LANCZOS)  # antialiased when shrinking
    arr = torch.from_numpy(np.asarray(rgb, dtype=np.float32).copy()).permute(2, 0, 1)  # [3, R, R] in 0..255
    target = (arr / 127.5 - 1).unsqueeze(0)  # [1, 3, R, R] in [-1, 1]
    return Photo(target=target, original_size=(width, height), mode=mode, box=box, notes=notes)


def load_photo(path: str | Path, resolution: int, box: Box | None = None) -> Photo:
    """Read the photo at `path` as an inversion target for a `resolution`² model.

    `box` is in the file's (EXIF-rotated) pixels; without one, the centre square is used and a big JPEG is
    decoded at reduced scale (never below twice the model resolution, so the Lanczos resize still averages).
    """
    img = open_photo(path, draft_size=2 * resolution if box is None else None)
    full = img.info.get("sgxl_decoded_from")
    photo = prepare_photo(img, resolution, box)
    if full is not None:
        photo.notes.insert(0, f"decoded the {full[0]}x{full[1]} JPEG at reduced scale ({img.size[0]}x{img.size[1]})")
    return photo
