"""Self-supervised real pairs from CCP photos: the photo deformed part by part is the source, the photo
itself the target, and where every target pixel sits in the source is known exactly.

The deformation (:func:`make_pair`), all at the output size:

1. limbs rotated about their joints along the kinematic chain (shoulder -> elbow -> wrist, hip -> knee ->
   ankle) and the head about the neck; the body is re-drawn with the part-by-part backward warp of
   :mod:`recapture.body.keypoint_warp` (depth order: limbs in front of the torso as the new pose implies);
2. a global similarity (scale, shift, small rotation) and a smooth random thin-plate-like displacement field.

Half the pairs are mirrored as a whole first (photo, left/right parts and joints swapped): a mirror between
source and target would ask for a reflection no part-wise map of a real pose change makes.

The target is the untouched photo. The truth correspondence is the composed backward map (source pixel ->
photo pixel) splatted onto the target grid at the internal size: ``flow`` (where each target pixel lies in
the source, ``grid_sample`` x/y with ``align_corners=True``) and ``visible`` (some source pixel shows it;
the torso a moved arm now hides, for instance, is not visible). Reversed pairs (``reverse``) take the photo as
the source and the deformed photo as the target: the truth is then the backward map itself. With the parser's
layout of the photo given (``parsed``), the source layout is that layout carried through the same deformation.

Photos 0905-1004 (:data:`recapture.data.ccp.HELD_OUT_IDS`) are the held-out set: :func:`training_ids`
never returns them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import scipy.ndimage
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from recapture.body.keypoints import flip_keypoints, missing_mask
from recapture.body.parts import LIP20
from recapture.data.ccp import HELD_OUT_IDS, IGNORE, CcpDataset, split_ids
from recapture.data.formats import read_annotations
from recapture.fileio import atomic_path
from recapture.body.keypoint_warp import part_warp, warp_image

#: Kinematic chains (joint, child joints moved with it) and the maximum rotation in degrees.
_CHAINS = (((2, 3), (3, 4), 55.0, 45.0), ((5, 6), (6, 7), 55.0, 45.0),
           ((8, 9), (9, 10), 18.0, 25.0), ((11, 12), (12, 13), 18.0, 25.0))
_HEAD = (0, 14, 15, 16, 17)
_NECK = 1


def training_ids(validation: int = 60, seed: int = 0) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(training, validation)`` photo ids from 0001-0904 (never the held-out 0905-1004)."""
    train, valid = split_ids(validation, seed)
    assert not set(train + valid) & set(HELD_OUT_IDS)
    return train, valid


@dataclass(frozen=True)
class CcpPhotos:
    """Labelled CCP photos fitted to one size: ``images (N, H, W, 3)`` uint8, ``labels (N, H, W)`` uint8 LIP-20
    (CCP classes with no LIP-20 part take the nearest labelled pixel's part), ``keypoints (N, 18, 2)``
    float y/x (-1 missing), ``ids (N,)``."""

    images: np.ndarray
    labels: np.ndarray
    keypoints: np.ndarray
    ids: np.ndarray

    def save(self, path: str | Path) -> None:
        """Write an ``.npz`` atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as temporary:
            np.savez(temporary, images=self.images, labels=self.labels, keypoints=self.keypoints, ids=self.ids)

    @staticmethod
    def load(path: str | Path) -> CcpPhotos:
        with np.load(path) as data:
            return CcpPhotos(images=data["images"], labels=data["labels"], keypoints=data["keypoints"],
                             ids=data["ids"])


def fill_ignored(labels: np.ndarray) -> np.ndarray:
    """Replace :data:`IGNORE` pixels by the label of the nearest non-ignored pixel."""
    ignored = labels == IGNORE
    if not ignored.any() or ignored.all():
        return np.where(ignored, 0, labels).astype(np.uint8)
    _, (rows, cols) = scipy.ndimage.distance_transform_edt(ignored, return_indices=True)
    return labels[rows, cols].astype(np.uint8)


def fit_photo(image: np.ndarray, labels: np.ndarray, keypoints: np.ndarray, size: tuple[int, int]
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale a photo to the output height and centre-crop (or edge-pad) its width: image, labels, keypoints."""
    height, width = size
    scale = height / image.shape[0]
    new_width = max(1, round(image.shape[1] * scale))
    picture = np.asarray(Image.fromarray(image).resize((new_width, height), Image.BICUBIC))
    layout = np.asarray(Image.fromarray(labels).resize((new_width, height), Image.NEAREST))
    left = (new_width - width) // 2
    if left >= 0:
        picture, layout = picture[:, left:left + width], layout[:, left:left + width]
    else:
        pad = ((0, 0), (-left, width - new_width + left))
        picture = np.pad(picture, pad + ((0, 0),), mode="edge")
        layout = np.pad(layout, pad, mode="edge")
    points = np.asarray(keypoints, dtype=np.float64).copy()
    present = ~missing_mask(points)
    points[present, 0] = (points[present, 0] + 0.5) * scale - 0.5
    points[present, 1] = (points[present, 1] + 0.5) * scale - 0.5 - left
    outside = present & ((points[:, 1] < 0) | (points[:, 1] > width - 1))
    points[outside] = -1.0
    return picture, layout, points


