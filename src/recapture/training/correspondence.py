"""Training of the correspondence appearance model on self-supervised CCP pairs (CPU-sized).

``python -m recapture.training.correspondence --run runs/appearance-real`` trains in the foreground
(start it with nohup), saves an atomic checkpoint every ``save_every_s`` seconds and resumes from the
newest one. Objective per step (batch of fresh pairs from :mod:`recapture.data.ccp_pairs`)::

    L1(image, target) + perceptual * |Inc(image) - Inc(target)|_1 / |Inc(target)|_1     (conv_2, internal size)
    + flow * |flow - flow_truth|_1 (pixels at the internal size, visible pixels)
    + visibility * BCE(visibility logits, visible truth) + generated * L1(generated, target) on invisible pixels
    + adversarial * (D2(image | target_pose) + D3(image | source_image)) at the internal size

A share ``true_layout_fraction`` of the pairs gives the network the true target layout, the rest the part-affine
warp of the source layout (the photo path's ``--layout prior``). The pair mix (forward/reversed CCP pairs,
SynthHumans pose changes, parsed source layouts) is :mod:`recapture.training.correspondence_data`'s. Validation
(photos drawn from 0001-0904, fixed pairs) selects the kept model; the held-out photos are never read here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
import torch.nn.functional as F
from torch import Tensor

from recapture.body.keypoints import NUM_KEYPOINTS
from recapture.data.ccp_pairs import CcpPhotos, training_ids
from recapture.models.blocks import level_widths
from recapture.models.correspondence import CorrespondenceConfig, CorrespondenceGenerator, load_correspondence
from recapture.config import ModelConfig
from recapture.hub import bundled_path, load_generator, read_generator_file, save_generator, write_model_file
from recapture.models.discriminators import PatchDiscriminator
from recapture.models.generator import RecaptureGenerator
from recapture.models.inception import load_inception
from recapture.models.losses import discriminator_loss, generator_adversarial_loss
from recapture.training.checkpoint import load_checkpoint, save_checkpoint
from recapture.training.correspondence_data import (Batch, PairMix, PairSettings, PairStream, batch_loader,
                                                    load_preset, make_batch, warp_floor)
from recapture.training.parsed_photos import ParsedLayouts


@dataclass(frozen=True)
class TrainSettings(PairSettings):
    """One correspondence training run (photos, batches and the pair mix: :class:`PairSettings`)."""

    steps: int = 6000
    lr: float = 4e-4
    l1: float = 1.0
    perceptual: float = 0.3
    flow: float = 0.02
    visibility: float = 0.1
    generated: float = 0.5
    adversarial: float = 0.01
    true_layout_fraction: float = 0.5
    validation_still: bool = False  # validation pairs made with a fixed camera (the real uses) instead of as made
    parsed: str = ""  # the parser's layouts (training/parsed_photos.py): source layouts of CCP pairs and validation
    init: str = ""  # correspondence weights (.safetensors) or a bundled generator's name to start from; empty: random
    validate_every: int = 250


class Perceptual:
    """Normalised L1 distance of Inception ``conv_2`` maps (the bundled backbone, frozen)."""

    def __init__(self) -> None:
        self.backbone = load_inception("cpu")

    def __call__(self, image: Tensor, target: Tensor) -> Tensor:
        both = torch.cat([image, target]).add(1.0).mul(0.5).clamp(0.0, 1.0)
        maps = self.backbone.stages(both, ["conv_2"])["conv_2"]
        made, real = maps.chunk(2)
        real = real.detach()
        return (made - real).abs().mean() / real.abs().mean().clamp_min(1e-6)


def _discriminators(config: CorrespondenceConfig) -> torch.nn.ModuleDict:
    width = level_widths(config.base_channels, config.max_channels, 0)[0]
    return torch.nn.ModuleDict({"pose": PatchDiscriminator(3, NUM_KEYPOINTS, width, 3, True),
                                "identity": PatchDiscriminator(3, 3, width, 3, True)})


def pixel_flow_error(flow: Tensor, truth: Tensor, visible: Tensor) -> Tensor:
    """Mean end-point error in internal pixels over visible pixels."""
    height, width = flow.shape[1:3]
    scale = torch.tensor([(width - 1) / 2.0, (height - 1) / 2.0])
    error = ((flow - truth) * scale).norm(dim=-1)[:, None]
    return (error * visible).sum() / visible.sum().clamp_min(1.0)


def flow_weight(batch: Batch) -> Tensor:
    """``(B, 1, h, w)``: the visible pixels of the pairs whose dense correspondence is known."""
    return batch.visible * batch.flow_known.view(-1, 1, 1, 1)


def initial_weights(init: str) -> dict[str, Tensor]:
    """The appearance weights named by ``init``: a correspondence ``.safetensors`` file, or the name of a bundled
    generator whose appearance network is a correspondence model (e.g. ``default``); ValueError otherwise."""
    if init.endswith(".safetensors"):
        return load_correspondence(init).state_dict()
    appearance = load_generator(init).generator.appearance
    if not isinstance(appearance, CorrespondenceGenerator):
        raise ValueError(f"init: {init}'s appearance network is not a correspondence model")
    return {k: v.float() for k, v in appearance.state_dict().items()}


def validate(model: CorrespondenceGenerator, batches: list[Batch], floors: list[Tensor]) -> tuple[float, float]:
    """``(L1 of the model, L1 of the part-affine warp floor)`` on the [0, 1] scale."""
    model.eval()
    ours, floor = [], []
    with torch.no_grad():
        for batch, warped in zip(batches, floors):
            out = model(batch.source_image, batch.source_layout, batch.source_pose, batch.target_layout,
                        batch.target_pose, batch.prior)
            ours.append((out.image - batch.target_image).abs().mean().item() / 2)
            floor.append((warped - batch.target_image).abs().mean().item() / 2)
    model.train()
    return float(np.mean(ours)), float(np.mean(floor))


class Trainer:
    """Model, discriminators, optimisers and the step; state saved with :mod:`recapture.training.checkpoint`."""

    def __init__(self, config: CorrespondenceConfig, settings: TrainSettings, perceptual: Perceptual | None) -> None:
        self.config, self.settings, self.perceptual = config, settings, perceptual
        self.model = CorrespondenceGenerator(config)
        self.discriminators = _discriminators(config)
        self.g_optimizer = torch.optim.Adam(self.model.parameters(), lr=settings.lr, betas=(0.5, 0.999))
        self.d_optimizer = torch.optim.Adam(self.discriminators.parameters(), lr=settings.lr, betas=(0.5, 0.999))
        self.step = 0

    def _judge(self, image: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        size = self.config.internal_size
        small = F.interpolate(image, size=size, mode="area")
        source = F.interpolate(batch.source_image, size=size, mode="area")
        return self.discriminators["pose"](small, batch.target_pose), self.discriminators["identity"](small, source)

    def train_step(self, batch: Batch) -> dict[str, float]:
        """One D step then one G step; returns the loss terms."""
        s = self.settings
        out = self.model(batch.source_image, batch.source_layout, batch.source_pose, batch.target_layout,
                         batch.target_pose, batch.prior)
        terms: dict[str, Tensor] = {}
        if s.adversarial > 0:
            fake = self._judge(out.image.detach(), batch)
            real = self._judge(batch.target_image, batch)
            d_loss = sum(discriminator_loss(r, f, "nonsaturating") for r, f in zip(real, fake))
            self.d_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            self.d_optimizer.step()
            for p in self.discriminators.parameters():
                p.requires_grad_(False)
            terms["adversarial"] = sum(generator_adversarial_loss(f, "nonsaturating")
                                       for f in self._judge(out.image, batch))
            for p in self.discriminators.parameters():
                p.requires_grad_(True)
        size = self.config.internal_size
        small_target = F.interpolate(batch.target_image, size=size, mode="area")
        terms["l1"] = (out.image - batch.target_image).abs().mean()
        if self.perceptual is not None and s.perceptual > 0:
            terms["perceptual"] = self.perceptual(F.interpolate(out.image, size=size, mode="area"), small_target)
        terms["flow"] = pixel_flow_error(out.coarse_flow, batch.flow, flow_weight(batch))
        terms["visibility"] = F.binary_cross_entropy_with_logits(out.visibility_logits, batch.visible)
        invisible = 1.0 - batch.visible
        terms["generated"] = ((out.generated - small_target).abs() * invisible).sum() / (
            3 * invisible.sum()).clamp_min(1.0)
        loss = sum(getattr(s, name) * value for name, value in terms.items())
        self.g_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.g_optimizer.step()
        self.step += 1
        return {name: float(value.detach()) for name, value in terms.items()}

    def state(self) -> dict:
        return {"step": self.step, "g_optimizer": self.g_optimizer.state_dict(),
                "d_optimizer": self.d_optimizer.state_dict(), "config": json.dumps(asdict(self.config)),
                "settings": json.dumps(asdict(self.settings))}

    def save(self, run_dir: Path, extra: dict | None = None) -> None:
        state = self.state() | (extra or {})
        save_checkpoint(run_dir, self.step, self.model.state_dict(), self.discriminators.state_dict(), state)

    def resume(self, run_dir: Path) -> dict:
        checkpoint = load_checkpoint(run_dir)
        self.model.load_state_dict(checkpoint.generator)
        self.discriminators.load_state_dict(checkpoint.discriminators)
        self.g_optimizer.load_state_dict(checkpoint.state["g_optimizer"])
        self.d_optimizer.load_state_dict(checkpoint.state["d_optimizer"])
        self.step = int(checkpoint.state["step"])
        return checkpoint.state


def save_best(model: CorrespondenceGenerator, path: Path, info: dict) -> None:
    """The selected weights as safetensors (with the config and validation scores as metadata), atomically."""
    metadata = {"config": json.dumps(asdict(model.config)), **{k: str(v) for k, v in info.items()}}
    write_model_file(model.state_dict(), path, metadata)


def train(run_dir: Path, config: CorrespondenceConfig, settings: TrainSettings, log: callable = print) -> None:
    """The loop: resumable, validated every ``validate_every`` steps, checkpointed every ``save_every_s``."""
    torch.manual_seed(settings.seed)
    photos = CcpPhotos.load(settings.photos)
    train_ids, valid_ids = training_ids()
    position = {int(i): n for n, i in enumerate(photos.ids)}
    train_rows = np.array([position[i] for i in train_ids if i in position])
    valid_rows = np.array([position[i] for i in valid_ids if i in position])
    parsed = ParsedLayouts.load(settings.parsed).for_photos(photos) if settings.parsed else None
    rng_valid = np.random.default_rng(1234)
    chosen = valid_rows[: settings.validation_pairs]
    valid_mix = PairMix(unchanged=0.0, still=1.0 if settings.validation_still else 0.0)
    valid_batches = [make_batch(photos, chosen[i:i + 8], rng_valid, config, 0.0, valid_mix, parsed)
                     for i in range(0, len(chosen), 8)]
    floors = [warp_floor(b) for b in valid_batches]
    trainer = Trainer(config, settings, Perceptual() if settings.perceptual > 0 else None)
    best = float("inf")
    if (run_dir / "checkpoints").is_dir():
        state = trainer.resume(run_dir)
        best = float(state.get("best", best))
        log(f"resumed at step {trainer.step}")
    elif settings.init:
        trainer.model.load_state_dict(initial_weights(settings.init))
        trainer.model.train()
        ours, floor = validate(trainer.model, valid_batches, floors)
        log(f"validation step 0 ({settings.init}): L1 {ours:.4f} (part-affine warp {floor:.4f})")
        best = ours
        save_best(trainer.model, run_dir / "best.safetensors", {"step": 0, "validation_l1": ours, "warp_l1": floor})
    stream = PairStream(photos, train_rows, parsed, config, settings.batch_size, settings.true_layout_fraction,
                        settings.mix(), settings.seed, trainer.step)
    batches = iter(batch_loader(stream, settings.workers))
    last_save, started, seen = time.monotonic(), time.monotonic(), 0
    while trainer.step < settings.steps:
        terms = trainer.train_step(next(batches))
        seen += settings.batch_size
        if trainer.step % 25 == 0:
            rate = seen / (time.monotonic() - started)
            log(f"step {trainer.step} " + " ".join(f"{k} {v:.4f}" for k, v in terms.items()) + f" img/s {rate:.2f}")
        if trainer.step % settings.validate_every == 0 or trainer.step == settings.steps:
            ours, floor = validate(trainer.model, valid_batches, floors)
            log(f"validation step {trainer.step}: L1 {ours:.4f} (part-affine warp {floor:.4f})")
            if ours < best:
                best = ours
                save_best(trainer.model, run_dir / "best.safetensors",
                          {"step": trainer.step, "validation_l1": ours, "warp_l1": floor})
        if time.monotonic() - last_save > settings.save_every_s or trainer.step == settings.steps:
            trainer.save(run_dir, {"best": best})
            last_save = time.monotonic()


def with_geometric(default_file: Path, model: CorrespondenceGenerator
                   ) -> tuple[ModelConfig, dict[str, Tensor], dict[str, str]]:
    """The configuration, weights and metadata of a generator made of ``default_file``'s geometric network and
    ``model`` as its appearance network (``model.appearance: correspondence``); ValueError when they do not fit."""
    base, tensors, metadata = read_generator_file(default_file)
    config = dataclasses.replace(base, appearance="correspondence", base_channels=model.config.base_channels,
                                 sat_level=model.config.num_down, sat_dim=model.config.sat_dim,
                                 lgr_dim=model.config.lgr_dim, lgr_steps=model.config.lgr_steps)
    if (model.config.internal_size, model.config.label_set) != (tuple(config.network_size), config.label_set):
        raise ValueError(f"the correspondence model ({model.config.internal_size}, {model.config.label_set}) does not "
                         f"fit {default_file} (internal size {config.network_size}, label set {config.label_set})")
    weights = {k: v.float() for k, v in tensors.items() if k.startswith("geometric.")}
    weights |= {f"appearance.{k}": v for k, v in model.state_dict().items()}
    expected = {k: tuple(v.shape) for k, v in RecaptureGenerator(config).state_dict().items()}
    if expected != {k: tuple(v.shape) for k, v in weights.items()}:
        raise ValueError(f"the correspondence model does not fit {default_file}: "
                         f"{sorted(set(expected.items()) ^ {(k, tuple(v.shape)) for k, v in weights.items()})[:4]}")
    kept = {k: v for k, v in metadata.items() if k not in ("kind", "model_config", "tensors_sha256")}
    kept["trained_on"] = (f"{metadata.get('trained_on', '?')} (geometric); CCP photos 0001-0904 self-supervised "
                          f"pairs (appearance: correspondence, docs/correspondence.md)")
    return config, weights, kept


def load_settings(path: str = "", steps: int = 0, photos: str = "") -> TrainSettings:
    """TrainSettings from a YAML file of its fields (unknown keys raise ConfigError), then the overrides."""
    return load_preset(TrainSettings, path, steps=steps, photos=photos)


def main() -> None:
    parser = argparse.ArgumentParser(description="train the correspondence appearance model on CCP pairs")
    parser.add_argument("--run", default="runs/appearance-real")
    parser.add_argument("--config", default="", help="YAML of TrainSettings fields (configs/correspondence-*.yaml)")
    parser.add_argument("--steps", type=int, default=0, help="overrides the config's steps")
    parser.add_argument("--photos", default="", help="overrides the config's photo cache")
    parser.add_argument("--export-default", metavar="OUT", default="",
                        help="write RUN/best.safetensors joined with the bundled default's geometric network to OUT")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.export_default:
        best = Path(args.run) / "best.safetensors"
        config, weights, metadata = with_geometric(bundled_path("default"), load_correspondence(str(best)))
        with safe_open(str(best), framework="pt") as handle:
            metadata["appearance_step"] = (handle.metadata() or {}).get("step", "?")
        save_generator(weights, config, args.export_default, metadata, half=False)
        print(f"wrote {args.export_default}")
        return
    run_dir = Path(args.run)
    run_dir.mkdir(parents=True, exist_ok=True)
    train(run_dir, CorrespondenceConfig(), load_settings(args.config, args.steps, args.photos),
          lambda line: print(time.strftime("%H:%M:%S"), line, flush=True))


if __name__ == "__main__":
    main()
