"""Scores that need ground-truth layouts, and SynthHumans' extra ground truth (docs/evaluation.md,
"Scoring a model: `--model` mode"):

* ``layout_iou``: mean IoU of the predicted target layout Ŝ_B against the true target layout;
* ``colour_coherence``: colour difference between the left and right parts of one kind (shoes, arm and
  leg skin, each garment's left and right sleeve / trouser leg) in the generated image, over the regions
  of the true target layout (``colour_coherence_real``: the same on the real target, the floor);
* ``texture_fidelity`` / ``texture_l1``: SSIM map / L1 averaged over the garment pixels of the true target
  layout;
* ``invisible_l1``: L1 over the target pixels whose part the source does not show (SynthHumans'
  ``invisible`` masks);
* ``edit_<kind>_l1`` / ``_ssim`` / ``_layout_iou``: a figure or clothing edit applied to Ŝ_B, scored
  against SynthHumans' re-rendered truth.

Images are ``(B, 3, H, W)`` uint8, layouts ``(B, H, W)`` integer labels, keypoints ``(B, 18, 2)`` y/x.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Mapping, Sequence

import cv2
import numpy as np
import torch

from recapture.body.bones import CHAINS, bone_maps, label_roles, ownership
from recapture.body.parts import LabelSet
from recapture.evaluation.report import EvaluationReport
from recapture.evaluation.ssim import l1_distance, ssim, ssim_map

#: Garment labels of the texture scores (LIP-20, and Market-7's merged clothes).
GARMENT_PARTS: tuple[str, ...] = ("upper_clothes", "coat", "dress", "pants", "skirt", "lower_clothes")
#: Garments compared left vs right by the limb owning each pixel: sleeves (arms) and trouser legs (legs).
LIMB_GARMENTS: tuple[tuple[str, tuple[str, ...]], ...] = (("arm", ("upper_clothes", "coat")),
                                                          ("leg", ("pants", "lower_clothes")))
#: A left or right region needs this many pixels, after the erosion, to be compared.
MIN_REGION_PIXELS = 4
#: Regions are eroded by this many pixels (3x3 steps) first, dropping the anti-aliased boundary.
REGION_EROSION = 1
EDIT_KINDS: tuple[str, ...] = ("figure", "clothing")


def part_mask(labels: torch.Tensor, label_set: LabelSet, names: Sequence[str]) -> torch.Tensor:
    """``(B, 1, H, W)`` uint8: 1 where ``labels`` ``(B, H, W)`` is one of the parts ``names`` of ``label_set``."""
    wanted = [label_set.index(n) for n in names if n in label_set.names]
    table = torch.zeros(label_set.num_parts, dtype=torch.uint8, device=labels.device)
    table[wanted] = 1
    return table[labels.long()].unsqueeze(1)


def _eroded(mask: np.ndarray, steps: int) -> np.ndarray:
    if steps <= 0:
        return mask
    return cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=steps).astype(bool)


def symmetric_regions(labels: np.ndarray, keypoints: np.ndarray, label_set: LabelSet,
                      min_pixels: int = MIN_REGION_PIXELS,
                      erosion: int = REGION_EROSION) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Left/right region pairs of one ``(H, W)`` layout that should share a colour: ``(name, left, right)``
    boolean masks, each eroded by ``erosion`` px and kept only if both sides keep ``min_pixels`` pixels.

    Pairs: every ``left_X`` / ``right_X`` label pair of the label set (LIP-20: shoes, arm skin, leg skin),
    and the garments of :data:`LIMB_GARMENTS` split by the limb that owns each pixel
    (:func:`recapture.body.bones.ownership`, ``keypoints`` ``(18, 2)``: the nearest present bone scaled by
    its width): left vs right sleeve of ``upper_clothes`` / ``coat``, left vs right trouser leg of ``pants``.
    """
    labels = np.asarray(labels)
    pairs: list[tuple[str, np.ndarray, np.ndarray]] = []
    for name in label_set.names:
        if name.startswith("left_") and "right_" + name[5:] in label_set.names:
            pairs.append((name[5:], labels == label_set.index(name), labels == label_set.index("right_" + name[5:])))
    if any(g in label_set.names for _, garments in LIMB_GARMENTS for g in garments):
        chain = ownership(labels, bone_maps(keypoints, labels.shape), label_roles(label_set)).chain
        for limb, garments in LIMB_GARMENTS:
            left, right = CHAINS.index(f"left_{limb}"), CHAINS.index(f"right_{limb}")
            for garment in (g for g in garments if g in label_set.names):
                worn = labels == label_set.index(garment)
                pairs.append((f"{garment}@{limb}", worn & (chain == left), worn & (chain == right)))
    pairs = [(n, _eroded(a, erosion), _eroded(b, erosion)) for n, a, b in pairs]
    return [(n, a, b) for n, a, b in pairs if a.sum() >= min_pixels and b.sum() >= min_pixels]


