"""Video in and out (PyAV) and steady keypoints for video recapture (paper §4.6, appendix A.3).

The paper splits the reference video into frames, estimates a pose per frame, recaptures the portrait
once per pose and writes the frames back at the reference FPS. :func:`video_poses` does the first two
steps, optionally smoothing the keypoints with a :class:`OneEuroFilter` (the paper used none);
:func:`write_video` does the last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from recapture.body.keypoints import NUM_KEYPOINTS, missing_mask
from recapture.pipelines.pose_estimation import PoseEstimate


class VideoError(ValueError):
    """A video that cannot be read or written; the message names the file."""


def _open(path: Path):  # noqa: ANN202 - av.container.InputContainer, imported lazily
    import av

    if not path.is_file():
        raise VideoError(f"{path}: file not found")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as error:
        raise VideoError(f"{path}: cannot open the video ({error})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: no video stream")
    return container


def _upright(frame) -> np.ndarray:  # noqa: ANN001 - av.VideoFrame
    """RGB pixels with the stream's display rotation (phone videos) applied."""
    pixels = frame.to_ndarray(format="rgb24")
    turns = round(getattr(frame, "rotation", 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(pixels, k=turns)) if turns else pixels


class VideoFrames:
    """Re-iterable ``(H, W, 3)`` uint8 RGB frames of a file; each iteration decodes it again."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __iter__(self) -> Iterator[np.ndarray]:
        import av

        container = _open(self.path)
        try:
            for frame in container.decode(video=0):
                yield _upright(frame)
        except av.error.FFmpegError as error:
            raise VideoError(f"{self.path}: decoding failed ({error})") from None
        finally:
            container.close()


@dataclass(frozen=True)
class VideoClip:
    """frames: RGB ``(H, W, 3)`` uint8 frames (a re-iterable decoder, or a list when read into memory);
    fps: frames per second; size: ``(H, W)`` as displayed; frame_count: number of frames."""

    frames: Iterable[np.ndarray]
    fps: float
    size: tuple[int, int]
    frame_count: int


def read_video(path: str | Path, in_memory: bool = False) -> VideoClip:
    """Open a video. Frames decode lazily on each iteration unless ``in_memory``.

    ``frame_count`` is the container's count, or the number of packets when the container has none.
    """
    import av

    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        if not rate:
            raise VideoError(f"{path}: the video stream has no frame rate")
        count = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
        container.seek(0)
        first = next(container.decode(video=0), None)
    except av.error.FFmpegError as error:
        raise VideoError(f"{path}: cannot read the video ({error})") from None
    finally:
        container.close()
    if first is None:
        raise VideoError(f"{path}: the video has no frames")
    height, width = _upright(first).shape[:2]
    frames: Iterable[np.ndarray] = VideoFrames(path)
    if in_memory:
        frames = list(frames)
        count = len(frames)
    return VideoClip(frames=frames, fps=float(rate), size=(height, width), frame_count=int(count))


def even_size(size: tuple[int, int]) -> tuple[int, int]:
    """The ``(H, W)`` :func:`write_video` writes for frames of ``size``: odd sides gain one row/column."""
    return size[0] + size[0] % 2, size[1] + size[1] % 2


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad odd heights/widths by one replicated row/column (yuv420p needs even sizes)."""
    pad_y, pad_x = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_y or pad_x:
        frame = np.pad(frame, ((0, pad_y), (0, pad_x), (0, 0)), mode="edge")
    return frame


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float, quality: int = 18,
                audio_from: str | Path | None = None) -> int:
    """Encode ``(H, W, 3)`` uint8 RGB frames (all the same size) to ``path``; returns the frame count.

    H.264 (libx264, CRF ``quality``) when PyAV's FFmpeg has it, else MPEG-4 part 2; yuv420p. Odd sizes
    gain one replicated row/column (:func:`even_size`). The container follows the file suffix (``.mp4``,
    ``.mkv``, ...). ``audio_from``: a video whose first audio stream is copied (not re-encoded) into the
    output. The file is written under a temporary name and renamed onto ``path`` once complete
    (:func:`recapture.fileio.atomic_path`): a failed run leaves no partial file and the old one, if any.
    """
    from recapture.fileio import atomic_path

    path = Path(path)
    if not (math.isfinite(fps) and fps > 0):
        raise VideoError(f"{path}: fps must be a positive number, got {fps!r}")
    if audio_from is not None and path.resolve() == Path(audio_from).resolve():
        raise VideoError(f"{path} is also the reference video; give another output name")
    if not path.parent.is_dir():
        raise VideoError(f"{path}: folder {path.parent} does not exist")
    with atomic_path(path) as partial:
        return _encode(partial, path, frames, Fraction(fps).limit_denominator(1001), quality, audio_from)


