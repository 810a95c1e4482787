"""Real pose changes from the pose2sim demo videos: person crops, their names, the pairs, the committed set.

The PyPI wheel ``pose2sim`` (BSD-3-Clause) ships two clips filmed by 4 synchronised cameras
(``Demo_SinglePerson`` and ``Demo_MultiPerson``, ``videos/cam01..04.mp4``, 100 frames at 60 fps, ~1088x1920).
Two people appear in them: the man of ``Demo_SinglePerson`` (``single``) and the woman who walks beside him
in ``Demo_MultiPerson`` (``multi``; the man's frames there are not used). A frame of a person becomes a crop
named ``<person>-cam<c>-f<frame:03d>.jpg`` at 256x176; two crops of the same person from different cameras
and/or frames are a source/target pair.

Frames 0-49 give the **validation** part (development, model selection, fine-tuning experiments) and
frames 50-99 the **test** part (scored once per final model; never trained or selected on).

This module holds the pure parts (crop geometry, names, pair selection, reading the committed set);
``scripts/build_pose2sim.py`` decodes the videos and runs the photo path's parser to rebuild the set.
The set lives in ``benchmarks/data/pose2sim`` as a manifest (docs/formats.md) with splits ``validation`` and
``test``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from recapture.body.keypoints import drop_outside, missing_mask
from recapture.data.dataset import PairDataset

PEOPLE: dict[str, str] = {"single": "Demo_SinglePerson", "multi": "Demo_MultiPerson"}
CAMERAS: tuple[int, ...] = (1, 2, 3, 4)
VALIDATION_FRAMES: tuple[int, ...] = (4, 14, 24, 34, 44)
TEST_FRAMES: tuple[int, ...] = (56, 66, 76, 86, 96)
SPLITS: tuple[str, ...] = ("validation", "test")
SIZE: tuple[int, int] = (256, 176)
#: Margin added around the person's mask box, as a share of its height.
MARGIN = 0.08
#: The committed set (a manifest with splits ``validation`` and ``test``).
DEFAULT_MANIFEST = Path(__file__).resolve().parents[3] / "benchmarks" / "data" / "pose2sim" / "manifest.yaml"
#: The fixed-camera variant (one crop window per camera, every same-camera pair; :func:`camera_boxes`).
STILL_MANIFEST = DEFAULT_MANIFEST.parents[1] / "pose2sim-still" / "manifest.yaml"

_NAME = re.compile(r"^(?P<person>[a-z]+)-cam(?P<camera>\d)-f(?P<frame>\d{3})\.jpg$")


@dataclass(frozen=True)
class Crop:
    """One person crop: ``image`` ``(H, W, 3)`` uint8, ``labels`` ``(H, W)`` uint8, ``keypoints`` ``(18, 2)``
    y/x (-1 missing) in the crop; ``scale`` crop pixels per frame pixel (the same on both axes);
    ``offset`` ``(y, x)`` of the crop's top-left corner in the scaled frame."""

    image: np.ndarray
    labels: np.ndarray
    keypoints: np.ndarray
    scale: float
    offset: tuple[int, int]


@dataclass(frozen=True)
class FrameId:
    """Who, which camera, which frame: parsed from or formatted to a crop name."""

    person: str
    camera: int
    frame: int

    @property
    def name(self) -> str:
        return f"{self.person}-cam{self.camera}-f{self.frame:03d}.jpg"

    @property
    def split(self) -> str:
        return "validation" if self.frame < 50 else "test"

    @staticmethod
    def parse(name: str) -> FrameId:
        """ValueError naming ``name`` unless it is ``<person>-cam<c>-f<NNN>.jpg``."""
        found = _NAME.match(name)
        if found is None:
            raise ValueError(f"not a pose2sim crop name: {name!r} (expected <person>-cam<c>-f<NNN>.jpg)")
        return FrameId(found["person"], int(found["camera"]), int(found["frame"]))


def frame_ids(person: str, split: str) -> list[FrameId]:
    """Every camera and frame of ``person`` in ``split`` (before any frame is dropped for a bad parse)."""
    frames = VALIDATION_FRAMES if split == "validation" else TEST_FRAMES
    return [FrameId(person, camera, frame) for camera in CAMERAS for frame in frames]


