"""The training recipe pinned to the official StyleGAN-XL code (training/loss.py, training/training_loop.py,
pg_modules/). Each test states the official semantics it checks and uses small tensors (a tiny generator,
a stand-in feature network) so it runs in seconds."""

from __future__ import annotations

import math
import os
import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.errors import SGXLError
from core.networks.discriminator import DiscriminatorConfig, DownBlock, ProjectedDiscriminator, ScaleDiscriminator
from core.networks.layers import FullyConnectedLayer
from core.training.class_embeddings import (
    CLASS_EMBEDDINGS_ENV,
    OFFICIAL_TABLE_RMS,
    ClassEmbeddingTable,
    derived_lite0_table,
    find_class_embeddings,
    read_official_table,
)
from core.training.loss import ClassifierGuidance, LossConfig, ProjectedGANLoss, blur_kernel, blur_sigma, gaussian_blur
from core.training.trainer import TrainConfig, Trainer, TrainingError, TrainState, build_generator_for
from tests.helpers import OFFICIAL_FIXTURES, ToyDataset, make_tiny_generator


class TinyFeatures(nn.Module):
    """A frozen stand-in for EfficientNet-lite0's 4 taps (24/40/112/320 ch at strides 4/8/16/32): fast, fixed."""

    channels = (24, 40, 112, 320)

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(5)
        self.mix = nn.ParameterList(nn.Parameter(torch.randn(c, 3, generator=gen), requires_grad=False)
                                    for c in self.channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [torch.einsum("oc,bchw->bohw", m, F.avg_pool2d(x, s)).tanh() for m, s in zip(self.mix, (4, 8, 16, 32))]


def tiny_cfg(**kw) -> TrainConfig:
    base = dict(batch=4, kimg=1.0, seed=1, disc=DiscriminatorConfig(input_size=64),
                loss=LossConfig(pl_start_kimg=0, pl_interval=1))  # path-length reg due at every step
    base.update(kw)
    return TrainConfig(**base)


def tiny_trainer(tmp_path: Path, cfg: TrainConfig | None = None, state: TrainState | None = None,
                 class_table: ClassEmbeddingTable | None = None) -> Trainer:
    ds = ToyDataset(n=12, res=16, classes=3)
    torch.manual_seed(0)
    G, names = build_generator_for(ds, "demo", None, None, "cpu", class_table)
    return Trainer(G, ds, tmp_path / "run", cfg or tiny_cfg(), {"effnet": TinyFeatures()}, class_names=names,
                   state=state, class_table=class_table)


def synthesis_emas(G) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in G.state_dict().items() if k.endswith("magnitude_ema")}


# ----------------------------------------------------------------------------- update_emas

def test_a_training_step_leaves_every_magnitude_ema_untouched(tmp_path: Path) -> None:
    """Official loss: the synthesis always runs with update_emas=False (G phase, pl-reg phase and D phase),
    so magnitude_ema stays 1.0 for the whole run; the D phase's update_emas=True moves only the mapping's w_avg."""
    trainer = tiny_trainer(tmp_path, tiny_cfg(batch=2))
    before, before_ema = synthesis_emas(trainer.G), synthesis_emas(trainer.G_ema)
    w_avg = trainer.G.mapping.w_avg.clone()
    assert len(before) == len(trainer.G.synthesis.layers()) and all(float(v) == 1.0 for v in before.values())
    stats = trainer.train_step()
    assert "G_pl_penalty" in stats  # the path-length phase ran in this step too
    for name, value in synthesis_emas(trainer.G).items():
        assert torch.equal(value, before[name]), name
    for name, value in synthesis_emas(trainer.G_ema).items():
        assert torch.equal(value, before_ema[name]), name
    assert not torch.equal(trainer.G.mapping.w_avg, w_avg)  # the truncation centre is tracked
    assert torch.equal(trainer.G_ema.mapping.w_avg, trainer.G.mapping.w_avg)  # buffers are copied to G_ema


