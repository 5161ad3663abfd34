"""Importing official StyleGAN-XL snapshots: names, configuration, and outputs equal to the official code's.

The fixtures (`../shared/fixtures/official/`) were made with the public official code on CPU: pickles
of a 16² stem and a 32² SuperresGenerator stage, plus the outputs the official generator computed.
"""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import CheckpointError
from core.io.checkpoint import load_checkpoint, save_checkpoint
from core.io.official import (
    OfficialGenerator,
    PersistentRecord,
    describe_official,
    family_of,
    generator_from_official,
    load_official_checkpoint,
    load_official_generator,
    official_generator_from_snapshot,
    official_to_config,
    read_official_generator,
    read_official_pickle,
)
from core.networks.generator import Generator
from core.networks.presets import preset_config
from core.networks.synthesis import GrowthStage
from core.sampling import to_uint8, ws_from_seeds
from tests.helpers import OFFICIAL_FIXTURES, install_persistence_stand_in, writable_official

FIXTURES = OFFICIAL_FIXTURES
STEM = FIXTURES / "sgxl_tiny16_c10.pkl"
SUPERRES = FIXTURES / "sgxl_tiny32_superres_c10.pkl"
OUTPUT_TOLERANCE = 1e-4  # max abs difference to the official images (measured: < 1e-6)

needs_fixtures = pytest.mark.skipif(not (STEM.exists() and SUPERRES.exists()),
                                    reason=f"official fixtures not found in {FIXTURES}")


@pytest.fixture(scope="module")
def stem_og() -> OfficialGenerator:
    return read_official_generator(STEM)


@pytest.fixture(scope="module")
def superres_og() -> OfficialGenerator:
    return read_official_generator(SUPERRES)


@pytest.fixture(scope="module")
def stem_G(stem_og: OfficialGenerator) -> Generator:
    return generator_from_official(stem_og)


@pytest.fixture(scope="module")
def superres_G(superres_og: OfficialGenerator) -> Generator:
    return generator_from_official(superres_og)


# ----------------------------------------------------------------------------- reading


@needs_fixtures
def test_snapshot_top_level_is_read_as_inert_records() -> None:
    data = read_official_pickle(STEM)
    assert {"G", "G_ema", "D", "augment_pipe", "training_set_kwargs", "progress"} <= set(data)
    assert isinstance(data["G_ema"], PersistentRecord) and data["G_ema"].class_name == "Generator"
    assert data["G_ema"].module_name is None  # only the (ignored) source text is in the file
    assert "module_src" not in data["G_ema"].state
    assert data["training_set_kwargs"] == {"resolution": 16, "use_labels": True}
    assert data["augment_pipe"] is None
    assert isinstance(data["progress"]["cur_nimg"], torch.Tensor)


@needs_fixtures
def test_generator_tensors_and_attributes_have_official_names(stem_og: OfficialGenerator) -> None:
    assert stem_og.class_name == "Generator"
    assert stem_og.init_kwargs["channel_base"] == 4096 and stem_og.init_kwargs["c_dim"] == 10
    t = stem_og.tensors
    assert t["mapping.embed.weight"].shape == (1000, 320)  # the official table always has 1000 rows
    assert t["mapping.fc0.weight"].shape == (512, 128)
    assert t["mapping.w_avg"].shape == (10, 512)
    assert t["synthesis.input.freqs"].shape == (128, 2)
    assert t["synthesis.L0_36_128.up_filter"].shape == (12,)
    assert t["synthesis.L6_16_3.weight"].shape == (3, 128, 1, 1)
    assert "synthesis.L6_16_3.up_filter" not in t  # None buffer = identity filter
    assert stem_og.attributes["synthesis.L6_16_3.up_filter"] is None
    assert stem_og.attributes["synthesis.L0_36_128.in_size"] == [36, 36]
    assert stem_og.attributes["synthesis.layer_names"][-1] == "L6_16_3"
    assert stem_og.module_classes["mapping.embed"] == "Embedding"
    assert stem_og.module_classes["synthesis.L0_36_128"] == "SynthesisLayer"
    assert all(v.dtype == torch.float32 for k, v in t.items() if k != "mapping.embed.weight")


