"""Video recapture (paper §4.6, A.3): the pose of every frame of a reference video drives the source
person; one frame per reference frame, written at the reference FPS with the reference's audio.

:func:`recapture_photo_video` (``recapture video``) composites every frame into the source photo's
scene through the real-photo stages: decode .. frame run once for the whole clip (one crop window
holding every placed pose, the background inpainted once), then geometric, appearance and composite
per frame (:func:`composited_frames`; what depends on the source only runs once). The output is the
photo's size, capped at ``size`` pixels on the long side (an odd side padded by one row/column), written
atomically; its flicker is measured on the written file (:class:`recapture.pipelines.video_io.FlickerMeter`).
:func:`recapture_video` drives a model-frame source (a dataset sample) and writes the raw generated
frames; its framing is one fixed window for the whole clip (the union of the person's keypoints over
all frames, padded), so the person moves inside the model frame the way they move in the reference.
"""

from __future__ import annotations

import time
from contextlib import closing, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import numpy as np
from rich.progress import Progress

from recapture.body.keypoints import missing_mask
from recapture.pipelines.poses import fit_keypoints
from recapture.pipelines.recapture import Recapturer, SourceInput

if TYPE_CHECKING:
    from recapture.pipelines.pasting import Composited
    from recapture.pipelines.photo import PhotoModels, PhotoOptions, PreparedPhoto


@dataclass(frozen=True)
class VideoResult:
    """What :func:`recapture_video` wrote."""

    path: Path
    frames: int
    fps: float
    target_keypoints: np.ndarray  # (T, 18, 2) model-frame keypoints that drove each frame
    #: seconds per photo stage (summed over the frames), plus "track" (the reference's pose estimation),
    #: "encode" (writing the file) and "flicker" (reading it back to measure the flicker)
    timings: dict[str, float] | None = None
    size: tuple[int, int] | None = None  # (H, W) of the written frames
    #: mean absolute change (0-255) between consecutive frames of the written file in the static background
    #: (the pasted person's alpha 0 in both frames) and inside the person (alpha >= 0.5 in both); None for
    #: model-frame videos (see :class:`recapture.pipelines.video_io.FlickerMeter`)
    flicker: tuple[float, float] | None = None
    messages: tuple[str, ...] = ()  # warnings for the user (people found, pose confidence, invented share)
    people: int | None = None  # people found in the source photo
    framing: str | None = None  # visible extent of the source person (framing.EXTENTS)
    parser: str | None = None  # the layout parser used

    def summary(self) -> str:
        """One line, like ``recapture edit``'s: people, framing, parser, output size, frames, time, flicker."""
        seconds = sum((self.timings or {}).values())
        height, width = self.size or (0, 0)
        people = "" if self.people is None else f"{self.people} {'person' if self.people == 1 else 'people'} found, "
        framing = "" if self.framing is None else f"framing {self.framing}, "
        parser = "" if self.parser is None else f"parser {self.parser}, "
        flicker = ("" if self.flicker is None else
                   f"; flicker {self.flicker[0]:.2f} background, {self.flicker[1]:.2f} person")
        return (f"{people}{framing}{parser}output {width}x{height}, {self.frames} frames at {self.fps:g} FPS, "
                f"{seconds:.1f} s ({self.frames / max(seconds, 1e-9):.2f} frames/s){flicker}")


def track_to_model(track: np.ndarray, model_size: tuple[int, int], margin: float = 0.12) -> np.ndarray:
    """``(T, 18, 2)`` video-frame keypoints -> model frame through one fixed window around all frames."""
    present = ~missing_mask(track.reshape(-1, 2))
    points = track.reshape(-1, 2)[present]
    if not len(points):
        raise ValueError("the pose track has no joint in any frame")
    top, bottom = points[:, 0].min(), points[:, 0].max()
    height = (bottom - top) * (1 + 2 * margin)
    width = height * model_size[1] / model_size[0]
    centre_x = (points[:, 1].min() + points[:, 1].max()) / 2.0
    origin = np.array([top - margin * (bottom - top), centre_x - width / 2.0])
    frame = (int(round(height)), int(round(width)))
    out = []
    for keypoints in track:
        shifted = np.where(missing_mask(keypoints)[:, None], -1.0, keypoints - origin)
        out.append(fit_keypoints(shifted, frame, model_size))
    return np.stack(out)


def generate_frames(recapturer: Recapturer, source: SourceInput, poses: np.ndarray,
                    edits: object | None = None, progress: bool = True) -> Iterable[np.ndarray]:
    """Yield one generated ``(H, W, 3)`` uint8 frame per model-frame pose. A pose without any joint repeats
    the previous frame (leading ones take the first posed frame), so the output keeps the frame count."""
    posed = [i for i, keypoints in enumerate(poses) if not missing_mask(keypoints).all()]
    if not posed:
        raise ValueError("no frame has a joint inside the model frame")

    def render(keypoints: np.ndarray) -> np.ndarray:
        return recapturer(source.image, keypoints, source_pose=source.keypoints, source_layout=source.layout,
                          edits=edits).image

    last = render(poses[posed[0]])
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("recapturing frames", total=len(poses))
        for index, keypoints in enumerate(poses):
            if index > posed[0] and not missing_mask(keypoints).all():
                last = render(keypoints)
            yield last
            bar.advance(task)


