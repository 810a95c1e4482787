"""The web editor's request handlers, free of Gradio so that tests can call them directly.

An :class:`Editor` holds the model and the server-side choices (demo samples, pose rows); each handler
takes plain values from the page and returns arrays to show, or raises :class:`AppError` with a
message for the user. Images shown in the page are enlarged ``display_scale`` times (nearest), so a
click at display pixel ``(x, y)`` is model pixel ``(y // scale, x // scale)``.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import cv2
import numpy as np
from PIL import Image

from recapture.app.inputs import AppError, DemoSample, PoseRows, UploadGuard, UploadLimits, decode_upload
from recapture.body.edits import CLOTHING_SLOTS, FIGURE_GROUPS, LayoutEdits
from recapture.body.keypoints import LIMBS, missing_mask
from recapture.pipelines.poses import PoseSourceError, fit_keypoints, preset_library, target_keypoints
from recapture.pipelines.recapture import Recapturer, Result, SourceInput

if TYPE_CHECKING:
    from recapture.pipelines.photo import PhotoModels

#: What the clothing controls offer besides the categories: leave the slot as predicted.
KEEP = "keep"
#: Range of the figure sliders (1.0 = unchanged).
SLIDER_RANGE: tuple[float, float] = (0.6, 1.5)
#: Pose sources the page offers.
POSE_KINDS: tuple[str, ...] = ("preset", "annotation row", "pose photo")
DISPLAY_HEIGHT = 384
#: Result PNGs kept for download in the work folder (Gradio serves its own copies).
KEEP_DOWNLOADS = 32


@dataclass(frozen=True)
class PoseChoice:
    """The target pose as the page states it: ``kind`` picks which of the other fields counts."""

    kind: str = "preset"
    preset: str | None = None
    row: str = ""
    photo: str | None = None  # an upload file written by Gradio


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
class SourceView:
    """A loaded source and how the page shows it (``(h, w, 3)`` uint8, enlarged)."""

    source: SourceInput
    keypoints_image: np.ndarray
    layout_image: np.ndarray


@dataclass(frozen=True)
class GenerateView:
    """One generation: the result, its images for the page, the PNG to download, a status line."""

    result: Result
    image: np.ndarray
    layout_image: np.ndarray
    download: Path
    status: str


def enlarge(image: np.ndarray, scale: int) -> np.ndarray:
    """``image`` repeated ``scale`` times along both axes (nearest neighbour)."""
    return np.ascontiguousarray(image.repeat(scale, axis=0).repeat(scale, axis=1)) if scale > 1 else image


def draw_pose(image: np.ndarray, keypoints: np.ndarray, scale: int) -> np.ndarray:
    """``image`` enlarged by ``scale`` with the present ``(18, 2)`` y/x keypoints and limbs drawn on it."""
    out = enlarge(image, scale).copy()
    points = (np.asarray(keypoints, dtype=np.float64) + 0.5) * scale
    present = ~missing_mask(np.asarray(keypoints))
    thickness = max(1, scale // 3)
    for a, b in LIMBS:
        if present[a] and present[b]:
            cv2.line(out, (int(points[a, 1]), int(points[a, 0])), (int(points[b, 1]), int(points[b, 0])),
                     (255, 255, 0), thickness, cv2.LINE_AA)
    for index in np.flatnonzero(present):
        cv2.circle(out, (int(points[index, 1]), int(points[index, 0])), thickness + 1, (255, 0, 0), -1, cv2.LINE_AA)
    return out


class Editor:
    """Handlers of the web editor around one :class:`Recapturer`.

    ``guard`` admits upload files (Gradio's upload folder); ``work_dir`` is the server's own folder for
    results to download and pose photos handed to the pose estimator.
    """

    def __init__(self, recapturer: Recapturer, samples: list[DemoSample], rows: PoseRows, guard: UploadGuard,
                 work_dir: str | Path | None = None, limits: UploadLimits = UploadLimits()) -> None:
        self.recapturer = recapturer
        self.samples = {sample.name: sample for sample in samples}
        self.rows = rows
        self.guard = guard
        self.limits = limits
        self.presets = preset_library()
        self._own_work_dir = work_dir is None
        self.work_dir = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="recapture-app-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        height = recapturer.image_size[0]
        self.display_scale = max(1, round(DISPLAY_HEIGHT / height))
        self._lock = threading.Lock()
        self._photo_models: PhotoModels | None = None
        #: Framing and people messages of the last upload, for the page.
        self.messages: tuple[str, ...] = ()

    # ------------------------------------------------------------ sources
    def view(self, source: SourceInput) -> SourceView:
        """How a source is shown: keypoints over the image, and its colourised layout."""
        colours = self.recapturer.label_set.colorize(source.layout)
        return SourceView(source, draw_pose(source.image, source.keypoints, self.display_scale),
                          enlarge(colours, self.display_scale))

    def sample(self, name: str | None) -> SourceView:
        """The demo sample ``name`` (one of the names offered)."""
        if name not in self.samples:
            raise AppError(f"unknown demo sample {name!r}")
        return self.view(self.samples[name].source)

    def upload(self, path: str | None) -> SourceView:
        """An uploaded portrait through the real-photo stages (decode .. frame): its person found,
        cropped to the model frame and parsed (the parser of the photo path)."""
        photo = decode_upload(self.guard.check(path), self.limits)
        from recapture.pipelines.photo import PhotoModels, prepare_photo
        from recapture.pipelines.photo_io import WildPhotoError

        with self._lock:
            if self._photo_models is None:
                self._photo_models = PhotoModels(self.recapturer)
            try:
                prepared = prepare_photo(self._photo_models, photo)
            except WildPhotoError as err:
                raise AppError(f"cannot use this portrait: {err}") from None
        self.messages = prepared.messages
        return self.view(prepared.framed.source)

    # ------------------------------------------------------------ target pose
    def target_pose(self, choice: PoseChoice) -> np.ndarray:
        """``(18, 2)`` target keypoints in the model frame from a preset, a row, or a pose photo."""
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
        Image.fromarray(photo).save(copy)
        try:
            with self._lock:
                return target_keypoints(str(copy), self.recapturer.image_size)
        except PoseSourceError as err:
            raise AppError(f"cannot take the pose from this photo: {str(err).replace(str(copy) + ': ', '')}") from None
        finally:
            copy.unlink(missing_ok=True)

    # ------------------------------------------------------------ generation
    def generate(self, source: SourceInput | None, pose: PoseChoice, edits: EditChoice) -> GenerateView:
        """Recapture ``source`` in the chosen pose with the chosen edits."""
        if source is None:
            raise AppError("pick a demo sample or upload a portrait first")
        keypoints = self.target_pose(pose)
        layout_edits = edits.to_edits()
        start = time.perf_counter()
        with self._lock:
            result = self.recapturer(source.image, keypoints, source_pose=source.keypoints,
                                     source_layout=source.layout, edits=layout_edits)
        seconds = time.perf_counter() - start
        changed = int((result.target_layout != result.predicted_layout).sum())
        download = self._new_download()
        Image.fromarray(result.image).save(download)
        shown = ([result.predicted_layout] if changed else []) + [result.target_layout]
        panels = [draw_pose(self.recapturer.label_set.colorize(layout), keypoints, self.display_scale)
                  for layout in shown]
        applied = [f"{g}={f:g}" for g, f in layout_edits.figure] + [f"{s}={c}" for s, c in layout_edits.clothing]
        status = (f"Generated in {seconds:.2f} s. Edits: {', '.join(applied) or 'none'}"
                  + (f" ({changed} layout pixels changed; left: predicted Ŝ_B, right: edited)." if changed else "."))
        return GenerateView(result=result, image=enlarge(result.image, self.display_scale),
                            layout_image=np.concatenate(panels, axis=1), download=download,
                            status=status)

    def _new_download(self) -> Path:
        """A fresh ``work_dir/<id>/recapture.png``; only the newest :data:`KEEP_DOWNLOADS` are kept."""
        folders = sorted((p for p in self.work_dir.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        for old in folders[: max(0, len(folders) - KEEP_DOWNLOADS + 1)]:
            shutil.rmtree(old, ignore_errors=True)
        folder = self.work_dir / uuid.uuid4().hex
        folder.mkdir()
        return folder / "recapture.png"

    def attention(self, result: Result | None, display_xy: tuple[int, int]) -> np.ndarray:
        """The result with the pixel clicked at display ``(x, y)`` marked, beside the source with that
        pixel's SAT attention as a heat-map (both enlarged)."""
        if result is None:
            raise AppError("generate an image first, then click a pixel of it")
        height, width = self.recapturer.image_size
        x, y = (int(v) // self.display_scale for v in display_xy)
        if not (0 <= y < height and 0 <= x < width):
            raise AppError(f"pixel ({x}, {y}) is outside the {width}x{height} result")
        with self._lock:
            found = self.recapturer.attention(result, (y, x))
        clicked = enlarge(result.image, self.display_scale).copy()
        centre = (int((x + 0.5) * self.display_scale), int((y + 0.5) * self.display_scale))
        cv2.drawMarker(clicked, centre, (255, 255, 255), cv2.MARKER_CROSS, 2 * self.display_scale + 6, 2)
        return np.concatenate([clicked, enlarge(found.overlay, self.display_scale)], axis=1)

    def close(self) -> None:
        """Release the pose estimator and segmenter (if an upload started them) and the work folder
        (when the editor made it)."""
        if self._photo_models is not None:
            self._photo_models.close()
        self._photo_models = None
        if self._own_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)
