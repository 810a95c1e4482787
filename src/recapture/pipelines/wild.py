"""Photo-frame geometry and compositing for the real-photo path (paper §4.5): the window that maps a
photo to the model frame, resampling both ways, and the feathered composite.
The stages that use them, in order, live in :mod:`recapture.pipelines.stages`.

Frames: the *photo* frame (full resolution) and the *model* frame (``model_size = (H, W)``, e.g.
256x176). A :class:`PersonCrop` maps one to the other: a box of the model's aspect ratio around the
person, ``model = (photo + 0.5 - box_start) * scale - 0.5`` per axis (pixel centres at integers;
the box's edges land exactly on the model frame's edges). The box may extend past the photo; those
pixels are filled with one constant colour (by default the median of the photo's border), never by
replicating edge pixels and never by squashing the photo to another aspect ratio.

Background inpainting (where the old person was) lives in :mod:`recapture.pipelines.inpainting`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
import cv2
import numpy as np

from recapture.body.keypoints import drop_outside, missing_mask
from recapture.pipelines.parsing import (FileLayoutParser, LayoutParser, ModelLayoutParser, PoseMaskLayoutParser,
                                         merge_to)
from recapture.pipelines.photo_io import WildPhotoError, read_photo
from recapture.pipelines.pose_estimation import PersonSegmenter, PoseEstimate, PoseEstimator, blazepose_to_coco18

__all__ = [
    "MIN_PERSON_HEIGHT", "WildPhotoError", "load_photo", "PersonCrop", "person_crop", "crop_to_model",
    "mask_to_model", "layout_to_model", "keypoints_to_model", "keypoints_to_photo", "model_to_photo",
    "layout_alpha", "border_colour", "composite", "check_photo",
    # re-exported so that one import serves the photo stages' models
    "PoseEstimate", "PoseEstimator", "PersonSegmenter", "blazepose_to_coco18", "LayoutParser",
    "FileLayoutParser", "ModelLayoutParser", "PoseMaskLayoutParser", "merge_to",
]

#: A person shorter than this (photo pixels, box of mask and keypoints) is refused.
MIN_PERSON_HEIGHT = 48


def load_photo(path: str | Path) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of an image file (see :func:`recapture.pipelines.photo_io.read_photo`)."""
    return read_photo(path).pixels


def check_photo(photo: np.ndarray) -> np.ndarray:
    photo = np.asarray(photo)
    if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8 or 0 in photo.shape:
        raise ValueError(f"photo must be a non-empty (H, W, 3) uint8 RGB array, got {photo.dtype} {photo.shape}")
    return photo


@dataclass(frozen=True)
class PersonCrop:
    """The model-frame window on a photo.

    box: ``(y0, x0, y1, x1)`` pixel-edge coordinates in the photo (pixel ``i`` spans ``[i, i + 1)``),
        of the model's aspect ratio; may extend outside the photo.
    scale: model pixels per photo pixel. model_size: ``(H, W)`` of the model frame.
    """

    box: tuple[float, float, float, float]
    scale: float
    model_size: tuple[int, int]

    def matrix(self) -> np.ndarray:
        """``(2, 3)`` affine taking photo ``(x, y)`` pixel centres to model ``(x, y)`` pixel centres."""
        s = self.scale
        y0, x0 = self.box[0], self.box[1]
        return np.array([[s, 0.0, (0.5 - x0) * s - 0.5], [0.0, s, (0.5 - y0) * s - 0.5]])


def _person_box(keypoints: np.ndarray, person_mask: np.ndarray | None,
                photo_size: tuple[int, int]) -> tuple[float, float, float, float] | None:
    """Pixel-edge box of the person: mask components meeting the keypoints' box (searched within half its
    size around it) plus the keypoints; the largest mask component without keypoints; None if nothing."""
    height, width = photo_size
    present = keypoints[~missing_mask(keypoints)]
    binary = None if person_mask is None else (np.asarray(person_mask) > 0.5).astype(np.uint8)
    if binary is not None and binary.shape != (height, width):
        raise ValueError(f"person mask {binary.shape} does not match the photo {(height, width)}")
    boxes = []
    if len(present):
        ky0, kx0 = present.min(axis=0)
        ky1, kx1 = present.max(axis=0) + 1
        boxes.append((ky0, kx0, ky1, kx1))
    if binary is not None and binary.any():
        _, components, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        if boxes:
            reach = 0.5 * max(ky1 - ky0, kx1 - kx0)
            wy0, wx0 = max(0, int(ky0 - reach)), max(0, int(kx0 - reach))
            wy1, wx1 = min(height, int(ky1 + reach) + 1), min(width, int(kx1 + reach) + 1)
            touching = np.unique(components[int(ky0):int(math.ceil(ky1)), int(kx0):int(math.ceil(kx1))])
            keep = np.zeros((height, width), dtype=bool)
            keep[wy0:wy1, wx0:wx1] = np.isin(components[wy0:wy1, wx0:wx1], touching[touching > 0])
        else:
            keep = components == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        ys, xs = np.nonzero(keep)
        if ys.size:
            boxes.append((ys.min(), xs.min(), ys.max() + 1, xs.max() + 1))
    if not boxes:
        return None
    array = np.array(boxes, dtype=np.float64)
    return (array[:, 0].min(), array[:, 1].min(), array[:, 2].max(), array[:, 3].max())


