"""Preparation of CCP for the parser: BlazePose keypoints (committed CSV), person masks, and the cache of
augmented views with their frozen backbone features (training reads only the cache).

``python -m recapture.training.parser_data --ccp ../shared/data/ccp --keypoints src/recapture/assets/ccp-keypoints.csv
--masks runs/parser-ccp/masks`` runs the pose estimator and the selfie segmenter once over the labelled
photos, so that training never runs them again (``--unlabelled --keypoints
src/recapture/assets/ccp-keypoints-unlabelled.csv``: over the image-level-only photos 1005-2098, for the
pseudo-labels of :mod:`recapture.training.parser_pseudo`). Keypoints are rounded to integer pixels of the photo.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from recapture.body.keypoints import KEYPOINT_INDEX, NUM_KEYPOINTS, flip_keypoints
from recapture.body.parts import LIP20
from recapture.data.ccp import UNLABELLED_IDS, CcpDataset
from recapture.data.errors import FormatError
from recapture.data.formats import AnnotationTable, write_annotations
from recapture.models.inception import load_inception
from recapture.models.parser import CACHED_STAGES, INPUT_SIZE, STAGE_CHANNELS, grid_size, image_tensor, parser_crop


def estimate_keypoints_and_masks(dataset: CcpDataset, keypoints_csv: Path, mask_dir: Path) -> None:
    """Run BlazePose and the selfie segmenter over every photo of ``dataset``; write the CSV and mask PNGs."""
    from recapture.pipelines.pose_estimation import PersonSegmenter, PoseEstimator  # mediapipe: this step only

    mask_dir.mkdir(parents=True, exist_ok=True)
    names, rows = [], []
    with PoseEstimator() as estimator, PersonSegmenter() as segmenter:
        for i, photo_id in enumerate(dataset.ids):
            image = dataset.photo(photo_id)
            pose = estimator(image)
            keypoints = np.full((NUM_KEYPOINTS, 2), -1, dtype=np.int64)
            if pose is not None:
                present = (pose.keypoints != -1).all(axis=1)
                keypoints[present] = np.round(pose.keypoints[present]).astype(np.int64)
            names.append(dataset.photo_name(photo_id))
            rows.append(keypoints)
            mask_path = mask_dir / f"{photo_id:04d}.png"
            if not mask_path.is_file():
                mask = np.round(segmenter(image) * 255).astype(np.uint8)
                cv2.imwrite(str(mask_path) + ".tmp.png", mask)
                os.replace(str(mask_path) + ".tmp.png", mask_path)
            if i % 50 == 0:
                print(f"{i}/{len(dataset.ids)} {names[-1]} pose={'yes' if pose is not None else 'no'}", flush=True)
    temporary = keypoints_csv.with_suffix(".tmp")
    write_annotations(temporary, names, np.stack(rows))
    os.replace(temporary, keypoints_csv)


@dataclass(frozen=True)
class Augmentation:
    """One training view of a photo: crop jitter, mirror, colour jitter and background swap."""

    zoom: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    flip: bool = False
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    hue: float = 0.0
    background: int | None = None  # id of the photo whose background replaces this one's
    cut: float | None = None  # close-up: the photo ends this far from the hips (0) towards the ankles (1)
    garment_seed: int | None = None  # garments recoloured each on its own (:func:`recolour_garments`) from this seed


def random_augmentation(rng: np.random.Generator, background_ids: tuple[int, ...],
                        cut_share: float = 0.0) -> Augmentation:
    """A random :class:`Augmentation`: zoom 0.8-1.25, shift up to 8%, mirror half of the time, colour
    jitter, half of the time another photo's background, and a ``cut_share`` of the time a close-up (the photo
    cut between a little above the hips and a little above the ankles, :data:`CUT_RANGE`)."""
    cut = float(rng.uniform(*CUT_RANGE)) if cut_share > 0 and rng.random() < cut_share else None
    return Augmentation(cut=cut,
        zoom=float(np.exp(rng.uniform(np.log(0.8), np.log(1.25)))),
        shift=(float(rng.uniform(-0.08, 0.08)), float(rng.uniform(-0.08, 0.08))), flip=bool(rng.random() < 0.5),
        brightness=float(rng.uniform(0.7, 1.3)), contrast=float(rng.uniform(0.7, 1.3)),
        saturation=float(rng.uniform(0.6, 1.4)), hue=float(rng.uniform(-10, 10)),
        background=int(rng.choice(background_ids)) if rng.random() < 0.5 else None)


#: Where close-up views end, from the hips (0) to the ankles (1): -0.3 is about the waist, 0.25 mid-thigh
#: (most DeepFashion photos end there), 0.9 just above the ankles.
CUT_RANGE: tuple[float, float] = (-0.3, 0.9)


def cut_photo(keypoints: np.ndarray, cut: float | None, height: int) -> int:
    """The number of photo rows a close-up at ``cut`` keeps (``height`` without a cut, or without both a hip
    and an ankle to measure from)."""
    hips, ankles = (keypoints[[KEYPOINT_INDEX[f"left_{joint}"], KEYPOINT_INDEX[f"right_{joint}"]], 0]
                    for joint in ("hip", "ankle"))
    if cut is None or not (hips >= 0).any() or not (ankles >= 0).any():
        return height
    hip, ankle = hips[hips >= 0].mean(), ankles[ankles >= 0].mean()
    return int(np.clip(round(hip + cut * (ankle - hip)), 1, height))


#: The LIP-20 garments a garment-colour view recolours, each with its own random transform (one dress keeps one
#: colour from neckline to hem; a top and a skirt get two).
GARMENTS: tuple[str, ...] = ("hat", "upper_clothes", "dress", "coat", "socks", "pants", "jumpsuits", "scarf", "skirt")
#: Per garment: hue shift (degrees), saturation and value factors, and the chance that it is recoloured at all.
GARMENT_HUE, GARMENT_SATURATION, GARMENT_VALUE, GARMENT_CHANCE = 120.0, (0.5, 1.5), (0.6, 1.4), 0.8


def recolour_garments(image: np.ndarray, labels: np.ndarray, seed: int) -> np.ndarray:
    """The ``(H, W, 3)`` uint8 RGB crop with each garment of its ``(H, W)`` LIP-20 ``labels`` recoloured on its
    own: a hue shift within +-:data:`GARMENT_HUE` degrees, saturation and value scaled, blended in over the
    garment's mask softened by a 5x5 Gaussian. The transforms are drawn from ``seed`` in :data:`GARMENTS` order,
    present or not, so a seed fixes the view. Teaches the head garments by shape and by where colour changes,
    not by the colours of the 804 training photos' skirts and dresses."""
    rng = np.random.default_rng(seed)
    draws = [(rng.random() < GARMENT_CHANCE, rng.uniform(-GARMENT_HUE, GARMENT_HUE), rng.uniform(*GARMENT_SATURATION),
              rng.uniform(*GARMENT_VALUE)) for _ in GARMENTS]
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32)
    result = image.astype(np.float32)
    for name, (chosen, hue, saturation, value) in zip(GARMENTS, draws):
        inside = labels == LIP20.index(name)
        if not chosen or not inside.any():
            continue
        shifted = np.stack([(hsv[..., 0] + hue / 2) % 180, np.clip(hsv[..., 1] * saturation, 0, 255),
                            np.clip(hsv[..., 2] * value, 0, 255)], axis=-1)
        painted = cv2.cvtColor(np.round(shifted).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
        alpha = cv2.GaussianBlur(inside.astype(np.float32), (5, 5), 0)[..., None]
        result = alpha * painted + (1 - alpha) * result
    return np.clip(np.round(result), 0, 255).astype(np.uint8)


def _flip_lut() -> np.ndarray:
    lut = np.arange(256, dtype=np.uint8)
    lut[:LIP20.num_parts] = LIP20.flip_permutation
    return lut


def _jitter(image: np.ndarray, aug: Augmentation) -> np.ndarray:
    """Brightness, contrast, saturation and hue jitter of a uint8 RGB image."""
    x = image.astype(np.float32) * aug.brightness
    x = (x - x.mean()) * aug.contrast + x.mean()
    grey = x.mean(axis=2, keepdims=True)
    x = np.clip((x - grey) * aug.saturation + grey, 0, 255).astype(np.uint8)
    if aug.hue:
        hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + int(round(aug.hue / 2))) % 180).astype(np.uint8)
        x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return x


