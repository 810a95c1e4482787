"""Target poses from anywhere: a preset library, an annotation CSV row, a keypoint JSON file, or another
photo (estimated), brought into the model frame.

Frames: keypoints are stored in the frame of the file they come from (DeepFashion 256x176 after the
padded-frame offset, Market 128x64, a photo's own size). :func:`fit_keypoints` maps a pose into the
model frame by one uniform scale that fits the frame's height, centred horizontally (a person is taller
than wide, so height decides); joints that land outside the model frame become missing (-1).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np

from recapture.body.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS, Pose, missing_mask
from recapture.data.formats import read_annotations

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".heic", ".heif")


class PoseSourceError(ValueError):
    """A pose specification cannot be resolved; the message names the file/row and the valid forms."""


#: Largest keypoint coordinate or frame side accepted from a file (pixels).
MAX_COORDINATE = 100_000


def check_frame(frame: object, source: str) -> tuple[int, int]:
    """``(H, W)`` of positive integers up to :data:`MAX_COORDINATE`; PoseSourceError naming ``source``."""
    try:
        height, width = (int(v) for v in frame)  # type: ignore[union-attr]
        ok = all(float(v) == int(v) for v in frame) and 0 < height <= MAX_COORDINATE and 0 < width <= MAX_COORDINATE  # type: ignore[union-attr]
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise PoseSourceError(f"{source}: frame must be [H, W], two whole numbers in 1..{MAX_COORDINATE}, got {frame!r}")
    return height, width


def check_keypoints(keypoints: np.ndarray, source: str) -> np.ndarray:
    """``(18, 2)`` float keypoints, each finite and in [0, MAX_COORDINATE] or -1 (missing); PoseSourceError
    naming the joint and the value otherwise."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    for index, (y, x) in enumerate(keypoints):
        for axis, value in (("y", y), ("x", x)):
            if value == -1:
                continue
            if not np.isfinite(value) or not 0 <= value <= MAX_COORDINATE:
                raise PoseSourceError(f"{source}: joint {KEYPOINT_NAMES[index]} (#{index}) has {axis}={value!r}; "
                                      f"coordinates must be finite pixels in 0..{MAX_COORDINATE}, or -1 for missing")
    return keypoints


def fit_keypoints(keypoints: np.ndarray, frame: tuple[int, int], model_size: tuple[int, int]) -> np.ndarray:
    """Map ``(18, 2)`` keypoints from ``frame`` to ``model_size`` (uniform height scale, centred in x)."""
    if min(frame) <= 0 or min(model_size) <= 0:
        raise PoseSourceError(f"frame {tuple(frame)} and model size {tuple(model_size)} must be positive")
    keypoints = np.asarray(keypoints, dtype=np.float64)
    scale = model_size[0] / frame[0]
    out = np.full_like(keypoints, -1.0)
    present = ~missing_mask(keypoints)
    out[present, 0] = keypoints[present, 0] * scale
    out[present, 1] = (keypoints[present, 1] - frame[1] / 2.0) * scale + model_size[1] / 2.0
    outside = (out[:, 0] < 0) | (out[:, 0] > model_size[0] - 1) | (out[:, 1] < 0) | (out[:, 1] > model_size[1] - 1)
    out[outside | ~present] = -1.0
    return out


def preset_library() -> dict[str, Pose]:
    """The shipped presets: real DeepFashion test poses (see ``assets/poses.json`` for their rows)."""
    data = json.loads((resources.files("recapture") / "assets" / "poses.json").read_text())
    frame = tuple(data["frame"])
    return {name: Pose(np.asarray(entry["keypoints"], dtype=np.float64), frame, f"preset:{name} ({entry['row']})")
            for name, entry in data["poses"].items()}


def guess_frame(path: Path) -> tuple[tuple[int, int], tuple[int, int]]:
    """(frame, keypoint offset) of a literature annotation CSV from its name."""
    name = path.name.lower()
    if "market" in name:
        return (128, 64), (0, 0)
    if name.startswith("fasion-annotation") or name.startswith("fashion-annotation"):
        return (256, 176), (0, -40)
    return (256, 176), (0, 0)


