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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from recapture.body.parts import LABEL_SETS, LabelSet, get_label_set
from recapture.body.part_maps import (ARMS, BACK, FRONT, HEAD, NUM_SEGMENTS, TORSO, assign_segments, in_torso,
                                        limb_strokes, owner_table, segment_maps)

#: Source pixels within this fraction of the image height around the torso quadrilateral belong to the
#: torso too: a sleeve or an arm lifted off the body leaves shirt behind (the torso's most common
#: clothing label where an arm lay over it), not a hole.
TORSO_MARGIN = 0.04


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


def _keypoints_of(name: str, keypoints: Tensor | np.ndarray, batch: int) -> np.ndarray:
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


def _warp_one(labels: Tensor, source: np.ndarray, target: np.ndarray, label_set: LabelSet,
              owners: Tensor) -> tuple[Tensor, ...]:
    """Segment, coordinates, labels, unexplained mask, segment validity and part validity of one pair."""
    size = (labels.shape[0], labels.shape[1])
    device = labels.device
    fit = segment_maps(source, target, size[0])
    assigned = assign_segments(labels, source, owners, fit.source_ok)
    regions = torch.stack([assigned == s for s in range(NUM_SEGMENTS)]).float()
    torso_parts = owners[:, TORSO].to(device)[labels] & (labels > 0)
    arm_parts = (owners[:, list(ARMS)].any(dim=1) & ~owners[:, TORSO]).to(device)[labels]
    inside = (in_torso(source, size, TORSO_MARGIN * size[0], device) & torso_parts) | \
        (in_torso(source, size, 0.0, device) & arm_parts)
    fill = torch.bincount(labels[inside & torso_parts], minlength=label_set.num_parts).argmax()
    if not bool((inside & torso_parts).any()):
        inside = inside & torso_parts  # nothing to fill a hole with
    regions[TORSO] = torch.maximum(regions[TORSO], inside.float())
    ys = torch.arange(size[0], dtype=torch.float32, device=device).view(-1, 1).expand(size)
    xs = torch.arange(size[1], dtype=torch.float32, device=device).view(1, -1).expand(size)
    points = torch.stack([ys, xs, torch.ones_like(ys)], dim=-1)  # (H, W, 3)
    maps = torch.as_tensor(fit.maps, dtype=torch.float32, device=device)  # (S, 2, 3)
    coords = torch.einsum("sij,hwj->shwi", maps, points)  # (S, H, W, 2)
    grid = _normalised(coords, size)
    covered = F.grid_sample(regions[:, None], grid, mode="nearest", padding_mode="zeros", align_corners=True)[:, 0]
    covered = (covered > 0.5) & torch.as_tensor(fit.used, device=device).view(-1, 1, 1)
    depth = torch.as_tensor(fit.depth, dtype=torch.float32, device=device).view(-1, 1, 1).expand_as(covered)
    score = torch.where(covered, depth, torch.full_like(depth, -1e9))
    best = score.argmax(dim=0)
    any_cover = covered.any(dim=0)
    segment = torch.where(any_cover, best, torch.full_like(best, -1))
    chosen = coords.gather(0, best.view(1, *size, 1).expand(1, *size, 2))[0]
    sampled = F.grid_sample(labels[None, None].float(), _normalised(chosen, size)[None], mode="nearest",
                            padding_mode="zeros", align_corners=True)[0, 0].round().long()
    warped = torch.where(any_cover, sampled, torch.zeros_like(sampled))
    hole = (segment == TORSO) & ~owners[:, TORSO].to(device)[warped]  # a limb lay over the source torso
    warped = torch.where(hole, fill.expand_as(warped), warped)
    if fit.views == (FRONT, BACK) and "hair" in label_set.names:
        hair = label_set.index("hair")
        for name in ("face", "sunglasses"):
            if name in label_set.names:
                warped = torch.where((segment == HEAD) & (warped == label_set.index(name)),
                                     torch.full_like(warped, hair), warped)
    missing = [s for s in range(NUM_SEGMENTS) if not fit.valid[s]]
    unexplained = limb_strokes(target, missing, size, device)
    if not fit.valid[TORSO]:
        unexplained |= in_torso(target, size, 0.0, device)
    valid = torch.as_tensor(fit.valid, device=device)
    counts = torch.bincount(labels.flatten(), minlength=label_set.num_parts).float()
    explained_pixels = (assigned >= 0) & valid[assigned.clamp_min(0)]
    explained = torch.bincount(labels.flatten(), weights=explained_pixels.flatten().float(),
                               minlength=label_set.num_parts)
    part_validity = torch.where(counts > 0, explained / counts.clamp_min(1), torch.ones_like(counts))
    part_validity[0] = 1.0  # the background needs no keypoint
    return segment, chosen, warped, unexplained.float()[None], valid, part_validity


def part_warp(source_layout: Tensor, source_keypoints: Tensor | np.ndarray, target_keypoints: Tensor | np.ndarray,
              label_set: str | LabelSet | None = None) -> PartWarp:
    """The part-by-part backward warp of ``source_layout`` ((B, N, H, W) one-hot or (B, H, W) labels) from
    ``source_keypoints`` to ``target_keypoints`` ((B, 18, 2) y/x in the layout's pixel frame, -1 missing)."""
    labels = _labels_of(source_layout)
    batch = labels.shape[0]
    if source_layout.dim() == 4:
        found = resolve_label_set(source_layout.shape[1], label_set)
    else:
        found = label_set if isinstance(label_set, LabelSet) else get_label_set(label_set or "lip20")
    if labels.numel() and int(labels.max()) >= found.num_parts:
        raise ValueError(f"source_layout has label {int(labels.max())} >= {found.num_parts} parts of {found.name}")
    source = _keypoints_of("source_keypoints", source_keypoints, batch)
    target = _keypoints_of("target_keypoints", target_keypoints, batch)
    owners = owner_table(found).to(labels.device)
    rows = [_warp_one(labels[i], source[i], target[i], found, owners) for i in range(batch)]
    segment, coords, warped, unexplained, valid, validity = (torch.stack(list(column)) for column in zip(*rows))
    return PartWarp(segment=segment, source_coords=coords, labels=warped, unexplained=unexplained,
                    segment_valid=valid, part_validity=validity)


def warp_layout(source_layout: Tensor, source_keypoints: Tensor | np.ndarray, target_keypoints: Tensor | np.ndarray,
                label_set: str | LabelSet | None = None) -> WarpedLayout:
    """Warp a layout into the target pose: ``(B, N, H, W)`` one-hot + ``(B, N)`` part validity (see module doc)."""
    found = part_warp(source_layout, source_keypoints, target_keypoints, label_set)
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
