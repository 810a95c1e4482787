"""Fine-tuning of the bundled default's geometric network (Ŝ_B) on real layouts (CPU-sized).

The shipped geometric network learned Ŝ_B from SynthHumans layouts only; on real photos its input is the `ccp`
parser's layout (dresses, coats, loose hair, parser noise) and it re-draws it in the SynthHumans style.
``python -m recapture.training.layout_real --run runs/layout-real --config configs/layout-real.yaml`` continues
its training on a mix of

* CCP self-supervised pairs (:mod:`recapture.training.correspondence_data`): source layout = the parser's layout
  carried through the deformation (the test-time input), truth = CCP's labels of the target;
* SynthHumans pose and view changes (exact layouts of both poses), which keep what only they teach (a back view
  from a front view, parts the source never showed).

Objective: the cross entropy of Ŝ_B against the truth (as the recipe's ``geometric`` stage; no D1), optionally plus
``person_weight`` times a binary cross entropy of its person/background decision (:func:`person_loss`). Validation
(fixed pairs: CCP photos of the validation split of 0001-0904, fixed camera; SynthHumans studio pairs of seed
4242, full body and framed as DeepFashion's pairs) scores the eval-mode Ŝ_B (flip average and clean-ups on) with
the mIoU over the LIP-20 parts present, pooled over the pairs; the kept network has the best mean of the three. The
held-out photos are never read here.
``--export-default OUT`` writes the bundled default with RUN/best.safetensors as its geometric network.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from recapture.body.keypoints import keypoints_to_heatmaps
from recapture.config import ModelConfig
from recapture.data.ccp_pairs import CcpPhotos, training_ids
from recapture.hub import bundled_path, read_generator_file, save_generator, write_model_file
from recapture.models.correspondence import CorrespondenceConfig
from recapture.models.geometric import GeometricGenerator
from recapture.models.layout_ops import to_one_hot
from recapture.training.checkpoint import load_checkpoint, save_checkpoint
from recapture.training.correspondence_data import (Batch, PairMix, PairSettings, PairStream, batch_loader, collate,
                                                    load_preset, make_batch, studio_pair)
from recapture.training.parsed_photos import ParsedLayouts

#: SynthHumans identities of the validation studio pairs (the studio benchmark's selection seed).
STUDIO_SEED = 4242


@dataclass(frozen=True)
class LayoutSettings(PairSettings):
    """One geometric fine-tuning run (photos, batches and the pair mix: :class:`PairSettings`; the preset sets the
    mix)."""

    parsed: str = "runs/appearance-real/ccp-parsed-256x176.npz"  # empty: CCP's labels as source layouts
    init: str = "default"  # the bundled generator (or generator file) whose geometric network is fine-tuned
    steps: int = 600
    lr: float = 3e-5
    validate_every: int = 150
    #: Weight of a binary cross entropy of Ŝ_B's person/background decision (log-odds of any part against the
    #: background) added to the cross entropy; 0: the cross entropy alone (the shipped network)
    person_weight: float = 0.0
    #: In that term, the weight of the true person pixels against the background's (> 1: missing person costs more,
    #: as Ŝ_B misses person 5-7x more often than it adds it on studio pairs)
    person_miss_weight: float = 1.0


@dataclass(frozen=True)
class LayoutInputs:
    """The geometric network's inputs and truth at the output size."""

    source_layout: Tensor  # (B, N, H, W) one-hot
    source_pose: Tensor  # (B, 18, H, W) disk heatmaps
    target_pose: Tensor  # (B, 18, H, W)
    source_keypoints: np.ndarray  # (B, 18, 2)
    target_keypoints: np.ndarray  # (B, 18, 2)
    target_labels: Tensor  # (B, H, W) long


def layout_inputs(batch: Batch, num_parts: int) -> LayoutInputs:
    """What the photo path gives the geometric network, made from a training batch's labels and keypoints."""
    size = tuple(batch.source_labels.shape[-2:])
    return LayoutInputs(source_layout=to_one_hot(batch.source_labels, num_parts),
                        source_pose=keypoints_to_heatmaps(batch.source_keypoints, size),
                        target_pose=keypoints_to_heatmaps(batch.target_keypoints, size),
                        source_keypoints=batch.source_keypoints, target_keypoints=batch.target_keypoints,
                        target_labels=batch.target_labels)


def predict(network: GeometricGenerator, inputs: LayoutInputs) -> Tensor:
    """``(B, N, H, W)`` logits of Ŝ_B (eval-mode clean-ups apply when the network is in eval mode)."""
    return network(inputs.source_layout, inputs.source_pose, inputs.target_pose, inputs.source_keypoints,
                   inputs.target_keypoints)