def read_frame(video: str | Path, index: int) -> np.ndarray:
    """Frame ``index`` of a video as ``(H, W, 3)`` uint8 RGB (ValueError naming the file if it cannot be read)."""
    capture = cv2.VideoCapture(str(video))
    try:
        if not capture.isOpened():
            raise ValueError(f"cannot open video {video}")
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok:
        raise ValueError(f"{video}: no frame {index}")
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def crop_box(person_box: tuple[int, int, int, int], size: tuple[int, int] = SIZE, margin: float = MARGIN
             ) -> tuple[float, float, float]:
    """``(top, left, height)`` in frame pixels of the ``size``-shaped window (same aspect) centred on
    ``person_box`` ``(y0, x0, y1, x1)`` that holds it with ``margin`` x its height on every side."""
    y0, x0, y1, x1 = person_box
    pad = margin * (y1 - y0)
    height = max(y1 - y0 + 2 * pad, (x1 - x0 + 2 * pad) * size[0] / size[1])
    width = height * size[1] / size[0]
    return (y0 + y1) / 2 - height / 2, (x0 + x1) / 2 - width / 2, height


def background_colour(image: np.ndarray, person_mask: np.ndarray) -> tuple[int, int, int]:
    """Median RGB of the pixels outside the person (what pads a crop that reaches past the frame)."""
    outside = image[np.asarray(person_mask) <= 0.5]
    pixels = outside if len(outside) else image.reshape(-1, 3)
    return tuple(int(v) for v in np.median(pixels, axis=0))


def crop_person(image: np.ndarray, labels: np.ndarray, keypoints: np.ndarray, person_box: tuple[int, int, int, int],
                fill: tuple[int, int, int], size: tuple[int, int] = SIZE, margin: float = MARGIN) -> Crop:
    """Cut the person out of a frame at ``size`` with one scale for both axes (never squashed): the frame is
    shrunk by ``size[0] / window height`` (area filter) and the window taken from it; where the window
    leaves the frame the image is padded with ``fill`` and the labels with 0 (background)."""
    top, left, height = crop_box(person_box, size, margin)
    scale = size[0] / height
    frame_h, frame_w = image.shape[:2]
    scaled = (max(1, round(frame_w * scale)), max(1, round(frame_h * scale)))
    picture = cv2.resize(image, scaled, interpolation=cv2.INTER_AREA)
    layout = cv2.resize(np.asarray(labels, np.uint8), scaled, interpolation=cv2.INTER_NEAREST_EXACT)
    row, col = round(top * scale), round(left * scale)
    out_image = np.empty((*size, 3), np.uint8)
    out_image[:] = fill
    out_labels = np.zeros(size, np.uint8)
    src_rows = slice(max(row, 0), min(row + size[0], scaled[1]))
    src_cols = slice(max(col, 0), min(col + size[1], scaled[0]))
    dst_rows = slice(src_rows.start - row, src_rows.stop - row)
    dst_cols = slice(src_cols.start - col, src_cols.stop - col)
    out_image[dst_rows, dst_cols] = picture[src_rows, src_cols]
    out_labels[dst_rows, dst_cols] = layout[src_rows, src_cols]
    points = np.asarray(keypoints, np.float64).copy()
    present = ~missing_mask(points)
    points[present] = (points[present] + 0.5) * scale - 0.5 - np.array([row, col])
    points = drop_outside(points, size)
    return Crop(out_image, out_labels, points, scale, (row, col))


def torso_saturation(image: np.ndarray, person_mask: np.ndarray) -> float:
    """Median HSV saturation (0-255) of the person's pixels 20-45% down its mask box: the torso band. The man
    (bare skin) scores ~55-80, the woman (white top) ~15: how the ``multi`` person is told apart."""
    mask = np.asarray(person_mask) > 0.5
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        raise ValueError("empty person mask")
    height = rows[-1] + 1 - rows[0]
    band = np.zeros_like(mask)
    band[rows[0] + int(0.2 * height):rows[0] + int(0.45 * height) + 1] = True
    pixels = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV)[..., 1][mask & band]
    return float(np.median(pixels)) if pixels.size else float("nan")


