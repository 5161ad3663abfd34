"""Photo inversion: projection, pivotal tuning, edits, metrics, photo loading and `sgxl invert`.

The generator is the tiny random-init 16² model, made to look like a trained one in the two ways inversion
depends on: its per-class `w_avg` is the real mean of its mapped samples (a trained model's EMA converges
there; the helper's random w_avg does not), and its ToRGB gain is doubled so images span about [-1, 1]
(the random model's outputs have std 0.13, which makes every PSNR look good). Measured on that model
(16², EfficientNet-lite0 distance at 64², 1 thread): images of 10 seeds of one class are 14.4-22.4 dB apart
(45 pairs), the class's w_avg image is 19-21 dB from them, and a 50-step W+ projection reaches 29.9 / 34.8 /
30.0 dB on seeds 0 / 1 / 2. The 27 dB threshold sits 3 dB under the worst of those and 4.6 dB over the
closest other sample, so passing means the projection found *this* image, not a look-alike.
"""

from __future__ import annotations

import copy
import json
import threading
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from core.cli import main
from core.errors import UserInputError
from core.inversion import edit
from core.inversion.perceptual import build_perceptual, load_lpips_linear, vgg16_features
from core.inversion.photo import load_photo
from core.inversion.pipeline import default_threads
from core.inversion.projector import (
    Projector,
    ProjectorConfig,
    choose_class,
    learning_rate,
    project,
    w_stats,
)
from core.inversion.pti import PTIConfig, load_pti_checkpoint, pivotal_tuning, save_pti_checkpoint
from core.inversion.quality import image_metrics, psnr, ssim
from core.io.checkpoint import save_checkpoint
from core.sampling import to_uint8, truncate, ws_from_seeds
from tests.helpers import make_tiny_generator

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the test photo and SSIM reference")
CLASS = 2


def calibrated_generator(res: int = 16):
    G = make_tiny_generator(res)
    with torch.no_grad():
        G.synthesis.layers()[-1].weight.mul_(2.0)  # ToRGB gain: images span about [-1, 1]
        for c in range(G.c_dim):
            G.mapping.w_avg[c] = w_stats(G, c, 2000, seed=100 + c)[0]  # what training's EMA converges to
    return G


@pytest.fixture(scope="module")
def G():
    return calibrated_generator()


@pytest.fixture(scope="module")
def perceptual():
    return build_perceptual(size=64)  # EfficientNet-lite0 taps at 64²: enough for 16² images, cheap on CPU


@pytest.fixture(scope="module")
def chelsea_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "chelsea.png"
    Image.fromarray(skimage_data.chelsea()).save(path)
    return path


def state_snapshot(module: torch.nn.Module) -> dict:
    return {**{k: v.detach().clone() for k, v in module.state_dict().items()},
            **{f"{k}.requires_grad": p.requires_grad for k, p in module.named_parameters()}}


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert (torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k]), k


# ----------------------------------------------------------------------------- metrics

def test_ssim_and_psnr_match_scikit_image() -> None:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    rng = np.random.default_rng(0)
    a = rng.random((2, 3, 24, 20))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    b[1] = rng.random((3, 24, 20))  # an unrelated image: SSIM near 0
    ours_ssim = ssim(torch.from_numpy(a), torch.from_numpy(b))
    ours_psnr = psnr(torch.from_numpy(a), torch.from_numpy(b))
    for i in range(2):
        ref = structural_similarity(a[i].transpose(1, 2, 0), b[i].transpose(1, 2, 0), data_range=1.0,
                                    channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False)
        assert abs(float(ours_ssim[i]) - ref) < 1e-5
        assert abs(float(ours_psnr[i]) - peak_signal_noise_ratio(a[i], b[i], data_range=1.0)) < 1e-4
    assert float(ours_ssim[0]) > 0.5 > 0.1 > abs(float(ours_ssim[1]))
    same = torch.from_numpy(a[:1])
    assert float(ssim(same, same)[0]) == pytest.approx(1.0) and float(psnr(same, same)[0]) == 100.0


# ----------------------------------------------------------------------------- projection and PTI

