"""The keypoint prior: a training-free, part-by-part warp of the source layout (and image) into the target
pose (the geometric transform's starting point, and the ``warp`` baseline every model must beat).

It is a *backward* warp: for every target pixel and every body segment (:mod:`recapture.body.part_maps`)
the segment's map gives a source coordinate; the segment covers the pixel when that source pixel belongs
to it; of the covering segments the nearest to the camera in the target view wins. The winner's source
coordinate is where the pixel's label (nearest) and colour (bilinear) come from, so :func:`warp_layout`
and :func:`warp_image` move exactly the same pixels. Keypoints are in the pixel frame of the tensors
they come with, so the warp runs at any resolution (a 1024-pixel photo as well as the 128x88 network size).

Front <-> back view changes: the person's own left/right labels follow their own joints; when the
source faces the camera and the target turns its back, the face becomes hair.

With ``twins`` (the correspondence model's prior and the photo path's ``--layout prior``; not the floor) a limb the
source hides - behind the body, crossed over the other one, labelled as the other side - is drawn from the other
side's limb (:func:`recapture.body.prior_numpy.part_warp`).

The warp itself is computed, one pair at a time, by the vectorised NumPy implementation
(:func:`recapture.body.prior_numpy.part_warp`, which the torch-free ONNX photo path uses directly); this
module is its torch-tensor API (batches, one-hot layouts, the bilinear image warp).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from recapture.body.parts import LABEL_SETS, LabelSet, get_label_set
from recapture.body.prior_numpy import part_warp as numpy_part_warp


@dataclass(frozen=True)
class PartWarp:
    """Where every target pixel comes from."""

    segment: Tensor  # (B, H, W) long: the winning segment, -1 where no segment covers the pixel
    source_coords: Tensor  # (B, H, W, 2) float y/x source pixel of each target pixel (valid where segment >= 0)
    labels: Tensor  # (B, H, W) long: the warped label map (0 where uncovered)
    unexplained: Tensor  # (B, 1, H, W) float: target limbs/torso the source cannot supply (keypoints missing there)
    segment_valid: Tensor  # (B, S) bool: the segment moved by its own keypoints
    part_validity: Tensor  # (B, N) float: fraction of each source part moved by its own segment's keypoints


@dataclass(frozen=True)
class WarpedLayout:
    """:func:`warp_layout`'s result."""

    layout: Tensor  # (B, N, H, W) one-hot (background where no segment covers a pixel)
    validity: Tensor  # (B, N) float in [0, 1]: part validity (1 = every source pixel of the part is explained)
    unexplained: Tensor  # (B, 1, H, W) float: target regions the source keypoints cannot supply


def resolve_label_set(num_parts: int, label_set: str | LabelSet | None) -> LabelSet:
    """The label set given, or the only one with ``num_parts`` parts."""
    if isinstance(label_set, LabelSet):
        found = label_set
    elif label_set is not None:
        found = get_label_set(label_set)
    else:
        matches = [s for s in LABEL_SETS.values() if s.num_parts == num_parts]
        if len(matches) != 1:
            raise ValueError(f"cannot tell the label set of a {num_parts}-part layout: pass label_set")
        found = matches[0]
    if found.num_parts != num_parts:
        raise ValueError(f"layout has {num_parts} parts but label set {found.name} has {found.num_parts}")
    return found


def _labels_of(layout: Tensor) -> Tensor:
    if layout.dim() == 4:
        return layout.argmax(dim=1)
    if layout.dim() == 3 and not layout.dtype.is_floating_point:
        return layout.long()
    raise ValueError(f"source_layout: expected (B, N, H, W) one-hot or (B, H, W) labels, got {tuple(layout.shape)}")


def keypoint_array(name: str, keypoints: Tensor | np.ndarray, batch: int) -> np.ndarray:
    """``(batch, 18, 2)`` float64 y/x of a tensor or array (one pose is taken as a batch of 1); ValueError
    naming ``name`` on another shape or a non-finite value."""
    array = np.asarray(keypoints.detach().cpu() if isinstance(keypoints, Tensor) else keypoints, dtype=np.float64)
    if array.shape == (18, 2):
        array = array[None]
    if array.shape != (batch, 18, 2):
        raise ValueError(f"{name}: expected ({batch}, 18, 2) y/x keypoints, got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: keypoints must be finite (-1 marks a missing joint)")
    return array


def _normalised(coords: Tensor, size: tuple[int, int]) -> Tensor:
    """Pixel y/x -> grid_sample x/y in [-1, 1] (align_corners=True)."""
    height, width = size
    y = coords[..., 0] * (2.0 / max(height - 1, 1)) - 1.0
    x = coords[..., 1] * (2.0 / max(width - 1, 1)) - 1.0
    return torch.stack([x, y], dim=-1)


