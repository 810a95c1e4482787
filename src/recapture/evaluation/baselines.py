"""Floors: images that need no model, scored beside a method on the same pairs (``--baselines``).

A method that does not beat them has not learned what the metric is meant to reward:

| row | image | what it exposes |
|---|---|---|
| ``all_white`` | every pixel 255 | SSIM rewards DeepFashion's white background (0.6+ for a blank image) |
| ``copy_source`` | the source photo, unchanged (resized to the target's size) | FID/KID ignore the pose: a copied source scores like a good method |
| ``mean_colour`` | the target pose mask filled with the target's mean colour inside it, the rest with its mean colour outside | pixel metrics reward a blurry average |
| ``part_affine_warp`` | the source warped part by part to the target keypoints by the training-free keypoint prior (:func:`recapture.body.keypoint_warp.warp_image`, which needs the source layouts) | the floor a learned model must beat |

Each floor is a :class:`Floor`: a name, a description, what it needs (``"source"`` images, target
``"keypoints"``, ``"source_keypoints"``, source ``"layouts"``) and a function of a :class:`FloorBatch`.
:func:`available_floors` lists them; the warp row joins when its function can be imported.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

WARP_MODULE, WARP_FUNCTION = "recapture.body.keypoint_warp", "warp_image"


@dataclass(frozen=True)
class FloorBatch:
    """What a floor may use for one batch (all at the real targets' size ``(H, W)``).

    Attributes:
        real: ``(B, 3, H, W)`` uint8 targets (their colours only feed ``mean_colour``).
        masks: ``(B, 1, H, W)`` uint8 literature pose masks of the targets, or None.
        target_keypoints, source_keypoints: ``(B, 18, 2)`` y/x (-1 missing), or None.
        sources: ``(B, 3, H, W)`` uint8 source images, or None.
        source_keys: feature-cache keys of the sources (file hash and size), or None.
        source_layouts: ``(B, H, W)`` int64 part labels of the sources, or None.
        label_set: name of the layouts' label set.
    """

    real: Tensor
    masks: Tensor | None = None
    target_keypoints: np.ndarray | None = None
    sources: Tensor | None = None
    source_keypoints: np.ndarray | None = None
    source_keys: Sequence[str | None] | None = None
    source_layouts: Tensor | None = None
    label_set: str = "lip20"


FloorImages = tuple[Tensor, Sequence[str | None] | None]


@dataclass(frozen=True)
class Floor:
    """A floor row: ``make(batch) -> (images uint8 (B, 3, H, W), feature-cache keys or None)``; ``needs``
    names the :class:`FloorBatch` inputs it uses (source, keypoints, source_keypoints, layouts)."""

    name: str
    description: str
    needs: frozenset[str]
    make: Callable[[FloorBatch], FloorImages]


def all_white(batch: FloorBatch) -> FloorImages:
    """Every pixel 255 (one cache key per size: its features are computed once)."""
    height, width = batch.real.shape[-2:]
    return torch.full_like(batch.real, 255), [f"white-{height}x{width}"] * len(batch.real)


def copy_source(batch: FloorBatch) -> FloorImages:
    """The source images unchanged."""
    assert batch.sources is not None
    return batch.sources, batch.source_keys


def mean_colour(batch: FloorBatch) -> FloorImages:
    """Pose-mask pixels: the target's mean colour over the mask; the others: its mean colour outside it."""
    assert batch.masks is not None
    real, inside = batch.real.double(), batch.masks.double()
    outside = 1.0 - inside

    def mean_over(weights: Tensor) -> Tensor:
        total = weights.sum(dim=(2, 3), keepdim=True)
        return (real * weights).sum(dim=(2, 3), keepdim=True) / total.clamp(min=1.0)

    image = inside * mean_over(inside) + outside * mean_over(outside)
    return image.round().clamp(0, 255).to(torch.uint8), None


def _warp_function() -> Callable | None:
    try:
        module = importlib.import_module(WARP_MODULE)
    except ImportError:
        return None
    return getattr(module, WARP_FUNCTION, None)


def part_affine_warp(batch: FloorBatch) -> FloorImages:
    """The source warped part by part to the target keypoints by the keypoint prior."""
    warp = _warp_function()
    assert warp is not None and batch.sources is not None and batch.source_layouts is not None
    assert batch.source_keypoints is not None and batch.target_keypoints is not None
    images = warp(batch.sources.float(), batch.source_layouts, torch.as_tensor(batch.source_keypoints).float(),
                  torch.as_tensor(batch.target_keypoints).float(), label_set=batch.label_set)
    return images.round().clamp(0, 255).to(torch.uint8), None


ALL_WHITE = Floor("all_white", "every pixel 255", frozenset(), all_white)
COPY_SOURCE = Floor("copy_source", "the source image unchanged (resized to the target size)",
                    frozenset({"source"}), copy_source)
MEAN_COLOUR = Floor("mean_colour", "target pose mask filled with the target's mean colour inside, mean colour "
                    "outside elsewhere", frozenset({"keypoints"}), mean_colour)
PART_AFFINE_WARP = Floor("part_affine_warp", "source warped part by part to the target keypoints (training-free "
                         "keypoint prior, body/keypoint_warp.py)",
                         frozenset({"source", "keypoints", "source_keypoints", "layouts"}), part_affine_warp)


def available_floors() -> tuple[tuple[Floor, ...], dict[str, str]]:
    """The floors this installation can make, and the reason for each one it cannot."""
    floors, missing = [ALL_WHITE, COPY_SOURCE, MEAN_COLOUR], {}
    if _warp_function() is not None:
        floors.append(PART_AFFINE_WARP)
    else:
        missing[PART_AFFINE_WARP.name] = f"{WARP_MODULE}.{WARP_FUNCTION} is not available in this version"
    return tuple(floors), missing
