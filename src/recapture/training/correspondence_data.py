"""Training batches of the correspondence appearance model: the pair mix and the collation.

A batch mixes, per pair (:class:`PairMix`):

* CCP self-supervised pairs (:func:`recapture.data.ccp_pairs.make_pair`), forward (deformed photo -> photo)
  or, with probability ``reverse``, reversed (photo -> deformed photo); a share ``unchanged`` keeps the pose;
  a share ``still`` is made with a fixed camera (no global zoom/shift of the whole photo: the background stays
  in place, as in the real uses and under the model's ``background: still`` rule);
  with parsed layouts given, the source layout is the `ccp` parser's layout of the photo carried through the
  deformation (what the network gets at test time) instead of CCP's ground truth;
* with probability ``synthetic``, a SynthHumans pose change (:func:`synthetic_pair`): one procedural person
  rendered in two poses over one background (a cluttered room, or with probability ``plain`` a plain studio
  wall; with probability ``framed`` both shots framed as DeepFashion's pairs are - half body, zoom changes); exact
  truth of the parts the source never shows (visibility), no dense correspondence (no flow loss on these pairs).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
import yaml
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from recapture.body.keypoint_warp import warp_image
from recapture.config import from_dict
from recapture.data.ccp_pairs import CcpPair, CcpPhotos, make_pair
from recapture.data.synthetic.articulation import deepfashion_framing, reframed, sample_articulation
from recapture.data.synthetic.people import Identity, sample_identity
from recapture.data.synthetic.render import render_person, sample_background
from recapture.data.synthetic.truth import invisible_mask
from recapture.models.correspondence import CorrespondenceConfig, prepare_inputs
from recapture.models.layout_ops import majority_layout
from recapture.models.prior_grid import PriorGrid

#: SynthHumans identities of the training mix are drawn with this seed (the bundled data sets use 0-9).
SYNTHETIC_SEED = 7211


@dataclass(frozen=True)
class PairMix:
    """Shares of the pair kinds in a training batch (see the module doc)."""

    unchanged: float = 0.1  # CCP pairs whose pose does not change (own-pose round trip)
    reverse: float = 0.0  # CCP pairs with the photo as source and the deformed photo as target
    synthetic: float = 0.0  # SynthHumans pose changes
    still: float = 0.0  # CCP pairs made with a fixed camera (make_pair(still_camera=True))
    plain: float = 0.0  # SynthHumans pairs on a plain studio wall instead of a cluttered room
    framed: float = 0.0  # SynthHumans pairs shot as DeepFashion's (articulation.deepfashion_framing)

    def __post_init__(self) -> None:
        for name in ("unchanged", "reverse", "synthetic", "still", "plain", "framed"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"pair mix {name} must be in [0, 1], got {getattr(self, name)}")


@dataclass(frozen=True)
class PairSettings:
    """The fields a training preset (YAML keys) on these pairs shares: photos, batches, the pair mix; base of the
    trainers' settings."""

    photos: str = "runs/appearance-real/ccp-256x176.npz"  # the photo cache (recapture.data.ccp_pairs.CcpPhotos)
    batch_size: int = 8
    seed: int = 0
    workers: int = 1  # DataLoader processes making the pairs while the model trains (0: in the training process)
    save_every_s: float = 600.0
    validation_pairs: int = 48
    unchanged_fraction: float = 0.1  # CCP pairs whose pose does not change (own-pose round trip)
    reverse_fraction: float = 0.0  # CCP pairs photo -> deformed photo
    synthetic_fraction: float = 0.0  # SynthHumans pose changes
    still_fraction: float = 0.0  # CCP pairs made with a fixed camera (the background stays in place)
    plain_fraction: float = 0.0  # SynthHumans pairs on a plain studio wall (else a cluttered room)
    framed_fraction: float = 0.0  # SynthHumans pairs framed as DeepFashion's (half body, zoom changes)

    def mix(self) -> PairMix:
        return PairMix(self.unchanged_fraction, self.reverse_fraction, self.synthetic_fraction, self.still_fraction,
                       self.plain_fraction, self.framed_fraction)


Settings = TypeVar("Settings", bound=PairSettings)


def load_preset(kind: type[Settings], path: str = "", **changes: object) -> Settings:
    """``kind`` from a YAML file of its fields (unknown keys raise ConfigError; no file: the defaults), then the
    truthy ``changes`` (command-line overrides)."""
    settings = from_dict(kind, yaml.safe_load(Path(path).read_text()) or {}) if path else kind()
    return dataclasses.replace(settings, **{k: v for k, v in changes.items() if v})