@dataclass(frozen=True)
class TrainingView:
    """One cached view: crop ``(320, 208, 3)`` uint8, LIP-20 labels (255 ignore), mask uint8, keypoints (18, 2)."""

    image: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    keypoints: np.ndarray


class ViewMaker:
    """Builds :class:`TrainingView` s of CCP photos from the cached keypoints and person masks."""

    def __init__(self, dataset: CcpDataset, keypoints: AnnotationTable, mask_dir: Path) -> None:
        self.dataset, self.table, self.mask_dir = dataset, keypoints, mask_dir
        self._flip = _flip_lut()

    def keypoints(self, photo_id: int) -> np.ndarray:
        return self.table.get(self.dataset.photo_name(photo_id)).astype(np.float64)

    def mask(self, photo_id: int) -> np.ndarray:
        path = self.mask_dir / f"{photo_id:04d}.png"
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise FileNotFoundError(f"{path}: person mask missing; run python -m recapture.training.parser_data")
        return mask

    def labels(self, photo_id: int, keypoints: np.ndarray) -> np.ndarray:
        """``(H, W)`` uint8 LIP-20 labels of the photo (255 ignore)."""
        return self.dataset.lip20_labels(photo_id, keypoints)

    def person(self, photo_id: int) -> np.ndarray:
        """``(H, W)`` bool: the labelled person (the alpha of a background swap)."""
        return self.dataset.ccp_labels(photo_id) > 0

    def view(self, photo_id: int, aug: Augmentation = Augmentation()) -> TrainingView:
        """The parser's crop of the photo as :class:`Augmentation` ``aug`` changes it. A close-up (``aug.cut``)
        is the photo with its rows below the cut removed before anything else, as the parser would see such a
        photo: the joints below the cut missing, the crop made around what is left."""
        keypoints, mask = self.keypoints(photo_id), self.mask(photo_id)
        labels, photo = self.labels(photo_id, keypoints), self.dataset.photo(photo_id)
        rows = cut_photo(keypoints, aug.cut, photo.shape[0])
        if rows < photo.shape[0]:
            photo, mask, labels = photo[:rows], mask[:rows], labels[:rows]
            keypoints = np.where(keypoints[:, :1] >= rows, -1.0, keypoints)
        crop = parser_crop(keypoints, mask.astype(np.float32) / 255.0, zoom=aug.zoom, shift=aug.shift)
        image = crop.warp(photo)
        labels = crop.warp(labels, nearest=True)
        if aug.garment_seed is not None:
            image = recolour_garments(image, labels, aug.garment_seed)
        crop_mask = crop.warp(mask)
        crop_keypoints = crop.keypoints(keypoints)
        if aug.background is not None:
            other = self.view(aug.background)
            person = self.person(photo_id)[:rows].astype(np.uint8)
            person = crop.warp(person, nearest=True).astype(np.float32)
            alpha = cv2.GaussianBlur(cv2.dilate(person, np.ones((3, 3), np.uint8)), (5, 5), 0)[..., None]
            image = (alpha * image + (1 - alpha) * other.image).astype(np.uint8)
        if aug.flip:
            image, crop_mask = image[:, ::-1], crop_mask[:, ::-1]
            labels = self._flip[labels[:, ::-1]]
            crop_keypoints = flip_keypoints(crop_keypoints, INPUT_SIZE[1])
        image = _jitter(np.ascontiguousarray(image), aug)
        return TrainingView(image, np.ascontiguousarray(labels), np.ascontiguousarray(crop_mask),
                            crop_keypoints.astype(np.float32))