@needs_fixtures
def test_configuration_of_the_stem_and_the_superres_stage(stem_og: OfficialGenerator,
                                                         superres_og: OfficialGenerator) -> None:
    cfg = official_to_config(stem_og)
    assert (cfg.mapping.z_dim, cfg.mapping.c_dim, cfg.mapping.w_dim, cfg.mapping.embed_dim) == (64, 10, 512, 320)
    s = cfg.synthesis
    assert (s.stem_resolution, s.num_layers, s.channel_base, s.channel_max, s.stages) == (16, 6, 4096, 128, [])
    assert s.num_fp16_res == 0 and s.conv_clamp == 256

    assert superres_og.class_name == "SuperresGenerator"
    assert superres_og.attributes["head_layer_names"] == ["L5_36_128", "L6_52_128", "L7_32_128", "L8_32_3"]
    cfg = official_to_config(superres_og)
    # The stem's critically sampled layers were deleted: 4 kept + 2 critical = the 6-layer stem.
    assert cfg.synthesis.num_layers == 6 and cfg.synthesis.stem_resolution == 16
    assert cfg.synthesis.stages == [GrowthStage(up_factor=2, head_layers=3)]
    assert cfg.synthesis.img_resolution == 32


# ----------------------------------------------------------------------------- outputs


@needs_fixtures
@pytest.mark.parametrize("key, psi", [("img_psi1", 1.0), ("img_psi07", 0.7)])
def test_stem_outputs_equal_the_official_generator(stem_G: Generator, key: str, psi: float) -> None:
    expected = np.load(FIXTURES / "sgxl_tiny16_c10_expected.npz")
    z, c = torch.from_numpy(expected["z"]), torch.from_numpy(expected["c"]).float()
    with torch.no_grad():
        img = stem_G(z, c, psi=psi)
    diff = (img - torch.from_numpy(expected[key])).abs().max().item()
    assert diff < OUTPUT_TOLERANCE, f"max abs diff {diff:.3g}"


@needs_fixtures
def test_superres_ws_and_outputs_equal_the_official_generator(superres_G: Generator) -> None:
    expected = np.load(FIXTURES / "sgxl_tiny32_superres_c10_expected.npz")
    z, c = torch.from_numpy(expected["z"]), torch.from_numpy(expected["c"]).float()
    with torch.no_grad():
        ws = superres_G.mapping(z, c)
        assert ws.shape == expected["ws"].shape
        assert (ws - torch.from_numpy(expected["ws"])).abs().max().item() < 1e-4
        for key, psi in (("img_psi1", 1.0), ("img_psi05", 0.5)):
            diff = (superres_G(z, c, psi=psi) - torch.from_numpy(expected[key])).abs().max().item()
            assert diff < OUTPUT_TOLERANCE, f"{key}: max abs diff {diff:.3g}"
    # Class indices give the same result as the one-hot vectors the official code takes.
    with torch.no_grad():
        by_index = superres_G.mapping(z, torch.from_numpy(expected["c"]).argmax(1))
    assert torch.equal(by_index, ws)


@needs_fixtures
@pytest.mark.parametrize("name", ["sgxl_tiny16_c10", "sgxl_tiny32_superres_c10"])
@pytest.mark.parametrize("psi", [1.0, 0.7])
def test_seed_images_equal_official_gen_images(name: str, psi: float, stem_G: Generator,
                                               superres_G: Generator) -> None:
    G = stem_G if name == "sgxl_tiny16_c10" else superres_G
    expected = np.load(FIXTURES / "expected_seeds_class3.npz")[f"{name}_class3_psi{psi}"]  # uint8 [4, H, W, 3]
    with torch.no_grad():
        images = to_uint8(G.synthesis(ws_from_seeds(G, [0, 1, 2, 3], 3, psi)))
    assert images.shape == expected.shape and images.dtype == np.uint8
    diff = np.abs(images.astype(np.int16) - expected.astype(np.int16))
    assert diff.max() <= 1
    assert (diff > 0).mean() < 0.001  # measured: identical


# ----------------------------------------------------------------------------- strict weight mapping


