"""The user-facing API end to end with a tiny random-weight model: Recapturer, weights, poses, edit
command, video pipeline, demo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from recapture.body.edits import LayoutEdits
from recapture.body.keypoints import missing_mask
from recapture.cli import app
from recapture.config import load_config
from recapture.data.formats import write_annotations, write_layout
from recapture.models.generator import RecaptureGenerator
from recapture.pipelines.poses import PoseSourceError, fit_keypoints, load_pose, preset_library, target_keypoints
from recapture.pipelines.recapture import Recapturer
from recapture.pipelines.video import interpolate_poses, recapture_video, track_to_model
from recapture.hub import WeightsError, load_generator, read_model_file, save_generator

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SIZE = (32, 24)


@pytest.fixture(scope="module")
def source() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 32x24 person: image, keypoints, layout (LIP-20)."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (*SIZE, 3), dtype=np.uint8)
    layout = np.zeros(SIZE, np.uint8)
    layout[2:8, 8:15], layout[8:20, 7:16], layout[20:31, 7:16] = 13, 5, 9
    layout[8:19, 3:7], layout[8:19, 16:20] = 15, 14
    keypoints = fit_keypoints(preset_library()["front"].keypoints, (256, 176), SIZE)
    return image, keypoints, layout


def test_weights_round_trip_is_exact_and_bad_weights_are_clear(tiny_model: Path, tmp_path: Path) -> None:
    loaded = load_generator(tiny_model)
    config = load_config(CONFIGS / "tiny.yaml").model
    torch.manual_seed(0)
    reference = RecaptureGenerator(config).state_dict()
    stored, _ = read_model_file(tiny_model)
    assert set(stored) == set(reference)
    for key, value in stored.items():
        torch.testing.assert_close(value.float(), reference[key].half().float(), msg=key)
    assert loaded.metadata["trained_on"] == "random init"
    with pytest.raises(WeightsError, match="bundled"):
        load_generator(tmp_path / "nope.safetensors")
    other = load_config(CONFIGS / "tiny.yaml", ["model.base_channels=4"]).model
    save_generator(reference, other, tmp_path / "mismatch.safetensors")
    with pytest.raises(WeightsError, match="not a Recapture model"):
        load_generator(tmp_path / "mismatch.safetensors")


def test_recapturer_end_to_end_and_edits_reach_the_layout(tiny_model: Path, source: tuple) -> None:
    image, keypoints, layout = source
    recapturer = Recapturer.from_pretrained(tiny_model)
    target = target_keypoints("walking", SIZE)
    plain = recapturer(image, target, source_pose=keypoints, source_layout=layout)
    assert plain.image.shape == (*SIZE, 3) and plain.image.dtype == np.uint8
    assert np.array_equal(plain.target_layout, plain.predicted_layout)
    forced = recapturer(image, target, source_pose=keypoints, source_layout=layout, target_layout=layout)
    assert np.array_equal(forced.target_layout, layout)
    assert not np.array_equal(forced.image, plain.image)
    edits = LayoutEdits.parse(clothing=["lower=skirt"])
    edited = recapturer(image, target, source_pose=keypoints, source_layout=layout, target_layout=layout, edits=edits)
    assert np.array_equal(edited.target_layout, edits.apply(layout, target, recapturer.label_set))
    double = recapturer(np.asarray(Image.fromarray(image).resize((48, 64))), target,
                        source_pose=np.where(missing_mask(keypoints)[:, None], -1, keypoints * 2),
                        source_layout=np.asarray(Image.fromarray(layout).resize((48, 64), Image.NEAREST)))
    assert double.image.shape == (*SIZE, 3)


def test_attention_is_a_distribution_over_the_pixels_part(tiny_model: Path, source: tuple) -> None:
    image, keypoints, layout = source
    recapturer = Recapturer.from_pretrained(tiny_model)
    result = recapturer(image, keypoints, source_pose=keypoints, source_layout=layout, target_layout=layout)
    attention = recapturer.attention(result, (14, 11))
    assert attention.weights.shape == SIZE and attention.weights.max() == pytest.approx(1.0)
    assert attention.overlay.shape == (*SIZE, 3)
    import cv2

    reach = 2 ** recapturer.config.sat_level  # the map lives at the SAT level, upsampled nearest
    near_torso = cv2.dilate((layout == 5).astype(np.uint8), np.ones((2 * reach + 1,) * 2, np.uint8)) > 0
    assert attention.weights[~near_torso].max() == 0.0 and attention.weights[layout == 5].max() > 0


def test_bad_inputs_are_clear_errors(tiny_model: Path, source: tuple) -> None:
    image, keypoints, layout = source
    recapturer = Recapturer.from_pretrained(tiny_model)
    with pytest.raises(ValueError, match="all 18 keypoints are missing"):
        recapturer(image, np.full((18, 2), -1.0), source_pose=keypoints, source_layout=layout)
    with pytest.raises(ValueError, match="label"):
        recapturer(image, keypoints, source_pose=keypoints, source_layout=np.full(SIZE, 40, np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        recapturer(image.astype(np.float32), keypoints, source_pose=keypoints, source_layout=layout)


def test_pose_sources(tmp_path: Path) -> None:
    presets = preset_library()
    assert {"front", "back", "side", "walking"} <= set(presets)
    front = fit_keypoints(presets["front"].keypoints, presets["front"].frame, (128, 64))
    present = ~missing_mask(front)
    assert present.sum() >= 16 and (front[present, 0] < 128).all() and (front[present, 1] < 64).all()
    assert front[2, 1] < front[5, 1]
    names = ["a.jpg", "b.jpg"]
    rows = np.stack([np.arange(36).reshape(18, 2), np.full((18, 2), -1)])
    write_annotations(tmp_path / "market-annotation-x.csv", names, rows)
    pose = load_pose(f"{tmp_path / 'market-annotation-x.csv'}:a.jpg")
    assert pose.frame == (128, 64) and np.array_equal(pose.keypoints, rows[0])
    (tmp_path / "pose.json").write_text(json.dumps({"keypoints": rows[0].tolist(), "frame": [256, 176]}))
    assert np.array_equal(load_pose(str(tmp_path / "pose.json")).keypoints, rows[0])
    with pytest.raises(PoseSourceError, match="no row named"):
        load_pose(f"{tmp_path / 'market-annotation-x.csv'}:zzz.jpg")
    with pytest.raises(PoseSourceError, match="no joint inside"):
        target_keypoints(f"{tmp_path / 'market-annotation-x.csv'}:b.jpg", (128, 64))
    with pytest.raises(PoseSourceError, match="preset"):
        load_pose("moonwalk")


def test_real_annotation_rows_work_as_target_poses(real_dir: Path) -> None:
    table_row = "fasionWOMENDressesid0000553705_4full.jpg"
    fitted = target_keypoints(f"{real_dir / 'fasion-annotation-test.csv'}:{table_row}", (128, 64))
    assert (~missing_mask(fitted)).sum() == 18


def test_edit_command_with_known_source_pose(tiny_model: Path, source: tuple, tmp_path: Path) -> None:
    image, keypoints, layout = source
    Image.fromarray(image).save(tmp_path / "src.png")
    write_layout(tmp_path / "src_layout.png", layout)
    (tmp_path / "src.json").write_text(json.dumps({"keypoints": keypoints.tolist(), "frame": list(SIZE)}))
    args = ["edit", str(tmp_path / "src.png"), "--pose", "walking", "--out", str(tmp_path / "out.png"),
            "--model", str(tiny_model), "--source-pose", str(tmp_path / "src.json"),
            "--source-layout", str(tmp_path / "src_layout.png"), "--fatter", "arms", "--clothing", "lower=shorts",
            "--layout-out", str(tmp_path / "layout.png"), "--attention", "12,10"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for name in ("out.png", "layout.png", "out_attention.png"):
        assert Image.open(tmp_path / name).size == (24, 32)
    bad = CliRunner().invoke(app, args[:-6] + ["--clothing", "lower=kilt"])
    assert bad.exit_code == 1 and "valid" in bad.output


def test_video_pipeline_keeps_frame_count_and_fps(tiny_model: Path, source: tuple, tmp_path: Path) -> None:
    from recapture.pipelines.video_io import read_video, write_video
    from recapture.pipelines.wild import PoseEstimate

    image, keypoints, layout = source
    frames = [np.full((64, 48, 3), 40 * i, np.uint8) for i in range(6)]
    write_video(tmp_path / "ref.mp4", frames, fps=12.0)
    walking = fit_keypoints(preset_library()["walking"].keypoints, (256, 176), (64, 48))
    calls = []

    def estimator(frame: np.ndarray) -> PoseEstimate | None:
        calls.append(frame)
        if len(calls) == 3:
            return None
        moved = np.where(missing_mask(walking)[:, None], -1.0, walking + [0, len(calls)])
        return PoseEstimate(keypoints=moved, confidence=np.ones(18), landmarks=np.zeros((33, 4)))

    recapturer = Recapturer.from_pretrained(tiny_model)
    from recapture.pipelines.recapture import SourceInput

    result = recapture_video(recapturer, SourceInput(image, keypoints, layout), tmp_path / "ref.mp4",
                             tmp_path / "out.mp4", estimator=estimator, smoothing=False, progress=False)
    clip = read_video(tmp_path / "out.mp4", in_memory=True)
    assert result.frames == 6 and clip.frame_count == 6 and clip.fps == pytest.approx(12.0)
    shifts = result.target_keypoints[:, 1, 1] - result.target_keypoints[0, 1, 1]
    assert shifts[1] > 0 and shifts[2] == shifts[1]


def test_track_and_interpolation_helpers() -> None:
    pose = fit_keypoints(preset_library()["front"].keypoints, (256, 176), (128, 64))
    track = np.stack([pose, np.where(missing_mask(pose)[:, None], -1.0, pose + [0, 5])])
    fitted = track_to_model(track * 3, (128, 64))
    assert fitted.shape == track.shape and (fitted[~missing_mask(fitted.reshape(-1, 2)).reshape(2, 18)] >= 0).all()
    frames = interpolate_poses([pose, track[1]], steps=5)
    assert len(frames) == 6 and np.allclose(frames[0], pose) and np.allclose(frames[-1], track[1])


@pytest.mark.slow
def test_demo_writes_page_and_files(tiny_model: Path, tmp_path: Path) -> None:
    from recapture.demo import run_demo

    report = run_demo(tmp_path / "demo", model=str(tiny_model), wild=False, video_frames=2)
    page = report.index.read_text()
    assert "random init" in page and "poses.png" in page and "video.mp4" in page
    for path in report.files:
        assert path.is_file() and path.stat().st_size > 0


def test_bundled_weights_load_by_name_and_describe_their_training() -> None:
    from recapture.hub import bundled_models, describe

    assert "synthhumans" in bundled_models()
    loaded = load_generator("synthhumans")
    assert tuple(loaded.config.image_size) == (128, 64) and loaded.config.label_set == "lip20"
    assert "SynthHumans" in describe(loaded) and loaded.metadata["step"] == "3000"


def test_target_layout_is_checked_and_posless_leading_frames_keep_the_count(tiny_model: Path,
                                                                              source: tuple) -> None:
    from recapture.pipelines.recapture import SourceInput
    from recapture.pipelines.video import generate_frames

    image, keypoints, layout = source
    recapturer = Recapturer.from_pretrained(tiny_model)
    with pytest.raises(ValueError, match="model frame"):
        recapturer(image, keypoints, source_pose=keypoints, source_layout=layout, target_layout=np.zeros((8, 8)))
    with pytest.raises(ValueError, match="labels must lie"):
        recapturer(image, keypoints, source_pose=keypoints, source_layout=layout,
                   target_layout=np.full(SIZE, 300, np.int64))
    poses = np.stack([np.full((18, 2), -1.0), keypoints, np.full((18, 2), -1.0)])
    frames = list(generate_frames(recapturer, SourceInput(image, keypoints, layout), poses, progress=False))
    assert len(frames) == 3 and all(np.array_equal(f, frames[1]) for f in frames)


def test_damaged_or_foreign_model_files_are_refused_in_one_line(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from recapture.hub import bundled_path

    damaged = tmp_path / "damaged.safetensors"
    data = bytearray(bundled_path("synthhumans").read_bytes())
    data[-100] ^= 0xFF  # a byte inside the last tensor's data
    damaged.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="not a Recapture model: .*checksum mismatch"):
        load_generator(damaged)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01random bytes" * 10)
    with pytest.raises(WeightsError, match="not a Recapture model: .*garbage"):
        load_generator(garbage)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3, 3)}, str(foreign))
    with pytest.raises(WeightsError, match="not a Recapture model: .*no model_config"):
        load_generator(foreign)
