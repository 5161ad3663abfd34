"""The StyleGAN-XL training loop: G/D alternation, G EMA, snapshots, resume, progressive stages.

Recipe (paper Sec. 4, official training_loop.py): Adam betas (0, 0.99), eps 1e-8, G lr 0.0025, D lr 0.002,
both with the official lazy-regularisation scaling (interval k: lr x k/(k+1), betas ** (k/(k+1)); G k = 4,
D k = 16, applied although StyleGAN-XL has no R1: G gets lr 0.002 and beta2 0.99^0.8, D lr 0.002 x 16/17
and beta2 0.99^(16/17)); G_ema with ema_kimg = batch * 10 / 32 and a 5% ramp-up over the stage's images
seen before the step; hinge loss with a fading blur; the
projected discriminator is rebuilt fresh for every stage (or, with --keep-d, starts from the
previous stage's); in a growth stage only the new head of G trains. Snapshots hold G_ema (what
users generate with) plus everything needed to resume exactly: G, D, both optimizers, the RNG
state and the data position.

Run directory:
    log.jsonl                 one JSON object per tick (losses, kimg, sec/kimg) and per event
    samples/reals.png         a grid of training images
    samples/fakes{kimg}.png   G_ema on fixed seeds x classes at each snapshot
    snapshots/snapshot-{kimg}.sgxl   (written atomically; cfg.keep_snapshots > 0 keeps only the newest N)
    latest.sgxl               a link to the newest snapshot, not a copy (core/io/pointer.py)

Multi-process (torchrun, gloo on CPU / nccl on CUDA): every rank trains on its slice of the batch
and gradients are averaged with all_reduce before each optimizer step, as the official code does.
"""

from __future__ import annotations

import copy
import json
import math
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from core.errors import SGXLError
from core.io.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from core.io.files import append_line, save_image
from core.io.pointer import point_to
from core.networks.discriminator import DiscriminatorConfig, ProjectedDiscriminator
from core.networks.generator import Generator
from core.training.class_embeddings import ClassEmbeddingTable
from core.training.loss import LossConfig, ProjectedGANLoss
from core.training.run_dir import LATEST, SNAPSHOTS, prune_snapshots


class TrainingError(SGXLError):
    """Training cannot continue (bad data, NaN losses, ...); the last good snapshot is kept."""


@dataclass
class TrainConfig:
    batch: int = 16  # total batch over all processes and accumulation rounds
    batch_gpu: int | None = None  # per-process batch of one forward pass (default: all of it)
    kimg: float = 10.0  # train until this many thousand images (counted over the whole run)
    snapshot_kimg: float = 1.0
    tick_kimg: float = 0.1  # log interval
    g_lr: float = 0.0025  # base learning rates, before the lazy-regularisation scaling below
    d_lr: float = 0.002
    betas: tuple[float, float] = (0.0, 0.99)
    eps: float = 1e-8
    g_reg_interval: int | None = 4  # official lazy-regularisation intervals (None: no scaling)
    d_reg_interval: int | None = 16
    ema_kimg: float | None = None  # default batch * 10 / 32
    ema_rampup: float = 0.05
    seed: int = 0
    mirror: bool = False
    loss: LossConfig = field(default_factory=LossConfig)
    disc: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    sample_seeds: int = 4  # samples per class in the snapshot grid
    sample_classes: int = 8
    mixed_precision: bool = True  # bf16 autocast on CUDA only
    metrics: list[str] = field(default_factory=list)  # computed at each snapshot (core.metrics), e.g. ["fd_effnet"]
    metrics_num: int = 1000  # generated images per snapshot metric
    keep_snapshots: int = 0  # keep the newest N snapshots, remove older ones (0 = keep all)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """A config saved by any version: settings that no longer exist are dropped (an older snapshot's
        discriminator layout is then refused by `Trainer.restore` with its own message)."""
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        d["loss"] = LossConfig(**_known(LossConfig, d.get("loss", {})))
        d["disc"] = DiscriminatorConfig(**_known(DiscriminatorConfig, d.get("disc", {})))
        d["betas"] = tuple(d.get("betas", (0.0, 0.99)))
        return cls(**d)

    def adam(self, which: str) -> dict:
        """Adam's lr / betas / eps for "G" or "D", with the lazy-regularisation scaling."""
        lr, interval = (self.g_lr, self.g_reg_interval) if which == "G" else (self.d_lr, self.d_reg_interval)
        return adam_hyperparameters(lr, self.betas, self.eps, interval)


