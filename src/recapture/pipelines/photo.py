"""The real-photo path, run: one photo (+ a target pose, edits) -> the same scene with the person re-posed.

:func:`run_photo` is the one place that calls the stages of :mod:`recapture.pipelines.stages` and
:mod:`recapture.pipelines.framing`, each once, in order, timing each (``PhotoResult.timings``, seconds
per stage name of :data:`STAGES`). :func:`prepare_photo` is its first half (decode .. frame), shared by
the video path and the web editor; :func:`render_photo` the second (geometric .. composite).
``recapture edit``, ``recapture video``, ``recapture serve`` and the demo all go through here.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from recapture.body.retarget import pose_distance
from recapture.pipelines.framing import (
    Appearance, FrameOptions, Framed, SourceWindow, appearance, frame, geometric,
)
from recapture.pipelines.inpainting import PendingFill
from recapture.pipelines.pasting import INVENTED_WARNING, Composited, composite_person
from recapture.pipelines.photo_io import PhotoFile, write_photo
from recapture.pipelines.recapture import LayoutPrediction, Recapturer, Result, check_method
from recapture.pipelines.stages import (
    STAGES, Decoded, Encoded, Parsed, Posed, Segmented, collected_warnings, decode, detect_people, encode,
    estimate_pose, given_source, parse, quiet_native_logs, segment,
)

__all__ = ["STAGES", "LOW_POSE_CONFIDENCE",
           "PhotoModels", "PhotoOptions", "PhotoRequest", "PreparedPhoto", "PhotoResult", "prepare_photo",
           "reframe", "render_photo", "render_result", "run_photo", "draw_keypoints"]


class PhotoModels:
    """The models of the photo path, created on first use and reused: the recapturer, BlazePose, the
    selfie segmenter, the face detector (only run on a wide mask component: people side by side) and the
    parser (``parser``: a LayoutParser, a :func:`load_parser` spec such as ``ccp``/``pose-mask``/a file, or
    None for the default). ``estimator``/``segmenter``/``faces`` replace BlazePose, the selfie segmenter and
    the face detector (any callables of their signatures). Close it (or use ``with``) when done."""

    def __init__(self, recapturer: Recapturer, parser: object | None = None, verbose: bool = False,
                 estimator: object | None = None, segmenter: object | None = None,
                 faces: object | None = None) -> None:
        self.recapturer = recapturer
        self.verbose = verbose
        self._parser = parser
        self._estimator = estimator
        self._segmenter = segmenter
        self._faces = faces

    @property
    def estimator(self):  # noqa: ANN201 - PoseEstimator
        if self._estimator is None:
            from recapture.pipelines.pose_estimation import PoseEstimator

            with quiet_native_logs(not self.verbose):
                self._estimator = PoseEstimator()
        return self._estimator

    @property
    def segmenter(self):  # noqa: ANN201 - PersonSegmenter
        if self._segmenter is None:
            from recapture.pipelines.pose_estimation import PersonSegmenter

            with quiet_native_logs(not self.verbose):
                self._segmenter = PersonSegmenter()
        return self._segmenter

    def faces(self, image_rgb: np.ndarray) -> np.ndarray:
        """``(K, 4)`` face boxes of ``image_rgb`` (the MediaPipe face detector, opened on first use)."""
        if self._faces is None:
            from recapture.pipelines.people import FaceDetector

            with quiet_native_logs(not self.verbose):
                self._faces = FaceDetector()
        return self._faces(image_rgb)  # type: ignore[operator]

    @property
    def parser(self):  # noqa: ANN201 - LayoutParser
        if self._parser is None or isinstance(self._parser, (str, Path)):
            from recapture.pipelines.human_parsing import default_parser, load_parser

            self._parser = default_parser() if self._parser is None else load_parser(self._parser)
        return self._parser

    def close(self) -> None:
        """Release the MediaPipe graphs."""
        for model in (self._estimator, self._segmenter, self._faces):
            if hasattr(model, "close"):
                model.close()  # type: ignore[union-attr]
        self._estimator = self._segmenter = self._faces = None

    def __enter__(self) -> PhotoModels:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Warn when the mean BlazePose visibility of the joints used (those present) is below this (clearly seen
#: people score 0.9-0.99 on CCP photos; joints below 0.5 are dropped as missing).
LOW_POSE_CONFIDENCE = 0.8

#: Where a photo's target layout Ŝ_B comes from (see :attr:`PhotoOptions.layout`).
LAYOUT_SOURCES = ("auto", "prior", "network")
#: ``layout="auto"`` takes the geometric network's Ŝ_B when the target pose is more than this far from the
#: source's (:func:`recapture.body.retarget.pose_distance`, torso lengths), the prior otherwise (docs/models.md).
AUTO_LAYOUT_CHANGE = 0.1


@dataclass(frozen=True)
class PhotoOptions:
    """How a photo is handled: person (0 = largest), framing (see :class:`FrameOptions`), the long side
    of the analysis copy, an optional cap on the photo's long side (``max_side``, e.g. video), the
    inpainting method and the feathering of the composite (photo pixels; None = 0.5% of the crop)."""

    person: int = 0
    frame: FrameOptions = FrameOptions()
    analysis_side: int = 1024
    max_side: int | None = None
    inpaint_method: str = "telea"
    feather_px: float | None = None
    method: str = "model"  # "model" or "warp" (the training-free keypoint warp; see recapture.METHODS)
    #: Ŝ_B of a real photo: "prior" (the keypoint part-affine warp of the parsed layout), "network" (the
    #: geometric network's correction of it) or "auto": the network when the pose changes by more than
    #: :data:`AUTO_LAYOUT_CHANGE`, the prior for a pose that barely moves (the network re-draws layouts that need
    #: no change) or when no geometric network is at hand. The prior is the default: on a real photo's side view
    #: the network's wider head can show the face twice (docs/models.md).
    layout: str = "prior"

    def __post_init__(self) -> None:
        check_method(self.method)
        if self.layout not in LAYOUT_SOURCES:
            raise ValueError(f"unknown layout source {self.layout!r}; choose one of {', '.join(LAYOUT_SOURCES)}")


@dataclass(frozen=True)
class PreparedPhoto:
    """decode .. frame of one photo: the stages' outputs, people found, messages for the user, timings."""

    decoded: Decoded
    posed: Posed
    segmented: Segmented
    parsed: Parsed
    framed: Framed
    people: int
    messages: tuple[str, ...]
    timings: dict[str, float]
    #: The old person's inpainting, started when its mask was known (reused by every render of this photo).
    hole_fill: PendingFill
    #: The framing options the frame stage used (a given source's allow any person height).
    frame_options: FrameOptions = FrameOptions()

    def describe(self) -> str:
        """People found, framing (and a low pose confidence), parser: the start of the summary line."""
        confidence = self.posed.pose_confidence()
        low = (f", low pose confidence {confidence:.2f}" if confidence is not None and confidence < LOW_POSE_CONFIDENCE
               else "")
        return (f"{self.people} {'person' if self.people == 1 else 'people'} found, framing {self.framed.extent}"
                f"{low}, parser {self.parsed.parser}")


