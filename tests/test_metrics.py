"""Metrics: FD / KID / precision-recall / IS against closed forms and references, the statistics cache,
the Inception file handling, the `sgxl metrics` CLI and the trainer's snapshot hook."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from core.cli import main
from core.data.dataset import ImageDataset
from core.errors import UserInputError
from core.io.checkpoint import load_checkpoint, save_checkpoint
from core.metrics import frechet
from core.metrics.api import compute_metrics, parse_metrics
from core.metrics.features import INCEPTION_ENV, EffNetExtractor, FeatureExtractor, InceptionExtractor, load_extractor
from core.metrics.frechet import frechet_distance, frechet_distance_features, mean_cov, sqrtm_psd, trace_sqrt_product
from core.metrics.inception_score import inception_score
from core.metrics.kid import kernel_inception_distance, mmd2_unbiased
from core.metrics.precision_recall import knn_radii, precision_recall
from core.metrics.stats import dataset_fingerprint, dataset_stats
from tests.helpers import ToyDataset, make_tiny_generator


def write_folder_dataset(ds: ToyDataset, root: Path) -> Path:
    """ToyDataset -> one sub-folder of PNGs per class (what ImageDataset reads as labelled)."""
    for i in range(len(ds)):
        img, label = ds[i]
        path = root / ds.class_names[label] / f"{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(img.transpose(1, 2, 0))).save(path)
    return root


def spd(d: int, seed: int, cond: float = 10.0) -> np.ndarray:
    """A random symmetric positive-definite matrix with eigenvalues spread over [1/cond, 1]."""
    rng = np.random.RandomState(seed)
    q, _ = np.linalg.qr(rng.randn(d, d))
    return (q * np.geomspace(1 / cond, 1, d)) @ q.T


# ----------------------------------------------------------------------------- Fréchet distance

@pytest.mark.parametrize("method", ["eigh", "scipy"])
def test_fd_of_a_set_to_itself_is_zero(method: str) -> None:
    x = np.random.RandomState(0).randn(300, 48) * 3 + 1
    assert frechet_distance_features(x, x, method=method) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance_features(x, x + 0.5, method=method) == pytest.approx(48 * 0.25, rel=1e-8)


def test_fd_between_gaussians_matches_the_closed_form() -> None:
    # Non-commuting 2-D covariances: for a 2x2 M with positive eigenvalues, tr(M^½) = sqrt(tr M + 2 sqrt(det M)).
    s1 = np.array([[2.0, 0.6], [0.6, 1.0]])
    s2 = np.array([[0.5, -0.3], [-0.3, 1.5]])
    mu1, mu2 = np.array([1.0, -2.0]), np.array([0.0, 0.5])
    tr_sqrt = np.sqrt(np.trace(s1 @ s2) + 2 * np.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
    closed = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(closed, rel=1e-12)
    assert frechet_distance(mu1, s1, mu2, s2, method="scipy") == pytest.approx(closed, rel=1e-9)

    # Sampled: diagonal covariances, FD = |mu1 - mu2|² + Σ (σ1 - σ2)²; the estimate converges to it.
    rng = np.random.RandomState(1)
    sd1, sd2 = rng.uniform(0.5, 2, 8), rng.uniform(0.5, 2, 8)
    m1, m2 = rng.randn(8), rng.randn(8)
    closed = np.sum((m1 - m2) ** 2) + np.sum((sd1 - sd2) ** 2)
    a = rng.randn(40000, 8) * sd1 + m1
    b = rng.randn(40000, 8) * sd2 + m2
    assert frechet_distance_features(a, b) == pytest.approx(closed, rel=0.02)


def test_sqrtm_matches_scipy_including_near_singular() -> None:
    s = spd(40, 0)
    assert np.allclose(sqrtm_psd(s), scipy.linalg.sqrtm(s).real, atol=1e-10)
    s2 = spd(40, 1, cond=1e3)
    ref = np.trace(scipy.linalg.sqrtm(s @ s2)).real
    assert trace_sqrt_product(s, s2) == pytest.approx(ref, rel=1e-10)

    # Near-singular: eigenvalues down to 1e-14; the root still squares back to the matrix.
    tiny = spd(40, 2, cond=1e14)
    root = sqrtm_psd(tiny)
    assert np.allclose(root @ root, tiny, atol=1e-12)
    assert np.allclose(root, scipy.linalg.sqrtm(tiny).real, atol=1e-6)

    # Singular (20 samples in 64-D): exact tr((S1 S2)^½) = nuclear norm of Xc Yc^T / sqrt((n1-1)(n2-1)).
    rng = np.random.RandomState(3)
    x, y = rng.randn(20, 64), rng.randn(30, 64) * 2 + 1
    xc, yc = x - x.mean(0), y - y.mean(0)
    truth = np.linalg.svd(xc @ yc.T, compute_uv=False).sum() / np.sqrt(19 * 29)
    (_, c1), (_, c2) = mean_cov(x), mean_cov(y)
    assert trace_sqrt_product(c1, c2) == pytest.approx(truth, rel=1e-6)
    assert frechet.trace_sqrt_product_scipy(c1, c2) == pytest.approx(truth, rel=1e-6)
    assert frechet_distance(*mean_cov(x), *mean_cov(y)) == pytest.approx(
        frechet_distance(*mean_cov(x), *mean_cov(y), method="scipy"), rel=1e-6)


def test_low_rank_route_equals_the_full_one() -> None:
    rng = np.random.RandomState(5)
    real = rng.randn(300, 64) @ rng.randn(64, 64) * 0.3
    mu, sigma = mean_cov(real)
    xc = real - mu
    for m in (10, 50, 200):  # fewer, and more, generated items than dimensions
        gen = rng.randn(m, 64) + 0.2
        mu2, sigma2 = mean_cov(gen)
        yc = gen - mu2  # exact tr((S1 S2)^½) from the data, as in the singular case above
        tr_sqrt = np.linalg.svd(xc @ yc.T, compute_uv=False).sum() / np.sqrt(299 * (m - 1))
        exact = np.sum((mu - mu2) ** 2) + np.trace(sigma) + np.trace(sigma2) - 2 * tr_sqrt
        assert frechet.frechet_distance_to_features(mu, sigma, gen) == pytest.approx(exact, rel=1e-8)
        assert frechet_distance(mu, sigma, mu2, sigma2) == pytest.approx(exact, rel=1e-7)


def test_scipy_route_retries_with_eps_when_sqrtm_is_not_finite(monkeypatch) -> None:
    calls = []
    real_sqrtm = scipy.linalg.sqrtm

    def flaky(m):
        calls.append(m.copy())
        return np.full_like(m, np.nan) if len(calls) == 1 else real_sqrtm(m)

    monkeypatch.setattr(frechet.scipy.linalg, "sqrtm", flaky)
    s1, s2 = spd(6, 4), spd(6, 5)
    value = frechet.trace_sqrt_product_scipy(s1, s2, eps=1e-3)
    assert len(calls) == 2 and np.allclose(calls[1], (s1 + 1e-3 * np.eye(6)) @ (s2 + 1e-3 * np.eye(6)))
    assert value == pytest.approx(np.trace(real_sqrtm(calls[1])).real)


# ----------------------------------------------------------------------------- KID

def test_mmd2_unbiased_matches_the_definition() -> None:
    rng = np.random.RandomState(0)
    x, y = rng.randn(5, 4), rng.randn(5, 4) + 0.3

    def k(a, b):
        return (a @ b / 4 + 1) ** 3

    m = 5
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
    assert mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_kid_is_zero_for_one_distribution_and_positive_when_shifted() -> None:
    rng = np.random.RandomState(0)
    a, b = rng.randn(600, 32), rng.randn(600, 32)
    same = kernel_inception_distance(a, b, num_subsets=20, max_subset_size=300)
    shifted = kernel_inception_distance(a, b + 0.5, num_subsets=20, max_subset_size=300)
    assert abs(same.mean) < 0.01 and same.subset_size == 300
    assert shifted.mean > 0.1 and shifted.mean > 20 * abs(same.mean)


# ----------------------------------------------------------------------------- precision / recall

def test_knn_radii_match_brute_force() -> None:
    x = np.random.RandomState(0).randn(50, 5)
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    expected = np.sort(d, axis=1)[:, 3]  # column 0 is the point itself
    got = np.sqrt(knn_radii(torch.from_numpy(x), k=3).numpy())
    assert np.allclose(got, expected, atol=1e-9)


def test_precision_recall_identical_disjoint_and_mode_collapse() -> None:
    rng = np.random.RandomState(0)
    real = rng.randn(200, 16)
    assert precision_recall(real, real) == (1.0, 1.0)
    assert precision_recall(real, real + 100.0) == (0.0, 0.0)
    # Real data has two far-apart modes; the generator covers only one: realistic but half the data missed.
    # (4-D so that 3-NN balls of a few hundred points cover a Gaussian well: same-distribution P, R ~ 0.95.)
    two_modes = np.concatenate([rng.randn(200, 4), rng.randn(200, 4) + 50])
    one_mode = rng.randn(400, 4)
    p, r = precision_recall(two_modes, one_mode)
    assert p > 0.9 and 0.4 < r < 0.5


# ----------------------------------------------------------------------------- Inception Score

def test_inception_score_of_uniform_and_one_hot_probabilities() -> None:
    k = 10
    uniform = np.full((100, k), 1 / k)
    assert inception_score(uniform) == pytest.approx((1.0, 0.0))
    one_hot = np.eye(k)[np.arange(100) % k]  # every split holds each class once: confident and varied
    assert inception_score(one_hot) == pytest.approx((float(k), 0.0))
    one_class = np.eye(k)[np.zeros(100, dtype=int)]  # confident but never varied
    assert inception_score(one_class) == pytest.approx((1.0, 0.0))


# ----------------------------------------------------------------------------- statistics cache

class CountingExtractor(FeatureExtractor):
    """Cheap stand-in feature network: per-channel mean and std of the image."""

    name, description, probs_description, dim, num_classes = "counting", "test features", "", 6, 0

    def __init__(self) -> None:
        self.calls = 0

    def extract(self, images, want_probs=False):
        self.calls += 1
        x = images.float()
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1), None


def test_stats_cache_is_used_and_invalidates_when_the_dataset_changes(tmp_path: Path) -> None:
    root = write_folder_dataset(ToyDataset(n=12, res=8, classes=3), tmp_path / "data")
    cache = tmp_path / "cache"
    ex = CountingExtractor()
    first = dataset_stats(ImageDataset(root), ex, cache_dir=cache, progress=False)
    assert not first.from_cache and first.cache_path.is_file() and ex.calls == 1
    assert first.features.shape == (12, 6) and np.allclose(first.mu, first.features.mean(0))
    again = dataset_stats(ImageDataset(root), ex, cache_dir=cache, progress=False)
    assert again.from_cache and ex.calls == 1 and np.array_equal(again.features, first.features)

    victim = sorted(root.rglob("*.png"))[0]  # change one pixel of one image
    img = np.asarray(Image.open(victim)).copy()
    img[0, 0] = 255 - img[0, 0]
    Image.fromarray(img).save(victim)
    changed = dataset_stats(ImageDataset(root), ex, cache_dir=cache, progress=False)
    assert not changed.from_cache and ex.calls == 2 and changed.fingerprint != first.fingerprint
    assert not np.array_equal(changed.features, first.features)

    (root / "class0" / "extra.png").write_bytes(victim.read_bytes())  # an added image
    assert dataset_fingerprint(ImageDataset(root)) != changed.fingerprint
    subset = dataset_stats(ImageDataset(root), ex, max_items=5, cache_dir=cache, progress=False)
    assert subset.features.shape == (5, 6) and not subset.from_cache


def test_in_memory_dataset_fingerprint_follows_its_pixels() -> None:
    ds = ToyDataset(n=6, res=8)
    before = dataset_fingerprint(ds)
    assert dataset_fingerprint(ToyDataset(n=6, res=8)) == before
    ds.images[3][0, 0, 0] ^= 1
    assert dataset_fingerprint(ds) != before


# ----------------------------------------------------------------------------- Inception file

def test_missing_inception_file_names_the_fallback(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(INCEPTION_ENV, raising=False)
    with pytest.raises(UserInputError, match="fd_effnet") as e:
        load_extractor("inception")
    assert INCEPTION_ENV in str(e.value) and "inception-2015-12-05" in str(e.value)
    monkeypatch.setenv(INCEPTION_ENV, str(tmp_path / "nowhere.pt"))
    with pytest.raises(UserInputError, match=r"nowhere\.pt does not exist.*fd_effnet"):
        load_extractor("inception")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torchscript archive")
    with pytest.raises(UserInputError, match="not a TorchScript"):
        load_extractor("inception", inception_weights=junk)


class _FakeInception(torch.nn.Module):
    """Has the reference file's signature; its 'features' report what it was given (size, channels, range)."""

    def forward(self, img: torch.Tensor, return_features: bool = False, use_fp16: bool = False,
                no_output_bias: bool = False) -> torch.Tensor:
        b, c, h, w = img.shape
        x = img.to(torch.float32)
        feats = torch.zeros(b, 2048)
        feats[:, 0] = float(h)
        feats[:, 1] = float(c)
        feats[:, 2] = x.flatten(1).max(dim=1).values
        feats[:, 3] = float(img.dtype == torch.uint8)
        feats[:, 4:] = torch.randn(b, 2044) * 0.01 + x.mean(dim=(1, 2, 3))[:, None] / 255.0
        if return_features:
            return feats
        return torch.softmax(feats[:, :1008], dim=1)


