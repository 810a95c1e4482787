"""In-the-wild photos: BlazePose mapping, the real estimator/segmenter on the astronaut photo, photo
loading, crops and their inverses, inpainting, compositing and the whole input preparation."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from recapture.body.keypoints import KEYPOINT_INDEX, KEYPOINT_NAMES
from recapture.body.parts import LIP20, MARKET7
from recapture.pipelines.pose_estimation import ModelNotBundledError, pose_model_path
from recapture.pipelines.wild import (
    PersonCrop, PersonSegmenter, PoseEstimate, PoseEstimator, PoseMaskLayoutParser, WildPhotoError, blazepose_to_coco18,
    border_colour, composite, crop_to_model, keypoints_to_model, keypoints_to_photo, layout_alpha,
    load_photo, model_to_photo, person_crop,
)
from recapture.pipelines.inpainting import inpaint_background

#: Generous boxes (y0, x0, y1, x1) on skimage's 512x512 astronaut, checked by eye once.
FACE_BOX = (60, 160, 200, 290)
PERSON_BOXES = ((30, 170, 180, 270), (220, 30, 500, 300))  # head, torso
BACKGROUND_BOXES = ((0, 360, 150, 512), (0, 0, 100, 120))  # shuttle, flag


def _inside(point: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    return bool(box[0] <= point[0] < box[2] and box[1] <= point[1] < box[3])


def _no_download(*args: object, **kwargs: object) -> None:
    raise AssertionError("a model download was attempted")


@pytest.fixture(scope="module")
def astronaut() -> tuple[np.ndarray, PoseEstimate, np.ndarray]:
    """The photo, BlazePose's estimate and the selfie-segmentation mask, with downloads forbidden."""
    photo = data.astronaut()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(urllib.request, "urlopen", _no_download)
        with PoseEstimator() as estimator, PersonSegmenter() as segmenter:
            estimate = estimator(photo)
            mask = segmenter(photo)
    assert estimate is not None
    return photo, estimate, mask


def test_blazepose_mapping_follows_mediapipe_names() -> None:
    from mediapipe.python.solutions.pose import PoseLandmark

    rng = np.random.default_rng(0)
    landmarks = np.c_[rng.uniform(0.05, 0.95, (33, 3)), np.ones(33)]
    keypoints, confidence = blazepose_to_coco18(landmarks, (200, 100))
    for joint, name in enumerate(KEYPOINT_NAMES):
        if name == "neck":
            continue
        source = PoseLandmark[name.upper()].value
        np.testing.assert_allclose(keypoints[joint], (landmarks[source, 1] * 200, landmarks[source, 0] * 100))
    shoulders = [PoseLandmark.LEFT_SHOULDER.value, PoseLandmark.RIGHT_SHOULDER.value]
    np.testing.assert_allclose(keypoints[KEYPOINT_INDEX["neck"]],
                               (landmarks[shoulders, 1].mean() * 200, landmarks[shoulders, 0].mean() * 100))
    assert confidence.shape == (18,) and (confidence == 1).all()


def test_blazepose_low_visibility_and_outside_frame_are_missing() -> None:
    landmarks = np.tile([0.5, 0.5, 0.0, 0.9], (33, 1))
    landmarks[12, 3] = 0.2         # right shoulder barely visible -> missing, and so is the neck
    landmarks[15, 0] = 1.2         # left wrist right of the frame
    landmarks[27, 1] = -0.01       # left ankle above the frame
    landmarks[0, :2] = (1.0, 1.0)  # nose exactly on the far edge: outside [0, W)
    keypoints, confidence = blazepose_to_coco18(landmarks, (64, 48), min_visibility=0.5)
    missing = {n for n, k in zip(KEYPOINT_NAMES, keypoints) if (k == -1).all()}
    assert missing == {"right_shoulder", "neck", "left_wrist", "left_ankle", "nose"}
    assert confidence[KEYPOINT_INDEX["neck"]] == pytest.approx(0.2)
    present = keypoints[(keypoints != -1).all(axis=1)]
    np.testing.assert_allclose(present, np.tile([32.0, 24.0], (len(present), 1)))
    three_columns = np.delete(landmarks, 2, axis=1)
    np.testing.assert_array_equal(blazepose_to_coco18(three_columns, (64, 48))[0], keypoints)
    with pytest.raises(ValueError, match="33"):
        blazepose_to_coco18(np.zeros((17, 4)), (64, 48))


