"""Torch-free rules applied to the parser's part probabilities after the network (the torch and the ONNX
parser share them): probabilities pooled over colour superpixels of the crop (:func:`superpixel_pooled`); one
garment is one part (:func:`vote_parts`); no shoes in a photo that ends above the knees (:func:`drop_unseen_shoes`).
See docs/parser.md for how they were chosen.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from recapture.body.keypoints import KEYPOINT_INDEX, missing_mask
from recapture.body.parts import LIP20
from recapture.config import ConfigError


@dataclass(frozen=True)
class SuperpixelPooling:
    """Probabilities pooled over SLIC superpixels of the crop (a parser file's ``superpixels`` metadata).

    segments: SLIC's approximate number of superpixels per scale (one segmentation per entry);
    compactness / iterations / connected: SLIC's (colour in Lab against distance; k-means passes; whether
    superpixels are made connected - off keeps the k-means clusters as they fall);
    weight: share of the pooled probabilities in the output (0 = off: the network's probabilities unchanged).
    """

    segments: tuple[int, ...] = (500, 1000, 2000)
    compactness: float = 15.0
    iterations: int = 4
    connected: bool = True
    weight: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise ConfigError(f"superpixels.weight must lie in [0, 1], got {self.weight}")
        if not self.segments or min(self.segments) < 1:
            raise ConfigError(f"superpixels.segments must be >= 1 each (and at least one), got {list(self.segments)}")
        if self.compactness <= 0 or self.iterations < 1:
            raise ConfigError(f"superpixels.compactness must be > 0 and iterations >= 1, got "
                              f"{self.compactness} and {self.iterations}")


def superpixel_regions(crop_rgb: np.ndarray, pooling: SuperpixelPooling) -> list[np.ndarray]:
    """One SLIC segmentation of ``crop_rgb`` ``(h, w, 3)`` uint8 per entry of ``pooling.segments`` (about that many
    superpixels): each ``(h * w,)`` int, the superpixel index of every pixel.

    The same segmentations as ``slic(crop_rgb, ...)`` with its own colour conversion, made with one Lab conversion
    for all scales: SLIC stretches an RGB image to [0, 1], converts it to Lab and divides it by the compactness;
    given Lab, it stretches the Lab values to [0, 1] instead, so the compactness is divided by their span (distances
    are unchanged; saves ~15 ms of the ~70 ms of three scales at 320x208)."""
    from skimage.color import rgb2lab
    from skimage.segmentation import slic

    rgb = np.asarray(crop_rgb, dtype=np.float64) / 255.0
    rgb -= rgb.min()
    if rgb.max() > 0:
        rgb /= rgb.max()
    lab = rgb2lab(rgb)
    span = float(lab.max() - lab.min())
    compactness = pooling.compactness / span if span > 0 else pooling.compactness
    return [slic(lab, n_segments=segments, compactness=compactness, max_num_iter=pooling.iterations,
                 enforce_connectivity=pooling.connected, convert2lab=False, channel_axis=-1, start_label=0).ravel()
            for segments in pooling.segments]


def pooled_with(probabilities: np.ndarray, regions: list[np.ndarray], weight: float) -> np.ndarray:
    """``(1 - weight) * probabilities + weight * mean over the segmentations ``regions`` (each ``(h * w,)``) of
    each superpixel's mean probabilities``: ``(h, w, P)`` -> ``(h, w, P)`` float32 (rows still sum to 1)."""
    from scipy.sparse import csr_matrix

    height, width, parts = probabilities.shape
    flat = np.ascontiguousarray(probabilities, dtype=np.float32).reshape(-1, parts)
    pooled = np.zeros_like(flat)
    pixels = np.arange(flat.shape[0])
    for region in regions:
        count = int(region.max()) + 1
        member = csr_matrix((np.ones(flat.shape[0], np.float32), (region, pixels)), shape=(count, flat.shape[0]))
        sizes = np.maximum(np.bincount(region, minlength=count), 1).astype(np.float32)
        pooled += (np.asarray(member @ flat) / sizes[:, None])[region]
    return ((1.0 - weight) * flat + (weight / len(regions)) * pooled).reshape(height, width, parts)


def superpixel_pooled(probabilities: np.ndarray, crop_rgb: np.ndarray, pooling: SuperpixelPooling) -> np.ndarray:
    """The crop's ``(h, w, 20)`` probabilities pooled over the superpixels of ``crop_rgb`` ``(h, w, 3)`` uint8 at
    every scale of ``pooling`` (:func:`superpixel_regions`, :func:`pooled_with`). The part edges move onto the
    photo's colour edges, which is where CCP's superpixel-made labels put them. Weight 0 returns
    ``probabilities`` itself."""
    if pooling.weight == 0.0:
        return probabilities
    return pooled_with(probabilities, superpixel_regions(crop_rgb, pooling), pooling.weight)


def ruled_labels(probabilities: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """The parser's labels from its ``(20, H, W)`` photo-frame probabilities: the most probable part per pixel, then
    :func:`vote_parts` and :func:`drop_unseen_shoes` (``(18, 2)`` keypoints of the photo) -> ``(H, W)`` uint8."""
    labels = vote_parts(probabilities, probabilities.argmax(axis=0).astype(np.uint8))
    return drop_unseen_shoes(probabilities, labels, keypoints)


#: Parts decided together per connected region by :func:`vote_parts` (one garment is a dress or a skirt).
VOTED_PARTS: tuple[str, ...] = ("dress", "skirt")


def vote_parts(probabilities: np.ndarray, labels: np.ndarray, parts: tuple[str, ...] = VOTED_PARTS) -> np.ndarray:
    """One garment, one part: each 8-connected region of ``labels`` pixels given one of ``parts`` is
    relabelled, as a whole, with the part of the largest probability summed over the region.

    ``probabilities`` ``(20, H, W)`` (softmax), ``labels`` ``(H, W)`` uint8 argmax -> a relabelled copy.
    Chosen on the validation split (docs/parser.md): it turns a skirt predicted half dress, half skirt
    into one of the two instead of a patchwork of both.
    """
    indices = [LIP20.index(name) for name in parts]
    labels = np.array(labels, dtype=np.uint8, copy=True)
    count, regions = cv2.connectedComponents(np.isin(labels, indices).astype(np.uint8), connectivity=8)
    if count <= 1:
        return labels
    flat = regions.ravel()
    sums = np.stack([np.bincount(flat, weights=np.asarray(probabilities[i], np.float64).ravel(), minlength=count)
                     for i in indices], axis=1)  # (count, parts): summed probability of each part per region
    winner = np.asarray(indices, dtype=np.uint8)[sums.argmax(axis=1)]
    inside = flat > 0
    out = labels.ravel()
    out[inside] = winner[flat[inside]]
    return out.reshape(labels.shape)


#: Joints of which at least one must be in the photo for it to show a shoe (a knee or an ankle).
LOWER_LEG_JOINTS: tuple[str, ...] = ("left_knee", "right_knee", "left_ankle", "right_ankle")
SHOES: tuple[str, ...] = ("left_shoe", "right_shoe")


def drop_unseen_shoes(probabilities: np.ndarray, labels: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """No shoe in a photo that ends above the knees: when the pose has none of :data:`LOWER_LEG_JOINTS` (``(18, 2)``
    y/x keypoints, -1 missing; BlazePose leaves out joints outside the frame), pixels labelled a shoe take their most
    probable other part. ``probabilities`` ``(20, H, W)``, ``labels`` ``(H, W)`` uint8 -> a relabelled copy (the
    same array when nothing changes). A photo cut below the knee keeps its shoes (boots reach above the ankle)."""
    joints = np.asarray(keypoints)[[KEYPOINT_INDEX[name] for name in LOWER_LEG_JOINTS]]
    if not missing_mask(joints).all():  # the common case, decided before any pixel is read
        return labels
    shoes = np.isin(labels, [LIP20.index(name) for name in SHOES])
    if not shoes.any():
        return labels
    others = np.asarray(probabilities, dtype=np.float32)[:, shoes]  # (20, P): only the shoe pixels are copied
    others[[LIP20.index(name) for name in SHOES]] = -1.0
    out = np.array(labels, dtype=np.uint8, copy=True)
    out[shoes] = others.argmax(axis=0).astype(np.uint8)
    return out
