"""The training loop: per iteration a discriminator phase (eq. 17) then a generator phase (eq. 18).

``train.stage`` picks what a run trains: ``geometric`` (the layout network alone: cross-entropy on Ŝ_B,
no images, no discriminators), ``appearance`` (the geometric network frozen; the appearance network sees
the predicted Ŝ_B with chance ``train.predicted_layout`` per pair, else the true layout; always Ŝ_B
without ``train.teacher_forcing``) or ``joint`` (everything, the paper's setting; the true layout with
teacher forcing, else the straight-through Ŝ_B). ``train.init_from`` starts from another run's generator weights.

Runs in one process or under ``torchrun`` (DistributedDataParallel; rank 0 alone logs and saves).
Resume is exact on the CPU: model/optimizer/EMA state, RNG states, and the data position (epoch and
batch within it; flips are a function of (seed, epoch, index)) are all checkpointed.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from recapture.config import ExperimentConfig, save_config, to_dict
from recapture.data.dataset import PairBatch, PairDataset, collate_pairs
from recapture.data.manifest import read_manifest
from recapture.models.discriminators import Discriminators
from recapture.models.generator import GeneratorOutput, RecaptureGenerator
from recapture.models.losses import discriminator_objective, generator_objective
from recapture.models.perceptual import build_perceptual_loss
from recapture.training.checkpoint import Checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from recapture.training.distributed import DistributedContext, ResumableDistributedSampler, all_reduce_mean
from recapture.training.tracking import RunLogger, image_grid, layout_to_rgb, pose_to_rgb, to_unit


class TrainingError(RuntimeError):
    """Training cannot start or continue; the message says why. The last good checkpoint is intact."""


@dataclass(frozen=True)
class StepLosses:
    """Loss terms of one iteration (floats, averaged over ranks)."""

    d_total: float
    d_layout: float
    d_pose: float
    d_identity: float
    g_total: float
    g_layout_adversarial: float
    g_pose_adversarial: float
    g_identity_adversarial: float
    g_reconstruction: float
    g_perceptual: float
    g_layout_cross_entropy: float

    def as_scalars(self) -> dict[str, float]:
        return {("loss_d/" if k.startswith("d_") else "loss_g/") + k[2:]: v for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class TrainResult:
    """What a finished (or resumed-and-finished) run reports."""

    run_dir: Path
    step: int
    last_losses: StepLosses | None
    last_checkpoint: Path | None
    wall_seconds: float


def build_dataset(config: ExperimentConfig, split: str = "train") -> PairDataset:
    """The training dataset, checked against the model config (label set, image size)."""
    if not config.data.manifest:
        raise TrainingError("data.manifest is empty: set it in the config or with --set data.manifest=PATH")
    path = Path(config.data.manifest)
    if not path.exists():
        raise TrainingError(f"dataset manifest not found: {path}")
    manifest = read_manifest(path)
    if manifest.label_set != config.model.label_set:
        raise TrainingError(f"label set mismatch: manifest {path} uses {manifest.label_set!r} but "
                            f"model.label_set is {config.model.label_set!r}")
    if tuple(manifest.image_size) != tuple(config.model.image_size):
        raise TrainingError(f"image size mismatch: manifest {path} has {tuple(manifest.image_size)} but "
                            f"model.image_size is {tuple(config.model.image_size)}")
    if split not in manifest.splits:
        raise TrainingError(f"manifest {path} has no split {split!r} (has: {', '.join(manifest.splits)})")
    return PairDataset(manifest, split=split, flip=config.data.flip, seed=config.train.seed)


def _check_finite(losses: StepLosses, step: int) -> None:
    bad = {k: v for k, v in losses.__dict__.items() if not math.isfinite(v)}
    if bad:
        terms = ", ".join(f"{k}={v}" for k, v in bad.items())
        raise TrainingError(f"non-finite loss at step {step}: {terms}; stopping (last good checkpoint kept)")


class Trainer:
    """Builds models, optimizers and data for one run; :meth:`train` runs it to ``train.steps``."""

    def __init__(self, config: ExperimentConfig, run_dir: str | Path, context: DistributedContext,
                 dataset: PairDataset | None = None) -> None:
        self.config, self.context = config, context
        self.run_dir = Path(run_dir)
        self.device = context.device
        if config.train.threads > 0:
            torch.set_num_threads(config.train.threads)
        torch.manual_seed(config.train.seed)
        self.generator = RecaptureGenerator(config.model).to(self.device)
        if config.train.init_from:
            self._initialise(config.train.init_from)
        self._freeze(config.train.stage)
        self.discriminators = Discriminators(config.model).to(self.device)
        self.perceptual = build_perceptual_loss(config.loss)
        if self.perceptual is not None:
            self.perceptual = self.perceptual.to(self.device)
        self.ema = copy.deepcopy(self.generator).eval().requires_grad_(False) if config.train.ema_decay > 0 else None
        betas = tuple(config.train.betas)
        trained = [p for p in self.generator.parameters() if p.requires_grad]
        self.g_optimizer = torch.optim.Adam(trained, lr=config.train.lr, betas=betas)
        self.d_optimizer = torch.optim.Adam(self.discriminators.parameters(), lr=config.train.lr, betas=betas)
        self.dataset = dataset if dataset is not None else build_dataset(config)
        self.sampler = ResumableDistributedSampler(len(self.dataset), config.train.batch_size, context.rank,
                                                   context.world_size, seed=config.train.seed)
        if self.sampler.batches_per_epoch() == 0:
            raise TrainingError(f"dataset has {len(self.dataset)} pairs: fewer than one batch of "
                                f"{config.train.batch_size} per process")
        self.loader = DataLoader(self.dataset, batch_size=config.train.batch_size, sampler=self.sampler,
                                 drop_last=True, collate_fn=collate_pairs, num_workers=config.data.num_workers,
                                 persistent_workers=False)
        self.g_model: nn.Module = self.generator
        self.d_model: nn.Module = self.discriminators
        if context.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.g_model = DistributedDataParallel(self.generator, device_ids=ids)
            self.d_model = DistributedDataParallel(self.discriminators, device_ids=ids)
        self.step = 0

    def _initialise(self, source: str) -> None:
        """Load generator weights from a run directory or model file (same model config required)."""
        from recapture.hub import WeightsError, list_checkpoints, load_generator, read_model_file

        try:
            config = load_generator(source).config
            path = Path(source)
            if path.is_dir():
                checkpoint = path if (path / "state.pt").is_file() else list_checkpoints(path)[-1]
                path = checkpoint / "generator.safetensors"
            weights, _ = read_model_file(path)
        except WeightsError as err:
            raise TrainingError(f"train.init_from: {err}") from None
        if config != self.config.model:
            raise TrainingError(f"train.init_from {source}: its model config differs from this run's model config")
        self.generator.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in weights.items()})

    def _freeze(self, stage: str) -> None:
        """Stop gradients to what ``stage`` does not train, and keep it in eval mode (spectral norm's
        power iteration would otherwise still move its weights)."""
        frozen = {"geometric": self.generator.appearance, "appearance": self.generator.geometric}.get(stage)
        if frozen is not None:
            frozen.requires_grad_(False).eval()

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict:
        return {"g_optimizer": self.g_optimizer.state_dict(), "d_optimizer": self.d_optimizer.state_dict(),
                "rng": rng_state(), "config": to_dict(self.config), "world_size": self.context.world_size}

    def save(self) -> Path | None:
        """Rank 0 writes a checkpoint atomically; other ranks wait at the barrier."""
        path = None
        if self.context.is_main:
            path = save_checkpoint(self.run_dir, self.step, self.generator.state_dict(),
                                   self.discriminators.state_dict(), self.state_dict(),
                                   ema=self.ema.state_dict() if self.ema is not None else None,
                                   keep_last=self.config.train.keep_last)
        if self.context.distributed:
            torch.distributed.barrier()
        return path

    def resume(self, path: str | Path) -> Checkpoint:
        """Load the newest checkpoint of a run that verifies (or a checkpoint directory) and continue from
        its step; returns it (``skipped`` names damaged newer ones)."""
        checkpoint = load_checkpoint(path)
        self.generator.load_state_dict(checkpoint.generator)
        self.discriminators.load_state_dict(checkpoint.discriminators)
        if self.ema is not None:
            self.ema.load_state_dict(checkpoint.ema if checkpoint.ema is not None else checkpoint.generator)
        self.g_optimizer.load_state_dict(checkpoint.state["g_optimizer"])
        self.d_optimizer.load_state_dict(checkpoint.state["d_optimizer"])
        if checkpoint.state.get("world_size", 1) == self.context.world_size:
            set_rng_state(checkpoint.state["rng"])
        self.step = checkpoint.step
        return checkpoint

    # ------------------------------------------------------------------ step
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda" and self.config.train.bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _teacher(self, batch: PairBatch, logits: torch.Tensor | None) -> torch.Tensor | None:
        """The layout the appearance network sees: true, predicted (detached one-hot) per pair, or None
        (the straight-through prediction, joint training without teacher forcing)."""
        cfg = self.config.train
        if cfg.stage != "appearance":
            return batch.target_layout if cfg.teacher_forcing else None
        if logits is None or cfg.predicted_layout <= 0.0:
            return batch.target_layout
        predicted = F.one_hot(logits.detach().argmax(dim=1), logits.shape[1]).permute(0, 3, 1, 2).float()
        pick = torch.rand(len(batch), device=logits.device) < (1.0 if not cfg.teacher_forcing else cfg.predicted_layout)
        return torch.where(pick.view(-1, 1, 1, 1), predicted, batch.target_layout)

    def geometric_step(self, batch: PairBatch) -> StepLosses:
        """Stage ``geometric``: cross-entropy of Ŝ_B against the true target layout (loss.lambda_layout_ce)."""
        labels = batch.target_layout.argmax(dim=1)
        with self._autocast():
            logits = self.generator.geometric(batch.source_layout, batch.source_pose, batch.target_pose,
                                              batch.source_keypoints, batch.target_keypoints)
        loss = F.cross_entropy(logits.float(), labels)
        self.g_optimizer.zero_grad(set_to_none=True)
        (self.config.loss.lambda_layout_ce * loss).backward()
        self.g_optimizer.step()
        self._update_ema()
        value = float(all_reduce_mean(loss.detach().float().view(1), self.context)[0])
        self._last_output = GeneratorOutput(image=batch.target_image, layout_logits=logits.detach(),
                                            target_layout=batch.target_layout)
        return StepLosses(0.0, 0.0, 0.0, 0.0, self.config.loss.lambda_layout_ce * value, 0.0, 0.0, 0.0, 0.0, 0.0,
                          value)

    def _update_ema(self) -> None:
        if self.ema is not None:
            with torch.no_grad():
                for ema_p, p in zip(self.ema.parameters(), self.generator.parameters()):
                    ema_p.lerp_(p, 1.0 - self.config.train.ema_decay)
                for ema_b, b in zip(self.ema.buffers(), self.generator.buffers()):
                    ema_b.copy_(b)

    def train_step(self, batch: PairBatch) -> StepLosses:
        """One D phase then one G phase on ``batch`` (stage ``geometric``: the layout step alone)."""
        cfg = self.config
        if cfg.train.stage == "geometric":
            return self.geometric_step(batch)
        labels = batch.target_layout.argmax(dim=1)
        logits = None
        if cfg.train.stage == "appearance":  # frozen: Ŝ_B once, outside the (DDP) forward
            with torch.no_grad(), self._autocast():
                logits = self.generator.geometric(batch.source_layout, batch.source_pose, batch.target_pose,
                                                  batch.source_keypoints, batch.target_keypoints)
        with self._autocast():
            output = self.g_model(batch.source_image, batch.source_layout, batch.source_pose, batch.target_pose,
                                  target_layout=self._teacher(batch, logits), source_keypoints=batch.source_keypoints,
                                  target_keypoints=batch.target_keypoints, layout_logits=logits)
            d_losses = discriminator_objective(self.d_model, output, batch.source_image, batch.target_image,
                                               labels, batch.target_pose, cfg.loss)
        self.d_optimizer.zero_grad(set_to_none=True)
        d_losses.total.backward()
        self.d_optimizer.step()
        with self._autocast():
            g_losses = generator_objective(self.d_model, self.perceptual, output, batch.source_image,
                                           batch.target_image, labels, batch.target_pose, cfg.loss)
        self.g_optimizer.zero_grad(set_to_none=True)
        g_losses.total.backward()
        self.g_optimizer.step()
        self._update_ema()
        values = torch.stack([d_losses.total, d_losses.layout, d_losses.pose, d_losses.identity,
                              g_losses.total, g_losses.layout_adversarial, g_losses.pose_adversarial,
                              g_losses.identity_adversarial, g_losses.reconstruction, g_losses.perceptual,
                              g_losses.layout_cross_entropy]).detach().float()
        values = all_reduce_mean(values, self.context).tolist()
        self._last_output = output
        return StepLosses(*values)

    def _log_images(self, logger: RunLogger, batch: PairBatch) -> None:
        output = self._last_output
        label_set = self.dataset.label_set
        grid = image_grid([to_unit(batch.source_image), pose_to_rgb(batch.target_pose),
                           layout_to_rgb(output.layout_logits.detach(), label_set), to_unit(output.image),
                           to_unit(batch.target_image)])
        logger.image(self.step, "samples/source|target_pose|layout|output|target", grid)

    # ------------------------------------------------------------------ loop
    def train(self) -> TrainResult:
        cfg = self.config.train
        start = time.monotonic()
        if self.context.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.config, self.run_dir / "config.yaml")
        logger = RunLogger(self.run_dir, cfg.steps, self.step, enabled=self.context.is_main)
        per_epoch = self.sampler.batches_per_epoch()
        last, last_path = None, None
        saved_step = -1  # the same on every rank, so all ranks agree on the final save (barrier inside)
        self.generator.train()
        self._freeze(self.config.train.stage)
        self.discriminators.train()
        try:
            while self.step < cfg.steps:
                epoch, offset = divmod(self.step, per_epoch)
                self.sampler.set_epoch(epoch)
                self.sampler.set_start(offset)
                self.dataset.set_epoch(epoch)
                for batch in self.loader:
                    batch = batch.to(self.device)
                    last = self.train_step(batch)
                    _check_finite(last, self.step + 1)
                    self.step += 1
                    logger.advance(self.step)
                    if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                        logger.scalars(self.step, last.as_scalars())
                    if cfg.image_every and self.step % cfg.image_every == 0:
                        self._log_images(logger, batch)
                    if cfg.save_every and self.step % cfg.save_every == 0:
                        last_path = self.save() or last_path
                        saved_step = self.step
                    if self.step >= cfg.steps or (cfg.max_seconds and time.monotonic() - start >= cfg.max_seconds):
                        break
                if cfg.max_seconds and time.monotonic() - start >= cfg.max_seconds:
                    break
            if saved_step != self.step:
                last_path = self.save() or last_path
        finally:
            logger.close()
        return TrainResult(run_dir=self.run_dir, step=self.step, last_losses=last, last_checkpoint=last_path,
                           wall_seconds=time.monotonic() - start)


def with_overrides(config: ExperimentConfig, **train_fields: object) -> ExperimentConfig:
    """A copy of ``config`` with some ``train`` fields replaced (for tests and benchmarks)."""
    return replace(config, train=replace(config.train, **train_fields))
