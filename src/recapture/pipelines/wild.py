"""In-the-wild portraits (paper §4.5): load a photo, find the person, crop it to the model's frame,
parse it, fill the background where the person was and paste a generated person back.

Frames: the *photo* frame (full resolution) and the *model* frame (``model_size = (H, W)``, e.g.
256x176). A :class:`PersonCrop` maps one to the other: a box of the model's aspect ratio around the
person, ``model = (photo + 0.5 - box_start) * scale - 0.5`` per axis (pixel centres at integers;
the box's edges land exactly on the model frame's edges). The box may extend past the photo; those
pixels are filled by replicating the photo's border.

The paper inpaints the background with a learned model [41]; here OpenCV's classical Telea / Navier-
Stokes inpainting stands in (no weights, nothing to download) - smooth, but blurry for large holes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from recapture.body.keypoints import missing_mask
from recapture.body.parts import LIP20, LabelSet, get_label_set
from recapture.pipelines.parsing import (FileLayoutParser, LayoutParser, ModelLayoutParser, PoseMaskLayoutParser,
                                         merge_to)
from recapture.pipelines.pose_estimation import PersonSegmenter, PoseEstimate, PoseEstimator, blazepose_to_coco18

__all__ = [
    "MIN_PERSON_HEIGHT", "WildPhotoError", "load_photo", "PersonCrop", "person_crop", "crop_to_model",
    "mask_to_model", "layout_to_model", "keypoints_to_model", "keypoints_to_photo", "model_to_photo",
    "layout_alpha", "inpaint_background", "composite", "WildInput", "prepare_wild_input",
    # re-exported so that one import serves the whole in-the-wild pipeline
    "PoseEstimate", "PoseEstimator", "PersonSegmenter", "blazepose_to_coco18", "LayoutParser",
    "FileLayoutParser", "ModelLayoutParser", "PoseMaskLayoutParser", "merge_to",
]

#: A person shorter than this (photo pixels, box of mask and keypoints) is refused.
MIN_PERSON_HEIGHT = 48


class WildPhotoError(ValueError):
    """A photo that cannot be used: unreadable, no person, person too small."""


def load_photo(path: str | Path) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of an image file, EXIF orientation applied.

    Transparent images are composited on white; grayscale, palette, CMYK and 16-bit images become
    RGB. A missing, unreadable or truncated file raises :class:`WildPhotoError` naming it.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
    except FileNotFoundError:
        raise WildPhotoError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise WildPhotoError(f"{path}: cannot read the photo ({error})") from None
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        depth = 65535.0 if image.mode.startswith("I;16") else max(1.0, float(np.asarray(image).max()))
        image = Image.fromarray(np.round(np.asarray(image, np.float64) / depth * 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def _check_photo(photo: np.ndarray) -> np.ndarray:
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
                model_size: tuple[int, int], margin: float = 0.1) -> PersonCrop:
    """Box of the model's aspect ratio centred on the person, ``margin`` x person height on each side.

    WildPhotoError when there is no person (no keypoint and an empty mask) or the person is shorter
    than ``MIN_PERSON_HEIGHT`` pixels.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.shape != (18, 2):
        raise ValueError(f"keypoints must be (18, 2), got {keypoints.shape}")
    person = _person_box(keypoints, person_mask, photo_size)
    if person is None:
        raise WildPhotoError("no person found in the photo (no keypoint and an empty person mask)")
    y0, x0, y1, x1 = person
    person_h = y1 - y0
    if person_h < MIN_PERSON_HEIGHT:
        raise WildPhotoError(f"the person is only {person_h:.0f} px tall (minimum {MIN_PERSON_HEIGHT}); "
                             f"use a larger photo or a closer shot")
    aspect = model_size[0] / model_size[1]
    pad = margin * person_h
    box_h = max(person_h + 2 * pad, (x1 - x0 + 2 * pad) * aspect)
    box_w = box_h / aspect
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    box = (cy - box_h / 2, cx - box_w / 2, cy + box_h / 2, cx + box_w / 2)
    return PersonCrop(box=box, scale=model_size[0] / box_h, model_size=(int(model_size[0]), int(model_size[1])))


def _warp_to_model(array: np.ndarray, crop: PersonCrop, interpolation: int, border_mode: int,
                   antialias: bool) -> np.ndarray:
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
    return cv2.warpAffine(region, matrix, (out_w, out_h), flags=interpolation, borderMode=border_mode, borderValue=0)


def crop_to_model(photo: np.ndarray, crop: PersonCrop) -> np.ndarray:
    """``(H, W, 3)`` uint8 model-frame image (anti-aliased when shrinking, photo border replicated)."""
    return _warp_to_model(_check_photo(photo), crop, cv2.INTER_LINEAR, cv2.BORDER_REPLICATE, antialias=True)


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
    limit = np.array(crop.model_size, dtype=np.float64) - 1
    inside = ((out >= 0) & (out <= limit)).all(axis=1)
    out[~(present & inside)] = -1.0
    return out


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