def _from_csv(path: Path, row: str, frame: tuple[int, int] | None) -> Pose:
    guessed, offset = guess_frame(path)
    table = read_annotations(path, offset=offset)
    if row not in table:
        raise PoseSourceError(f"{path}: no row named {row!r} ({len(table)} rows; e.g. {table.names[0]!r})")
    return Pose(table.get(row).astype(np.float64), frame or guessed, f"{path}:{row}")


def _from_json(path: Path, frame: tuple[int, int] | None) -> Pose:
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PoseSourceError(f"{path}: not a readable JSON file ({err})") from None
    raw = data.get("keypoints") if isinstance(data, dict) else data
    try:
        keypoints = np.asarray(raw, dtype=np.float64) if raw is not None else np.zeros(0)
    except (TypeError, ValueError):
        keypoints = np.zeros(0)
    if keypoints.shape != (NUM_KEYPOINTS, 2):
        raise PoseSourceError(f"{path}: 'keypoints' must be 18 [y, x] number pairs (COCO-18 order, -1 missing), "
                              f"got {'shape ' + str(keypoints.shape) if keypoints.size else repr(raw)[:60]}")
    keypoints = check_keypoints(keypoints, str(path))
    if frame is None:
        if not isinstance(data, dict) or "frame" not in data:
            raise PoseSourceError(f"{path}: give the image size as \"frame\": [H, W] (or --pose-frame)")
        frame = check_frame(data["frame"], str(path))
    return Pose(keypoints, check_frame(frame, str(path)), str(path))


def _from_photo(path: Path) -> Pose:
    from recapture.pipelines.pose_estimation import PoseEstimator
    from recapture.pipelines.stages import decode, quiet_native_logs, scale_points

    decoded = decode(path)
    with quiet_native_logs(), PoseEstimator() as estimator:
        estimate = estimator(decoded.analysis)
    if estimate is None:
        raise PoseSourceError(f"{path}: no person found to take the pose from")
    keypoints = scale_points(estimate.keypoints, 1.0 / decoded.factor)
    present = ~missing_mask(keypoints)
    top, bottom = keypoints[present, 0].min(), keypoints[present, 0].max()
    centre_x = (keypoints[present, 1].min() + keypoints[present, 1].max()) / 2.0
    height = (bottom - top) * 1.25
    box_top = top - 0.12 * height
    shifted = keypoints.copy()
    shifted[present, 0] -= box_top
    shifted[present, 1] -= centre_x - height / 2.0
    return Pose(shifted, (int(round(height)), int(round(height))), str(path))


def load_pose(spec: str, frame: tuple[int, int] | None = None) -> Pose:
    """Resolve a pose specification.

    Forms: ``NAME`` or ``preset:NAME`` (see :func:`preset_library`), ``FILE.csv:ROW`` (annotation CSV
    row), ``FILE.json`` (``{"keypoints": [[y, x], ...], "frame": [H, W]}``), or a photo
    (``.jpg/.png/...``: the person's pose is estimated and framed around the person).
    """
    presets = preset_library()
    name = spec[len("preset:"):] if spec.startswith("preset:") else spec
    if name in presets:
        return presets[name]
    if ".csv:" in spec:
        file, row = spec.rsplit(":", 1)
        if not Path(file).is_file():
            raise PoseSourceError(f"annotation file not found: {file}")
        return _from_csv(Path(file), row, frame)
    path = Path(spec)
    if path.suffix.lower() == ".json" and path.is_file():
        return _from_json(path, frame)
    if path.suffix.lower() in PHOTO_SUFFIXES and path.is_file():
        return _from_photo(path)
    raise PoseSourceError(f"cannot resolve pose {spec!r}: use a preset ({', '.join(presets)}), FILE.csv:ROW, "
                          f"FILE.json, or a photo file")


def target_keypoints(spec: str, model_size: tuple[int, int], frame: tuple[int, int] | None = None) -> np.ndarray:
    """:func:`load_pose` then :func:`fit_keypoints` into the model frame."""
    pose = load_pose(spec, frame)
    fitted = fit_keypoints(pose.keypoints, pose.frame, model_size)
    if missing_mask(fitted).all():
        raise PoseSourceError(f"pose {pose.source} has no joint inside the {model_size} model frame")
    return fitted
