"""The vectorised NumPy keypoint prior (body/prior_numpy.py): the previous torch warp's output pixel for pixel
(golden digests), the torch correspondence prior grid, torch's area pooling, one-hot and heatmaps."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recapture.body import keypoint_warp, prior_numpy
from recapture.body.keypoints import keypoints_to_heatmaps
from recapture.body.parts import LIP20
from recapture.body.prior_numpy import LIMB_PARTS, snap_to_own_parts
from recapture.models.layout_ops import majority_layout
from recapture.models.prior_grid import prior_grid

sys.path.insert(0, str(Path(__file__).parent))
from test_layout_prior import mannequin_keypoints, mannequin_layout, moved_mannequin  # noqa: E402


def _case(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A painted person at a random scale, a target pose moved at random; some cases drop joints or turn
    the target around (a back view)."""
    rng = np.random.default_rng(seed)
    scale = rng.uniform(1.0, 3.0)
    size = (int(64 * scale), int(44 * scale))
    labels, source, target = moved_mannequin(size, scale, 4 * scale, rng)
    if seed % 3 == 1:
        target[rng.integers(0, 18, 3)] = -1
    if seed % 5 == 2:
        source[rng.integers(2, 14, 2)] = -1
    if seed % 4 == 3:
        target[:, 1] = np.where(target[:, 1] >= 0, size[1] - 1 - target[:, 1], -1)
    return labels, source, target


GOLDEN = json.loads((Path(__file__).parent / "golden" / "keypoint_warp.json").read_text())["cases"]


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).astype(np.int64).tobytes()).hexdigest()


@pytest.mark.parametrize("case", GOLDEN, ids=lambda case: f"seed{case['seed']}")
def test_part_warp_equals_the_previous_torch_implementation(case: dict) -> None:
    """The golden file holds the torch warp's output (before it was replaced by the vectorised NumPy one) on
    eight painted people: moved, with joints missing, turned around."""
    labels, source, target = _case(case["seed"])
    found = prior_numpy.part_warp(labels, source, target, "lip20")
    assert list(labels.shape) == case["size"]
    assert _digest(found.segment) == case["segment_sha256"]
    assert _digest(found.labels) == case["labels_sha256"]
    assert _digest(found.unexplained) == case["unexplained_sha256"]
    assert found.segment_valid.tolist() == case["segment_valid"]
    assert np.allclose(found.part_validity, case["part_validity"], atol=1e-5)
    assert np.abs(found.source_coords.reshape(-1, 2)[::211] - np.array(case["coords_every_211th"])).max() < 1e-3
    assert (found.segment >= 0).any() and (found.labels > 0).any()  # not a trivial case
    batched = keypoint_warp.part_warp(torch.from_numpy(labels.astype(np.int64))[None], source[None], target[None],
                                      "lip20")  # the torch API returns the same, as tensors
    assert _digest(batched.labels[0].numpy()) == case["labels_sha256"]
    assert torch.equal(batched.source_coords[0], torch.from_numpy(found.source_coords))


def test_owner_table_gives_each_part_its_segments() -> None:
    from recapture.body.part_maps import ARMS, HAIR, HEAD, TORSO

    table = prior_numpy.owner_table(LIP20)
    assert not table[0].any()  # background
    assert table[LIP20.index("hair")].tolist() == [s == HAIR for s in range(table.shape[1])]
    assert table[LIP20.index("face"), HEAD] and table[LIP20.index("face")].sum() == 1
    assert table[LIP20.index("left_arm")].sum() == 2 and table[LIP20.index("upper_clothes"), [TORSO, *ARMS]].all()


@pytest.mark.parametrize("seed", (0, 3))
def test_prior_grid_equals_the_correspondence_prior(seed: int) -> None:
    labels, source, target = _case(seed)
    reference = prior_grid(torch.from_numpy(labels.astype(np.int64))[None], source[None], target[None], "lip20")
    found = prior_numpy.prior_grid(labels, source, target, "lip20")
    assert np.abs(found.grid - reference.grid[0].numpy()).max() < 1e-5
    assert np.array_equal(found.covered, reference.covered[0, 0].numpy())
    assert np.array_equal(found.labels, reference.labels[0].numpy())