def inpaint_background(photo: np.ndarray, person_mask: np.ndarray, method: str = "telea",
                       dilate_px: int | None = None, radius: int | None = None, max_side: int = 1024) -> np.ndarray:
    """Fill where the person was (mask > 0.5, dilated by ``dilate_px``, default 1% of the longer side).

    OpenCV ``cv2.inpaint`` (``"telea"`` or ``"ns"``) runs on a copy shrunk to ``max_side`` pixels at
    most; the hole is dilated at that size (so by about one working pixel more) and the fill is
    upsampled back. Only hole pixels change. Returns ``(H, W, 3)`` uint8.
    """
    photo = _check_photo(photo)
    flags = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
    if method not in flags:
        raise ValueError(f"method must be 'telea' or 'ns', got {method!r}")
    mask = np.asarray(person_mask)
    if mask.shape != photo.shape[:2]:
        raise ValueError(f"person mask {mask.shape} does not match the photo {photo.shape[:2]}")
    height, width = mask.shape
    dilate_px = max(3, round(0.01 * max(height, width))) if dilate_px is None else int(dilate_px)
    person = mask > 0.5
    out = photo.copy()
    if not person.any():
        return out
    factor = min(1.0, max_side / max(height, width))
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = cv2.resize(photo, size, interpolation=cv2.INTER_AREA) if factor < 1 else photo
    # The hole is dilated at the working size (any covered working pixel counts), then brought back.
    small_hole = cv2.resize(person.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
    small_dilate = int(math.ceil(dilate_px * factor))
    if small_dilate > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * small_dilate + 1,) * 2)
        small_hole = cv2.dilate(small_hole.astype(np.uint8), kernel) > 0
    radius = 3 if radius is None else int(radius)  # Telea's cost grows with radius^2; 3 is OpenCV's example
    filled = cv2.inpaint(np.ascontiguousarray(small), small_hole.astype(np.uint8), radius, flags[method])
    hole = small_hole
    if factor < 1:
        filled = cv2.resize(filled, (width, height), interpolation=cv2.INTER_LINEAR)
        hole = cv2.resize(small_hole.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
    hole |= person
    np.copyto(out, filled, where=hole[..., None])
    return out


def composite(background: np.ndarray, generated_rgb: np.ndarray, generated_alpha: np.ndarray, crop: PersonCrop,
              feather_px: float | None = None) -> np.ndarray:
    """Paste a model-frame person onto the full-resolution ``background`` (``(H, W, 3)`` uint8).

    generated_rgb: ``(h, w, 3)`` uint8 and generated_alpha: ``(h, w)`` in [0, 1], both of
    ``crop.model_size`` (alpha typically :func:`layout_alpha` of the generated layout). The alpha is
    feathered with a Gaussian of ``feather_px`` photo pixels (default 0.5% of the box height, at
    least 1), applied in the model frame before upsampling. Pixels outside the crop box, and inside it
    where the alpha is 0, are left unchanged; only the bounding box of non-zero alpha is blended.
    """
    background = _check_photo(background)
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


@dataclass(frozen=True)
class WildInput:
    """A photo made ready for the models.

    photo ``(H, W, 3)`` uint8, keypoints ``(18, 2)`` and person_mask ``(H, W)`` float in the photo frame;
    crop: the model-frame window; model_image ``(h, w, 3)`` uint8, model_keypoints ``(18, 2)``,
    model_person_mask ``(h, w)`` float and layout ``(h, w)`` uint8 labels of ``label_set`` in the model frame.
    """

    photo: np.ndarray
    keypoints: np.ndarray
    person_mask: np.ndarray
    layout: np.ndarray
    crop: PersonCrop
    model_image: np.ndarray
    model_keypoints: np.ndarray
    model_person_mask: np.ndarray
    label_set: LabelSet


def prepare_wild_input(photo: np.ndarray, model_size: tuple[int, int], label_set: str | LabelSet,
                       estimator: Callable[[np.ndarray], PoseEstimate | None],
                       segmenter: Callable[[np.ndarray], np.ndarray], parser: LayoutParser,
                       margin: float = 0.1, parse_height: int = 1024) -> WildInput:
    """Pose, mask, crop and layout of the person in ``photo``.

    The parser runs in the photo frame, on a copy shrunk so the crop box is at most ``parse_height``
    pixels tall; its labels are merged to ``label_set`` and cropped (nearest) to the model frame.
    WildPhotoError when no person is detected or the person is too small.
    """
    photo = _check_photo(photo)
    target = label_set if isinstance(label_set, LabelSet) else get_label_set(label_set)
    estimate = estimator(photo)
    if estimate is None:
        raise WildPhotoError("no person detected in the photo")
    person_mask = np.asarray(segmenter(photo), dtype=np.float32)
    crop = person_crop(estimate.keypoints, person_mask, photo.shape[:2], model_size, margin)
    factor = min(1.0, parse_height / (crop.box[2] - crop.box[0]))
    work_photo, work_mask, work_keypoints, work_crop = photo, person_mask, estimate.keypoints, crop
    if factor < 1:
        size = (max(1, round(photo.shape[1] * factor)), max(1, round(photo.shape[0] * factor)))
        work_photo = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
        work_mask = cv2.resize(person_mask, size, interpolation=cv2.INTER_AREA)
        present = ~missing_mask(estimate.keypoints)
        work_keypoints = np.where(present[:, None], (estimate.keypoints + 0.5) * factor - 0.5, -1.0)
        work_crop = PersonCrop(tuple(v * factor for v in crop.box), crop.scale / factor, crop.model_size)
    labels = parser(work_photo, work_keypoints, work_mask)
    labels = merge_to(labels, target, getattr(parser, "label_set", LIP20))
    return WildInput(photo=photo, keypoints=estimate.keypoints, person_mask=person_mask,
                     layout=layout_to_model(labels, work_crop), crop=crop,
                     model_image=crop_to_model(photo, crop),
                     model_keypoints=keypoints_to_model(estimate.keypoints, crop),
                     model_person_mask=mask_to_model(person_mask, crop), label_set=target)
