"""class_acc: a classifier fitted on real data only recognises generated images' classes. Known answers on
toy data (solid-colour classes): a generator that draws the asked-for class scores ~1, one that draws a fixed
wrong class ~0, one that ignores its class ~chance; the ceiling is honest (held out); the probe cache is written
once, reused, and invalidated by a dataset change; unconditional models and unlabelled data are refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import core.metrics.class_acc as class_acc_mod
from core.cli import main
from core.data.dataset import ImageDataset
from core.errors import UserInputError
from core.io.checkpoint import save_checkpoint
from core.metrics.api import compute_metrics
from core.metrics.class_acc import (
    ProbeConfig,
    balanced_labels,
    class_accuracy,
    class_probe,
    fit_probe,
    heldout_predictions,
    stratified_folds,
)
from core.metrics.features import EffNetExtractor, FeatureExtractor
from tests.helpers import ToyDataset, make_tiny_generator

COLOURS = np.array([(220, 30, 30), (30, 200, 40), (40, 60, 230), (230, 210, 40), (200, 40, 220)])


def colour_images(classes: np.ndarray, res: int, rng: np.random.RandomState, noise: int = 25) -> np.ndarray:
    """uint8 [N, 3, R, R]: image i is the solid colour of class classes[i] plus uniform pixel noise."""
    base = COLOURS[np.asarray(classes)][:, :, None, None]
    return np.clip(base + rng.randint(-noise, noise + 1, (len(classes), 3, res, res)), 0, 255).astype(np.uint8)


class ColourDataset:
    """In-memory labelled dataset: class k = solid colour k (+ noise); `labels` may be given to decouple them."""

    def __init__(self, per_class: list[int], res: int = 16, seed: int = 0, labels: np.ndarray | None = None):
        rng = np.random.RandomState(seed)
        colour_of = np.repeat(np.arange(len(per_class)), per_class)
        self.images = list(colour_images(colour_of, res, rng))
        self.labels = colour_of if labels is None else np.asarray(labels, dtype=np.int64)
        self.num_classes = len(per_class)
        self.class_names = ["red", "green", "blue", "yellow", "magenta"][:len(per_class)]
        self.resolution = res

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], int(self.labels[i])


class ColourGenerator(torch.nn.Module):
    """Stand-in for G with the interface compute_metrics uses: the image of class `draw(c, z)`, its noise taken
    from z (so seeds give different, deterministic images)."""

    def __init__(self, c_dim: int, res: int, draw: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
        super().__init__()
        self.c_dim, self.z_dim, self.img_resolution, self.draw = c_dim, 3 * res * res, res, draw
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the model a device

    def forward(self, z: torch.Tensor, c: torch.Tensor, psi: float = 1.0) -> torch.Tensor:
        colour = torch.as_tensor(COLOURS, dtype=torch.float32)[self.draw(c, z)]  # [B, 3]
        res = self.img_resolution
        pixels = colour[:, :, None, None] + 25 * torch.tanh(z).view(-1, 3, res, res)
        return pixels / 127.5 - 1  # G's output range


def right_class(c: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return c


class ChannelStats(FeatureExtractor):
    """Cheap stand-in feature network (per-channel mean and std) that counts its calls."""

    name, description, probs_description, dim, num_classes = "chanstats", "channel mean/std", "", 6, 0

    def __init__(self) -> None:
        self.calls = 0

    def extract(self, images, want_probs=False):
        self.calls += 1
        x = images.float()
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1), None


def run(G, dataset, tmp_path: Path, extractor: FeatureExtractor, num: int, **kw):
    return compute_metrics(G, dataset, "class_acc", num=num, batch=16, cache_dir=tmp_path / "cache", progress=False,
                           extractors={"effnet": extractor}, **kw)


# ----------------------------------------------------------------------------- known answers, real features

@pytest.fixture(scope="module")
def effnet() -> EffNetExtractor:
    return EffNetExtractor()


def test_right_class_scores_one_and_a_fixed_wrong_class_zero(tmp_path: Path, effnet: EffNetExtractor) -> None:
    k = 4
    ds = ColourDataset([6] * k)
    right = run(ColourGenerator(k, 16, right_class), ds, tmp_path, effnet, num=8)
    assert right.values["class_acc"] >= 0.95
    d = right.details["class_acc"]
    assert d["ceiling"] >= 0.95 and d["ceiling_plain"] >= 0.95  # solid colours: real images are recognisable
    assert d["chance"] == pytest.approx(1 / k) and d["images_per_class"] == 2 and d["classes"] == k
    assert set(right.per_class["class_acc"]) == {"red", "green", "blue", "yellow"}
    assert right.per_class_details["class_acc"]["generated_images"] == dict.fromkeys(ds.class_names, 2)
    assert "EfficientNet-lite0" in right.feature_spaces["class_acc"]

    wrong = run(ColourGenerator(k, 16, lambda c, z: (c + 1) % k), ds, tmp_path, effnet, num=8)
    assert wrong.values["class_acc"] <= 0.05 and wrong.details["class_acc"]["plain"] <= 0.05
    assert all(v == 0 for v in wrong.per_class["class_acc"].values())
    assert wrong.details["class_acc"]["ceiling"] == d["ceiling"]  # same cached probe
    assert len(list((tmp_path / "cache").glob("classprobe-effnet-*.npz"))) == 1


# ----------------------------------------------------------------------------- known answers, cheap features

def test_a_generator_that_ignores_its_class_scores_chance(tmp_path: Path) -> None:
    k = 5
    ds = ColourDataset([8] * k)
    ignores = ColourGenerator(k, 8, lambda c, z: (z[:, 0] > 0).long() + 2 * (z[:, 1] > 0).long() + (z[:, 2] > 1))
    report = run(ignores, ds, tmp_path, ChannelStats(), num=500)
    # The drawn colour is independent of c, so each class is hit with the drawn colours' shares: 1/K overall.
    assert report.values["class_acc"] == pytest.approx(1 / k, abs=0.06)
    assert report.details["class_acc"]["ceiling"] >= 0.95


def test_shuffled_real_labels_give_a_chance_ceiling(tmp_path: Path) -> None:
    k = 4
    labels = np.random.RandomState(1).permutation(np.repeat(np.arange(k), 40))  # labels independent of colour
    ds = ColourDataset([40] * k, labels=labels)
    probe = class_probe(ds, ChannelStats(), cache_dir=tmp_path, progress=False)
    ceiling = probe.ceiling
    assert ceiling.balanced < 0.45 and ceiling.plain < 0.45  # held-out: chance 0.25, nowhere near 1
    assert sorted(ceiling.counts.values()) == [40] * k


def test_heldout_predictions_never_see_their_own_item() -> None:
    # Random features, random labels, more dimensions than items: a probe fitted on everything separates the
    # training labels perfectly, but held-out items are at chance. The ceiling must be the held-out number.
    rng = np.random.RandomState(0)
    x, y = rng.randn(120, 300), rng.randint(0, 4, 120)
    config = ProbeConfig()
    assert (fit_probe(x, y, 4, config).predict(x) == y).mean() > 0.95
    held = class_accuracy(heldout_predictions(x, y, 4, config), y)
    assert held.plain < 0.45


def test_stratified_folds_spread_every_class() -> None:
    labels = np.repeat(np.arange(6), [11, 258, 3, 40, 1, 25])
    fold = stratified_folds(labels, 5, seed=0)
    assert np.array_equal(fold, stratified_folds(labels, 5, seed=0)) and set(fold) == set(range(5))
    for k in range(6):
        per_fold = np.bincount(fold[labels == k], minlength=5)
        assert per_fold.max() - per_fold.min() <= 1  # stratified: each class as even as it can be
    assert abs(np.bincount(fold).max() - np.bincount(fold).min()) <= 1  # small classes do not pile into fold 0


def test_balanced_labels_give_every_class_its_share() -> None:
    labels = balanced_labels(np.array([0, 2, 5]), 10)
    assert np.bincount(labels).tolist() == [4, 0, 3, 0, 0, 3]


def test_class_accuracy_plain_and_balanced() -> None:
    target = np.array([0] * 8 + [1] * 2)
    pred = np.array([0] * 8 + [0, 1])
    acc = class_accuracy(pred, target)
    assert acc.plain == pytest.approx(0.9) and acc.balanced == pytest.approx(0.75)
    assert acc.per_class == {0: 1.0, 1: 0.5} and acc.counts == {0: 8, 1: 2}


# ----------------------------------------------------------------------------- the cache

def write_folder(ds, root: Path) -> Path:
    for i in range(len(ds)):
        img, label = ds[i]
        path = root / ds.class_names[label] / f"{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(np.asarray(img).transpose(1, 2, 0))).save(path)
    return root


def test_probe_cache_is_written_once_reused_and_invalidated(tmp_path: Path, monkeypatch) -> None:
    root = write_folder(ColourDataset([6, 6, 6]), tmp_path / "data")
    cache = tmp_path / "cache"
    fits = []
    real_fit = class_acc_mod.fit_probe
    monkeypatch.setattr(class_acc_mod, "fit_probe", lambda *a, **k: fits.append(1) or real_fit(*a, **k))
    ex = ChannelStats()

    first = class_probe(ImageDataset(root), ex, cache_dir=cache, progress=False)
    folds = ProbeConfig().folds
    assert not first.from_cache and first.cache_path.is_file() and len(fits) == folds + 1
    files = sorted(cache.glob("classprobe-*.npz"))
    assert files == [first.cache_path]
    stamp = first.cache_path.stat().st_mtime_ns

    again = class_probe(ImageDataset(root), ex, cache_dir=cache, progress=False)
    assert again.from_cache and len(fits) == folds + 1 and first.cache_path.stat().st_mtime_ns == stamp
    feats = np.random.RandomState(0).rand(5, 6) * 255
    assert np.array_equal(again.predict(feats), first.predict(feats))
    assert np.array_equal(again.heldout_pred, first.heldout_pred) and again.ceiling == first.ceiling

    other = class_probe(ImageDataset(root), ex, replace(ProbeConfig(), folds=3), cache_dir=cache, progress=False)
    assert not other.from_cache and len(fits) == folds + 1 + 4  # other settings: their own entry

    victim = sorted(root.rglob("*.png"))[0]  # change one pixel of one image: a new dataset, a new probe
    img = np.asarray(Image.open(victim)).copy()
    img[0, 0] = 255 - img[0, 0]
    Image.fromarray(img).save(victim)
    changed = class_probe(ImageDataset(root), ex, cache_dir=cache, progress=False)
    assert not changed.from_cache and changed.fingerprint != first.fingerprint
    assert changed.cache_path != first.cache_path and len(fits) == 2 * (folds + 1) + 4

    changed.cache_path.write_bytes(b"garbage")  # an unreadable entry is refitted and overwritten
    redone = class_probe(ImageDataset(root), ex, cache_dir=cache, progress=False)
    assert not redone.from_cache and np.array_equal(redone.heldout_pred, changed.heldout_pred)
    assert class_probe(ImageDataset(root), ex, cache_dir=cache, progress=False).from_cache


# ----------------------------------------------------------------------------- refusals

def test_unconditional_models_and_unlabelled_data_are_refused(tmp_path: Path) -> None:
    ds = ColourDataset([4, 4])
    with pytest.raises(UserInputError, match="unconditional"):
        run(make_tiny_generator(16, c_dim=0), ds, tmp_path, ChannelStats(), num=8)
    unlabelled = ColourDataset([4, 4], labels=np.full(8, -1))
    with pytest.raises(UserInputError, match="labelled dataset"):
        run(ColourGenerator(2, 16, right_class), unlabelled, tmp_path, ChannelStats(), num=8)
    with pytest.raises(UserInputError, match="--num >= 3"):
        run(ColourGenerator(3, 16, right_class), ColourDataset([4, 4, 4]), tmp_path, ChannelStats(), num=2)


def test_cli_class_acc_end_to_end(tmp_path: Path, effnet: EffNetExtractor, capsys, monkeypatch) -> None:
    import core.metrics.api as api

    monkeypatch.setattr(api, "load_extractor", lambda name, *a, **k: effnet)  # the loaded network, not a new one
    data = write_folder(ToyDataset(n=12, res=16, classes=3), tmp_path / "data")
    ckpt = save_checkpoint(tmp_path / "g.sgxl", make_tiny_generator(16, c_dim=3), {"kimg": 1},
                           class_names=["class0", "class1", "class2"])
    out = tmp_path / "m.json"
    argv = ["metrics", "--ckpt", str(ckpt), "--data", str(data), "--metrics", "class_acc,fd_effnet", "--num", "6",
            "--batch", "6", "--device", "cpu", "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    m = result["metrics"]["class_acc"]
    assert 0 <= m["value"] <= 1 and 0 <= m["ceiling"] <= 1 and m["classes"] == 3 and m["images_per_class"] == 2
    assert "fd_effnet" in result["metrics"]
    pc = result["per_class"]["class_acc"]
    assert set(pc["classes"]) == set(pc["ceiling"]) == set(pc["real_images"])
    assert pc["mean"] == pytest.approx(m["value"])
    text = capsys.readouterr().out
    assert "(3 classes x 2 images; chance 0.333)" in text and "real held-out" in text
    assert f"ceiling, real images held out: balanced {m['ceiling']:.3f}, plain {m['ceiling_plain']:.3f}" in text
    assert "class_acc (class mean)" not in text
    for name in pc["classes"]:
        assert any(line.split()[:1] == [name] for line in text.splitlines())
    assert len(list((tmp_path / "cache").glob("classprobe-effnet-*.npz"))) == 1

    uncond = save_checkpoint(tmp_path / "u.sgxl", make_tiny_generator(16, c_dim=0), {"kimg": 1})
    assert main(["metrics", "--ckpt", str(uncond), "--data", str(data), "--metrics", "class_acc", "--num", "4",
                 "--device", "cpu", "--cache-dir", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: class_acc needs a class-conditional generator") and "Traceback" not in err


# ----------------------------------------------------------------------------- training snapshots, explorer

def test_trainer_logs_class_acc_and_the_explorer_reads_it(tmp_path: Path, effnet: EffNetExtractor) -> None:
    from core.networks.discriminator import DiscriminatorConfig
    from core.networks.feature_nets import EfficientNetFeatures
    from core.training.trainer import TrainConfig, Trainer, build_generator_for
    from explorer.training_run import RunFollower

    ds = ColourDataset([4, 4, 4])
    G, names = build_generator_for(ds, "tiny", None, None, "cpu")
    cfg = TrainConfig(batch=4, disc=DiscriminatorConfig(input_size=64), metrics=["class_acc"], metrics_num=6,
                      sample_seeds=1, sample_classes=1)
    trainer = Trainer(G, ds, tmp_path / "run", cfg,
                      {"effnet": EfficientNetFeatures(effnet.classifier.net, min_size=64)}, class_names=names)
    trainer._metric_extractors["effnet"] = ChannelStats()  # cheap features: this checks the plumbing
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SGXL_CACHE_DIR", str(tmp_path / "cache"))
        trainer.save_snapshot()
    events = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    logged = next(e for e in events if e.get("event") == "metrics")
    assert 0 <= logged["class_acc"] <= 1 and logged["class_acc_ceiling"] >= 0.95
    assert "class_acc_class_mean" not in logged  # class_acc is a class mean already
    follower = RunFollower(tmp_path / "run")
    follower.poll()
    assert follower.metrics["class_acc"] == ([0.0], [logged["class_acc"]])
    assert follower.metrics["class_acc_ceiling"][1] == [logged["class_acc_ceiling"]]


def test_sgxl_train_refuses_class_acc_on_unlabelled_data(tmp_path: Path, capsys) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, img in enumerate(ColourDataset([2, 2]).images):
        Image.fromarray(np.ascontiguousarray(img.transpose(1, 2, 0))).save(flat / f"{i}.png")
    assert main(["train", "--data", str(flat), "--metrics", "class_acc", "--out", str(tmp_path / "run"),
                 "--device", "cpu", "--no-progress"]) == 2
    assert "class_acc needs a labelled dataset" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