@pytest.mark.slow
def test_projection_recovers_an_image_of_the_model(G, perceptual) -> None:
    ws_true = ws_from_seeds(G, [0], CLASS)
    others = ws_from_seeds(G, list(range(1, 9)), CLASS)
    with torch.no_grad():
        target = G.synthesis(ws_true)
        other_images = G.synthesis(others)
    closest_other = max(image_metrics(other_images[i:i + 1], target)["psnr"] for i in range(8))
    before = state_snapshot(G)

    result = project(G, target, CLASS, perceptual, ProjectorConfig(steps=50, w_plus=True, w_stats_samples=2000,
                                                                    preview_every=10))
    first = result.history[9]  # the first rendered step
    assert result.steps_done == 50 and not result.cancelled
    assert result.metrics["psnr"] > 27.0, result.metrics
    assert result.metrics["psnr"] > closest_other + 4.0
    assert result.metrics["psnr"] > first["psnr"] and result.metrics["perceptual"] < first["perceptual"]
    assert result.metrics["ssim"] > 0.9
    with torch.no_grad():  # the returned image is G(ws) of the returned ws
        assert torch.allclose(G.synthesis(result.ws), result.image, atol=1e-5)
    assert_same_state(before, state_snapshot(G))  # projection never writes into G
    assert all(p.grad is None for p in G.parameters())


@pytest.mark.slow
def test_pti_beats_projection_on_a_real_photo_and_leaves_g_untouched(G, perceptual, chelsea_png, tmp_path) -> None:
    target = load_photo(chelsea_png, G.img_resolution).target
    proj = project(G, target, CLASS, perceptual, ProjectorConfig(steps=20, w_plus=True, w_stats_samples=1000,
                                                                  preview_every=20))
    before = state_snapshot(G)
    tuned = pivotal_tuning(G, target, proj.ws, CLASS, perceptual,
                           PTIConfig(steps=20, lr=1e-3, w_stats_samples=1000, preview_every=5))
    assert tuned.metrics["psnr"] > proj.metrics["psnr"] + 1.0, (proj.metrics, tuned.metrics)
    assert tuned.metrics["ssim"] > proj.metrics["ssim"] + 0.1
    # the pixel term dominates (run_inversion.py's weights): the feature distance may rise a little on a random G
    assert tuned.history[-1]["loss"] < 0.7 * tuned.history[0]["loss"]
    assert all("locality_mse" in row for row in tuned.history)  # the locality regulariser ran every step
    assert_same_state(before, state_snapshot(G))  # the original: same tensors, same requires_grad flags
    assert tuned.generator is not G
    assert not torch.equal(tuned.generator.synthesis.layers()[0].weight, G.synthesis.layers()[0].weight)
    assert torch.equal(tuned.generator.mapping.w_avg, G.mapping.w_avg)  # only synthesis is tuned

    path = save_pti_checkpoint(tmp_path / "pti.sgxl", tuned, meta={"image": str(chelsea_png)})
    ckpt, pivot, cls = load_pti_checkpoint(path)
    assert cls == CLASS and torch.equal(pivot, tuned.ws.cpu())
    with torch.no_grad():
        assert np.array_equal(to_uint8(ckpt.generator.synthesis(pivot)), to_uint8(tuned.image))


@pytest.mark.slow
def test_pti_weights_pixels_as_the_official_recipe(G, perceptual, chelsea_png) -> None:
    """run_inversion.py's MSE is on 0..255 pixels (127.5² x ours) next to a perceptual term of weight 1 and a
    perceptual-only locality term of weight 10: the pixel term dominates, so PTI fits the photo's pixels.
    The equal weights we had (PTI paper's code, where LPIPS is small) let the perceptual term dominate."""
    cfg = PTIConfig()
    assert (cfg.lr, cfg.steps, cfg.l2_weight, cfg.perceptual_weight) == (3e-4, 350, 127.5**2, 1.0)
    assert (cfg.locality_l2_weight, cfg.locality_perceptual_weight, cfg.locality_every) == (0.0, 10.0, 1)
    target = load_photo(chelsea_png, G.img_resolution).target
    pivot = ws_from_seeds(G, [0], CLASS, psi=0.0)  # the class centre: far from the photo
    start = image_metrics(G.synthesis(pivot).detach(), target)["psnr"]
    gains = {}
    for name, weights in (("official", {}), ("equal", {"l2_weight": 1.0, "locality_l2_weight": 0.1,
                                                       "locality_perceptual_weight": 0.1})):
        tuned = pivotal_tuning(G, target, pivot, CLASS, perceptual,
                               PTIConfig(steps=10, lr=1e-3, w_stats_samples=200, preview_every=10, **weights))
        gains[name] = tuned.metrics["psnr"] - start
        assert tuned.history[0]["mse_loss"] == pytest.approx(float((G.synthesis(pivot) - target).square().mean()),
                                                             rel=1e-4)  # mse_loss stays in [-1, 1] units
    assert gains["official"] > gains["equal"] + 1.0 and gains["official"] > 2.0, gains


