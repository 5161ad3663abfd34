"""Assemble and run a training job: dataset, generator (new stem, grown stage or resumed run),
frozen feature networks, optional classifier guidance, and the Trainer. `sgxl train` and the
explorer's train panel (which runs `sgxl train` as a subprocess) both end up here.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from core.errors import CheckpointError, SGXLError, UserInputError
from core.io.checkpoint import load_checkpoint
from core.io.files import check_writable
from core.memory import retain_freed_memory
from core.networks.discriminator import DiscriminatorConfig
from core.networks.generator import Generator
from core.training.class_embeddings import CLASS_EMBEDDINGS_ENV, RANDOM, find_class_embeddings
from core.training.lock import RunLock
from core.training.loss import ClassifierGuidance, LossConfig
from core.training.run_dir import check_out_dir, move_run_aside
from core.training.trainer import TrainConfig, Trainer, TrainState, build_generator_for


@dataclass
class TrainOptions:
    data: str  # "" with `resume`: the dataset the snapshot records
    out: str
    preset: str = "tiny"
    grow_from: str | None = None
    head_layers: int | None = None
    keep_d: bool = False  # with grow_from: start D from the snapshot's (the paper builds a fresh one)
    resume: str | None = None
    batch: int = 16
    batch_gpu: int | None = None
    kimg: float | None = None  # new run / new stage: kimg to train (default 10); resume: the run's total
    snapshot_kimg: float = 1.0
    tick_kimg: float = 0.1
    g_lr: float = 0.0025
    d_lr: float = 0.002
    cls_weight: float = 0.0
    range_weight: float = 0.0
    class_embeddings: str | None = None  # the official class-embedding table (.pkl); default: see class_embeddings
    synthesis_emas: bool = False  # not official: update the synthesis magnitude EMAs (A/B runs only)
    class_map: list[int] | None = None
    blur_fade_kimg: float = 300.0
    d_input_size: int = 224
    deit_weights: str | None = None
    mirror: bool = False
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    metrics: list[str] | None = None  # computed at each snapshot, e.g. ["fd_effnet"]
    metrics_num: int = 1000
    force_new: bool = False  # `out` holds another run: move it aside (run_dir.py) instead of refusing
    keep: int | None = None  # keep the newest N snapshots (None: the run's setting; a new run keeps all)


def init_distributed(device: str) -> torch.device:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK: join the process group (gloo on CPU, nccl on CUDA)."""
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "cuda" and not torch.cuda.is_available():
        raise UserInputError("--device cuda was asked for, but PyTorch sees no CUDA GPU")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def feature_networks(input_size: int, deit_weights: str | None, device: torch.device) -> dict[str, torch.nn.Module]:
    """The frozen feature networks of the projected discriminator; `input_size` = the run's D input size."""
    from core.networks.feature_nets import EfficientNetFeatures, load_deit_features

    nets: dict[str, torch.nn.Module] = {"effnet": EfficientNetFeatures(device=device, min_size=input_size)}
    deit = load_deit_features(deit_weights, device=device)  # None (and one log line) when unavailable
    if deit is not None:
        nets["deit"] = deit
    return nets


def classifier_guidance(loss: LossConfig, c_dim: int, device: torch.device) -> ClassifierGuidance | None:
    if loss.cls_weight <= 0:
        return None
    from core.networks.feature_nets import ImageNetClassifier

    if c_dim != 1000 and not loss.class_map:
        raise UserInputError(f"classifier guidance needs ImageNet classes, but the dataset has {c_dim}: pass "
                             "--class-map with one ImageNet class index per dataset class, or --cls-weight 0")
    if loss.class_map and len(loss.class_map) != c_dim:
        raise UserInputError(f"--class-map has {len(loss.class_map)} entries for {c_dim} classes")
    # The whole image, resized to 224² (bilinear), as the official guidance's Interpolate(224), straight into the
    # ImageNet network: lite0's normalisation (mean = std = 0.5 on [0, 1]) maps [-1, 1] images to themselves, and
    # the classifier's own short-side-256 + centre-crop preparation (for photos) must not cut the borders off.
    # The network is EfficientNet-lite0 (official: DeiT-small distilled, whose weights we cannot assume offline).
    return ClassifierGuidance(ImageNetClassifier(device=device).net, loss.class_map, resize=224).to(device)


MIN_D_INPUT_SIZE = 64


def run_training(opts: TrainOptions) -> Path | None:

    if opts.d_input_size < MIN_D_INPUT_SIZE:
        # Below 64 the deepest EfficientNet feature maps get smaller than the discriminator heads' kernels.
        raise UserInputError(f"--d-input-size {opts.d_input_size} is too small for the feature network; "
                             f"use {MIN_D_INPUT_SIZE} or more (224 = the paper's setting)")
    if opts.keep_d and (not opts.grow_from or opts.resume):
        raise UserInputError("--keep-d goes with --grow-from (a resumed run already has its discriminator)")
    if opts.keep is not None and opts.keep < 1:
        raise UserInputError("--keep must be at least 1 (the newest snapshot; leave it out to keep all)")
    check_writable(opts.out, folder=True)
    # Before joining the other processes: every rank checks the run directory before rank 0 may move it.
    check_out_dir(opts.out, opts.resume, opts.force_new, opts.grow_from)
    device = init_distributed(opts.device)
    # One trainer per run directory (rank 0 writes it; the other ranks of this job write nothing there).
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    with RunLock(opts.out) if rank == 0 else contextlib.nullcontext():
        # Checked again under the lock (a trainer that just finished there may have written a run meanwhile).
        move_old_run = rank == 0 and check_out_dir(opts.out, opts.resume, opts.force_new, opts.grow_from)
        return _run_training(opts, device, move_old_run)