def _encode(partial: Path, path: Path, frames: Iterable[np.ndarray], rate: Fraction, quality: int,
            audio_from: str | Path | None) -> int:
    """:func:`write_video`'s encoding into ``partial`` (errors name ``path``, the file the user asked for)."""
    import av

    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    count, size = 0, None
    try:
        container = av.open(str(partial), mode="w")
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise VideoError(f"{path}: cannot create the video ({error})") from None
    try:
        stream = audio = None
        for index, frame in enumerate(frames):
            frame = np.asarray(frame)
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise VideoError(f"{path}: frame {index} must be (H, W, 3) uint8, got {frame.dtype} {frame.shape}")
            if size is None:
                size = frame.shape[:2]
                stream = container.add_stream(codec, rate=rate)
                stream.height, stream.width = _even(frame).shape[:2]
                stream.pix_fmt = "yuv420p"
                if codec == "libx264":
                    stream.options = {"crf": str(quality)}
                else:
                    stream.bit_rate = 8_000_000
                audio = _audio_stream(Path(audio_from), container) if audio_from is not None else None
            elif frame.shape[:2] != size:
                raise VideoError(f"{path}: frame {index} is {frame.shape[:2]}, the first frame was {size}")
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(_even(frame)), format="rgb24")
            container.mux(stream.encode(video_frame))
            count += 1
        if stream is None:
            raise VideoError(f"{path}: no frames to write")
        container.mux(stream.encode(None))
        if audio is not None:
            _copy_audio(Path(audio_from), container, audio)  # type: ignore[arg-type]
    finally:
        container.close()
    return count


def _audio_stream(source: Path, container):  # noqa: ANN001, ANN202 - av streams
    """An output stream copying the first audio stream of ``source`` (None when it has none); it must be
    added before the first packet is written."""
    import av

    with av.open(str(source)) as reference:
        if not reference.streams.audio:
            return None
        try:
            return container.add_stream_from_template(reference.streams.audio[0])
        except (av.error.FFmpegError, ValueError) as error:
            raise VideoError(f"{source}: its audio cannot be copied ({error})") from None


def _copy_audio(source: Path, container, copied) -> None:  # noqa: ANN001 - av container and stream
    """Remux the packets of the first audio stream of ``source`` into ``copied``."""
    import av

    with av.open(str(source)) as reference:
        for packet in reference.demux(reference.streams.audio[0]):
            if packet.dts is None:
                continue
            packet.stream = copied
            container.mux(packet)


#: Alpha from which a pixel counts as inside the pasted person for the person flicker.
PERSON_ALPHA = 0.5


