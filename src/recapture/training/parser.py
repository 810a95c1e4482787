"""Training of the LIP-20 parser head on CCP (frozen Inception stages read from a feature cache).

``python -m recapture.training.parser --config configs/parser-ccp.yaml [key=value ...]``: builds (or
resumes) the caches of ``training/parser_data.py``, trains the head with class-balanced cross entropy
(ignore label 255), validates on the validation split every ``validate_every`` steps, keeps the best
head by validation coarse mIoU, checkpoints atomically every ``checkpoint_minutes`` (resumed on restart),
logs to TensorBoard, and exports the best head as safetensors. The held-out photos are never read.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from recapture.body.parts import LIP20
from recapture.config import ConfigError, load_config, to_dict
from recapture.data.ccp import COARSE_GROUPS, HELD_OUT_IDS, IGNORE, UNLABELLED_IDS, CcpDataset, coarse_table, \
    split_ids
from recapture.data.errors import FormatError
from recapture.data.formats import read_annotations
from recapture.fileio import atomic_path
from recapture.hub import write_model_file
from recapture.models.inception import BACKBONE_NAME
from recapture.models.parser import ParserHead, ParserHeadConfig, upsample_logits
from recapture.models.parser_rules import SuperpixelPooling
from recapture.training.parser_data import FeatureCache, ViewMaker, build_cache
from recapture.training.parser_eval import batch, calibrate_offsets, validate


@dataclass(frozen=True)
class ParserTrainConfig:
    """Everything a parser training run depends on (``configs/parser-ccp.yaml``)."""

    ccp: str = "../shared/data/ccp"  # CCP folder
    keypoints: str = "src/recapture/assets/ccp-keypoints.csv"  # cached BlazePose keypoints
    run_dir: str = "runs/parser-ccp"  # checkpoints, TensorBoard events (and masks/, cache/ unless cache_dir)
    cache_dir: str = ""  # folder holding masks/ and cache/ of an earlier run to reuse ("" -> run_dir)
    export: str = "src/recapture/assets/weights/parser-ccp.safetensors"  # best head, written at the end
    validation_photos: int = 100  # drawn from 0001-0904 with split_seed
    split_seed: int = 0
    random_views: int = 2  # random augmented views per training photo (plus the plain view and its mirror)
    cut_share: float = 0.0  # share of the random views that are close-ups (the photo cut between waist and ankles)
    validation_cut: float = 0.25  # with cut_share > 0: each validation photo also as a close-up cut this far hips->ankles
    garment_colour: float = 0.0  # share of the random views whose garments are recoloured each on its own
    head: ParserHeadConfig = ParserHeadConfig()
    steps: int = 1400
    batch_size: int = 10
    learning_rate: float = 2e-3
    tuned_learning_rate: float = 1e-4  # learning rate of the fine-tuned Inception stages (head.tuned), no weight decay
    warmup: int = 100  # linear warm-up steps before the cosine decay
    group_loss: float = 0.0  # weight of the auxiliary cross entropy on the 7 coarse groups (summed probabilities)
    pair_loss: float = 0.0  # weight of the auxiliary two-way cross entropy between pair_parts on their pixels
    pair_parts: str = "skirt, dress"  # the two LIP-20 parts pair_loss tells apart
    selection: str = "coarse"  # validation score keeping the best head: coarse mIoU, or coarse+lip20 (their mean)
    init: str = ""  # a checkpoint (or parser .safetensors) whose head starts this run (added parts start fresh)
    pseudo_share: float = 0.0  # share of each batch drawn from the pseudo-labelled photos 1005-2098 (parser_pseudo)
    pseudo_keypoints: str = "src/recapture/assets/ccp-keypoints-unlabelled.csv"  # their cached BlazePose keypoints
    pseudo_teacher: str = "parser-ccp"  # the parser (bundled name or .safetensors) that labels them
    pseudo_threshold: float = 0.6  # family probability below which a pseudo-label pixel is ignored
    weight_decay: float = 1e-4
    class_weight_power: float = 0.5  # weight of a part = (median frequency / frequency) ** power, clipped
    boost_parts: str = ""  # comma-separated LIP-20 parts whose loss weight is multiplied by boost
    boost: float = 1.0
    calibrate: bool = True  # tune per-part logit offsets on the validation split (folded into the last bias)
    test_flip: bool = False  # the exported parser averages each crop with its mirror (calibrated so, on validation)
    superpixels: SuperpixelPooling = SuperpixelPooling()  # written to the file; the parser pools after the network
    validate_every: int = 200
    checkpoint_minutes: float = 5.0
    threads: int = 1
    seed: int = 0


def load_parser_config(path: str | Path | None, overrides: list[str] | None = None) -> ParserTrainConfig:
    """Read a YAML preset (or the defaults) and apply dotted ``key=value`` overrides."""
    return load_config(path, overrides, cls=ParserTrainConfig)  # one YAML loader: duplicate keys are errors


def class_weights(labels: np.ndarray, power: float) -> torch.Tensor:
    """``(20,)`` loss weights from the label frequencies of the training views (ignore excluded)."""
    counts = np.bincount(labels[labels != IGNORE].ravel(), minlength=LIP20.num_parts)[:LIP20.num_parts] + 1.0
    frequency = counts / counts.sum()
    weights = (np.median(frequency) / frequency) ** power
    return torch.tensor(np.clip(weights, 0.2, 5.0), dtype=torch.float32)


def group_loss(logits: torch.Tensor, labels: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Cross entropy of the coarse groups: ``(B, 20, H, W)`` logits, their probabilities summed per group
    (``table`` ``(256,)`` part -> group, ``len(COARSE_GROUPS)`` for none); pixels of no group are skipped."""
    groups = len(COARSE_GROUPS)
    probabilities = logits.softmax(dim=1)
    member = F.one_hot(table[:LIP20.num_parts], groups + 1)[:, :groups].to(logits.dtype)  # (20, groups)
    grouped = F.conv2d(probabilities, member.t()[:, :, None, None].contiguous()).clamp_min(1e-6).log()
    target = table[labels.clamp(max=255)]
    return F.nll_loss(grouped, target.masked_fill(target == groups, IGNORE), ignore_index=IGNORE)


