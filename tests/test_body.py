"""Body knowledge: heatmaps, keypoint flips, pose masks, label sets, adjacency and merges."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recapture.body.keypoints import (
    FLIP_PERMUTATION, KEYPOINT_INDEX, KEYPOINT_NAMES, LIMBS, flip_keypoints, heatmaps_to_keypoints,
    keypoints_to_heatmaps, missing_mask, pose_mask,
)
from recapture.body.part_maps import torso_mask
from recapture.body.parts import ADGAN8, LABEL_SETS, LIP20, LIP20_NAMES, MARKET7, get_label_set, merge_lip20


def _random_keypoints(rng: np.random.Generator, size: tuple[int, int], missing: int = 4) -> np.ndarray:
    keypoints = np.stack([rng.integers(0, size[0], 18), rng.integers(0, size[1], 18)], axis=1)
    keypoints[rng.choice(18, missing, replace=False)] = -1
    return keypoints


def test_heatmap_disk_has_radius_4_at_256() -> None:
    keypoints = np.full((18, 2), -1)
    keypoints[0] = (128, 88)
    heat = keypoints_to_heatmaps(keypoints, (256, 176))
    assert heat.shape == (18, 256, 176) and heat.dtype == torch.float32
    count = int(heat[0].sum())
    assert count == 49 and abs(count - math.pi * 16) < 2
    assert heat[0, 128, 88] == 1 and heat[0, 128, 92] == 1 and heat[0, 132, 88] == 1
    assert heat[0, 128, 93] == 0 and heat[0, 123, 88] == 0 and heat[0, 131, 91] == 0
    assert heat[1:].sum() == 0
    half = keypoints_to_heatmaps(keypoints // 2, (128, 88))
    assert int(half[0].sum()) == 13 and half[0, 64, 46] == 1 and half[0, 64, 47] == 0


def test_missing_joint_gives_zero_channel() -> None:
    keypoints = np.full((18, 2), 10)
    keypoints[3] = -1
    keypoints[5] = (-1, 7)
    keypoints[6] = (7, -1)
    heat = keypoints_to_heatmaps(keypoints, (32, 24))
    assert [int(c) for c in (heat.sum(dim=(1, 2)) == 0).nonzero().flatten()] == [3, 5, 6]
    assert missing_mask(keypoints).nonzero()[0].tolist() == [3, 5, 6]


def test_batched_equals_unbatched_and_centroids_invert() -> None:
    rng = np.random.default_rng(0)
    batch = np.stack([_random_keypoints(rng, (64, 48)) for _ in range(3)])
    batched = keypoints_to_heatmaps(torch.as_tensor(batch), (64, 48))
    assert batched.shape == (3, 18, 64, 48)
    for i in range(3):
        assert torch.equal(batched[i], keypoints_to_heatmaps(batch[i], (64, 48)))
    inside = np.full((18, 2), -1)
    inside[:5] = [(10, 10), (20, 30), (50, 5), (3, 3), (40, 44)]
    assert np.array_equal(heatmaps_to_keypoints(keypoints_to_heatmaps(inside, (64, 48))), inside)


def test_flip_keypoints_swaps_left_right_and_is_an_involution() -> None:
    rng = np.random.default_rng(1)
    keypoints = _random_keypoints(rng, (64, 48))
    keypoints[KEYPOINT_INDEX["right_wrist"]] = (30, 5)
    keypoints[KEYPOINT_INDEX["left_wrist"]] = -1
    flipped = flip_keypoints(keypoints, 48)
    assert flipped[KEYPOINT_INDEX["left_wrist"]].tolist() == [30, 42]
    assert flipped[KEYPOINT_INDEX["right_wrist"]].tolist() == [-1, -1]
    nose = KEYPOINT_INDEX["nose"]
    if keypoints[nose, 0] != -1:
        assert flipped[nose].tolist() == [keypoints[nose, 0], 47 - keypoints[nose, 1]]
    assert np.array_equal(flip_keypoints(flipped, 48), keypoints)
    assert all(FLIP_PERMUTATION[FLIP_PERMUTATION[i]] == i for i in range(18))
    for i, name in enumerate(KEYPOINT_NAMES):
        other = KEYPOINT_NAMES[FLIP_PERMUTATION[i]]
        assert other == name.replace("left_", "R_").replace("right_", "left_").replace("R_", "right_")


def test_flipped_heatmaps_are_mirrored_and_permuted() -> None:
    keypoints = _random_keypoints(np.random.default_rng(2), (40, 30))
    heat = keypoints_to_heatmaps(keypoints, (40, 30))
    flipped = keypoints_to_heatmaps(flip_keypoints(keypoints, 30), (40, 30))
    assert torch.equal(flipped, heat.flip(-1)[list(FLIP_PERMUTATION)])


def test_pose_mask_covers_joints_and_limbs_and_is_deterministic() -> None:
    keypoints = _random_keypoints(np.random.default_rng(3), (128, 64), missing=6)
    mask = pose_mask(keypoints, (128, 64))
    assert mask.shape == (128, 64) and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(mask, pose_mask(keypoints.copy(), (128, 64)))
    present = ~missing_mask(keypoints)
    for y, x in keypoints[present]:
        assert mask[y, x] == 1
    for a, b in LIMBS:
        if present[a] and present[b]:
            y, x = (keypoints[a] + keypoints[b]) // 2
            assert mask[y, x] == 1
    assert 0 < mask.mean() < 1
    assert pose_mask(np.full((18, 2), -1), (128, 64)).sum() == 0


def _inside_convex(corners: np.ndarray, y: float, x: float) -> bool:
    """Naive reference: a point is inside a convex polygon when it lies on one side of every edge."""
    sides = [(by - ay) * (x - ax) - (bx - ax) * (y - ay)
             for (ay, ax), (by, bx) in zip(corners, np.roll(corners, -1, axis=0))]
    return all(s > 0 for s in sides) or all(s < 0 for s in sides)


def test_torso_mask_is_the_shoulders_hips_quadrilateral_and_flips_with_the_image() -> None:
    rng = np.random.default_rng(7)
    for _ in range(5):
        keypoints = np.full((18, 2), -1.0)
        keypoints[[2, 5, 11, 8]] = [[10, 5], [11, 20], [40, 19], [39, 6]] + rng.uniform(-2.5, 2.5, (4, 2))
        found = torso_mask(keypoints, (48, 28))
        naive = np.array([[_inside_convex(keypoints[[2, 5, 11, 8]], y, x) for x in range(28)] for y in range(48)])
        assert np.array_equal(found, naive) and 300 < found.sum() < 500
        assert np.array_equal(torso_mask(flip_keypoints(keypoints, 28), (48, 28)), found[:, ::-1])
    keypoints[KEYPOINT_INDEX["left_hip"]] = -1
    assert not torso_mask(keypoints, (48, 28)).any()  # a missing corner: no torso


@pytest.mark.parametrize("label_set", list(LABEL_SETS.values()), ids=list(LABEL_SETS))
def test_label_set_flip_permutation_is_an_involution(label_set) -> None:
    perm = label_set.flip_permutation
    assert sorted(perm) == list(range(label_set.num_parts))
    assert all(perm[perm[i]] == i for i in range(label_set.num_parts))
    for i, name in enumerate(label_set.names):
        if name.startswith(("left_", "right_")):
            assert perm[i] != i and label_set.names[perm[i]].split("_", 1)[1] == name.split("_", 1)[1]
        else:
            assert perm[i] == i
    labels = np.arange(label_set.num_parts, dtype=np.uint8).reshape(1, -1)
    assert np.array_equal(label_set.flip_labels(label_set.flip_labels(labels)), labels)
    assert torch.equal(label_set.flip_labels(torch.as_tensor(labels)), torch.as_tensor(label_set.flip_labels(labels)))


def test_lip20_flip_swaps_arms_legs_shoes() -> None:
    for part in ("arm", "leg", "shoe"):
        left, right = LIP20.index(f"left_{part}"), LIP20.index(f"right_{part}")
        assert LIP20.flip_permutation[left] == right and LIP20.flip_permutation[right] == left
    assert LIP20.flip_labels(np.array([LIP20.index("face")]))[0] == LIP20.index("face")


@pytest.mark.parametrize("label_set", list(LABEL_SETS.values()), ids=list(LABEL_SETS))
def test_adjacency_and_normalized_adjacency(label_set) -> None:
    adj = label_set.adjacency()
    n = label_set.num_parts
    assert adj.shape == (n, n) and torch.equal(adj, adj.T) and torch.all(adj.diagonal() == 0)
    assert set(adj.unique().tolist()) <= {0.0, 1.0} and adj.sum() == 2 * len(set(map(frozenset, label_set.edges)))
    norm = label_set.normalized_adjacency()
    assert torch.allclose(norm, norm.T)
    with_loops = adj + torch.eye(n)
    degree = with_loops.sum(dim=1)
    naive = torch.tensor([[with_loops[i, j].item() / math.sqrt(degree[i] * degree[j]) for j in range(n)]
                          for i in range(n)])
    assert torch.allclose(norm, naive, atol=1e-6)
    assert torch.linalg.eigvalsh(norm).max() <= 1 + 1e-5
    flipped = adj[list(label_set.flip_permutation)][:, list(label_set.flip_permutation)]
    assert torch.equal(flipped, adj), "the skeleton must be left/right symmetric"


def test_one_hot_sums_to_one_and_rejects_out_of_range() -> None:
    labels = torch.randint(0, 7, (2, 5, 4))
    hot = MARKET7.one_hot(labels)
    assert hot.shape == (2, 7, 5, 4) and torch.equal(hot.sum(dim=1), torch.ones(2, 5, 4))
    assert torch.equal(hot.argmax(dim=1), labels)
    with pytest.raises(ValueError):
        MARKET7.one_hot(torch.tensor([[7]]))


@pytest.mark.parametrize("target", ["market7", "adgan8", "lip20"])
def test_merge_lip20_maps_every_label(target: str) -> None:
    dest = get_label_set(target)
    labels = np.arange(20, dtype=np.uint8).reshape(4, 5)
    merged = merge_lip20(labels, target)
    assert merged.shape == labels.shape and merged.max() < dest.num_parts
    assert merged[0, 0] == dest.index("background")
    assert merge_lip20(np.array([LIP20.index("left_arm")]), target)[0] == merge_lip20(
        np.array([LIP20.index("right_arm")]), target)[0] or target == "lip20"
    assert np.array_equal(merge_lip20(LIP20.flip_labels(labels), target), dest.flip_labels(merged))
    if target != "lip20":
        assert set(np.unique(merged)) == set(range(dest.num_parts)), "every merged part has a LIP source"
    with pytest.raises(ValueError):
        merge_lip20(np.array([20]), target)


def test_label_set_lookup_and_colours() -> None:
    assert get_label_set("adgan8") is ADGAN8 and len(LIP20_NAMES) == 20
    with pytest.raises(ValueError, match="lip20"):
        get_label_set("lip21")
    with pytest.raises(ValueError):
        LIP20.index("tail")
    colours = LIP20.colorize(np.arange(20).reshape(4, 5))
    assert colours.shape == (4, 5, 3) and len({tuple(c) for c in colours.reshape(-1, 3)}) == 20
