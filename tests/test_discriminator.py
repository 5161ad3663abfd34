"""Projected discriminator, DiffAugment and the loss: shapes, frozen parts, gradients, schedules."""

from __future__ import annotations

import pytest
import torch

from core.networks.discriminator import DiscriminatorConfig, ProjectedDiscriminator, RandomProjection
from core.networks.feature_nets import EfficientNetFeatures
from core.training.augment import diff_augment, rand_cutout, rand_translation
from core.training.loss import LossConfig, ProjectedGANLoss, blur_sigma, gaussian_blur, out_of_range_penalty
from tests.helpers import make_tiny_generator


@pytest.fixture(scope="module")
def effnet() -> EfficientNetFeatures:
    return EfficientNetFeatures()


def test_diff_augment_shapes_and_gradients() -> None:
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    y = diff_augment(x)
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="unknown DiffAugment op"):
        diff_augment(x, "rotate")


def test_translation_moves_content_and_zero_fills() -> None:
    x = torch.ones(64, 1, 8, 8)
    y = rand_translation(x, ratio=0.25)
    shifted = (y == 0).flatten(1).any(dim=1)
    assert shifted.float().mean() > 0.5  # most of 64 images were shifted (P(no shift) = 1/25)
    assert set(y.unique().tolist()) <= {0.0, 1.0}


def test_cutout_zeroes_a_square_of_the_right_size() -> None:
    x = torch.ones(32, 1, 10, 10)
    y = rand_cutout(x, ratio=0.2)  # a 2x2 square, possibly clipped by the border
    zeros = (y == 0).flatten(1).sum(dim=1)
    assert zeros.max() == 4 and zeros.min() >= 1


def test_random_projection_is_frozen_and_deterministic() -> None:
    a, b = RandomProjection([24, 40, 112, 320], 64, seed=3), RandomProjection([24, 40, 112, 320], 64, seed=3)
    assert all(not p.requires_grad for p in a.parameters())
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    feats = [torch.randn(2, c, s, s) for c, s in zip([24, 40, 112, 320], [56, 28, 14, 7])]
    out = a(feats)
    assert [tuple(o.shape[1:]) for o in out] == [(64, 112, 112), (64, 56, 56), (128, 28, 28), (256, 14, 14)]


def test_projected_discriminator_logits_and_frozen_features(effnet: EfficientNetFeatures) -> None:
    D = ProjectedDiscriminator({"effnet": effnet}, DiscriminatorConfig(c_dim=3)).train()
    img = torch.randn(2, 3, 16, 16, requires_grad=True)
    c = torch.eye(3)[[0, 2]]
    logits = D(img, c)
    assert logits.ndim == 2 and logits.shape[0] == 2
    logits.mean().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0  # gradients reach the image (for G)
    assert all(p.grad is None for p in D.feature_networks.parameters())  # frozen backbone
    assert all(p.grad is None for p in D.projections.parameters())  # frozen random projections
    trained = D.trainable_parameters()
    assert trained and all(p.grad is not None for p in trained)
    assert not D.feature_networks.training  # BatchNorm statistics of the backbone never update
    # Class conditioning changes the logits.
    with torch.no_grad():
        D.eval()
        x = torch.randn(1, 3, 16, 16)
        assert not torch.allclose(D(x, torch.eye(3)[[0]], augment=False), D(x, torch.eye(3)[[1]], augment=False))


def test_blur_schedule_and_blur() -> None:
    cfg = LossConfig(blur_init_sigma=2, blur_fade_kimg=300)
    assert blur_sigma(cfg, 0) == 2 and blur_sigma(cfg, 150_000) == pytest.approx(1) and blur_sigma(cfg, 400_000) == 0
    x = torch.zeros(1, 1, 15, 15)
    x[0, 0, 7, 7] = 1
    y = gaussian_blur(x, 2.0)
    assert y.shape == x.shape and y.sum() == pytest.approx(1, abs=1e-5) and y[0, 0, 7, 7] < 0.1
    assert torch.equal(gaussian_blur(x, 0.2), x)  # radius 0: identity