def build_photos(root: str | Path, ids: tuple[int, ...], keypoints_csv: str | Path,
                 size: tuple[int, int]) -> CcpPhotos:
    """Read, map to LIP-20 and fit the labelled photos ``ids`` (0001-1004)."""
    dataset = CcpDataset(Path(root), tuple(ids))
    table = read_annotations(keypoints_csv)
    images, layouts, points = [], [], []
    for photo_id in ids:
        keypoints = table.get(dataset.photo_name(photo_id)).astype(np.float64)
        labels = fill_ignored(dataset.lip20_labels(photo_id, keypoints))
        image, layout, fitted = fit_photo(dataset.photo(photo_id), labels, keypoints, size)
        images.append(image)
        layouts.append(layout)
        points.append(fitted)
    return CcpPhotos(images=np.stack(images), labels=np.stack(layouts), keypoints=np.stack(points),
                     ids=np.asarray(ids, dtype=np.int64))


@dataclass(frozen=True)
class CcpPair:
    """One self-supervised pair at the output size ``(H, W)``; the truth at the internal size ``(h, w)``."""

    source_image: Tensor  # (3, H, W) in [-1, 1]: the deformed photo
    target_image: Tensor  # (3, H, W) in [-1, 1]: the photo
    source_labels: Tensor  # (H, W) long LIP-20
    target_labels: Tensor  # (H, W) long LIP-20
    source_keypoints: np.ndarray  # (18, 2) y/x at the output size, -1 missing
    target_keypoints: np.ndarray  # (18, 2)
    flow: Tensor  # (h, w, 2) grid x/y in the source of each target pixel (valid where visible)
    visible: Tensor  # (h, w) float: 1 where the source shows the target pixel
    flow_known: bool = True  # False: no dense correspondence truth (SynthHumans pairs: visibility from parts)


