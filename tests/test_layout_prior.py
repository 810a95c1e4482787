"""The keypoint prior (warp_layout / warp_image): identity, translation, scale, mirror, missing joints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recapture.body.keypoints import KEYPOINT_INDEX, flip_keypoints
from recapture.body.parts import LIP20
from recapture.body.keypoint_warp import part_warp, warp_image, warp_layout
from recapture.body.part_maps import BACK, FRONT, SIDE, segment_maps, view_of

SIZE = (64, 44)
#: A standing mannequin with one arm raised (asymmetric), all 18 joints present, y/x at 64x44.
JOINTS = {
    "nose": (9, 22), "neck": (15, 22), "right_shoulder": (16, 15), "right_elbow": (9, 9), "right_wrist": (3, 7),
    "left_shoulder": (16, 29), "left_elbow": (24, 31), "left_wrist": (32, 32), "right_hip": (34, 18),
    "right_knee": (45, 17), "right_ankle": (56, 16), "left_hip": (34, 26), "left_knee": (45, 27),
    "left_ankle": (56, 28), "left_eye": (8, 24), "right_eye": (8, 20), "left_ear": (9, 26), "right_ear": (9, 18),
}


def mannequin_keypoints(scale: float = 1.0, shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    keypoints = np.full((18, 2), -1.0)
    for name, (y, x) in JOINTS.items():
        keypoints[KEYPOINT_INDEX[name]] = (y * scale + shift[0], x * scale + shift[1])
    return keypoints


def _distance(ys: np.ndarray, xs: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = b - a
    t = np.clip(((ys - a[0]) * d[0] + (xs - a[1]) * d[1]) / max(float(d @ d), 1e-9), 0, 1)
    return np.hypot(ys - a[0] - t * d[0], xs - a[1] - t * d[1])


def mannequin_layout(keypoints: np.ndarray, size: tuple[int, int] = SIZE, scale: float = 1.0) -> np.ndarray:
    """``(H, W)`` LIP-20 labels painted around ``keypoints``: torso, head, hair, limbs, shoes."""
    ys, xs = np.mgrid[0:size[0], 0:size[1]].astype(np.float64)
    k = {name: keypoints[KEYPOINT_INDEX[name]] for name in JOINTS}
    labels = np.zeros(size, np.uint8)
    torso = _distance(ys, xs, k["neck"], (k["left_hip"] + k["right_hip"]) / 2) <= 6 * scale
    labels[torso] = LIP20.index("upper_clothes")
    labels[np.hypot(ys - k["nose"][0] + 3 * scale, xs - k["nose"][1]) <= 3.5 * scale] = LIP20.index("hair")
    labels[np.hypot(ys - k["nose"][0], xs - k["nose"][1]) <= 3.5 * scale] = LIP20.index("face")
    for side in ("left", "right"):
        for a, b, part in (("shoulder", "elbow", "arm"), ("elbow", "wrist", "arm"), ("hip", "knee", "leg"),
                           ("knee", "ankle", "leg")):
            near = _distance(ys, xs, k[f"{side}_{a}"], k[f"{side}_{b}"]) <= 2 * scale
            labels[near] = LIP20.index(f"{side}_{part}")
        foot = np.hypot(ys - k[f"{side}_ankle"][0] - 2 * scale, xs - k[f"{side}_ankle"][1]) <= 2 * scale
        labels[foot] = LIP20.index(f"{side}_shoe")
    return labels


def moved_mannequin(size: tuple[int, int], scale: float, spread: float,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(labels at size, source keypoints, target keypoints)``: the mannequin at ``scale`` and a target pose with
    every joint moved by Gaussian noise of ``spread`` pixels."""
    source = mannequin_keypoints(scale)
    return mannequin_layout(source, size, scale), source, source + rng.normal(0, spread, source.shape)


