"""PairDataset on a tiny on-disk dataset: shapes, flips, sampler indexing, validation, inspect."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler
from typer.testing import CliRunner

from conftest import TINY_JOINTS, TINY_SIZE, build_tiny_dataset, symmetric_label
from recapture.body.keypoints import KEYPOINT_INDEX, flip_keypoints, keypoints_to_heatmaps, pose_mask
from recapture.body.parts import LIP20
from recapture.cli import app
from recapture.data.dataset import (
    PairBatch, PairDataset, PairSample, collate_pairs, flip_decision, flip_pair_sample,
)
from recapture.data.formats import FormatError, layout_name, write_layout

PALETTE = torch.tensor(LIP20.palette, dtype=torch.float32) / 127.5 - 1.0


def _labels(layout: torch.Tensor) -> torch.Tensor:
    return layout.argmax(dim=0)


def _assert_consistent(sample: PairSample) -> None:
    """Part pixels show their part's colour (left = right); each placed joint sits on its own part."""
    for side in ("source", "target"):
        image, layout = getattr(sample, f"{side}_image"), getattr(sample, f"{side}_layout")
        labels = _labels(layout)
        part = labels > 0
        assert torch.allclose(image.permute(1, 2, 0)[part], PALETTE[symmetric_label(labels[part].numpy())], atol=1e-6)
        keypoints = getattr(sample, f"{side}_keypoints")
        for joint, (_, _, part_name) in TINY_JOINTS.items():
            y, x = keypoints[KEYPOINT_INDEX[joint]].long().tolist()
            assert labels[y, x] == LIP20.index(part_name), (side, joint)


def test_shapes_ranges_and_one_hot(tiny_manifest: Path) -> None:
    dataset = PairDataset(tiny_manifest)
    assert len(dataset) == 4 and dataset.label_set is LIP20 and dataset.pairs[0] == ("person_000.png", "person_001.png")
    height, width = TINY_SIZE
    sample = dataset[1]
    assert (sample.source_name, sample.target_name) == dataset.pairs[1]
    for side in ("source", "target"):
        image = getattr(sample, f"{side}_image")
        layout = getattr(sample, f"{side}_layout")
        pose = getattr(sample, f"{side}_pose")
        keypoints = getattr(sample, f"{side}_keypoints")
        mask = getattr(sample, f"{side}_mask")
        assert image.shape == (3, height, width) and image.dtype == torch.float32
        assert image.min() >= -1 and image.max() <= 1 and image.min() < -0.5 and image.max() > 0.5
        assert layout.shape == (20, height, width) and torch.equal(layout.sum(0), torch.ones(height, width))
        assert pose.shape == (18, height, width) and set(pose.unique().tolist()) <= {0.0, 1.0}
        assert keypoints.shape == (18, 2) and keypoints.dtype == torch.float32
        missing = (keypoints == -1).all(dim=1)
        assert missing.sum() == 18 - len(TINY_JOINTS)
        assert (pose.sum(dim=(1, 2)) == 0).tolist() == missing.tolist()
        assert mask.shape == (height, width) and mask.sum() > 0
    _assert_consistent(sample)


def test_flip_swaps_left_right_consistently(tiny_manifest: Path) -> None:
    dataset = PairDataset(tiny_manifest)
    width = TINY_SIZE[1]
    for index in range(len(dataset)):
        plain, flipped = dataset.sample(index, False), dataset.sample(index, True)
        _assert_consistent(flipped)
        for side in ("source", "target"):
            assert torch.equal(getattr(flipped, f"{side}_image"), getattr(plain, f"{side}_image").flip(-1))
            mirrored = _labels(getattr(plain, f"{side}_layout")).flip(-1)
            assert torch.equal(_labels(getattr(flipped, f"{side}_layout")), LIP20.flip_labels(mirrored))
            keypoints = flip_keypoints(getattr(plain, f"{side}_keypoints").numpy(), width)
            assert np.array_equal(getattr(flipped, f"{side}_keypoints").numpy(), keypoints)
            assert torch.equal(getattr(flipped, f"{side}_pose"), keypoints_to_heatmaps(keypoints, TINY_SIZE))
            assert torch.equal(getattr(flipped, f"{side}_mask"), pose_mask(keypoints, TINY_SIZE))
        left_arm = flipped.source_layout[LIP20.index("left_arm")]
        right_arm_plain = plain.source_layout[LIP20.index("right_arm")]
        assert torch.equal(left_arm, right_arm_plain.flip(-1))


def test_flip_twice_is_identity(tiny_manifest: Path) -> None:
    dataset = PairDataset(tiny_manifest)
    sample = dataset.sample(2, False)
    twice = flip_pair_sample(flip_pair_sample(sample, LIP20), LIP20)
    for name in PairSample.__dataclass_fields__:
        a, b = getattr(sample, name), getattr(twice, name)
        assert torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b
    assert not torch.equal(flip_pair_sample(sample, LIP20).source_image, sample.source_image)


