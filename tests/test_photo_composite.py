"""The real-photo composite and framing details (pipelines/framing, pasting, photo, stages): the pixel-aligned window
(an exact copy of photo pixels), the alpha copied at photo resolution, no trace of a moved head, the legs kept
under an upper-body target pose, the low pose-confidence warning, the invented-pixel mask and its warning. A drawn person, a stand-in pose estimator
and segmenter, the tiny random-weight model (tests/test_photo_pipeline.py's)."""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recapture.body.keypoints import KEYPOINT_INDEX, missing_mask
from recapture.body.retarget import KEPT_FROM_SUBJECT, complete
from recapture.pipelines.framing import Appearance, full_window, pixel_aligned, place_targets
from recapture.pipelines.pasting import OPAQUE, composite_person, photo_alpha
from recapture.pipelines.photo import LOW_POSE_CONFIDENCE, PhotoOptions, PhotoRequest, run_photo
from recapture.pipelines.pose_estimation import PoseEstimate
from recapture.pipelines.recapture import Recapturer
from recapture.pipelines.inpainting import PendingFill, apply_fill, fill_hole, inpaint_background
from recapture.pipelines.wild import PersonCrop, crop_to_model, model_to_photo
from test_photo_pipeline import TEMPLATE, draw_people, fake_estimator, fake_segmenter, models  # noqa: F401
from test_photo_pipeline import recapturer  # noqa: F401  (the module fixture)

LEGS = [KEYPOINT_INDEX[f"{side}_{joint}"] for side in ("right", "left") for joint in ("hip", "knee", "ankle")]
HEAD = [KEYPOINT_INDEX[name] for name in ("nose", "right_eye", "left_eye", "right_ear", "left_ear")]


def test_the_window_is_pixel_aligned_and_copies_the_photo_exactly() -> None:
    crop = pixel_aligned(PersonCrop(box=(-37.5, -77.19, 892.5, 562.19), scale=256 / 930.0, model_size=(256, 176)))
    assert all(float(v).is_integer() for v in crop.box)
    height, width = crop.box[2] - crop.box[0], crop.box[3] - crop.box[1]
    assert height % 16 == 0 and width == height * 11 / 16 and 930 <= height < 946
    assert abs((crop.box[0] + crop.box[2]) - (-37.5 + 892.5)) <= 1 and abs(crop.scale - 256 / height) < 1e-12
    photo = np.random.default_rng(0).integers(0, 256, (1000, 700, 3), dtype=np.uint8)
    inside = pixel_aligned(PersonCrop(box=(10.3, 20.6, 950.3, 666.9), scale=0.27, model_size=(256, 176)))
    window = full_window(inside)
    assert window.scale == 1.0
    y0, x0, y1, x1 = (int(v) for v in inside.box)
    np.testing.assert_array_equal(crop_to_model(photo, window), photo[y0:y1, x0:x1])
    back, region = model_to_photo(photo[y0:y1, x0:x1], window, photo.shape[:2])
    assert region == (y0, x0, y1, x1)
    np.testing.assert_array_equal(back, photo[y0:y1, x0:x1])


def _identity_appearance(photo: np.ndarray, crop: PersonCrop, image: np.ndarray) -> Appearance:
    window = full_window(crop)
    ys, xs = np.mgrid[:window.model_size[0], :window.model_size[1]].astype(np.float32)
    return Appearance(image=image, full=crop_to_model(photo, window), full_crop=window, flow=np.stack([ys, xs], -1))


def test_a_perfect_copy_composited_in_its_own_pose_gives_the_photo_back(recapturer: Recapturer) -> None:  # noqa: F811
    """The window's own pixels along the identity flow: the alpha's edge is the photo's person mask, the
    rim beside the still-covered edge is restored, so the composite is the photo (the old composite feathered
    the layout's 1/8-resolution edge over inpainted background)."""
    photo = draw_people([(5, 0, 190)])
    found = run_photo(PhotoRequest(source=photo), models(recapturer))
    prepared, geometry = found.prepared, found.geometry
    mask = prepared.segmented.person_mask
    generated = _identity_appearance(photo, prepared.framed.crop, found.generated.image)
    _, window = photo_alpha(prepared.framed, geometry, generated, mask)
    assert window.scale == 1.0
    done = composite_person(photo, mask, prepared.framed, geometry, generated)
    error = np.abs(done.image.astype(int) - photo).max(axis=-1)
    assert (error > 8).mean() < 0.002, (error > 8).mean()
    hole = inpaint_background(photo, mask, keep=np.zeros(mask.shape, bool))
    assert (np.abs(hole.astype(int) - photo).max(axis=-1) > 8).mean() > 0.01  # the rim really was inpainted