@pytest.mark.parametrize("size,small", [((70, 50), (32, 22)), ((64, 44), (32, 22)), ((33, 29), (16, 11))])
def test_majority_labels_and_area_resize_equal_torch_area_pooling(size: tuple[int, int],
                                                                   small: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, size) * (rng.random(size) < 0.7)  # many ties between parts
    hot = majority_layout(torch.from_numpy(labels)[None], LIP20.num_parts, small)
    assert np.array_equal(prior_numpy.majority_labels(labels, LIP20.num_parts, small), hot[0].argmax(0).numpy())
    image = rng.random((3, *size)).astype(np.float32)
    pooled = F.interpolate(torch.from_numpy(image)[None], size=small, mode="area")[0].numpy()
    assert np.abs(prior_numpy.area_resize(image, small) - pooled).max() < 1e-6


def test_heatmaps_one_hot_and_keypoint_scaling() -> None:
    keypoints = mannequin_keypoints(2.0)
    keypoints[4] = -1
    size = (128, 88)
    assert np.array_equal(prior_numpy.disk_heatmaps(keypoints, size), keypoints_to_heatmaps(keypoints, size).numpy())
    labels = mannequin_layout(mannequin_keypoints(), (64, 44))
    assert np.array_equal(prior_numpy.one_hot(labels, 20), LIP20.one_hot(torch.from_numpy(labels)).numpy())
    moved = prior_numpy.keypoints_to_size(keypoints, (256, 176), (128, 88))
    assert (moved[4] == -1).all() and np.allclose(moved[0], keypoints[0] * (127 / 255, 87 / 175))


def _naive_snap(grid: np.ndarray, source: np.ndarray, target: np.ndarray, reach: float) -> np.ndarray:
    """snap_to_own_parts by brute force: every pixel, every source pixel."""
    limbs = [LIP20.index(name) for name in LIMB_PARTS]
    height, width = source.shape
    out = grid.copy()
    for y in range(target.shape[0]):
        for x in range(target.shape[1]):
            sx = int(np.clip(np.rint((grid[y, x, 0] + 1) * (width - 1) / 2), 0, width - 1))
            sy = int(np.clip(np.rint((grid[y, x, 1] + 1) * (height - 1) / 2), 0, height - 1))
            part = target[y, x]
            if part == 0 or part in limbs or source[sy, sx] not in limbs:
                continue
            own = np.argwhere(source == part)
            if not len(own):
                continue
            distance = np.hypot(own[:, 0] - sy, own[:, 1] - sx)
            if distance.min() <= reach * height:
                ny, nx = own[np.argmin(distance)]
                out[y, x] = (nx * 2 / (width - 1) - 1, ny * 2 / (height - 1) - 1)
    return out


def test_samples_that_land_on_a_limb_that_moved_take_their_own_part() -> None:
    """An arm hung along the trousers; in the target it has gone and the trousers show there: those pixels sample
    the nearest trouser pixel (not the arm) within the reach, as a brute-force search finds it."""
    pants, arm, coat = LIP20.index("pants"), LIP20.index("left_arm"), LIP20.index("coat")
    source = np.zeros((40, 30), np.int64)
    source[5:35, 8:22] = pants
    source[5:35, 8:13] = arm  # an arm along the trousers' edge
    source[2:5, 10:20] = arm  # skin with no part of the target's label nearby
    source[36:39, 8:22], source[39, 8:22] = LIP20.index("face"), LIP20.index("hair")
    target = source.copy()
    target[36:39, 8:22] = LIP20.index("hair")  # a hairline drawn lower than the source's: the face is not a limb
    target[5:35, 8:13] = pants  # the arm moved away: trousers there now
    target[0:5, 10:20] = coat  # a part the source lacks near its sample: kept
    ys, xs = np.mgrid[0:40, 0:30].astype(np.float32)
    grid = np.stack([xs * 2 / 29 - 1, ys * 2 / 39 - 1], axis=-1).astype(np.float32)  # the identity
    snapped = snap_to_own_parts(grid, source, target, "lip20", reach=0.1)
    np.testing.assert_allclose(snapped, _naive_snap(grid, source, target, 0.1), atol=1e-6)
    changed = np.any(snapped != grid, axis=-1)
    assert changed[5:35, 9:13].all() and changed.sum() == 30 * 4  # 4 px reach: not column 8, 5 px away
    moved = np.rint((snapped[5:35, 9:13] + 1) * np.array([29, 39]) / 2)
    assert np.all(moved[..., 0] == 13) and np.array_equal(moved[..., 1], ys[5:35, 9:13])  # the trousers beside
    assert np.array_equal(snap_to_own_parts(grid, source, target, "lip20", reach=0.0), grid)
    near = snap_to_own_parts(grid, source, target, "lip20", reach=0.05)  # 2 px: the arm's last 2 columns only
    assert np.any(near != grid, axis=-1).sum() == 30 * 2


