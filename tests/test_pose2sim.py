"""The pose2sim validation set: crop geometry, pair selection, the committed set, a score sanity check."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from recapture.body.parts import LIP20
from recapture.data.formats import read_annotations, read_image, read_layout, read_pairs
from recapture.data.pose2sim import (DEFAULT_MANIFEST, SIZE, STILL_MANIFEST, FrameId, camera_boxes, crop_box,
                                     crop_person, frame_ids, load_split, same_camera_pairs, select_pairs,
                                     torso_saturation, usable_crop)

ROOT = Path(__file__).resolve().parents[1]
SET = DEFAULT_MANIFEST.parent
#: The committed set's documented sizes (docs/correspondence.md).
PAIRS = {"validation": 30, "test": 27}


def _frame_with_square(height: int, width: int, centre: tuple[int, int], side: int) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    image[centre[0] - side // 2:centre[0] + side // 2, centre[1] - side // 2:centre[1] + side // 2] = 255
    return image


@pytest.mark.parametrize("box", [(100, 300, 700, 500), (300, 50, 500, 950), (0, 0, 400, 160)])
def test_crop_keeps_the_aspect_ratio(box: tuple[int, int, int, int]) -> None:
    """A square in the frame stays a square in the crop (one scale for both axes), whatever the person's shape;
    its centre keypoint lands on the square's centre; the crop has the output size and holds the whole box."""
    y0, x0, y1, x1 = box
    centre = ((y0 + y1) // 2, (x0 + x1) // 2)
    image = _frame_with_square(800, 1000, centre, 120)
    labels = (image[..., 0] > 0).astype(np.uint8) * 5
    keypoints = np.full((18, 2), -1.0)
    keypoints[1] = (centre[0] - 0.5, centre[1] - 0.5)
    crop = crop_person(image, labels, keypoints, box, fill=(7, 8, 9))
    assert crop.image.shape == (*SIZE, 3) and crop.labels.shape == SIZE
    rows, cols = np.nonzero(crop.image[..., 0] > 127)
    height, width = rows.max() + 1 - rows.min(), cols.max() + 1 - cols.min()
    assert abs(height - width) <= 1 and abs(height - 120 * crop.scale) <= 1.5
    assert np.allclose(crop.keypoints[1], ((rows.min() + rows.max()) / 2, (cols.min() + cols.max()) / 2), atol=1.0)
    assert (crop.labels[crop.image[..., 0] > 200] == 5).all()
    top, left, window = crop_box(box)
    assert window * SIZE[1] / SIZE[0] >= x1 - x0 and window >= y1 - y0


def test_crop_pads_outside_the_frame_with_the_fill_colour_and_background_labels() -> None:
    image = np.full((400, 300, 3), 200, np.uint8)
    labels = np.full((400, 300), 3, np.uint8)
    crop = crop_person(image, labels, np.full((18, 2), -1.0), (0, 0, 400, 60), fill=(1, 2, 3))
    outside = (crop.image == (1, 2, 3)).all(axis=-1)
    assert outside.any() and (crop.labels[outside] == 0).all() and (crop.labels[~outside] == 3).all()
    assert (crop.keypoints == -1).all()


def test_a_crop_whose_pose_and_layout_disagree_is_refused() -> None:
    labels = np.zeros(SIZE, np.uint8)
    labels[40:220, 50:130] = 4
    keypoints = np.stack([np.linspace(50, 210, 18), np.full(18, 90.0)], axis=1)
    assert usable_crop(labels, keypoints) == ""
    keypoints[:8, 1] = 20.0
    assert "joints on the layout" in usable_crop(labels, keypoints)
    keypoints[:5] = -1
    assert usable_crop(labels, keypoints) == "a shoulder or hip not found"


def test_frame_names_round_trip_and_bad_names_are_refused() -> None:
    frame = FrameId("multi", 3, 56)
    assert FrameId.parse(frame.name) == frame and frame.split == "test"
    assert {f.split for f in frame_ids("single", "validation")} == {"validation"}
    with pytest.raises(ValueError, match="not a pose2sim crop name"):
        FrameId.parse("multi-cam3-56.jpg")


def test_pairs_are_of_one_person_balanced_distinct_and_fixed_by_the_seed() -> None:
    names = [f.name for p in ("single", "multi") for f in frame_ids(p, "validation")][:-3]
    pairs = select_pairs(names, 10, seed=4)
    assert pairs == select_pairs(list(reversed(names)), 10, seed=4) and len(pairs) == 20 == len(set(pairs))
    ids = [(FrameId.parse(a), FrameId.parse(b)) for a, b in pairs]
    assert all(a.person == b.person and a != b for a, b in ids)
    same = [a.camera == b.camera for a, b in ids]
    assert sum(same) == 10
    uses = np.unique([n for pair in pairs for n in pair], return_counts=True)[1]
    assert uses.max() - uses.min() <= 3


def test_one_window_per_camera_person_and_split() -> None:
    boxes = {FrameId("single", 1, 4): (100, 50, 400, 150), FrameId("single", 1, 14): (90, 60, 380, 170),
             FrameId("single", 2, 4): (10, 10, 20, 20), FrameId("single", 1, 56): (0, 0, 5, 5),
             FrameId("multi", 1, 24): (500, 500, 600, 600)}
    union = camera_boxes(boxes)
    assert union[FrameId("single", 1, 4)] == union[FrameId("single", 1, 14)] == (90, 50, 400, 170)
    for alone in (FrameId("single", 2, 4), FrameId("single", 1, 56), FrameId("multi", 1, 24)):
        assert union[alone] == boxes[alone]


def test_still_camera_pairs_are_every_ordered_same_camera_pair() -> None:
    names = ["single-cam1-f004.jpg", "single-cam1-f014.jpg", "single-cam1-f024.jpg", "single-cam2-f004.jpg",
             "multi-cam1-f004.jpg", "multi-cam1-f034.jpg"]
    pairs = same_camera_pairs(list(reversed(names)))
    assert len(pairs) == 3 * 2 + 2 == len(set(pairs))
    both_ways = {("single-cam1-f014.jpg", "single-cam1-f004.jpg"), ("single-cam1-f004.jpg", "single-cam1-f014.jpg")}
    assert both_ways <= set(pairs)
    assert all(FrameId.parse(a).camera == FrameId.parse(b).camera and a != b for a, b in pairs)
    assert not any("cam2" in a for a, _ in pairs)


def test_the_committed_set_loads_with_its_documented_sizes() -> None:
    total = sum(f.stat().st_size for f in SET.rglob("*") if f.is_file())
    assert total < 5_000_000
    assert "BSD 3-Clause" in (SET / "LICENSE").read_text()
    annotations = read_annotations(SET / "annotations.csv")
    for split, count in PAIRS.items():
        pairs = read_pairs(SET / f"pairs-{split}.csv")
        assert len(pairs) == count
        ids = [(FrameId.parse(a), FrameId.parse(b)) for a, b in pairs]
        assert all(a.person == b.person and a.split == b.split == split for a, b in ids)
    dataset = load_split("test")
    sample = dataset[0]
    assert sample.source_image.shape == (3, *SIZE) and sample.source_layout.shape == (LIP20.num_parts, *SIZE)
    for name in {n for pair in dataset.pairs for n in pair}:
        image, layout = read_image(SET / "images" / name), read_layout(SET / "layouts" / name.replace(".jpg", ".png"))
        assert image.shape == (*SIZE, 3) and layout.shape == SIZE and layout.max() < LIP20.num_parts
        assert usable_crop(layout, annotations.get(name)) == ""
    with pytest.raises(ValueError, match="unknown pose2sim split"):
        load_split("train")


def test_the_fixed_camera_set_keeps_the_background_in_place() -> None:
    """``benchmarks/data/pose2sim-still``: every pair is one person seen by one camera at two frames, and away from
    both people (9 px) the two crops agree (the room did not move; the cropped-per-frame set's same-camera pairs
    differ there by ~0.12)."""
    still = STILL_MANIFEST.parent
    assert "BSD 3-Clause" in (still / "LICENSE").read_text()
    differences = []
    for split, count in {"validation": 74, "test": 44}.items():
        pairs = read_pairs(still / f"pairs-{split}.csv")
        assert len(pairs) == count == len(set(pairs))
        for a, b in pairs:
            first, second = FrameId.parse(a), FrameId.parse(b)
            assert (first.person, first.camera, first.split) == (second.person, second.camera, split)
            images = [read_image(still / "images" / n).astype(np.float64) / 255 for n in (a, b)]
            people = [read_layout(still / "layouts" / n.replace(".jpg", ".png")) > 0 for n in (a, b)]
            near = cv2.dilate((people[0] | people[1]).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
            differences.append(float(np.abs(images[0] - images[1])[~near].mean()))
    assert max(differences) < 0.07 and float(np.median(differences)) < 0.03


def test_the_two_people_are_told_apart_by_the_torso() -> None:
    """Every ``multi`` crop (the woman, white top) has a paler torso than every ``single`` crop (the man)."""
    saturation: dict[str, list[float]] = {"single": [], "multi": []}
    for path in sorted((SET / "images").glob("*.jpg")):
        person = (read_layout(SET / "layouts" / f"{path.stem}.png") > 0).astype(np.float32)
        saturation[FrameId.parse(path.name).person].append(torso_saturation(read_image(path), person))
    assert saturation["multi"] and max(saturation["multi"]) < min(saturation["single"])


def _benchmark():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("pose2sim_benchmark", ROOT / "benchmarks" / "pose2sim.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.mark.slow
def test_scores_are_sane_on_committed_pairs() -> None:
    """The target scored against itself is perfect; all-white's L1 is the naive mean; every row is scored on
    every pair; the bundled model and the floors give finite images of the right shape."""
    benchmark = _benchmark()
    from recapture.hub import load_generator
    batch = benchmark.batches("validation", DEFAULT_MANIFEST, size=3)[0]
    one = benchmark.collate_pairs([load_split("validation")[i] for i in range(3)])
    assert one.source_name == batch.source_name
    perfect = benchmark.score(batch.target_image, batch.target_image, batch.target_keypoints.double().numpy())
    assert max(perfect["l1"]) == 0 and min(perfect["psnr"]) >= 99
    assert benchmark.person_l1(batch.target_image, batch.target_image, batch.target_layout) == [0.0] * 3
    torch.set_num_threads(1)
    loaded = load_generator("default")
    table = benchmark.score_split([batch], loaded.generator.eval(), {"net": loaded.generator.appearance})
    rows = benchmark.summary(table)["all"]
    naive = ((1 - (batch.target_image + 1) / 2)).mean().item()
    assert rows["all-white (floor)"]["l1"] == pytest.approx(naive, abs=2e-3)
    assert {r["pairs"] for r in rows.values()} == {3} and len(rows) == 7
    assert all(np.isfinite(r["l1"]) and 0 <= r["l1"] < 1 for r in rows.values())
    verdict = benchmark.verdict(rows, "bundled default (its own Ŝ_B)")
    assert verdict["below_floor"] == pytest.approx(
        1 - rows["bundled default (its own Ŝ_B)"]["l1"] / rows[benchmark.FLOOR]["l1"])


def test_on_white_whitens_exactly_the_parsed_background_of_both_images() -> None:
    benchmark = _benchmark()
    batch = benchmark.batches("validation", DEFAULT_MANIFEST, size=2)[0]
    white = benchmark.on_white(batch)
    for image, whitened, layout in ((batch.source_image, white.source_image, batch.source_layout),
                                    (batch.target_image, white.target_image, batch.target_layout)):
        person = (layout.argmax(dim=1, keepdim=True) > 0).expand_as(image)
        assert 0 < person.float().mean() < 1
        assert torch.equal(whitened[person], image[person]) and bool((whitened[~person] == 1).all())
        assert not bool((image[~person] == 1).all())
    assert white.target_layout is batch.target_layout and white.source_name == batch.source_name
