"""The web editor's request handlers, free of Gradio so that tests can call them directly.

An :class:`Editor` holds the models (kept loaded) and the server-side choices (demo samples, pose rows); each
handler takes plain values from the page and returns arrays to show, or raises :class:`AppError` with a
message for the user. Sources and results go through the real-photo path of ``recapture edit``
(:mod:`recapture.pipelines.photo`): a source is prepared once (decode .. parse, for one person), every
Generate frames it for the target pose (retargeting, placement, the cut to the visible extent), renders
and composites the person into the photo at its own size; the download is the full-size result with the
photo's ICC profile and EXIF.

Display: small images (the model frame, demo samples) are enlarged by a whole factor (nearest neighbour) to
about :data:`DISPLAY_HEIGHT` rows; photos whose long side is over :data:`PREVIEW_SIDE` are reduced to it
(area); others are shown as they are. A click at display pixel ``(x, y)`` is image pixel ``(y // f, x // f)``
for the display factor ``f`` (:func:`display_factor`); a photo pixel maps on into the model frame through
the crop.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

import cv2
import numpy as np
from PIL import Image

from recapture.app.inputs import AppError, DemoSample, PoseRows, UploadGuard, UploadLimits, decode_upload
from recapture.body.edits import CLOTHING_SLOTS, FIGURE_GROUPS, LayoutEdits
from recapture.body.keypoints import LIMBS, missing_mask
from recapture.pipelines.photo import (
    LAYOUT_SOURCES, PhotoModels, PhotoOptions, PhotoResult, PreparedPhoto, prepare_photo, reframe, render_result,
)
from recapture.pipelines.photo_io import PhotoFile, WildPhotoError
from recapture.pipelines.poses import PoseSourceError, fit_keypoints, preset_library, target_keypoints
from recapture.pipelines.recapture import Recapturer
from recapture.pipelines.stages import encode
from recapture.pipelines.wild import PersonCrop

#: What the clothing controls offer besides the categories: leave the slot as predicted.
KEEP = "keep"
#: Range of the figure sliders (1.0 = unchanged).
SLIDER_RANGE: tuple[float, float] = (0.6, 1.5)
#: Pose sources the page offers.
POSE_KINDS: tuple[str, ...] = ("preset", "annotation row", "pose photo")
#: Results kept for download in the work folder (Gradio serves its own copies).
KEEP_DOWNLOADS = 32
#: Quality of a JPEG download (as ``recapture edit --quality``'s default).
DOWNLOAD_QUALITY = 95
#: Download suffix per source format (others, and demo samples, give PNG).
DOWNLOAD_SUFFIXES = {"JPEG": ".jpg", "MPO": ".jpg", "HEIF": ".jpg", "WEBP": ".webp"}


# ------------------------------------------------------------ display
#: Small images are enlarged to about this many rows.
DISPLAY_HEIGHT = 384
#: Larger photos are previewed with at most this long side (the download keeps every pixel).
PREVIEW_SIDE = 1024


def display_factor(size: tuple[int, int]) -> float:
    """Display pixels per image pixel for an ``(H, W)`` image: a whole number >= 1 up to :data:`PREVIEW_SIDE`,
    ``PREVIEW_SIDE / long side`` above it."""
    height, width = size
    if max(height, width) > PREVIEW_SIDE:
        return PREVIEW_SIDE / max(height, width)
    return float(max(1, round(DISPLAY_HEIGHT / height)))


def enlarge(image: np.ndarray, scale: int) -> np.ndarray:
    """``image`` repeated ``scale`` times along both axes (nearest neighbour)."""
    return np.ascontiguousarray(image.repeat(scale, axis=0).repeat(scale, axis=1)) if scale > 1 else image


def for_display(image: np.ndarray) -> np.ndarray:
    """``image`` ``(H, W[, C])`` at its display size (see :func:`display_factor`)."""
    factor = display_factor(image.shape[:2])
    if factor >= 1:
        return enlarge(image, int(factor))
    size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def draw_pose(image: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """``image`` ``(H, W, 3)`` uint8 at display size with its present ``(18, 2)`` y/x keypoints and limbs drawn."""
    shown = for_display(image).copy()
    factor = shown.shape[0] / image.shape[0]
    keypoints = np.asarray(keypoints, dtype=np.float64)
    points = (keypoints + 0.5) * factor
    present = ~missing_mask(keypoints)
    thickness = max(1, round(shown.shape[0] / 128))
    for a, b in LIMBS:
        if present[a] and present[b]:
            cv2.line(shown, (int(points[a, 1]), int(points[a, 0])), (int(points[b, 1]), int(points[b, 0])),
                     (255, 255, 0), thickness, cv2.LINE_AA)
    for index in np.flatnonzero(present):
        cv2.circle(shown, (int(points[index, 1]), int(points[index, 0])), thickness + 1, (255, 0, 0), -1,
                   cv2.LINE_AA)
    return shown


def display_to_image(display_xy: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """Image pixel ``(y, x)`` under display pixel ``(x, y)`` of an image of ``size`` (may lie outside it)."""
    factor = display_factor(size)
    x, y = display_xy
    return math.floor(int(y) / factor), math.floor(int(x) / factor)


def photo_to_model(pixel: tuple[int, int], crop: PersonCrop) -> tuple[int, int] | None:
    """Model-frame pixel ``(y, x)`` holding photo pixel ``pixel``'s centre (``crop``); None outside the frame."""
    x, y = crop.matrix() @ np.array([pixel[1], pixel[0], 1.0])
    row, column = math.floor(y + 0.5), math.floor(x + 0.5)
    height, width = crop.model_size
    return (row, column) if 0 <= row < height and 0 <= column < width else None