def test_flip_is_a_deterministic_function_of_seed_epoch_index(tiny_manifest: Path) -> None:
    first, second = PairDataset(tiny_manifest, flip=True, seed=3), PairDataset(tiny_manifest, flip=True, seed=3)
    first.set_epoch(5)
    second.set_epoch(5)
    assert [first.is_flipped(i) for i in range(4)] == [second.is_flipped(i) for i in range(4)]
    for index in range(4):
        expected = first.sample(index, first.is_flipped(index))
        assert torch.equal(second[index].source_image, expected.source_image)
    coins = [[flip_decision(3, epoch, i) for i in range(500)] for epoch in range(3)]
    assert coins[0] != coins[1] and 200 < sum(coins[0]) < 300
    assert coins[0] != [flip_decision(4, 0, i) for i in range(500)]
    assert not any(PairDataset(tiny_manifest, flip=False).is_flipped(i) for i in range(4))


def test_distributed_sampler_indexing_and_collate(tiny_manifest: Path) -> None:
    dataset = PairDataset(tiny_manifest, flip=True, seed=1)
    seen: list[str] = []
    for rank in range(2):
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=7)
        sampler.set_epoch(1)
        dataset.set_epoch(1)
        indices = list(sampler)
        loader = DataLoader(dataset, batch_size=2, sampler=sampler, collate_fn=collate_pairs)
        batches = list(loader)
        assert len(batches) == 1 and isinstance(batches[0], PairBatch) and len(batches[0]) == 2
        batch = batches[0].to("cpu")
        assert batch.source_layout.shape == (2, 20, *TINY_SIZE) and batch.target_keypoints.shape == (2, 18, 2)
        for row, index in enumerate(indices):
            assert batch.source_name[row] == dataset.pairs[index][0]
            assert torch.equal(batch.target_image[row], dataset[index].target_image)
        seen += batch.source_name
    assert sorted(seen) == sorted(source for source, _ in dataset.pairs)
    assert len(pickle.loads(pickle.dumps(dataset))) == 4
    with pytest.raises(IndexError):
        dataset[4]
    assert dataset[-1].source_name == dataset.pairs[3][0]


def test_missing_files_fail_at_construction(tiny_manifest: Path) -> None:
    root = tiny_manifest.parent
    (root / "images" / "person_002.png").unlink()
    (root / "layouts" / "person_003.png").unlink()
    with pytest.raises(FormatError, match="2 problems.*person_002.png.*person_003.png"):
        PairDataset(tiny_manifest)
    dataset = PairDataset(tiny_manifest, validate=False)
    with pytest.raises(FormatError, match="person_002.png"):
        dataset[1]
    loader = DataLoader(dataset, batch_size=2, num_workers=1, collate_fn=collate_pairs)
    with pytest.raises(FormatError, match="person_002.png"):
        list(loader)


def test_missing_annotation_row_and_unknown_split(tiny_manifest: Path) -> None:
    csv = tiny_manifest.parent / "annotations.csv"
    csv.write_text("".join(line for line in csv.read_text().splitlines(keepends=True) if "person_001" not in line))
    with pytest.raises(FormatError, match="person_001.png: no row"):
        PairDataset(tiny_manifest)
    with pytest.raises(FormatError, match="no split 'test'"):
        PairDataset(tiny_manifest, split="test", validate=False)


def test_wider_stored_frame_is_center_cropped(tmp_path: Path) -> None:
    plain = PairDataset(build_tiny_dataset(tmp_path / "plain", pad=0, seed=5))
    padded = PairDataset(build_tiny_dataset(tmp_path / "padded", pad=3, seed=5))
    a, b = plain.sample(0, True), padded.sample(0, True)
    assert torch.equal(a.source_layout, b.source_layout) and torch.equal(a.source_keypoints, b.source_keypoints)
    _assert_consistent(b)


def test_wrong_sizes_and_labels_name_the_file(tiny_manifest: Path) -> None:
    root = tiny_manifest.parent
    Image.new("RGB", (24, 30)).save(root / "images" / "person_000.png")
    dataset = PairDataset(tiny_manifest)
    with pytest.raises(FormatError, match="person_000.png.*30x24"):
        dataset[0]
    write_layout(root / "layouts" / layout_name("person_001.png"), np.full(TINY_SIZE, 20, dtype=np.uint8))
    with pytest.raises(FormatError, match="person_001.png.*label 20"):
        dataset[1]


def test_inspect_manifest_json_and_problems(tiny_manifest: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["data", "inspect", str(tiny_manifest), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    split = report["splits"]["train"]
    assert (split["rows"], split["pairs"], split["images_checked"], split["problem_count"]) == (4, 4, 4, 0)
    assert abs(sum(split["part_shares"].values()) - 1) < 1e-9 and split["part_shares"]["left_arm"] > 0
    assert split["annotations"]["missing_per_joint"]["nose"] == 0
    (tiny_manifest.parent / "images" / "person_002.png").write_bytes(b"broken")
    write_layout(tiny_manifest.parent / "layouts" / "person_003.png", np.full(TINY_SIZE, 25, dtype=np.uint8))
    result = runner.invoke(app, ["data", "inspect", str(tiny_manifest)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "person_002.png" in result.output and "person_003.png" in result.output and "2 problems" in result.output
