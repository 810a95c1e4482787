"""Pose estimation and person segmentation for in-the-wild photos, with the models MediaPipe bundles.

Only models shipped inside the ``mediapipe==0.10.21`` wheel are used, so nothing downloads at run
time: BlazePose *full* (``model_complexity=1``, ``modules/pose_landmark/pose_landmark_full.tflite``)
and the selfie-segmentation models. BlazePose *lite* (0) and *heavy* (2) are not in the wheel;
MediaPipe would fetch them from the internet, so asking for them raises :class:`ModelNotBundledError`
unless the file has been placed in the package by hand.

BlazePose returns 33 landmarks; :func:`blazepose_to_coco18` maps them to the project's COCO-18 order
(``recapture.body.keypoints.KEYPOINT_NAMES``) as ``(y, x)`` pixel coordinates with ``-1`` for missing.
"""

from __future__ import annotations

import atexit
import sys
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import numpy as np

from recapture.body.keypoints import NUM_KEYPOINTS

#: BlazePose landmark index of each COCO-18 joint; ``None`` for the neck (midpoint of the shoulders).
#: BlazePose's left/right are the person's own, as in COCO.
BLAZEPOSE_TO_COCO18: tuple[int | None, ...] = (
    0,     # nose
    None,  # neck = midpoint of shoulders 11 and 12
    12, 14, 16,  # right shoulder, elbow, wrist
    11, 13, 15,  # left shoulder, elbow, wrist
    24, 26, 28,  # right hip, knee, ankle
    23, 25, 27,  # left hip, knee, ankle
    2, 5,        # left eye, right eye
    7, 8,        # left ear, right ear
)
_LEFT_SHOULDER, _RIGHT_SHOULDER = 11, 12
NUM_BLAZEPOSE_LANDMARKS = 33

_POSE_MODEL_FILES = {0: "pose_landmark_lite.tflite", 1: "pose_landmark_full.tflite", 2: "pose_landmark_heavy.tflite"}


class ModelNotBundledError(RuntimeError):
    """A MediaPipe model that is not inside the installed wheel (it would be downloaded)."""


@dataclass(frozen=True)
class PoseEstimate:
    """One person's pose in a photo.

    keypoints: ``(18, 2)`` float ``(y, x)`` pixels in COCO-18 order, ``-1`` where missing.
    confidence: ``(18,)`` BlazePose visibility of each joint (neck: the lower of the two shoulders),
        kept even for joints judged missing.
    landmarks: ``(33, 4)`` raw BlazePose ``x, y, z, visibility`` (x, y normalised to [0, 1]).
    """

    keypoints: np.ndarray
    confidence: np.ndarray
    landmarks: np.ndarray