def test_inception_file_gets_uint8_images_at_native_size(tmp_path: Path) -> None:
    path = tmp_path / "inception-2015-12-05.pt"
    torch.jit.save(torch.jit.script(_FakeInception()), str(path))
    ex = InceptionExtractor(path)
    gray = torch.full((2, 1, 16, 16), 255, dtype=torch.uint8)
    feats, probs = ex.extract(gray, want_probs=True)
    assert feats[:, :4].tolist() == [[16.0, 3.0, 255.0, 1.0]] * 2  # not resized, 3 channels, uint8 0..255
    assert probs.shape == (2, 1008) and torch.allclose(probs.sum(1), torch.ones(2))

    G = make_tiny_generator(16, c_dim=3)
    report = compute_metrics(G, ToyDataset(n=8, res=16), ["fid", "is"], num=4, inception_weights=path,
                             use_cache=False, progress=False, batch=4, is_splits=2)
    assert set(report.values) == {"fid", "is", "is_std"} and report.values["fid"] > 0
    assert "Inception-v3" in report.feature_spaces["fid"] and "1008" in report.feature_spaces["is"]


def test_metric_names_say_their_feature_space() -> None:
    assert [k for s in parse_metrics("fd_effnet,kid,pr,is_effnet,fid,is") for k in s.keys] == [
        "fd_effnet", "kid_effnet", "precision_effnet", "recall_effnet", "is_effnet", "fid", "is"]
    with pytest.raises(UserInputError, match="unknown metric"):
        parse_metrics("fid,fancy")


