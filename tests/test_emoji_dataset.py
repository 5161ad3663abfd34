"""The noto-emoji dataset preset (`sgxl dataset --preset noto-emoji`): parsing, labels, rendering, CLI.

Tests that render need Debian's fonts-noto-color-emoji; those reading the real list need unicode-data.
"""

from __future__ import annotations

import argparse
import json
import re
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import features

from core.data import emoji as emoji_mod
from core.data.dataset import ImageDataset
from core.data.dataset_cli import add_dataset_arguments, run_dataset_command
from core.data.emoji import (
    BACKGROUND,
    Emoji,
    _subset,
    assign_classes,
    build_emoji_dataset,
    check_emoji_sources,
    parse_emoji_test,
)
from core.errors import DatasetError, UserInputError

HAVE_FONT = emoji_mod.FONT_PATH.is_file()
HAVE_LIST = emoji_mod.EMOJI_TEST_PATH.is_file()
needs_font = pytest.mark.skipif(not HAVE_FONT or not features.check("raqm"),
                                reason=f"{emoji_mod.FONT_PATH} absent (apt-get install fonts-noto-color-emoji) "
                                "or Pillow lacks libraqm")
needs_list = pytest.mark.skipif(not HAVE_LIST, reason=f"{emoji_mod.EMOJI_TEST_PATH} absent "
                                "(apt-get install unicode-data)")

# A tiny emoji-test.txt in the real format: statuses other than fully-qualified, a skin-tone variant, a
# code point the font has no image for (A) and a sequence it draws as two glyphs (two grinning faces).
SMALL_LIST = """\
# emoji-test.txt
# Version: 15.0

# group: Smileys & Emotion

# subgroup: face-smiling
1F600                                                  ; fully-qualified     # 😀 E1.0 grinning face
1F603                                                  ; fully-qualified     # 😃 E0.6 grinning face with big eyes
1F604                                                  ; fully-qualified     # 😄 E0.6 grinning face with smiling eyes

# subgroup: face-affection
263A FE0F                                              ; fully-qualified     # ☺️ E0.6 smiling face
263A                                                   ; unqualified         # ☺ E0.6 smiling face

# group: People & Body

# subgroup: hand-fingers-open
1F44B                                                  ; fully-qualified     # 👋 E0.6 waving hand
1F44B 1F3FD                                            ; fully-qualified     # 👋🏽 E1.0 waving hand: medium skin tone
1F590 FE0F                                             ; fully-qualified     # 🖐️ E0.7 hand with fingers splayed

# group: Component

# subgroup: skin-tone
1F3FB                                                  ; component           # 🏻 E1.0 light skin tone

# group: Test

# subgroup: broken
0041                                                   ; fully-qualified     # A E0.0 letter a
1F600 1F600                                            ; fully-qualified     # 😀😀 E0.0 two faces
"""


def _small_list(tmp_path: Path) -> Path:
    path = tmp_path / "emoji-test.txt"
    path.write_text(SMALL_LIST, encoding="utf-8")
    return path


def _emoji(group: str, subgroup: str, n: int) -> list[Emoji]:
    return [Emoji((0x1F600 + i,), f"{subgroup} {i}", group, subgroup) for i in range(n)]


# ----------------------------------------------------------------------------- parsing and labels (no packages)

def test_parse_small_list(tmp_path):
    emoji = parse_emoji_test(_small_list(tmp_path))
    assert [e.name for e in emoji] == ["grinning face", "grinning face with big eyes",
                                       "grinning face with smiling eyes", "smiling face", "waving hand",
                                       "waving hand: medium skin tone", "hand with fingers splayed", "letter a",
                                       "two faces"]
    assert emoji[3].codepoints == (0x263A, 0xFE0F) and emoji[3].text == "\u263a\ufe0f"
    assert (emoji[4].group, emoji[4].subgroup) == ("People & Body", "hand-fingers-open")
    assert [e.has_skin_tone for e in emoji] == [False] * 5 + [True] + [False] * 3
    assert emoji[5].code == "1F44B 1F3FD"


def test_parse_rejects_other_files(tmp_path):
    (tmp_path / "x.txt").write_text("# nothing here\n")
    with pytest.raises(DatasetError, match="no fully-qualified emoji"):
        parse_emoji_test(tmp_path / "x.txt")
    (tmp_path / "y.txt").write_text("hello world\n")
    with pytest.raises(DatasetError, match="cannot parse"):
        parse_emoji_test(tmp_path / "y.txt")