@dataclass(frozen=True)
class PhotoResult:
    """Everything one recapture of a photo produced; ``timings``: seconds per stage (:data:`STAGES`)."""

    prepared: PreparedPhoto
    geometry: LayoutPrediction
    generated: Appearance
    composited: Composited
    encoded: Encoded | None
    messages: tuple[str, ...]
    timings: dict[str, float]

    @property
    def photo(self) -> np.ndarray:
        return self.prepared.decoded.photo

    @property
    def composite(self) -> np.ndarray:
        return self.composited.image

    @property
    def result(self) -> Result:
        """The model-frame recapture (for attention maps and layout outputs)."""
        framed = self.prepared.framed
        return Result(image=self.generated.image, target_layout=self.geometry.target_layout,
                      predicted_layout=self.geometry.predicted_layout,
                      target_keypoints=self.geometry.target_keypoints, source=framed.source)

    def summary(self) -> str:
        """One line: people found, framing (and a low pose confidence), parser, output size, time."""
        height, width = self.composited.image.shape[:2]
        return f"{self.prepared.describe()}, output {width}x{height}, {sum(self.timings.values()):.1f} s"


@dataclass(frozen=True)
class PhotoRequest:
    """One photo recapture. target: ``(18, 2)`` y/x target keypoints in any frame (None: the source's own
    pose, a round trip); source_pose/source_layout: known photo-frame keypoints and labels of the model's
    label set (a dataset image: no detection, segmentation or parsing); out: where to write (None: not
    written); invented_mask_out: a PNG of the invented pixels; quality: JPEG/WebP quality."""

    source: str | Path | np.ndarray | PhotoFile
    target: np.ndarray | None = None
    edits: object | None = None
    source_pose: np.ndarray | None = None
    source_layout: np.ndarray | None = None
    out: Path | None = None
    invented_mask_out: Path | None = None
    quality: int = 95
    options: PhotoOptions = field(default_factory=PhotoOptions)


