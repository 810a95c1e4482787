"""The paired dataset: ``(source, target)`` images of one person with layouts, poses and masks.

Item ``i`` is always pair ``i`` of the split's pairs file, so any sampler (``DistributedSampler``
included) works. With ``flip=True`` whether pair ``i`` is mirrored is a deterministic function of
``(seed, epoch, i)``: a resumed run sees exactly the same flips. A mirror flips both images and both
layouts, swaps left/right part labels and left/right joints, consistently for the whole pair.

``set_epoch`` changes the flips of this object; a ``DataLoader`` copies the dataset into its workers
when an epoch's iterator starts, so call it before iterating (and do not use ``persistent_workers``
with ``flip=True``).
"""

from __future__ import annotations

import operator
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from recapture.body.keypoints import FLIP_PERMUTATION, flip_keypoints, keypoints_to_heatmaps, pose_mask
from recapture.body.parts import LabelSet, get_label_set
from recapture.data.formats import (
    FormatError, layout_name, read_annotations, read_image, read_layout, read_pairs,
)
from recapture.data.manifest import Manifest, read_manifest

__all__ = ["PairSample", "PairBatch", "collate_pairs", "flip_pair_sample", "fit_width", "PairDataset"]

_MAX_LISTED_PROBLEMS = 5


@dataclass(frozen=True)
class PairSample:
    """One pair. Images in [-1, 1]; layouts one-hot over the label set; poses are binary disk heatmaps.

    Shapes: images ``(3, H, W)``, layouts ``(N, H, W)``, poses ``(18, H, W)``, keypoints ``(18, 2)``
    float y/x (-1 missing), masks ``(H, W)`` (PG2 pose mask from the keypoints).
    """

    source_image: Tensor
    target_image: Tensor
    source_layout: Tensor
    target_layout: Tensor
    source_pose: Tensor
    target_pose: Tensor
    source_keypoints: Tensor
    target_keypoints: Tensor
    source_mask: Tensor
    target_mask: Tensor
    source_name: str
    target_name: str


_TENSOR_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(PairSample) if not f.name.endswith("_name"))


@dataclass(frozen=True)
class PairBatch:
    """A batch of pairs: the :class:`PairSample` fields with a leading batch dimension ``B``."""

    source_image: Tensor
    target_image: Tensor
    source_layout: Tensor
    target_layout: Tensor
    source_pose: Tensor
    target_pose: Tensor
    source_keypoints: Tensor
    target_keypoints: Tensor
    source_mask: Tensor
    target_mask: Tensor
    source_name: tuple[str, ...]
    target_name: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.source_name)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> PairBatch:
        """The batch with every tensor moved to ``device``."""
        return replace(self, **{k: getattr(self, k).to(device, non_blocking=non_blocking) for k in _TENSOR_FIELDS})

    def pin_memory(self) -> PairBatch:
        """Page-locked copy (called by ``DataLoader(pin_memory=True)``)."""
        return replace(self, **{k: getattr(self, k).pin_memory() for k in _TENSOR_FIELDS})


def collate_pairs(samples: Sequence[PairSample]) -> PairBatch:
    """Stack samples into a :class:`PairBatch` (use as ``DataLoader(collate_fn=collate_pairs)``)."""
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    tensors = {k: torch.stack([getattr(s, k) for s in samples]) for k in _TENSOR_FIELDS}
    return PairBatch(**tensors, source_name=tuple(s.source_name for s in samples),
                     target_name=tuple(s.target_name for s in samples))


def flip_pair_sample(sample: PairSample, label_set: LabelSet) -> PairSample:
    """Mirror a whole pair horizontally, swapping left/right parts and joints (an involution)."""
    part_perm = list(label_set.flip_permutation)
    joint_perm = list(FLIP_PERMUTATION)
    width = sample.source_image.shape[-1]

    def keypoints(kp: Tensor) -> Tensor:
        return torch.from_numpy(flip_keypoints(kp.numpy(), width)).to(kp.dtype)

    return replace(
        sample,
        source_image=sample.source_image.flip(-1), target_image=sample.target_image.flip(-1),
        source_layout=sample.source_layout.flip(-1)[part_perm], target_layout=sample.target_layout.flip(-1)[part_perm],
        source_pose=sample.source_pose.flip(-1)[joint_perm], target_pose=sample.target_pose.flip(-1)[joint_perm],
        source_keypoints=keypoints(sample.source_keypoints), target_keypoints=keypoints(sample.target_keypoints),
        source_mask=sample.source_mask.flip(-1), target_mask=sample.target_mask.flip(-1),
    )


def fit_width(array: np.ndarray, size: tuple[int, int], path: Path) -> np.ndarray:
    """Check an ``(H, W, ...)`` array against ``size``; center-crop a wider stored frame of the same height.

    DeepFashion images are often stored in a 256x256 frame around the 256x176 crop. Any other size
    mismatch raises FormatError naming ``path``.
    """
    height, width = size
    stored_h, stored_w = array.shape[:2]
    if (stored_h, stored_w) == (height, width):
        return array
    if stored_h == height and stored_w > width:
        left = (stored_w - width) // 2
        return array[:, left:left + width]
    raise FormatError(path, f"size {stored_h}x{stored_w} does not match the manifest's image_size "
                            f"{height}x{width} (only a wider frame of the same height is center-cropped)")