def test_assign_classes_merges_small_subgroups():
    emoji = (_emoji("G1", "big", 5) + _emoji("G1", "small-a", 2) + _emoji("G1", "small-b", 1)
             + _emoji("G1", "big2", 4) + _emoji("G2", "tiny", 3) + _emoji("G3", "huge", 6))
    names, labels = assign_classes(emoji, "subgroup", min_class_size=4)
    # File order; a group's "(other)" right after its kept subgroups; a group without kept subgroups -> "(other)".
    assert names == ["big", "big2", "G1 (other)", "G2 (other)", "huge"]
    assert labels == [0] * 5 + [2] * 3 + [1] * 4 + [3] * 3 + [4] * 6
    names, labels = assign_classes(emoji, "subgroup", min_class_size=1)
    assert names == ["big", "small-a", "small-b", "big2", "tiny", "huge"]
    names, labels = assign_classes(emoji, "group")
    assert names == ["G1", "G2", "G3"] and Counter(labels) == {0: 12, 1: 3, 2: 6}
    assert assign_classes(emoji, "none") == ([], [None] * len(emoji))


def test_subset_keeps_every_class():
    labels = [0] * 50 + [1] * 3 + [2] * 1 + [3] * 20
    chosen = _subset(labels, 10)
    assert len(chosen) == 10 and chosen == sorted(set(chosen))
    assert {labels[i] for i in chosen} == {0, 1, 2, 3}
    assert _subset(labels, 10) == chosen  # seeded
    with pytest.raises(UserInputError, match="cannot hold one image of each of the 4 classes"):
        _subset(labels, 3)


def test_missing_packages_name_the_apt_command(tmp_path, monkeypatch):
    monkeypatch.setattr(emoji_mod, "FONT_PATH", tmp_path / "no/NotoColorEmoji.ttf")
    monkeypatch.setattr(emoji_mod, "EMOJI_TEST_PATH", tmp_path / "no/emoji-test.txt")
    with pytest.raises(DatasetError, match=re.escape("`sudo apt-get install fonts-noto-color-emoji unicode-data`")):
        build_emoji_dataset(tmp_path / "out.zip", 32, progress=False)
    assert not (tmp_path / "out.zip").exists()
    list_path = _small_list(tmp_path)
    with pytest.raises(DatasetError, match=r"NotoColorEmoji\.ttf, which is missing.*`sudo apt-get install "
                                           r"fonts-noto-color-emoji`"):
        check_emoji_sources(emoji_test_path=list_path)


def test_cli_argument_errors(tmp_path):
    parser = argparse.ArgumentParser()
    add_dataset_arguments(parser)

    def run(*argv: str) -> int:
        return run_dataset_command(parser.parse_args(list(argv)))

    with pytest.raises(UserInputError, match="--source .* or --preset"):
        run("--dest", str(tmp_path / "a.zip"), "--res", "32")
    with pytest.raises(UserInputError, match="not both"):
        run("--preset", "noto-emoji", "--source", str(tmp_path), "--dest", str(tmp_path / "a.zip"), "--res", "32")
    with pytest.raises(UserInputError, match="is for --preset noto-emoji"):
        run("--source", str(tmp_path), "--labels", "subgroup", "--dest", str(tmp_path / "a.zip"), "--res", "32")
    with pytest.raises(UserInputError, match="no --mirror"):
        run("--preset", "noto-emoji", "--mirror", "--dest", str(tmp_path / "a.zip"), "--res", "32")
    with pytest.raises(UserInputError, match="power of two"):
        run("--preset", "noto-emoji", "--dest", str(tmp_path / "a.zip"), "--res", "48")


# ----------------------------------------------------------------------------- the real emoji list

@needs_list
def test_real_list_counts():
    text = emoji_mod.EMOJI_TEST_PATH.read_text(encoding="utf-8")
    emoji = parse_emoji_test(emoji_mod.EMOJI_TEST_PATH)
    # The file states its own count of fully-qualified emoji.
    stated = int(re.search(r"^# fully-qualified : (\d+)$", text, re.M).group(1))
    assert len(emoji) == stated
    groups = list(dict.fromkeys(e.group for e in emoji))
    all_groups = re.findall(r"^# group: (.+)$", text, re.M)
    assert groups == [g for g in all_groups if g != "Component"]  # Component holds no fully-qualified emoji
    assert len(set(emoji)) == len(emoji) and all(e.subgroup for e in emoji)
    if re.search(r"^# Version: 15\.0$", text, re.M):  # Debian 12's unicode-data: numbers from the issue
        assert len(emoji) == 3655 and len(groups) == 9
        assert sum(not e.has_skin_tone for e in emoji) == 1870
        sizes = Counter((e.group, e.subgroup) for e in emoji)
        assert len(sizes) == 99 and sum(n >= 20 for n in sizes.values()) == 37


# ----------------------------------------------------------------------------- rendering