def pair_loss(logits: torch.Tensor, labels: torch.Tensor, pair: tuple[int, int]) -> torch.Tensor:
    """Two-way cross entropy between parts ``pair`` (their two logits only) on the pixels labelled one of
    them: ``(B, 20, H, W)`` logits, ``(B, H, W)`` labels; 0 when no pixel is."""
    inside = (labels == pair[0]) | (labels == pair[1])
    if not inside.any():
        return logits.sum() * 0.0
    two = logits[:, list(pair)].permute(0, 2, 3, 1)[inside]
    return F.cross_entropy(two, (labels[inside] == pair[1]).long())


def _warm_cosine(step: int, steps: int, warmup: int = 100) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``steps``."""
    return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))


def _save_atomic(state: dict, path: Path) -> None:
    with atomic_path(path) as temporary:
        torch.save(state, temporary)


def export_head(head_state: dict[str, torch.Tensor], config: ParserTrainConfig, scores: dict, path: Path) -> None:
    """Write the head's weights as a model file (safetensors) with its config and validation scores."""
    metadata = {"kind": "parser", "head": json.dumps(to_dict(config.head)), "validation": json.dumps(scores),
                "label_set": LIP20.name, "backbone": BACKBONE_NAME, "test_flip": json.dumps(config.test_flip),
                "superpixels": json.dumps(to_dict(config.superpixels)),
                "trained_on": f"CCP 0001-0904 minus {config.validation_photos} validation photos "
                              f"(split seed {config.split_seed})"
                              + (f", pseudo-labelled 1005-2098 ({config.pseudo_share:.0%} of each batch)"
                                 if config.pseudo_share > 0 else "") + "; held-out 0905-1004 unused"}
    # BatchNorm's step counters are not weights (and are 0-d, which the model file digest refuses).
    tensors = {k: v.half() if k.startswith("tail.") else v for k, v in head_state.items()
               if not k.endswith("num_batches_tracked")}
    write_model_file(tensors, path, metadata)