@dataclass(frozen=True)
class Batch:
    """Network inputs (internal size) and truth (output size / internal size) of a batch of pairs."""

    source_image: Tensor  # (B, 3, H, W)
    target_image: Tensor  # (B, 3, H, W)
    source_layout: Tensor  # (B, N, h, w)
    source_pose: Tensor  # (B, 18, h, w)
    target_layout: Tensor  # (B, N, h, w)
    target_pose: Tensor  # (B, 18, h, w)
    prior: PriorGrid
    flow: Tensor  # (B, h, w, 2)
    visible: Tensor  # (B, 1, h, w)
    flow_known: Tensor  # (B,) float: 1 where the pair has a dense correspondence truth
    source_labels: Tensor  # (B, H, W) long, at the output size
    target_labels: Tensor  # (B, H, W) long, at the output size
    source_keypoints: np.ndarray  # (B, 18, 2) at the output size
    target_keypoints: np.ndarray  # (B, 18, 2) at the output size


def collate(pairs: list[CcpPair], config: CorrespondenceConfig, true_layout: list[bool]) -> Batch:
    """Stack pairs into network inputs; ``true_layout[i]`` False gives pair ``i`` the warped source layout."""
    source_labels = torch.stack([p.source_labels for p in pairs])
    target_labels = torch.stack([p.target_labels for p in pairs])
    source_points = np.stack([p.source_keypoints for p in pairs])
    target_points = np.stack([p.target_keypoints for p in pairs])
    inputs = prepare_inputs(config, source_labels, source_points, target_points)
    truth = majority_layout(target_labels, inputs.source_layout.shape[1], config.internal_size)
    choose = torch.tensor(true_layout, dtype=torch.bool).view(-1, 1, 1, 1)
    return Batch(source_image=torch.stack([p.source_image for p in pairs]),
                 target_image=torch.stack([p.target_image for p in pairs]),
                 source_layout=inputs.source_layout, source_pose=inputs.source_pose,
                 target_layout=torch.where(choose, truth, inputs.target_layout), target_pose=inputs.target_pose,
                 prior=inputs.prior, flow=torch.stack([p.flow for p in pairs]),
                 visible=torch.stack([p.visible for p in pairs])[:, None],
                 flow_known=torch.tensor([float(p.flow_known) for p in pairs]), source_labels=source_labels,
                 target_labels=target_labels, source_keypoints=source_points, target_keypoints=target_points)


def synthetic_pair(rng: np.random.Generator, size: tuple[int, int], internal_size: tuple[int, int],
                   identity: Identity | None = None, background: str = "cluttered",
                   views: tuple[str, str] | tuple[None, None] = (None, None), crop_probability: float = 0.25,
                   framings: tuple[str, str] | None = None, camera: bool = False) -> CcpPair:
    """A SynthHumans pose change at ``size``: one identity (drawn with :data:`SYNTHETIC_SEED` unless given) in two
    sampled poses (of the given ``views``; shot with the given ``framings`` of ``articulation.FRAMINGS``, else
    zoomed with ``crop_probability``) over one background of kind ``background`` (``camera``: the background zooms
    with each shot's framing, ``render.camera_background``; else it stays still). ``visible`` is 0 on target
    pixels of parts the source does not show, 1 elsewhere; ``flow`` is unknown."""
    identity = identity or sample_identity(SYNTHETIC_SEED, int(rng.integers(0, 2**31 - 1)))
    scene = sample_background(rng, background)
    poses = [sample_articulation(rng, crop_probability, view) for view in views]
    if framings is not None:
        poses = [reframed(pose, framing, rng) for pose, framing in zip(poses, framings)]
    source, target = (render_person(identity, pose, scene, size, camera=camera) for pose in poses)
    invisible = torch.as_tensor(invisible_mask(source.layout, target.layout)).float()[..., None]
    rows = torch.round(torch.linspace(0, size[0] - 1, internal_size[0])).long()
    cols = torch.round(torch.linspace(0, size[1] - 1, internal_size[1])).long()

    def image(pixels: np.ndarray) -> Tensor:
        return torch.as_tensor(pixels).permute(2, 0, 1).float() / 127.5 - 1.0

    return CcpPair(source_image=image(source.image), target_image=image(target.image),
                   source_labels=torch.as_tensor(source.layout.astype(np.int64)),
                   target_labels=torch.as_tensor(target.layout.astype(np.int64)),
                   source_keypoints=source.keypoints.astype(np.float64),
                   target_keypoints=target.keypoints.astype(np.float64),
                   flow=torch.zeros(*internal_size, 2), visible=1.0 - invisible[rows][:, cols][..., 0],
                   flow_known=False)