def _known(cls, d: dict) -> dict:
    return {k: v for k, v in d.items() if k in cls.__dataclass_fields__}


def adam_hyperparameters(lr: float, betas: tuple[float, float], eps: float, reg_interval: int | None) -> dict:
    """The official lazy-regularisation scaling: with a regulariser every k steps, ratio k / (k + 1) scales the
    lr and is the exponent of the betas (StyleGAN2 Appendix B), keeping the per-image step of the
    main + regularisation updates as without laziness. None: the values as given."""
    if not reg_interval:
        return {"lr": lr, "betas": tuple(betas), "eps": eps}
    ratio = reg_interval / (reg_interval + 1)
    return {"lr": lr * ratio, "betas": tuple(b**ratio for b in betas), "eps": eps}


@dataclass
class TrainState:
    cur_nimg: int = 0
    stage_start_nimg: int = 0  # blur and the stage's own kimg count restart here
    step: int = 0
    epoch: int = 0
    epoch_pos: int = 0
    pl_mean: float = 0.0  # running mean of path lengths (path-length regularization)


def world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class Trainer:
    def __init__(
        self,
        G: Generator,
        dataset,
        run_dir: str | Path,
        cfg: TrainConfig,
        feature_networks: dict[str, torch.nn.Module],
        device: str | torch.device = "cpu",
        guidance: torch.nn.Module | None = None,
        class_names: list[str] | None = None,
        metrics_fn: Callable[[Generator], dict] | None = None,
        state: TrainState | None = None,
        class_table: ClassEmbeddingTable | None = None,
    ) -> None:
        """`class_table`: the ImageNet class-embedding table that initialises D's class embeddings
        (rows 0..c_dim-1, as officially); without it they start random (a resumed run restores its own)."""
        self.rank, self.world_size = world()
        self.device = torch.device(device)
        self.cfg, self.dataset, self.run_dir = cfg, dataset, Path(run_dir)
        self.class_names = class_names or getattr(dataset, "class_names", None)
        self.metrics_fn = metrics_fn
        self._metric_extractors: dict = {}  # feature networks of cfg.metrics, loaded at the first snapshot
        self.state = state or TrainState()
        if G.img_resolution != dataset.resolution:
            raise TrainingError(f"the generator makes {G.img_resolution}² images but the dataset is "
                                f"{dataset.resolution}²: grow the model or rebuild the dataset at that resolution")
        if G.c_dim != max(dataset.num_classes, 0) and not (G.c_dim == 0 and dataset.num_classes <= 1):
            raise TrainingError(f"the generator has {G.c_dim} classes but the dataset has {dataset.num_classes}")
        self.batch_gpu = cfg.batch_gpu or cfg.batch // self.world_size
        if cfg.batch % (self.batch_gpu * self.world_size) != 0:
            raise TrainingError(f"batch {cfg.batch} must be a multiple of batch_gpu x processes "
                                f"({self.batch_gpu} x {self.world_size})")
        self.rounds = cfg.batch // (self.batch_gpu * self.world_size)

        torch.manual_seed(cfg.seed + self.rank)
        self.G = G.to(self.device).train()
        self.G_ema = copy.deepcopy(G).eval().requires_grad_(False)
        disc_cfg = copy.deepcopy(cfg.disc)
        disc_cfg.c_dim = G.c_dim
        rows = class_table.rows(G.c_dim, disc_cfg.embed_dim) if class_table is not None else None
        if class_table is not None:
            disc_cfg.class_embedding = class_table.source if rows is not None else "random"
        cfg.disc.class_embedding = disc_cfg.class_embedding  # recorded with the run's settings
        self.D = ProjectedDiscriminator(feature_networks, disc_cfg, rows).to(self.device).train()
        self._broadcast_params()
        self.g_params = self.G.trainable_parameters()
        self.d_params = self.D.trainable_parameters()
        self.opt_G = torch.optim.Adam(self.g_params, **cfg.adam("G"))
        self.opt_D = torch.optim.Adam(self.d_params, **cfg.adam("D"))
        self.loss = ProjectedGANLoss(self.G, self.D, cfg.loss, guidance)
        self.labels = self._dataset_labels()
        self.stop_requested = False
        self.discriminator_from: str | None = None  # a snapshot whose D this run started from (--keep-d)

    # ------------------------------------------------------------------ data
    def _dataset_labels(self) -> np.ndarray:
        labels = getattr(self.dataset, "labels", None)
        if labels is None:
            labels = np.array([self.dataset[i][1] for i in range(len(self.dataset))])
        return np.asarray(labels, dtype=np.int64)

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.RandomState(self.cfg.seed + 7919 * epoch).permutation(len(self.dataset))

    def _next_real_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This rank's slice of the next batch; the order is a function of (seed, epoch) only."""
        n = self.batch_gpu
        indices = []
        while len(indices) < n * self.world_size:
            order = self._order(self.state.epoch)
            take = order[self.state.epoch_pos:self.state.epoch_pos + n * self.world_size - len(indices)]
            indices.extend(take.tolist())
            self.state.epoch_pos += len(take)
            if self.state.epoch_pos >= len(order):
                self.state.epoch, self.state.epoch_pos = self.state.epoch + 1, 0
        mine = indices[self.rank * n:(self.rank + 1) * n]
        imgs, labels = [], []
        for i in mine:
            img, label = self.dataset[i]
            imgs.append(torch.as_tensor(np.asarray(img)))
            labels.append(label)
        x = torch.stack(imgs).to(self.device, torch.float32) / 127.5 - 1  # [B, 3, H, W] in [-1, 1]
        if self.cfg.mirror:
            flip = torch.rand(n, device=self.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x, self._one_hot(torch.as_tensor(labels))

    def _one_hot(self, labels: torch.Tensor) -> torch.Tensor | None:
        if self.G.c_dim == 0:
            return None
        return torch.nn.functional.one_hot(labels.long(), self.G.c_dim).float().to(self.device)

    def _gen_inputs(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        z = torch.randn(self.batch_gpu, self.G.z_dim, device=self.device)
        # Generated classes follow the dataset's label distribution, as in the official loop.
        picks = torch.randint(0, len(self.labels), [self.batch_gpu])
        return z, self._one_hot(torch.as_tensor(self.labels[picks.numpy()]))

    # ------------------------------------------------------------------ distributed helpers
    def _broadcast_params(self) -> None:
        if self.world_size == 1:
            return
        for module in (self.G, self.G_ema, self.D):
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=0)

    def _sync_grads(self, params: list[torch.nn.Parameter]) -> None:
        if self.world_size == 1:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.flatten() for g in grads])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone()
            offset += n

    @torch.no_grad()
    def _sync_buffers(self) -> None:
        """Average the running statistics (w_avg, magnitude_ema, BatchNorm) so every rank holds the same model."""
        if self.world_size == 1:
            return
        for module in (self.G, self.D.discriminators):
            for b in module.buffers():
                if b.is_floating_point():
                    dist.all_reduce(b)
                    b /= self.world_size

    # ------------------------------------------------------------------ one step
    def _autocast(self):
        enabled = self.device.type == "cuda" and self.cfg.mixed_precision
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def train_step(self) -> dict[str, float]:
        """One official iteration: Gmain step, Greg step (when due), Dmain step, then G_ema.

        The passes of an accumulated batch add their losses (each already a sum over its images), and
        processes average their gradients, exactly as the official loop does; the logged stats are per image.
        """
        stage_nimg = self.state.cur_nimg - self.state.stage_start_nimg
        stats: dict[str, float] = {}

        # G phase: only G's trainable parameters move; D's are switched off so no D gradients are computed.
        for p in self.d_params:
            p.requires_grad_(False)
        self.opt_G.zero_grad(set_to_none=True)
        for _ in range(self.rounds):
            z, c = self._gen_inputs()
            with self._autocast():
                loss, s = self.loss.generator_loss(z, c, stage_nimg)
            loss.backward()
            stats.update(s)
        self._sync_grads(self.g_params)
        self._check_finite(stats)
        self.opt_G.step()

        # Lazy path-length regularisation: its own optimizer step after the main one (official Greg phase).
        if self._path_length_due():
            self.opt_G.zero_grad(set_to_none=True)
            for _ in range(self.rounds):
                z, c = self._gen_inputs()
                loss, self.state.pl_mean, s = self.loss.path_length_loss(z, c, self.state.pl_mean)
                loss.backward()
                stats.update(s)
            self._sync_grads(self.g_params)
            self._check_finite(stats)
            self.opt_G.step()

        # D phase.
        for p in self.d_params:
            p.requires_grad_(True)
        self.opt_D.zero_grad(set_to_none=True)
        for _ in range(self.rounds):
            real, real_c = self._next_real_batch()
            z, c = self._gen_inputs()
            with self._autocast():
                loss, s = self.loss.discriminator_loss(real, real_c, z, c, stage_nimg)
            loss.backward()
            stats.update(s)
        self._sync_grads(self.d_params)
        self._check_finite(stats)
        self.opt_D.step()

        self._sync_buffers()
        self._update_ema()  # with the image count before this step, as officially
        self.state.cur_nimg += self.cfg.batch
        self.state.step += 1
        return stats

    def _path_length_due(self) -> bool:
        """Lazy path-length regularization: stem only, from pl_start_kimg on, every pl_interval steps."""
        lc = self.cfg.loss
        return (lc.pl_weight > 0 and self.G.stage == 0 and self.state.cur_nimg >= lc.pl_start_kimg * 1000
                and self.state.step % lc.pl_interval == 0)

    def _check_finite(self, stats: dict[str, float]) -> None:
        bad = [k for k, v in stats.items() if not math.isfinite(v)]
        if bad:
            raise TrainingError(f"loss became {stats[bad[0]]} ({bad[0]}) at kimg {self.state.cur_nimg / 1e3:.2f}; "
                                "the last snapshot is intact — try a lower learning rate")

    @torch.no_grad()
    def _update_ema(self) -> None:
        ema_kimg = self.cfg.ema_kimg if self.cfg.ema_kimg is not None else self.cfg.batch * 10 / 32
        ema_nimg = ema_kimg * 1000
        if self.cfg.ema_rampup:
            # The ramp restarts with each growth stage (the official code trains every stage as a new
            # run); counted over the whole run, a grown stage's G_ema would lag G by a 5 kimg half-life.
            # The count is the images seen before this step: the first step copies G (beta 0).
            stage_nimg = self.state.cur_nimg - self.state.stage_start_nimg
            ema_nimg = min(ema_nimg, stage_nimg * self.cfg.ema_rampup)
        beta = 0.5 ** (self.cfg.batch / max(ema_nimg, 1e-8))
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    # ------------------------------------------------------------------ output
    def log(self, record: dict) -> None:
        if self.rank != 0:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        append_line(self.run_dir / "log.jsonl", json.dumps({"time": time.time(), **record}))
        self._tensorboard(record)

    def _tensorboard(self, record: dict) -> None:
        """Numbers of each log record also go to TensorBoard (run_dir/tensorboard) when it is installed."""
        if not hasattr(self, "_tb"):
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))
            except ImportError:  # the `tensorboard` package is optional; log.jsonl has everything
                self._tb = None
        if self._tb is None or "kimg" not in record:
            return
        step = int(round(float(record["kimg"]) * 1000))
        for key, value in record.items():
            if key not in ("kimg", "step", "time") and isinstance(value, (int, float)) and not isinstance(value, bool):
                self._tb.add_scalar(key, value, step)
        self._tb.flush()

    def sample_grid(self) -> np.ndarray:
        from core.sampling import image_grid, to_uint8, ws_from_seeds

        classes = list(range(min(self.G.c_dim, self.cfg.sample_classes))) or [None]
        rows = []
        with torch.no_grad():
            for c in classes:
                ws = ws_from_seeds(self.G_ema, list(range(self.cfg.sample_seeds)), c, 1.0, self.device)
                rows.append(to_uint8(self.G_ema.synthesis(ws)))
        return image_grid(np.concatenate(rows), cols=self.cfg.sample_seeds)

    def _snapshot_metrics(self) -> dict:
        """cfg.metrics of G_ema (the same `compute_metrics` as `sgxl metrics`); {} when none are configured."""
        if not self.cfg.metrics:
            return {}
        from core.metrics.api import compute_metrics

        report = compute_metrics(self.G_ema, self.dataset, self.cfg.metrics, num=self.cfg.metrics_num,
                                 device=self.device, progress=False, extractors=self._metric_extractors)
        return report.flat()

    def save_snapshot(self, final: bool = False) -> Path | None:
        if self.rank != 0:
            return None

        kimg = self.state.cur_nimg / 1e3
        save_image(self.run_dir / "samples" / f"fakes{int(round(kimg * 1000)):09d}.png", self.sample_grid())
        metrics = self.metrics_fn(self.G_ema) if self.metrics_fn else self._snapshot_metrics()
        if metrics:
            self.log({"event": "metrics", "kimg": kimg, **metrics})
        meta = {"kimg": kimg, "stage": self.G.stage, "resolution": self.G.img_resolution,
                "dataset": str(getattr(self.dataset, "path", "")),
                "train_state": asdict(self.state), "train_config": self.cfg.to_dict(), "metrics": metrics,
                "final": final}
        extra = {
            "G_train": self.G.state_dict(),
            "D": self._d_state(),
            "opt_G": _flatten_optimizer(self.opt_G),
            "opt_D": _flatten_optimizer(self.opt_D),
            "rng": {"torch": torch.get_rng_state()},
        }
        path = save_checkpoint(self.run_dir / SNAPSHOTS / f"snapshot-{int(round(kimg * 1000)):09d}.sgxl",
                               self.G_ema, meta, class_names=self.class_names, extra_tensors=extra)
        latest = self.run_dir / LATEST
        point_to(latest, path)  # a link, not a second copy of the snapshot
        removed = prune_snapshots(self.run_dir / SNAPSHOTS, self.cfg.keep_snapshots, protect=path)
        self.log({"event": "snapshot", "kimg": kimg, "path": str(path), "latest": str(latest), "metrics": metrics,
                  **({"removed": [str(p) for p in removed]} if removed else {})})
        return path

    def _d_state(self) -> dict[str, torch.Tensor]:
        """D's state as snapshots store it: everything but the frozen, pretrained feature networks."""
        return {k: v for k, v in self.D.state_dict().items() if not k.startswith("feature_networks.")}

    def restore(self, ckpt: Checkpoint) -> None:
        """Continue exactly where `ckpt` (a snapshot of this trainer's run) stopped."""
        ex = ckpt.extra_tensors
        missing = [g for g in ("G_train", "D", "opt_G", "opt_D", "rng") if g not in ex]
        if missing:
            raise TrainingError(f"{ckpt.path} has no training state ({', '.join(missing)}); use it with --grow-from "
                                "or as a starting point, not --resume")
        own = self._d_state()
        if set(own) != set(ex["D"]) or any(own[k].shape != ex["D"][k].shape for k in own):
            nets = sorted({k.split(".")[1] for k in set(ex["D"]) if k.startswith("discriminators.")})
            if nets != sorted(self.D.feature_networks):
                raise TrainingError(f"{ckpt.path} was trained with the feature networks {', '.join(nets)}; this run "
                                    f"has {', '.join(self.D.feature_networks)} (DeiT needs --deit-weights or "
                                    "SGXL_DEIT_WEIGHTS)")
            raise TrainingError(f"{ckpt.path} holds a discriminator of another layout (an older version's: the "
                                "class embedding and DownBlock biases now follow the official code), so the run "
                                "cannot continue exactly; --grow-from it, or train anew")
        self.G.load_state_dict(ex["G_train"])
        self.G_ema.load_state_dict(ckpt.generator.state_dict())
        self.D.load_state_dict(ex["D"], strict=False)  # all but the frozen feature networks (not saved)
        _load_optimizer(self.opt_G, ex["opt_G"])
        _load_optimizer(self.opt_D, ex["opt_D"])
        torch.set_rng_state(ex["rng"]["torch"])
        try:
            self.state = TrainState(**ckpt.meta["train_state"])
        except (TypeError, KeyError) as e:
            raise TrainingError(f"{ckpt.path}: its training state is corrupt ({e})") from None

    def adopt_discriminator(self, ckpt: Checkpoint) -> None:
        """Start D from the trained heads (CCM/CSM, per-scale heads) of a previous stage's snapshot.

        The paper rebuilds D fresh for every stage; this is the option for short budgets, where a
        fresh D spends the stage re-learning what the previous one knew. D's shapes do not depend on
        the image resolution (images are resized to its input size), so a stem's D fits a grown G.
        """
        saved = ckpt.extra_tensors.get("D")
        if saved is None:
            raise TrainingError(f"{ckpt.path} holds no discriminator (an exported model?); grow from a training "
                                "snapshot (runs/NAME/latest.sgxl) to keep D, or drop --keep-d")
        own = self._d_state()
        differ = sorted(set(own) ^ set(saved)) + [k for k in own if k in saved and own[k].shape != saved[k].shape]
        if differ:
            raise TrainingError(f"the discriminator in {ckpt.path} does not fit this run's ({len(differ)} tensors "
                                f"differ, e.g. {differ[0]}): it was trained with other classes, feature networks "
                                "or --d-input-size; drop --keep-d")
        self.D.load_state_dict(saved, strict=False)
        self.discriminator_from = str(ckpt.path)

    # ------------------------------------------------------------------ loop
    def request_stop(self, *_args) -> None:
        self.stop_requested = True

    def run(self, progress: bool = True) -> Path | None:
        from tqdm import tqdm

        cfg = self.cfg
        total = int(cfg.kimg * 1000)
        if self.rank == 0 and self.state.cur_nimg == 0:

            from core.sampling import image_grid

            n = min(len(self.dataset), 32)
            reals = np.stack([np.asarray(self.dataset[i][0]).transpose(1, 2, 0) for i in range(n)])
            save_image(self.run_dir / "samples" / "reals.png", image_grid(reals, cols=8))
        # Logged at every (re)start, so a reader of the log alone knows the target of each leg
        # (a resume or a grown stage changes cfg.kimg); "start_kimg" is where this leg begins.
        config = cfg.to_dict()
        config["disc"]["c_dim"] = self.D.cfg.c_dim  # the D is built with the generator's classes, not cfg's 0
        self.log({"event": "start", "start_kimg": self.state.cur_nimg / 1e3, "config": config,
                  "resolution": self.G.img_resolution, "stage": self.G.stage, "num_images": len(self.dataset),
                  "world_size": self.world_size, "discriminator_from": self.discriminator_from})
        previous = signal.getsignal(signal.SIGINT)
        try:  # Ctrl-C / SIGTERM finish the current step, then write a final snapshot
            signal.signal(signal.SIGINT, self.request_stop)
            signal.signal(signal.SIGTERM, self.request_stop)
        except ValueError:  # not the main thread (e.g. called from a GUI worker)
            pass
        # Counted in images (exact integers), shown in kimg.
        bar = tqdm(total=total, initial=min(self.state.cur_nimg, total), unit="kimg", unit_scale=1e-3,
                   disable=not progress or self.rank != 0,
                   bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} kimg [{elapsed}<{remaining}{postfix}]")
        next_tick = self.state.cur_nimg + cfg.tick_kimg * 1000
        next_snap = self.state.cur_nimg + cfg.snapshot_kimg * 1000
        # CPU seconds of this process (all its threads) as well as wall time: on a shared machine the wall time
        # per kimg depends on the neighbours, the CPU time per kimg hardly does (what an A/B per CPU-hour needs).
        tick_start, tick_cpu, tick_nimg = time.time(), time.process_time(), self.state.cur_nimg
        last, last_snap_nimg = None, -1
        try:
            while self.state.cur_nimg < total and not self.stop_requested:
                stats = self.train_step()
                # The last step may pass the target (kimg need not be a multiple of the batch): the bar stops
                # at its total instead of overshooting it (tqdm warns past 100%).
                bar.update(min(self.state.cur_nimg, total) - bar.n)
                if self.state.cur_nimg >= next_tick or self.state.cur_nimg >= total:
                    tick_kimg = max((self.state.cur_nimg - tick_nimg) / 1e3, 1e-9)
                    sec_per_kimg = (time.time() - tick_start) / tick_kimg
                    cpu_sec_per_kimg = (time.process_time() - tick_cpu) / tick_kimg
                    self.log({"kimg": self.state.cur_nimg / 1e3, "step": self.state.step,
                              "sec_per_kimg": sec_per_kimg, "cpu_sec_per_kimg": cpu_sec_per_kimg, **stats})
                    bar.set_postfix_str(f"{sec_per_kimg:.0f} s/kimg, G {stats['G_loss']:.3f}, D {stats['D_loss']:.3f}")
                    tick_start, tick_cpu, tick_nimg = time.time(), time.process_time(), self.state.cur_nimg
                    next_tick += cfg.tick_kimg * 1000
                if self.state.cur_nimg >= next_snap:
                    last = self.save_snapshot()
                    last_snap_nimg = self.state.cur_nimg
                    next_snap += cfg.snapshot_kimg * 1000
        except TrainingError as e:
            self.log({"event": "error", "message": str(e)})
            raise
        finally:
            bar.close()
            try:
                signal.signal(signal.SIGINT, previous)
            except ValueError:
                pass
        if last_snap_nimg != self.state.cur_nimg:  # unless the loop just wrote this very snapshot
            last = self.save_snapshot(final=True) or last
        self.log({"event": "stopped" if self.stop_requested else "done", "kimg": self.state.cur_nimg / 1e3})
        return last


