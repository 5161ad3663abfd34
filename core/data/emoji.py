"""`sgxl dataset --preset noto-emoji`: a labelled emoji dataset built offline from two Debian packages.

Images: Google's Noto Color Emoji font (`fonts-noto-color-emoji`, Apache-2.0), one colour bitmap per emoji.
Labels: the Unicode emoji test file (`unicode-data`: emoji-test.txt), which sorts every emoji into a group
(9 groups, e.g. "Animals & Nature") and a subgroup (about 99, e.g. "animal-mammal").

Each fully-qualified emoji is drawn with Pillow at the font's only size (109 pt -> a 136x128 bitmap), centred in a
136x136 square on a light grey background, and resized (Lanczos) to the requested resolution. The output is the
official dataset format written by `core.data.dataset_tool` (zip or folder, dataset.json with labels and class
names, atomic).

Label sets ("subgroup", the default, trains best: classes are about one kind of shape):
  subgroup  every subgroup with at least `min_class_size` emoji is a class; the smaller subgroups of a group are
            merged into one class "<group> (other)" (kept even when it stays small, so every emoji has a label)
  group     the 9 groups
  none      unlabelled
Skin-tone variants (sequences holding U+1F3FB..U+1F3FF) are left out by default: they would double the people
classes with copies that differ only in skin colour, so classes would be about colour rather than shape.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from core.data.dataset import LABELS_FILE
from core.data.writer import ConversionReport, DatasetWriter, png_bytes
from core.errors import DatasetError, UserInputError

EmojiLabels = Literal["subgroup", "group", "none"]

# Where Debian (and Ubuntu) install the two packages; module attributes so tests can point them elsewhere.
FONT_PATH = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
EMOJI_TEST_PATH = Path("/usr/share/unicode/emoji/emoji-test.txt")
FONT_PACKAGE = "fonts-noto-color-emoji"
EMOJI_TEST_PACKAGE = "unicode-data"

FONT_SIZE = 109  # the only size the bitmap font accepts; gives its native 136x128 bitmaps
CANVAS = 136  # square canvas: the 136x128 bitmap centred, 4 px above and below
BACKGROUND = (238, 238, 238)  # neutral light grey: white and black emoji parts both stay visible
SKIN_TONES = range(0x1F3FB, 0x1F400)  # Fitzpatrick modifiers U+1F3FB..U+1F3FF
OTHER_SUFFIX = " (other)"

# "1F600 ; fully-qualified # 😀 E1.0 grinning face"
_LINE = re.compile(r"^([0-9A-Fa-f ]+?)\s*;\s*([a-z-]+)\s*#\s*\S+\s+E\d+(?:\.\d+)?\s+(.*)$")


@dataclass(frozen=True)
class Emoji:
    codepoints: tuple[int, ...]
    name: str  # CLDR short name, e.g. "grinning face"
    group: str  # e.g. "Smileys & Emotion"
    subgroup: str  # e.g. "face-smiling"

    @property
    def text(self) -> str:
        return "".join(map(chr, self.codepoints))

    @property
    def has_skin_tone(self) -> bool:
        return any(c in SKIN_TONES for c in self.codepoints)

    @property
    def code(self) -> str:
        return " ".join(f"{c:04X}" for c in self.codepoints)


@dataclass
class EmojiReport(ConversionReport):
    """ConversionReport plus what is particular to the emoji preset."""

    class_counts: dict[str, int] = field(default_factory=dict)  # class name -> images written
    left_out_skin_tones: int = 0  # skin-tone variants not used (skin_tones=False)
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [super().summary()]
        if self.left_out_skin_tones:
            lines.append(f"left out {self.left_out_skin_tones} skin-tone variants (pass --skin-tones to keep them)")
        if self.class_counts:
            lines.append("images per class: " + ", ".join(f"{k} {v}" for k, v in self.class_counts.items()))
        lines.append(f"took {self.seconds:.1f} s")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- sources

def check_emoji_sources(font_path: Path | None = None, emoji_test_path: Path | None = None) -> tuple[Path, Path]:
    """-> (font, emoji-test.txt), or one DatasetError naming the apt-get command that installs what is missing."""
    font_path = Path(font_path or FONT_PATH)
    emoji_test_path = Path(emoji_test_path or EMOJI_TEST_PATH)
    missing = [(p, pkg) for p, pkg in ((font_path, FONT_PACKAGE), (emoji_test_path, EMOJI_TEST_PACKAGE))
               if not p.is_file()]
    if missing:
        files = " and ".join(str(p) for p, _ in missing)
        packages = " ".join(pkg for _, pkg in missing)
        raise DatasetError(f"the noto-emoji preset needs {files}, which is missing; install it with "
                           f"`sudo apt-get install {packages}` (Debian/Ubuntu)")
    from PIL import features

    if not features.check("raqm"):  # without it, ZWJ sequences and flags come out as several glyphs
        raise DatasetError("this Pillow has no complex text layout (libraqm), which joins emoji sequences such "
                           "as flags into one image; install FriBiDi with `sudo apt-get install libfribidi0`")
    return font_path, emoji_test_path


def parse_emoji_test(path: str | Path) -> list[Emoji]:
    """The fully-qualified emoji of an emoji-test.txt, in file (CLDR) order, with their group and subgroup."""
    group = subgroup = ""
    emoji: list[Emoji] = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read the emoji list {path}: {e}") from None
    for line in text.splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
        elif line and not line.startswith("#"):
            m = _LINE.match(line.strip())
            if m is None:
                raise DatasetError(f"{path}: cannot parse the line {line!r}")
            if m.group(2) == "fully-qualified":
                codepoints = tuple(int(c, 16) for c in m.group(1).split())
                emoji.append(Emoji(codepoints, m.group(3).strip(), group, subgroup))
    if not emoji:
        raise DatasetError(f"{path} lists no fully-qualified emoji; is it a Unicode emoji-test.txt?")
    return emoji


def assign_classes(emoji: list[Emoji], labels: EmojiLabels = "subgroup",
                   min_class_size: int = 20) -> tuple[list[str], list[int | None]]:
    """-> (class names, class index per emoji); classes in file order, each group's "(other)" after its subgroups.

    labels="none" -> ([], [None, ...]).
    """
    if labels == "none":
        return [], [None] * len(emoji)
    if labels == "group":
        keys = [e.group for e in emoji]
    elif labels == "subgroup":
        sizes = Counter((e.group, e.subgroup) for e in emoji)
        keys = [e.subgroup if sizes[e.group, e.subgroup] >= min_class_size else e.group + OTHER_SUFFIX
                for e in emoji]
    else:
        raise UserInputError(f"unknown emoji label set {labels!r}; use subgroup, group or none")
    # Order: by first appearance, but a group's "(other)" class right after that group's last kept subgroup.
    last_of_group = {e.group: i for i, e in enumerate(emoji)}
    first: dict[str, float] = {}
    for i, (e, key) in enumerate(zip(emoji, keys)):
        if key not in first:
            first[key] = last_of_group[e.group] + 0.5 if key.endswith(OTHER_SUFFIX) else i
    class_names = sorted(first, key=first.__getitem__)
    index = {c: i for i, c in enumerate(class_names)}
    return class_names, [index[k] for k in keys]


def _subset(class_of: list[int | None], max_images: int, seed: int = 0) -> list[int]:
    """A seeded subset of `max_images` indices holding every class at least once (sorted, file order)."""
    rng = np.random.RandomState(seed)
    order = [int(i) for i in rng.permutation(len(class_of))]
    chosen: list[int] = []
    seen: set[int | None] = set()
    for i in order:  # one random member of every class first ...
        if class_of[i] not in seen:
            seen.add(class_of[i])
            chosen.append(i)
    if len(chosen) > max_images:
        raise UserInputError(f"--max-images {max_images} cannot hold one image of each of the {len(chosen)} "
                             "classes; give a larger number, --labels group, or a larger --min-class-size")
    taken = set(chosen)
    chosen += [i for i in order if i not in taken][: max_images - len(chosen)]  # ... then random others
    return sorted(chosen)


# ----------------------------------------------------------------------------- rendering

def load_emoji_font(font_path: str | Path):
    from PIL import ImageFont

    try:
        return ImageFont.truetype(str(font_path), FONT_SIZE)
    except OSError as e:
        raise DatasetError(f"cannot load the emoji font {font_path} at size {FONT_SIZE}: {e}") from None


def draw_emoji(font, text: str):
    """-> RGBA PIL image [136, 136] of one emoji on a transparent background, or None when it is blank.

    Raises ValueError when the font has no single image for `text` (it would draw several glyphs side by side).
    """
    from PIL import Image, ImageDraw

    width = font.getlength(text)
    if width > CANVAS * 1.25:  # one glyph is 136 wide: the sequence was not joined into one emoji
        raise ValueError(f"drawn as {round(width / CANVAS)} glyphs")
    rgba = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))
    # The bitmap is 136x128: centre it in the square (4 px above and below).
    xy = (round((CANVAS - width) / 2), (CANVAS - 128) // 2)
    ImageDraw.Draw(rgba).text(xy, text, font=font, embedded_color=True)
    return None if rgba.getchannel("A").getextrema()[1] == 0 else rgba


def render_emoji(font, text: str, resolution: int):
    """-> RGB PIL image [resolution, resolution] of one emoji on the grey background, or None when blank."""
    from PIL import Image

    rgba = draw_emoji(font, text)
    if rgba is None:
        return None
    # Composite before resizing, so transparent edges blend with the grey, not with black.
    img = Image.alpha_composite(Image.new("RGBA", rgba.size, BACKGROUND + (255,)), rgba).convert("RGB")
    if resolution != CANVAS:
        img = img.resize((resolution, resolution), Image.LANCZOS)
    return img


# ----------------------------------------------------------------------------- building

def build_emoji_dataset(dest: str | Path, resolution: int, labels: EmojiLabels = "subgroup", min_class_size: int = 20,
                        skin_tones: bool = False, max_images: int | None = None, progress: bool = True,
                        overwrite: bool = False, font_path: str | Path | None = None,
                        emoji_test_path: str | Path | None = None) -> EmojiReport:
    """Render the Noto colour emoji into a labelled dataset at `dest` (OUT.zip, or a folder).

    Classes are decided from the emoji the font can draw (those it cannot are skipped and counted), then
    `max_images` (if given) keeps a seeded subset that still holds every class.
    """
    from tqdm import tqdm

    start = time.perf_counter()
    dest = Path(dest)
    if resolution < 4 or resolution & (resolution - 1):
        raise UserInputError(f"--res must be a power of two (4, 8, ..., 1024), got {resolution}")
    if labels not in ("subgroup", "group", "none"):
        raise UserInputError(f"unknown emoji label set {labels!r}; use subgroup, group or none")
    if min_class_size < 1:
        raise UserInputError(f"--min-class-size must be at least 1, got {min_class_size}")
    if max_images is not None and max_images <= 0:
        raise UserInputError(f"--max-images must be positive, got {max_images}")
    if dest.exists():
        if not overwrite:
            raise DatasetError(f"{dest} already exists; choose another --dest or pass --overwrite")
        if dest.is_dir() and not (dest / LABELS_FILE).is_file():
            raise DatasetError(f"{dest} is a folder that is not a converted dataset; refusing to overwrite it")
    font_path, emoji_test_path = check_emoji_sources(font_path, emoji_test_path)

    all_emoji = parse_emoji_test(emoji_test_path)
    candidates = [e for e in all_emoji if skin_tones or not e.has_skin_tone]
    font = load_emoji_font(font_path)

    # Check every emoji first: what the font cannot draw must not count towards a class size. (Drawing twice is
    # cheap, ~1 ms each; keeping every image in memory would not be at large resolutions.)
    kept: list[Emoji] = []
    skipped: Counter[str] = Counter()
    skipped_files: list[tuple[str, str]] = []
    for e in tqdm(candidates, desc="checking emoji", unit="emoji", disable=not progress):
        try:
            reason = "blank" if draw_emoji(font, e.text) is None else None
        except ValueError as err:
            reason = f"not one image ({err})"
        if reason is None:
            kept.append(e)
        else:
            skipped[reason.split(" (")[0]] += 1
            skipped_files.append((f"U+{e.code} {e.name}", reason))
    if not kept:
        raise DatasetError(f"the font {font_path} drew none of the {len(candidates)} emoji")

    class_names, class_of = assign_classes(kept, labels, min_class_size)
    chosen = list(range(len(kept))) if max_images is None or max_images >= len(kept) else \
        _subset(class_of, max_images)

    label_entries: list[list] = []
    emoji_entries: list[list[str]] = []
    dest.parent.mkdir(parents=True, exist_ok=True)
    writer = DatasetWriter(dest)
    try:
        bar = tqdm(chosen, desc=f"rendering emoji at {resolution}x{resolution}", unit="emoji",
                   disable=not progress)
        for n, i in enumerate(bar):
            name = f"{n // 1000:05d}/img{n:08d}.png"
            img = render_emoji(font, kept[i].text, resolution)
            assert img is not None  # drawn above
            writer.write(name, png_bytes(img))
            label_entries.append([name, class_of[i]])
            emoji_entries.append([name, kept[i].code, kept[i].name])
        meta = {
            "labels": label_entries if class_names else None,
            "class_names": class_names,
            # Provenance (not read by ImageDataset): which emoji each file is, and the licences.
            "source": {"preset": "noto-emoji", "font": str(font_path), "emoji_test": str(emoji_test_path),
                       "labels": labels, "min_class_size": min_class_size, "skin_tones": skin_tones,
                       "background": list(BACKGROUND),
                       "license": "images: Noto Color Emoji, Apache-2.0; labels: Unicode emoji data, "
                                  "Unicode License v3"},
            "emoji": emoji_entries,
        }
        if not class_names:
            del meta["class_names"]
        writer.write(LABELS_FILE, json.dumps(meta, indent=0, ensure_ascii=False).encode())
        writer.commit()
    except BaseException:
        writer.abort()
        raise

    counts = Counter(class_of[i] for i in chosen)
    converted = {"upscaled": len(chosen)} if resolution > CANVAS else {}
    return EmojiReport(dest=dest, resolution=resolution, num_images=len(chosen), num_source_images=len(chosen),
                       class_names=class_names, skipped=dict(skipped), converted=converted,
                       skipped_files=skipped_files,
                       class_counts={c: counts[i] for i, c in enumerate(class_names)},
                       left_out_skin_tones=len(all_emoji) - len(candidates),
                       seconds=time.perf_counter() - start)
