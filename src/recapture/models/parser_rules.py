"""Torch-free rules applied to the parser's part probabilities after the network (the torch and the ONNX
parser share them): one garment is one part (:func:`vote_parts`); no shoes in a photo that ends above the knees
(:func:`drop_unseen_shoes`). See docs/parser.md for how they were chosen.
"""

from __future__ import annotations

import cv2
import numpy as np

from recapture.body.keypoints import KEYPOINT_INDEX, missing_mask
from recapture.body.parts import LIP20

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