def _naive_hair_over_face(grid: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """hair_over_face by brute force: per pixel, the nearest source hair pixel and its mirror image."""
    hair, faces = LIP20.index("hair"), (LIP20.index("face"), LIP20.index("sunglasses"))
    height, width = source.shape
    own = np.argwhere(source == hair)
    out = grid.copy()
    for y in range(target.shape[0]):
        for x in range(target.shape[1]):
            sx = int(np.clip(np.rint((grid[y, x, 0] + 1) * (width - 1) / 2), 0, width - 1))
            sy = int(np.clip(np.rint((grid[y, x, 1] + 1) * (height - 1) / 2), 0, height - 1))
            if target[y, x] != hair or source[sy, sx] not in faces:
                continue
            distance = np.hypot(own[:, 0] - sy, own[:, 1] - sx)
            candidates = own[distance == distance.min()]
            ny, nx = candidates[0]
            my, mx = 2 * ny - sy, 2 * nx - sx
            if 0 <= my < height and 0 <= mx < width and source[my, mx] == hair:
                ny, nx = my, mx
            out[y, x] = (nx * 2 / (width - 1) - 1, ny * 2 / (height - 1) - 1)
    return out


def test_the_back_of_a_head_samples_the_hair_mirrored_across_its_edge() -> None:
    """A head seen from the front (hair above a face with sunglasses) and a target seen from behind whose head is all
    hair: the face's samples move into the hair, mirrored across the hairline (as a brute-force search finds them);
    a target face pixel, a hairless source and ``back_view=False`` leave the grid alone."""
    from recapture.body.prior_numpy import hair_over_face

    hair, face = LIP20.index("hair"), LIP20.index("face")
    source = np.zeros((40, 30), np.int64)
    source[4:14, 8:22] = hair
    source[14:30, 10:20] = face
    source[18:20, 11:19] = LIP20.index("sunglasses")
    target = source.copy()
    target[14:30, 10:20] = hair  # the back of the head
    target[28:30, 10:20] = face  # a face label the target keeps: not moved
    ys, xs = np.mgrid[0:40, 0:30].astype(np.float32)
    grid = np.stack([xs * 2 / 29 - 1, ys * 2 / 39 - 1], axis=-1).astype(np.float32)
    moved = hair_over_face(grid, source, target, "lip20")
    np.testing.assert_allclose(moved, _naive_hair_over_face(grid, source, target), atol=1e-6)
    changed = np.any(moved != grid, axis=-1)
    assert changed[14:28, 10:20].all() and changed.sum() == 14 * 10
    lands = np.rint((moved[14:28, 10:20] + 1) * np.array([29, 39]) / 2).astype(int)
    assert (source[lands[..., 1], lands[..., 0]] == hair).all()  # every moved sample is hair
    assert lands[0, 5, 1] == 12 and lands[8, 5, 1] == 4  # row 14 -> 12, row 22 -> 4: mirrored about row 13's edge
    assert lands[9, 5, 1] == 13  # row 23's mirror (row 3) is not hair: the nearest hair pixel instead
    snapped = snap_to_own_parts(grid, source, target, "lip20", reach=0.0, back_view=True)
    np.testing.assert_array_equal(snapped, moved)  # the snap applies it on back views (limb reach 0: nothing else)
    assert np.array_equal(snap_to_own_parts(grid, source, target, "lip20", reach=0.04), grid)  # not a back view
    bald = np.where(source == hair, 0, source)
    assert np.array_equal(hair_over_face(grid, bald, target, "lip20"), grid)