def test_stepwise_api_callback_and_cancel(G, perceptual) -> None:
    with torch.no_grad():
        target = G.synthesis(ws_from_seeds(G, [3], CLASS))
    reports, stop = [], threading.Event()

    def on_step(report) -> None:
        reports.append(report)
        if report.step == 3:
            stop.set()

    result = project(G, target, CLASS, perceptual, ProjectorConfig(steps=100, w_stats_samples=500), on_step, stop)
    assert result.cancelled and result.steps_done == 3 and len(reports) == 3
    assert [r.step for r in reports] == [1, 2, 3] and reports[0].total == 100 and reports[0].phase == "projection"
    assert reports[-1].image.shape == (1, 3, 16, 16) and {"loss", "psnr", "ssim", "perceptual"} <= set(
        reports[-1].losses)
    # The same thing driven by hand, as a GUI timer would: identical numbers (seeded noise).
    projector = Projector(G, target, CLASS, perceptual, ProjectorConfig(steps=100, w_stats_samples=500))
    manual = [projector.step() for _ in range(3)]
    assert [r.losses["loss"] for r in manual] == [r.losses["loss"] for r in reports]
    assert torch.equal(projector.result().ws, result.ws)
    # StyleGAN2's schedule: 0 at the start, full in the middle, cosine to 0 at the end.
    cfg = ProjectorConfig(steps=100)
    assert learning_rate(cfg, 0) == 0 and learning_rate(cfg, 50) == cfg.lr and learning_rate(cfg, 99) < 0.01 * cfg.lr


def test_choose_class(G, chelsea_png) -> None:
    target = load_photo(chelsea_png, 16).target
    assert choose_class(G, target, 3).index == 3
    fallback = choose_class(G, target)
    assert (fallback.index, fallback.source) == (0, "default") and "class 0" in fallback.note
    with pytest.raises(UserInputError, match="out of range"):
        choose_class(G, target, 7)
    imagenet_like = make_tiny_generator(16, c_dim=1000)
    guess = choose_class(imagenet_like, load_photo(chelsea_png, 256).target)  # the photo, not the 16² target
    assert guess.source == "predicted" and guess.index in (281, 282, 285), guess  # tabby / tiger / Egyptian cat


# ----------------------------------------------------------------------------- edits

def test_class_swap_moves_the_centre_and_keeps_the_offset(G) -> None:
    ws = ws_from_seeds(G, [5], CLASS)
    swapped = edit.class_swap(G, ws, CLASS, 4)
    assert torch.allclose(edit.class_offset(G, swapped, 4), edit.class_offset(G, ws, CLASS), atol=1e-5)
    assert (swapped - ws).abs().max() > 0.1
    with torch.no_grad():
        assert (G.synthesis(swapped) - G.synthesis(ws)).abs().mean() > 0.02  # a different image
    # Truncation toward the new class commutes with the swap.
    c_src, c_dst = torch.tensor([CLASS]), torch.tensor([4])
    assert torch.allclose(truncate(G, swapped, c_dst, 0.6), edit.class_swap(G, truncate(G, ws, c_src, 0.6), CLASS, 4),
                          atol=1e-5)
    # Half way = the blend of the two class centres; t = 0 is the identity.
    blend = torch.zeros(G.c_dim)
    blend[CLASS] = blend[4] = 0.5
    assert torch.allclose(edit.class_swap(G, ws, CLASS, 4, t=0.5), edit.class_swap(G, ws, CLASS, blend), atol=1e-5)
    assert torch.equal(edit.class_swap(G, ws, CLASS, 4, t=0.0), ws)


