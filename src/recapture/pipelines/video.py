"""Video recapture (paper §4.6, A.3): the pose of every frame of a reference video drives the source
person; one generated frame per reference frame, written at the reference FPS.

Framing: one fixed window for the whole clip (the union of the person's keypoints over all frames,
padded), so the person moves inside the model frame the way they move in the reference video rather
than being re-centred every frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from rich.progress import Progress

from recapture.body.keypoints import missing_mask
from recapture.pipelines.poses import fit_keypoints
from recapture.pipelines.recapture import Recapturer, SourceInput


@dataclass(frozen=True)
class VideoResult:
    """What :func:`recapture_video` wrote."""

    path: Path
    frames: int
    fps: float
    target_keypoints: np.ndarray  # (T, 18, 2) model-frame keypoints that drove each frame


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


def prepare_video_source(recapturer: Recapturer, source: str | Path, source_pose: str | None = None,
                         source_layout: str | Path | None = None) -> SourceInput:
    """The video's source person in the model frame: a dataset image with its pose/layout files, or a
    photo in the wild (cropped, estimated and parsed like ``recapture edit``)."""
    from recapture.pipelines.photo import dataset_source, wild_source

    if source_pose is not None:
        return dataset_source(recapturer, source, source_pose, source_layout)
    wild = wild_source(recapturer, source, layout_path=source_layout)
    return SourceInput(wild.model_image, wild.model_keypoints, wild.layout)