def person_loss(logits: Tensor, target_labels: Tensor, miss_weight: float = 1.0) -> Tensor:
    """Binary cross entropy of the person/background decision of ``(B, N, H, W)`` logits (log-odds: log-sum-exp
    of the parts minus the background's) against ``(B, H, W)`` labels > 0, true person pixels weighted
    ``miss_weight``."""
    odds = torch.logsumexp(logits[:, 1:], dim=1) - logits[:, 0]
    return F.binary_cross_entropy_with_logits(odds, (target_labels > 0).to(odds),
                                              pos_weight=torch.tensor(miss_weight, dtype=odds.dtype))


def pooled_miou(confusion: np.ndarray) -> float:
    """Mean IoU over the classes present in the truth of a ``(N, N)`` confusion matrix (rows: truth)."""
    true, made, hit = confusion.sum(1), confusion.sum(0), np.diag(confusion)
    present = true > 0
    return float(np.mean(hit[present] / (true + made - hit)[present]))


def confusion_of(network: GeometricGenerator, batches: list[LayoutInputs], prior_only: bool = False) -> np.ndarray:
    """The pooled ``(N, N)`` confusion matrix of the eval-mode Ŝ_B over ``batches`` (``prior_only``: of the
    keypoint prior alone, the network's part warp of S_A)."""
    parts = network.num_parts
    total = np.zeros((parts, parts), dtype=np.int64)
    was_training = network.training
    network.eval()
    with torch.no_grad():
        for inputs in batches:
            made = (network.warp(inputs.source_layout, inputs.source_pose, inputs.target_pose, inputs.source_keypoints,
                                 inputs.target_keypoints).layout if prior_only else predict(network, inputs))
            made = made.argmax(1).flatten().numpy()
            true = inputs.target_labels.flatten().numpy()
            total += np.bincount(true * parts + made, minlength=parts * parts).reshape(parts, parts)
    network.train(was_training)
    return total


def validation_sets(settings: LayoutSettings, photos: CcpPhotos, parsed: np.ndarray | None, rows: np.ndarray,
                    config: CorrespondenceConfig, num_parts: int) -> dict[str, list[LayoutInputs]]:
    """``{"ccp": ..., "studio": ..., "framed": ...}``: fixed validation batches of 8 (same pairs on every call);
    ``framed``: the studio identities shot as DeepFashion's pairs are (half body, zoom changes)."""
    rng = np.random.default_rng(1234)
    chosen = rows[: settings.validation_pairs]
    ccp = [layout_inputs(make_batch(photos, chosen[i:i + 8], rng, config, 0.0, PairMix(unchanged=0.0, still=1.0),
                                    parsed), num_parts) for i in range(0, len(chosen), 8)]
    size = tuple(photos.labels.shape[1:])
    sets = {"ccp": ccp}
    for name, framed in (("studio", False), ("framed", True)):
        studio = [studio_pair(STUDIO_SEED, k, size, config.internal_size, framed=framed)
                  for k in range(settings.validation_pairs)]
        sets[name] = [layout_inputs(collate(studio[i:i + 8], config, [False] * len(studio[i:i + 8])), num_parts)
                      for i in range(0, len(studio), 8)]
    return sets


def scores(network: GeometricGenerator, sets: dict[str, list[LayoutInputs]], prior_only: bool = False
           ) -> dict[str, float]:
    """mIoU per validation set and their mean (the selection score)."""
    result = {name: pooled_miou(confusion_of(network, batches, prior_only)) for name, batches in sets.items()}
    return result | {"mean": float(np.mean(list(result.values())))}


def generator_file(init: str) -> tuple[ModelConfig, dict[str, Tensor], dict[str, str]]:
    """Config, tensors and metadata of a bundled generator (name) or generator file (``.safetensors``)."""
    return read_generator_file(Path(init) if init.endswith(".safetensors") else bundled_path(init))


def load_geometric(init: str) -> tuple[GeometricGenerator, ModelConfig]:
    """The geometric network of a bundled generator (name) or generator file, in float32."""
    config, tensors, _ = generator_file(init)
    network = GeometricGenerator(config)
    network.load_state_dict({k.removeprefix("geometric."): v.float() for k, v in tensors.items()
                             if k.startswith("geometric.")})
    return network, config


def save_best(network: GeometricGenerator, path: Path, info: dict) -> None:
    """The kept geometric weights as safetensors (validation scores as metadata), atomically."""
    write_model_file(network.state_dict(), path, {k: json.dumps(v) for k, v in info.items()})


