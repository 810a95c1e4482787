"""COCO-18 / OpenPose keypoints: order, limbs, left/right swap, heatmaps and the PG2 pose mask.

Keypoints are ``(18, 2)`` arrays of integer or float ``(y, x)`` pixel coordinates; ``-1`` in either
coordinate marks a missing joint. Heatmaps are ``(18, H, W)`` float tensors of zeros and ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where it is used: the ONNX photo path never loads it
    import torch

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "neck",
    "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle",
    "left_eye", "right_eye", "left_ear", "right_ear",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
KEYPOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

#: Bones of the OpenPose COCO-18 skeleton as index pairs.
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7),
    (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
    (1, 0), (0, 15), (15, 17), (0, 14), (14, 16), (8, 11),
)


def _swap_permutation(names: tuple[str, ...]) -> tuple[int, ...]:
    index = {n: i for i, n in enumerate(names)}
    perm = []
    for name in names:
        if name.startswith("left_"):
            perm.append(index["right_" + name[5:]])
        elif name.startswith("right_"):
            perm.append(index["left_" + name[6:]])
        else:
            perm.append(index[name])
    return tuple(perm)


#: ``FLIP_PERMUTATION[i]`` is the joint that joint ``i`` becomes after a horizontal mirror.
FLIP_PERMUTATION: tuple[int, ...] = _swap_permutation(KEYPOINT_NAMES)

#: Disk radius of a heatmap at 256 px image height (paper §3.1); scaled with the height.
HEATMAP_RADIUS_AT_256 = 4.0


@dataclass(frozen=True)
class Pose:
    """Keypoints and the frame they live in (a photo's, a dataset's or the model's)."""

    keypoints: np.ndarray  # (18, 2) float y/x, -1 missing
    frame: tuple[int, int]  # (H, W) of the image the keypoints refer to
    source: str  # where it came from (for reports)


def missing_mask(keypoints: np.ndarray) -> np.ndarray:
    """``(18,)`` bool: True where a joint is missing (either coordinate is -1)."""
    keypoints = np.asarray(keypoints)
    return (keypoints[..., 0] == -1) | (keypoints[..., 1] == -1)


def drop_outside(keypoints: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(18, 2)`` y/x with the joints outside a ``size`` = (H, W) frame (pixel centres 0 .. H-1, 0 .. W-1) made
    missing (-1); missing joints stay missing."""
    out = np.asarray(keypoints, dtype=np.float64).copy()
    limit = np.array(size, dtype=np.float64) - 1
    inside = ((out >= 0) & (out <= limit)).all(axis=1)
    out[~(~missing_mask(out) & inside)] = -1.0
    return out


def flip_keypoints(keypoints: np.ndarray, width: int) -> np.ndarray:
    """Mirror keypoints horizontally in an image of ``width`` pixels and swap left/right joints.

    Missing joints stay -1. ``x -> width - 1 - x`` so that flipping twice is the identity.
    """
    keypoints = np.asarray(keypoints)
    out = keypoints.copy()
    present = ~missing_mask(keypoints)
    out[present, 1] = (width - 1) - keypoints[present, 1]
    return out[list(FLIP_PERMUTATION)]


def scale_keypoints(keypoints: np.ndarray, scale_y: float, scale_x: float,
                    offset_y: float = 0.0, offset_x: float = 0.0) -> np.ndarray:
    """Affinely map present keypoints ``(y*sy + oy, x*sx + ox)``; missing ones stay -1 (float array)."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    out = np.full_like(keypoints, -1.0)
    present = ~missing_mask(keypoints)
    out[present, 0] = keypoints[present, 0] * scale_y + offset_y
    out[present, 1] = keypoints[present, 1] * scale_x + offset_x
    return out


def heatmap_radius(height: int) -> float:
    """Disk radius in pixels for an image ``height`` pixels tall (4 px at 256)."""
    return HEATMAP_RADIUS_AT_256 * height / 256.0


def keypoints_to_heatmaps(keypoints: np.ndarray | torch.Tensor, size: tuple[int, int],
                          radius: float | None = None) -> torch.Tensor:
    """Binary disk heatmaps.

    Args:
        keypoints: ``(18, 2)`` or ``(B, 18, 2)`` y/x coordinates, -1 missing.
        size: ``(H, W)`` of the heatmaps.
        radius: disk radius in pixels; default scales 4 px at 256 px height.

    Returns:
        ``(18, H, W)`` or ``(B, 18, H, W)`` float32 tensor; 1 where the pixel centre lies within
        ``radius`` of a present joint, all-zero channels for missing joints.
    """
    import torch

    kp = torch.as_tensor(np.asarray(keypoints) if not isinstance(keypoints, torch.Tensor) else keypoints,
                         dtype=torch.float32)
    batched = kp.dim() == 3
    if not batched:
        kp = kp.unsqueeze(0)
    if kp.shape[-2:] != (NUM_KEYPOINTS, 2):
        raise ValueError(f"keypoints must have shape (18, 2) or (B, 18, 2), got {tuple(kp.shape)}")
    height, width = size
    r = heatmap_radius(height) if radius is None else float(radius)
    ys = torch.arange(height, dtype=torch.float32).view(1, 1, height, 1)
    xs = torch.arange(width, dtype=torch.float32).view(1, 1, 1, width)
    ky = kp[..., 0].unsqueeze(-1).unsqueeze(-1)
    kx = kp[..., 1].unsqueeze(-1).unsqueeze(-1)
    present = ((kp[..., 0] != -1) & (kp[..., 1] != -1)).unsqueeze(-1).unsqueeze(-1)
    inside = (ys - ky) ** 2 + (xs - kx) ** 2 <= r * r
    heat = (inside & present).float()
    return heat if batched else heat[0]


def heatmaps_to_keypoints(heatmaps: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`keypoints_to_heatmaps`: ``(18, H, W)`` -> ``(18, 2)`` int centroids, -1 if empty."""
    import torch

    channels, height, width = heatmaps.shape
    out = np.full((channels, 2), -1, dtype=np.int64)
    ys = torch.arange(height, dtype=torch.float32).view(height, 1)
    xs = torch.arange(width, dtype=torch.float32).view(1, width)
    mass = heatmaps.float().sum(dim=(1, 2))
    for c in range(channels):
        if mass[c] > 0:
            out[c, 0] = int(round(float((heatmaps[c] * ys).sum() / mass[c])))
            out[c, 1] = int(round(float((heatmaps[c] * xs).sum() / mass[c])))
    return out


def _segment_distance2(ys: torch.Tensor, xs: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared distance from every pixel to each segment ``a[k]-b[k]``: ``(K, H, W)``."""
    ay, ax = a[:, 0].view(-1, 1, 1), a[:, 1].view(-1, 1, 1)
    by, bx = b[:, 0].view(-1, 1, 1), b[:, 1].view(-1, 1, 1)
    dy, dx = by - ay, bx - ax
    length2 = (dy * dy + dx * dx).clamp_min(1e-8)
    t = (((ys - ay) * dy + (xs - ax) * dx) / length2).clamp(0.0, 1.0)
    py, px = ay + t * dy, ax + t * dx
    return (ys - py) ** 2 + (xs - px) ** 2


def pose_mask(keypoints: np.ndarray, size: tuple[int, int], limb_radius: float | None = None,
              closing: int | None = None, limbs: tuple[tuple[int, int], ...] = LIMBS) -> torch.Tensor:
    """PG2-style foreground mask from keypoints: thick limbs and joint disks, then morphological closing.

    Args:
        keypoints: ``(18, 2)`` y/x, -1 missing.
        size: ``(H, W)``.
        limb_radius: half-thickness of limbs in pixels (default: height / 25).
        closing: side of the square closing element in pixels (default: height / 20, odd).
        limbs: joint index pairs drawn as thick segments (default: the skeleton's :data:`LIMBS`).

    Returns:
        ``(H, W)`` float32 tensor of zeros and ones (all zeros when fewer than one joint is present).
    """
    import torch
    import torch.nn.functional as F

    height, width = size
    kp = torch.as_tensor(np.asarray(keypoints, dtype=np.float32))
    present = (kp[:, 0] != -1) & (kp[:, 1] != -1)
    radius = height / 25.0 if limb_radius is None else float(limb_radius)
    ys = torch.arange(height, dtype=torch.float32).view(1, height, 1)
    xs = torch.arange(width, dtype=torch.float32).view(1, 1, width)
    mask = torch.zeros(height, width, dtype=torch.bool)
    drawn = [(a, b) for a, b in limbs if present[a] and present[b]]
    if drawn:
        idx_a = torch.tensor([a for a, _ in drawn])
        idx_b = torch.tensor([b for _, b in drawn])
        mask |= (_segment_distance2(ys, xs, kp[idx_a], kp[idx_b]) <= radius * radius).any(dim=0)
    joints = kp[present]
    if len(joints):
        d2 = (ys - joints[:, 0].view(-1, 1, 1)) ** 2 + (xs - joints[:, 1].view(-1, 1, 1)) ** 2
        mask |= (d2 <= radius * radius).any(dim=0)
    side = int(round(height / 20.0)) if closing is None else int(closing)
    side = max(1, side | 1)
    pad = side // 2

    def dilate(x: torch.Tensor) -> torch.Tensor:  # square max filter as a row then a column pass
        x = F.max_pool2d(x, (1, side), stride=1, padding=(0, pad))
        return F.max_pool2d(x, (side, 1), stride=1, padding=(pad, 0))

    dilated = dilate(mask.float().view(1, 1, height, width))
    closed = 1.0 - dilate(1.0 - dilated)
    return closed[0, 0]