@needs_fixtures
def test_load_copies_every_tensor(stem_og: OfficialGenerator, stem_G: Generator) -> None:
    state = stem_G.state_dict()
    for name, tensor in stem_og.tensors.items():
        if name.endswith(("up_filter", "down_filter")):
            continue
        ours = state[name]
        expected = tensor[: ours.shape[0]] if name == "mapping.embed.weight" else tensor
        assert torch.equal(ours, expected), name
    assert not any(p.requires_grad for p in stem_G.parameters())


@needs_fixtures
def test_changed_filter_is_refused(stem_og: OfficialGenerator) -> None:
    og = copy.deepcopy(stem_og)
    og.tensors["synthesis.L2_36_128.down_filter"] = og.tensors["synthesis.L2_36_128.down_filter"] + 1e-4
    with pytest.raises(CheckpointError, match="differs from our filter design"):
        generator_from_official(og)


@needs_fixtures
def test_unmapped_or_missing_tensors_are_refused(stem_og: OfficialGenerator) -> None:
    og = copy.deepcopy(stem_og)
    og.tensors["synthesis.L0_36_128.noise_strength"] = torch.zeros([])
    with pytest.raises(CheckpointError, match="no place in our generator"):
        generator_from_official(og)
    og = copy.deepcopy(stem_og)
    del og.tensors["synthesis.L3_36_128.affine.bias"]
    with pytest.raises(CheckpointError, match="lacks 1 tensors"):
        generator_from_official(og)
    og = copy.deepcopy(stem_og)
    og.tensors["mapping.fc1.weight"] = og.tensors["mapping.fc1.weight"][:, :100]
    with pytest.raises(CheckpointError, match="shape"):
        generator_from_official(og)


@needs_fixtures
def test_layer_specification_mismatch_is_refused(stem_og: OfficialGenerator) -> None:
    og = copy.deepcopy(stem_og)
    og.attributes["synthesis.L2_36_128.out_cutoff"] += 0.5
    with pytest.raises(CheckpointError, match="out_cutoff"):
        generator_from_official(og)
    og = copy.deepcopy(stem_og)
    og.attributes["synthesis.L4_36_128.conv_clamp"] = None
    with pytest.raises(CheckpointError, match="conv_clamp"):
        official_to_config(og)


@needs_fixtures
def test_stylegan3_mapping_routes_to_the_stylegan3_importer(stem_og: OfficialGenerator) -> None:
    # StyleGAN3's mapping: a FullyConnected `embed` (c_dim -> w_dim), no projection, z_dim 512. A StyleGAN-XL
    # file rewritten that way goes to the StyleGAN3 importer, which refuses it: its mapping gains are not SG3's.
    og = copy.deepcopy(stem_og)
    og.module_classes["mapping.embed"] = "FullyConnectedLayer"
    og.tensors["mapping.embed.weight"] = torch.zeros(512, 10)
    og.tensors["mapping.embed.bias"] = torch.zeros(512)
    og.attributes["z_dim"] = 512
    assert family_of(og)[0].FAMILY == "StyleGAN3"
    with pytest.raises(CheckpointError, match="unsupported architecture: .*mapping.fc0.weight_gain"):
        generator_from_official(og)


@needs_fixtures
def test_stylegan2_blocks_route_to_the_stylegan2_importer(stem_og: OfficialGenerator) -> None:
    og = copy.deepcopy(stem_og)
    og.tensors["synthesis.b4.const"] = torch.zeros(512, 4, 4)
    assert family_of(og)[0].FAMILY == "StyleGAN2"
    with pytest.raises(CheckpointError, match="no 'synthesis.b4.architecture' attribute; not a StyleGAN2"):
        official_to_config(og)


# ----------------------------------------------------------------------------- multi-stage deduction