# ----------------------------------------------------------------------------- EfficientNet, CLI, trainer

@pytest.fixture(scope="module")
def effnet() -> EffNetExtractor:
    return EffNetExtractor()


def test_effnet_probabilities_are_the_classifier_head_on_the_pooled_features(effnet: EffNetExtractor) -> None:
    images = torch.from_numpy(np.stack(ToyDataset(n=2, res=32).images))
    feats, probs = effnet.extract(images, want_probs=True)
    net = effnet.classifier.net
    x = torch.nn.functional.interpolate(images.float() / 255, size=(224, 224), mode="bicubic", antialias=True)
    with torch.no_grad():
        logits = net((x.clamp(0, 1) - 0.5) / 0.5)  # timm's own pool + head on the uncropped 224² image
    assert feats.shape == (2, 1280)
    assert torch.allclose(probs, logits.softmax(1), atol=1e-5)


def test_cli_metrics_end_to_end_writes_json(tmp_path: Path, capsys) -> None:
    data = write_folder_dataset(ToyDataset(n=12, res=16, classes=3), tmp_path / "data")
    ckpt = save_checkpoint(tmp_path / "g.sgxl", make_tiny_generator(16, c_dim=3), {"kimg": 1},
                           class_names=["class0", "class1", "class2"])
    out = tmp_path / "metrics.json"
    assert main(["metrics", "--ckpt", str(ckpt), "--data", str(data), "--metrics", "fd_effnet,kid,pr", "--num",
                 "8", "--batch", "12", "--per-class", "--out", str(out), "--device", "cpu",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    result = json.loads(out.read_text())
    m = result["metrics"]
    assert set(m) == {"fd_effnet", "kid_effnet", "precision_effnet", "recall_effnet"}  # never "fid"
    assert m["fd_effnet"]["value"] > 0 and "EfficientNet-lite0" in m["fd_effnet"]["feature_space"]
    assert 0 <= m["precision_effnet"]["value"] <= 1 and "std" in m["kid_effnet"]
    # By default as many dataset images as generated ones (a fixed random subset), cached per count.
    assert result["num_gen"] == 8 and result["num_real"] == 8
    assert set(result["per_class"]["fd_effnet"]["classes"]) <= {"class0", "class1", "class2"}
    assert [p.name.split("-")[1] for p in (tmp_path / "cache").glob("effnet-*.npz")] == ["8"]
    table = capsys.readouterr().out
    assert "fd_effnet" in table and "EfficientNet-lite0" in table
    assert "8 generated vs 8 dataset images" in table
    assert main(["metrics", "--ckpt", str(ckpt), "--data", str(data), "--metrics", "fd_effnet", "--num", "8",
                 "--num-real", "all", "--batch", "12", "--out", str(out), "--device", "cpu",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    assert json.loads(out.read_text())["num_real"] == 12
    assert sorted(p.name.split("-")[1] for p in (tmp_path / "cache").glob("effnet-*.npz")) == ["12", "8"]
    for bad in ("1", "some"):
        assert main(["metrics", "--ckpt", str(ckpt), "--data", str(data), "--num", "8", "--num-real", bad]) == 2
        assert "--num-real" in capsys.readouterr().err

    assert main(["metrics", "--ckpt", str(ckpt), "--data", str(data), "--metrics", "fid", "--num", "4",
                 "--device", "cpu", "--inception-weights", str(tmp_path / "absent.pt")]) == 2
    assert "fd_effnet" in capsys.readouterr().err


def test_trainer_logs_snapshot_metrics(tmp_path: Path, effnet: EffNetExtractor, monkeypatch) -> None:
    from core.networks.discriminator import DiscriminatorConfig
    from core.networks.feature_nets import EfficientNetFeatures
    from core.training.trainer import TrainConfig, Trainer, build_generator_for

    monkeypatch.setenv("SGXL_CACHE_DIR", str(tmp_path / "cache"))
    ds = ToyDataset(n=8, res=16, classes=3)
    G, names = build_generator_for(ds, "tiny", None, None, "cpu")
    cfg = TrainConfig(batch=4, disc=DiscriminatorConfig(input_size=64), metrics=["fd_effnet"], metrics_num=4,
                      sample_seeds=1, sample_classes=1)
    trainer = Trainer(G, ds, tmp_path / "run", cfg, {"effnet": EfficientNetFeatures(effnet.classifier.net,
                                                                                    min_size=64)},
                      class_names=names)
    trainer._metric_extractors["effnet"] = effnet  # reuse the loaded network
    path = trainer.save_snapshot()
    events = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    metric_events = [e for e in events if e.get("event") == "metrics"]
    assert len(metric_events) == 1 and metric_events[0]["kimg"] == 0.0
    assert metric_events[0]["fd_effnet"] > 0
    assert load_checkpoint(path).meta["metrics"]["fd_effnet"] == metric_events[0]["fd_effnet"]
    assert TrainConfig.from_dict(cfg.to_dict()).metrics == ["fd_effnet"]


def test_sgxl_train_passes_metric_flags(tmp_path: Path, monkeypatch, capsys) -> None:
    import core.training.launch as launch

    seen = []
    monkeypatch.setattr(launch, "run_training", lambda opts: seen.append(opts))
    assert main(["train", "--data", str(tmp_path), "--metrics", "fd_effnet,kid", "--metrics-num", "64"]) == 0
    assert seen[0].metrics == ["fd_effnet", "kid"] and seen[0].metrics_num == 64
    assert main(["train", "--data", str(tmp_path), "--metrics", "fid,fancy"]) == 2  # fails before training
    assert "unknown metric" in capsys.readouterr().err and len(seen) == 1