def test_the_synthesis_emas_flag_restores_the_stylegan3_behaviour(tmp_path: Path) -> None:
    cfg = tiny_cfg(loss=LossConfig(pl_weight=0, update_synthesis_emas=True))
    trainer = tiny_trainer(tmp_path, cfg)
    trainer.train_step()
    assert any(float(v) != 1.0 for v in synthesis_emas(trainer.G).values())


# ----------------------------------------------------------------------------- blur

def test_blur_is_the_official_kernel_and_schedule() -> None:
    """Official run_D: f = exp2(-(t / sigma)^2) for t in -floor(3 sigma)..floor(3 sigma), normalised, applied
    separably with zero padding (filter2d); sigma = 2 * max(1 - nimg / (300 * 1e3), 0)."""
    cfg = LossConfig()
    assert cfg.blur_init_sigma == 2 and cfg.blur_fade_kimg == 300
    assert blur_sigma(cfg, 0) == 2 and blur_sigma(cfg, 150_000) == pytest.approx(1) and blur_sigma(cfg, 300_000) == 0
    f = blur_kernel(2.0)
    t = torch.arange(-6, 7, dtype=torch.float32)
    expected = 2.0 ** (-(t / 2.0) ** 2)
    torch.testing.assert_close(f, expected / expected.sum())
    std = float(((t**2) * f).sum().sqrt())
    assert std == pytest.approx(2.0 / math.sqrt(2 * math.log(2)), rel=0.01)  # 0.85 sigma, not sigma
    assert blur_kernel(0.3) is None  # floor(0.9) = 0 taps on each side: no blur
    x = torch.randn(2, 3, 9, 9)
    direct = F.conv2d(F.pad(x, [6] * 4), torch.outer(f, f).expand(3, 1, 13, 13), groups=3)
    torch.testing.assert_close(gaussian_blur(x, 2.0), direct, atol=1e-5, rtol=1e-5)


def test_blur_restarts_with_each_stage(tmp_path: Path) -> None:
    """An official superres stage is a new run: its image count (and so the blur) starts at 0."""
    state = TrainState(cur_nimg=400_000, stage_start_nimg=400_000)
    stats = tiny_trainer(tmp_path, tiny_cfg(loss=LossConfig(pl_weight=0)), state=state).train_step()
    assert stats["blur_sigma"] == 2.0


# ----------------------------------------------------------------------------- optimiser, G_ema

def test_adam_gets_the_official_lazy_regularisation_scaling(tmp_path: Path) -> None:
    """training_loop.py: with reg interval k, lr *= k/(k+1) and betas **= k/(k+1); G_reg_interval 4 and
    D_reg_interval 16 (the D scaling applies although StyleGAN-XL's Dreg phase does nothing)."""
    trainer = tiny_trainer(tmp_path)
    g, d = trainer.opt_G.param_groups[0], trainer.opt_D.param_groups[0]
    assert g["lr"] == pytest.approx(0.0025 * 4 / 5) and g["lr"] == pytest.approx(0.002)
    assert g["betas"] == (0.0, pytest.approx(0.99 ** (4 / 5)))
    assert d["lr"] == pytest.approx(0.002 * 16 / 17)
    assert d["betas"] == (0.0, pytest.approx(0.99 ** (16 / 17)))
    assert g["eps"] == d["eps"] == 1e-8
    plain = TrainConfig(g_reg_interval=None).adam("G")
    assert plain["lr"] == 0.0025 and plain["betas"] == (0.0, 0.99)


def test_first_step_of_a_stage_copies_g_into_g_ema(tmp_path: Path) -> None:
    """Official: ema_nimg = min(ema_kimg * 1000, cur_nimg * 0.05) with cur_nimg before the step's increment,
    so the first step of a run (stage) has beta = 0.5 ** (batch / 1e-8) = 0: G_ema = G exactly."""
    trainer = tiny_trainer(tmp_path, tiny_cfg(loss=LossConfig(pl_weight=0)))
    trainer.train_step()
    for (name, p_ema), p in zip(trainer.G_ema.named_parameters(), trainer.G.parameters()):
        assert torch.equal(p_ema, p), name