class FeatureCache:
    """Backbone stages, labels, masks and keypoints of many views in ``.npy`` memory maps under ``folder``
    (float16 stages); ``done.npy`` records finished rows so that filling resumes after a stop. With ``plan`` (a
    digest of the views' augmentations, :func:`plan_digest`) the cache remembers which views it holds
    (``plan.txt``) and refuses to be reopened for other views: same row count, another seed or share of close-ups
    or garment colours would otherwise be reused silently."""

    def __init__(self, folder: Path, count: int | None = None, plan: str | None = None) -> None:
        self.folder = folder
        shapes = {name: (STAGE_CHANNELS[name], *grid_size(name)) for name in CACHED_STAGES}
        shapes.update(labels=INPUT_SIZE, masks=INPUT_SIZE, keypoints=(NUM_KEYPOINTS, 2), photo_ids=(), done=())
        types = {"labels": np.uint8, "masks": np.uint8, "keypoints": np.float32, "photo_ids": np.int32, "done": bool}
        if count is not None and not (folder / "done.npy").is_file():
            folder.mkdir(parents=True, exist_ok=True)
            if plan is not None:
                (folder / "plan.txt").write_text(plan + "\n")
            for name, shape in shapes.items():
                np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=types.get(name, np.float16),
                                          shape=(count, *shape)).flush()
        if plan is not None and _read_plan(folder) != plan:
            raise FormatError(folder, "a cache of other views (another seed, number of views, share of close-ups "
                                      "or garment colours): delete the folder to rebuild it")
        self.arrays = {name: _open_array(folder, name, shape, count) for name, shape in shapes.items()}
        if len({len(array) for array in self.arrays.values()}) > 1:
            raise FormatError(folder, "its arrays have different row counts: delete the folder to rebuild it")

    def __len__(self) -> int:
        return len(self.arrays["done"])

    def fill(self, row: int, photo_id: int, view: TrainingView, stages: dict[str, torch.Tensor]) -> None:
        for name in CACHED_STAGES:
            self.arrays[name][row] = stages[name][0].numpy().astype(np.float16)
        self.arrays["labels"][row] = view.labels
        self.arrays["masks"][row] = view.mask
        self.arrays["keypoints"][row] = view.keypoints
        self.arrays["photo_ids"][row] = photo_id
        self.arrays["done"][row] = True

    def flush(self) -> None:
        for array in self.arrays.values():
            array.flush()