def _mix64(value: int) -> int:
    """splitmix64 finaliser: a fixed, platform-independent 64-bit hash."""
    value = (value + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return value ^ (value >> 31)


def flip_decision(seed: int, epoch: int, index: int) -> bool:
    """Whether pair ``index`` is mirrored in ``epoch`` (a fair coin fixed by the three integers)."""
    return bool(_mix64(_mix64(_mix64(seed) ^ epoch) ^ index) >> 63)


class PairDataset(torch.utils.data.Dataset):
    """Pairs of one manifest split as :class:`PairSample` items (index ``i`` = row ``i`` of the pairs file)."""

    def __init__(self, manifest: Manifest | str | Path, split: str = "train", flip: bool = False,
                 seed: int = 0, validate: bool = True) -> None:
        self.manifest = manifest if isinstance(manifest, Manifest) else read_manifest(manifest)
        self.split = split
        self.spec = self.manifest.split(split)
        self.label_set: LabelSet = get_label_set(self.manifest.label_set)
        self.flip = flip
        self.seed = int(seed)
        self.epoch = 0
        self.images_dir = self.manifest.resolve(self.spec.images)
        self.layouts_dir = self.manifest.resolve(self.spec.layouts)
        self.annotations = read_annotations(self.manifest.resolve(self.spec.annotations),
                                            offset=self.manifest.keypoint_offset)
        self.pairs: list[tuple[str, str]] = read_pairs(self.manifest.resolve(self.spec.pairs))
        if not self.pairs:
            raise FormatError(self.manifest.resolve(self.spec.pairs), "no pairs")
        if validate:
            self.validate()

    @property
    def image_size(self) -> tuple[int, int]:
        return self.manifest.image_size

    def __len__(self) -> int:
        return len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        """Select the flips of ``epoch`` (no effect when ``flip=False``)."""
        self.epoch = int(epoch)

    def is_flipped(self, index: int) -> bool:
        """Whether ``self[index]`` is mirrored in the current epoch."""
        return self.flip and flip_decision(self.seed, self.epoch, index)

    def __getitem__(self, index: int) -> PairSample:
        index = operator.index(index)
        if index < 0:
            index += len(self.pairs)
        if not 0 <= index < len(self.pairs):
            raise IndexError(f"pair index {index} out of range for {len(self.pairs)} pairs")
        return self.sample(index, self.is_flipped(index))

    def sample(self, index: int, flip: bool) -> PairSample:
        """Pair ``index``, mirrored when ``flip`` (ignores the epoch's coin)."""
        source_name, target_name = self.pairs[index]
        source, target = self._side(source_name), self._side(target_name)
        sample = PairSample(
            source_image=source[0], target_image=target[0], source_layout=source[1], target_layout=target[1],
            source_pose=source[2], target_pose=target[2], source_keypoints=source[3],
            target_keypoints=target[3], source_mask=source[4], target_mask=target[4],
            source_name=source_name, target_name=target_name,
        )
        return flip_pair_sample(sample, self.label_set) if flip else sample

    def _side(self, name: str) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Image ``(3,H,W)``, one-hot layout, pose heatmaps, keypoints ``(18,2)`` and pose mask of ``name``."""
        size = self.manifest.image_size
        keypoints = self.annotations.get(name).astype(np.float32)
        image_path = self.images_dir / name
        pixels = fit_width(read_image(image_path), size, image_path)
        layout_path = self.layouts_dir / layout_name(name)
        labels = fit_width(read_layout(layout_path, self.label_set.num_parts), size, layout_path)
        image = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).float() / 127.5 - 1.0
        layout = self.label_set.one_hot(torch.from_numpy(np.ascontiguousarray(labels)))
        return (image, layout, keypoints_to_heatmaps(keypoints, size), torch.from_numpy(keypoints),
                pose_mask(keypoints, size))

    def validate(self) -> None:
        """FormatError listing the first problems unless every pair has images, layouts and annotations."""
        names = sorted({name for pair in self.pairs for name in pair})
        image_files = _listing(self.images_dir)
        layout_files = _listing(self.layouts_dir)
        problems: list[str] = []
        for name in names:
            if name not in self.annotations:
                problems.append(f"{name}: no row in {self.annotations.path}")
            if name not in image_files and not (self.images_dir / name).is_file():
                problems.append(f"{name}: missing image {self.images_dir / name}")
            layout = self.layouts_dir / layout_name(name)
            if layout.name not in layout_files and not layout.is_file():
                problems.append(f"{name}: missing layout {layout}")
        if problems:
            listed = "; ".join(problems[:_MAX_LISTED_PROBLEMS])
            more = f" (and {len(problems) - _MAX_LISTED_PROBLEMS} more)" if len(problems) > _MAX_LISTED_PROBLEMS else ""
            raise FormatError(self.manifest.path, f"split {self.split!r}: {len(problems)} problems in "
                                                  f"{len(self.pairs)} pairs: {listed}{more}",
                              field=f"splits.{self.split}")


def _listing(folder: Path) -> frozenset[str]:
    """File names directly inside ``folder`` (empty if it does not exist)."""
    try:
        return frozenset(os.listdir(folder))
    except OSError:
        return frozenset()
