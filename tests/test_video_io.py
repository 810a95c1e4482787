"""Video reading/writing with PyAV, the 1-euro keypoint filter and per-frame poses of a video."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from skimage import data

from recapture.body.keypoints import KEYPOINT_INDEX
from recapture.pipelines.pose_estimation import PoseEstimate, PoseEstimator
from recapture.pipelines.video_io import OneEuroFilter, VideoError, read_video, video_poses, write_video


def _frames(count: int, size: tuple[int, int] = (48, 64)) -> list[np.ndarray]:
    return [np.full((*size, 3), 10 + 20 * i, np.uint8) for i in range(count)]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_round_trip_keeps_count_fps_and_pixels(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"clip{suffix}"
    assert write_video(path, iter(_frames(12)), fps=25) == 12
    clip = read_video(path)
    assert clip.fps == pytest.approx(25.0) and clip.frame_count == 12 and clip.size == (48, 64)
    frames = list(clip.frames)
    assert len(frames) == 12 and len(list(clip.frames)) == 12  # iterable twice
    means = [f.mean() for f in frames]
    np.testing.assert_allclose(means, [10 + 20 * i for i in range(12)], atol=3)
    assert isinstance(read_video(path, in_memory=True).frames, list)


def test_odd_sizes_ntsc_rate_and_write_errors(tmp_path: Path) -> None:
    write_video(tmp_path / "odd.mp4", _frames(3, (33, 45)), fps=30000 / 1001)
    clip = read_video(tmp_path / "odd.mp4")
    assert clip.size == (34, 46) and clip.fps == pytest.approx(29.97, abs=1e-3)
    with pytest.raises(VideoError, match="frame 1 is"):
        write_video(tmp_path / "mixed.mp4", [_frames(1)[0], _frames(1, (40, 64))[0]], fps=25)
    with pytest.raises(VideoError, match="no frames"):
        write_video(tmp_path / "empty.mp4", [], fps=25)
    with pytest.raises(VideoError, match="frame 0 must be"):
        write_video(tmp_path / "float.mp4", [np.zeros((8, 8, 3))], fps=25)
    with pytest.raises(VideoError, match="fps"):
        write_video(tmp_path / "slow.mp4", _frames(1), fps=0)


def test_read_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="absent.mp4"):
        read_video(tmp_path / "absent.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(VideoError, match="junk.mp4"):
        read_video(tmp_path / "junk.mp4")


def test_display_rotation_is_applied(tmp_path: Path) -> None:
    """A phone-style track matrix (QuickTime 'rotate 90') turns the frames clockwise when read."""
    frame = np.zeros((32, 48, 3), np.uint8)
    frame[:4] = 255  # bright top rows as stored
    write_video(tmp_path / "flat.mp4", [frame] * 2, fps=25)
    raw = bytearray((tmp_path / "flat.mp4").read_bytes())
    identity = struct.pack(">9i", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    start = raw.index(identity, raw.index(b"tkhd"))
    raw[start:start + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    (tmp_path / "turned.mp4").write_bytes(bytes(raw))
    clip = read_video(tmp_path / "turned.mp4")
    upright = next(iter(clip.frames))
    assert clip.size == (48, 32) and upright.shape == (48, 32, 3)
    assert upright[:, -3:].mean() > 200 and upright[:, :3].mean() < 30


def _constant_keypoints(value: float) -> np.ndarray:
    return np.full((18, 2), value)


def test_one_euro_reduces_jitter_and_follows_a_step() -> None:
    rng = np.random.default_rng(0)
    smoother = OneEuroFilter()
    noisy = 100 + rng.normal(0, 2.0, (120, 18, 2))
    smoothed = np.array([smoother(k, i / 30) for i, k in enumerate(noisy)])
    assert smoothed[20:].var() < 0.3 * noisy[20:].var()
    smoother.reset()
    outputs = [smoother(_constant_keypoints(100 if i < 30 else 200), i / 30)[0, 0] for i in range(90)]
    assert outputs[30] < 190  # it does smooth the jump...
    assert abs(outputs[-1] - 200) < 0.5  # ...but arrives
    with pytest.raises(ValueError, match="time must increase"):
        smoother(_constant_keypoints(1), 0.0)


def test_one_euro_missing_joints_restart_from_raw() -> None:
    smoother = OneEuroFilter()
    for i in range(10):
        smoother(_constant_keypoints(50.0), i / 30)
    gone = _constant_keypoints(50.0)
    gone[4] = -1
    out = smoother(gone, 10 / 30)
    assert (out[4] == -1).all() and (out[5] == 50).all()
    back = _constant_keypoints(50.0)
    back[4] = (120.0, 7.0)
    out = smoother(back, 11 / 30)
    np.testing.assert_array_equal(out[4], (120.0, 7.0))


class _BrightSpotEstimator:
    """A stand-in estimator: a 'person' at the brightest pixel, none in dark frames."""

    def __call__(self, image: np.ndarray) -> PoseEstimate | None:
        if image.max() < 128:
            return None
        y, x = np.unravel_index(image[..., 0].argmax(), image.shape[:2])
        keypoints = np.tile([float(y), float(x)], (18, 1))
        keypoints[17] = -1
        return PoseEstimate(keypoints=keypoints, confidence=np.ones(18), landmarks=np.zeros((33, 4)))


def test_video_poses_hold_and_backfill(tmp_path: Path) -> None:
    frames = []
    for i in range(10):
        frame = np.zeros((48, 64, 3), np.uint8)
        if i in (3, 4, 5, 7, 8, 9):
            frame[10 + 2 * i: 14 + 2 * i, 20 + 3 * i: 24 + 3 * i] = 255
        frames.append(frame)
    write_video(tmp_path / "spot.mp4", frames, fps=10)
    track = video_poses(tmp_path / "spot.mp4", _BrightSpotEstimator(), smoothing=False)
    assert track.keypoints.shape == (10, 18, 2) and track.fps == pytest.approx(10) and track.size == (48, 64)
    np.testing.assert_array_equal(track.detected, [i in (3, 4, 5, 7, 8, 9) for i in range(10)])
    for i in range(3):
        np.testing.assert_array_equal(track.keypoints[i], track.keypoints[3])
    np.testing.assert_array_equal(track.keypoints[6], track.keypoints[5])
    assert abs(track.keypoints[9, 0, 0] - 29) <= 2 and (track.keypoints[:, 17] == -1).all()
    smooth = video_poses(tmp_path / "spot.mp4", _BrightSpotEstimator(), smoothing=True)
    assert smooth.keypoints[9, 0, 0] < track.keypoints[9, 0, 0]  # lags behind the moving spot
    write_video(tmp_path / "dark.mp4", [np.zeros((16, 16, 3), np.uint8)] * 3, fps=10)
    with pytest.raises(VideoError, match="no person detected in any of its 3 frames"):
        video_poses(tmp_path / "dark.mp4", _BrightSpotEstimator())


def test_video_poses_with_blazepose(tmp_path: Path) -> None:
    photo = data.astronaut()[::2, ::2]
    write_video(tmp_path / "astronaut.mp4", [photo, photo[:, ::-1], photo], fps=5)
    with PoseEstimator(static_image_mode=False) as estimator:
        track = video_poses(tmp_path / "astronaut.mp4", estimator)
    assert track.detected.all()
    nose = track.keypoints[:, KEYPOINT_INDEX["nose"]]
    assert 30 < nose[0, 0] < 100 and 80 < nose[0, 1] < 145
    assert nose[1, 1] > 128  # the mirrored frame moves her nose (smoothed) to the right