#: A crop is kept when this many joints are found ...
MIN_JOINTS = 14
#: ... and this share of them lies on the person's layout (within 3 px): the mask and the pose agree.
MIN_JOINTS_ON_LAYOUT = 0.7


def usable_crop(labels: np.ndarray, keypoints: np.ndarray) -> str:
    """Why a crop cannot be used ("" when it can): both shoulders and hips (the part warp's anchors) and
    :data:`MIN_JOINTS` joints found, :data:`MIN_JOINTS_ON_LAYOUT` of them on the layout (dilated 3 px)."""
    keypoints = np.asarray(keypoints)
    present = ~missing_mask(keypoints)
    if not present[[2, 5, 8, 11]].all():
        return "a shoulder or hip not found"
    if present.sum() < MIN_JOINTS:
        return f"{int(present.sum())} joints found"
    person = cv2.dilate((np.asarray(labels) > 0).astype(np.uint8), np.ones((7, 7), np.uint8))
    points = np.round(keypoints[present]).astype(int)
    share = float(person[points[:, 0], points[:, 1]].mean())
    return "" if share >= MIN_JOINTS_ON_LAYOUT else f"only {share:.0%} of the joints on the layout"


def select_pairs(names: list[str], count: int, seed: int = 0) -> list[tuple[str, str]]:
    """Up to ``count`` ordered pairs per person among ``names`` (crops of one split), half from the same camera
    at another frame (a pose change, same background) and half from another camera (pose and view change);
    fixed by ``seed``, every crop used as evenly as possible, no pair twice, never two people in a pair."""
    rng = np.random.default_rng(seed)
    ids = [FrameId.parse(n) for n in sorted(names)]
    pairs: list[tuple[str, str]] = []
    for person in sorted({i.person for i in ids}):
        own = [i for i in ids if i.person == person]
        same = [(a, b) for a in own for b in own if a.camera == b.camera and a.frame != b.frame]
        other = [(a, b) for a in own for b in own if a.camera != b.camera]
        chosen: list[tuple[FrameId, FrameId]] = []
        for pool, wanted in ((same, count // 2), (other, count - count // 2)):
            order = [pool[k] for k in rng.permutation(len(pool))]
            uses: dict[str, int] = {}
            for _ in range(min(wanted, len(pool))):
                pair = min((p for p in order if p not in chosen),
                           key=lambda p: uses.get(p[0].name, 0) + uses.get(p[1].name, 0))
                chosen.append(pair)
                for side in pair:
                    uses[side.name] = uses.get(side.name, 0) + 1
        pairs += [(a.name, b.name) for a, b in chosen]
    return pairs


def camera_boxes(boxes: dict[FrameId, tuple[int, int, int, int]]) -> dict[FrameId, tuple[int, int, int, int]]:
    """Per frame, the union ``(y0, x0, y1, x1)`` of the person boxes of every frame of the same person, camera
    and split: one crop window per camera, so two crops of one camera show the background in place (a fixed
    camera, as in a studio) and only the person moves between them."""
    union: dict[tuple[str, int, str], tuple[int, int, int, int]] = {}
    for frame, (y0, x0, y1, x1) in boxes.items():
        key = (frame.person, frame.camera, frame.split)
        a = union.get(key, (y0, x0, y1, x1))
        union[key] = (min(a[0], y0), min(a[1], x0), max(a[2], y1), max(a[3], x1))
    return {frame: union[(frame.person, frame.camera, frame.split)] for frame in boxes}


def same_camera_pairs(names: list[str]) -> list[tuple[str, str]]:
    """Every ordered pair of crops of one person from the same camera at different frames (sorted by name)."""
    ids = [FrameId.parse(n) for n in sorted(names)]
    return [(a.name, b.name) for a in ids for b in ids
            if a.person == b.person and a.camera == b.camera and a.frame != b.frame]


def load_split(split: str, manifest: str | Path = DEFAULT_MANIFEST) -> PairDataset:
    """The committed pairs of ``split`` (``validation`` or ``test``) as a :class:`PairDataset`."""
    if split not in SPLITS:
        raise ValueError(f"unknown pose2sim split {split!r} (choose from {', '.join(SPLITS)})")
    return PairDataset(manifest, split)