def colour_difference(image: np.ndarray, left: np.ndarray, right: np.ndarray) -> float:
    """Mean over R, G, B of ``|mean colour of left - mean colour of right| / 255`` for ``(3, H, W)`` uint8."""
    pixels = np.asarray(image, dtype=np.float64)
    return float(np.abs(pixels[:, left].mean(axis=1) - pixels[:, right].mean(axis=1)).mean() / 255.0)


def colour_coherence(image: np.ndarray, regions: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> float | None:
    """Mean :func:`colour_difference` of ``image`` over the region pairs (None when there are none)."""
    if not regions:
        return None
    return float(np.mean([colour_difference(image, left, right) for _, left, right in regions]))


def region_ssim(generated: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SSIM map (:func:`recapture.evaluation.ssim.ssim_map`, channel mean) averaged over the pixels of
    ``mask`` ``(B, 1, H, W)`` at least the window radius from the border.

    Returns ``(values (B,) float64, kept (B,) bool)``; ``kept`` is False (value 0) where that mask is empty.
    """
    maps = ssim_map(generated, real).mean(dim=1)
    radius = (generated.shape[-2] - maps.shape[-2]) // 2
    inner = mask[:, 0, radius:generated.shape[-2] - radius, radius:generated.shape[-1] - radius].to(maps)
    area = inner.sum(dim=(1, 2))
    return (maps * inner).sum(dim=(1, 2)) / area.clamp_min(1.0), area > 0


def layout_iou(predicted: torch.Tensor, truth: torch.Tensor, num_parts: int,
               background: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image mean IoU over the non-background labels present in ``predicted`` or ``truth`` ``(B, H, W)``.

    Returns ``(values (B,) float64, kept (B,) bool)``; ``kept`` is False where both layouts are all background.
    """
    hot_p = torch.nn.functional.one_hot(predicted.long(), num_parts).flatten(1, 2).double()
    hot_t = torch.nn.functional.one_hot(truth.long(), num_parts).flatten(1, 2).double()
    intersection = (hot_p * hot_t).sum(dim=1)
    union = hot_p.sum(dim=1) + hot_t.sum(dim=1) - intersection
    union[:, background] = 0
    present = union > 0
    iou = torch.where(present, intersection / union.clamp_min(1.0), torch.zeros_like(union))
    count = present.sum(dim=1)
    return iou.sum(dim=1) / count.clamp_min(1), count > 0


@dataclass(frozen=True)
class ExtraScores:
    """The scores of this module: report field names, the pair counts behind them, and why any is missing."""

    values: Mapping[str, float] = field(default_factory=dict)
    counts: Mapping[str, int] = field(default_factory=dict)
    unavailable: Mapping[str, str] = field(default_factory=dict)

    def merged_into(self, report: EvaluationReport) -> EvaluationReport:
        """``report`` with these values, counts and reasons added."""
        keys = {f.name: f.metadata["key"] for f in fields(EvaluationReport) if "key" in f.metadata}
        return replace(report, **self.values,
                       metric_counts={**report.metric_counts, **{keys[k]: n for k, n in self.counts.items()}},
                       unavailable={**report.unavailable, **self.unavailable})


class ExtraScoreAccumulator:
    """Running sums of the scores of this module (field names of :class:`EvaluationReport`).

    ``reasons`` pre-sets why a score cannot be computed (e.g. no ``invisible`` masks); a score that gets no
    pair is reported with a generic reason instead of a value.
    """

    def __init__(self, label_set: LabelSet, reasons: Mapping[str, str] | None = None,
                 min_region_pixels: int = MIN_REGION_PIXELS) -> None:
        self.label_set = label_set
        self.reasons = dict(reasons or {})
        self.min_region_pixels = min_region_pixels
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def _add(self, name: str, values: torch.Tensor, kept: torch.Tensor | None = None) -> None:
        values = values.double().cpu()
        if kept is not None:
            values = values[kept.cpu()]
        self.sums[name] = self.sums.get(name, 0.0) + float(values.sum())
        self.counts[name] = self.counts.get(name, 0) + int(values.numel())

    def update(self, generated: torch.Tensor, real: torch.Tensor, target_labels: torch.Tensor,
               target_keypoints: np.ndarray | torch.Tensor, predicted_labels: torch.Tensor | None = None,
               invisible: torch.Tensor | None = None) -> None:
        """Add a batch of generated images and their real targets with the true target layouts.

        ``predicted_labels``: Ŝ_B for ``layout_iou``; ``invisible``: ``(B, 1, H, W)`` 0/1 SynthHumans masks.
        """
        generated, real, target_labels = generated.cpu(), real.cpu(), target_labels.cpu()
        if predicted_labels is not None:
            self._add("layout_iou", *layout_iou(predicted_labels.cpu(), target_labels, self.label_set.num_parts))
        if invisible is not None:
            invisible = invisible.cpu()
            self._add("invisible_l1", l1_distance(generated, real, invisible),
                      invisible.flatten(1).amax(dim=1) > 0)
        garments = part_mask(target_labels, self.label_set, GARMENT_PARTS)
        self._add("texture_fidelity", *region_ssim(generated, real, garments))
        self._add("texture_l1", l1_distance(generated, real, garments), garments.flatten(1).amax(dim=1) > 0)
        keypoints = np.asarray(target_keypoints.cpu() if isinstance(target_keypoints, torch.Tensor)
                               else target_keypoints, dtype=np.float64)
        for i in range(generated.shape[0]):
            regions = symmetric_regions(target_labels[i].numpy(), keypoints[i], self.label_set,
                                        self.min_region_pixels)
            if regions:
                self._add("colour_coherence", torch.tensor([colour_coherence(generated[i].numpy(), regions)]))
                self._add("colour_coherence_real", torch.tensor([colour_coherence(real[i].numpy(), regions)]))

    def update_edit(self, kind: str, generated: torch.Tensor, real: torch.Tensor,
                    edited_labels: torch.Tensor | None, truth_labels: torch.Tensor) -> None:
        """Add edit pairs of ``kind`` (figure | clothing): the images generated with the edited layout
        against the re-rendered truth, and the edited layout (None: not scored) against the true one."""
        if kind not in EDIT_KINDS:
            raise ValueError(f"edit kind must be one of {', '.join(EDIT_KINDS)}, got {kind!r}")
        generated, real = generated.cpu(), real.cpu()
        self._add(f"edit_{kind}_l1", l1_distance(generated, real))
        self._add(f"edit_{kind}_ssim", ssim(generated, real))
        if edited_labels is not None:
            self._add(f"edit_{kind}_layout_iou",
                      *layout_iou(edited_labels.cpu(), truth_labels.cpu(), self.label_set.num_parts))

    def compute(self, names: Sequence[str]) -> ExtraScores:
        """Means of ``names`` (report field names): a value where a pair was scored, else a reason."""
        values, counts, unavailable = {}, {}, {}
        keys = {f.name: f.metadata["key"] for f in fields(EvaluationReport) if "key" in f.metadata}
        for name in names:
            if self.counts.get(name, 0) > 0:
                values[name] = self.sums[name] / self.counts[name]
                counts[name] = self.counts[name]
            else:
                unavailable[keys[name]] = self.reasons.get(name, _EMPTY_REASONS.get(name, "no pair was scored"))
        return ExtraScores(values, counts, unavailable)


_EMPTY_REASONS = {
    "layout_iou": "every true and predicted target layout is all background",
    "invisible_l1": "no target pixel is invisible in its source",
    "texture_fidelity": "no target layout has garment pixels inside the SSIM border",
    "texture_l1": "no target layout has garment pixels",
    "colour_coherence": f"no target has a left/right region pair of >= {MIN_REGION_PIXELS} px each (eroded)",
    "colour_coherence_real": f"no target has a left/right region pair of >= {MIN_REGION_PIXELS} px each (eroded)",
}