def blazepose_to_coco18(landmarks: np.ndarray, image_size: tuple[int, int],
                        min_visibility: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Map BlazePose landmarks to COCO-18 ``(y, x)`` pixel keypoints.

    landmarks: ``(33, 4)`` ``x, y, z, visibility`` or ``(33, 3)`` ``x, y, visibility``, x/y normalised
        by the image width/height. image_size: ``(H, W)`` of the photo.
    A joint is missing (``-1``) when its visibility is below ``min_visibility`` or it lies outside
    ``[0, W) x [0, H)``; the neck is the shoulders' midpoint, missing if either shoulder is.
    Returns ``(keypoints (18, 2) float64, confidence (18,) float64)``.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape not in ((NUM_BLAZEPOSE_LANDMARKS, 3), (NUM_BLAZEPOSE_LANDMARKS, 4)):
        raise ValueError(f"landmarks must be (33, 4) x,y,z,visibility or (33, 3) x,y,visibility, "
                         f"got shape {landmarks.shape}")
    if not np.isfinite(landmarks).all():
        raise ValueError("landmarks contain NaN or infinite values")
    height, width = int(image_size[0]), int(image_size[1])
    if height <= 0 or width <= 0:
        raise ValueError(f"image_size must be positive (H, W), got {image_size}")
    x = landmarks[:, 0] * width
    y = landmarks[:, 1] * height
    visibility = landmarks[:, -1]
    present = (visibility >= min_visibility) & (x >= 0) & (x < width) & (y >= 0) & (y < height)
    # Clamp the half-open border so that rounding a present joint never leaves the image.
    y = np.minimum(y, height - 1)
    x = np.minimum(x, width - 1)

    keypoints = np.full((NUM_KEYPOINTS, 2), -1.0)
    confidence = np.zeros(NUM_KEYPOINTS)
    for joint, source in enumerate(BLAZEPOSE_TO_COCO18):
        if source is None:
            pair = [_LEFT_SHOULDER, _RIGHT_SHOULDER]
            confidence[joint] = visibility[pair].min()
            if present[pair].all():
                keypoints[joint] = (y[pair].mean(), x[pair].mean())
        else:
            confidence[joint] = visibility[source]
            if present[source]:
                keypoints[joint] = (y[source], x[source])
    return keypoints, confidence


#: Modules mediapipe imports only to draw landmarks (``solutions.drawing_utils``), never used here.
_DRAWING_ONLY = ("matplotlib", "matplotlib.pyplot")


class _KeptOut(ModuleType):
    """Stand-in for a module mediapipe imports but this project never calls (see :func:`import_mediapipe`)."""

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"{self.__name__} was kept out of mediapipe's import; mediapipe's drawing "
                             f"helpers are unavailable (attribute {name!r})")


def import_mediapipe() -> ModuleType:
    """Import mediapipe without matplotlib: the one place this project imports mediapipe.

    mediapipe 0.10.21's ``__init__`` imports ``solutions``, whose ``drawing_utils`` runs
    ``import matplotlib.pyplot`` (0.7 s and ~40 MiB, for plotting landmarks, which we never do). While
    mediapipe imports, placeholders stand in ``sys.modules`` for ``matplotlib`` and
    ``matplotlib.pyplot``; they are removed right after, so ``matplotlib`` stays absent from
    ``sys.modules`` and a later ``import matplotlib`` elsewhere loads the real one. When matplotlib is
    already imported nothing is replaced.
    """
    if "mediapipe" in sys.modules:
        return sys.modules["mediapipe"]
    placeholders = {}
    if "matplotlib" not in sys.modules:
        placeholders = {name: _KeptOut(name) for name in _DRAWING_ONLY}
        setattr(placeholders["matplotlib"], "pyplot", placeholders["matplotlib.pyplot"])
        sys.modules.update(placeholders)
    try:
        import mediapipe
    except ImportError as error:
        raise ImportError("in-the-wild photos need mediapipe: pip install mediapipe==0.10.21") from error
    finally:
        for name, placeholder in placeholders.items():
            if sys.modules.get(name) is placeholder:
                del sys.modules[name]
    return mediapipe


def _mediapipe_root() -> Path:
    return Path(str(import_mediapipe().__file__)).parent


def pose_model_path(model_complexity: int) -> Path:
    """Where the BlazePose landmark model of ``model_complexity`` lives inside the mediapipe package."""
    if model_complexity not in _POSE_MODEL_FILES:
        raise ValueError(f"model_complexity must be 0, 1 or 2, got {model_complexity!r}")
    return _mediapipe_root() / "modules" / "pose_landmark" / _POSE_MODEL_FILES[model_complexity]


def _check_image(image_rgb: np.ndarray) -> np.ndarray:
    image_rgb = np.asarray(image_rgb)
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got shape {image_rgb.shape} "
                         f"dtype {image_rgb.dtype}")
    if image_rgb.shape[0] == 0 or image_rgb.shape[1] == 0:
        raise ValueError(f"empty image of shape {image_rgb.shape}")
    return np.ascontiguousarray(image_rgb)


#: Open solutions, closed at exit: a MediaPipe graph closed during interpreter shutdown (by a
#: finaliser) waits forever for its worker threads, and the process never exits.
_OPEN: weakref.WeakSet[_Solution] = weakref.WeakSet()


@atexit.register
def _close_open_solutions() -> None:
    for solution in list(_OPEN):
        solution.close()