@needs_font
def test_unrenderable_emoji_are_skipped_and_counted(tmp_path):
    report = build_emoji_dataset(tmp_path / "small", 16, labels="subgroup", min_class_size=2, progress=False,
                                 font_path=emoji_mod.FONT_PATH, emoji_test_path=_small_list(tmp_path))
    assert report.skipped == {"blank": 1, "not one image": 1}
    assert [why for _, why in report.skipped_files] == ["blank", "not one image (drawn as 2 glyphs)"]
    assert report.left_out_skin_tones == 1
    # face-affection (1) is merged; the broken subgroup has no drawable emoji left, so no class.
    assert report.class_counts == {"face-smiling": 3, "Smileys & Emotion (other)": 1, "hand-fingers-open": 2}
    with ImageDataset(tmp_path / "small") as ds:
        assert len(ds) == 6 and ds.resolution == 16
        assert ds.labels.tolist() == [0, 0, 0, 1, 2, 2]
    with pytest.raises(DatasetError, match="already exists"):
        build_emoji_dataset(tmp_path / "small", 16, progress=False, emoji_test_path=_small_list(tmp_path))


@needs_font
@needs_list
def test_build_subset_and_read_back(tmp_path):
    dest = tmp_path / "emoji.zip"
    report = build_emoji_dataset(dest, 32, max_images=50, progress=False)
    # Expected classes: from the list itself (the font draws every emoji of Debian 12's list).
    expected_names, _ = assign_classes([e for e in parse_emoji_test(emoji_mod.EMOJI_TEST_PATH)
                                        if not e.has_skin_tone], "subgroup", 20)
    assert report.class_names == expected_names and report.skipped == {}
    assert report.num_images == 50 and sum(report.class_counts.values()) == 50
    assert min(report.class_counts.values()) >= 1  # every class represented

    with ImageDataset(dest) as ds:
        assert len(ds) == 50 and ds.resolution == 32
        assert ds.class_names == expected_names and ds.num_classes == len(expected_names)
        assert ds.labels.min() >= 0 and ds.labels.max() < ds.num_classes
        assert set(ds.labels.tolist()) == set(range(ds.num_classes))
        images = np.stack([ds.get_image(i) for i in range(len(ds))]).astype(np.int16)  # [50, 3, 32, 32]
    background = np.asarray(BACKGROUND, np.int16)[None, :, None, None]
    # Not blank: every image has many pixels that differ from the background (white paper differs by 17) ...
    far = (np.abs(images - background).max(axis=1) > 12).mean(axis=(1, 2))  # [50]
    assert far.min() > 0.15, far.min()
    # ... the corners are background (the emoji is centred) ...
    assert (np.abs(images[:, :, 0, 0] - background[:, :, 0, 0]) <= 2).mean() > 0.9
    # ... and no two images are the same.
    flat = images.reshape(len(images), -1)
    diff = np.abs(flat[:, None, :] - flat[None, :, :]).mean(axis=2)  # [50, 50]
    assert diff[~np.eye(len(images), dtype=bool)].min() > 1.0

    with zipfile.ZipFile(dest) as z:
        meta = json.loads(z.read("dataset.json"))
    assert meta["source"]["preset"] == "noto-emoji" and len(meta["emoji"]) == 50
    assert len({code for _, code, _ in meta["emoji"]}) == 50
    assert not any(tone in code for _, code, _ in meta["emoji"] for tone in ("1F3FB", "1F3FC", "1F3FD", "1F3FF"))


@needs_font
@needs_list
def test_cli_preset_groups(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_dataset_arguments(parser)
    args = parser.parse_args(["--preset", "noto-emoji", "--labels", "group", "--max-images", "12", "--res", "16",
                              "--dest", str(tmp_path / "groups")])
    assert run_dataset_command(args) == 0
    assert "12 images, 16x16, 9 classes" in capsys.readouterr().out
    with ImageDataset(tmp_path / "groups") as ds:
        assert ds.class_names[0] == "Smileys & Emotion" and ds.class_names[-1] == "Flags"
        assert len(ds) == 12 and set(ds.labels.tolist()) == set(range(9))


@needs_font
@needs_list
def test_trainer_runs_a_few_steps_on_an_emoji_subset(tmp_path):
    """The demo's recipe in miniature: the preset's output is a dataset `sgxl train` takes as it is."""
    from core.cli import main
    from core.io.checkpoint import load_checkpoint

    data = tmp_path / "emoji16.zip"
    build_emoji_dataset(data, 16, max_images=50, progress=False)
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--preset", "tiny", "--batch", "4",
                 "--kimg", "0.012", "--tick", "0.004", "--d-input-size", "64", "--mirror", "--no-progress"]) == 0
    events = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    ticks = [e for e in events if "G_loss" in e]
    assert [e["step"] for e in ticks] == [1, 2, 3]
    assert all(np.isfinite([e["G_loss"], e["D_loss"]]).all() for e in ticks)
    ckpt = load_checkpoint(run / "latest.sgxl")
    with ImageDataset(data) as ds:
        assert ckpt.class_names == ds.class_names and ckpt.generator.c_dim == ds.num_classes
    assert ckpt.meta["kimg"] == pytest.approx(0.012)
