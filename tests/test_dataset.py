"""Dataset conversion (`sgxl dataset`) and reading (ImageDataset), on small generated images of many kinds."""

from __future__ import annotations

import argparse
import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.data.dataset import ImageDataset
from core.data.dataset_cli import add_dataset_arguments, run_dataset_command
from core.data.dataset_tool import convert_dataset
from core.errors import DatasetError, UserInputError

RES = 32
# Sorted source order of the usable files, and their classes (cat=0, dog=1, zebra=2).
USABLE = ["cat/gray.png", "cat/rgb0.png", "cat/rgba.png", "dog/cmyk.jpg", "dog/rgb1.jpg",
          "zebra/pal.png", "zebra/rgb16.png"]
USABLE_LABELS = [0, 0, 0, 1, 1, 2, 2]


def _make_source(root: Path) -> Path:
    """A class-per-folder source holding every kind of file `convert_dataset` must handle."""
    for c in ("cat", "dog", "zebra"):
        (root / c).mkdir(parents=True)
    # 80x60 RGB: a 10 px blue band on each side (cropped away by the centre crop), red elsewhere.
    rgb = np.zeros((60, 80, 3), np.uint8)
    rgb[:, :, 0] = 200
    rgb[:, :10] = rgb[:, 70:] = (0, 0, 255)
    Image.fromarray(rgb).save(root / "cat/rgb0.png")
    Image.fromarray(np.full((64, 64), 90, np.uint8), "L").save(root / "cat/gray.png")
    rgba = np.zeros((48, 48, 4), np.uint8)
    rgba[..., 1] = 255
    rgba[:, 24:, 3] = 255  # left half fully transparent -> white, right half opaque green
    Image.fromarray(rgba, "RGBA").save(root / "cat/rgba.png")
    Image.new("CMYK", (40, 40), (255, 0, 0, 0)).save(root / "dog/cmyk.jpg", quality=95)  # pure cyan
    Image.fromarray(np.random.RandomState(0).randint(0, 256, (50, 50, 3), dtype=np.uint8)).save(
        root / "dog/rgb1.jpg")
    good_png = (root / "cat/gray.png").read_bytes()
    (root / "dog/broken.png").write_bytes(good_png[: len(good_png) // 2])  # truncated
    (root / "dog/notes.txt").write_text("not a picture")
    Image.new("RGB", (8, 8), (1, 2, 3)).save(root / "zebra/tiny.png")  # below RES / 2
    pal = Image.new("P", (36, 36))
    pal.putpalette([0, 0, 255] * 256)
    pal.save(root / "zebra/pal.png")
    Image.fromarray(np.full((40, 40), 65535, np.uint16)).save(root / "zebra/rgb16.png")  # 16-bit grayscale
    (root / "README.txt").write_text("top-level file, outside the class folders")
    return root


@pytest.fixture
def source(tmp_path) -> Path:
    return _make_source(tmp_path / "photos")


def _check_converted(ds: ImageDataset) -> None:
    assert len(ds) == len(USABLE)
    assert ds.resolution == RES and ds.num_classes == 3 and ds.has_labels
    assert ds.class_names == ["cat", "dog", "zebra"]
    assert ds.labels.tolist() == USABLE_LABELS
    img, label = ds[1]  # cat/rgb0.png
    assert img.dtype == torch.uint8 and img.shape == (3, RES, RES) and label == 0
    assert (img[0] >= 195).all() and (img[2] <= 5).all()  # blue borders cropped away, all red
    gray = ds.get_image(0)
    assert np.array_equal(gray[0], gray[1]) and abs(int(gray.mean()) - 90) <= 1
    rgba = ds.get_image(2).astype(int)
    assert (rgba[:, :, :12] >= 250).all()  # transparent -> white
    assert (rgba[1, :, -12:] >= 250).all() and (rgba[0, :, -12:] <= 5).all()  # opaque green stays
    cyan = ds.get_image(3).reshape(3, -1).mean(1)
    assert cyan[0] < 30 and cyan[1] > 225 and cyan[2] > 225, cyan  # CMYK cyan -> RGB cyan
    assert (ds.get_image(5)[2] == 255).all() and (ds.get_image(5)[:2] == 0).all()  # palette blue
    assert (ds.get_image(6) == 255).all()  # 16-bit white -> 8-bit white


def test_convert_to_zip_and_read_back(source, tmp_path):
    report = convert_dataset(source, tmp_path / "ds.zip", RES, progress=False)
    assert report.num_images == report.num_source_images == len(USABLE)
    assert report.skipped == {"corrupt image": 1, "not an image": 1, "smaller than 16px": 1,
                              "outside class folders": 1}
    assert dict(report.skipped_files)["dog/broken.png"] == "corrupt image"
    assert report.converted["grayscale -> RGB"] == 2 and report.converted["CMYK -> RGB"] == 1
    assert report.converted["transparent -> on white"] == 1 and report.converted["palette -> RGB"] == 1
    assert "skipped 4 files" in report.summary()
    with zipfile.ZipFile(tmp_path / "ds.zip") as z:
        meta = json.loads(z.read("dataset.json"))
        assert meta["class_names"] == ["cat", "dog", "zebra"]
        assert meta["labels"][0] == ["00000/img00000000.png", 0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds.zip", "photos"]  # no temporary left behind
    with ImageDataset(tmp_path / "ds.zip") as ds:
        _check_converted(ds)


def test_convert_to_folder_matches_zip(source, tmp_path):
    convert_dataset(source, tmp_path / "ds.zip", RES, progress=False)
    convert_dataset(source, tmp_path / "ds_folder", RES, progress=False)
    assert (tmp_path / "ds_folder" / "00000" / "img00000006.png").is_file()
    folder, zipped = ImageDataset(tmp_path / "ds_folder"), ImageDataset(tmp_path / "ds.zip")
    _check_converted(folder)
    for i in range(len(folder)):
        assert torch.equal(folder[i][0], zipped[i][0]) and folder[i][1] == zipped[i][1]


def test_mirror_and_xflip(source, tmp_path):
    report = convert_dataset(source, tmp_path / "m.zip", RES, mirror=True, progress=False)
    assert report.num_images == 2 * report.num_source_images == 2 * len(USABLE)
    mirrored = ImageDataset(tmp_path / "m.zip")
    assert mirrored.labels.tolist() == [lab for lab in USABLE_LABELS for _ in range(2)]
    assert np.array_equal(mirrored.get_image(3), mirrored.get_image(2)[:, :, ::-1])

    convert_dataset(source, tmp_path / "plain.zip", RES, progress=False)
    plain, flipped = ImageDataset(tmp_path / "plain.zip"), ImageDataset(tmp_path / "plain.zip", xflip=True)
    n = len(plain)
    assert len(flipped) == 2 * n and flipped.labels.tolist() == USABLE_LABELS * 2
    assert np.array_equal(flipped.get_image(n + 2), plain.get_image(2)[:, :, ::-1])
    assert np.array_equal(flipped.get_image(2), plain.get_image(2))
    assert not np.array_equal(plain.get_image(2), plain.get_image(2)[:, :, ::-1])  # the test image is asymmetric


def test_max_images_and_max_size_are_deterministic_subsets(source, tmp_path):
    report = convert_dataset(source, tmp_path / "sub.zip", RES, max_images=4, progress=False)
    assert report.num_source_images == 4 and report.class_names == ["cat", "dog", "zebra"]
    again = convert_dataset(source, tmp_path / "sub2.zip", RES, max_images=4, progress=False)
    a, b = ImageDataset(tmp_path / "sub.zip"), ImageDataset(tmp_path / "sub2.zip")
    assert all(torch.equal(a[i][0], b[i][0]) for i in range(4)) and again.num_images == 4

    convert_dataset(source, tmp_path / "all.zip", RES, progress=False)
    full = ImageDataset(tmp_path / "all.zip")
    small = ImageDataset(tmp_path / "all.zip", max_size=3, random_seed=5)
    same = ImageDataset(tmp_path / "all.zip", max_size=3, random_seed=5)
    names = [small.image_name(i) for i in range(len(small))]
    assert len(small) == 3 and names == sorted(names) == [same.image_name(i) for i in range(3)]
    for i in range(3):
        j = [full.image_name(k) for k in range(len(full))].index(names[i])
        assert torch.equal(small[i][0], full[j][0]) and small[i][1] == full[j][1]
    assert len(ImageDataset(tmp_path / "all.zip", max_size=3, xflip=True)) == 6


def test_unlabelled_flat_folder(tmp_path):
    src = tmp_path / "flat"
    src.mkdir()
    for i in range(3):
        Image.new("RGB", (40, 30), (i * 80, 0, 0)).save(src / f"im{i}.png")
    report = convert_dataset(src, tmp_path / "u.zip", 16, progress=False)
    assert report.class_names == [] and "unlabelled" in report.summary()
    ds = ImageDataset(tmp_path / "u.zip")
    assert len(ds) == 3 and ds.num_classes == 0 and not ds.has_labels and ds.labels.tolist() == [-1, -1, -1]
    assert int(ds[2][0][0].float().mean()) == 160


def test_reads_class_folders_directly(tmp_path):
    root = tmp_path / "classes"
    for c, color in (("b_dogs", (0, 255, 0)), ("a_cats", (255, 0, 0))):
        (root / c / "nested").mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (16, 16), color).save(root / c / f"{i}.png")
        Image.new("RGB", (16, 16), color).save(root / c / "nested" / "deep.png")
    (root / "a_cats" / "info.txt").write_text("ignored: not an image file")
    ds = ImageDataset(root)
    assert ds.class_names == ["a_cats", "b_dogs"] and ds.num_classes == 2 and len(ds) == 6
    for i in range(len(ds)):
        img, label = ds[i]
        assert img[label].float().mean() == 255 and img[1 - label].float().mean() == 0  # red = cats, green = dogs


def _folder_of(tmp_path: Path, images: dict[str, Image.Image]) -> Path:
    root = tmp_path / "bad"
    for name, img in images.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        img.save(root / name)
    return root


@pytest.mark.parametrize("bad, match", [
    (Image.new("RGB", (16, 12)), "must be square"),
    (Image.new("L", (16, 16)), "mode L, but images must be RGB"),
    (Image.new("RGB", (32, 32)), "all images must have one resolution"),
])
def test_bad_images_name_the_first_bad_file(tmp_path, bad, match):
    root = _folder_of(tmp_path, {"c/0.png": Image.new("RGB", (16, 16)), "c/1.png": bad,
                                 "c/2.png": Image.new("RGB", (16, 16))})
    with pytest.raises(DatasetError, match=match) as e:
        ImageDataset(root)
    assert "c/1.png" in str(e.value)
    lazy = ImageDataset(root, check_all=False)  # found when loaded instead
    with pytest.raises(DatasetError, match="c/1.png"):
        lazy[1]


def _zip_with_labels(path: Path, n_images: int, labels: list, class_names: list[str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for i in range(n_images):
            img = Image.new("RGB", (8, 8), (i, i, i))
            buf = io.BytesIO()
            img.save(buf, format="png")
            z.writestr(f"00000/img{i:08d}.png", buf.getvalue())
        meta = {"labels": labels} | ({"class_names": class_names} if class_names else {})
        z.writestr("dataset.json", json.dumps(meta))
    return path


def test_label_mismatch_is_a_clear_error(tmp_path):
    two = [[f"00000/img{i:08d}.png", 0] for i in range(2)]
    with pytest.raises(DatasetError, match="2 labels for 3 images: 1 images have no label"):
        ImageDataset(_zip_with_labels(tmp_path / "a.zip", 3, two))
    extra = two + [["00000/img00000009.png", 1]]
    with pytest.raises(DatasetError, match="name missing files.*img00000009"):
        ImageDataset(_zip_with_labels(tmp_path / "b.zip", 2, extra))
    with pytest.raises(DatasetError, match="outside 0..1"):
        ImageDataset(_zip_with_labels(tmp_path / "c.zip", 2, [two[0], [two[1][0], 5]], ["x", "y"]))
    with pytest.raises(DatasetError, match="only integer class labels"):
        ImageDataset(_zip_with_labels(tmp_path / "d.zip", 2, [two[0], [two[1][0], [0.5, 0.5]]]))
    ok = ImageDataset(_zip_with_labels(tmp_path / "e.zip", 2, [two[0], [two[1][0], 3]]))
    assert ok.num_classes == 4 and ok.class_names == ["0", "1", "2", "3"] and ok.labels.tolist() == [0, 3]


def test_conversion_errors(tmp_path, source):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.txt").write_text("x")
    with pytest.raises(DatasetError, match="no images found"):
        convert_dataset(empty, tmp_path / "o.zip", RES, progress=False)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.png").write_bytes(b"definitely not a png")
    with pytest.raises(DatasetError, match="no usable images.*corrupt image 1"):
        convert_dataset(junk, tmp_path / "o.zip", RES, progress=False)
    assert not any(p.name.startswith(".o.zip") for p in tmp_path.iterdir())  # temp removed on failure
    with pytest.raises(DatasetError, match="does not exist"):
        convert_dataset(tmp_path / "missing", tmp_path / "o.zip", RES, progress=False)
    with pytest.raises(UserInputError, match="power of two"):
        convert_dataset(source, tmp_path / "o.zip", 48, progress=False)
    with pytest.raises(DatasetError, match="inside the source"):
        convert_dataset(source, source / "out.zip", RES, progress=False)
    convert_dataset(source, tmp_path / "o.zip", RES, progress=False)
    with pytest.raises(DatasetError, match="already exists"):
        convert_dataset(source, tmp_path / "o.zip", RES, progress=False)
    report = convert_dataset(source, tmp_path / "o.zip", 16, progress=False, overwrite=True)
    assert ImageDataset(tmp_path / "o.zip").resolution == 16 and report.resolution == 16
    (tmp_path / "mine").mkdir()
    with pytest.raises(DatasetError, match="not a converted dataset"):
        convert_dataset(source, tmp_path / "mine", RES, progress=False, overwrite=True)


def test_zip_dataset_with_dataloader_workers(source, tmp_path):
    convert_dataset(source, tmp_path / "ds.zip", RES, progress=False)
    ds = ImageDataset(tmp_path / "ds.zip")
    ds[0]  # the parent has the zip open before the workers start
    clone = pickle.loads(pickle.dumps(ds))  # spawned workers receive a pickled copy
    assert torch.equal(clone[4][0], ds[4][0])
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2, shuffle=False)
    images, labels = zip(*loader)
    assert torch.equal(torch.cat(images), torch.stack([ds[i][0] for i in range(len(ds))]))
    assert torch.cat(labels).tolist() == USABLE_LABELS


def test_cli_helpers(source, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_dataset_arguments(parser)
    args = parser.parse_args(["--source", str(source), "--dest", str(tmp_path / "c.zip"), "--res", "16",
                              "--mirror", "--max-images", "5"])
    assert run_dataset_command(args) == 0
    out = capsys.readouterr().out
    assert "10 images (5 + 5 mirrored), 16x16, 3 classes (cat, dog, zebra)" in out
    assert len(ImageDataset(tmp_path / "c.zip")) == 10