def _read_plan(folder: Path) -> str | None:
    path = folder / "plan.txt"
    return path.read_text().strip() if path.is_file() else None


def plan_digest(plans: list[tuple[int, Augmentation]]) -> str:
    """sha256 of the cache rows' ``(photo id, augmentation)`` (their reprs: every field, floats exactly)."""
    return hashlib.sha256(repr(plans).encode()).hexdigest()


def _open_array(folder: Path, name: str, shape: tuple[int, ...], count: int | None) -> np.ndarray:
    """The memory map ``folder/name.npy`` checked against the cache's layout (rows of ``shape``, ``count`` rows
    when given); a cache of another version or plan is a :class:`FormatError` naming the folder, never reused."""
    path = folder / f"{name}.npy"
    if not path.is_file():
        raise FormatError(folder, f"not a feature cache of this version (no {name}.npy): delete the folder to "
                                  "rebuild it")
    array = np.load(path, mmap_mode="r+")
    if array.shape[1:] != tuple(shape) or (count is not None and len(array) != count):
        expected = f"({'N' if count is None else count}, {', '.join(map(str, shape))})".replace(", )", ")")
        raise FormatError(path, f"shape {array.shape}, expected {expected} (another version or plan of the cache): "
                                "delete the folder to rebuild it")
    return array


def cache_plans(ids: tuple[int, ...], random_views: int, seed: int, mirrored: bool = False, cut_share: float = 0.0,
                validation_cut: float | None = None, garment_share: float = 0.0) -> list[tuple[int, Augmentation]]:
    """The ``(photo id, augmentation)`` of each cache row: for each photo of ``ids`` the plain view, then its
    mirror, then ``random_views`` random views, a ``cut_share`` of them close-ups and a ``garment_share`` of them
    with their garments recoloured (drawn from a stream of their own: the views are otherwise those of
    ``garment_share`` 0) (``random_views < 0``: the plain view only, or with ``mirrored`` its mirror only, for
    validation; then with ``validation_cut`` also each photo's close-up at that cut, after them)."""
    plans = [(i, Augmentation(flip=mirrored)) for i in ids]
    if random_views < 0 and validation_cut is not None:
        plans += [(i, Augmentation(flip=mirrored, cut=validation_cut)) for i in ids]
    if random_views >= 0:
        rng = np.random.default_rng(seed)
        plans += [(i, Augmentation(flip=True)) for i in ids]
        views = [(i, random_augmentation(rng, ids, cut_share)) for _ in range(random_views) for i in ids]
        paint = np.random.default_rng([seed, 1])
        plans += [(i, replace(aug, garment_seed=int(paint.integers(2 ** 31))) if paint.random() < garment_share
                   else aug) for i, aug in views]
    return plans


def build_cache(maker: ViewMaker, folder: Path, ids: tuple[int, ...], random_views: int, seed: int,
                mirrored: bool = False, cut_share: float = 0.0, validation_cut: float | None = None,
                garment_share: float = 0.0) -> FeatureCache:
    """Cache the views of :func:`cache_plans` with their backbone stages; resumes a partly filled cache."""
    plans = cache_plans(ids, random_views, seed, mirrored, cut_share, validation_cut, garment_share)
    cache = FeatureCache(folder, len(plans), plan_digest(plans))
    backbone = load_inception()
    started = time.time()
    for row, (photo_id, aug) in enumerate(plans):
        if cache.arrays["done"][row]:
            continue
        view = maker.view(photo_id, aug)
        with torch.no_grad():
            stages = backbone.stages(image_tensor(view.image), CACHED_STAGES)
        cache.fill(row, photo_id, view, stages)
        if row % 100 == 0:
            cache.flush()
            print(f"cache {folder.name}: {row}/{len(plans)} ({time.time() - started:.0f} s)", flush=True)
    cache.flush()
    return cache


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ccp", type=Path, required=True, help="CCP folder (photos/, annotations/)")
    parser.add_argument("--keypoints", type=Path, required=True, help="output annotation CSV")
    parser.add_argument("--masks", type=Path, required=True, help="output folder of person-mask PNGs")
    parser.add_argument("--unlabelled", action="store_true",
                        help="the image-level-only photos 1005-2098 (pseudo-labels) instead of the labelled ones")
    args = parser.parse_args(argv)
    dataset = (CcpDataset(args.ccp, tuple(UNLABELLED_IDS), pixel_labels=False) if args.unlabelled
               else CcpDataset(args.ccp))
    estimate_keypoints_and_masks(dataset, args.keypoints, args.masks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
