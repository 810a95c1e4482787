"""People of a photo: counted from the person mask's components (split between the faces a component
holds), numbered from 0 by decreasing area, and the keypoints of one of them (docs/parser.md, "People").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from recapture.body.keypoints import missing_mask
from recapture.pipelines.pose_estimation import PoseEstimate, _Solution, import_mediapipe

#: A mask component smaller than this share of the largest one is not a person (a hand, a bag, noise).
MIN_PERSON_SHARE = 0.15
#: ... nor one smaller than this share of the photo.
MIN_PERSON_AREA = 0.002
#: Faces are looked for only when a mask component is at least this wide for its height (people side by side
#: whose masks touch); a single standing person is narrower (about 0.3-0.5), so the face detector is not even loaded.
WIDE_COMPONENT = 0.6


class FaceDetector(_Solution):
    """MediaPipe face detection (the bundled full-range model) -> ``(K, 4)`` face boxes ``y0, x0, y1, x1``
    in pixels, for telling apart people whose masks touch."""

    def __init__(self, min_confidence: float = 0.6) -> None:
        self._graph = None
        import_mediapipe()
        from mediapipe.python.solutions import face_detection

        self._opened(face_detection.FaceDetection(model_selection=1, min_detection_confidence=min_confidence))

    def __call__(self, image_rgb: np.ndarray) -> np.ndarray:
        height, width = image_rgb.shape[:2]
        result = self._require_open().process(np.ascontiguousarray(image_rgb))
        boxes = [(b.ymin * height, b.xmin * width, (b.ymin + b.height) * height, (b.xmin + b.width) * width)
                 for b in (d.location_data.relative_bounding_box for d in result.detections or [])]
        return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


@dataclass(frozen=True)
class Person:
    """One person of a photo: ``mask`` ``(H, W)`` bool component, ``area`` in pixels, ``box`` (y0, x0, y1, x1)."""

    mask: np.ndarray
    area: int
    box: tuple[int, int, int, int]


def _person(mask: np.ndarray) -> Person:
    ys, xs = np.nonzero(mask)
    return Person(mask, int(ys.size), (int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1))


def _split_by_faces(component: np.ndarray, centres_x: np.ndarray) -> list[np.ndarray]:
    """Split one mask component holding several faces into vertical bands, one per face (nearest face x)."""
    columns = np.argmin(np.abs(np.arange(component.shape[1])[:, None] - np.sort(centres_x)[None]), axis=1)
    return [component & (columns == k)[None, :] for k in range(len(centres_x))]


def find_people(person_mask: np.ndarray, faces: np.ndarray | None = None) -> list[Person]:
    """People of a photo, largest first, from its ``(H, W)`` person probability and optional ``(K, 4)``
    face boxes (see module docstring): a component holding several face centres is split between them."""
    binary = (np.asarray(person_mask) > 0.5).astype(np.uint8)
    count, components, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count <= 1:
        return []
    areas = stats[1:, cv2.CC_STAT_AREA]
    floor = max(MIN_PERSON_SHARE * areas.max(), MIN_PERSON_AREA * binary.size)
    faces = np.zeros((0, 4)) if faces is None else np.asarray(faces, dtype=np.float64).reshape(-1, 4)
    centres = np.clip(np.round((faces[:, :2] + faces[:, 2:]) / 2).astype(int), 0, np.array(binary.shape) - 1)
    owner = components[centres[:, 0], centres[:, 1]] if len(centres) else np.zeros(0, int)
    masks = []
    for label in range(1, count):
        if stats[label, cv2.CC_STAT_AREA] < floor:
            continue
        inside = centres[owner == label, 1]
        component = components == label
        masks += _split_by_faces(component, inside) if len(inside) > 1 else [component]
    people = [_person(m) for m in masks if m.sum() >= MIN_PERSON_AREA * binary.size]
    return sorted(people, key=lambda p: -p.area)


def pose_of_person(person: Person, image: np.ndarray, estimator: Callable[[np.ndarray], PoseEstimate | None],
                   alone: bool) -> np.ndarray:
    """Keypoints of one person: BlazePose on the photo when alone, else on a crop around its component."""
    if alone:
        estimate = estimator(image)
        return np.full((18, 2), -1.0) if estimate is None else estimate.keypoints
    y0, x0, y1, x1 = person.box
    pad = int(0.15 * (y1 - y0))
    y0, x0 = max(0, y0 - pad), max(0, x0 - pad)
    y1, x1 = min(image.shape[0], y1 + pad), min(image.shape[1], x1 + pad)
    estimate = estimator(np.ascontiguousarray(image[y0:y1, x0:x1]))
    if estimate is None:
        return np.full((18, 2), -1.0)
    keypoints = estimate.keypoints.copy()
    present = ~missing_mask(keypoints)
    keypoints[present] += (y0, x0)
    return keypoints


def _has_wide_component(person_mask: np.ndarray) -> bool:
    binary = (np.asarray(person_mask) > 0.5).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count <= 1:
        return False
    floor = max(MIN_PERSON_SHARE * stats[1:, cv2.CC_STAT_AREA].max(), MIN_PERSON_AREA * binary.size)
    big = stats[1:][stats[1:, cv2.CC_STAT_AREA] >= floor]
    return bool(np.any(big[:, cv2.CC_STAT_WIDTH] >= WIDE_COMPONENT * big[:, cv2.CC_STAT_HEIGHT]))


def people_of(person_mask: np.ndarray, image: np.ndarray,
              faces: Callable[[np.ndarray], np.ndarray] | None = None) -> list[Person]:
    """:func:`find_people` of a photo, with the face boxes ``faces(image)`` (``image`` the photo the mask was
    computed on) when a component is wide enough to hold people side by side (:data:`WIDE_COMPONENT`). The one
    numbering of the real-photo path: ``recapture parse``, ``edit``, ``video`` and the web editor all use it."""
    wide = faces is not None and _has_wide_component(person_mask)
    return find_people(person_mask, faces(image) if wide else None)