@dataclass(frozen=True)
class PoseChoice:
    """The target pose as the page states it: ``kind`` picks which of the other fields counts."""

    kind: str = "preset"
    preset: str | None = None
    row: str = ""
    photo: str | None = None  # an upload file written by Gradio


@dataclass(frozen=True)
class FramingChoice:
    """``recapture edit``'s framing flags: ``allow_invent`` (``--allow-invent``: keep the target's joints
    beyond the photo's visible extent) and ``retarget`` (off: ``--no-retarget``)."""

    allow_invent: bool = False
    retarget: bool = True


@dataclass(frozen=True)
class EditChoice:
    """Figure factors per group and a category (or ``keep``) per clothing slot."""

    figure: Mapping[str, float] = field(default_factory=dict)
    clothing: Mapping[str, str] = field(default_factory=dict)

    def to_edits(self) -> LayoutEdits:
        """The :class:`LayoutEdits`; AppError for a factor outside the sliders or an unknown garment."""
        low, high = SLIDER_RANGE
        figure = []
        for group, factor in self.figure.items():
            if group not in FIGURE_GROUPS:
                raise AppError(f"unknown figure group {group!r}")
            value = float(factor) if factor is not None else 1.0
            if not low <= value <= high:
                raise AppError(f"{group} factor {value} is outside {low}..{high}")
            if value != 1.0:
                figure.append((group, value))
        clothing = []
        for slot, category in self.clothing.items():
            if slot not in CLOTHING_SLOTS or (category not in CLOTHING_SLOTS[slot] and category not in (KEEP, None)):
                raise AppError(f"unknown clothing choice {slot}={category!r}")
            if category not in (KEEP, None):
                clothing.append((slot, category))
        return LayoutEdits(figure=tuple(figure), clothing=tuple(clothing))


@dataclass(frozen=True)
class EditorSource:
    """A source ready to re-pose: the photo path's decode .. parse of one person (``person``, 0 = largest),
    prepared once and framed anew for every target pose; ``name`` says where it came from."""

    prepared: PreparedPhoto
    name: str
    person: int = 0

    @property
    def file(self) -> PhotoFile:
        return self.prepared.decoded.file


@dataclass(frozen=True)
class SourceView:
    """A prepared source and how the page shows it: the photo with the person's keypoints (display size),
    the model-frame layout (enlarged), and notes (Markdown: people, framing, parser, size, warnings)."""

    source: EditorSource
    keypoints_image: np.ndarray
    layout_image: np.ndarray
    notes: str


@dataclass(frozen=True)
class GenerateView:
    """One generation: the photo path's result, the composite at display size, the target layout panels,
    the full-size file to download and the status (Markdown: time, summary, edits, warnings)."""

    photo: PhotoResult
    image: np.ndarray
    layout_image: np.ndarray
    download: Path
    status: str


def bullets(messages: tuple[str, ...]) -> str:
    """Warnings as a Markdown list (empty when there are none)."""
    return "".join(f"\n- warning: {message}" for message in messages)