def recapture_video(recapturer: Recapturer, source: SourceInput, reference: str | Path, out: str | Path, *,
                    estimator: Callable | None = None, smoothing: bool = True, edits: object | None = None,
                    progress: bool = True) -> VideoResult:
    """Drive ``source`` with the poses of ``reference``; write ``out`` at the reference FPS."""
    from recapture.pipelines.video_io import video_poses, write_video

    if estimator is None:
        from recapture.pipelines.wild import PoseEstimator

        with PoseEstimator() as owned:
            track = video_poses(reference, owned, smoothing=smoothing)
    else:
        track = video_poses(reference, estimator, smoothing=smoothing)
    poses = track_to_model(track.keypoints, recapturer.image_size)
    count = write_video(out, generate_frames(recapturer, source, poses, edits, progress), track.fps)
    return VideoResult(path=Path(out), frames=count, fps=track.fps, target_keypoints=poses)


def recapture_pose_sequence(recapturer: Recapturer, source: SourceInput, poses: np.ndarray, out: str | Path,
                            fps: float, edits: object | None = None, progress: bool = True) -> VideoResult:
    """Drive ``source`` with model-frame poses ``(T, 18, 2)`` (e.g. interpolated presets); write ``out``."""
    from recapture.pipelines.video_io import write_video

    count = write_video(out, generate_frames(recapturer, source, poses, edits, progress), fps)
    return VideoResult(path=Path(out), frames=count, fps=fps, target_keypoints=poses)


def interpolate_poses(keyframes: list[np.ndarray], steps: int) -> np.ndarray:
    """Linear interpolation between model-frame keyframes, ``steps`` frames per segment (missing joints
    are taken from whichever keyframe has them)."""
    frames = []
    for a, b in zip(keyframes[:-1], keyframes[1:]):
        a_missing, b_missing = missing_mask(a), missing_mask(b)
        a_full = np.where(a_missing[:, None], b, a)
        b_full = np.where(b_missing[:, None], a, b)
        both_missing = a_missing & b_missing
        for t in np.linspace(0.0, 1.0, steps, endpoint=False):
            pose = (1 - t) * a_full + t * b_full
            pose[both_missing] = -1.0
            frames.append(pose)
    frames.append(keyframes[-1])
    return np.stack(frames)


#: Default cap of the composited video's long side (pixels).
VIDEO_MAX_SIDE = 1080
_PER_FRAME = ("geometric", "appearance", "composite")


def composited_frames(models: PhotoModels, prepared: PreparedPhoto, background: np.ndarray, options: PhotoOptions,
                      edits: object | None = None, timings: dict[str, float] | None = None,
                      reuse_source: bool = True) -> Iterator[Composited]:
    """One composited frame per placed target of ``prepared`` on the once-inpainted ``background``; a target
    without any joint repeats the previous frame (leading ones take the first posed frame). ``timings`` gains
    the per-frame stage times. With ``reuse_source`` the work that depends on the source only runs once: the
    photo-resolution window (:func:`recapture.pipelines.framing.source_window`) and the correspondence
    network's source encoder (:func:`recapture.pipelines.source_reuse.reusing_source_encoder`); the frames
    are the same either way."""
    from recapture.pipelines.framing import source_window
    from recapture.pipelines.photo import render_photo
    from recapture.pipelines.source_reuse import reusing_source_encoder

    targets = prepared.framed.targets
    posed = {i for i, keypoints in enumerate(targets) if not missing_mask(keypoints).all()}
    if not posed:
        raise ValueError("no frame's pose lands inside the photo's frame")
    first = min(posed)
    timings = {} if timings is None else timings
    window = None
    if reuse_source and options.method != "warp":
        window = source_window(models.recapturer, prepared.framed, prepared.decoded.photo)
    with reusing_source_encoder(models.recapturer) if reuse_source else nullcontext():
        last = None
        for index in range(len(targets)):
            if last is None or index in posed:
                _, _, last, spent = render_photo(models, prepared, index if index in posed else first, edits,
                                                 background, options, None, window)
                for name, seconds in spent.items():
                    timings[name] = timings.get(name, 0.0) + seconds
            yield last