def test_the_fill_made_ahead_gives_the_same_composite(recapturer: Recapturer) -> None:  # noqa: F811
    """prepare_photo starts inpainting the old person on another thread (PendingFill): the result equals
    the serial composite, and fill_hole + apply_fill equal inpaint_background for any ``keep``, large photos
    (reduced working size plus grain) included."""
    photo = draw_people([(5, 0, 190)])
    target = TEMPLATE.copy()
    target[HEAD, 1] += 20.0
    found = run_photo(PhotoRequest(source=photo, target=target), models(recapturer))
    prepared = found.prepared
    serial = composite_person(photo, prepared.segmented.person_mask, prepared.framed, found.geometry, found.generated)
    np.testing.assert_array_equal(found.composited.image, serial.image)
    big = np.asarray(Image.fromarray(photo).resize((photo.shape[1] * 6, photo.shape[0] * 6)))
    mask = np.asarray(Image.fromarray(prepared.segmented.person_mask.astype(np.float32)).resize(big.shape[1::-1]))
    keep = np.zeros(mask.shape, bool)
    keep[: mask.shape[0] // 2] = True
    fill = fill_hole(big, mask)
    assert fill is not None and fill.factor < 1 and fill_hole(big, np.zeros(mask.shape)) is None
    for kept in (None, keep):
        np.testing.assert_array_equal(apply_fill(big, fill, kept), inpaint_background(big, mask, keep=kept))
    assert not np.array_equal(apply_fill(big, fill), apply_fill(big, fill, keep))


def test_no_trace_of_a_moved_head_remains(recapturer: Recapturer) -> None:  # noqa: F811
    """The head moved sideways: wherever the new person's final (feathered) alpha lets the background show,
    the old person is inpainted away, so no old-head pixel shows beside the new head. (The hole used to be
    reduced by the unfeathered layout eroded by one model pixel: with this 6 px feather, 571 old-person
    pixels stayed in the visible background.)"""
    photo = draw_people([(5, 0, 190)])
    target = TEMPLATE.copy()
    target[HEAD, 1] += 28.0
    found = run_photo(PhotoRequest(source=photo, target=target, options=PhotoOptions(feather_px=6.0)),
                      models(recapturer))
    prepared = found.prepared
    old = prepared.segmented.person_mask > 0.5
    alpha, window = photo_alpha(prepared.framed, found.geometry, found.generated, prepared.segmented.person_mask,
                                6.0)
    region, (y0, x0, y1, x1) = model_to_photo(alpha, window, photo.shape[:2])
    shown = np.ones(photo.shape[:2], bool)
    shown[y0:y1, x0:x1] = region < OPAQUE
    background = found.composited.background
    assert (old & shown).sum() > 50
    assert not fake_segmenter(background)[old & shown].any()  # no person colour left in the visible background
    head = np.zeros(photo.shape[:2], bool)
    head[:45] = True
    uncovered = old & head & (np.pad(region, ((y0, photo.shape[0] - y1), (x0, photo.shape[1] - x1))) < 0.05)
    assert uncovered.sum() > 20 and not fake_segmenter(found.composite)[uncovered].any()


def test_an_upper_body_target_keeps_the_subjects_legs(recapturer: Recapturer) -> None:  # noqa: F811
    """Rule: hips, knees and ankles the target leaves out are the subject's own, hung from the placed pose."""
    subject = TEMPLATE.copy()
    target = TEMPLATE.copy()
    target[[KEYPOINT_INDEX["right_wrist"], KEYPOINT_INDEX["left_wrist"]], 0] -= 90.0  # arms raised
    target[LEGS] = -1.0
    placed = place_targets(subject, target)[0]
    np.testing.assert_allclose(placed[LEGS], subject[LEGS], atol=1e-9)
    assert not missing_mask(placed).any()
    wrist, elbow = KEYPOINT_INDEX["left_wrist"], KEYPOINT_INDEX["left_elbow"]
    direction = lambda pose: (pose[wrist] - pose[elbow]) / np.linalg.norm(pose[wrist] - pose[elbow])  # noqa: E731
    np.testing.assert_allclose(direction(placed), direction(target), atol=1e-9)  # the arm follows the target
    lower = target.copy()
    lower[KEYPOINT_INDEX["neck"]] += (5.0, 7.0)
    hung = complete(lower, subject)
    right_hip = KEYPOINT_INDEX["right_hip"]
    np.testing.assert_allclose(hung[right_hip] - hung[KEYPOINT_INDEX["neck"]],
                               subject[right_hip] - subject[KEYPOINT_INDEX["neck"]])
    eyes_gone = target.copy()
    eyes_gone[HEAD[1:]] = -1.0
    assert missing_mask(complete(eyes_gone, subject)[HEAD[1:]]).all() and set(KEPT_FROM_SUBJECT) == set(LEGS)
    photo = draw_people([(5, 0, 190)])
    found = run_photo(PhotoRequest(source=photo, target=target), models(recapturer))
    layout = found.geometry.target_layout
    keypoints = found.geometry.target_keypoints
    ankle = KEYPOINT_INDEX["right_ankle"]
    assert not missing_mask(keypoints[LEGS]).any()
    knee_row = int(round(keypoints[KEYPOINT_INDEX["right_knee"], 0]))
    assert (layout[knee_row:int(keypoints[ankle, 0])] > 0).any(axis=1).all()  # the legs are drawn


def _doubtful_estimator(image: np.ndarray) -> PoseEstimate | None:
    found = fake_estimator(image)
    return None if found is None else replace(found, confidence=np.full(18, 0.62))


def test_low_pose_confidence_is_warned(recapturer: Recapturer) -> None:  # noqa: F811
    photo = draw_people([(5, 0, 190)])
    sure = run_photo(PhotoRequest(source=photo), models(recapturer))
    assert not any("pose confidence" in m for m in sure.messages) and "pose confidence" not in sure.summary()
    loaded = models(recapturer)
    loaded._estimator = _doubtful_estimator
    doubtful = run_photo(PhotoRequest(source=photo), loaded)
    assert any("low pose confidence" in m and "0.62" in m for m in doubtful.messages)
    assert "low pose confidence 0.62" in doubtful.summary() and LOW_POSE_CONFIDENCE > 0.62
    assert doubtful.prepared.posed.pose_confidence() == pytest.approx(0.62)


def test_a_copied_edge_never_brings_back_the_old_head() -> None:
    """Photo-resolution alpha: the new head (5.6 model px = 28 photo px right of the old one) copies the old
    head, everything else stays (identity flow). Beside the new head, and above the still shoulders, the
    copied person mask still says "person" (the old head is there), but that copy does not continue the new
    person (the flow jumps from the head's; the old face is not the shoulders' part), so the alpha there is
    the layout's (0) and the old head is inpainted; the new head itself is copied and opaque."""
    import cv2

    from recapture.pipelines.framing import Framed
    from recapture.pipelines.pasting import EDGE_BAND
    from recapture.pipelines.recapture import LayoutPrediction, SourceInput

    yy, xx = np.mgrid[:200, :150]
    mask = (((yy - 40) ** 2 + (xx - 60) ** 2 <= 15 ** 2) | ((yy >= 55) & (yy < 190) & (xx >= 55) & (xx < 95)))
    layout = np.zeros((40, 30), np.uint8)
    layout[11:38, 11:19] = 5  # upper_clothes: the body stays
    my, mx = np.mgrid[:40, :30]
    before = layout.copy()
    before[(my + 0.5 - 8.0) ** 2 + (mx + 0.5 - 12.0) ** 2 <= 3.0 ** 2] = 13  # face: the old head
    layout[(my + 0.5 - 8.1) ** 2 + (mx + 0.5 - 17.6) ** 2 <= 3.2 ** 2] = 13  # face: the head moved right
    crop = PersonCrop(box=(0.0, 0.0, 200.0, 150.0), scale=0.2, model_size=(40, 30))
    source = SourceInput(image=np.zeros((40, 30, 3), np.uint8), keypoints=np.full((18, 2), -1.0), layout=before)
    framed = Framed(crop=crop, extent="full body", source=source, targets=np.zeros((1, 18, 2)),
                    targets_photo=np.zeros((1, 18, 2)), bottom=None)
    geometry = LayoutPrediction(predicted_layout=layout, target_layout=layout, target_keypoints=np.zeros((18, 2)))
    window = full_window(crop)
    head = cv2.resize(layout, (150, 200), interpolation=cv2.INTER_NEAREST) == 13  # as the appearance enlarges it
    flow = np.stack([yy, np.where(head, xx - 28, xx)], -1).astype(np.float32)
    generated = Appearance(image=np.zeros((40, 30, 3), np.uint8), full=np.zeros((200, 150, 3), np.uint8),
                           full_crop=window, flow=flow)
    alpha, used = photo_alpha(framed, geometry, generated, mask.astype(np.float32))
    assert used.scale == 1.0 and alpha.shape == (200, 150)
    old_head = ((yy - 40) ** 2 + (xx - 60) ** 2 <= 15 ** 2) & (yy < 50)
    near = cv2.dilate(head.astype(np.uint8), np.ones((2 * round(EDGE_BAND * 5) + 1,) * 2, np.uint8)) > 0
    off = cv2.dilate(head.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # past the 1 px feather
    beside = old_head & near & ~off  # within the copied-edge band of the new head, on the old head
    assert beside.sum() > 50
    assert alpha[beside].max() < 0.05, alpha[beside].max()
    copies_head = head & np.roll(old_head, 28, axis=1)
    assert copies_head.sum() > 300 and (alpha[copies_head] == 1.0).all()  # the new head: copied, opaque


def test_invented_pixels_are_the_edited_parts_and_a_large_share_is_warned(recapturer: Recapturer,  # noqa: F811
                                                                          tmp_path: Path) -> None:
    from recapture.body.edits import LayoutEdits
    from recapture.pipelines.pasting import INVENTED_WARNING

    photo = draw_people([(5, 10, 190)])
    plain = run_photo(PhotoRequest(source=photo, invented_mask_out=tmp_path / "plain.png"), models(recapturer))
    assert plain.composited.invented_share == 0.0 and not plain.composited.invented.any()
    assert not any("invented" in m for m in plain.messages)
    assert not np.asarray(Image.open(tmp_path / "plain.png")).any()
    coat = run_photo(PhotoRequest(source=photo, edits=LayoutEdits.parse(clothing=["upper=coat"]),
                                  invented_mask_out=tmp_path / "coat.png"), models(recapturer))
    invented = coat.composited.invented
    assert coat.composited.invented_share > INVENTED_WARNING
    assert any("invented rather than copied" in m for m in coat.messages)
    written = np.asarray(Image.open(tmp_path / "coat.png")) > 0
    np.testing.assert_array_equal(written, invented)
    rows = np.nonzero(invented.any(axis=1))[0]
    assert invented.sum() > 200 and rows.max() < 0.7 * photo.shape[0]  # the upper body, not the legs


def test_a_fill_not_ready_is_made_by_the_caller() -> None:
    """PendingFill's worker runs at the lowest priority (Linux: nice 19); when the fill is not ready at
    result() (here the worker is held busy), the caller makes the same fill itself instead of waiting."""
    photo = draw_people([(5, 0, 190)])
    mask = np.zeros(photo.shape[:2], np.float32)
    mask[40:120, 30:70] = 1.0
    release, held, seen = threading.Event(), threading.Event(), []

    def hold() -> None:
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        held.set()
        release.wait(10)

    blocker = PendingFill._workers.submit(hold)
    assert held.wait(10)
    try:
        pending = PendingFill(photo, mask)
        made = pending.result()
        assert pending._future.cancelled()
        expected = fill_hole(photo, mask)
        np.testing.assert_array_equal(made.filled, expected.filled)
        assert pending.result() is made
    finally:
        release.set()
        blocker.result()
    if sys.platform.startswith("linux"):
        assert seen == [19]
    ready = PendingFill(photo, mask)
    ready._future.result()
    np.testing.assert_array_equal(ready.result().filled, expected.filled)