class _Solution:
    """Shared lifetime handling (close, context manager, close at exit) of a MediaPipe solution graph."""

    _graph: Any

    def _opened(self, graph: Any) -> None:
        self._graph = graph
        _OPEN.add(self)

    def close(self) -> None:
        """Release the MediaPipe graph; the object cannot be used afterwards."""
        if self._graph is not None:
            self._graph.close()
            self._graph = None

    def _require_open(self) -> Any:
        if self._graph is None:
            raise RuntimeError(f"{type(self).__name__} was closed")
        return self._graph

    def __enter__(self) -> _Solution:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        if not sys.is_finalizing():
            self.close()


class PoseEstimator(_Solution):
    """BlazePose (MediaPipe Pose) on RGB photos -> :class:`PoseEstimate` of the most prominent person.

    ``static_image_mode=True`` treats every call as an unrelated photo; ``False`` tracks the person
    across consecutive video frames (faster, steadier). ``min_visibility`` is the threshold of
    :func:`blazepose_to_coco18`.
    """

    def __init__(self, model_complexity: int = 1, static_image_mode: bool = True,
                 min_detection_confidence: float = 0.5, min_visibility: float = 0.5) -> None:
        self._graph = None
        model = pose_model_path(model_complexity)
        if not model.is_file():
            raise ModelNotBundledError(
                f"BlazePose model_complexity={model_complexity} ({model.name}) is not bundled with the "
                f"installed mediapipe and would be downloaded; use model_complexity=1 or place the file "
                f"at {model}")
        import_mediapipe()
        from mediapipe.python.solutions import pose

        self.min_visibility = min_visibility
        self._opened(pose.Pose(static_image_mode=static_image_mode, model_complexity=model_complexity,
                               smooth_landmarks=not static_image_mode, enable_segmentation=False,
                               min_detection_confidence=min_detection_confidence))

    def __call__(self, image_rgb: np.ndarray) -> PoseEstimate | None:
        """``(H, W, 3)`` uint8 RGB -> the pose, or None when no person is detected."""
        image_rgb = _check_image(image_rgb)
        result = self._require_open().process(image_rgb)
        if result.pose_landmarks is None:
            return None
        landmarks = np.array([(p.x, p.y, p.z, p.visibility) for p in result.pose_landmarks.landmark],
                             dtype=np.float64)
        keypoints, confidence = blazepose_to_coco18(landmarks, image_rgb.shape[:2], self.min_visibility)
        return PoseEstimate(keypoints=keypoints, confidence=confidence, landmarks=landmarks)


class PersonSegmenter(_Solution):
    """MediaPipe selfie segmentation -> ``(H, W)`` float32 person probability in [0, 1].

    ``model_selection=0`` (the default) is the *general* model with a square 256x256 input; it keeps
    more vertical resolution on portrait-orientation full-body photos than ``1``, the *landscape*
    144x256 model made for video calls. Both are bundled. The mask covers everything the person
    wears or holds (bags, helmets).
    """

    def __init__(self, model_selection: int = 0) -> None:
        self._graph = None
        if model_selection not in (0, 1):
            raise ValueError(f"model_selection must be 0 (general) or 1 (landscape), got {model_selection!r}")
        name = "selfie_segmentation.tflite" if model_selection == 0 else "selfie_segmentation_landscape.tflite"
        model = _mediapipe_root() / "modules" / "selfie_segmentation" / name
        if not model.is_file():
            raise ModelNotBundledError(f"selfie segmentation model {model} is missing from the mediapipe install")
        import_mediapipe()
        from mediapipe.python.solutions import selfie_segmentation

        self._opened(selfie_segmentation.SelfieSegmentation(model_selection=model_selection))

    def __call__(self, image_rgb: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB -> ``(H, W)`` float32 person probability."""
        image_rgb = _check_image(image_rgb)
        mask = self._require_open().process(image_rgb).segmentation_mask
        return np.clip(np.asarray(mask, dtype=np.float32), 0.0, 1.0)