def _batch(labels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(labels.astype(np.int64))[None]


def test_identical_poses_give_the_identity() -> None:
    keypoints = mannequin_keypoints()
    labels = mannequin_layout(keypoints)
    fit = segment_maps(keypoints, keypoints, SIZE[0])
    identity = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    assert fit.valid.all() and np.allclose(fit.maps, identity, atol=1e-6)
    warped = warp_layout(_batch(labels), keypoints[None], keypoints[None])
    assert warped.layout.shape == (1, 20, *SIZE)
    assert torch.equal(warped.layout.argmax(1)[0], torch.from_numpy(labels.astype(np.int64)))
    assert torch.all(warped.validity == 1) and warped.unexplained.sum() == 0


@pytest.mark.parametrize("shift", [(3, -4), (-2, 5)])
def test_a_translated_pose_translates_the_layout(shift: tuple[int, int]) -> None:
    keypoints = mannequin_keypoints()
    labels = mannequin_layout(keypoints)
    warped = warp_layout(_batch(labels), keypoints[None], mannequin_keypoints(shift=shift)[None]).layout.argmax(1)[0]
    expected = np.zeros_like(labels)
    dy, dx = shift
    expected[max(dy, 0):SIZE[0] + min(dy, 0), max(dx, 0):SIZE[1] + min(dx, 0)] = \
        labels[max(-dy, 0):SIZE[0] - max(dy, 0), max(-dx, 0):SIZE[1] - max(dx, 0)]
    assert np.array_equal(warped.numpy(), expected)


def test_a_scaled_pose_scales_the_layout() -> None:
    big = (SIZE[0] * 2, SIZE[1] * 2)
    keypoints = mannequin_keypoints()
    labels = mannequin_layout(keypoints, big)  # the mannequin in the top-left quarter of a larger frame
    target = mannequin_keypoints(scale=2.0)
    warped = part_warp(_batch(labels), keypoints, target, LIP20).labels[0].numpy()
    expected = mannequin_layout(target, big, scale=2.0)
    person = (expected > 0) | (warped > 0)
    agreement = (warped == expected)[person].mean()
    unscaled = (labels == expected)[(expected > 0) | (labels > 0)].mean()
    assert agreement > 0.85 and agreement > unscaled + 0.5, (agreement, unscaled)
    assert (warped > 0).sum() > 3.5 * (labels > 0).sum()


def test_left_and_right_parts_follow_a_horizontal_flip() -> None:
    keypoints = mannequin_keypoints()
    labels = mannequin_layout(keypoints)
    mirrored = flip_keypoints(keypoints, SIZE[1])
    warped = warp_layout(_batch(labels), keypoints[None], mirrored[None]).layout.argmax(1)[0].numpy()
    expected = LIP20.flip_labels(labels[:, ::-1])
    for part in ("left_arm", "right_arm", "left_leg", "right_leg"):
        label = LIP20.index(part)
        inter = ((warped == label) & (expected == label)).sum()
        union = ((warped == label) | (expected == label)).sum()
        assert inter / union > 0.75, (part, inter / union)
    # the raised arm is on the image's right after the mirror, and labelled as the left arm it became
    raised = warped[:8] == LIP20.index("left_arm")
    assert raised[:, SIZE[1] // 2:].sum() > 0 and raised[:, :SIZE[1] // 2].sum() == 0


def test_views_are_read_from_the_skeleton() -> None:
    keypoints = mannequin_keypoints()
    assert view_of(keypoints, SIZE[0])[0] == FRONT
    back = keypoints.copy()
    for right, left in ((2, 5), (8, 11), (3, 6), (4, 7)):
        back[[right, left]] = back[[left, right]]
    back[[0, 14, 15]] = -1
    assert view_of(back, SIZE[0])[0] == BACK
    side = keypoints.copy()
    side[5, 1], side[11, 1] = side[2, 1] + 1, side[8, 1] + 1
    assert view_of(side, SIZE[0])[0] == SIDE


def test_front_to_back_turns_the_face_into_hair_and_arms_go_behind_the_torso() -> None:
    keypoints = mannequin_keypoints()
    keypoints[KEYPOINT_INDEX["left_wrist"]] = (24, 22)  # left forearm across the belly
    labels = mannequin_layout(keypoints)
    back = keypoints.copy()
    back[:, 1] = SIZE[1] - 1 - back[:, 1]  # seen from behind: the person's left is on the image's left
    back[[0, 14, 15]] = -1
    warped = warp_layout(_batch(labels), keypoints[None], back[None]).layout.argmax(1)[0].numpy()
    assert (warped == LIP20.index("face")).sum() == 0 and (warped == LIP20.index("hair")).sum() > 0
    belly = warped[22:27, 19:26]
    assert (belly == LIP20.index("upper_clothes")).mean() > 0.8, belly


@pytest.mark.parametrize("twins", [False, True])
def test_missing_joints_never_give_nan_or_parts_outside_the_image(twins: bool) -> None:
    rng = np.random.default_rng(0)
    keypoints = mannequin_keypoints()
    labels = _batch(mannequin_layout(keypoints)).repeat(6, 1, 1)
    sources, targets = [], []
    for trial in range(6):
        source, target = keypoints.copy(), keypoints + rng.normal(0, 4, keypoints.shape)
        source[rng.random(18) < 0.3 * trial / 5] = -1
        target[rng.random(18) < 0.3 * trial / 5] = -1
        if trial == 4:
            target[:] = -1
        if trial == 5:
            target[:] = (500.0, -300.0)  # far outside the frame
        sources.append(source)
        targets.append(target)
    found = part_warp(labels, np.stack(sources), np.stack(targets), LIP20, twins=twins)
    assert torch.isfinite(found.source_coords).all() and torch.isfinite(found.part_validity).all()
    assert found.labels.shape == labels.shape and int(found.labels.max()) < 20 and int(found.labels.min()) >= 0
    assert int(found.labels[4].max()) == 0 and int(found.labels[5].max()) == 0
    inside = found.source_coords[found.segment >= 0]
    assert (inside[:, 0] >= -0.5).all() and (inside[:, 0] <= SIZE[0] - 0.5).all()
    assert (found.part_validity[1:4] <= 1).all() and (found.part_validity[4] < 1).any()
    image = torch.rand(6, 3, *SIZE) * 2 - 1
    moved = warp_image(image, labels, np.stack(sources), np.stack(targets))
    assert torch.isfinite(moved).all() and moved.shape == image.shape


def test_warp_image_moves_exactly_the_pixels_of_warp_layout() -> None:
    keypoints = mannequin_keypoints()
    labels = mannequin_layout(keypoints)
    target = mannequin_keypoints(shift=(2, 3))
    target[KEYPOINT_INDEX["right_wrist"]] = (10, 3)  # and the forearm turns
    colours = torch.from_numpy(np.asarray(LIP20.palette, np.float32))[torch.from_numpy(labels.astype(np.int64))]
    image = colours.permute(2, 0, 1)[None]
    found = part_warp(_batch(labels), keypoints, target, LIP20)
    moved = warp_image(image, _batch(labels), keypoints, target)
    covered = found.segment[0] >= 0
    rounded = torch.from_numpy(np.asarray(LIP20.palette, np.float32))[found.labels[0]].permute(2, 0, 1)
    close = (moved[0] - rounded).abs().amax(0) < 1.0
    assert close[covered].float().mean() > 0.9


def test_full_resolution_agrees_with_the_small_frame() -> None:
    keypoints = mannequin_keypoints()
    labels = mannequin_layout(keypoints)
    target = mannequin_keypoints(shift=(1, 2))
    target[KEYPOINT_INDEX["left_wrist"]] = (30, 40)
    small = part_warp(_batch(labels), keypoints, target, LIP20).labels[0].numpy()
    big_labels = mannequin_layout(mannequin_keypoints(scale=4, shift=(1.5, 1.5)), (SIZE[0] * 4, SIZE[1] * 4), 4)
    big_target = target * 4 + 1.5
    big = part_warp(_batch(big_labels), mannequin_keypoints(scale=4, shift=(1.5, 1.5)), big_target, LIP20)
    sampled = big.labels[0].numpy()[1::4, 1::4]
    person = (small > 0) | (sampled > 0)
    assert (small == sampled)[person].mean() > 0.85


def _legs_apart(scale: float) -> np.ndarray:
    """The mannequin with its left leg swung out: knee and ankle 4 and 9 px (x scale) further left."""
    target = mannequin_keypoints(scale)
    for name, dx in (("left_knee", 4.0), ("left_ankle", 9.0)):
        target[KEYPOINT_INDEX[name], 1] += dx * scale
    return target


def test_twins_draw_a_leg_the_source_labels_as_the_other_one() -> None:
    """Crossed or mislabelled legs: the source's left leg is labelled right leg, so no left-leg pixel exists. With
    ``twins`` the swung-out left leg of the target is drawn from the right leg (labelled left); without, it is
    missing."""
    scale, size = 2.0, (128, 88)
    keypoints, target = mannequin_keypoints(scale), _legs_apart(scale)
    labels = mannequin_layout(keypoints, size, scale)
    labels[labels == LIP20.index("left_leg")] = LIP20.index("right_leg")
    leg = LIP20.index("left_leg")
    plain, twins = (part_warp(_batch(labels), keypoints, target, LIP20, twins=t) for t in (False, True))
    expected = mannequin_layout(target, size, scale) == leg
    assert (plain.labels[0].numpy() == leg).sum() == 0
    drawn = twins.labels[0].numpy() == leg
    assert (drawn & expected).sum() > 0.6 * expected.sum(), ((drawn & expected).sum(), expected.sum())
    source_y, source_x = (twins.source_coords[0][torch.from_numpy(drawn)].round().long().T)
    assert (labels[source_y.numpy(), source_x.numpy()] == LIP20.index("right_leg")).all()


def test_twins_change_nothing_when_every_limb_shows_or_a_hidden_one_stays() -> None:
    scale, size = 2.0, (128, 88)
    keypoints = mannequin_keypoints(scale)
    labels = mannequin_layout(keypoints, size, scale)
    hidden = labels.copy()
    hidden[np.isin(labels, [LIP20.index("left_leg"), LIP20.index("left_shoe")])] = 0  # the left leg not shown
    for source_labels, target in ((labels, _legs_apart(scale)), (hidden, keypoints)):
        plain, twins = (part_warp(_batch(source_labels), keypoints, target, LIP20, twins=t) for t in (False, True))
        assert torch.equal(plain.labels, twins.labels) and torch.equal(plain.segment, twins.segment)
    moved = part_warp(_batch(hidden), keypoints, _legs_apart(scale), LIP20, twins=True).labels
    assert (moved == LIP20.index("left_leg")).sum() > 0  # the same hidden leg, moved: drawn from its twin