def _run_training(opts: TrainOptions, device: torch.device, move_old_run: bool = False) -> Path | None:
    from core.data.dataset import ImageDataset

    if device.type == "cpu":
        retain_freed_memory()  # ~1.35x faster CPU steps (see core/memory.py)
    resume_ckpt = grown_from = class_table = None
    data = opts.data
    if opts.resume:
        path = Path(opts.resume)
        resume_ckpt = load_checkpoint(path / "latest.sgxl" if path.is_dir() else path)
        data = data or resume_ckpt.meta.get("dataset") or ""
        if not data:
            raise UserInputError("this snapshot does not record its dataset; pass --data")
    dataset = ImageDataset(data)
    if "class_acc" in (opts.metrics or []) and dataset.num_classes == 0:
        raise UserInputError("--metrics class_acc needs a labelled dataset (a class-conditional model); this one "
                             "has no labels")
    loss_cfg = LossConfig(cls_weight=opts.cls_weight, class_map=opts.class_map, blur_fade_kimg=opts.blur_fade_kimg,
                          range_weight=opts.range_weight, update_synthesis_emas=opts.synthesis_emas)
    stage_kimg = 10.0 if opts.kimg is None else opts.kimg
    cfg = TrainConfig(batch=opts.batch, batch_gpu=opts.batch_gpu, kimg=stage_kimg, snapshot_kimg=opts.snapshot_kimg,
                      tick_kimg=opts.tick_kimg, g_lr=opts.g_lr, d_lr=opts.d_lr, seed=opts.seed, mirror=opts.mirror,
                      loss=loss_cfg, disc=DiscriminatorConfig(input_size=opts.d_input_size),
                      metrics=list(opts.metrics or []), metrics_num=opts.metrics_num, keep_snapshots=opts.keep or 0)
    if resume_ckpt is not None:
        saved = resume_ckpt.meta.get("train_config")
        if saved is None:
            raise UserInputError(f"{opts.resume} is not a training snapshot (no training state); use --grow-from "
                                 "instead")
        try:
            cfg = TrainConfig.from_dict(saved)
        except (TypeError, ValueError, KeyError) as e:
            raise CheckpointError(f"{opts.resume}: its training configuration is corrupt ({e})") from None
        if opts.kimg is not None:  # the only settings a resume may change: how far to go, what to measure
            cfg.kimg = opts.kimg
        if opts.metrics is not None:
            cfg.metrics, cfg.metrics_num = list(opts.metrics), opts.metrics_num
        if opts.keep is not None:  # how many snapshots to keep is not a training setting: it may change too
            cfg.keep_snapshots = opts.keep
        if cfg.loss.class_map is None and opts.class_map:  # snapshots before the map was saved with the run
            cfg.loss.class_map = list(opts.class_map)
        G = Generator(resume_ckpt.config)
        class_names = resume_ckpt.class_names
    else:
        grown_from = load_checkpoint(opts.grow_from) if opts.grow_from else None
        if grown_from is not None and not grown_from.generator.traits.trainable:
            raise UserInputError(f"{opts.grow_from} holds a {grown_from.generator.traits.label} generator; "
                                 "`sgxl train` trains and grows StyleGAN-XL generators only")
        class_table = find_class_embeddings(opts.class_embeddings)
        torch.manual_seed(opts.seed)  # --seed fixes the new layers' initial weights too, not only the training
        G, class_names = build_generator_for(dataset, opts.preset, grown_from, opts.head_layers, device, class_table)
        if G.c_dim > 0 and int(os.environ.get("RANK", "0")) == 0:  # also recorded in the log's config (disc)
            fits = class_table is not None and class_table.rows(G.c_dim, cfg.disc.embed_dim) is not None
            why = ("asked for" if (opts.class_embeddings or os.environ.get(CLASS_EMBEDDINGS_ENV)) == RANDOM
                   else "no ImageNet class table fits")
            print(f"class embeddings: {class_table.describe() if fits else f'random ({why})'}", file=sys.stderr)
    state = None
    if grown_from is not None:
        # kimg keeps counting over the whole run; blur restarts with the stage.
        nimg = int(grown_from.kimg * 1000)
        state = TrainState(cur_nimg=nimg, stage_start_nimg=nimg)
        cfg.kimg = grown_from.kimg + stage_kimg
    # From here on only `cfg` counts: a resumed run keeps its own D input size and guidance settings
    # (the options' defaults would build a different discriminator around the restored heads).
    guidance = classifier_guidance(cfg.loss, G.c_dim, device)
    nets = feature_networks(cfg.disc.input_size, opts.deit_weights, device)
    if move_old_run:  # every input has loaded: only now does --force-new touch the old run
        move_run_aside(opts.out)
    trainer = Trainer(G, dataset, opts.out, cfg, nets, device=device, guidance=guidance,
                      class_names=class_names, state=state, class_table=class_table)
    if opts.keep_d:
        trainer.adopt_discriminator(grown_from)
    if resume_ckpt is not None:
        trainer.restore(resume_ckpt)
        if trainer.state.cur_nimg >= cfg.kimg * 1000:
            raise UserInputError(f"the run is already at {trainer.state.cur_nimg / 1e3:.1f} kimg; pass a larger --kimg")
    try:
        return trainer.run(progress=opts.progress)
    except torch.OutOfMemoryError:
        raise SGXLError("out of memory: lower --batch-gpu (gradient accumulation keeps the total batch)") from None