def test_interpolation_and_style_mixing(G) -> None:
    a, b = ws_from_seeds(G, [1], CLASS), edit.sample_ws(G, 2, 3)
    path = edit.interpolation_path(a, b, 5)
    assert path.shape == (5, G.num_ws, G.w_dim)
    assert torch.equal(path[0], a[0]) and torch.allclose(path[-1], b[0])
    assert torch.allclose(path[2], (a[0] + b[0]) / 2, atol=1e-6)
    mixed = edit.style_mix(a, b, [0, 1, 2])
    assert torch.equal(mixed[:, :3], b[:, :3]) and torch.equal(mixed[:, 3:], a[:, 3:])
    with pytest.raises(ValueError):
        edit.style_mix(a, b, [G.num_ws])


def test_ganspace_directions_are_orthonormal_and_cached(G, tmp_path, monkeypatch) -> None:
    space = edit.ganspace_directions(G, cache_dir=tmp_path, num_samples=2000, num_components=8)
    d = space.directions
    assert d.shape == (8, G.w_dim)
    assert torch.allclose(d @ d.T, torch.eye(8), atol=1e-5)
    assert bool((space.stdevs[:-1] >= space.stdevs[1:]).all()) and float(space.stdevs[-1]) > 0
    cache = edit.ganspace_cache_path(G, tmp_path, 2000, 8)
    assert cache.is_file()

    def fail(*args, **kwargs):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(edit, "compute_ganspace", fail)
    again = edit.ganspace_directions(G, cache_dir=tmp_path, num_samples=2000, num_components=8)
    assert torch.equal(again.directions, d) and torch.equal(again.stdevs, space.stdevs)
    assert again.meta["cached"] == str(cache)
    tuned_copy = copy.deepcopy(G)  # a PTI result: new synthesis, same mapping -> same cache entry
    with torch.no_grad():
        tuned_copy.synthesis.layers()[0].weight.add_(1.0)
    assert edit.ganspace_cache_path(tuned_copy, tmp_path, 2000, 8) == cache
    other = copy.deepcopy(G)
    with torch.no_grad():
        other.mapping.w_avg.add_(1.0)
    assert edit.ganspace_cache_path(other, tmp_path, 2000, 8) != cache

    ws = ws_from_seeds(G, [0], CLASS)  # slider units are standard deviations along each direction
    moved = space.apply(ws, {1: 2.0}, layers=[0, 1])
    delta = moved - ws
    assert torch.allclose(delta[0, 0] @ d[1], 2.0 * space.stdevs[1], rtol=1e-4)
    assert torch.equal(delta[0, 2:], torch.zeros_like(delta[0, 2:]))


# ----------------------------------------------------------------------------- perceptual distances

def test_vgg_distance_is_named_honestly_and_lpips_needs_linear_weights(tmp_path, monkeypatch) -> None:
    torch.manual_seed(0)
    features = vgg16_features()
    try:  # our module indices are torchvision's, so its state dicts load as they are
        import torchvision

        assert features.state_dict().keys() == torchvision.models.vgg16().features.state_dict().keys()
    except ImportError:
        pass
    vgg_path = tmp_path / "vgg16.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()} | {"classifier.0.bias": torch.zeros(3)},
               vgg_path)
    monkeypatch.setenv("SGXL_VGG16_WEIGHTS", str(vgg_path))
    plain = build_perceptual()
    assert plain.name == "vgg16_feature" and "not LPIPS" in plain.description
    x, y = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.allclose(plain(x, x), torch.zeros(2), atol=1e-6) and bool((plain(x, y) > 0).all())

    ones = {f"lin{k}.model.1.weight": torch.ones(1, c, 1, 1) for k, c in enumerate([64, 128, 256, 512, 512])}
    torch.save(ones, tmp_path / "lin_ones.pth")
    lpips = build_perceptual(lpips=tmp_path / "lin_ones.pth")
    assert lpips.name == "lpips_vgg16"
    assert torch.allclose(lpips(x, y), plain(x, y), rtol=1e-5)  # unit weights = the unweighted distance
    halves = {k: v * 0.5 for k, v in ones.items()}
    torch.save(halves, tmp_path / "lin_half.pth")
    assert torch.allclose(build_perceptual(lpips=tmp_path / "lin_half.pth")(x, y), 0.5 * plain(x, y), rtol=1e-5)
    assert [w.numel() for w in load_lpips_linear(tmp_path / "lin_half.pth")] == [64, 128, 256, 512, 512]

    monkeypatch.delenv("SGXL_VGG16_WEIGHTS")
    with pytest.raises(UserInputError, match="need VGG16 weights"):
        build_perceptual(lpips=tmp_path / "lin_ones.pth")
    with pytest.raises(UserInputError, match="does not exist"):
        build_perceptual(vgg16=tmp_path / "missing.pth")
    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "wrong.pth")
    with pytest.raises(UserInputError, match="not a torchvision VGG16"):
        build_perceptual(vgg16=tmp_path / "wrong.pth")
    assert build_perceptual(size=32).name == "effnet_lite0_feature"


