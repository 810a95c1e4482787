"""The real-photo path as named stages, each a function with frozen dataclasses in and out.

``decode -> detect -> segment -> pose -> parse -> frame -> geometric -> appearance -> composite -> encode``

:func:`recapture.pipelines.photo.run_photo` calls them once each, in this order, and times each one
(:data:`STAGES` names the keys of its ``timings``). People are the components of the selfie-segmentation
mask, numbered by decreasing area (:mod:`recapture.pipelines.human_parsing`); detection therefore runs
the segmenter, and *segment* keeps the chosen person's own mask (it needs only the detection, so it runs before
the pose and the old person's inpainting starts beside the pose). Detection, pose, segmentation and
parsing work on an *analysis* copy whose long side is at most ``analysis_side``; everything is brought
back to the photo frame, where compositing happens. Framing and the composite live in
:mod:`recapture.pipelines.framing`.
"""

from __future__ import annotations

import os
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from recapture.body.keypoints import missing_mask
from recapture.body.parts import LabelSet
from recapture.pipelines.people import Person, people_of, pose_of_person
from recapture.pipelines.parsing import LayoutParser, merge_to
from recapture.pipelines.photo_io import PhotoFile, WildPhotoError, as_photo_file, write_photo
from recapture.pipelines.pose_estimation import PoseEstimate

#: Stage names, in order: the keys of a result's ``timings``.
STAGES: tuple[str, ...] = ("decode", "detect", "segment", "pose", "parse", "frame", "geometric", "appearance",
                           "composite", "encode")
#: Long side of the analysis copy (detection, pose, segmentation, parsing).
ANALYSIS_SIDE = 1024


