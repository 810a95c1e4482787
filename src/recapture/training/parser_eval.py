"""Scoring of a parser head on a view cache (:mod:`recapture.training.parser_data`): validation at crop
resolution (coarse and LIP-20 mIoU, optionally averaged with the mirrored views as the shipped parser does) and
the per-part logit-offset calibration on the validation split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recapture.body.parts import LIP20
from recapture.data.ccp import COARSE_GROUPS, IGNORE, coarse_table, confusion, iou_per_class
from recapture.models.parser import ParserHead, input_stages, upsample_logits
from recapture.training.parser_data import FeatureCache

Batch = tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]


def batch(cache: FeatureCache, rows: np.ndarray, head: ParserHead) -> Batch:
    """``(stages, mask (B,1,H,W) float, keypoints (B,18,2), labels (B,H,W) int64)`` of cache ``rows``; only the
    backbone stages ``head`` reads (:func:`recapture.models.parser.input_stages`) are read from the cache."""
    rows = np.sort(rows)
    stages = {name: torch.from_numpy(np.asarray(cache.arrays[name][rows])) for name in input_stages(head.config)}
    mask = torch.from_numpy(np.asarray(cache.arrays["masks"][rows])).float()[:, None] / 255.0
    keypoints = torch.from_numpy(np.asarray(cache.arrays["keypoints"][rows]))
    labels = torch.from_numpy(np.asarray(cache.arrays["labels"][rows])).long()
    return stages, mask, keypoints, labels


@dataclass(frozen=True)
class Validation:
    """Scores of a head on the validation cache (crop resolution): coarse mIoU, per-group IoU ``(7,)``,
    LIP-20 mIoU over the parts present and per-part IoU ``(20,)``."""

    coarse_miou: float
    groups: np.ndarray
    lip20_miou: float
    parts: np.ndarray

    def score(self, selection: str) -> float:
        """The number a run keeps its best head by: ``coarse`` or ``coarse+lip20`` (their mean)."""
        if selection == "coarse":
            return self.coarse_miou
        if selection == "coarse+lip20":
            return (self.coarse_miou + self.lip20_miou) / 2
        raise ValueError(f"selection: {selection!r} is neither coarse nor coarse+lip20")


def view_probabilities(head: ParserHead, cache: FeatureCache, rows: np.ndarray, mirrored: FeatureCache | None,
                       mirrored_rows: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``((B, 20, H, W) part probabilities, (B, H, W) labels)`` of cache ``rows``; with ``mirrored`` (a cache
    holding the same views mirrored, at ``mirrored_rows``, default ``rows``), the mean of the view's and its
    mirror's (mirrored back, left/right parts swapped), as the shipped parser's flip averaging."""
    stages, mask, keypoints, labels = batch(cache, rows, head)
    probabilities = upsample_logits(head(stages, mask, keypoints)).softmax(dim=1)
    if mirrored is not None:
        stages, mask, keypoints, _ = batch(mirrored, rows if mirrored_rows is None else mirrored_rows, head)
        flipped = upsample_logits(head(stages, mask, keypoints)).softmax(dim=1).flip(-1)
        probabilities = (probabilities + flipped[:, list(LIP20.flip_permutation)]) / 2
    return probabilities, labels


@torch.no_grad()
def validate(head: ParserHead, cache: FeatureCache, batch_size: int = 20,
             mirrored: FeatureCache | None = None) -> Validation:
    """Scores of the head on a cache (crop resolution), averaged with the ``mirrored`` views if given."""
    head.eval()
    groups = len(COARSE_GROUPS)
    table = torch.from_numpy(coarse_table())
    matrix = np.zeros((groups, groups + 1), dtype=np.int64)
    parts = np.zeros((LIP20.num_parts, LIP20.num_parts + 1), dtype=np.int64)
    for start in range(0, len(cache), batch_size):
        probabilities, labels = view_probabilities(head, cache, np.arange(start, min(start + batch_size, len(cache))),
                                               mirrored)
        predicted = probabilities.argmax(dim=1)
        matrix += confusion(table[labels].numpy(), table[predicted].numpy(), groups)
        parts += confusion(labels.numpy(), predicted.numpy(), LIP20.num_parts)
    head.train()
    ious, part_ious = iou_per_class(matrix), iou_per_class(parts)
    present = parts.sum(axis=1) > 0
    return Validation(float(np.nanmean(ious)), ious, float(np.nanmean(part_ious[present])), part_ious)