def as_shipped(head_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The head's weights as the exported file holds them: fine-tuned Inception stages (``tail.*``) rounded to
    float16 (half the file; the head itself stays float32), so that calibration sees what ships."""
    return {k: v.half().float() if k.startswith("tail.") else v for k, v in head_state.items()}


def training_datasets(config: ParserTrainConfig) -> tuple[CcpDataset, CcpDataset]:
    """The training and validation photos: 0001-0904 split by :func:`split_ids`; never the held-out set."""
    train_ids, validation_ids = split_ids(config.validation_photos, config.split_seed)
    if set(train_ids + validation_ids) & set(HELD_OUT_IDS):
        raise AssertionError("held-out photos in the training or validation split")
    return CcpDataset(Path(config.ccp), train_ids), CcpDataset(Path(config.ccp), validation_ids)


def _cut(config: ParserTrainConfig) -> tuple[str, float | None]:
    """The cache folders' suffix and the validation close-up of a run with close-up views (none without)."""
    if config.cut_share <= 0:
        return "", None
    return f"-cut{round(100 * config.cut_share)}-{round(100 * config.validation_cut)}", config.validation_cut


def prepare_caches(config: ParserTrainConfig) -> tuple[FeatureCache, FeatureCache]:
    """Build or resume the training and validation caches (with close-up views, under their own folders)."""
    run = Path(config.cache_dir or config.run_dir)
    train_set, validation_set = training_datasets(config)
    maker = ViewMaker(CcpDataset(Path(config.ccp)), read_annotations(config.keypoints), run / "masks")
    suffix, cut = _cut(config)
    validation = build_cache(maker, run / "cache" / f"validation{suffix}", validation_set.ids, -1, config.seed,
                             validation_cut=cut)
    if config.garment_colour > 0:
        suffix += f"-garments{round(100 * config.garment_colour)}"
    train = build_cache(maker, run / "cache" / f"train{suffix}", train_set.ids, config.random_views, config.seed,
                        cut_share=config.cut_share, garment_share=config.garment_colour)
    return train, validation


def pseudo_labelled_cache(config: ParserTrainConfig) -> FeatureCache:
    """The plain and mirrored views of the image-level-only photos 1005-2098 with the teacher's tag-corrected
    labels (:mod:`recapture.training.parser_pseudo`), built and labelled once (``labelled.json`` records it)."""
    from recapture.pipelines.human_parsing import CcpParser
    from recapture.training.parser_pseudo import PseudoViewMaker, label_cache

    run = Path(config.cache_dir or config.run_dir)
    dataset = CcpDataset(Path(config.ccp), tuple(UNLABELLED_IDS), pixel_labels=False)
    maker = PseudoViewMaker(dataset, read_annotations(config.pseudo_keypoints), run / "masks")
    folder = run / "cache" / "pseudo"
    cache = build_cache(maker, folder, dataset.ids, 0, config.seed)
    marker = folder / "labelled.json"
    if not marker.is_file():
        teacher = CcpParser(config.pseudo_teacher)
        shares = label_cache(cache, teacher.head, dataset, config.pseudo_threshold)
        record = {"teacher": teacher.source, "threshold": config.pseudo_threshold, **shares}
        with atomic_path(marker) as temporary:
            temporary.write_text(json.dumps(record))
        print(f"pseudo-labels: {record}", flush=True)
    return cache


def initial_head(path: str) -> dict[str, torch.Tensor]:
    """The head weights a run starts from: a training checkpoint's best head, or a parser ``.safetensors``."""
    if path.endswith(".safetensors"):
        from recapture.hub import read_model_file

        tensors, _ = read_model_file(path)
        return {name: tensor.float() if tensor.is_floating_point() else tensor for name, tensor in tensors.items()}
    return torch.load(path, map_location="cpu", weights_only=True)["state"]["best_head"]


def mirrored_validation_cache(config: ParserTrainConfig) -> FeatureCache:
    """The validation views mirrored (built once, under the cache folder), for the flip test-time augmentation."""
    run = Path(config.cache_dir or config.run_dir)
    maker = ViewMaker(CcpDataset(Path(config.ccp)), read_annotations(config.keypoints), run / "masks")
    suffix, cut = _cut(config)
    return build_cache(maker, run / "cache" / f"validation-mirrored{suffix}", training_datasets(config)[1].ids, -1,
                       config.seed, mirrored=True, validation_cut=cut)


def train(config: ParserTrainConfig) -> dict:
    """Train (or resume) the head; returns the best validation scores."""
    from torch.utils.tensorboard import SummaryWriter

    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    run = Path(config.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    train_cache, validation_cache = prepare_caches(config)
    pseudo_cache, pseudo_rows = None, 0
    if config.pseudo_share > 0:
        pseudo_cache = pseudo_labelled_cache(config)
        pseudo_rows = int(round(config.pseudo_share * config.batch_size))
    weights = class_weights(np.asarray(train_cache.arrays["labels"]), config.class_weight_power)
    weights[[LIP20.index(name.strip()) for name in config.boost_parts.split(",") if name.strip()]] *= config.boost
    head = ParserHead(config.head)
    tuned = [p for p in head.tail.parameters() if p.requires_grad] if head.tail is not None else []
    groups = [{"params": [p for name, p in head.named_parameters() if not name.startswith("tail.")]}]
    if tuned:
        groups.append({"params": tuned, "lr": config.tuned_learning_rate, "weight_decay": 0.0})
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _warm_cosine(s, config.steps, config.warmup))
    state = {"step": 0, "best": -1.0, "best_head": None, "best_scores": {}, "seconds": 0.0}
    checkpoint = run / "checkpoint.pt"
    if checkpoint.is_file():
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
        head.load_state_dict(saved["head"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        state = saved["state"]
        print(f"resumed at step {state['step']}", flush=True)
    elif config.init:
        start = initial_head(config.init)
        missing, unexpected = head.load_state_dict(start, strict=False)
        if unexpected:
            raise ValueError(f"{config.init}: head weights the config does not have: {', '.join(unexpected)}")
        fresh = [name for name in missing if not name.startswith("tail.")]
        copied = " (tuned stages: copies of the backbone's)" if len(fresh) < len(missing) else ""
        print(f"started from {config.init} (fresh: {', '.join(fresh) or 'nothing'}){copied}", flush=True)
    table = torch.from_numpy(coarse_table())
    pair = tuple(LIP20.index(name.strip()) for name in config.pair_parts.split(","))
    if config.pair_loss > 0 and len(pair) != 2:
        raise ValueError(f"pair_parts: {config.pair_parts!r} does not name two LIP-20 parts")
    rng = np.random.default_rng(config.seed + state["step"])
    writer = SummaryWriter(str(run / "tensorboard"))
    last_save, started = time.time(), time.time() - state["seconds"]

    def save() -> None:
        state["seconds"] = time.time() - started
        _save_atomic({"head": head.state_dict(), "optimizer": optimizer.state_dict(),
                      "schedule": schedule.state_dict(), "state": state}, checkpoint)

    head.train()
    while state["step"] < config.steps:
        rows = rng.choice(len(train_cache), config.batch_size - pseudo_rows, replace=False)
        stages, mask, keypoints, labels = batch(train_cache, rows, head)
        if pseudo_cache is not None and pseudo_rows:
            extra = batch(pseudo_cache, rng.choice(len(pseudo_cache), pseudo_rows, replace=False), head)
            stages = {name: torch.cat([stages[name], extra[0][name]]) for name in stages}
            mask, keypoints, labels = (torch.cat(pair) for pair in zip((mask, keypoints, labels), extra[1:]))
        logits = upsample_logits(head(stages, mask, keypoints))
        loss = F.cross_entropy(logits, labels, weight=weights, ignore_index=IGNORE)
        if config.group_loss > 0:
            loss = loss + config.group_loss * group_loss(logits, labels, table)
        if config.pair_loss > 0:
            loss = loss + config.pair_loss * pair_loss(logits, labels, pair)  # type: ignore[arg-type]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        state["step"] += 1
        step = state["step"]
        writer.add_scalar("train/loss", loss.item(), step)
        if step % 20 == 0:
            print(f"step {step} loss {loss.item():.4f} ({time.time() - started:.0f} s)", flush=True)
        if step % config.validate_every == 0 or step == config.steps:
            checked = validate(head, validation_cache)
            writer.add_scalar("validation/coarse_miou", checked.coarse_miou, step)
            writer.add_scalar("validation/lip20_miou", checked.lip20_miou, step)
            print(f"validation step {step}: coarse mIoU {checked.coarse_miou:.4f} LIP-20 mIoU "
                  f"{checked.lip20_miou:.4f} skirt={checked.parts[LIP20.index('skirt')]:.3f} " +
                  " ".join(f"{n}={v:.3f}" for (n, _), v in zip(COARSE_GROUPS, checked.groups)), flush=True)
            if checked.score(config.selection) > state["best"]:
                scores = {"step": step, "coarse_miou": checked.coarse_miou, "lip20_miou": checked.lip20_miou,
                          **{n: float(v) for (n, _), v in zip(COARSE_GROUPS, checked.groups)}}
                state.update(best=checked.score(config.selection), best_scores=scores,
                             best_head={k: v.clone() for k, v in head.state_dict().items()})
            save()
            last_save = time.time()
        elif time.time() - last_save > 60 * config.checkpoint_minutes:
            save()
            last_save = time.time()
    state["seconds"] = time.time() - started
    scores = {**state["best_scores"], "training_seconds": round(state["seconds"]), "steps": config.steps}
    best_head = as_shipped(dict(state["best_head"]))
    if config.calibrate:
        head.load_state_dict(best_head)
        mirrored = mirrored_validation_cache(config) if config.test_flip else None
        offsets, calibrated = calibrate_offsets(head, validation_cache, mirrored=mirrored)
        best_head["fine.2.bias"] = best_head["fine.2.bias"] + torch.from_numpy(offsets)
        head.load_state_dict(best_head)
        checked = validate(head, validation_cache, mirrored=mirrored)
        miou = checked.coarse_miou
        scores.update(calibration_objective=calibrated, calibrated_coarse_miou=miou,
                      calibrated_lip20_miou=checked.lip20_miou,
                      calibrated_skirt=float(checked.parts[LIP20.index("skirt")]),
                      calibrated_groups={n: float(v) for (n, _), v in zip(COARSE_GROUPS, checked.groups)},
                      logit_offsets={n: float(v) for n, v in zip(LIP20.names, offsets) if v})
        print(f"calibrated logit offsets on validation: {scores['logit_offsets']} -> coarse mIoU {miou:.4f}",
              flush=True)
    export_head(best_head, config, scores, Path(config.export))
    writer.close()
    print(f"exported {config.export}: {scores}", flush=True)
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the CCP LIP-20 parser head.")
    parser.add_argument("--config", type=Path, default=None, help="YAML preset, e.g. configs/parser-ccp.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. steps=100")
    args = parser.parse_args(argv)
    try:
        train(load_parser_config(args.config, args.overrides))
    except (ConfigError, FormatError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
