"""The trainer end to end: snapshots, exact resume, growing a stage, 2-process gloo training."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from core.io.checkpoint import load_checkpoint
from core.io.pointer import point_to
from core.networks.discriminator import DiscriminatorConfig
from core.networks.feature_nets import EfficientNetFeatures
from core.training.loss import LossConfig
from core.training.trainer import TrainConfig, Trainer, TrainingError, TrainState, build_generator_for
from tests.helpers import ToyDataset, no_links


@pytest.fixture(scope="module")
def effnet() -> EfficientNetFeatures:
    return EfficientNetFeatures(min_size=64)


def small_cfg(**kw) -> TrainConfig:
    base = dict(batch=4, kimg=0.016, snapshot_kimg=0.008, tick_kimg=0.004, seed=1, sample_seeds=2,
                sample_classes=3, disc=DiscriminatorConfig(input_size=64),
                loss=LossConfig(pl_start_kimg=0, pl_interval=2))  # exercise path-length reg too
    base.update(kw)
    return TrainConfig(**base)


def read_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def make_trainer(run: Path, effnet, cfg: TrainConfig, ds=None) -> Trainer:
    ds = ds or ToyDataset(n=24, res=16, classes=3)
    torch.manual_seed(0)
    G, names = build_generator_for(ds, "tiny", None, None, "cpu")
    return Trainer(G, ds, run, cfg, {"effnet": effnet}, class_names=names)


def test_end_to_end_writes_snapshots_samples_and_log(tmp_path: Path, effnet) -> None:
    run = tmp_path / "run"
    trainer = make_trainer(run, effnet, small_cfg())
    g_before = {k: v.clone() for k, v in trainer.G.state_dict().items()}
    last = trainer.run(progress=False)
    assert last is not None and last.exists()
    assert sorted(p.name for p in (run / "snapshots").iterdir()) == ["snapshot-000000008.sgxl",
                                                                       "snapshot-000000016.sgxl"]
    assert (run / "samples" / "reals.png").exists() and (run / "samples" / "fakes000000016.png").exists()
    log = read_log(run)
    ticks = [r for r in log if "D_loss" in r]
    assert [r["kimg"] for r in ticks] == [0.004, 0.008, 0.012, 0.016]
    assert all(r["sec_per_kimg"] > 0 for r in ticks)
    # The process's CPU time per kimg (all threads): positive, and at most the threads' share of the wall time.
    threads = torch.get_num_threads()
    assert all(0 < r["cpu_sec_per_kimg"] <= r["sec_per_kimg"] * (threads + 1) for r in ticks)
    assert log[-1]["event"] == "done"
    start = next(r for r in log if r.get("event") == "start")
    assert start["config"]["disc"]["c_dim"] == 3  # the conditional D the run really used
    ckpt = load_checkpoint(run / "latest.sgxl")
    assert ckpt.kimg == 0.016 and ckpt.class_names == ["class0", "class1", "class2"]
    changed = [k for k, v in trainer.G.state_dict().items() if not torch.equal(v, g_before[k])]
    assert any(k.endswith(".weight") for k in changed)  # G trained
    assert not torch.equal(ckpt.generator.mapping.fc0.weight, trainer.G.mapping.fc0.weight)  # EMA differs from G
    # The same numbers reach TensorBoard when it is installed (a test dependency).
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    d_loss = events.Scalars("D_loss")
    assert [e.step for e in d_loss] == [4, 8, 12, 16]
    assert [round(e.value, 4) for e in d_loss] == [round(r["D_loss"], 4) for r in ticks]


def test_resume_continues_exactly(tmp_path: Path, effnet) -> None:
    full = make_trainer(tmp_path / "full", effnet, small_cfg())
    full.run(progress=False)
    resumed = make_trainer(tmp_path / "resumed", effnet, small_cfg())
    resumed.restore(load_checkpoint(tmp_path / "full" / "snapshots" / "snapshot-000000008.sgxl"))
    assert resumed.state.cur_nimg == 8 and resumed.state.step == 2 and resumed.state.pl_mean > 0
    resumed.run(progress=False)
    ticks_full = [r for r in read_log(tmp_path / "full") if "D_loss" in r and r["kimg"] > 0.008]
    ticks_resumed = [r for r in read_log(tmp_path / "resumed") if "D_loss" in r]
    for a, b in zip(ticks_full, ticks_resumed, strict=True):
        for key in ("G_loss", "D_loss", "D_real", "D_fake"):
            assert a[key] == b[key], (a["kimg"], key)
    for (k, a), b in zip(full.G_ema.state_dict().items(), resumed.G_ema.state_dict().values()):
        assert torch.equal(a, b), k


def test_resume_through_the_launcher_rebuilds_the_runs_discriminator(tmp_path: Path, monkeypatch) -> None:
    """`sgxl train --resume RUN` needs no repeated options: the data is the run's, D gets the run's
    --d-input-size (64 here), not the option's default (224), so the resumed run logs the same numbers as
    the uninterrupted one."""
    import shutil

    import core.data.dataset
    from core.training import launch

    opened = []

    def open_toy(path: str) -> ToyDataset:
        opened.append(path)
        data = ToyDataset(n=24, res=16, classes=3)
        data.path = path  # what a real dataset records in the snapshot
        return data

    monkeypatch.setattr(core.data.dataset, "ImageDataset", open_toy)
    full = tmp_path / "full"
    launch.run_training(launch.TrainOptions(data="toy", out=str(full), preset="tiny", batch=4, kimg=0.016,
                                            snapshot_kimg=0.008, tick_kimg=0.004, d_input_size=64, seed=1,
                                            device="cpu", progress=False))
    part = tmp_path / "part"
    (part / "snapshots").mkdir(parents=True)
    shutil.copy(full / "snapshots" / "snapshot-000000008.sgxl", part / "snapshots")
    # On a filesystem with neither symbolic nor hard links, latest.sgxl is a pointer file; resume follows it.
    no_links(monkeypatch, "pointer")
    assert point_to(part / "latest.sgxl", part / "snapshots" / "snapshot-000000008.sgxl") == "pointer"
    launch.run_training(launch.TrainOptions(data="", out=str(part), resume=str(part), kimg=0.016, device="cpu",
                                            progress=False))
    assert opened == ["toy", "toy"]  # no --data: the dataset the snapshot records
    assert (part / "latest.sgxl").stat().st_size < 200 and load_checkpoint(part / "latest.sgxl").kimg == 0.016
    ticks_full = [r for r in read_log(full) if "D_loss" in r and r["kimg"] > 0.008]
    ticks_resumed = [r for r in read_log(part) if "D_loss" in r]
    assert [r["kimg"] for r in ticks_resumed] == [0.012, 0.016]
    for a, b in zip(ticks_full, ticks_resumed, strict=True):
        for key in ("G_loss", "D_loss", "logits_real", "logits_fake"):
            assert a[key] == b[key], (a["kimg"], key)


def test_resume_needs_training_state(tmp_path: Path, effnet) -> None:
    from core.io.checkpoint import save_checkpoint
    from tests.helpers import make_tiny_generator

    bare = save_checkpoint(tmp_path / "bare.sgxl", make_tiny_generator(16, c_dim=3))
    trainer = make_trainer(tmp_path / "run", effnet, small_cfg())
    with pytest.raises(TrainingError, match="no training state"):
        trainer.restore(load_checkpoint(bare))


def test_resume_refuses_a_discriminator_with_other_feature_networks(tmp_path: Path, effnet) -> None:
    make_trainer(tmp_path / "run", effnet, small_cfg(kimg=0.008)).run(progress=False)
    ckpt = load_checkpoint(tmp_path / "run" / "latest.sgxl")
    ckpt.extra_tensors["D"]["discriminators.deit.0.out.weight_orig"] = torch.zeros(1)  # as if trained with DeiT
    trainer = make_trainer(tmp_path / "again", effnet, small_cfg())
    with pytest.raises(TrainingError, match="feature networks deit, effnet; this run has effnet"):
        trainer.restore(ckpt)


def test_grow_from_a_stem_snapshot_trains_only_the_head(tmp_path: Path, effnet) -> None:
    stem_run = tmp_path / "stem"
    make_trainer(stem_run, effnet, small_cfg(kimg=0.008)).run(progress=False)
    ds32 = ToyDataset(n=16, res=32, classes=3)
    G, names = build_generator_for(ds32, "tiny", stem_run / "latest.sgxl", None, "cpu")
    assert G.img_resolution == 32 and G.stage == 1
    frozen_before = G.mapping.fc0.weight.clone()
    trainer = Trainer(G, ds32, tmp_path / "grown", small_cfg(kimg=0.008), {"effnet": effnet}, class_names=names)
    trainer.run(progress=False)
    assert torch.equal(trainer.G.mapping.fc0.weight, frozen_before)
    assert load_checkpoint(tmp_path / "grown" / "latest.sgxl").generator.img_resolution == 32


def test_g_ema_ramp_restarts_with_a_growth_stage(tmp_path: Path, effnet) -> None:
    """50 kimg into a run, a new stage's first step: G_ema follows G (ramp-up 5 % of the stage's images),
    instead of averaging with a 5 kimg half-life over the random new head."""
    ds = ToyDataset(n=24, res=16, classes=3)
    torch.manual_seed(0)
    G, names = build_generator_for(ds, "tiny", None, None, "cpu")
    state = TrainState(cur_nimg=50_000, stage_start_nimg=50_000)
    trainer = Trainer(G, ds, tmp_path / "run", small_cfg(ema_kimg=5.0), {"effnet": effnet}, class_names=names,
                      state=state)
    before = [p.detach().clone() for p in trainer.G_ema.parameters()]
    trainer.train_step()
    moved = [not torch.equal(b, p) for b, p in zip(before, trainer.G.parameters())]
    assert any(moved)
    for p_ema, p in zip(trainer.G_ema.parameters(), trainer.G.parameters()):
        torch.testing.assert_close(p_ema, p.detach(), atol=1e-5, rtol=1e-5)


def test_keep_d_starts_the_grown_stage_from_the_stem_discriminator(tmp_path: Path, effnet) -> None:
    stem_run = tmp_path / "stem"
    make_trainer(stem_run, effnet, small_cfg(kimg=0.008)).run(progress=False)
    stem = load_checkpoint(stem_run / "latest.sgxl")
    ds32 = ToyDataset(n=16, res=32, classes=3)
    G, names = build_generator_for(ds32, "tiny", stem_run / "latest.sgxl", None, "cpu")
    trainer = Trainer(G, ds32, tmp_path / "grown", small_cfg(kimg=0.008), {"effnet": effnet}, class_names=names)
    fresh = {k: v.clone() for k, v in trainer.D.state_dict().items()}
    trainer.adopt_discriminator(stem)
    own = trainer.D.state_dict()
    assert stem.extra_tensors["D"], "the stem snapshot holds D"
    for key, saved in stem.extra_tensors["D"].items():
        assert torch.equal(own[key], saved), key
    assert any(not torch.equal(fresh[k], own[k]) for k in stem.extra_tensors["D"])  # it did change D
    trainer.run(progress=False)
    start = next(r for r in read_log(tmp_path / "grown") if r.get("event") == "start")
    assert start["discriminator_from"] == str(stem_run / "latest.sgxl")


def test_keep_d_refuses_a_model_without_or_with_another_discriminator(tmp_path: Path, effnet) -> None:
    from core.io.checkpoint import save_checkpoint

    stem_run = tmp_path / "stem"
    make_trainer(stem_run, effnet, small_cfg(kimg=0.008)).run(progress=False)
    stem = load_checkpoint(stem_run / "latest.sgxl")
    exported = load_checkpoint(save_checkpoint(tmp_path / "g_only.sgxl", stem.generator, stem.meta))
    ds5 = ToyDataset(n=16, res=16, classes=5)
    trainer = make_trainer(tmp_path / "other", effnet, small_cfg(), ds=ToyDataset(n=16, res=16, classes=3))
    with pytest.raises(TrainingError, match="holds no discriminator"):
        trainer.adopt_discriminator(exported)
    five = make_trainer(tmp_path / "five", effnet, small_cfg(), ds=ds5)
    with pytest.raises(TrainingError, match="does not fit"):
        five.adopt_discriminator(stem)


def test_mismatched_dataset_is_refused(tmp_path: Path, effnet) -> None:
    ds = ToyDataset(n=8, res=32)
    with pytest.raises(TrainingError, match="16² stem"):
        build_generator_for(ds, "tiny", None, None, "cpu")


def _ddp_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        torch.set_num_threads(1)
        cfg = small_cfg(kimg=0.008, snapshot_kimg=1.0)
        trainer = make_trainer(Path(out_dir) / "run", EfficientNetFeatures(min_size=64), cfg)
        trainer.run(progress=False)
        torch.save({k: v for k, v in trainer.G.state_dict().items()}, Path(out_dir) / f"G_rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo_training_keeps_ranks_in_sync(tmp_path: Path) -> None:
    init_file = tmp_path / "dist_init"
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    mp.spawn(_ddp_worker, args=(2, str(init_file), str(tmp_path)), nprocs=2, join=True)
    g0 = torch.load(tmp_path / "G_rank0.pt")
    g1 = torch.load(tmp_path / "G_rank1.pt")
    for k in g0:
        assert torch.equal(g0[k], g1[k]), k
    log = read_log(tmp_path / "run")
    assert [r for r in log if r.get("event") == "start"][0]["world_size"] == 2
    assert load_checkpoint(tmp_path / "run" / "latest.sgxl").kimg == 0.008