class Editor:
    """Handlers of the web editor around one :class:`Recapturer` and the photo path's other models.

    ``guard`` admits upload files (Gradio's upload folder); ``work_dir`` is the server's own folder for
    results to download and pose photos handed to the pose estimator; ``models`` replaces the photo
    path's models (e.g. stand-ins in tests); ``options`` are the photo path's (``recapture edit``'s defaults).
    """

    def __init__(self, recapturer: Recapturer, samples: list[DemoSample], rows: PoseRows, guard: UploadGuard,
                 work_dir: str | Path | None = None, limits: UploadLimits = UploadLimits(),
                 models: PhotoModels | None = None, options: PhotoOptions = PhotoOptions()) -> None:
        self.recapturer = recapturer
        self.samples = {sample.name: sample for sample in samples}
        self.rows = rows
        self.guard = guard
        self.limits = limits
        self.options = options
        self.presets = preset_library()
        self.models = models if models is not None else PhotoModels(recapturer)
        self._own_work_dir = work_dir is None
        self.work_dir = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="recapture-app-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.display_scale = max(1, int(display_factor(recapturer.image_size)))  # model-frame images
        self._lock = threading.Lock()
        self._samples: dict[str, EditorSource] = {}

    # ------------------------------------------------------------ sources
    def view(self, source: EditorSource) -> SourceView:
        """How a source is shown: the photo with the person's keypoints, its model-frame layout, notes."""
        prepared = source.prepared
        colours = self.recapturer.label_set.colorize(prepared.framed.source.layout)
        height, width = prepared.decoded.photo.shape[:2]
        notes = f"**{prepared.describe()}**; photo {width}x{height}{bullets(prepared.messages)}"
        return SourceView(source, draw_pose(prepared.decoded.photo, prepared.posed.keypoints),
                          enlarge(colours, self.display_scale), notes)

    def sample(self, name: str | None) -> SourceView:
        """The demo sample ``name`` (one of the names offered), its keypoints and layout given (no detection,
        as ``recapture edit --source-pose --source-layout``)."""
        if name not in self.samples:
            raise AppError(f"unknown demo sample {name!r}")
        if name not in self._samples:
            given = self.samples[name].source
            with self._lock:
                prepared = prepare_photo(self.models, given.image, None, self.options, given.keypoints, given.layout)
            self._samples[name] = EditorSource(prepared, name)
        return self.view(self._samples[name])

    def upload(self, path: str | None, person: int | float | None = 0) -> SourceView:
        """An uploaded photo through the photo path's decode .. frame for person ``person`` (0 = the largest,
        as ``--person``): people found and numbered, the person's pose, mask and parsing."""
        number = 0 if person is None else int(person)
        if person is not None and (number != float(person) or number < 0):
            raise AppError(f"the person number must be 0, 1, 2, ... (0 = the largest), got {person}")
        file = decode_upload(self.guard.check(path), self.limits)
        try:
            with self._lock:
                prepared = prepare_photo(self.models, file, None, replace(self.options, person=number))
        except WildPhotoError as err:
            raise AppError(f"cannot use this photo: {err}") from None
        return self.view(EditorSource(prepared, Path(str(path)).name, number))

    # ------------------------------------------------------------ target pose
    def target_pose(self, choice: PoseChoice) -> np.ndarray:
        """``(18, 2)`` target keypoints in the model frame from a preset, a row, or a pose photo (the photo
        path places them on the person: retargeted to the person's bones, at the person's scale)."""
        size = self.recapturer.image_size
        if choice.kind == "preset":
            if choice.preset not in self.presets:
                raise AppError(f"unknown pose preset {choice.preset!r}; choose one of {', '.join(self.presets)}")
            pose = self.presets[choice.preset]
            keypoints = fit_keypoints(pose.keypoints, pose.frame, size)
        elif choice.kind == "annotation row":
            keypoints = self.rows.lookup(choice.row, size)
        elif choice.kind == "pose photo":
            keypoints = self._photo_pose(choice.photo)
        else:
            raise AppError(f"unknown pose source {choice.kind!r}; choose one of {', '.join(POSE_KINDS)}")
        if missing_mask(keypoints).all():
            raise AppError("the target pose has no joint inside the model frame")
        return keypoints

    def _photo_pose(self, path: str | None) -> np.ndarray:
        photo = decode_upload(self.guard.check(path), self.limits)
        copy = self.work_dir / f"pose-{uuid.uuid4().hex}.png"
        Image.fromarray(photo.pixels).save(copy)
        try:
            with self._lock:
                return target_keypoints(str(copy), self.recapturer.image_size)
        except PoseSourceError as err:
            raise AppError(f"cannot take the pose from this photo: {str(err).replace(str(copy) + ': ', '')}") from None
        finally:
            copy.unlink(missing_ok=True)

    # ------------------------------------------------------------ generation
    def generate(self, source: EditorSource | None, pose: PoseChoice, edits: EditChoice,
                 framing: FramingChoice = FramingChoice(), layout: str | None = None) -> GenerateView:
        """Re-pose ``source`` in the chosen pose with the chosen edits, in its photo, at the photo's size;
        ``layout``: where Ŝ_B comes from (``edit --layout``; None: the editor's options)."""
        if source is None:
            raise AppError("pick a demo sample or upload a photo first")
        try:
            options = self.options if layout is None else replace(self.options, layout=layout)  # PhotoOptions checks
        except ValueError:
            raise AppError(f"unknown target layout {layout!r}: choose one of {', '.join(LAYOUT_SOURCES)}") from None
        keypoints = self.target_pose(pose)
        layout_edits = edits.to_edits()
        flags = replace(source.prepared.frame_options, allow_invent=bool(framing.allow_invent),
                        retarget=bool(framing.retarget))
        start = time.perf_counter()
        try:
            with self._lock:
                prepared = reframe(self.recapturer, replace(source.prepared, frame_options=flags), keypoints[None])
                found = render_result(self.models, prepared, layout_edits, options)
        except WildPhotoError as err:
            raise AppError(f"cannot re-pose this photo: {err}") from None
        except ValueError as err:  # a target without hips or neck to place it by
            raise AppError(f"cannot place this pose on the person: {err}") from None
        download = self._new_download(source.file)
        found = replace(found, encoded=encode(found.composite, download, source.file, DOWNLOAD_QUALITY))
        seconds = time.perf_counter() - start
        geometry = found.geometry
        changed = int((geometry.target_layout != geometry.predicted_layout).sum())
        shown = ([geometry.predicted_layout] if changed else []) + [geometry.target_layout]
        panels = [draw_pose(self.recapturer.label_set.colorize(layout), geometry.target_keypoints) for layout in shown]
        applied = [f"{g}={f:g}" for g, f in layout_edits.figure] + [f"{s}={c}" for s, c in layout_edits.clothing]
        applied += ["invent allowed"] * flags.allow_invent + ["not retargeted"] * (not flags.retarget)
        applied += [f"layout {options.layout}"] * (options.layout != "prior")
        status = (f"Generated in {seconds:.2f} s: **{found.summary()}**. Edits: {', '.join(applied) or 'none'}"
                  + (f" ({changed} layout pixels changed; left: predicted Ŝ_B, right: edited)." if changed else ".")
                  + bullets(found.messages))
        return GenerateView(photo=found, image=for_display(found.composite), layout_image=np.concatenate(panels, 1),
                            download=download, status=status)

    def _new_download(self, file: PhotoFile) -> Path:
        """A fresh ``work_dir/<id>/recapture.<suffix>`` (JPEG for JPEG/HEIC sources, WebP for WebP, else PNG);
        only the newest :data:`KEEP_DOWNLOADS` are kept."""
        folders = sorted((p for p in self.work_dir.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        for old in folders[: max(0, len(folders) - KEEP_DOWNLOADS + 1)]:
            shutil.rmtree(old, ignore_errors=True)
        folder = self.work_dir / uuid.uuid4().hex
        folder.mkdir()
        return folder / f"recapture{DOWNLOAD_SUFFIXES.get(file.format or '', '.png')}"

    def attention(self, photo: PhotoResult | None, display_xy: tuple[int, int]) -> np.ndarray:
        """For the result pixel clicked at display ``(x, y)``: the model-frame result with that pixel marked,
        beside the source with its SAT attention as a heat-map (both enlarged)."""
        if photo is None:
            raise AppError("generate an image first, then click a pixel of it")
        height, width = photo.composite.shape[:2]
        y, x = display_to_image(display_xy, (height, width))
        if not (0 <= y < height and 0 <= x < width):
            raise AppError(f"pixel ({x}, {y}) is outside the {width}x{height} result")
        pixel = photo_to_model((y, x), photo.prepared.framed.crop)
        if pixel is None:
            raise AppError(f"pixel ({x}, {y}) is outside the re-posed person's frame; click on the person")
        with self._lock:
            found = self.recapturer.attention(photo.result, pixel)
        clicked = enlarge(photo.generated.image, self.display_scale).copy()
        centre = (int((pixel[1] + 0.5) * self.display_scale), int((pixel[0] + 0.5) * self.display_scale))
        cv2.drawMarker(clicked, centre, (255, 255, 255), cv2.MARKER_CROSS, 2 * self.display_scale + 6, 2)
        return np.concatenate([clicked, enlarge(found.overlay, self.display_scale)], axis=1)

    def close(self) -> None:
        """Release the pose estimator, segmenter and face detector (if an upload started them) and the
        work folder (when the editor made it)."""
        self.models.close()
        if self._own_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)