def _flatten_optimizer(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """Adam state as flat named tensors (safetensors holds tensors only)."""
    out = {}
    for idx, state in opt.state_dict()["state"].items():
        for key, value in state.items():
            out[f"{idx}.{key}"] = torch.as_tensor(value)
    return out


def _load_optimizer(opt: torch.optim.Optimizer, flat: dict[str, torch.Tensor]) -> None:
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in flat.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    sd["state"] = state
    opt.load_state_dict(sd)


def build_generator_for(dataset, preset: str, grow_from: Path | Checkpoint | None, head_layers: int | None,
                        device: str | torch.device, class_table: ClassEmbeddingTable | None = None
                        ) -> tuple[Generator, list[str] | None]:
    """A fresh stem (preset at 16²) or the next stage grown from a checkpoint (a path or a loaded one), sized
    for `dataset`. A fresh stem's class embedding starts from `class_table` rows 0..c_dim-1 when given (official)."""
    from core.networks.presets import preset_config

    res = dataset.resolution
    c_dim = dataset.num_classes if dataset.num_classes > 1 else 0
    if grow_from is None:
        cfg = preset_config(preset, 16, c_dim=c_dim)
        if res != cfg.synthesis.stem_resolution:
            raise TrainingError(f"training starts with the 16² stem, but the dataset is {res}²: build a 16² dataset "
                                "for the stem, then --grow-from its snapshot for each higher resolution")
        G = Generator(cfg)
        rows = class_table.rows(c_dim, cfg.mapping.embed_dim) if class_table is not None else None
        if rows is not None:
            with torch.no_grad():
                G.mapping.embed.weight.copy_(rows)
        return G, getattr(dataset, "class_names", None)
    base = grow_from if isinstance(grow_from, Checkpoint) else load_checkpoint(grow_from, device="cpu")
    G_prev = base.generator
    if res % G_prev.img_resolution or res <= G_prev.img_resolution:
        raise TrainingError(f"cannot grow a {G_prev.img_resolution}² model to a {res}² dataset")
    if G_prev.c_dim != c_dim:
        raise TrainingError(f"{base.path} has {G_prev.c_dim} classes, the dataset {c_dim}")
    syn = G_prev.cfg.synthesis
    # Default head: as deep as the previous stage's, else 7 (paper) capped for shallow stems.
    default_head = syn.stages[-1].head_layers if syn.stages else min(7, max(3, syn.num_layers - 2))
    G = G_prev.grow(up_factor=res // G_prev.img_resolution, head_layers=head_layers or default_head)
    return G, base.class_names or getattr(dataset, "class_names", None)