def _rotate(points: np.ndarray, centre: np.ndarray, degrees: float) -> np.ndarray:
    angle = np.deg2rad(degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (points - centre) @ rotation.T + centre


def pose_change(keypoints: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Rotate limbs about their joints along the kinematic chain and the head about the neck."""
    out = np.asarray(keypoints, dtype=np.float64).copy()
    present = ~missing_mask(out)
    for (root, child), (mid, end), upper, lower in _CHAINS:
        if present[root] and present[child]:
            moved = [j for j in (child, mid, end) if present[j]]
            out[moved] = _rotate(out[moved], out[root], strength * rng.uniform(-upper, upper))
        if present[mid] and present[end]:
            out[end] = _rotate(out[end][None], out[mid], strength * rng.uniform(-lower, lower))[0]
    head = [j for j in _HEAD if present[j]]
    if present[_NECK] and head:
        out[head] = _rotate(out[head], out[_NECK], strength * rng.uniform(-12.0, 12.0))
    return np.where(present[:, None], out, -1.0)


def _global_map(size: tuple[int, int], rng: np.random.Generator, strength: float) -> tuple[Tensor, np.ndarray, Tensor]:
    """Backward pixel map source -> deformed frame ``(H, W, 2)`` y/x: similarity plus smooth displacement.
    Returns the map, the similarity ``(2, 3)`` and the displacement field ``(2, H, W)``."""
    height, width = size
    scale = np.exp(strength * rng.uniform(-0.12, 0.12))
    angle = np.deg2rad(strength * rng.uniform(-5.0, 5.0))
    shift = strength * rng.uniform(-0.06, 0.06, size=2) * np.array([height, width])
    centre = np.array([(height - 1) / 2, (width - 1) / 2])
    linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    similarity = np.concatenate([linear, (centre + shift - linear @ centre)[:, None]], axis=1)
    coarse = torch.as_tensor(rng.normal(0.0, 1.0, size=(1, 2, 4, 3)), dtype=torch.float32)
    field = F.interpolate(coarse, size=size, mode="bicubic", align_corners=True)[0] * (0.012 * height * strength)
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    points = torch.stack([ys, xs, torch.ones_like(ys)], dim=-1)
    mapped = points @ torch.as_tensor(similarity, dtype=torch.float32).T + field.permute(1, 2, 0)
    return mapped, similarity, field


def _sample(image: Tensor, coords: Tensor, mode: str) -> Tensor:
    """Sample ``(C, H, W)`` at ``(h, w, 2)`` pixel y/x (align_corners=True)."""
    size = image.shape[-2:]
    grid = torch.stack([coords[..., 1] * (2.0 / max(size[1] - 1, 1)) - 1.0,
                        coords[..., 0] * (2.0 / max(size[0] - 1, 1)) - 1.0], dim=-1)
    return F.grid_sample(image[None].float(), grid[None], mode=mode, padding_mode="border", align_corners=True)[0]


def _invert_points(points: np.ndarray, similarity: np.ndarray, field: Tensor) -> np.ndarray:
    """Source-frame positions of deformed-frame keypoints under the global map (fixed-point iteration)."""
    present = ~missing_mask(points)
    out = np.full_like(points, -1.0)
    linear_inverse = np.linalg.inv(similarity[:, :2])
    for joint in np.flatnonzero(present):
        guess = linear_inverse @ (points[joint] - similarity[:, 2])
        for _ in range(6):
            shift = _sample(field, torch.as_tensor(guess[None, None], dtype=torch.float32), "bilinear")[:, 0, 0]
            guess = linear_inverse @ (points[joint] - shift.numpy() - similarity[:, 2])
        out[joint] = guess
    return out


def _splat(source_to_target: Tensor, valid: Tensor, internal: tuple[int, int], output: tuple[int, int]
           ) -> tuple[Tensor, Tensor]:
    """Invert a backward map: every valid source pixel votes for the target cell it came from."""
    height, width = output
    rows, cols = internal
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    grid = torch.stack([xs * (2.0 / (width - 1)) - 1.0, ys * (2.0 / (height - 1)) - 1.0], dim=-1)
    ty = torch.round(source_to_target[..., 0] * ((rows - 1) / (height - 1))).long()
    tx = torch.round(source_to_target[..., 1] * ((cols - 1) / (width - 1))).long()
    keep = valid & (ty >= 0) & (ty < rows) & (tx >= 0) & (tx < cols)
    cell = (ty * cols + tx)[keep]
    total = torch.zeros(rows * cols, 2).index_add_(0, cell, grid[keep])
    count = torch.zeros(rows * cols).index_add_(0, cell, torch.ones_like(cell, dtype=torch.float32))
    flow = total / count.clamp_min(1.0)[:, None]
    return flow.reshape(rows, cols, 2), (count > 0).float().reshape(rows, cols)


def _inpaint(image: Tensor, holes: Tensor) -> Tensor:
    """Fill ``holes`` ``(H, W)`` of a ``(3, H, W)`` [-1, 1] image from their surroundings (OpenCV Telea)."""
    if not holes.any():
        return image
    pixels = ((image.permute(1, 2, 0).numpy() + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
    filled = cv2.inpaint(pixels, holes.numpy().astype(np.uint8), 5, cv2.INPAINT_TELEA)
    return torch.as_tensor(filled).permute(2, 0, 1).float() / 127.5 - 1.0


def _at_cells(values: Tensor, internal: tuple[int, int]) -> Tensor:
    """``(H, W, C)`` values at the ``(h, w)`` cells of the internal grid (nearest, align_corners=True)."""
    height, width = values.shape[:2]
    rows = torch.round(torch.linspace(0, height - 1, internal[0])).long()
    cols = torch.round(torch.linspace(0, width - 1, internal[1])).long()
    return values[rows][:, cols]


def make_pair(image: np.ndarray, labels: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator,
              internal_size: tuple[int, int], strength: float = 1.0, parsed: np.ndarray | None = None,
              reverse: bool = False, still_camera: bool = False) -> CcpPair:
    """A self-supervised pair from one fitted photo (see the module doc).

    ``parsed``: the parser's ``(H, W)`` layout of the photo; the source layout is then that layout carried
    through the same deformation (inpainted holes background) instead of the ground truth, as the network
    gets a parsed layout at test time. ``reverse``: the photo is the source and the deformed photo the
    target (the truth is the backward map itself; inpainted or out-of-frame target pixels are invisible).
    ``still_camera``: no global map (the background stays in place; the same random draws, so the same pose
    change as without it) - validation pairs for a fixed camera."""
    size = labels.shape
    if rng.random() < 0.5:
        image, labels = image[:, ::-1], np.asarray(LIP20.flip_labels(labels[:, ::-1]))
        keypoints = flip_keypoints(keypoints, size[1])
        parsed = None if parsed is None else np.asarray(LIP20.flip_labels(parsed[:, ::-1]))
    target = torch.as_tensor(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 127.5 - 1.0
    target_labels = torch.as_tensor(np.ascontiguousarray(labels).astype(np.int64))
    moved = pose_change(keypoints, rng, strength)
    warp = part_warp(target_labels[None], keypoints[None], moved[None], LIP20)
    deformed = warp_image(target[None], target_labels[None], keypoints[None], moved[None], LIP20, warp=warp)[0]
    covered = warp.segment[0] >= 0
    person = F.max_pool2d((target_labels > 0).float()[None, None], 5, stride=1, padding=2)[0, 0] > 0
    background = ~person & ~covered
    deformed = _inpaint(deformed, ~covered & person)
    ys, xs = torch.meshgrid(torch.arange(size[0], dtype=torch.float32), torch.arange(size[1], dtype=torch.float32),
                            indexing="ij")
    to_photo = torch.where(covered[..., None], warp.source_coords[0], torch.stack([ys, xs], dim=-1))
    to_photo_valid = (covered | background).float()
    mapped, similarity, field = _global_map(size, rng, 0.0 if still_camera else strength)
    source_image = _sample(deformed, mapped, "bilinear")
    source_labels = _sample(warp.labels[0][None].float(), mapped, "nearest")[0].round().long()
    source_to_photo = _sample(to_photo.permute(2, 0, 1), mapped, "nearest").permute(1, 2, 0)
    inside = (mapped[..., 0] >= 0) & (mapped[..., 0] <= size[0] - 1) & (mapped[..., 1] >= 0) & \
        (mapped[..., 1] <= size[1] - 1)
    valid = (_sample(to_photo_valid[None], mapped, "nearest")[0] > 0.5) & inside
    source_keypoints = _invert_points(moved, similarity, field)
    photo_labels = target_labels
    if parsed is not None:
        photo_labels = torch.as_tensor(np.ascontiguousarray(parsed).astype(np.int64))
        carried = _sample(photo_labels[None].float(), to_photo, "nearest")[0].round().long()
        carried = torch.where(~covered & person, 0, carried)
        source_labels = _sample(carried[None].float(), mapped, "nearest")[0].round().long()
    if reverse:
        scale = torch.tensor([2.0 / (size[1] - 1), 2.0 / (size[0] - 1)])
        flow = _at_cells(source_to_photo.flip(-1), internal_size) * scale - 1.0
        visible = _at_cells(valid[..., None].float(), internal_size)[..., 0]
        return CcpPair(source_image=target, target_image=source_image.clamp(-1.0, 1.0), source_labels=photo_labels,
                       target_labels=_sample(warp.labels[0][None].float(), mapped, "nearest")[0].round().long(),
                       source_keypoints=np.asarray(keypoints, dtype=np.float64), target_keypoints=source_keypoints,
                       flow=flow, visible=visible)
    flow, visible = _splat(source_to_photo, valid, internal_size, size)
    return CcpPair(source_image=source_image.clamp(-1.0, 1.0), target_image=target, source_labels=source_labels,
                   target_labels=target_labels, source_keypoints=source_keypoints,
                   target_keypoints=np.asarray(keypoints, dtype=np.float64), flow=flow, visible=visible)