def _official_like(G: Generator, class_name: str, keep_sampling_rates: bool = True) -> OfficialGenerator:
    """An OfficialGenerator laid out as the official code stores `G` (names, attributes, 1000-row table)."""
    cfg = G.cfg
    tensors = {k: v.clone() for k, v in G.state_dict().items()}
    embed = torch.randn(1000, cfg.mapping.embed_dim)
    embed[: cfg.mapping.c_dim] = tensors["mapping.embed.weight"]
    tensors["mapping.embed.weight"] = embed
    attrs: dict = {"z_dim": G.z_dim, "c_dim": G.c_dim, "w_dim": G.w_dim, "img_resolution": G.img_resolution,
                   "img_channels": 3, "num_ws": G.num_ws, "mapping.num_layers": cfg.mapping.num_layers,
                   "mapping.w_avg_beta": cfg.mapping.w_avg_beta, "synthesis.layer_names": G.synthesis.layer_names}
    s = cfg.synthesis
    for key in ("channel_base", "channel_max", "num_critical", "first_cutoff", "first_stopband", "last_stopband_rel",
                "margin_size", "output_scale", "num_fp16_res", "conv_kernel", "use_radial_filters"):
        attrs[f"synthesis.{key}"] = getattr(s, key)
    for layer in G.synthesis.layers():
        p = f"synthesis.{layer.spec.name}."
        for key in ("filter_size", "lrelu_upsampling", "conv_clamp"):
            attrs[p + key] = getattr(s, key)
        attrs[p + "magnitude_ema_beta"] = layer.magnitude_ema_beta
        for key in ("in_channels", "out_channels", "in_cutoff", "out_cutoff", "is_torgb"):
            attrs[p + key] = getattr(layer.spec, key)
        attrs[p + "padding"] = list(layer.padding)
        for buf in ("up_filter", "down_filter"):
            if getattr(layer, buf) is None:
                attrs[p + buf] = None
            else:
                tensors[p + buf] = getattr(layer, buf).clone()
    if class_name == "SuperresGenerator":
        attrs["up_factor"] = s.stages[-1].up_factor
        if keep_sampling_rates:  # the stem's rates stay on the synthesis object in official files
            stem = copy.deepcopy(cfg)
            stem.synthesis.stages = []
            attrs["synthesis.sampling_rates"] = [float(x.spec.out_sampling_rate)
                                                 for x in Generator(stem).synthesis.layers()]
    return OfficialGenerator(class_name=class_name, init_kwargs={}, tensors=tensors, attributes=attrs,
                             module_classes={"mapping.embed": "Embedding"}, source="in-memory")


@pytest.mark.parametrize("stages, keep_rates", [
    ([GrowthStage(2, 4), GrowthStage(2, 5)], True),
    ([GrowthStage(4, 4), GrowthStage(2, 3)], False),
    ([GrowthStage(2, 3), GrowthStage(4, 4)], True),
])
def test_multi_stage_superres_layout_is_deduced(stages: list[GrowthStage], keep_rates: bool) -> None:
    cfg = preset_config("tiny", 16, c_dim=4)
    cfg.mapping.w_dim = 64
    cfg.synthesis.channel_base, cfg.synthesis.channel_max, cfg.synthesis.num_layers = 512, 32, 5
    cfg.synthesis.stages = stages
    torch.manual_seed(0)
    G = Generator(cfg).eval()
    og = _official_like(G, "SuperresGenerator", keep_sampling_rates=keep_rates)
    got = official_to_config(og)
    assert got.synthesis.stages == stages
    assert got.synthesis.num_layers == 5 and got.synthesis.stem_resolution == 16
    G2 = generator_from_official(og)
    z, c = torch.randn(2, G.z_dim), torch.tensor([1, 3])
    with torch.no_grad():
        assert torch.equal(G2(z, c, psi=0.6), G(z, c, psi=0.6))


def test_per_stage_magnitude_ema_betas_are_deduced() -> None:
    # As the official train.py makes them: the stem's beta from the batch size, each head's its own.
    cfg = preset_config("tiny", 16, c_dim=4)
    cfg.mapping.w_dim = 64
    cfg.synthesis.channel_base, cfg.synthesis.channel_max, cfg.synthesis.num_layers = 512, 32, 5
    cfg.synthesis.magnitude_ema_beta = 0.5 ** (64 / 20000)
    cfg.synthesis.stages = [GrowthStage(2, 4, magnitude_ema_beta=0.999), GrowthStage(2, 3, magnitude_ema_beta=0.99)]
    G = Generator(cfg).eval()
    betas = [layer.magnitude_ema_beta for layer in G.synthesis.layers()]
    assert sorted(set(betas)) == [0.99, cfg.synthesis.magnitude_ema_beta, 0.999]
    og = _official_like(G, "SuperresGenerator")
    got = official_to_config(og)
    assert got == cfg
    assert [layer.magnitude_ema_beta for layer in generator_from_official(og).synthesis.layers()] == betas
    # A stage whose own layers disagree cannot be represented: refused, naming the stage.
    og.attributes[f"synthesis.{G.synthesis.layer_names[0]}.magnitude_ema_beta"] = 0.9
    with pytest.raises(CheckpointError, match="layers of the stem use different magnitude_ema_beta"):
        official_to_config(og)