def train(run_dir: Path, settings: LayoutSettings, log: callable = print) -> None:
    """The loop: resumable, validated every ``validate_every`` steps, checkpointed every ``save_every_s``."""
    torch.manual_seed(settings.seed)
    network, model_config = load_geometric(settings.init)
    config = CorrespondenceConfig(internal_size=tuple(model_config.network_size), label_set=model_config.label_set)
    photos = CcpPhotos.load(settings.photos)
    parsed = ParsedLayouts.load(settings.parsed).for_photos(photos) if settings.parsed else None
    position = {int(i): n for n, i in enumerate(photos.ids)}
    train_ids, valid_ids = training_ids()
    train_rows = np.array([position[i] for i in train_ids if i in position])
    valid_rows = np.array([position[i] for i in valid_ids if i in position])
    sets = validation_sets(settings, photos, parsed, valid_rows, config, network.num_parts)
    optimizer = torch.optim.Adam(network.parameters(), lr=settings.lr, betas=(0.5, 0.999))
    step, best = 0, -1.0
    if (run_dir / "checkpoints").is_dir():
        checkpoint = load_checkpoint(run_dir)
        network.load_state_dict(checkpoint.generator)
        optimizer.load_state_dict(checkpoint.state["optimizer"])
        step, best = int(checkpoint.state["step"]), float(checkpoint.state["best"])
        log(f"resumed at step {step}")
    else:
        result = scores(network, sets)
        best = result["mean"]
        log(f"validation step 0 ({settings.init}): " + json.dumps(result))
        log("validation, keypoint prior alone: " + json.dumps(scores(network, sets, prior_only=True)))
        save_best(network, run_dir / "best.safetensors", {"step": 0, "validation": result})
    stream = PairStream(photos, train_rows, parsed, config, settings.batch_size, 0.0, settings.mix(),
                        settings.seed, step)
    batches = iter(batch_loader(stream, settings.workers))
    network.train()
    last_save, started, seen = time.monotonic(), time.monotonic(), 0
    while step < settings.steps:
        inputs = layout_inputs(next(batches), network.num_parts)
        logits = predict(network, inputs)
        loss = F.cross_entropy(logits, inputs.target_labels)
        if settings.person_weight > 0:
            miss = settings.person_miss_weight
            loss = loss + settings.person_weight * person_loss(logits, inputs.target_labels, miss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step, seen = step + 1, seen + settings.batch_size
        if step % 25 == 0:
            log(f"step {step} cross-entropy {float(loss.detach()):.4f} img/s {seen / (time.monotonic() - started):.2f}")
        if step % settings.validate_every == 0 or step == settings.steps:
            result = scores(network, sets)
            log(f"validation step {step}: " + json.dumps(result))
            if result["mean"] > best:
                best = result["mean"]
                save_best(network, run_dir / "best.safetensors", {"step": step, "validation": result})
        if time.monotonic() - last_save > settings.save_every_s or step == settings.steps:
            save_checkpoint(run_dir, step, network.state_dict(), {},
                            {"step": step, "best": best, "optimizer": optimizer.state_dict(),
                             "settings": json.dumps(asdict(settings))})
            last_save = time.monotonic()


def export_default(best: Path, out: str, init: str = "default") -> None:
    """Write the generator ``init`` with the geometric weights of ``best`` to ``out``."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    config, tensors, metadata = generator_file(init)
    geometric = load_file(str(best))
    missing = {k.removeprefix("geometric.") for k in tensors if k.startswith("geometric.")} ^ set(geometric)
    if missing:
        raise ValueError(f"{best} does not fit {init}'s geometric network: {sorted(missing)[:4]}")
    weights = {k: v.float() for k, v in tensors.items() if not k.startswith("geometric.")}
    weights |= {f"geometric.{k}": v for k, v in geometric.items()}
    with safe_open(str(best), framework="pt") as handle:
        info = handle.metadata() or {}
    kept = {k: v for k, v in metadata.items() if k not in ("kind", "model_config", "tensors_sha256")}
    kept["trained_on"] = (f"{metadata.get('trained_on', '?')}; geometric network fine-tuned on CCP photos 0001-0904 "
                          f"self-supervised pairs and SynthHumans (docs/models.md)")
    kept["geometric_step"] = info.get("step", "?")
    save_generator(weights, config, out, kept, half=False)


def load_settings(path: str = "", steps: int = 0) -> LayoutSettings:
    """LayoutSettings from a YAML file of its fields (unknown keys raise ConfigError), then ``steps``."""
    return load_preset(LayoutSettings, path, steps=steps)


def main() -> None:
    parser = argparse.ArgumentParser(description="fine-tune the default's geometric network on real layouts")
    parser.add_argument("--run", default="runs/layout-real")
    parser.add_argument("--config", default="", help="YAML of LayoutSettings fields (configs/layout-real.yaml)")
    parser.add_argument("--steps", type=int, default=0, help="overrides the config's steps")
    parser.add_argument("--export-default", metavar="OUT", default="",
                        help="write the default generator with RUN/best.safetensors as its geometric network to OUT")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.export_default:
        export_default(Path(args.run) / "best.safetensors", args.export_default)
        print(f"wrote {args.export_default}")
        return
    run_dir = Path(args.run)
    run_dir.mkdir(parents=True, exist_ok=True)
    train(run_dir, load_settings(args.config, args.steps), lambda line: print(time.strftime("%H:%M:%S"), line,
                                                                              flush=True))


if __name__ == "__main__":
    main()