def test_accumulated_passes_add_up_and_path_length_takes_its_own_step(tmp_path: Path) -> None:
    """Official loop: passes of an accumulated batch add their gradients (no division by their number);
    phases run Gmain (step), Greg (its own step, loss not multiplied by the interval), Dmain (step)."""
    trainer = tiny_trainer(tmp_path, tiny_cfg(batch=4, batch_gpu=2))
    assert trainer.rounds == 2
    order = []

    def record(name, params):
        return lambda: order.append((name, [p.grad.clone() for p in params]))

    trainer.opt_G.step = record("G", trainer.g_params)
    trainer.opt_D.step = record("D", trainer.d_params)
    ones = lambda params: sum(p.sum() for p in params)  # noqa: E731 - gradient 1 for every parameter
    trainer.loss.generator_loss = lambda z, c, n: (ones(trainer.g_params), {"G_loss": 0.0})
    trainer.loss.path_length_loss = lambda z, c, m: (3 * ones(trainer.g_params), m, {"G_pl_penalty": 0.0})
    trainer.loss.discriminator_loss = lambda *a: (ones(trainer.d_params), {"D_loss": 0.0})
    trainer.train_step()
    assert [name for name, _ in order] == ["G", "G", "D"]
    for (_, grads), value in zip(order, (2.0, 6.0, 2.0)):
        assert all(torch.equal(g, torch.full_like(g, value)) for g in grads)


def test_path_length_loss_is_not_multiplied_by_the_interval() -> None:
    G = make_tiny_generator(16, c_dim=3).train()
    loss = ProjectedGANLoss(G, nn.Identity(), LossConfig(pl_weight=2.0, pl_interval=4))
    value, _, stats = loss.path_length_loss(torch.randn(2, G.z_dim), torch.eye(3)[[0, 1]], pl_mean=0.0)
    assert float(value.detach()) == pytest.approx(2.0 * stats["G_pl_penalty"], rel=1e-6)


# ----------------------------------------------------------------------------- loss scale, guidance

