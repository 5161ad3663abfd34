"""StyleGAN2 / StyleGAN2-ADA / StyleGAN3-T/R generators: the networks, their checkpoints, and the official files.

Part 1 needs nothing but the code: random-init generators check the shapes, the noise modes, the
upsampling convolution against the official op order, truncation and the .sgxl round trip. Part 2 uses
the official fixtures (`../shared/fixtures/official/`, made with the NVlabs code; skipped when absent):
every file must reproduce the official mapping outputs and images within 1e-4, and `sgxl generate` the
official gen_images.py uint8 images within one level.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from PIL import Image

import kernels
from core.cli import main
from core.errors import CheckpointError, UserInputError
from core.io.checkpoint import load_checkpoint, save_checkpoint
from core.io.official import describe_official, load_official_checkpoint, read_official_generator
from core.networks.family import build_generator
from core.networks.generator import Generator
from core.networks.mapping_sg2 import StyleGAN2MappingConfig
from core.networks.presets import preset_config
from core.networks.stylegan2 import (
    StyleGAN2Config,
    StyleGAN2Generator,
    StyleGAN2SynthesisConfig,
    modulated_conv2d,
    setup_filter_1d,
)
from core.networks.stylegan2 import _conv_transpose_up as conv_transpose_up
from core.networks.stylegan3 import StyleGAN3Config, StyleGAN3Generator
from core.networks.synthesis import SynthesisConfig
from core.sampling import style_mix, to_uint8, ws_from_seeds
from core.video import interpolation_frames
from explorer.renderer import Renderer, RenderSettings
from tests.helpers import OFFICIAL_FIXTURES

OUTPUT_TOLERANCE = 1e-4  # max abs difference to the official float outputs (measured: < 2e-6)


def tiny_sg2(c_dim: int = 3, res: int = 16, seed: int = 0) -> StyleGAN2Generator:
    torch.manual_seed(seed)
    cfg = StyleGAN2Config(mapping=StyleGAN2MappingConfig(z_dim=32, c_dim=c_dim, w_dim=32, num_layers=2),
                          synthesis=StyleGAN2SynthesisConfig(img_resolution=res, channel_base=256, channel_max=16))
    G = StyleGAN2Generator(cfg).eval()
    with torch.no_grad():  # a trained model's noise strengths and w_avg are not zero
        for block in G.synthesis.blocks():
            for _, layer in block.convs():
                layer.noise_strength.fill_(0.5)
        G.mapping.w_avg.normal_()
    return G


def tiny_sg3(c_dim: int = 3, radial: bool = False, seed: int = 0) -> StyleGAN3Generator:
    torch.manual_seed(seed)
    synthesis = SynthesisConfig(stem_resolution=16, channel_base=512, channel_max=16, num_layers=4,
                                output_scale=1.0, conv_kernel=1 if radial else 3, use_radial_filters=radial)
    G = StyleGAN3Generator(StyleGAN3Config(
        mapping=StyleGAN2MappingConfig(z_dim=32, c_dim=c_dim, w_dim=32, num_layers=2), synthesis=synthesis)).eval()
    with torch.no_grad():
        G.mapping.w_avg.normal_()
    return G


# ----------------------------------------------------------------------------- part 1: the networks


def test_stylegan2_shapes_ws_and_traits() -> None:
    G = tiny_sg2(c_dim=3, res=32)
    # One w per conv (4x4: 1, every other block: 2) plus the last ToRGB's: 2 * log2(R) - 2, as officially.
    assert G.num_ws == 2 * 5 - 2 == len(G.traits.ws_labels)
    assert G.traits.ws_labels[0] == "b4.conv1" and G.traits.ws_labels[1] == "b8.conv0 + b4.torgb"
    assert G.traits.ws_labels[-1] == "b32.torgb"
    t = G.traits
    assert (t.family, t.label, t.has_noise, t.has_input_transform, t.per_class_w_avg, t.trainable) == (
        "stylegan2", "StyleGAN2", True, False, False, False)
    assert t.layer_names[-1] == "b32.torgb" and t.layer_channels[-1] == 3 and t.uint8_offset == 128.0
    z = torch.randn(2, 32)
    with torch.no_grad():
        img = G(z, torch.tensor([0, 2]))
        acts = list(G.synthesis.iter_layers(G.mapping(z, torch.tensor([0, 2]))))
    assert img.shape == (2, 3, 32, 32) and img.dtype == torch.float32
    assert [n for n, _ in acts] == list(t.layer_names)
    assert [x.shape[1] for _, x in acts] == list(t.layer_channels)
    assert torch.equal(acts[-1][1], img)  # the last activation is the output image


def test_stylegan2_upsampling_conv_equals_the_official_op_order() -> None:
    # conv2d_resample's generic path: zero-insertion upsample + [1,3,3,1] filter (x4 gain), then a true 3x3
    # convolution (flipped kernel), with the padding the official code derives. Ours: transposed conv, then filter.
    torch.manual_seed(1)
    x, w = torch.randn(2 * 5, 6, 7).unsqueeze(0), torch.randn(2, 4, 5, 3, 3)  # 2 samples as groups
    f = setup_filter_1d([1, 3, 3, 1])
    ours = conv_transpose_up(x, w, 2, f)
    up = kernels.reference.upfirdn2d(x, torch.outer(f, f), up=2, padding=[3, 2, 3, 2], gain=4)
    ref = torch.nn.functional.conv2d(up, w.reshape(8, 5, 3, 3).flip([2, 3]), groups=2)
    assert ours.shape == ref.shape == (1, 8, 12, 14)
    assert (ours - ref).abs().max() < 1e-5


def test_stylegan2_modulated_conv_demodulates() -> None:
    torch.manual_seed(2)
    x, weight, styles = torch.randn(3, 8, 6, 6), torch.randn(4, 8, 3, 3), torch.randn(3, 8)
    y = modulated_conv2d(x, weight, styles)
    ref = torch.stack([torch.nn.functional.conv2d(x[i:i + 1], _demod(weight * styles[i].view(1, 8, 1, 1)), padding=1)[0]
                       for i in range(3)])
    assert (y - ref).abs().max() < 1e-5
    # Scaling a sample's styles changes nothing after demodulation (the point of Eq. 3).
    assert (modulated_conv2d(x, weight, styles * 7) - y).abs().max() < 1e-4


def _demod(w: torch.Tensor) -> torch.Tensor:
    return w * (w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).rsqrt()


def test_stylegan2_noise_modes() -> None:
    G = tiny_sg2()
    ws = G.mapping(torch.randn(3, 32), torch.tensor([0, 1, 2]))
    with torch.no_grad():
        const = G.synthesis(ws)
        assert torch.equal(const, G.synthesis(ws, noise_mode="const"))
        none = G.synthesis(ws, noise_mode="none")
        r1, r1b, r2 = (G.synthesis(ws, noise_mode="random", noise_seed=s) for s in (1, 1, 2))
        alone = G.synthesis(ws[1:2], noise_mode="random", noise_seed=1)
    assert (const - none).abs().max() > 1e-2 and (r1 - const).abs().max() > 1e-2
    assert torch.equal(r1, r1b) and (r1 - r2).abs().max() > 1e-2  # a seed fixes the noise, another changes it
    assert (alone[0] - r1[1]).abs().max() < 1e-5  # independent of the batch it is in
    with torch.no_grad():
        for block in G.synthesis.blocks():
            for _, layer in block.convs():
                layer.noise_strength.zero_()
        assert (G.synthesis(ws) - G.synthesis(ws, noise_mode="none")).abs().max() == 0  # strength 0: no noise
    with pytest.raises(ValueError, match="noise mode"):
        G.synthesis(ws, noise_mode="loud")
    with pytest.raises(ValueError, match="no Fourier-feature input"):
        G.synthesis(ws, transform=torch.eye(3))


def test_stylegan2_gradients_reach_ws_and_weights() -> None:
    G = tiny_sg2()
    ws = G.mapping(torch.randn(2, 32), torch.tensor([0, 1])).detach().requires_grad_(True)
    G.synthesis(ws).square().mean().backward()
    assert ws.grad is not None and ws.grad.abs().sum() > 0
    assert G.synthesis.b16.conv0.weight.grad.abs().sum() > 0 and G.synthesis.b4.const.grad.abs().sum() > 0


def test_single_w_avg_truncation_and_cutoff() -> None:
    G = tiny_sg3(c_dim=3)
    z = torch.randn(2, 32)
    with torch.no_grad():
        ws = G.mapping(z, torch.tensor([0, 2]))
        cut = G.mapping(z, torch.tensor([0, 2]), psi=0.5, truncation_cutoff=4)
        full = G.mapping(z, torch.tensor([0, 2]), psi=0.5)
    w_avg = G.mapping.w_avg
    assert torch.allclose(full, w_avg + (ws - w_avg) * 0.5, atol=1e-6)  # every class pulls toward one w_avg
    assert torch.allclose(cut[:, :4], full[:, :4]) and torch.equal(cut[:, 4:], ws[:, 4:])
    assert torch.equal(G.mapping.mean_w(0), G.mapping.mean_w(2)) and not G.traits.per_class_w_avg
    blend = torch.tensor([[0.5, 0.0, 0.5]])
    assert torch.equal(G.mapping.class_w_avg(blend)[0], w_avg)


@pytest.mark.parametrize("radial", [False, True])
def test_stylegan3_traits_and_transform(radial: bool) -> None:
    G = tiny_sg3(c_dim=0, radial=radial)
    t = G.traits
    assert t.label == ("StyleGAN3-R" if radial else "StyleGAN3-T") and t.has_input_transform and not t.has_noise
    assert t.ws_labels[0] == "input" and len(t.ws_labels) == G.num_ws and t.layer_names[0] == "input"
    ws = G.mapping(torch.randn(1, 32))
    shift = torch.tensor([[1.0, 0.0, 0.25], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    with torch.no_grad():
        plain, moved = G.synthesis(ws), G.synthesis(ws, transform=shift)
        assert torch.equal(plain, G.synthesis(ws, noise_mode="random", noise_seed=3))  # no noise inputs
    assert plain.shape == (1, 3, 16, 16) and (plain - moved).abs().max() > 1e-3


@pytest.mark.parametrize("make", [tiny_sg2, tiny_sg3], ids=["stylegan2", "stylegan3"])
def test_checkpoint_round_trip_keeps_the_family(make, tmp_path: Path) -> None:
    G = make()
    path = save_checkpoint(tmp_path / "m.sgxl", G, {"kimg": 1.5}, class_names=["a", "b", "c"])
    with zipfile.ZipFile(path) as zf:
        config = json.loads(zf.read("config.json"))
    assert config["family"] == G.family and config["version"] == 2
    ckpt = load_checkpoint(path)
    G2 = ckpt.generator
    assert type(G2) is type(G) and G2.cfg == G.cfg and ckpt.class_names == ["a", "b", "c"]
    ws = ws_from_seeds(G, [0, 1], 1, 0.7)
    with torch.no_grad():
        assert torch.equal(ws, ws_from_seeds(G2, [0, 1], 1, 0.7))
        assert torch.equal(G.synthesis(ws), G2.synthesis(ws))
        assert torch.equal(G.synthesis(ws, noise_mode="random", noise_seed=4),
                           G2.synthesis(ws, noise_mode="random", noise_seed=4))


def test_stylegan_xl_checkpoints_stay_version_1_and_files_without_family_load(tmp_path: Path) -> None:
    torch.manual_seed(0)
    G = Generator(preset_config("tiny", 16, c_dim=2)).eval()
    path = save_checkpoint(tmp_path / "xl.sgxl", G)
    with zipfile.ZipFile(path) as zf:
        config, blob = json.loads(zf.read("config.json")), zf.read("model.safetensors")
    assert (config["family"], config["version"]) == ("stylegan-xl", 1)  # older releases still read it

    def rewrite(name: str, **changes) -> Path:
        out = tmp_path / name
        with zipfile.ZipFile(out, "w") as zf:
            zf.writestr("config.json", json.dumps({**{k: v for k, v in config.items() if k != "family"}, **changes}))
            zf.writestr("model.safetensors", blob)
        return out

    assert isinstance(load_checkpoint(rewrite("old.sgxl")).generator, Generator)  # written before families existed
    with pytest.raises(CheckpointError, match="unknown generator family 'stylegan9'"):
        load_checkpoint(rewrite("future.sgxl", family="stylegan9"))
    with pytest.raises(CheckpointError, match="newer version"):
        load_checkpoint(rewrite("newer.sgxl", version=3))
    with pytest.raises(ValueError, match="unknown generator family"):
        build_generator("biggan", {})


def test_validation_gate_knows_every_family(tmp_path: Path) -> None:
    """The checkpoint gate (core/io/validate.py) computes shapes and sizes of StyleGAN2/3 from the config alone."""
    from dataclasses import fields

    from core.io import validate

    for G in (tiny_sg2(c_dim=3), tiny_sg2(c_dim=0, res=32), tiny_sg3(c_dim=2), tiny_sg3(c_dim=0, radial=True)):
        state = G.state_dict()
        assert validate.expected_state_shapes(G.cfg) == {k: tuple(v.shape) for k, v in state.items()}
        assert validate.model_size(G.cfg).params == sum(v.numel() for v in state.values())
        assert validate.generator_config_from_dict(G.cfg.to_dict(), family=G.family) == G.cfg  # JSON round trip
    assert {f.name for f in fields(StyleGAN2MappingConfig)} == set(validate._SG2_MAPPING_FIELDS)
    assert {f.name for f in fields(StyleGAN2SynthesisConfig)} == (set(validate._SG2_SYNTHESIS_FIELDS)
                                                                  | set(validate._SG2_OTHER_FIELDS))

    good = tiny_sg2().cfg.to_dict()
    bad_cases = {
        "architecture = 'resnet': only skip": {"synthesis": {**good["synthesis"], "architecture": "resnet"}},
        "img_resolution = 48 must be a power of two": {"synthesis": {**good["synthesis"], "img_resolution": 48}},
        "resample_filter must be a list": {"synthesis": {**good["synthesis"], "resample_filter": "1331"}},
        "use_noise must be true or false": {"synthesis": {**good["synthesis"], "use_noise": 1}},
        "embed_features must be an integer": {"mapping": {**good["mapping"], "embed_features": "512"}},
        "unknown entries": {"mapping": {**good["mapping"], "w_avg_betas": 0.9}},
        "refusing to build it": {"synthesis": {**good["synthesis"], "channel_base": 2**24, "channel_max": 16384,
                                               "img_resolution": 4096}},
    }
    for message, change in bad_cases.items():
        with pytest.raises(CheckpointError, match=message):
            validate.validate_generator({**good, **change}, family="stylegan2", allow_large=False)
    sg3 = tiny_sg3().cfg.to_dict()
    with pytest.raises(CheckpointError, match="no growth stages"):
        validate.generator_config_from_dict({**sg3, "synthesis": {**sg3["synthesis"], "stages": [{}]}},
                                            family="stylegan3")
    # And through a file: a StyleGAN2 checkpoint whose config was edited to an unsupported architecture.
    path = save_checkpoint(tmp_path / "sg2.sgxl", tiny_sg2())
    with zipfile.ZipFile(path) as zf:
        config, blob = json.loads(zf.read("config.json")), zf.read("model.safetensors")
    config["generator"]["synthesis"]["architecture"] = "orig"
    with zipfile.ZipFile(tmp_path / "edited.sgxl", "w") as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.safetensors", blob)
    with pytest.raises(CheckpointError, match="architecture = 'orig'"):
        load_checkpoint(tmp_path / "edited.sgxl")


def test_renderer_noise_and_transform_settings() -> None:
    G = tiny_sg2()
    r = Renderer("cpu", threaded=False)
    info = r.set_model(G, key="sg2")
    assert info.has_noise and not info.has_input_transform and info.ws_labels == G.traits.ws_labels
    assert info.label == "StyleGAN2" and info.layer_names == G.traits.layer_names
    plain = RenderSettings.single(3, 1, 0.7)
    got = r.render_sync(plain)
    with torch.no_grad():
        expected = to_uint8(G.synthesis(ws_from_seeds(G, [3], 1, 0.7)), 128.0)[0]
        random = to_uint8(G.synthesis(ws_from_seeds(G, [3], 1, 0.7), noise_mode="random", noise_seed=5), 128.0)[0]
    assert np.array_equal(got, expected)
    assert np.array_equal(r.render_sync(RenderSettings(seeds=((3, 1.0),), classes=((1, 1.0),), psi=0.7,
                                                       noise_mode="random", noise_seed=5)), random)
    assert not np.array_equal(random, expected)
    with pytest.raises(UserInputError, match="no Fourier-feature input"):
        r.render_sync(RenderSettings(seeds=((3, 1.0),), classes=((1, 1.0),), translate=(0.1, 0.0)))
    with pytest.raises(UserInputError, match="unknown noise mode"):
        r.render_sync(RenderSettings(seeds=((3, 1.0),), classes=((1, 1.0),), noise_mode="pink"))
    frame = r.render_frame(plain)
    assert np.array_equal(frame.to_uint8(), expected)  # the shown frame uses the family's rounding too


def test_invert_a_photo_into_stylegan2_and_reload_the_tuned_model(tmp_path: Path) -> None:
    from core.inversion.pti import load_pti_checkpoint

    ckpt = save_checkpoint(tmp_path / "sg2.sgxl", tiny_sg2(c_dim=3), class_names=["a", "b", "c"])
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (40, 48, 3), dtype=np.uint8)).save(photo)
    out = tmp_path / "inv"
    assert main(["invert", "--ckpt", str(ckpt), "--image", str(photo), "--class", "b", "--steps", "2",
                 "--pti-steps", "1", "--perceptual-size", "32", "--out", str(out), "--no-progress"]) == 0
    tuned, ws, cls = load_pti_checkpoint(out / "pti.sgxl")
    assert isinstance(tuned.generator, StyleGAN2Generator) and cls == 1 and tuple(ws.shape) == (1, 6, 32)
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["step"] for r in metrics["projection"]["steps"]] == [1, 2]


def test_training_refuses_to_grow_a_stylegan2_model(tmp_path: Path, capsys) -> None:
    from core.data.dataset_tool import convert_dataset

    for i in range(4):
        (tmp_path / "src").mkdir(exist_ok=True)
        Image.new("RGB", (32, 32), (60 * i, 30, 90)).save(tmp_path / "src" / f"{i}.png")
    convert_dataset(tmp_path / "src", tmp_path / "ds.zip", 32, progress=False)
    ckpt = save_checkpoint(tmp_path / "sg2.sgxl", tiny_sg2(c_dim=0, res=16))
    assert main(["train", "--data", str(tmp_path / "ds.zip"), "--grow-from", str(ckpt), "--out",
                 str(tmp_path / "run"), "--no-progress", "--device", "cpu"]) == 2
    assert "holds a StyleGAN2 generator; `sgxl train` trains and grows StyleGAN-XL" in capsys.readouterr().err


# ----------------------------------------------------------------------------- part 2: the official files

FIXTURES = {  # name -> (label, class used by the seed images, c_dim)
    "sg2_tiny32": ("StyleGAN2", 2, 5),
    "sg2ada_tiny32": ("StyleGAN2", None, 0),
    "sg3t_tiny32": ("StyleGAN3-T", None, 0),
    "sg3r_tiny32": ("StyleGAN3-R", 2, 4),
}


def fixture(name: str) -> Path:
    path = OFFICIAL_FIXTURES / f"{name}.pkl"
    if not path.exists():
        pytest.skip(f"official fixture {path} not found")
    return path


_loaded: dict[str, object] = {}


def official(name: str):
    if name not in _loaded:
        _loaded[name] = load_official_checkpoint(fixture(name))
    return _loaded[name]


def seed_images(name: str) -> np.ndarray:
    with np.load(OFFICIAL_FIXTURES / f"{name}_expected_seeds.npz") as data:
        (images,) = data.values()
    return images  # uint8 [4, 32, 32, 3]: seeds 0-3, psi 0.7


@pytest.mark.parametrize("name", FIXTURES)
def test_outputs_equal_the_official_generator(name: str) -> None:
    ckpt = official(name)
    G = ckpt.generator
    label, _, c_dim = FIXTURES[name]
    assert G.traits.label == label and G.c_dim == c_dim and G.img_resolution == 32
    assert ckpt.meta["source"].startswith("official ") and ckpt.meta["official_key"] == "G_ema"
    e = np.load(OFFICIAL_FIXTURES / f"{name}_expected.npz")
    z = torch.from_numpy(e["z"])
    c = torch.from_numpy(e["c"]) if c_dim else None  # one-hot rows, as the official call takes them
    with torch.no_grad():
        assert (G.mapping(z, c) - torch.from_numpy(e["ws_psi1"])).abs().max() < OUTPUT_TOLERANCE
        for psi in ("1.0", "0.7"):
            img = G(z, c, psi=float(psi))
            assert (img - torch.from_numpy(e[f"img_psi{psi}"])).abs().max() < OUTPUT_TOLERANCE, psi


@pytest.mark.parametrize("name", FIXTURES)
def test_sgxl_generate_reproduces_gen_images(name: str, tmp_path: Path) -> None:
    _, class_idx, _ = FIXTURES[name]
    args = ["generate", "--ckpt", str(fixture(name)), "--seeds", "0-3", "--trunc", "0.7", "--out", str(tmp_path),
            "--device", "cpu"] + (["--class", str(class_idx)] if class_idx is not None else [])
    assert main(args) == 0
    got = np.stack([np.asarray(Image.open(tmp_path / f"seed{s:04d}.png")) for s in range(4)])
    diff = np.abs(got.astype(int) - seed_images(name).astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.001  # measured: equal but for 1 pixel of 12288 (2-ADA)


@pytest.mark.parametrize("name", FIXTURES)
def test_convert_then_load_gives_the_same_images(name: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / f"{name}.sgxl"
    assert main(["convert", str(fixture(name)), "--out", str(out)]) == 0
    ckpt = load_checkpoint(out)
    G, G0 = ckpt.generator, official(name).generator
    assert type(G) is type(G0) and G.cfg == G0.cfg
    _, class_idx, _ = FIXTURES[name]
    ws = ws_from_seeds(G, [0, 1, 2, 3], class_idx, 0.7)
    with torch.no_grad():
        assert torch.equal(ws, ws_from_seeds(G0, [0, 1, 2, 3], class_idx, 0.7))
        assert torch.equal(G.synthesis(ws), G0.synthesis(ws))
        diff = np.abs(to_uint8(G.synthesis(ws), G.traits.uint8_offset).astype(int) - seed_images(name).astype(int))
    assert diff.max() <= 1
    capsys.readouterr()
    assert main(["info", str(out)]) == 0 and main(["info", str(fixture(name))]) == 0
    text = capsys.readouterr().out
    assert text.count(FIXTURES[name][0]) >= 2 and "conversion       supported" in text


def test_describe_says_which_official_code_wrote_the_file() -> None:
    assert "StyleGAN2 (NVlabs/stylegan3" in describe_official(fixture("sg2_tiny32"))
    assert "StyleGAN2-ADA (NVlabs/stylegan2-ada-pytorch" in describe_official(fixture("sg2ada_tiny32"))
    text = describe_official(fixture("sg3r_tiny32"))
    assert "StyleGAN3-R" in text and "radial filters" in text and "output_scale 0.25" in text
    assert "output_scale 1" in describe_official(fixture("sg3t_tiny32"))  # read from the file, not assumed


def test_cli_refuses_what_a_family_does_not_have(tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "x.png")
    assert main(["generate", "--ckpt", str(fixture("sg3t_tiny32")), "--class", "2", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "error: this model is unconditional" in err and "Traceback" not in err
    assert main(["video", "--ckpt", str(fixture("sg2ada_tiny32")), "--class", "0", "--out", out + ".gif"]) == 2
    assert "unconditional" in capsys.readouterr().err
    assert main(["generate", "--ckpt", str(fixture("sg3r_tiny32")), "--class", "2", "--noise-mode", "random",
                 "--out", out]) == 2
    assert "StyleGAN3-R model has no noise inputs" in capsys.readouterr().err
    assert main(["generate", "--ckpt", str(fixture("sg3t_tiny32")), "--seeds", "0", "--noise-mode", "const",
                 "--out", out]) == 0  # what every model does: accepted, as by the official tools
    assert main(["generate", "--ckpt", str(fixture("sg2_tiny32")), "--class", "2", "--noise-seed", "3",
                 "--out", out]) == 2
    assert "--noise-seed needs --noise-mode random" in capsys.readouterr().err
    assert main(["generate", "--ckpt", str(fixture("sg2_tiny32")), "--class", "5", "--out", out]) == 2
    assert "classes 0..4" in capsys.readouterr().err
    assert main(["generate", "--ckpt", str(fixture("sg2_tiny32")), "--class", "1", "--style-mix-seed", "3",
                 "--style-mix-layers", "6-8", "--out", out]) == 2
    assert "this model has 8 ws" in capsys.readouterr().err


def test_sg2_style_mixing_and_noise_through_the_cli(tmp_path: Path) -> None:
    path = fixture("sg2_tiny32")
    # The fixture's noise strengths are still 0 (as the official init leaves them): give them a value, so the
    # noise modes show, through a converted copy.
    G = official("sg2_tiny32").generator
    noisy = tmp_path / "noisy.sgxl"
    with torch.no_grad():
        strengths = [layer.noise_strength for b in G.synthesis.blocks() for _, layer in b.convs()]
        for s in strengths:
            s.fill_(0.3)
        save_checkpoint(noisy, G)
        for s in strengths:
            s.zero_()
    outs = {}
    for mode, extra in [("const", []), ("none", ["--noise-mode", "none"]),
                        ("random7", ["--noise-mode", "random", "--noise-seed", "7"]),
                        ("random8", ["--noise-mode", "random", "--noise-seed", "8"])]:
        out = tmp_path / f"{mode}.png"
        assert main(["generate", "--ckpt", str(noisy), "--seeds", "4", "--class", "1", "--out", str(out)] + extra) == 0
        outs[mode] = np.asarray(Image.open(out)).astype(int)
    assert len({outs[m].tobytes() for m in outs}) == 4  # every mode and noise seed gives its own image
    Gn = load_checkpoint(noisy).generator
    with torch.no_grad():
        want = to_uint8(Gn.synthesis(ws_from_seeds(Gn, [4], 1), noise_mode="random", noise_seed=7), 128.0)[0]
    assert np.array_equal(outs["random7"], want)

    out = tmp_path / "mix.png"
    assert main(["generate", "--ckpt", str(path), "--seeds", "0", "--class", "1", "--style-mix-seed", "9",
                 "--style-mix-layers", "4-7", "--out", str(out)]) == 0
    with torch.no_grad():
        ws = style_mix(ws_from_seeds(G, [0], 1), ws_from_seeds(G, [9], 1), [4, 5, 6, 7])
        mixed = to_uint8(G.synthesis(ws), 128.0)[0]
        plain = to_uint8(G.synthesis(ws_from_seeds(G, [0], 1)), 128.0)[0]
    assert np.array_equal(np.asarray(Image.open(out)), mixed) and not np.array_equal(mixed, plain)


def test_video_of_an_sg3r_model(tmp_path: Path) -> None:
    out = tmp_path / "lerp.gif"
    assert main(["video", "--ckpt", str(fixture("sg3r_tiny32")), "--seeds", "0,1", "--class", "2", "--frames", "2",
                 "--trunc", "0.7", "--out", str(out)]) == 0
    written = np.stack(imageio.mimread(out))[..., :3].astype(int)
    G = official("sg3r_tiny32").generator
    frames = interpolation_frames(G, [0, 1], [2, 2], 0.7, 2).astype(int)  # what the command wrote, before GIF
    assert written.shape == frames.shape == (3, 32, 32, 3)
    assert np.abs(written - frames).mean() < 2  # GIF's 256-colour palette costs a little
    assert np.abs(frames[0] - seed_images("sg3r_tiny32")[0]).max() <= 1  # the keys are the official images
    assert np.abs(frames[-1] - seed_images("sg3r_tiny32")[1]).max() <= 1
    assert np.abs(frames[1] - frames[0]).mean() > 1  # and the middle frame is between them


def test_renderer_with_official_files_and_sg3_input_transform() -> None:
    r = Renderer("cpu", threaded=False)
    info = r.load(fixture("sg3t_tiny32"))
    assert (info.label, info.c_dim, info.has_input_transform, info.has_noise) == ("StyleGAN3-T", 0, True, False)
    plain = r.render_sync(RenderSettings(seeds=((1, 1.0),), classes=(), psi=0.7))
    assert np.abs(plain.astype(int) - seed_images("sg3t_tiny32")[1].astype(int)).max() <= 1
    moved = r.render_sync(RenderSettings(seeds=((1, 1.0),), classes=(), psi=0.7, translate=(0.2, 0.0)))
    assert np.abs(moved.astype(int) - plain.astype(int)).mean() > 2  # the content moved
    layer = r.render_sync(RenderSettings(seeds=((1, 1.0),), classes=(), layer="L3_36_64"))
    assert layer.shape == (36, 36, 3)  # StyleGAN3 layers work on the grid with its margin

    info = r.load(fixture("sg2_tiny32"))
    assert info.ws_labels[1] == "b8.conv0 + b4.torgb" and info.num_ws == 8
    got = r.render_sync(RenderSettings.single(2, 2, 0.7))
    assert np.abs(got.astype(int) - seed_images("sg2_tiny32")[2].astype(int)).max() <= 1
    conv = r.render_sync(RenderSettings(seeds=((2, 1.0),), classes=((2, 1.0),), layer="b16.conv0"))
    assert conv.shape == (16, 16, 3)


def test_importer_refuses_changed_files() -> None:
    from core.io.official import generator_from_official

    og = read_official_generator(fixture("sg2_tiny32"))
    bad = {**og.attributes, "synthesis.b8.architecture": "resnet"}
    with pytest.raises(CheckpointError, match="different architecture values"):
        generator_from_official(_with(og, attributes=bad))
    bad = {k: v for k, v in og.attributes.items()}
    for r in (4, 8, 16, 32):
        bad[f"synthesis.b{r}.architecture"] = "resnet"
    with pytest.raises(CheckpointError, match="architecture = 'resnet': only skip is supported"):
        generator_from_official(_with(og, attributes=bad))
    tensors = dict(og.tensors)
    tensors["synthesis.b8.resample_filter"] = torch.ones(4, 4) / 16
    with pytest.raises(CheckpointError, match="not the \\[1, 3, 3, 1\\] low-pass"):
        generator_from_official(_with(og, tensors=tensors))
    tensors = dict(og.tensors)
    tensors["synthesis.b8.conv0.noise_const"] = torch.zeros(4, 4)
    with pytest.raises(CheckpointError, match="noise_const has shape"):
        generator_from_official(_with(og, tensors=tensors))
    tensors = {k: v for k, v in og.tensors.items() if k != "synthesis.b16.conv1.noise_strength"}
    with pytest.raises(CheckpointError, match="lacks 1 tensors"):
        generator_from_official(_with(og, tensors=tensors))

    og3 = read_official_generator(fixture("sg3r_tiny32"))
    tensors = dict(og3.tensors)
    name = next(k for k in tensors if k.endswith(".down_filter") and tensors[k].ndim == 2)
    tensors[name] = tensors[name] + 1e-3  # a radial filter that is not our design
    with pytest.raises(CheckpointError, match="differs from our filter design"):
        generator_from_official(_with(og3, tensors=tensors))
    bad = {**og3.attributes, "synthesis.output_scale": 0.5}
    G = generator_from_official(_with(og3, attributes=bad))
    assert G.cfg.synthesis.output_scale == 0.5  # read from the file, whatever it is


def _with(og, **changes):
    import dataclasses

    return dataclasses.replace(og, **changes)