def part_warp(source_layout: Tensor, source_keypoints: Tensor | np.ndarray, target_keypoints: Tensor | np.ndarray,
              label_set: str | LabelSet | None = None, twins: bool = False) -> PartWarp:
    """The part-by-part backward warp of ``source_layout`` ((B, N, H, W) one-hot or (B, H, W) labels) from
    ``source_keypoints`` to ``target_keypoints`` ((B, 18, 2) y/x in the layout's pixel frame, -1 missing);
    ``twins``: limbs the source cannot supply are taken from the other side's (``prior_numpy.part_warp``)."""
    labels = _labels_of(source_layout)
    batch = labels.shape[0]
    if source_layout.dim() == 4:
        found = resolve_label_set(source_layout.shape[1], label_set)
    else:
        found = label_set if isinstance(label_set, LabelSet) else get_label_set(label_set or "lip20")
    if labels.numel() and int(labels.max()) >= found.num_parts:
        raise ValueError(f"source_layout has label {int(labels.max())} >= {found.num_parts} parts of {found.name}")
    source = keypoint_array("source_keypoints", source_keypoints, batch)
    target = keypoint_array("target_keypoints", target_keypoints, batch)
    rows = [numpy_part_warp(item, source[i], target[i], found, twins)
            for i, item in enumerate(labels.cpu().numpy())]

    def stacked(name: str, dtype: torch.dtype) -> Tensor:
        return torch.from_numpy(np.stack([getattr(row, name) for row in rows])).to(labels.device, dtype)

    segment, coords, warped = stacked("segment", torch.long), stacked("source_coords", torch.float32), \
        stacked("labels", torch.long)
    unexplained, valid = stacked("unexplained", torch.float32)[:, None], stacked("segment_valid", torch.bool)
    validity = stacked("part_validity", torch.float32)
    return PartWarp(segment=segment, source_coords=coords, labels=warped, unexplained=unexplained,
                    segment_valid=valid, part_validity=validity)


def warp_layout(source_layout: Tensor, source_keypoints: Tensor | np.ndarray, target_keypoints: Tensor | np.ndarray,
                label_set: str | LabelSet | None = None, twins: bool = False) -> WarpedLayout:
    """Warp a layout into the target pose: ``(B, N, H, W)`` one-hot + ``(B, N)`` part validity (see module doc;
    ``twins`` as in :func:`part_warp`)."""
    found = part_warp(source_layout, source_keypoints, target_keypoints, label_set, twins)
    num_parts = source_layout.shape[1] if source_layout.dim() == 4 else found.part_validity.shape[1]
    hot = F.one_hot(found.labels, num_parts).permute(0, 3, 1, 2).float()
    return WarpedLayout(layout=hot, validity=found.part_validity, unexplained=found.unexplained)


def warp_image(source_image: Tensor, source_layout: Tensor, source_keypoints: Tensor | np.ndarray,
               target_keypoints: Tensor | np.ndarray, label_set: str | LabelSet | None = None,
               warp: PartWarp | None = None) -> Tensor:
    """Warp ``source_image`` ``(B, 3, H, W)`` (any value range) into the target pose with the same maps as
    :func:`warp_layout` (bilinear). Pixels no segment covers keep the source's background where the source
    shows background, else the source's mean background colour."""
    if source_image.dim() != 4:
        raise ValueError(f"source_image: expected (B, C, H, W), got {tuple(source_image.shape)}")
    found = warp if warp is not None else part_warp(source_layout, source_keypoints, target_keypoints, label_set)
    size = (source_image.shape[-2], source_image.shape[-1])
    if tuple(found.segment.shape[-2:]) != size:
        raise ValueError(f"source_layout {tuple(found.segment.shape[-2:])} and source_image {size} differ in size")
    image = source_image.float()
    moved = F.grid_sample(image, _normalised(found.source_coords, size), mode="bilinear", padding_mode="border",
                          align_corners=True)
    person = (_labels_of(source_layout) > 0).unsqueeze(1).float()
    background = F.max_pool2d(person, 5, stride=1, padding=2)[:, 0] == 0  # antialiased edges count as person
    weight = background.unsqueeze(1).float()
    mean = (image * weight).sum(dim=(2, 3), keepdim=True) / weight.sum(dim=(2, 3), keepdim=True).clamp_min(1.0)
    fill = torch.where(background.unsqueeze(1), image, mean.expand_as(image))
    out = torch.where((found.segment >= 0).unsqueeze(1), moved, fill)
    return out.to(source_image.dtype)
