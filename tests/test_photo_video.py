"""``recapture video`` into the photo's scene: the flicker measure (static vs moving reference), source-only work
done once per video with the same frames as without reuse, warnings and the real written size, the atomic
output, and the command end to end with the stand-in pose estimator and segmenter of test_photo_pipeline."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from recapture.config import load_config
from recapture.hub import save_generator
from recapture.models.generator import RecaptureGenerator
from recapture.pipelines import framing as framing_module
from recapture.pipelines.photo import PhotoOptions, prepare_photo
from recapture.pipelines.poses import preset_library
from recapture.pipelines.recapture import Recapturer
from recapture.pipelines.video import composited_frames, interpolate_poses, recapture_photo_video
from recapture.pipelines.video_io import FlickerMeter, VideoError, read_video, write_video
from recapture.pipelines.inpainting import inpaint_background

sys.path.insert(0, str(Path(__file__).parent))
from test_photo_pipeline import (  # noqa: E402
    CONFIG, draw_people, fake_estimator, fake_segmenter, models, recapturer_file,
)


@pytest.fixture(scope="module")
def recapturer(tmp_path_factory: pytest.TempPathFactory) -> Recapturer:
    """The tiny random-weight generative model (as test_photo_pipeline's)."""
    torch.manual_seed(0)
    config = load_config(CONFIG).model
    path = save_generator(RecaptureGenerator(config).state_dict(), config,
                          tmp_path_factory.mktemp("model") / "tiny.safetensors")
    return Recapturer.from_pretrained(path)


@pytest.fixture(scope="module")
def copying(tmp_path_factory: pytest.TempPathFactory) -> Recapturer:
    """A tiny ``appearance: correspondence`` model (copies photo-resolution pixels), random weights everywhere."""
    config = dataclasses.replace(load_config(CONFIG).model, appearance="correspondence")
    torch.manual_seed(0)
    generator = RecaptureGenerator(config)
    with torch.no_grad():
        for parameter in generator.appearance.parameters():
            parameter.normal_(0.0, 0.1)
    path = save_generator(generator.state_dict(), config, tmp_path_factory.mktemp("copying") / "tiny.safetensors",
                          half=False)
    return Recapturer.from_pretrained(path)


def write_reference(path: Path, shifts: list[int], audio: bool = False, fps: int = 12) -> Path:
    """A 200x120 clip of the drawn person moved ``shift`` pixels right in each frame (with a mono tone)."""
    container = av.open(str(path), "w")
    video = container.add_stream("mpeg4", rate=fps)
    video.width, video.height, video.pix_fmt = 120, 200, "yuv420p"
    sound = None
    if audio:
        sound = container.add_stream("aac", rate=16000)
        sound.layout = "mono"
    for shift in shifts:
        frame = draw_people([(5, shift, 190)])
        container.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
    container.mux(video.encode(None))
    if sound is not None:
        for start in range(0, 4096, 1024):
            samples = np.sin(np.arange(start, start + 1024, dtype=np.float32) / 9)[None] * 0.2
            chunk = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 16000, start
            container.mux(sound.encode(chunk))
        container.mux(sound.encode(None))
    container.close()
    return path


def test_video_is_composited_into_the_photo_with_fps_and_audio(recapturer: Recapturer, tmp_path: Path) -> None:
    reference = write_reference(tmp_path / "reference.mp4", [0, 2, 4, 6, 8], audio=True)
    photo = draw_people([(5, 0, 190)], size=(200, 160))
    result = recapture_photo_video(models(recapturer), photo, reference, tmp_path / "out.mp4", size=100,
                                   estimator=fake_estimator, progress=False)
    clip = read_video(tmp_path / "out.mp4", in_memory=True)
    assert result.frames == 5 and clip.frame_count == 5 and clip.fps == pytest.approx(12.0)
    assert clip.size == (100, 80) and result.size == (100, 80)
    assert {"decode", "frame", "geometric", "appearance", "composite", "encode"} <= set(result.timings)
    background, person = result.flicker  # measured on the written file: encoding counts
    assert 0.0 <= background < 3.0 and person > 0.5  # the photo's background stays; the person moves
    with av.open(str(tmp_path / "out.mp4")) as written:
        assert len(written.streams.audio) == 1


def test_a_still_reference_does_not_flicker_and_a_moving_one_does(recapturer: Recapturer, tmp_path: Path) -> None:
    photo = draw_people([(5, 0, 190)], size=(200, 160))
    flicker = {}
    for name, shifts in (("still", [4] * 5), ("moving", [0, 6, 12, 18, 24])):
        reference = write_reference(tmp_path / f"{name}.mp4", shifts)
        result = recapture_photo_video(models(recapturer), photo, reference, tmp_path / f"{name}-out.mp4",
                                       estimator=fake_estimator, progress=False)
        assert result.flicker is not None and all(np.isfinite(result.flicker))
        flicker[name] = result.flicker
    (still_background, still_person), (moving_background, moving_person) = flicker["still"], flicker["moving"]
    assert still_person < 0.5 and still_background < 0.5  # the same pose in every frame: the same frame
    assert moving_person > 2.0 and moving_person > 10 * max(still_person, 0.05)
    assert moving_background < 2.0  # the photo's background stays where the person never is (encoding only)


def test_flicker_meter_counts_only_its_regions(tmp_path: Path) -> None:
    """Frames that change only where the alpha is 1 give a background flicker of 0 and the exact person flicker."""
    frames = [np.full((32, 48, 3), 100, np.uint8) for _ in range(3)]
    alpha = np.zeros((32, 48), np.float32)
    alpha[8:24, 16:32] = 1.0
    for index, frame in enumerate(frames):
        frame[8:24, 16:32] = 60 + 40 * index
    meter = FlickerMeter()
    for _ in frames:
        meter.add(alpha)
    write_video(tmp_path / "flat.mp4", frames, fps=10)
    background, person = meter.measure(tmp_path / "flat.mp4")
    assert background < 1.0 and person == pytest.approx(40.0, abs=2.0)


def test_source_only_work_runs_once_per_video_with_the_same_frames(copying: Recapturer,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    photo = draw_people([(5, 0, 190)], size=(200, 160))
    library = preset_library()
    targets = interpolate_poses([library["front"].keypoints, library["walking"].keypoints], 3)
    loaded = models(copying)
    options = PhotoOptions()
    prepared = prepare_photo(loaded, photo, targets, options)
    window = framing_module.source_window(copying, prepared.framed, prepared.decoded.photo)
    assert window is not None and window.layout is not None and window.layout.shape == window.image.shape[:2]
    model = prepared.framed.source.layout
    enlarged = cv2.resize(model, window.layout.shape[::-1], interpolation=cv2.INTER_NEAREST)
    reach = int(np.ceil(window.layout.shape[0] / model.shape[0]))  # one model pixel in window pixels
    agree = {(dy, dx): np.mean(np.roll(window.layout, (dy, dx), (0, 1)) == enlarged)
             for dy in range(-2 * reach, 2 * reach + 1) for dx in range(-2 * reach, 2 * reach + 1)}
    best = max(agree, key=agree.get)  # the photo's parse in the same window: aligned within half a model pixel
    assert max(abs(best[0]), abs(best[1])) <= reach / 2 and agree[best] > 0.9
    background = inpaint_background(prepared.decoded.photo, prepared.segmented.person_mask)
    crops, encodes = [], []
    crop_to_model = framing_module.crop_to_model
    monkeypatch.setattr(framing_module, "crop_to_model", lambda *a, **k: crops.append(1) or crop_to_model(*a, **k))
    copying.generator.appearance.encoder.register_forward_hook(lambda *_: encodes.append(1))
    runs = {}
    for reuse in (True, False):
        crops.clear()
        encodes.clear()
        runs[reuse] = list(composited_frames(loaded, prepared, background, options, reuse_source=reuse))
        assert len(runs[reuse]) == len(targets) == 4
        assert (len(crops), len(encodes)) == ((1, 1) if reuse else (4, 4))
    for reused, fresh in zip(runs[True], runs[False]):
        np.testing.assert_array_equal(reused.image, fresh.image)
        np.testing.assert_array_equal(reused.alpha, fresh.alpha)
    assert not np.array_equal(runs[True][0].image, runs[True][-1].image)  # the frames do differ
    assert type(copying.generator.appearance.encoder).__name__ != "ReusedEncoder"  # restored after the video


def test_writing_is_atomic_and_never_replaces_the_reference(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    out.write_bytes(b"old")

    def failing() -> object:
        yield np.zeros((16, 16, 3), np.uint8)
        raise RuntimeError("render failed")

    with pytest.raises(RuntimeError, match="render failed"):
        write_video(out, failing(), fps=10)
    assert out.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    reference = write_reference(tmp_path / "reference.mp4", [0, 2])
    before = reference.read_bytes()
    with pytest.raises(VideoError, match="also the reference"):
        write_video(reference, [np.zeros((16, 16, 3), np.uint8)], fps=10, audio_from=reference)
    assert reference.read_bytes() == before


def test_recapture_video_command_end_to_end(recapturer: Recapturer, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The command on a two-person photo: a warning line naming the count, then the written path and the summary
    (people, framing, parser, the real written size, frames, FPS); the file has the reference's FPS, frame count
    and audio, and the odd capped size padded to the even size the summary reports."""
    from PIL import Image
    from typer.testing import CliRunner

    from recapture.cli import app
    from recapture.pipelines import pose_estimation

    class Stand:
        """Stand-in for the MediaPipe solutions: the test's estimator or segmenter."""

        def __init__(self, function: object, **_: object) -> None:
            self.function = function

        def __call__(self, image: np.ndarray) -> object:
            return self.function(image)  # type: ignore[operator]

        def __enter__(self) -> Stand:
            return self

        def __exit__(self, *exc: object) -> None:
            self.close()

        def close(self) -> None:
            pass

    monkeypatch.setattr(pose_estimation, "PoseEstimator", lambda **k: Stand(fake_estimator, **k))
    monkeypatch.setattr(pose_estimation, "PersonSegmenter", lambda **k: Stand(fake_segmenter, **k))
    model = recapturer_file(tmp_path)  # the same seed-0 tiny model, as a file
    Image.fromarray(draw_people([(10, 5, 180), (60, 100, 120)], size=(200, 180))).save(tmp_path / "photo.png")
    reference = write_reference(tmp_path / "reference.mp4", [0, 4, 8, 12], audio=True, fps=15)
    out = tmp_path / "out.mp4"
    done = CliRunner().invoke(app, ["video", "--source", str(tmp_path / "photo.png"), "--reference", str(reference),
                                    "--out", str(out), "--model", str(model), "--parser", "pose-mask",
                                    "--size", "101", "--threads", "1"])
    assert done.exit_code == 0, done.output
    lines = done.output.strip().splitlines()
    assert any(line.startswith("warning: 2 people found") for line in lines)
    assert lines[-2] == f"wrote {out}"
    summary = lines[-1]
    assert summary.startswith("2 people found, framing full body, parser pose-mask, output 92x102, 4 frames at 15 FPS")
    assert "frames/s); flicker" in summary and summary.endswith(" person")
    clip = read_video(out, in_memory=True)
    assert clip.frame_count == 4 and clip.fps == pytest.approx(15.0) and clip.size == (102, 92)
    with av.open(str(out)) as written:
        assert len(written.streams.audio) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "photo.png", "reference.mp4", "tiny.safetensors"]
    common = ["video", "--source", str(tmp_path / "photo.png"), "--reference", str(reference), "--model", str(model),
              "--parser", "pose-mask", "--size", "101", "--threads", "1"]
    bad = CliRunner().invoke(app, [*common, "--out", str(tmp_path / "bad.mp4"), "--layout", "nets"])
    assert bad.exit_code == 1 and "unknown layout source 'nets'" in bad.output and not (tmp_path / "bad.mp4").exists()
    network = CliRunner().invoke(app, [*common, "--out", str(tmp_path / "network.mp4"), "--layout", "network"])
    assert network.exit_code == 0, network.output
    frames = [read_video(path, in_memory=True) for path in (out, tmp_path / "network.mp4")]
    assert frames[1].frame_count == 4  # the tiny model's random geometric network draws another Ŝ_B:
    assert any((a.astype(int) - b).any() for a, b in zip(frames[0].frames, frames[1].frames))