def person_crop(keypoints: np.ndarray, person_mask: np.ndarray | None, photo_size: tuple[int, int],
                model_size: tuple[int, int], margin: float = 0.1, include: np.ndarray | None = None,
                min_height: float = MIN_PERSON_HEIGHT) -> PersonCrop:
    """Box of the model's aspect ratio centred on the person, ``margin`` x person height on each side.

    include: optional ``(N, 2)`` y/x photo points (e.g. placed target joints; -1 rows ignored) the box
    must also hold. WildPhotoError when there is no person (no keypoint and an empty mask) or the person
    is shorter than ``min_height`` pixels.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.shape != (18, 2):
        raise ValueError(f"keypoints must be (18, 2), got {keypoints.shape}")
    person = _person_box(keypoints, person_mask, photo_size)
    if person is None:
        raise WildPhotoError("no person found in the photo (no keypoint and an empty person mask)")
    y0, x0, y1, x1 = person
    person_h = y1 - y0
    if person_h < min_height:
        raise WildPhotoError(f"the person is only {person_h:.0f} px tall (minimum {min_height:.0f}); "
                             f"use a larger photo or a closer shot")
    if include is not None and len(include):
        points = np.asarray(include, dtype=np.float64).reshape(-1, 2)
        points = points[~missing_mask(points)]
        if len(points):
            y0, x0 = min(y0, points[:, 0].min()), min(x0, points[:, 1].min())
            y1, x1 = max(y1, points[:, 0].max() + 1), max(x1, points[:, 1].max() + 1)
    aspect = model_size[0] / model_size[1]
    pad = margin * person_h
    box_h = max(y1 - y0 + 2 * pad, (x1 - x0 + 2 * pad) * aspect)
    box_w = box_h / aspect
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    box = (cy - box_h / 2, cx - box_w / 2, cy + box_h / 2, cx + box_w / 2)
    return PersonCrop(box=box, scale=model_size[0] / box_h, model_size=(int(model_size[0]), int(model_size[1])))


def _warp_to_model(array: np.ndarray, crop: PersonCrop, interpolation: int, border_mode: int,
                   antialias: bool, fill: float | tuple[float, ...] = 0) -> np.ndarray:
    """Sample the crop box of a photo-frame array into the model frame (only the box's pixels are read).

    When shrinking with ``antialias``, the box's pixels are first box-filtered (INTER_AREA) down to
    twice the model size, then Gaussian-blurred for what remains, then sampled.
    """
    height, width = array.shape[:2]
    pad = 2 + (int(math.ceil(1.5 / crop.scale)) if antialias and crop.scale < 1 else 0)
    y0, x0, y1, x1 = crop.box
    ry0, rx0 = min(max(0, int(y0) - pad), height - 1), min(max(0, int(x0) - pad), width - 1)
    ry1 = max(min(height, int(math.ceil(y1)) + pad), ry0 + 1)
    rx1 = max(min(width, int(math.ceil(x1)) + pad), rx0 + 1)
    region = np.ascontiguousarray(array[ry0:ry1, rx0:rx1])
    matrix = crop.matrix()
    matrix[:, 2] += matrix[:, :2] @ np.array([rx0, ry0], dtype=np.float64)
    scale = crop.scale
    if antialias and scale < 0.5:
        # new = (old + 0.5) * f - 0.5 per axis; compose its inverse into the affine.
        new_w, new_h = max(1, round(region.shape[1] * 2 * scale)), max(1, round(region.shape[0] * 2 * scale))
        factors = np.array([new_w / region.shape[1], new_h / region.shape[0]])
        region = cv2.resize(region, (new_w, new_h), interpolation=cv2.INTER_AREA)
        matrix = np.c_[matrix[:, :2] / factors, matrix[:, :2] @ (0.5 / factors - 0.5) + matrix[:, 2]]
        scale /= factors.mean()
    if antialias and scale < 1:
        region = cv2.GaussianBlur(region, (0, 0), (1.0 / scale - 1.0) / 2)
    out_h, out_w = crop.model_size
    return cv2.warpAffine(region, matrix, (out_w, out_h), flags=interpolation, borderMode=border_mode,
                          borderValue=fill)


def _outside_photo(crop: PersonCrop, photo_size: tuple[int, int]) -> np.ndarray:
    """``(h, w)`` bool: model pixels whose centre lies outside the photo."""
    out_h, out_w = crop.model_size
    ys = (np.arange(out_h) + 0.5) / crop.scale + crop.box[0]
    xs = (np.arange(out_w) + 0.5) / crop.scale + crop.box[1]
    return ((ys < 0) | (ys > photo_size[0]))[:, None] | ((xs < 0) | (xs > photo_size[1]))[None, :]


def border_colour(photo: np.ndarray) -> tuple[float, float, float]:
    """Median RGB of the photo's outermost rows and columns: the constant that pads a crop past its edges."""
    photo = check_photo(photo)
    ring = np.concatenate([photo[0], photo[-1], photo[:, 0], photo[:, -1]])
    return tuple(float(v) for v in np.median(ring, axis=0))  # type: ignore[return-value]


def crop_to_model(photo: np.ndarray, crop: PersonCrop, fill: tuple[float, float, float] | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8 model-frame image (anti-aliased when shrinking); outside the photo: ``fill``
    (default :func:`border_colour`), never replicated edge pixels."""
    photo = check_photo(photo)
    colour = border_colour(photo) if fill is None else fill
    image = _warp_to_model(photo, crop, cv2.INTER_LINEAR, cv2.BORDER_CONSTANT, antialias=True, fill=colour)
    outside = _outside_photo(crop, photo.shape[:2])
    image[outside] = np.round(colour).astype(np.uint8)
    return image


def mask_to_model(person_mask: np.ndarray, crop: PersonCrop) -> np.ndarray:
    """``(H, W)`` float32 model-frame person mask (0 outside the photo)."""
    mask = np.asarray(person_mask, dtype=np.float32)
    return _warp_to_model(mask, crop, cv2.INTER_LINEAR, cv2.BORDER_CONSTANT, antialias=True)


def layout_to_model(labels: np.ndarray, crop: PersonCrop) -> np.ndarray:
    """``(H, W)`` uint8 model-frame labels (nearest neighbour; background outside the photo)."""
    labels = np.asarray(labels, dtype=np.uint8)
    return _warp_to_model(labels, crop, cv2.INTER_NEAREST, cv2.BORDER_CONSTANT, antialias=False)


def keypoints_to_model(keypoints: np.ndarray, crop: PersonCrop) -> np.ndarray:
    """Photo-frame ``(18, 2)`` y/x -> model frame; missing joints and joints outside the frame become -1."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    s = crop.scale
    present = ~missing_mask(keypoints)
    out = np.full_like(keypoints, -1.0)
    out[present] = (keypoints[present] + 0.5 - np.array(crop.box[:2])) * s - 0.5
    return drop_outside(out, crop.model_size)


def keypoints_to_photo(keypoints: np.ndarray, crop: PersonCrop) -> np.ndarray:
    """Inverse of :func:`keypoints_to_model` (model-frame y/x -> photo pixels); missing joints stay -1."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    present = ~missing_mask(keypoints)
    out = np.full_like(keypoints, -1.0)
    out[present] = (keypoints[present] + 0.5) / crop.scale + np.array(crop.box[:2]) - 0.5
    return out


def _crop_region(crop: PersonCrop, photo_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Integer ``(y0, x0, y1, x1)`` photo pixels the crop box touches, clipped to the photo."""
    y0, x0, y1, x1 = crop.box
    return (max(0, int(math.floor(y0))), max(0, int(math.floor(x0))),
            min(photo_size[0], int(math.ceil(y1))), min(photo_size[1], int(math.ceil(x1))))


def model_to_photo(array: np.ndarray, crop: PersonCrop, photo_size: tuple[int, int],
                   border_mode: int = cv2.BORDER_REPLICATE,
                   within: tuple[int, int, int, int] | None = None) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Resample a model-frame array onto the photo pixels under the crop box (and ``within`` that region).

    Returns the array for the region ``(y0, x0, y1, x1)`` (clipped to the photo) and that region.
    """
    array = np.asarray(array)
    if array.shape[:2] != tuple(crop.model_size):
        raise ValueError(f"model-frame array is {array.shape[:2]}, expected {crop.model_size}")
    if crop.scale > 1:
        array = cv2.GaussianBlur(np.ascontiguousarray(array), (0, 0), (crop.scale - 1.0) / 2)
    ry0, rx0, ry1, rx1 = _crop_region(crop, photo_size)
    if within is not None:
        ry0, rx0, ry1, rx1 = max(ry0, within[0]), max(rx0, within[1]), min(ry1, within[2]), min(rx1, within[3])
        ry1, rx1 = max(ry0, ry1), max(rx0, rx1)
    matrix = crop.matrix()
    matrix[:, 2] += matrix[:, :2] @ np.array([rx0, ry0], dtype=np.float64)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    region = cv2.warpAffine(np.ascontiguousarray(array), matrix, (max(rx1 - rx0, 0), max(ry1 - ry0, 0)),
                            flags=flags, borderMode=border_mode, borderValue=0)
    return region, (ry0, rx0, ry1, rx1)


def layout_alpha(layout: np.ndarray) -> np.ndarray:
    """``(H, W)`` float32 alpha of a generated layout: 1 on every non-background label."""
    return (np.asarray(layout) != 0).astype(np.float32)


def composite(background: np.ndarray, generated_rgb: np.ndarray, generated_alpha: np.ndarray, crop: PersonCrop,
              feather_px: float | None = None) -> np.ndarray:
    """Paste a model-frame person onto the full-resolution ``background`` (``(H, W, 3)`` uint8).

    generated_rgb: ``(h, w, 3)`` uint8 and generated_alpha: ``(h, w)`` in [0, 1], both of
    ``crop.model_size`` (alpha typically :func:`layout_alpha` of the generated layout). The alpha is
    feathered with a Gaussian of ``feather_px`` photo pixels (default 0.5% of the box height, at
    least 1), applied in the model frame before upsampling. Pixels outside the crop box, and inside it
    where the alpha is 0, are left unchanged; only the bounding box of non-zero alpha is blended.
    """
    background = check_photo(background)
    generated_rgb = np.asarray(generated_rgb)
    alpha = np.asarray(generated_alpha, dtype=np.float32)
    if generated_rgb.shape != (*crop.model_size, 3) or generated_rgb.dtype != np.uint8:
        raise ValueError(f"generated_rgb must be {(*crop.model_size, 3)} uint8, got {generated_rgb.dtype} "
                         f"{generated_rgb.shape}")
    if alpha.shape != tuple(crop.model_size) or not np.isfinite(alpha).all() or alpha.min() < 0 or alpha.max() > 1:
        raise ValueError(f"generated_alpha must be {tuple(crop.model_size)} with values in [0, 1]")
    feather = max(1.0, 0.005 * (crop.box[2] - crop.box[0])) if feather_px is None else float(feather_px)
    if feather * crop.scale > 0.05:  # feathering happens in the model frame, where it is cheap
        alpha = cv2.GaussianBlur(alpha, (0, 0), feather * crop.scale, borderType=cv2.BORDER_CONSTANT)
    out = background.copy()
    rows, cols = np.nonzero(alpha.any(axis=1))[0], np.nonzero(alpha.any(axis=0))[0]
    if rows.size == 0:
        return out
    # Photo pixels whose bilinear sample can reach a non-zero model pixel (one pixel of slack).
    to_photo = lambda m, start: (m + 0.5) / crop.scale + start - 0.5  # noqa: E731
    within = (math.floor(to_photo(rows[0] - 1, crop.box[0])) - 1, math.floor(to_photo(cols[0] - 1, crop.box[1])) - 1,
              math.ceil(to_photo(rows[-1] + 1, crop.box[0])) + 2, math.ceil(to_photo(cols[-1] + 1, crop.box[1])) + 2)
    rgb, (y0, x0, y1, x1) = model_to_photo(generated_rgb, crop, background.shape[:2], within=within)
    weight, _ = model_to_photo(alpha, crop, background.shape[:2], border_mode=cv2.BORDER_CONSTANT, within=within)
    target = out[y0:y1, x0:x1]
    share = np.clip(weight, 0.0, 1.0)[..., None]
    blended = target + share * (rgb.astype(np.float32) - target)
    out[y0:y1, x0:x1] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out