class _Clock:
    """Per-stage wall time, accumulated (a video adds every frame's)."""

    def __init__(self, timings: dict[str, float] | None = None) -> None:
        self.timings: dict[str, float] = dict(timings or {})

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


def prepare_photo(models: PhotoModels | Recapturer, source: str | Path | np.ndarray | PhotoFile,
                  targets: np.ndarray | None = None, options: PhotoOptions = PhotoOptions(),
                  source_pose: np.ndarray | None = None, source_layout: np.ndarray | None = None) -> PreparedPhoto:
    """decode -> detect -> segment -> pose -> parse -> frame (``targets``: ``(N, 18, 2)`` poses to place)."""
    if isinstance(models, Recapturer):
        with PhotoModels(models) as owned:
            return prepare_photo(owned, source, targets, options, source_pose, source_layout)
    clock, messages = _Clock(), []
    recapturer = models.recapturer
    with clock.stage("decode"):
        decoded = decode(source, options.max_side, options.analysis_side)
    people = 1
    if source_pose is not None or source_layout is not None:
        if source_pose is None or source_layout is None:
            raise ValueError("a known source needs both its keypoints and its layout")
        posed, segmented, parsed = given_source(decoded, source_pose, source_layout, recapturer.label_set)
        hole_fill = PendingFill(decoded.photo, segmented.person_mask, options.inpaint_method)
        frame_options = replace(options.frame, min_height=0.0)  # a dataset image's person may be small
    else:
        with collected_warnings(messages), quiet_native_logs(not models.verbose):
            with clock.stage("detect"):
                found = detect_people(decoded, models.segmenter, options.person, models.faces)
            with clock.stage("segment"):  # it needs only the detection: the fill then runs beside the pose
                segmented = segment(decoded, found)
            hole_fill = PendingFill(decoded.photo, segmented.person_mask, options.inpaint_method)
            with clock.stage("pose"):
                posed = estimate_pose(decoded, found, models.estimator)
            with clock.stage("parse"):
                parsed = parse(decoded, posed, segmented, models.parser, recapturer.label_set)
        people = found.count
        confidence = posed.pose_confidence()
        if confidence is not None and confidence < LOW_POSE_CONFIDENCE:
            messages.append(f"low pose confidence: the joints used have a mean visibility of {confidence:.2f} "
                            f"(below {LOW_POSE_CONFIDENCE}); the pose, and so the framing, may be wrong")
        if people > 1:
            messages.append(f"{people} people found; re-posing person {options.person} (0 is the largest; "
                            f"--person N picks another)")
        frame_options = options.frame
    with clock.stage("frame"):
        framed = _frame(recapturer, decoded, posed, segmented, parsed, targets, frame_options)
    return PreparedPhoto(decoded=decoded, posed=posed, segmented=segmented, parsed=parsed, framed=framed,
                         people=people, messages=tuple(messages), timings=clock.timings, frame_options=frame_options,
                         hole_fill=hole_fill)


def _frame(recapturer: Recapturer, decoded: Decoded, posed: Posed, segmented: Segmented, parsed: Parsed,
           targets: np.ndarray | None, options: FrameOptions) -> Framed:
    return frame(decoded.photo, posed, segmented, parsed, np.empty((0, 18, 2)) if targets is None else targets,
                 recapturer.image_size, options)


def reframe(recapturer: Recapturer, prepared: PreparedPhoto, targets: np.ndarray | None) -> PreparedPhoto:
    """``prepared`` framed anew for ``targets`` ``(N, 18, 2)`` (any frame): only the frame stage runs again,
    decode .. parse are reused (the web editor prepares a photo once and renders many poses of it)."""
    clock = _Clock({name: spent for name, spent in prepared.timings.items() if name != "frame"})
    with clock.stage("frame"):
        framed = _frame(recapturer, prepared.decoded, prepared.posed, prepared.segmented, prepared.parsed, targets,
                        prepared.frame_options)
    return replace(prepared, framed=framed, timings=clock.timings)