@contextmanager
def quiet_native_logs(enabled: bool = True) -> Iterator[None]:
    """Send file descriptor 2 to /dev/null inside the block: MediaPipe / TF Lite / absl print from C++
    (``INFO: Created TensorFlow Lite XNNPACK delegate``, ``W0000 ... inference_feedback_manager``) where
    no Python logging setting reaches. No-op when not ``enabled`` (``--verbose``)."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def resize_to(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``array`` resized to ``size = (H, W)`` (area when shrinking, linear when enlarging)."""
    if array.shape[:2] == tuple(size):
        return array
    shrink = size[0] * size[1] < array.shape[0] * array.shape[1]
    return cv2.resize(array, (size[1], size[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def scale_points(keypoints: np.ndarray, factor: float) -> np.ndarray:
    """Pixel-centre scaling ``(p + 0.5) * factor - 0.5`` of present joints; missing stay -1."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    return np.where(missing_mask(keypoints)[..., None], -1.0, (keypoints + 0.5) * factor - 0.5)


# ---------------------------------------------------------------- decode
@dataclass(frozen=True)
class Decoded:
    """file: the photo as decoded (pixels ``(H, W, 3)`` uint8, ICC, EXIF); analysis ``(h, w, 3)`` uint8:
    the reduced copy the analysis stages see; factor: analysis pixels per photo pixel (<= 1)."""

    file: PhotoFile
    analysis: np.ndarray
    factor: float

    @property
    def photo(self) -> np.ndarray:
        return self.file.pixels


def decode(source: str | Path | np.ndarray | PhotoFile, max_side: int | None = None,
           analysis_side: int = ANALYSIS_SIDE) -> Decoded:
    """Decode a photo once as uint8 (shrunk so its long side is at most ``max_side`` when given) and
    make its analysis copy."""
    file = as_photo_file(source)
    pixels = file.pixels
    if max_side is not None and max(pixels.shape[:2]) > max_side:
        scale = max_side / max(pixels.shape[:2])
        size = (max(2, round(pixels.shape[0] * scale)), max(2, round(pixels.shape[1] * scale)))
        file = PhotoFile(resize_to(pixels, size), file.icc_profile, file.exif, file.format, file.path)
    factor = min(1.0, analysis_side / max(file.pixels.shape[:2]))
    size = (max(1, round(file.pixels.shape[0] * factor)), max(1, round(file.pixels.shape[1] * factor)))
    analysis = np.ascontiguousarray(resize_to(file.pixels, size))
    return Decoded(file=file, analysis=analysis, factor=size[0] / file.pixels.shape[0])


# ---------------------------------------------------------------- detect people
@dataclass(frozen=True)
class People:
    """mask: ``(h, w)`` float32 person probability of the analysis copy (everyone); people: the
    components, largest first; chosen: the index asked for."""

    mask: np.ndarray
    people: tuple[Person, ...]
    chosen: int

    @property
    def count(self) -> int:
        return len(self.people)


def detect_people(decoded: Decoded, segmenter: Callable[[np.ndarray], np.ndarray], person: int = 0,
                  faces: Callable[[np.ndarray], np.ndarray] | None = None) -> People:
    """People of the photo, numbered 0 (largest) upwards as ``recapture parse`` numbers them (``faces``: the
    face detector that splits touching people, see :func:`recapture.pipelines.people.people_of`);
    WildPhotoError for none or no number ``person``."""
    mask = np.asarray(segmenter(decoded.analysis), dtype=np.float32)
    people = tuple(people_of(mask, decoded.analysis, faces))
    if not people:
        raise WildPhotoError("no person found in the photo (a person must show at least the head and both "
                             "shoulders)")
    if not 0 <= person < len(people):
        raise WildPhotoError(f"no person {person}: {len(people)} {'person' if len(people) == 1 else 'people'} "
                             f"found (numbered 0-{len(people) - 1} by decreasing size)")
    return People(mask=mask, people=people, chosen=person)


# ---------------------------------------------------------------- pose
@dataclass(frozen=True)
class Posed:
    """The chosen person's ``(18, 2)`` y/x keypoints in the photo frame and in the analysis copy; confidence
    ``(18,)``: the estimator's visibility of each joint (None for a given pose)."""

    keypoints: np.ndarray
    analysis_keypoints: np.ndarray
    confidence: np.ndarray | None = None

    def pose_confidence(self) -> float | None:
        """Mean visibility of the joints used (present); None without confidences or joints."""
        present = ~missing_mask(self.keypoints)
        if self.confidence is None or not present.any():
            return None
        return float(np.asarray(self.confidence, dtype=np.float64)[present].mean())


def estimate_pose(decoded: Decoded, people: People,
                  estimator: Callable[[np.ndarray], PoseEstimate | None]) -> Posed:
    """BlazePose on the analysis copy (on a crop around the person when there are several)."""
    estimates: list[PoseEstimate | None] = []

    def recorded(image: np.ndarray) -> PoseEstimate | None:
        estimates.append(estimator(image))
        return estimates[-1]

    found = pose_of_person(people.people[people.chosen], decoded.analysis, recorded, alone=people.count == 1)
    keypoints = np.asarray(found, dtype=np.float64)
    estimate = estimates[-1] if estimates else None
    confidence = None if estimate is None else np.asarray(estimate.confidence, dtype=np.float64)
    return Posed(keypoints=scale_points(keypoints, 1.0 / decoded.factor), analysis_keypoints=keypoints,
                 confidence=confidence)


# ---------------------------------------------------------------- segment
@dataclass(frozen=True)
class Segmented:
    """The chosen person's own mask (other people removed): ``analysis_mask`` ``(h, w)`` and
    ``person_mask`` ``(H, W)`` float32 in the photo frame."""

    analysis_mask: np.ndarray
    person_mask: np.ndarray


def segment(decoded: Decoded, people: People) -> Segmented:
    """Keep the chosen person's component of the mask and bring it to the photo frame."""
    others = np.zeros(people.mask.shape, dtype=bool)
    for index, other in enumerate(people.people):
        if index != people.chosen:
            others |= other.mask
    own = np.where(others, 0.0, people.mask).astype(np.float32)
    return Segmented(analysis_mask=own, person_mask=resize_to(own, decoded.photo.shape[:2]).astype(np.float32))


# ---------------------------------------------------------------- parse
@dataclass(frozen=True)
class Parsed:
    """labels ``(h, w)`` uint8 of ``label_set`` at ``factor`` x the photo frame; ``parser`` names the parser."""

    labels: np.ndarray
    label_set: LabelSet
    factor: float
    parser: str


def parse(decoded: Decoded, posed: Posed, segmented: Segmented, parser: LayoutParser,
          label_set: LabelSet) -> Parsed:
    """Run ``parser`` on the analysis copy; other people are background; labels merged to ``label_set``."""
    labels = np.asarray(parser(decoded.analysis, posed.analysis_keypoints, segmented.analysis_mask), np.uint8)
    labels = np.where(segmented.analysis_mask > 0.5, labels, 0).astype(np.uint8)
    merged = merge_to(labels, label_set, parser.label_set)
    return Parsed(labels=merged, label_set=label_set, factor=decoded.factor, parser=parser_name(parser))


def parser_name(parser: object) -> str:
    """Short name of a parser for the summary line (``ccp (int8)`` for the ONNX parser's int8 network)."""
    names = {"CcpParser": "ccp", "OnnxCcpParser": "ccp", "PoseMaskLayoutParser": "pose-mask",
             "FileLayoutParser": "file", "ModelLayoutParser": "model"}
    name = names.get(type(parser).__name__, type(parser).__name__)
    return f"{name} (int8)" if getattr(parser, "precision", None) == "int8" else name


def given_source(decoded: Decoded, keypoints: np.ndarray, labels: np.ndarray,
                 label_set: LabelSet) -> tuple[Posed, Segmented, Parsed]:
    """Pose, mask and parse of a source whose keypoints and layout are known (frame of the image as given,
    e.g. a dataset image; brought to the decoded photo's size when decoding shrank it): the person mask
    is the layout's foreground."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.uint8)
    if keypoints.shape != (18, 2):
        raise ValueError(f"source keypoints must be (18, 2) y/x, got {keypoints.shape}")
    size = decoded.photo.shape[:2]
    if labels.shape != size and labels.ndim == 2 and abs(labels.shape[0] / labels.shape[1] - size[0] / size[1]) < 0.01:
        keypoints = scale_points(keypoints, size[0] / labels.shape[0])
        labels = cv2.resize(labels, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    if labels.shape != size:
        raise ValueError(f"source layout is {labels.shape} but the image is {size}")
    if labels.size and int(labels.max()) >= label_set.num_parts:
        raise ValueError(f"source layout has label {int(labels.max())} >= {label_set.num_parts} parts of "
                         f"label set {label_set.name}")
    mask = (labels > 0).astype(np.float32)
    posed = Posed(keypoints=keypoints, analysis_keypoints=scale_points(keypoints, decoded.factor))
    return posed, Segmented(analysis_mask=resize_to(mask, decoded.analysis.shape[:2]), person_mask=mask), \
        Parsed(labels=labels, label_set=label_set, factor=1.0, parser="given")


# ---------------------------------------------------------------- encode
@dataclass(frozen=True)
class Encoded:
    """The written file, its ``(H, W)`` and byte size."""

    path: Path
    size: tuple[int, int]
    bytes: int


def encode(image: np.ndarray, out: str | Path, like: PhotoFile | None = None, quality: int = 95) -> Encoded:
    """Write the result atomically with the source's ICC profile and EXIF (see :mod:`photo_io`)."""
    path = write_photo(out, image, like, quality)
    return Encoded(path=path, size=tuple(image.shape[:2]), bytes=path.stat().st_size)  # type: ignore[arg-type]


@contextmanager
def collected_warnings(messages: list[str]) -> Iterator[None]:
    """Record Python warnings raised inside the block as lines in ``messages`` instead of printing them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    messages.extend(str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning))
