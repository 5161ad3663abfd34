"""The StyleGAN-XL generator: shapes, layer specs, truncation, style mixing, progressive growing."""

from __future__ import annotations

import pytest
import torch

from core.networks.generator import Generator, count_parameters
from core.networks.mapping import MappingConfig
from core.networks.presets import preset_config
from core.networks.synthesis import layer_specs
from core.sampling import style_mix, to_uint8, truncate, ws_from_seeds, z_from_seed
from tests.helpers import make_tiny_generator


@pytest.mark.parametrize("res", [16, 32, 64])
def test_generator_output_shapes(res: int) -> None:
    G = make_tiny_generator(res)
    z = torch.randn(3, G.z_dim)
    with torch.no_grad():
        img = G(z, torch.tensor([0, 1, 4]))
    assert img.shape == (3, 3, res, res)
    assert torch.isfinite(img).all()
    assert G.num_ws == len(G.synthesis.layer_names) + 1
    assert G.synthesis.layer_names[-1].endswith(f"_{res}_3")  # ToRGB at the output resolution


def test_imagenet_layer_names_match_official_scheme() -> None:
    # docs/PAPER.md "Progressive growing": a 16² stem with 10 layers is L0_36_1024 ... L8_36_1024, L9_16_1024, L10_16_3.
    _, specs = layer_specs(preset_config("imagenet", 16).synthesis)
    names = [s.name for s in specs]
    assert names == [f"L{i}_36_1024" for i in range(9)] + ["L9_16_1024", "L10_16_3"]
    # Growing 16 -> 1024 ends with 41 synthesis layers (docs/PAPER.md).
    _, specs = layer_specs(preset_config("imagenet", 1024).synthesis)
    assert len(specs) == 41
    assert specs[-1].name.endswith("_1024_3")


def test_superres_layer_names_skip_the_removed_critical_layers() -> None:
    # Official SuperresGenerator naming: the stem keeps L0..L3 (6 layers, 3 critical incl. ToRGB removed),
    # the head continues at L5 ("the gap after L3" in the official fixtures README).
    cfg = preset_config("tiny", 32)
    cfg.synthesis.stages[0].head_layers = 3
    _, specs = layer_specs(cfg.synthesis)
    assert [s.name.split("_")[0] for s in specs] == ["L0", "L1", "L2", "L3", "L5", "L6", "L7", "L8"]


def test_class_blend_equals_one_hot_for_pure_classes(tiny_g16: Generator) -> None:
    z = torch.randn(2, tiny_g16.z_dim)
    with torch.no_grad():
        by_index = tiny_g16.mapping(z, torch.tensor([2, 3]))
        by_weights = tiny_g16.mapping(z, torch.nn.functional.one_hot(torch.tensor([2, 3]), 5).float())
        blend = tiny_g16.mapping(z, torch.tensor([[0, 0, 0.5, 0.5, 0]] * 2))
    assert torch.equal(by_index, by_weights)
    assert not torch.allclose(blend, by_index)


def test_mapping_rejects_bad_classes(tiny_g16: Generator) -> None:
    z = torch.randn(1, tiny_g16.z_dim)
    with pytest.raises(ValueError, match="out of range"):
        tiny_g16.mapping(z, torch.tensor([5]))
    with pytest.raises(ValueError, match="class-conditional"):
        tiny_g16.mapping(z, None)
    with pytest.raises(ValueError, match="z must have shape"):
        tiny_g16.mapping(torch.randn(1, 3), torch.tensor([0]))


def test_truncation_psi0_gives_the_class_mean_image(tiny_g16: Generator) -> None:
    G = tiny_g16
    with torch.no_grad():
        a = G(torch.randn(1, G.z_dim), torch.tensor([1]), psi=0.0)
        b = G(torch.randn(1, G.z_dim), torch.tensor([1]), psi=0.0)
        mean_img = G.synthesis(G.mapping.w_avg[1].expand(1, G.num_ws, -1))
        other_class = G(torch.randn(1, G.z_dim), torch.tensor([2]), psi=0.0)
    assert torch.allclose(a, b, atol=1e-6)
    assert torch.allclose(a, mean_img, atol=1e-6)
    assert (a - other_class).abs().max() > 1e-3  # per-class centres differ


def test_truncation_helper_matches_mapping_truncation(tiny_g16: Generator) -> None:
    G = tiny_g16
    z = z_from_seed(3, G.z_dim)
    c = torch.tensor([4])
    with torch.no_grad():
        inside = G.mapping(z, c, psi=0.7)
        outside = truncate(G, G.mapping(z, c), c, 0.7)
    assert torch.allclose(inside, outside, atol=1e-5)


def test_seed_latents_are_deterministic(tiny_g16: Generator) -> None:
    assert torch.equal(z_from_seed(7, 64), z_from_seed(7, 64))
    a = ws_from_seeds(tiny_g16, [0, 1], class_idx=2, psi=0.5)
    b = ws_from_seeds(tiny_g16, [0, 1], class_idx=2, psi=0.5)
    assert torch.equal(a, b) and not torch.equal(a[0], a[1])


def test_style_mixing_takes_chosen_layers(tiny_g16: Generator) -> None:
    G = tiny_g16
    ws_a = ws_from_seeds(G, [0], 0)
    ws_b = ws_from_seeds(G, [1], 3)
    mixed = style_mix(ws_a, ws_b, [5, 6, 7])
    assert torch.equal(mixed[:, :5], ws_a[:, :5]) and torch.equal(mixed[:, 5:], ws_b[:, 5:])
    with torch.no_grad():
        img_a, img_mix = G.synthesis(ws_a), G.synthesis(mixed)
    assert (img_a - img_mix).abs().mean() > 1e-4