def test_hinge_losses(effnet: EfficientNetFeatures) -> None:
    G = make_tiny_generator(16, c_dim=3).train()
    D = ProjectedDiscriminator({"effnet": effnet}, DiscriminatorConfig(c_dim=3)).train()
    loss = ProjectedGANLoss(G, D, LossConfig())
    c = torch.eye(3)[[0, 1]]
    d_loss, d_stats = loss.discriminator_loss(torch.rand(2, 3, 16, 16) * 2 - 1, c, torch.randn(2, G.z_dim), c, 0)
    assert d_stats["D_loss"] == pytest.approx(d_stats["D_fake"] + d_stats["D_real"], rel=1e-5)
    assert d_loss >= 0
    g_loss, g_stats = loss.generator_loss(torch.randn(2, G.z_dim), c, 0)
    g_loss.backward()
    assert all(p.grad is not None for p in G.trainable_parameters())
    with pytest.raises(ValueError, match="needs a classifier"):
        ProjectedGANLoss(G, D, LossConfig(cls_weight=1.0))


def test_out_of_range_penalty_pulls_far_pixels_back() -> None:
    inside = torch.rand(2, 3, 8, 8) * 2 - 1
    assert out_of_range_penalty(inside) == 0
    far = inside.clone()
    far[0, 2, :4] = -30.0  # a drifted blue channel, as the demo's 64² head did without it
    far.requires_grad_(True)
    penalty = out_of_range_penalty(far)
    assert float(penalty) == pytest.approx((29.0**2) * 32 / far.numel())
    penalty.backward()
    assert (far.grad[0, 2, :4] < 0).all() and far.grad[0, 2, 4:].abs().sum() == 0  # push up only the far ones


def test_range_weight_adds_to_the_generator_loss(effnet: EfficientNetFeatures) -> None:
    G = make_tiny_generator(16, c_dim=3).train()
    D = ProjectedDiscriminator({"effnet": effnet}, DiscriminatorConfig(c_dim=3)).train()
    with torch.no_grad():
        G.synthesis.layers()[-1].bias.add_(8.0)  # ToRGB bias: push the images past 1 (x 0.25 output scale)
    c = torch.eye(3)[[0, 1]]
    z = torch.randn(2, G.z_dim)
    _, plain_stats = ProjectedGANLoss(G, D, LossConfig()).generator_loss(z, c, 0)
    ranged, stats = ProjectedGANLoss(G, D, LossConfig(range_weight=10.0)).generator_loss(z, c, 0)
    assert "G_range" not in plain_stats
    with torch.no_grad():
        expected = float(out_of_range_penalty(G(z, c)))
    assert expected > 0.5
    assert stats["G_range"] == pytest.approx(expected, rel=1e-5)
    # Per image like the adversarial term; the loss itself is the sum over the 2 images (official scale).
    assert stats["G_loss"] == pytest.approx(stats["G_adv"] + 10.0 * expected, rel=1e-5)
    assert float(ranged) == pytest.approx(2 * stats["G_loss"], rel=1e-5)


def test_path_length_regularization_gives_generator_gradients(effnet: EfficientNetFeatures) -> None:
    G = make_tiny_generator(16, c_dim=3).train()
    D = ProjectedDiscriminator({"effnet": effnet}, DiscriminatorConfig(c_dim=3))
    loss = ProjectedGANLoss(G, D, LossConfig(pl_weight=2.0))
    c = torch.eye(3)[[0, 1, 2, 0]]
    pl_loss, pl_mean, stats = loss.path_length_loss(torch.randn(4, G.z_dim), c, pl_mean=0.0)
    assert pl_mean > 0 and stats["G_pl_penalty"] >= 0
    pl_loss.backward()
    assert G.mapping.fc0.weight.grad is not None and G.mapping.fc0.weight.grad.abs().sum() > 0
