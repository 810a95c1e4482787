"""The *frame*, *geometric* and *appearance* stages of the real-photo path (the composite stage: :mod:`pasting`).

Framing rule (docs/in-the-wild.md): the person stays at the source's scale and position. A target pose
is first retargeted to the subject's bone lengths (:func:`recapture.body.retarget.retarget`; without
retargeting it is scaled by the torso-length ratio), then placed so that its hip centre falls on the
subject's hip centre (the necks when either pose lacks a hip); when both poses show an ankle, it is
then moved vertically so that its lowest ankle stands on the subject's ground line (lowest ankle). In
a pose sequence (video) each frame moves by the target's own hip displacement from the first frame,
scaled the same way, and the first frame's ground shift applies to all. Hips, knees and ankles that the
target does not give are the subject's own, hung from the placed pose (:func:`recapture.body.retarget.complete`):
an upper-body target on a full-body photo keeps the person's legs.

Visible extent: from the source keypoints, ``full body`` (an ankle), ``to the knees``, ``to the hips`` or
``upper body``. By default the target is cut to the same extent (its joints below it are dropped) and the
new person is not drawn below the source person's lowest visible row, so an upper-body photo stays an
upper-body photo; ``allow_invent`` keeps the whole target and lets the model invent what the photo
never showed. A source without both shoulders is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from recapture.body.keypoints import KEYPOINT_INDEX, missing_mask
from recapture.body.retarget import anchor, complete, has_hips, place, retarget, scale_ratio
from recapture.pipelines.photo_io import WildPhotoError
from recapture.pipelines.recapture import LayoutPrediction, Recapturer, SourceInput
from recapture.pipelines.stages import Parsed, Posed, Segmented
from recapture.pipelines.wild import (
    MIN_PERSON_HEIGHT, PersonCrop, crop_to_model, keypoints_to_model, layout_to_model, person_crop,
)

EXTENTS: tuple[str, ...] = ("upper body", "to the hips", "to the knees", "full body")
#: Joints first seen at each extent (hips, knees, ankles), and so dropped from a target cut above it.
_LEVELS = tuple(tuple(KEYPOINT_INDEX[f"{side}_{joint}"] for side in ("right", "left"))
                for joint in ("hip", "knee", "ankle"))


@dataclass(frozen=True)
class FrameOptions:
    """retarget: keep the subject's bone lengths; allow_invent: keep target joints beyond the visible
    extent; margin: crop margin (x person height); min_height: smallest person (photo pixels)."""

    retarget: bool = True
    allow_invent: bool = False
    margin: float = 0.1
    min_height: float = MIN_PERSON_HEIGHT


@dataclass(frozen=True)
class Framed:
    """crop: the model-frame window; extent: one of :data:`EXTENTS`; source: the model-frame source;
    targets ``(N, 18, 2)`` model-frame and targets_photo ``(N, 18, 2)`` photo-frame placed target poses;
    bottom: photo row below which the new person is not drawn (None: no limit); parsed: the photo's parse, from
    which the photo-resolution window takes its layout (:func:`source_window`; None: the model frame's enlarged)."""

    crop: PersonCrop
    extent: str
    source: SourceInput
    targets: np.ndarray
    targets_photo: np.ndarray
    bottom: float | None
    parsed: Parsed | None = None


def visible_extent(keypoints: np.ndarray) -> str:
    """How much of the body the keypoints show (see the module docstring)."""
    present = ~missing_mask(np.asarray(keypoints))
    level = 0
    for index, joints in enumerate(_LEVELS):
        if present[list(joints)].any():
            level = index + 1
    return EXTENTS[level]


def require_shoulders(keypoints: np.ndarray) -> None:
    """WildPhotoError unless both shoulders are detected (face-only crops are refused)."""
    present = ~missing_mask(np.asarray(keypoints))
    found = [side for side in ("right", "left") if present[KEYPOINT_INDEX[f"{side}_shoulder"]]]
    if len(found) < 2:
        raise WildPhotoError("too little of the body to re-pose: both shoulders must be visible "
                             f"(found {' and '.join(found) + ' shoulder' if found else 'no shoulder'}); "
                             "use a photo showing at least the upper body")


def place_targets(subject: np.ndarray, targets: np.ndarray, retargeting: bool = True) -> np.ndarray:
    """``(N, 18, 2)`` target poses (any frame) -> the subject's photo frame by the framing rule."""
    targets = np.asarray(targets, dtype=np.float64).reshape(-1, 18, 2)
    first = targets[0]
    hips = has_hips(subject) and has_hips(first)
    home = anchor(subject, hips)
    start = anchor(first, hips)
    if home is None or start is None:
        raise ValueError("the source or the target pose has neither hips nor a neck to place it by")
    ratio = scale_ratio(subject, first)
    placed = []
    for target in targets:
        where = anchor(target, hips)
        at = home + (ratio * (where - start) if where is not None else 0.0)
        if missing_mask(target).all():
            placed.append(np.full((18, 2), -1.0))
            continue
        try:
            shaped, scale = (retarget(subject, target), 1.0) if retargeting else (target, ratio)
        except ValueError:
            shaped, scale = target, ratio  # a frame without a neck: scaled, not retargeted
        placed.append(complete(place(shaped, at, scale, hips), subject) if anchor(shaped, hips) is not None
                      else np.full((18, 2), -1.0))
    placed_array = np.stack(placed)
    ground, first_ground = _ground(subject), _ground(placed_array[0])
    if ground is not None and first_ground is not None:  # feet on the subject's ground line
        present = ~missing_mask(placed_array)
        placed_array[..., 0] = np.where(present, placed_array[..., 0] + ground - first_ground, -1.0)
    return placed_array


def _ground(keypoints: np.ndarray) -> float | None:
    """Row of the lowest present ankle; None without one."""
    ankles = np.asarray(keypoints)[[KEYPOINT_INDEX["right_ankle"], KEYPOINT_INDEX["left_ankle"]]]
    present = ~missing_mask(ankles)
    return float(ankles[present, 0].max()) if present.any() else None


def _cut_to_extent(targets: np.ndarray, extent: str) -> np.ndarray:
    level = EXTENTS.index(extent)
    out = targets.copy()
    for joints in _LEVELS[level:]:
        out[:, list(joints)] = -1.0
    return out


def pixel_aligned(crop: PersonCrop) -> PersonCrop:
    """``crop`` grown (about its centre) to a box whose edges fall on photo pixel edges and whose height is a
    multiple of the model's reduced aspect (256x176: 16x11), so its width is whole too: the photo-resolution
    window (:func:`full_window`, scale 1) is then an exact copy of photo pixels, and the person is pasted back
    on the same pixels, with no half-pixel resampling (each costs a third of the fine detail)."""
    model_h, model_w = crop.model_size
    unit = math.gcd(model_h, model_w)
    step_h, step_w = model_h // unit, model_w // unit
    y0, x0, y1, x1 = crop.box
    steps = math.ceil((y1 - y0) / step_h - 1e-9)
    height, width = steps * step_h, steps * step_w
    top, left = math.floor((y0 + y1 - height) / 2 + 0.5), math.floor((x0 + x1 - width) / 2 + 0.5)
    return PersonCrop(box=(float(top), float(left), float(top + height), float(left + width)),
                      scale=model_h / height, model_size=crop.model_size)


def parsed_layout(parsed: Parsed, crop: PersonCrop) -> np.ndarray:
    """The photo's parse (at ``parsed.factor`` x the photo frame) cut with the photo-frame window ``crop``: its
    ``model_size`` uint8 labels (nearest)."""
    factor = parsed.factor
    return layout_to_model(parsed.labels, PersonCrop(tuple(v * factor for v in crop.box),  # type: ignore[arg-type]
                                                     crop.scale / factor, crop.model_size))


def frame(photo: np.ndarray, posed: Posed, segmented: Segmented, parsed: Parsed, targets: np.ndarray,
          model_size: tuple[int, int], options: FrameOptions = FrameOptions()) -> Framed:
    """Refuse too little body, find the visible extent, place the targets, crop the model frame."""
    keypoints = posed.keypoints
    require_shoulders(keypoints)
    extent = visible_extent(keypoints)
    targets = np.asarray(targets, dtype=np.float64).reshape(-1, 18, 2)
    placed = place_targets(keypoints, targets, options.retarget) if len(targets) else targets
    if not options.allow_invent and len(placed):
        placed = _cut_to_extent(placed, extent)
    crop = pixel_aligned(person_crop(keypoints, segmented.person_mask, photo.shape[:2], model_size, options.margin,
                                     include=placed.reshape(-1, 2), min_height=options.min_height))
    source = SourceInput(image=crop_to_model(photo, crop), keypoints=keypoints_to_model(keypoints, crop),
                         layout=parsed_layout(parsed, crop))
    bottom = None
    if not options.allow_invent and extent != "full body":
        rows = np.nonzero((segmented.person_mask > 0.5).any(axis=1))[0]
        present = keypoints[~missing_mask(keypoints)]
        lowest = max(rows.max() + 1 if rows.size else 0.0, present[:, 0].max() + 1)
        top = min(rows.min() if rows.size else lowest, present[:, 0].min())
        bottom = float(lowest + 0.02 * (lowest - top))
    model_targets = np.stack([keypoints_to_model(t, crop) for t in placed]) if len(placed) else placed
    return Framed(crop=crop, extent=extent, source=source, targets=model_targets, targets_photo=placed,
                  bottom=bottom, parsed=parsed)


# ---------------------------------------------------------------- geometric, appearance
def geometric(recapturer: Recapturer, framed: Framed, index: int = 0, edits: object | None = None,
              method: str = "model") -> LayoutPrediction:
    """Ŝ_B for target ``index`` of ``framed`` (then ``edits``), in the model frame (``method``: see
    :data:`recapture.pipelines.recapture.METHODS`)."""
    return recapturer.predict_layout(framed.source, framed.targets[index], edits, method=method)


#: Longest side (rows) of the photo-resolution render: bounds time and memory on huge photos.
MAX_FULL_SIDE = 1280


@dataclass(frozen=True)
class Appearance:
    """The generated person: ``image`` ``(h, w, 3)`` uint8 in the model frame; ``full`` the same view at photo
    resolution (window ``full_crop``) when the model copies its pixels from the full-size source, else None;
    ``flow`` ``(H', W', 2)`` y/x: the window pixel each ``full`` pixel was copied from."""

    image: np.ndarray
    full: np.ndarray | None = None
    full_crop: PersonCrop | None = None
    flow: np.ndarray | None = None


def full_window(crop: PersonCrop, max_side: int = MAX_FULL_SIDE) -> PersonCrop:
    """The model frame's window at photo resolution (at most ``max_side`` rows, at least the model's)."""
    box_height = crop.box[2] - crop.box[0]
    height = int(min(max_side, max(crop.model_size[0], round(box_height))))
    width = int(round(height * crop.model_size[1] / crop.model_size[0]))
    if height == round(box_height):  # a pixel-aligned crop (see pixel_aligned): exactly the photo's pixels
        width = int(round(crop.box[3] - crop.box[1]))
    return PersonCrop(box=crop.box, scale=height / box_height, model_size=(height, width))


@dataclass(frozen=True)
class SourceWindow:
    """The source at photo resolution for a copying appearance network, which depends on the source only (a
    video computes it once for all its frames): ``window`` the model frame's window at photo resolution
    (:func:`full_window`), ``image`` ``(H', W', 3)`` uint8 the photo's pixels there (not to be changed) and
    ``layout`` ``(H', W')`` uint8 the photo's parse there (None: the model frame's layout, enlarged)."""

    window: PersonCrop
    image: np.ndarray
    layout: np.ndarray | None = None


def source_window(recapturer: Recapturer, framed: Framed, photo: np.ndarray | None) -> SourceWindow | None:
    """The photo-resolution source of ``framed``; None when there is no photo, the model paints its pixels
    (no copying network) or the window would not be larger than the model frame."""
    if photo is None or not recapturer.copies_full_resolution:
        return None
    window = full_window(framed.crop)
    if window.model_size[0] <= framed.crop.model_size[0]:
        return None
    layout = None if framed.parsed is None else parsed_layout(framed.parsed, window)
    return SourceWindow(window, crop_to_model(photo, window), layout)


def appearance(recapturer: Recapturer, framed: Framed, geometry: LayoutPrediction, method: str = "model",
               photo: np.ndarray | None = None, source: SourceWindow | None = None) -> Appearance:
    """The person's image for one placed target: the keypoint warp's (``method="warp"``) or the appearance
    network's; a network that copies pixels (correspondence) takes them from ``photo`` at its resolution
    ("learn geometry small, copy appearance big"), the others paint in the model frame. ``source``: the
    :func:`source_window` of ``framed`` and ``photo`` when already made (a video's frames share it)."""
    if method == "warp":
        return Appearance(recapturer.warp(framed.source, geometry.target_keypoints))
    source = source if source is not None else source_window(recapturer, framed, photo)
    if source is None:
        return Appearance(recapturer.render(framed.source, geometry.target_keypoints, geometry.target_layout))
    full = recapturer.repose_full(framed.source, geometry.target_keypoints, geometry.target_layout, source.image,
                                  source.layout)
    small = cv2.resize(full.image, framed.crop.model_size[::-1], interpolation=cv2.INTER_AREA)
    return Appearance(small, full.image, source.window, full.flow)