# ----------------------------------------------------------------------------- photos

def _save(tmp_path: Path, name: str, img: Image.Image, **kw) -> Path:
    path = tmp_path / name
    img.save(path, **kw)
    return path


def test_odd_photos_are_handled(tmp_path, chelsea_png) -> None:
    rgb = Image.open(chelsea_png).convert("RGB")
    cases = {
        "gray.png": rgb.convert("L"),
        "palette.gif": rgb.convert("P"),
        "cmyk.jpg": rgb.convert("CMYK"),
        "wide.png": rgb.resize((120, 30)),
        "tiny.png": rgb.resize((10, 12)),
        "huge.jpg": rgb.resize((4000, 3000)),
    }
    paths = {name: _save(tmp_path, name, img) for name, img in cases.items()}
    sixteen = (np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
    paths["16bit.png"] = _save(tmp_path, "16bit.png", Image.fromarray(sixteen))
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., 0] = 255  # red under alpha 0 on the left half: must come out white, not red
    rgba[:, 10:, 3] = 255
    paths["alpha.png"] = _save(tmp_path, "alpha.png", Image.fromarray(rgba, "RGBA"))

    photos = {name: load_photo(p, 16) for name, p in paths.items()}
    for name, photo in photos.items():
        assert photo.target.shape == (1, 3, 16, 16), name
        assert photo.target.min() >= -1 and photo.target.max() <= 1, name
    gray = photos["gray.png"].target
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    assert torch.allclose(photos["16bit.png"].target, gray, atol=2 / 255)  # 16 bit scaled down, not clipped
    cmyk = photos["cmyk.jpg"].target
    assert (cmyk - load_photo(chelsea_png, 16).target).abs().mean() < 0.1  # colours survive CMYK JPEG
    alpha = photos["alpha.png"].to_uint8()
    assert (alpha[:, :4] == 255).all() and (alpha[:, -4:] == [255, 0, 0]).all()
    assert photos["wide.png"].box == (45, 0, 30) and "cropped the centre" in photos["wide.png"].notes[0]
    assert any("upsampled" in n for n in photos["tiny.png"].notes)
    assert any("reduced scale" in n for n in photos["huge.jpg"].notes)
    assert photos["huge.jpg"].original_size[0] < 4000  # decoded small, straight from the JPEG


def test_bad_photos_are_refused_with_a_clear_message(tmp_path, monkeypatch) -> None:
    (tmp_path / "notes.jpg").write_text("not an image at all")
    png = tmp_path / "cut.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 90).save(png)
    (tmp_path / "truncated.png").write_bytes(png.read_bytes()[:60])
    Image.new("RGB", (5, 40)).save(tmp_path / "sliver.png")
    for name, message in [("notes.jpg", "not an image file"), ("missing.png", "no photo at"),
                          ("truncated.png", "cannot decode"), ("sliver.png", "at least 8")]:
        with pytest.raises(UserInputError, match=message):
            load_photo(tmp_path / name, 16)
    with pytest.raises(UserInputError, match="is a folder"):
        load_photo(tmp_path, 16)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(UserInputError, match="safety limit"):
        load_photo(png, 16)


# ----------------------------------------------------------------------------- CLI