def render_photo(models: PhotoModels, prepared: PreparedPhoto, index: int = 0, edits: object | None = None,
                 background: np.ndarray | None = None, options: PhotoOptions = PhotoOptions(),
                 timings: dict[str, float] | None = None, source: SourceWindow | None = None
                 ) -> tuple[LayoutPrediction, Appearance, Composited, dict[str, float]]:
    """geometric -> appearance -> composite for placed target ``index``; timings added to ``timings``;
    ``source``: the photo-resolution source (:func:`~recapture.pipelines.framing.source_window`) when a
    caller renders many targets of one prepared photo (a video)."""
    clock = _Clock(timings)
    photo, person_mask = prepared.decoded.photo, prepared.segmented.person_mask
    with clock.stage("geometric"):
        method = layout_method(options, models.recapturer, prepared.framed.source.keypoints,
                               prepared.framed.targets[index])
        geometry = geometric(models.recapturer, prepared.framed, index, edits, method)
    with clock.stage("appearance"):
        generated = appearance(models.recapturer, prepared.framed, geometry, options.method, photo, source)
    with clock.stage("composite"):
        fill = prepared.hole_fill.result(options.inpaint_method) if background is None else None
        composited = composite_person(photo, person_mask, prepared.framed, geometry, generated, background,
                                      options.inpaint_method, options.feather_px, fill)
    return geometry, generated, composited, clock.timings


def layout_method(options: PhotoOptions, recapturer: Recapturer, source_pose: np.ndarray,
                  target_pose: np.ndarray) -> str:
    """The ``method`` of :meth:`Recapturer.predict_layout` for ``options.layout`` (model-frame ``(18, 2)`` poses):
    "warp" (the prior) or "model" (the geometric network)."""
    if options.method == "warp" or options.layout == "prior":
        return "warp"
    if options.layout == "network":
        return "model"
    moved = pose_distance(source_pose, target_pose) > AUTO_LAYOUT_CHANGE
    return "model" if moved and recapturer.has_geometric else "warp"


def run_photo(request: PhotoRequest, models: PhotoModels) -> PhotoResult:
    """Every stage of one photo, once, in order (see the module docstring)."""
    options = request.options
    own_pose = request.target is None
    targets = None if own_pose else np.asarray(request.target, dtype=np.float64)[None]
    prepared = prepare_photo(models, request.source, targets, options, request.source_pose, request.source_layout)
    if own_pose:
        prepared = _own_pose(prepared)
    rendered = render_result(models, prepared, request.edits, options)
    encoded = None
    clock = _Clock(rendered.timings)
    if request.out is not None:
        with clock.stage("encode"):
            request.out.parent.mkdir(parents=True, exist_ok=True)
            encoded = encode(rendered.composite, request.out, prepared.decoded.file, request.quality)
    if request.invented_mask_out is not None:
        write_photo(request.invented_mask_out, (rendered.composited.invented * 255).astype(np.uint8))
    return replace(rendered, encoded=encoded, timings=clock.timings)


def render_result(models: PhotoModels, prepared: PreparedPhoto, edits: object | None = None,
                  options: PhotoOptions = PhotoOptions(), index: int = 0) -> PhotoResult:
    """:func:`render_photo` of placed target ``index`` as a (not yet encoded) PhotoResult whose messages add
    the invented-share warning to the prepared photo's."""
    geometry, generated, composited, timings = render_photo(models, prepared, index, edits, None, options,
                                                            prepared.timings)
    messages = list(prepared.messages)
    if composited.invented_share > INVENTED_WARNING:
        messages.append(f"{composited.invented_share:.0%} of the new person is invented rather than copied from "
                        f"the photo (more than {INVENTED_WARNING:.0%})")
    return PhotoResult(prepared=prepared, geometry=geometry, generated=generated, composited=composited,
                       encoded=None, messages=tuple(messages), timings=timings)


def _own_pose(prepared: PreparedPhoto) -> PreparedPhoto:
    """The prepared photo with its own pose as the one target (a round trip)."""
    framed = prepared.framed
    framed = replace(framed, targets=framed.source.keypoints[None], targets_photo=prepared.posed.keypoints[None])
    return replace(prepared, framed=framed)


def draw_keypoints(image: np.ndarray, keypoints: np.ndarray, radius: int | None = None) -> np.ndarray:
    """Skeleton overlay: limbs as lines, joints as dots (missing joints skipped)."""
    import cv2

    from recapture.body.keypoints import LIMBS, missing_mask

    out = np.ascontiguousarray(image.copy())
    size = radius or max(1, round(min(image.shape[:2]) / 80))
    present = ~missing_mask(keypoints)
    for a, b in LIMBS:
        if present[a] and present[b]:
            pa = (int(round(keypoints[a, 1])), int(round(keypoints[a, 0])))
            pb = (int(round(keypoints[b, 1])), int(round(keypoints[b, 0])))
            cv2.line(out, pa, pb, (0, 220, 255), max(1, size // 2), cv2.LINE_AA)
    for joint in np.flatnonzero(present):
        centre = (int(round(keypoints[joint, 1])), int(round(keypoints[joint, 0])))
        cv2.circle(out, centre, size, (255, 40, 40), -1, cv2.LINE_AA)
    return out