class FlickerMeter:
    """Frame-to-frame flicker of a written video: the mean absolute change (0-255, over RGB) between
    consecutive frames in the static background (pixels where the pasted person's alpha is 0 in both
    frames: the photo's own background, which should not move) and inside the person (alpha at least
    :data:`PERSON_ALPHA` in both). :meth:`add` takes each written frame's photo-frame alpha while the
    frames are made (kept as packed bits of the box the person can touch); :meth:`measure` decodes the
    written file, so encoding losses count."""

    def __init__(self) -> None:
        self._frames: list[tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]] = []
        self._size: tuple[int, int] | None = None

    def add(self, alpha: np.ndarray) -> None:
        """The ``(H, W)`` alpha of the next frame (0 where the frame is the background's pixel)."""
        alpha = np.asarray(alpha)
        if self._size is None:
            self._size = alpha.shape[:2]
        elif alpha.shape[:2] != self._size:
            raise ValueError(f"alpha {alpha.shape[:2]} differs from the first frame's {self._size}")
        rows, cols = np.nonzero(alpha.any(axis=1))[0], np.nonzero(alpha.any(axis=0))[0]
        box = (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1) if rows.size else (0, 0, 0, 0)
        inside = alpha[box[0]:box[2], box[1]:box[3]]
        self._frames.append((box, np.packbits(inside > 0), np.packbits(inside >= PERSON_ALPHA)))

    def _masks(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(touched, person)`` ``(H, W)`` bool of frame ``index``."""
        (y0, x0, y1, x1), touched_bits, person_bits = self._frames[index]
        touched = np.zeros(self._size, dtype=bool)  # type: ignore[arg-type]
        person = np.zeros(self._size, dtype=bool)  # type: ignore[arg-type]
        count = (y1 - y0) * (x1 - x0)
        touched[y0:y1, x0:x1] = np.unpackbits(touched_bits, count=count).reshape(y1 - y0, x1 - x0).astype(bool)
        person[y0:y1, x0:x1] = np.unpackbits(person_bits, count=count).reshape(y1 - y0, x1 - x0).astype(bool)
        return touched, person

    def measure(self, path: str | Path) -> tuple[float, float]:
        """``(background, person)`` flicker of the video at ``path`` (its frames cropped to the alphas'
        size, undoing :func:`write_video`'s even padding); 0.0 for a region empty in every pair."""
        if self._size is None:
            raise ValueError("no frame was added")
        sums = np.zeros(2)
        pixels = np.zeros(2)
        previous = None
        for index, frame in enumerate(read_video(path).frames):
            if index >= len(self._frames):
                raise VideoError(f"{path}: more frames than were measured ({len(self._frames)})")
            current = frame[:self._size[0], :self._size[1]].astype(np.int16)
            touched, person = self._masks(index)
            if previous is not None:
                change = np.abs(current - previous[0]).mean(axis=2)
                for slot, where in enumerate((~touched & ~previous[1], person & previous[2])):
                    sums[slot] += float(change[where].sum())
                    pixels[slot] += int(where.sum())
            previous = (current, touched, person)
        background, inside = (float(total / count) if count else 0.0 for total, count in zip(sums, pixels))
        return background, inside


class OneEuroFilter:
    """The 1-euro filter (Casiez et al., CHI 2012) on ``(18, 2)`` keypoints, per joint coordinate.

    Cut-off frequency ``min_cutoff + beta * |speed|`` (Hz, speed in pixels/second): slow motion is
    smoothed strongly, fast motion passes with little lag. Missing joints (-1) come out -1 and forget
    their history, so a reappearing joint starts from its raw position.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.01, d_cutoff: float = 1.0) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("min_cutoff and d_cutoff must be positive and beta non-negative")
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.reset()

    def reset(self) -> None:
        """Forget every joint's history."""
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None
        self._alive = np.zeros(NUM_KEYPOINTS, dtype=bool)
        self._time: float | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
        tau = 1.0 / (2 * math.pi * np.asarray(cutoff, dtype=np.float64))
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, keypoints: np.ndarray, t: float) -> np.ndarray:
        """Filter one frame's ``(18, 2)`` keypoints taken at time ``t`` seconds (strictly increasing)."""
        keypoints = np.asarray(keypoints, dtype=np.float64)
        if keypoints.shape != (NUM_KEYPOINTS, 2):
            raise ValueError(f"keypoints must be ({NUM_KEYPOINTS}, 2), got {keypoints.shape}")
        present = ~missing_mask(keypoints)
        if self._value is None or self._speed is None or self._time is None:
            self._value, self._speed = keypoints.copy(), np.zeros_like(keypoints)
        else:
            dt = t - self._time
            if not dt > 0:
                raise ValueError(f"time must increase: {t} after {self._time}")
            continuing = present & self._alive
            speed = (keypoints - self._value) / dt
            speed = self._speed + self._alpha(self.d_cutoff, dt) * (speed - self._speed)
            cutoff = self.min_cutoff + self.beta * np.abs(speed)
            smoothed = self._value + self._alpha(cutoff, dt) * (keypoints - self._value)
            self._value = np.where(continuing[:, None], smoothed, keypoints)
            self._speed = np.where(continuing[:, None], speed, 0.0)
        self._time = t
        self._alive = present
        return np.where(present[:, None], self._value, -1.0)


@dataclass(frozen=True)
class PoseTrack:
    """keypoints: ``(T, 18, 2)`` y/x per frame in the video's pixels; detected: ``(T,)`` True where the
    estimator found a person in that frame; fps; size ``(H, W)``."""

    keypoints: np.ndarray
    detected: np.ndarray
    fps: float
    size: tuple[int, int]


def video_poses(path: str | Path, estimator: Callable[[np.ndarray], PoseEstimate | None],
                smoothing: bool | OneEuroFilter = True) -> PoseTrack:
    """Pose of every frame of a reference video.

    Frames without a person repeat the last pose; frames before the first detection take the first
    detected pose (so every frame has a pose; ``detected`` tells which were estimated). With
    ``smoothing`` (True: a default :class:`OneEuroFilter`, or your own filter) detected frames are
    filtered at their timestamps ``index / fps``. VideoError when no frame shows a person.
    """
    clip = read_video(path)
    smoother = OneEuroFilter() if smoothing is True else (smoothing or None)
    if smoother is not None:
        smoother.reset()
    poses: list[np.ndarray | None] = []
    for index, frame in enumerate(clip.frames):
        estimate = estimator(frame)
        if estimate is None:
            poses.append(None)
            continue
        keypoints = np.asarray(estimate.keypoints, dtype=np.float64)
        poses.append(smoother(keypoints, index / clip.fps) if smoother is not None else keypoints.copy())
    detected = np.array([p is not None for p in poses], dtype=bool)
    if not detected.any():
        raise VideoError(f"{path}: no person detected in any of its {len(poses)} frames")
    first = int(np.argmax(detected))
    held: np.ndarray = poses[first]  # type: ignore[assignment]
    track = np.empty((len(poses), NUM_KEYPOINTS, 2))
    for index, pose in enumerate(poses):
        held = pose if pose is not None else held
        track[index] = held
    return PoseTrack(keypoints=track, detected=detected, fps=clip.fps, size=clip.size)