def test_update_emas_tracks_w_avg_per_class(tiny_g16: Generator) -> None:
    G = tiny_g16
    before = G.mapping.w_avg.clone()
    with torch.no_grad():
        G.mapping(torch.randn(2, G.z_dim), torch.tensor([1, 1]), update_emas=True)
    changed = (G.mapping.w_avg != before).any(dim=1)
    assert changed.tolist() == [False, True, False, False, False]


def test_input_transform_translates_the_image(tiny_g16: Generator) -> None:
    G = tiny_g16
    ws = ws_from_seeds(G, [0], 0)
    shift = torch.eye(3)
    shift[0, 2] = 0.25
    with torch.no_grad():
        base, moved = G.synthesis(ws), G.synthesis(ws, transform=shift)
    assert (base - moved).abs().mean() > 1e-3


def test_grow_keeps_old_layers_bit_identical_and_trains_only_the_head() -> None:
    G16 = make_tiny_generator(16)
    G32 = G16.grow(up_factor=2, head_layers=4)
    assert G32.img_resolution == 32 and G16.img_resolution == 16  # the original is untouched
    ws16 = ws_from_seeds(G16, [0, 1], 1)
    ws32 = ws_from_seeds(G32, [0, 1], 1)
    assert torch.equal(ws16[:, 0], ws32[:, 0])  # frozen mapping copied exactly
    # Every kept layer's activation is bit-identical in eval mode.
    acts16 = dict(G16.synthesis.iter_layers(ws16))
    acts32 = dict(G32.synthesis.iter_layers(ws32))
    kept = [n for n in G32.synthesis.layer_names if n in acts16]
    assert kept == G16.synthesis.layer_names[:4]
    for name in ["input", *kept]:
        assert torch.equal(acts16[name], acts32[name]), name
    # Only the new head trains.
    trainable = {n for n, p in G32.named_parameters() if p.requires_grad}
    head = set(G32.head_layer_names())
    assert trainable and all(n.split(".")[1] in head for n in trainable)
    img = G32(torch.randn(2, G32.z_dim), torch.tensor([0, 1]))
    img.square().mean().backward()
    for name, p in G32.named_parameters():
        assert (p.grad is not None) == p.requires_grad, name
    # Growing again continues from the grown model.
    G64 = G32.grow()
    assert G64.img_resolution == 64 and G64.stage == 2


def test_generator_gradients_reach_all_stem_parameters(tiny_g16: Generator) -> None:
    G = tiny_g16.train()
    img = G(torch.randn(2, G.z_dim), torch.tensor([0, 3]))
    img.mean().backward()
    without = [n for n, p in G.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    # The embedding rows of unused classes get zero (not missing) gradients.
    assert without == []


def test_unconditional_generator() -> None:
    cfg = preset_config("tiny", 16)
    cfg.mapping = MappingConfig(z_dim=64, c_dim=0, w_dim=256)
    G = Generator(cfg).eval()
    with torch.no_grad():
        img = G(torch.randn(2, 64), None, psi=0.5)
    assert img.shape == (2, 3, 16, 16)
    assert to_uint8(img).dtype.name == "uint8"


def test_parameter_counts_match_the_official_configuration() -> None:
    # Official StyleGAN-XL ImageNet generator (16² stem, 10 layers, channel_base 65536, channel_max 1024,
    # Embedding(1000, 320)): the counts follow from the official layer shapes.
    G = Generator(preset_config("imagenet", 16))
    counts = count_parameters(G)
    embed = 1000 * 320
    embed_proj = 320 * 64 + 64
    fc = (128 * 512 + 512) + (512 * 512 + 512)
    assert counts["mapping"] == embed + embed_proj + fc
    conv_layer = (512 * 1024 + 1024) + 1024 * 1024 * 9 + 1024  # affine + 3x3 weight + bias
    torgb = (512 * 1024 + 1024) + 3 * 1024 + 3
    fourier = 1024 * 1024 + 512 * 4 + 4
    assert counts["stem"] == 10 * conv_layer + torgb
    assert counts["synthesis_input"] == fourier
    assert counts["total"] == 101_883_463


def test_mapping_under_bf16_autocast_truncates_in_float32() -> None:
    """Under CPU autocast the mapping's layers run in bfloat16; ws come out float32 (as official), so truncation
    toward the float32 w_avg, its cutoff and the w_avg update work, and match the float32 run closely."""
    from core.networks.mapping_sg2 import StyleGAN2MappingConfig, StyleGAN2MappingNetwork

    G = make_tiny_generator(16)
    sg2 = StyleGAN2MappingNetwork(StyleGAN2MappingConfig(z_dim=16, c_dim=3, w_dim=16, num_layers=2), num_ws=6)
    torch.manual_seed(0)
    z = torch.randn(4, G.z_dim)
    c = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 3]), G.c_dim).float()
    cases = [(G.mapping, z, c), (sg2, torch.randn(4, 16), torch.nn.functional.one_hot(torch.arange(4) % 3, 3).float())]
    for mapping, zz, cc in cases:
        want = mapping(zz, cc, psi=0.7, truncation_cutoff=3)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = mapping(zz, cc, psi=0.7, truncation_cutoff=3, update_emas=True)
        assert got.dtype == torch.float32
        assert (got - want).abs().max() < 0.05 * want.abs().max()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        img = G(z, c, psi=0.5)
    assert img.shape == (4, 3, 16, 16) and torch.isfinite(img).all()
