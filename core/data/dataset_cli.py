"""`sgxl dataset`: its arguments and what it runs (core/data/dataset_tool.py converts, core/data/emoji.py
builds the emoji preset).

The arguments live apart from the converter so that building the `sgxl` parser (`sgxl --help`) imports
neither numpy nor torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.errors import UserInputError
from core.io.files import check_writable


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", help="folder of images (one sub-folder per class, or flat)")
    parser.add_argument("--preset", choices=["noto-emoji"], default=None,
                        help="build a ready-made dataset instead of converting --source: noto-emoji = labelled "
                             "colour emoji, offline (needs apt packages fonts-noto-color-emoji and unicode-data)")
    parser.add_argument("--dest", required=True, help="output: OUT.zip, or a folder name")
    parser.add_argument("--res", type=int, required=True, help="output resolution, a power of two (e.g. 64)")
    parser.add_argument("--transform", choices=["center-crop", "resize"], default="center-crop",
                        help="center-crop (default): crop the short side; resize: squash to square")
    parser.add_argument("--labels", choices=["auto", "folders", "none", "subgroup", "group"], default="auto",
                        help="class labels from sub-folder names (auto: when there are sub-folders); with "
                             "--preset noto-emoji: subgroup (auto) or group")
    parser.add_argument("--min-class-size", type=int, default=20,
                        help="noto-emoji: smaller subgroups are merged into '<group> (other)' (default 20)")
    parser.add_argument("--skin-tones", action="store_true",
                        help="noto-emoji: keep the skin-tone variants (left out by default)")
    parser.add_argument("--mirror", action="store_true", help="also store a mirrored copy of every image")
    parser.add_argument("--max-images", type=int, default=None, help="convert at most N source images")
    parser.add_argument("--min-size", type=int, default=None,
                        help="skip images whose short side is below this (default: res / 2)")
    parser.add_argument("--overwrite", action="store_true", help="replace --dest if it exists")


def check_dest(dest: str) -> None:
    """--dest must be writable before any image is read: a zip file, or a folder (replaced whole with --overwrite)."""
    path = Path(dest)
    check_writable(path, folder=path.is_dir())


def run_dataset_command(args: argparse.Namespace) -> int:
    if args.preset is not None:
        if args.source is not None:
            raise UserInputError("give either --source or --preset, not both")
        if args.labels == "folders" or args.mirror or args.transform != "center-crop" or args.min_size is not None:
            raise UserInputError("--preset noto-emoji takes --labels subgroup|group|none, not folders, and no "
                                 "--mirror, --transform or --min-size")
        check_dest(args.dest)
        from core.data.emoji import build_emoji_dataset

        report = build_emoji_dataset(args.dest, args.res, labels="subgroup" if args.labels == "auto" else args.labels,
                                     min_class_size=args.min_class_size, skin_tones=args.skin_tones,
                                     max_images=args.max_images, progress=True, overwrite=args.overwrite)
        print(report.summary())
        return 0
    if args.source is None:
        raise UserInputError("give --source (a folder of images) or --preset noto-emoji")
    if args.labels in ("subgroup", "group"):
        raise UserInputError(f"--labels {args.labels} is for --preset noto-emoji; a --source folder takes "
                             "auto, folders or none")
    check_dest(args.dest)
    from core.data.dataset_tool import convert_dataset

    report = convert_dataset(args.source, args.dest, args.res, transform=args.transform, labels=args.labels,
                             mirror=args.mirror, max_images=args.max_images, progress=True,
                             min_size=args.min_size, overwrite=args.overwrite)
    print(report.summary())
    return 0