# ----------------------------------------------------------------------------- user-facing entry points


@needs_fixtures
def test_official_checkpoint_converts_and_reloads(tmp_path: Path, superres_G: Generator) -> None:
    ckpt = load_official_checkpoint(SUPERRES)
    assert ckpt.meta["official_class"] == "SuperresGenerator" and ckpt.meta["source_file"] == SUPERRES.name
    out = save_checkpoint(tmp_path / "converted.sgxl", ckpt.generator, ckpt.meta)
    reloaded = load_checkpoint(out)
    assert reloaded.config == ckpt.config
    z, c = torch.randn(2, 64), torch.tensor([3, 7])
    with torch.no_grad():
        assert torch.equal(reloaded.generator(z, c), superres_G(z, c))
    via_dispatch = load_checkpoint(STEM)  # load_checkpoint reads .pkl through the safe importer
    assert via_dispatch.meta["kimg"] > 0 and via_dispatch.generator.img_resolution == 16


@needs_fixtures
def test_load_official_generator_and_describe() -> None:
    G = load_official_generator(STEM)
    assert G.img_resolution == 16 and G.c_dim == 10 and G.num_ws == 8
    text = describe_official(SUPERRES)
    for fragment in ("SuperresGenerator", "32x32", "classes          10", "L8_32_3",
                     "stem 16² with 6 layers", "x2 with 3 head layers", "conversion       supported"):
        assert fragment in text, fragment
    assert "params" in text and "2,246,471" in text


@needs_fixtures
def test_generator_falls_back_to_G_without_G_ema() -> None:
    data = read_official_pickle(STEM)
    assert official_generator_from_snapshot(data).attributes["_snapshot_key"] == "G_ema"
    data.pop("G_ema")
    og = official_generator_from_snapshot(data)
    assert og.attributes["_snapshot_key"] == "G" and og.class_name == "Generator"


@pytest.fixture
def persistence_fn(monkeypatch: pytest.MonkeyPatch) -> object:
    """A stand-in `torch_utils.persistence._reconstruct_persistent_obj` so pickle can name it."""

    def never_loaded(meta: dict) -> None:
        raise AssertionError("only written, never loaded with plain pickle")

    return install_persistence_stand_in(monkeypatch, never_loaded)


@needs_fixtures
def test_stylegan3_like_snapshot_is_described_and_refused(tmp_path: Path, persistence_fn: object) -> None:
    # Rewrite the stem as a StyleGAN3 generator would store its mapping: `embed` = FullyConnected(c_dim, w_dim).
    g_ema = read_official_pickle(STEM)["G_ema"]
    mapping = g_ema.state["_modules"]["mapping"].state
    fc = copy.copy(mapping["_modules"]["embed_proj"])
    fc_state = dict(fc.state)
    fc_state["_parameters"] = {"weight": torch.zeros(512, 10), "bias": torch.zeros(512)}
    mapping["_modules"]["embed"] = PersistentRecord("FullyConnectedLayer", None, fc_state)
    del mapping["_modules"]["embed_proj"]
    g_ema.state["z_dim"] = 512
    path = tmp_path / "stylegan3-like.pkl"
    path.write_bytes(pickle.dumps({"G_ema": writable_official(g_ema, persistence_fn)}, protocol=4))

    text = describe_official(path)
    assert "z 512" in text and "StyleGAN3-T" in text
    with pytest.raises(CheckpointError, match="unsupported architecture"):
        load_official_generator(path)