def recapture_photo_video(models: PhotoModels, source: object, reference: str | Path, out: str | Path, *,
                          size: int = VIDEO_MAX_SIDE, smoothing: bool = True, edits: object | None = None,
                          progress: bool = True, options: PhotoOptions | None = None,
                          source_pose: np.ndarray | None = None,
                          source_layout: np.ndarray | None = None, estimator: Callable | None = None) -> VideoResult:
    """The person of photo ``source`` moving like the person of ``reference``, composited into the photo.

    models: a :class:`recapture.pipelines.photo.PhotoModels`; source: a photo path, array or PhotoFile;
    options: :class:`recapture.pipelines.photo.PhotoOptions` (its ``max_side`` is set to ``size``);
    source_pose/source_layout: known photo-frame keypoints and labels (a dataset image). ``out`` is written
    atomically; its flicker is measured on the written file read back (:class:`FlickerMeter`).
    """
    from dataclasses import replace

    from recapture.pipelines.pasting import INVENTED_WARNING
    from recapture.pipelines.photo import PhotoOptions, prepare_photo
    from recapture.pipelines.stages import quiet_native_logs
    from recapture.pipelines.video_io import FlickerMeter, even_size, video_poses, write_video
    from recapture.pipelines.inpainting import apply_fill

    if size < 16:
        raise ValueError(f"--size must be at least 16 pixels, got {size}")
    if isinstance(source, (str, Path)) and Path(source).resolve() == Path(out).resolve():
        raise ValueError(f"{out} is also the source photo; give another output name")
    options = replace(options or PhotoOptions(), max_side=size)
    tracking = time.perf_counter()
    if estimator is None:
        from recapture.pipelines.pose_estimation import PoseEstimator

        with quiet_native_logs(not getattr(models, "verbose", False)):
            with PoseEstimator(static_image_mode=False) as owned:
                track = video_poses(reference, owned, smoothing=smoothing)
    else:
        track = video_poses(reference, estimator, smoothing=smoothing)
    tracking = time.perf_counter() - tracking
    prepared = prepare_photo(models, source, track.keypoints, options, source_pose, source_layout)
    timings = {"track": tracking, **prepared.timings}
    photo = prepared.decoded.photo
    if all(missing_mask(keypoints).all() for keypoints in prepared.framed.targets):
        raise ValueError(f"{reference}: no frame's pose lands inside the photo's frame")
    background = apply_fill(photo, prepared.hole_fill.result(options.inpaint_method))  # = inpaint_background
    meter, invented = FlickerMeter(), []

    def frames() -> Iterator[np.ndarray]:
        made = composited_frames(models, prepared, background, options, edits, timings)
        with closing(made), Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("recapturing frames", total=len(prepared.framed.targets))
            for composited in made:
                meter.add(composited.alpha)
                invented.append(composited.invented_share)
                yield composited.image
                bar.advance(task)

    start, rendering = time.perf_counter(), sum(timings.get(name, 0.0) for name in _PER_FRAME)
    count = write_video(out, frames(), track.fps, audio_from=reference)
    rendered = sum(timings.get(name, 0.0) for name in _PER_FRAME) - rendering
    timings["encode"] = timings.get("encode", 0.0) + time.perf_counter() - start - rendered
    measuring = time.perf_counter()
    flicker = meter.measure(out)
    timings["flicker"] = time.perf_counter() - measuring
    messages = list(prepared.messages)
    over = sum(share > INVENTED_WARNING for share in invented)
    if over:
        messages.append(f"in {over} of {len(invented)} frames more than {INVENTED_WARNING:.0%} of the new person is "
                        f"invented rather than copied from the photo (up to {max(invented):.0%})")
    return VideoResult(path=Path(out), frames=count, fps=track.fps, target_keypoints=prepared.framed.targets,
                       timings=timings, size=even_size(photo.shape[:2]), flicker=flicker, messages=tuple(messages),
                       people=prepared.people, framing=prepared.framed.extent, parser=prepared.parsed.parser)


def run_video_command(source: str | Path, reference: str | Path, out: str | Path, *, model: str = "default",
                      source_pose: str | None = None, source_layout: str | Path | None = None, smoothing: bool = True,
                      size: int = VIDEO_MAX_SIDE, parser: str | None = None, person: int = 0,
                      allow_invent: bool = False, retarget: bool = True, verbose: bool = False,
                      layout: str = "prior") -> VideoResult:
    """``recapture video``: load the model, read a dataset source's pose/layout files when given, run
    :func:`recapture_photo_video` (``layout``: each frame's Ŝ_B, :attr:`PhotoOptions.layout`)."""
    from recapture.pipelines.framing import FrameOptions
    from recapture.pipelines.photo import PhotoModels, PhotoOptions
    from recapture.pipelines.photo_io import output_format, read_photo

    if Path(out).suffix.lower() not in (".mp4", ".mkv", ".mov", ".avi", ".webm"):
        output_format(out)  # names the accepted image suffixes; videos take .mp4/.mkv/.mov/.avi/.webm
    recapturer = Recapturer.from_pretrained(model)
    photo = read_photo(source)
    keypoints = labels = None
    if source_pose is not None:
        from recapture.data.formats import read_layout
        from recapture.pipelines.poses import load_pose

        if source_layout is None:
            raise ValueError("--source-pose needs --source-layout too (or give neither for a photo in the wild)")
        keypoints = load_pose(source_pose, frame=photo.pixels.shape[:2]).keypoints
        labels = read_layout(source_layout, recapturer.label_set.num_parts)
    elif source_layout is not None:
        parser = str(source_layout)
    options = PhotoOptions(person=person, frame=FrameOptions(retarget=retarget, allow_invent=allow_invent),
                           layout=layout)
    with PhotoModels(recapturer, parser, verbose) as models:
        return recapture_photo_video(models, photo, reference, out, size=size, smoothing=smoothing,
                                     options=options, source_pose=keypoints, source_layout=labels)