def test_cli_invert_writes_every_file(tmp_path, chelsea_png, capsys) -> None:
    ckpt_path = save_checkpoint(tmp_path / "tiny.sgxl", calibrated_generator(), {"kimg": 1},
                                class_names=["a", "b", "c", "d", "e"])
    out = tmp_path / "inv"
    threads_before = torch.get_num_threads()
    assert main(["invert", "--ckpt", str(ckpt_path), "--image", str(chelsea_png), "--class", "c", "--steps", "4",
                 "--pti-steps", "3", "--perceptual-size", "32", "--video", "--out", str(out), "--device", "cpu",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "EfficientNet-lite0 feature distance" in printed and "projection" in printed
    for name in ["target.png", "projected.png", "pti.png", "side_by_side.png", "pivot.safetensors", "pti.sgxl",
                 "metrics.json", "progress.mp4"]:
        assert (out / name).is_file(), name

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["perceptual"]["name"] == "effnet_lite0_feature"
    assert metrics["threads"] == default_threads() and torch.get_num_threads() == threads_before  # restored
    # without --lr / --pti-lr the CLI leaves the configs' defaults, the ones the explorer's worker uses
    assert metrics["pti"]["config"]["lr"] == PTIConfig().lr and metrics["projection"]["config"]["lr"] == 0.1
    assert metrics["pti"]["config"]["l2_weight"] == PTIConfig().l2_weight
    assert metrics["class"] == {"index": 2, "name": "c", "source": "given", "note": "", "top5": []}
    assert [r["step"] for r in metrics["projection"]["steps"]] == [1, 2, 3, 4]
    assert [r["step"] for r in metrics["pti"]["steps"]] == [1, 2, 3]
    for row in metrics["projection"]["steps"] + metrics["pti"]["steps"]:
        assert {"psnr", "ssim", "perceptual", "loss"} <= set(row)
    # The reported PSNR is that of the written images (up to 8-bit rounding).
    target = torch.from_numpy(np.array(Image.open(out / "target.png"))).permute(2, 0, 1)[None] / 255.0
    pti_png = torch.from_numpy(np.array(Image.open(out / "pti.png"))).permute(2, 0, 1)[None] / 255.0
    assert float(psnr(pti_png, target)[0]) == pytest.approx(metrics["pti"]["final"]["psnr"], abs=0.3)

    pivot = load_file(str(out / "pivot.safetensors"))
    ckpt, ws, cls = load_pti_checkpoint(out / "pti.sgxl")
    assert cls == 2 and torch.equal(pivot["ws"], ws) and ckpt.class_names == ["a", "b", "c", "d", "e"]
    with torch.no_grad():
        assert np.array_equal(to_uint8(ckpt.generator.synthesis(ws))[0], np.asarray(Image.open(out / "pti.png")))
    assert np.asarray(Image.open(out / "side_by_side.png")).shape == (256, 768, 3)
    frames = imageio.mimread(out / "progress.mp4")
    assert len(frames) == 7 and frames[0].shape[:2] == (256, 512)


def test_cli_invert_bad_image_is_one_line_error(tmp_path, capsys) -> None:
    (tmp_path / "x.png").write_text("hello")
    rc = main(["invert", "--preset", "tiny", "--res", "16", "--image", str(tmp_path / "x.png"), "--steps", "2",
               "--pti-steps", "1", "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "error:" in err and "not an image file" in err and "Traceback" not in err
    rc = main(["invert", "--preset", "tiny", "--res", "16", "--image", str(tmp_path / "x.png"), "--threads", "0",
               "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "error: --threads must be at least 1" in err and "Traceback" not in err


def test_unconditional_model_inverts_without_classes(perceptual) -> None:
    G = make_tiny_generator(16, c_dim=0)
    target = torch.rand(1, 3, 16, 16) * 2 - 1
    choice = choose_class(G, target, None)
    assert (choice.index, choice.source) == (None, "unconditional")
    proj = project(G, target, None, perceptual, ProjectorConfig(steps=2, w_stats_samples=200))
    assert proj.ws.shape == (1, G.num_ws, G.w_dim)
    tuned = pivotal_tuning(G, target, proj.ws, None, perceptual, PTIConfig(steps=1, w_stats_samples=200))
    assert tuned.image.shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="unconditional"):
        edit.class_swap(G, proj.ws, 0, 1)