class TwoNetD(nn.Module):
    """Stand-in D with two 'feature networks' of different logit counts (5 and 3 per image)."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(3)
        self.a = nn.Parameter(torch.randn(3 * 16 * 16, 5, generator=gen) * 0.05)
        self.b = nn.Parameter(torch.randn(3 * 16 * 16, 3, generator=gen) * 0.05)

    def forward_per_network(self, img: torch.Tensor, c: torch.Tensor | None) -> list[torch.Tensor]:
        x = img.flatten(1)
        return [x @ self.a, (x @ self.b) * (1 + c[:, :3])]


def official_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    r = math.floor(sigma * 3)
    f = torch.arange(-r, r + 1, dtype=torch.float32).div(sigma).square().neg().exp2()
    f = f / f.sum()
    return F.conv2d(F.pad(img, [r] * 4), torch.outer(f, f).expand(3, 1, 2 * r + 1, 2 * r + 1), groups=3)


def official_rows(logits: list[torch.Tensor]) -> list[torch.Tensor]:
    rows = []
    for per_net in logits:
        rows += per_net  # the official `logits += D(...)`: a list gets one entry per image
    return rows


def grads_of(loss: torch.Tensor, params: list[nn.Parameter]) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, params))


def test_g_and_d_losses_equal_the_official_formula_and_its_gradients() -> None:
    """Official: loss_Gmain = sum([(-l).mean() for l in per-image logits]) + cls_weight * CrossEntropy(mean);
    loss_D = sum(relu(1 + l).mean()) over fake rows + sum(relu(1 - l).mean()) over real rows."""
    G = make_tiny_generator(16, c_dim=10).train()
    D = TwoNetD()
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 10))
    weight, sigma = 0.7, 1.0
    loss = ProjectedGANLoss(G, D, LossConfig(cls_weight=weight), ClassifierGuidance(classifier))
    z, c = torch.randn(3, G.z_dim), torch.eye(10)[[1, 4, 7]]
    params = G.trainable_parameters()

    ours, stats = loss.generator_loss(z, c, stage_nimg=150_000)  # sigma 1
    img = G(z, c)
    logits = D.forward_per_network(official_blur(img, sigma), c)
    official = sum([(-row).mean() for row in official_rows(logits)])
    official = official + weight * nn.CrossEntropyLoss()(classifier(img), c.argmax(1))
    assert float(ours) == pytest.approx(float(official), rel=1e-5)
    for a, b in zip(grads_of(ours, params), grads_of(official, params)):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)
    assert stats["G_loss"] == pytest.approx(float(official) / 3, rel=1e-5)  # logged per image

    real = torch.rand(3, 3, 16, 16) * 2 - 1
    ours_d, d_stats = loss.discriminator_loss(real, c, z, c, stage_nimg=150_000)
    with torch.no_grad():
        fake = G(z, c)
    fake_rows = official_rows(D.forward_per_network(official_blur(fake, sigma), c))
    real_rows = official_rows(D.forward_per_network(official_blur(real, sigma), c))
    official_d = sum([F.relu(1 + r).mean() for r in fake_rows]) + sum([F.relu(1 - r).mean() for r in real_rows])
    assert float(ours_d) == pytest.approx(float(official_d), rel=1e-5)
    for a, b in zip(grads_of(ours_d, [D.a, D.b]), grads_of(official_d, [D.a, D.b])):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)
    assert d_stats["D_loss"] == pytest.approx(float(official_d) / 3, rel=1e-5)


def test_guidance_resizes_the_whole_image_to_224_bilinear() -> None:
    """Official guidance: Interpolate(224) (bilinear, align_corners False) before the classifier, no crop."""
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(x)
            return x.mean(dim=(2, 3)).repeat(1, 334)[:, :1000]

    img = torch.randn(2, 3, 16, 16)
    ClassifierGuidance(Probe(), resize=224)(img, torch.eye(3)[[0, 2]])
    torch.testing.assert_close(seen[0], F.interpolate(img, size=(224, 224), mode="bilinear", align_corners=False))


# ----------------------------------------------------------------------------- D class conditioning

def test_d_heads_use_the_official_class_conditioning() -> None:
    """pg_modules: cmap = FullyConnectedLayer(320 -> 64, lrelu)(embed(argmax c)), an equalized-lr FC
    (weight stored N(0, 1), gain 1/sqrt(320), bias 0, leaky ReLU 0.2 times sqrt(2)); the head's logits are
    sum_channels(cls(h) * cmap) / sqrt(64); DownBlocks are spectral-norm convs with bias."""
    rows = torch.randn(4, 320) * 1.078
    cfg = DiscriminatorConfig(c_dim=4)
    head = ScaleDiscriminator(64, 32, cfg, rows).eval()
    assert torch.equal(head.embed.weight, rows) and head.embed.weight.requires_grad
    assert isinstance(head.embed_proj, FullyConnectedLayer) and head.embed_proj.weight_gain == 1 / math.sqrt(320)
    assert float(head.embed_proj.bias.abs().max()) == 0
    blocks = [m for m in head.main if isinstance(m, DownBlock)]
    assert blocks and all(b[0].bias is not None for b in blocks)
    x, c = torch.randn(2, 64, 32, 32), torch.eye(4)[[3, 1]]
    out = head(x, c)
    h = head.out(head.main(x))
    w = head.embed_proj.weight
    cmap = F.leaky_relu(rows[[3, 1]] @ w.t() / math.sqrt(320), 0.2) * math.sqrt(2)
    expected = (h * cmap[:, :, None, None]).sum(dim=1).flatten(1) / math.sqrt(64)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)


def test_the_table_initialises_d_and_the_mapping_and_is_logged(tmp_path: Path) -> None:
    table = ClassEmbeddingTable(torch.randn(1000, 320), "official", "table.pkl")
    trainer = tiny_trainer(tmp_path, tiny_cfg(loss=LossConfig(pl_weight=0)), class_table=table)
    assert torch.equal(trainer.G.mapping.embed.weight, table.weight[:3])  # rows 0..c_dim-1
    heads = [h for per_net in trainer.D.discriminators.values() for h in per_net]
    assert heads and all(torch.equal(h.embed.weight, table.weight[:3]) for h in heads)
    assert trainer.cfg.disc.class_embedding == "official"
    plain = tiny_trainer(tmp_path / "b", tiny_cfg(loss=LossConfig(pl_weight=0)))
    assert plain.cfg.disc.class_embedding == "random"
    with pytest.raises(ValueError, match="class_rows"):
        ProjectedDiscriminator({"effnet": TinyFeatures()}, DiscriminatorConfig(c_dim=3), torch.zeros(3, 128))


def write_official_style_table(path: Path, weight: torch.Tensor) -> Path:
    """A pickle of {'embed': nn.Embedding}, as in_embeddings/tf_efficientnet_lite0.pkl holds."""
    embed = nn.Embedding(*weight.shape)
    with torch.no_grad():
        embed.weight.copy_(weight)
    path.write_bytes(pickle.dumps({"embed": embed}))
    return path


def test_the_official_table_is_read_safely_and_found_by_option_env_or_default(tmp_path: Path, monkeypatch) -> None:
    weight = torch.randn(1000, 320)
    path = write_official_style_table(tmp_path / "tf_efficientnet_lite0.pkl", weight)
    torch.testing.assert_close(read_official_table(path), weight)
    monkeypatch.delenv(CLASS_EMBEDDINGS_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    table = find_class_embeddings(path)
    assert table.source == "official" and torch.equal(table.weight, read_official_table(path))
    monkeypatch.setenv(CLASS_EMBEDDINGS_ENV, str(path))
    assert find_class_embeddings().source == "official"
    monkeypatch.setenv(CLASS_EMBEDDINGS_ENV, str(tmp_path / "missing.pkl"))
    with pytest.raises(SGXLError, match="does not exist"):
        find_class_embeddings()
    monkeypatch.delenv(CLASS_EMBEDDINGS_ENV)
    assert find_class_embeddings().source == "lite0-classifier"  # nothing at the default location yet
    default = tmp_path / "home" / ".cache" / "sgxl" / "in_embeddings"
    default.mkdir(parents=True)
    write_official_style_table(default / "tf_efficientnet_lite0.pkl", weight)
    assert find_class_embeddings().source == "official"
    # The official rand_embedding option: random rows even where a table exists.
    assert find_class_embeddings("random") is None
    monkeypatch.setenv(CLASS_EMBEDDINGS_ENV, "random")
    assert find_class_embeddings() is None


def test_sgxl_train_class_embeddings_random_starts_from_random_rows(tmp_path: Path, capsys) -> None:
    """`--class-embeddings random` (official: rand_embedding): G and D start from random rows, said in the log."""
    import io
    import json

    import numpy as np
    from PIL import Image

    from core.cli import main
    from core.io.checkpoint import load_checkpoint
    from core.training.class_embeddings import derived_lite0_table
    from tests.hostile import dataset_zip

    rng = np.random.default_rng(0)
    images = {}
    for i in range(8):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buf, format="PNG")
        images[f"img{i}.png"] = buf.getvalue()
    data = dataset_zip(tmp_path / "data.zip", images, labels=[[f"img{i}.png", i % 2] for i in range(8)])
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--preset", "tiny", "--batch", "4", "--kimg",
                 "0.004", "--tick", "0.004", "--d-input-size", "64", "--class-embeddings", "random",
                 "--device", "cpu", "--no-progress"]) == 0
    assert "class embeddings: random (asked for)" in capsys.readouterr().err
    start = next(json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if '"start"' in line)
    assert start["config"]["disc"]["class_embedding"] == "random"
    G = load_checkpoint(run / "latest.sgxl").generator
    derived = derived_lite0_table()[:2]
    assert not torch.allclose(G.mapping.embed.weight, derived, atol=0.1)  # one step of Adam moves rows < 0.1


def test_hostile_or_wrong_tables_are_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo owned > " + str(tmp_path / "owned"),))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"embed": Evil()}))
    with pytest.raises(SGXLError, match="refused"):
        read_official_table(evil)
    assert not (tmp_path / "owned").exists()
    with pytest.raises(SGXLError, match="not the official class-embedding table"):
        read_official_table(write_official_style_table(tmp_path / "small.pkl", torch.randn(10, 320)))


def test_derived_table_has_the_official_scale_and_matches_the_official_table() -> None:
    """Fallback: lite0's classifier rows pulled back through conv_head, at the official table's RMS. Against
    the official table (the official mapping's `embed`, which a freshly built official G holds verbatim):
    same row scale, and rows point the same way (measured row-wise cosine 0.72)."""
    table = derived_lite0_table()
    assert table.shape == (1000, 320)
    assert float(table.square().mean().sqrt()) == pytest.approx(OFFICIAL_TABLE_RMS, rel=1e-4)
    fixture = OFFICIAL_FIXTURES / "sgxl_tiny16_c10.pkl"
    if not fixture.exists():
        pytest.skip("official fixtures not available")
    from core.io.official import read_official_generator

    official = read_official_generator(fixture).tensors["mapping.embed.weight"]
    assert float(official.square().mean().sqrt()) == pytest.approx(OFFICIAL_TABLE_RMS, rel=1e-3)
    row_cos = F.cosine_similarity(table, official, dim=1)
    assert float(row_cos.mean()) > 0.6
    norms, official_norms = table.norm(dim=1), official.norm(dim=1)
    assert float(norms.mean()) == pytest.approx(float(official_norms.mean()), rel=0.1)


# ----------------------------------------------------------------------------- resume, CLI

def test_resume_refuses_a_discriminator_of_the_old_layout(tmp_path: Path) -> None:
    trainer = tiny_trainer(tmp_path, tiny_cfg(loss=LossConfig(pl_weight=0)))
    old_d = {k: v for k, v in trainer._d_state().items() if not k.endswith("main.0.0.bias")}
    ckpt = SimpleNamespace(path="old.sgxl", extra_tensors={"G_train": {}, "D": old_d, "opt_G": {}, "opt_D": {},
                                                           "rng": {}})
    with pytest.raises(TrainingError, match="another layout"):
        trainer.restore(ckpt)


def test_old_configs_load_and_the_help_states_the_effective_values() -> None:
    saved = TrainConfig().to_dict()
    saved["disc"]["class_embed_dim"] = 128  # a setting of the old discriminator
    saved["retired_option"] = 1
    assert TrainConfig.from_dict(saved).disc.embed_dim == 320
    from core.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "verb").choices["train"]
    helps = {a.dest: a.help for a in sub._actions}
    assert "0.002" in helps["glr"] and "0.99^(4/5)" in helps["glr"]
    assert "16/17" in helps["dlr"] and "0.99^(16/17)" in helps["dlr"]
    assert "exp2" in helps["blur_fade_kimg"] and "300" in helps["blur_fade_kimg"]


def test_training_needs_no_gui_packages() -> None:
    """The GPU machine has no dearpygui (nor glfw / PyOpenGL): `sgxl train` and `sgxl metrics` must import without."""
    import subprocess
    import sys

    from tests.helpers import REPO

    code = ("import sys\n"
            "for name in ('dearpygui', 'glfw', 'OpenGL', 'imageio_ffmpeg'):\n"
            "    sys.modules[name] = None  # any import of them now fails\n"
            "import core.cli, core.training.launch, core.training.trainer, core.metrics.api\n"
            "core.cli.build_parser().parse_args(['train', '--data', 'x.zip'])\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr


def test_sgxl_train_guidance_feeds_the_whole_resized_image_to_lite0() -> None:
    """What `sgxl train --cls-weight` builds: lite0 on the bilinear 224² image (no crop), targets via --class-map."""
    from core.training.launch import classifier_guidance

    guidance = classifier_guidance(LossConfig(cls_weight=1.0, class_map=[207, 281]), 2, torch.device("cpu"))
    img, c = torch.rand(2, 3, 16, 16) * 2 - 1, torch.eye(2)[[1, 0]]
    with torch.no_grad():
        logits = guidance.classifier(F.interpolate(img, size=(224, 224), mode="bilinear", align_corners=False))
        expected = F.cross_entropy(logits, torch.tensor([281, 207]))
        assert float(guidance(img, c)) == pytest.approx(float(expected), rel=1e-5)