def test_models_not_in_the_wheel_are_refused_without_downloading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(urllib.request, "urlopen", _no_download)
    assert pose_model_path(1).is_file()
    for complexity in (0, 2):
        if not pose_model_path(complexity).is_file():
            with pytest.raises(ModelNotBundledError, match="model_complexity=1"):
                PoseEstimator(model_complexity=complexity)
    with pytest.raises(ValueError, match="0, 1 or 2"):
        PoseEstimator(model_complexity=3)


def test_unclosed_models_let_the_process_exit() -> None:
    """A MediaPipe graph left open used to hang the interpreter at exit (closed by a finaliser)."""
    script = ("from skimage import data\n"
              "from recapture.pipelines.wild import PersonSegmenter, PoseEstimator\n"
              "estimator, segmenter = PoseEstimator(), PersonSegmenter()\n"
              "estimator(data.astronaut()); segmenter(data.astronaut())\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]


def test_astronaut_pose_and_mask(astronaut: tuple[np.ndarray, PoseEstimate, np.ndarray]) -> None:
    photo, estimate, mask = astronaut
    keypoints = estimate.keypoints
    assert _inside(keypoints[KEYPOINT_INDEX["nose"]], FACE_BOX)
    # She faces the camera: her left side is on the image's right.
    for part in ("shoulder", "eye"):
        assert keypoints[KEYPOINT_INDEX[f"left_{part}"], 1] > keypoints[KEYPOINT_INDEX[f"right_{part}"], 1] + 20
    assert (keypoints[KEYPOINT_INDEX["neck"]] > 0).all() and estimate.landmarks.shape == (33, 4)
    assert mask.shape == photo.shape[:2] and mask.dtype == np.float32 and 0 <= mask.min() <= mask.max() <= 1
    for y0, x0, y1, x1 in PERSON_BOXES:
        assert (mask[y0:y1, x0:x1] > 0.5).mean() > 0.9
    for y0, x0, y1, x1 in BACKGROUND_BOXES:
        assert mask[y0:y1, x0:x1].mean() < 0.1
    assert PoseEstimator()(np.zeros((64, 64, 3), np.uint8)) is None


def test_pose_mask_parser_on_astronaut(astronaut: tuple[np.ndarray, PoseEstimate, np.ndarray]) -> None:
    photo, estimate, mask = astronaut
    labels = PoseMaskLayoutParser()(photo, estimate.keypoints, mask)
    at = lambda y, x: LIP20.names[labels[int(y), int(x)]]  # noqa: E731
    nose, neck = estimate.keypoints[KEYPOINT_INDEX["nose"]], estimate.keypoints[KEYPOINT_INDEX["neck"]]
    assert at(*nose) == "face"
    assert at(neck[0] + 120, neck[1]) == "upper_clothes"
    assert at(35, nose[1]) == "hair"
    shoulder, elbow = estimate.keypoints[KEYPOINT_INDEX["right_shoulder"]], estimate.keypoints[KEYPOINT_INDEX["right_elbow"]]
    assert at(*(shoulder + elbow) / 2) == "right_arm"
    assert (labels[mask <= 0.5] == 0).all() and (labels[mask > 0.5] != 0).all()


def _standing_person(height: int = 200, width: int = 120) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keypoints of a frontal stick figure and a mask of thick limbs around them."""
    joints = {
        "nose": (25, 60), "neck": (45, 60), "right_shoulder": (47, 42), "left_shoulder": (47, 78),
        "right_elbow": (75, 35), "left_elbow": (75, 85), "right_wrist": (100, 32), "left_wrist": (100, 88),
        "right_hip": (105, 50), "left_hip": (105, 70), "right_knee": (145, 48), "left_knee": (145, 72),
        "right_ankle": (182, 47), "left_ankle": (182, 73), "right_eye": (21, 56), "left_eye": (21, 64),
        "right_ear": (23, 51), "left_ear": (23, 69),
    }
    keypoints = np.array([joints[name] for name in KEYPOINT_NAMES], dtype=np.float64)
    yy, xx = np.mgrid[:height, :width]
    mask = ((yy - 25) ** 2 / 16 ** 2 + (xx - 60) ** 2 / 13 ** 2 <= 1)
    mask |= (yy >= 40) & (yy <= 195) & (np.abs(xx - 60) <= 30)
    return np.zeros((height, width, 3), np.uint8), keypoints, mask.astype(np.float32)


def test_pose_mask_parser_parts_and_mirror() -> None:
    image, keypoints, mask = _standing_person()
    labels = PoseMaskLayoutParser()(image, keypoints, mask)
    at = lambda name: LIP20.names[labels[tuple(keypoints[KEYPOINT_INDEX[name]].astype(int))]]  # noqa: E731
    assert at("nose") == "face" and at("left_elbow") == "left_arm" and at("right_elbow") == "right_arm"
    assert LIP20.names[labels[125, 50]] == "pants" and LIP20.names[labels[80, 60]] == "upper_clothes"
    assert LIP20.names[labels[190, 73]] == "left_shoe" and LIP20.names[labels[190, 47]] == "right_shoe"
    shorts = PoseMaskLayoutParser(pants_to="knee")(image, keypoints, mask)
    assert LIP20.names[shorts[165, 47]] == "right_leg" and LIP20.names[shorts[165, 73]] == "left_leg"
    mirrored_keypoints = keypoints[[KEYPOINT_NAMES.index(n.replace("left", "@").replace("right", "left")
                                                         .replace("@", "right")) for n in KEYPOINT_NAMES]]
    mirrored_keypoints[:, 1] = image.shape[1] - 1 - mirrored_keypoints[:, 1]
    mirrored = PoseMaskLayoutParser()(image, mirrored_keypoints, mask[:, ::-1].copy())
    agreement = (LIP20.flip_labels(mirrored[:, ::-1]) == labels).mean()
    assert agreement > 0.97


def _jpeg_with_orientation(path: Path, orientation: int) -> None:
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:8, :8] = 255  # bright top-left corner as stored
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, quality=95, exif=exif)


def test_load_photo_modes_orientation_and_errors(tmp_path: Path) -> None:
    rgba = np.zeros((6, 5, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[0, 0, 3], rgba[1, 1, 3], rgba[2, 2, 3] = 0, 255, 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    photo = load_photo(tmp_path / "rgba.png")
    assert photo.shape == (6, 5, 3) and photo.dtype == np.uint8
    assert tuple(photo[0, 0]) == (255, 255, 255) and tuple(photo[1, 1]) == (200, 0, 0)
    assert abs(int(photo[2, 2, 1]) - 127) <= 1
    Image.fromarray(np.arange(30, dtype=np.uint8).reshape(5, 6)).save(tmp_path / "gray.png")
    gray = load_photo(tmp_path / "gray.png")
    assert gray.shape == (5, 6, 3) and (gray[..., 0] == gray[..., 2]).all() and gray[4, 5, 1] == 29
    Image.fromarray(np.full((4, 4), 65535, np.uint16)).save(tmp_path / "deep.png")
    assert (load_photo(tmp_path / "deep.png") == 255).all()

    _jpeg_with_orientation(tmp_path / "rotated.jpg", 6)  # display = stored turned 90 degrees clockwise
    rotated = load_photo(tmp_path / "rotated.jpg")
    assert rotated.shape == (40, 20, 3)
    assert rotated[:8, -8:].mean() > 200 and rotated[:8, :8].mean() < 50

    (tmp_path / "junk.jpg").write_bytes(b"not an image at all")
    whole = (tmp_path / "rotated.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    for name in ("junk.jpg", "cut.jpg", "absent.png"):
        with pytest.raises(WildPhotoError, match=name):
            load_photo(tmp_path / name)


def test_person_crop_aspect_contents_and_errors() -> None:
    image, keypoints, mask = _standing_person()
    blob = np.zeros_like(mask)
    blob[:40, :5] = 1  # someone else's elbow, not touching this person
    crop = person_crop(keypoints, np.maximum(mask, blob), (200, 120), (256, 176), margin=0.1)
    y0, x0, y1, x1 = crop.box
    assert (y1 - y0) / (x1 - x0) == pytest.approx(256 / 176)
    assert crop.scale == pytest.approx(256 / (y1 - y0))
    person_h = 196 - 9  # mask rows 9..195
    assert y0 == pytest.approx(9 - 0.1 * person_h) and y1 == pytest.approx(196 + 0.1 * person_h)
    assert (x0 + x1) / 2 == pytest.approx(60.5)  # mask columns 30..90; the blob at x < 5 was ignored
    only_keypoints = person_crop(keypoints, None, (200, 120), (256, 176))
    assert only_keypoints.box[0] == pytest.approx(21 - 0.1 * (183 - 21))
    with pytest.raises(WildPhotoError, match="no person"):
        person_crop(np.full((18, 2), -1.0), np.zeros((200, 120)), (200, 120), (256, 176))
    small = np.full((18, 2), -1.0)
    small[0], small[13] = (10, 10), (40, 12)
    with pytest.raises(WildPhotoError, match="31 px tall"):
        person_crop(small, None, (200, 120), (256, 176))


def test_crop_matches_slicing_and_round_trips() -> None:
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (120, 90, 3), dtype=np.uint8)
    crop = PersonCrop(box=(10.0, 20.0, 74.0, 64.0), scale=1.0, model_size=(64, 44))
    np.testing.assert_array_equal(crop_to_model(photo, crop), photo[10:74, 20:64])
    back, region = model_to_photo(crop_to_model(photo, crop), crop, photo.shape[:2])
    assert region == (10, 20, 74, 64)
    np.testing.assert_array_equal(back, photo[10:74, 20:64])
    outside = PersonCrop(box=(-4.0, -2.0, 60.0, 42.0), scale=1.0, model_size=(64, 44))
    padded = crop_to_model(photo, outside)  # past the photo's edges: one constant colour, not smeared edge pixels
    colour = np.round(border_colour(photo)).astype(np.uint8)
    assert (padded[:4] == colour).all() and (padded[:, :2] == colour).all()
    np.testing.assert_array_equal(padded[4:, 2:], photo[:60, :42])

    keypoints = rng.uniform(15, 100, (18, 2))
    keypoints[3] = -1
    shrunk = person_crop(keypoints, None, (120, 90), (48, 32), margin=0.2)
    model = keypoints_to_model(keypoints, shrunk)
    assert (model[3] == -1).all() and ((model[model != -1] >= 0)).all()
    np.testing.assert_allclose(keypoints_to_photo(model, shrunk), keypoints)
    dot = np.zeros((120, 90, 3), np.uint8)
    dot[60:63, 40:43] = 255
    at_model = keypoints_to_model(np.array([[61.0, 41.0]] + [[-1, -1]] * 17), shrunk)[0]
    seen = crop_to_model(dot, shrunk)[..., 0].astype(float)
    np.testing.assert_allclose(np.unravel_index(seen.argmax(), seen.shape), at_model, atol=1.0)


def test_inpaint_changes_only_the_hole() -> None:
    yy, xx = np.mgrid[:150, :200]
    photo = np.stack([yy, xx, (yy + xx) // 2], axis=-1).astype(np.uint8)
    mask = ((yy - 75) ** 2 + (xx - 100) ** 2 <= 30 ** 2).astype(np.float32)
    photo_with_person = photo.copy()
    photo_with_person[mask > 0] = (255, 0, 255)
    # Full size: the disk dilated by 4 px. Working at half size: about one working pixel (2 px) more.
    for max_side, reach in ((1024, 34.5), (100, 38.5)):
        filled = inpaint_background(photo_with_person, mask, dilate_px=4, max_side=max_side)
        hole = (yy - 75) ** 2 + (xx - 100) ** 2 <= reach ** 2
        changed = (filled != photo_with_person).any(axis=-1)
        assert not changed[~hole].any() and changed[mask > 0].all()
        assert np.abs(filled[mask > 0].astype(int) - photo[mask > 0]).mean() < 12
    assert (inpaint_background(photo, np.zeros((150, 200))) == photo).all()
    with pytest.raises(ValueError, match="telea"):
        inpaint_background(photo, mask, method="magic")


def test_composite_touches_only_the_crop() -> None:
    rng = np.random.default_rng(2)
    background = rng.integers(0, 256, (100, 80, 3), dtype=np.uint8)
    crop = PersonCrop(box=(20.0, 30.0, 84.0, 74.0), scale=1.0, model_size=(64, 44))
    generated = np.full((64, 44, 3), 7, np.uint8)
    layout = np.zeros((64, 44), np.uint8)
    layout[10:50, 10:34] = LIP20.index("upper_clothes")
    out = composite(background, generated, layout_alpha(layout), crop, feather_px=1.0)
    outside = np.ones((100, 80), bool)
    outside[20:84, 30:74] = False
    np.testing.assert_array_equal(out[outside], background[outside])
    assert (out[20 + 15:20 + 45, 30 + 15:30 + 29] == 7).all()
    np.testing.assert_array_equal(out[20:25, 30:74], background[20:25, 30:74])  # alpha 0 far from the part
    with pytest.raises(ValueError, match="generated_alpha"):
        composite(background, generated, np.full((64, 44), 2.0), crop)
    # Crop at scale 0.5 and paste back with a full alpha: the smooth photo comes back under the box.
    yy, xx = np.mgrid[:100, :80]
    photo = np.stack([2 * yy, 3 * xx, yy + xx], axis=-1).astype(np.uint8)
    halved = PersonCrop(box=(10.0, 6.0, 90.0, 61.0), scale=0.5, model_size=(40, 27))
    pasted = composite(np.zeros_like(photo), crop_to_model(photo, halved), np.ones((40, 27)), halved, feather_px=0)
    error = np.abs(pasted.astype(int) - photo)[12:88, 8:59]
    assert error.max() <= 3 and (pasted[:10] == 0).all() and (pasted[:, 61:] == 0).all()


def test_photo_stages_end_to_end(astronaut: tuple[np.ndarray, PoseEstimate, np.ndarray]) -> None:
    from recapture.pipelines.framing import frame
    from recapture.pipelines.stages import decode, detect_people, estimate_pose, parse, segment

    photo, estimate, mask = astronaut
    decoded = decode(photo, analysis_side=300)
    assert decoded.analysis.shape[:2] == (300, 300) and decoded.factor == pytest.approx(300 / 512)
    people = detect_people(decoded, lambda image: np.asarray(Image.fromarray(mask).resize((300, 300)), np.float32))
    posed = estimate_pose(decoded, people, lambda image: PoseEstimate(
        keypoints=np.where(estimate.keypoints == -1, -1, (estimate.keypoints + 0.5) * 300 / 512 - 0.5),
        confidence=estimate.confidence, landmarks=estimate.landmarks))
    np.testing.assert_allclose(posed.keypoints, estimate.keypoints, atol=1e-9)
    segmented = segment(decoded, people)
    parsed = parse(decoded, posed, segmented, PoseMaskLayoutParser(), MARKET7)
    framed = frame(photo, posed, segmented, parsed, np.empty((0, 18, 2)), (256, 176))
    prepared = framed.source
    assert prepared.image.shape == (256, 176, 3) and prepared.layout.shape == (256, 176)
    assert prepared.layout.max() < MARKET7.num_parts
    nose = prepared.keypoints[KEYPOINT_INDEX["nose"]].round().astype(int)
    assert MARKET7.names[prepared.layout[tuple(nose)]] == "head"
    np.testing.assert_allclose(keypoints_to_photo(prepared.keypoints, framed.crop)[0], estimate.keypoints[0])
    with pytest.raises(WildPhotoError, match="no person found"):
        detect_people(decoded, lambda image: np.zeros(image.shape[:2], np.float32))
