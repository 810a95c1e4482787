"""Torch-free rules applied to the parser's part probabilities after the network (the torch and the ONNX
parser share them): one garment is one part (:func:`vote_parts`). See docs/parser.md for how they were chosen.
"""

from __future__ import annotations

import cv2
import numpy as np

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