def studio_framing(seed: int, index: int) -> tuple[str, str]:
    """The (source, target) framing of studio pair ``index`` of ``seed`` shot as DeepFashion's pairs are
    (``articulation.deepfashion_framing``, drawn with its own generator so the pair's poses do not depend on it)."""
    return deepfashion_framing(np.random.default_rng([seed, index, 1]))


def studio_pair(seed: int, index: int, size: tuple[int, int], internal_size: tuple[int, int],
                views: tuple[str, str] | tuple[None, None] = (None, None), framed: bool = False,
                camera: bool = False) -> CcpPair:
    """A studio pair: SynthHumans identity ``index`` of ``seed`` in two poses (of the given ``views``) over one plain
    wall, full body in both or, when ``framed``, shot as :func:`studio_framing` says (the validation and benchmark
    sets of plain-wall view changes); ``camera``: the wall zooms with the framing (see :func:`synthetic_pair`)."""
    return synthetic_pair(np.random.default_rng([seed, index]), size, internal_size, sample_identity(seed, index),
                          "plain", views, 0.0, studio_framing(seed, index) if framed else None, camera)


def make_batch(photos: CcpPhotos, indices: np.ndarray, rng: np.random.Generator, config: CorrespondenceConfig,
               fraction: float, mix: PairMix = PairMix(unchanged=0.0), parsed: np.ndarray | None = None) -> Batch:
    """Fresh pairs of the photos ``indices`` (rows of ``photos``; ``parsed``: the parser's layouts in the same
    row order, or None for the ground truth) in the proportions of ``mix``; a share ``fraction`` gets the true
    target layout, the rest the part-affine warp of the source layout."""
    size = tuple(photos.labels.shape[1:])
    pairs = []
    for row in indices:
        if rng.random() < mix.synthetic:
            plain = mix.plain > 0.0 and rng.random() < mix.plain
            framings = deepfashion_framing(rng) if mix.framed > 0.0 and rng.random() < mix.framed else None
            pairs.append(synthetic_pair(rng, size, config.internal_size, background="plain" if plain else "cluttered",
                                        framings=framings))
            continue
        strength = 0.0 if rng.random() < mix.unchanged else 1.0
        reverse = bool(rng.random() < mix.reverse)
        still = bool(mix.still > 0.0 and (mix.still >= 1.0 or rng.random() < mix.still))
        pairs.append(make_pair(photos.images[row], photos.labels[row], photos.keypoints[row], rng,
                               config.internal_size, strength, None if parsed is None else parsed[row], reverse,
                               still))
    return collate(pairs, config, [bool(rng.random() < fraction) for _ in indices])


def warp_floor(batch: Batch) -> Tensor:
    """The part-affine warp of the source at the output size (the floor every model must beat)."""
    return warp_image(batch.source_image, batch.source_labels, batch.source_keypoints, batch.target_keypoints,
                      "lip20")


class PairStream(IterableDataset):
    """Endless training batches made in a DataLoader worker (one torch thread) while the model trains:
    batch ``k`` after ``start_step`` comes from ``rng(seed + 7919 * start_step)``, so a resumed run is reproducible."""

    def __init__(self, photos: CcpPhotos, rows: np.ndarray, parsed: np.ndarray | None, config: CorrespondenceConfig,
                 batch_size: int, fraction: float, mix: PairMix, seed: int, start_step: int) -> None:
        self.photos, self.rows, self.parsed, self.config = photos, rows, parsed, config
        self.batch_size, self.fraction, self.mix, self.seed, self.start_step = batch_size, fraction, mix, seed, start_step

    def __iter__(self):  # noqa: ANN204 - an iterator of Batch
        torch.set_num_threads(1)
        rng = np.random.default_rng(self.seed + 7919 * self.start_step)
        while True:
            yield make_batch(self.photos, rng.choice(self.rows, self.batch_size), rng, self.config, self.fraction,
                             self.mix, self.parsed)


def _as_is(batch: Batch) -> Batch:
    return batch


def batch_loader(stream: PairStream, workers: int = 1) -> DataLoader:
    """Batches of ``stream`` from ``workers`` processes (0: in this process), two prefetched per worker."""
    extra = {"prefetch_factor": 2} if workers > 0 else {}
    return DataLoader(stream, batch_size=None, num_workers=workers, collate_fn=_as_is, **extra)