@torch.no_grad()
def calibrate_offsets(head: ParserHead, cache: FeatureCache, passes: int = 3,
                      candidates: tuple[float, ...] = tuple(np.arange(-1.5, 1.51, 0.25)),
                      mirrored: FeatureCache | None = None) -> tuple[np.ndarray, float]:
    """Per-part logit offsets that maximise the mean of the validation coarse mIoU and LIP-20 mIoU (the
    LIP-20 term keeps parts of one group, e.g. skirt and pants, apart), by coordinate ascent (``passes``
    rounds over the parts, a left part tied to its right part), scored on the conv_4 grid (labels read at
    each cell's centre pixel).
    With ``mirrored`` (the same views mirrored), scored on the mean probabilities of view and mirror, each
    with the offsets added to its logits (the flip test-time augmentation of the parser).
    Returns ``(offsets (20,), the objective with them)``."""
    from recapture.models.parser import STAGE_GRIDS, grid_size

    head.eval()
    stride, offset = STAGE_GRIDS["conv_4"]
    rows_y = stride * np.arange(grid_size("conv_4")[0]) + offset
    cols_x = stride * np.arange(grid_size("conv_4")[1]) + offset
    logits, logits_mirrored, truth = [], [], []
    for start in range(0, len(cache), 20):
        rows = np.arange(start, min(start + 20, len(cache)))
        stages, mask, keypoints, labels = batch(cache, rows, head)
        logits.append(head(stages, mask, keypoints).numpy())
        truth.append(labels.numpy()[:, rows_y][:, :, cols_x])
        if mirrored is not None:
            stages, mask, keypoints, _ = batch(mirrored, rows, head)
            back = upsample_logits(head(stages, mask, keypoints)).flip(-1)[:, list(LIP20.flip_permutation)]
            logits_mirrored.append(back.numpy()[:, :, rows_y][:, :, :, cols_x])
    head.train()
    scores_of = np.concatenate(logits).transpose(0, 2, 3, 1).reshape(-1, LIP20.num_parts)
    scores_mirrored = (np.concatenate(logits_mirrored).transpose(0, 2, 3, 1).reshape(-1, LIP20.num_parts)
                       if mirrored is not None else None)

    def softmax(x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    table = coarse_table()
    true_parts = np.concatenate(truth).ravel()
    true_groups = table[true_parts]
    present = np.bincount(true_parts[true_parts != IGNORE], minlength=LIP20.num_parts)[:LIP20.num_parts] > 0
    groups = len(COARSE_GROUPS)

    def score(offsets: np.ndarray) -> float:
        if scores_mirrored is None:
            predicted = (scores_of + offsets).argmax(axis=1)
        else:
            predicted = (softmax(scores_of + offsets) + softmax(scores_mirrored + offsets)).argmax(axis=1)
        coarse = np.nanmean(iou_per_class(confusion(true_groups, table[predicted], groups)))
        parts = np.nanmean(iou_per_class(confusion(true_parts, predicted, LIP20.num_parts))[present])
        return float((coarse + parts) / 2)

    offsets = np.zeros(LIP20.num_parts, dtype=np.float32)
    best = score(offsets)
    mirror = LIP20.flip_permutation
    for _ in range(passes):
        for part in (p for p in range(1, LIP20.num_parts) if mirror[p] >= p):
            for value in candidates:
                trial = offsets.copy()
                trial[[part, mirror[part]]] = value  # left and right parts share an offset: flips stay exact
                trial_score = score(trial)
                if trial_score > best + 1e-5:
                    best, offsets = trial_score, trial
    return offsets, best
