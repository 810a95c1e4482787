"""Scores of an own-pose round trip of a real photo: the photo re-posed into its own pose, at its size.

PSNR over the person's box (the box of its mask) and the high-frequency ratio: the mean absolute
Laplacian inside the person mask of the output over that of the input (how much fine detail survives).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class RoundTripScores:
    """psnr (dB) over the person's box; detail: output / input high-frequency energy inside the mask."""

    psnr: float
    detail: float


def round_trip_scores(photo: np.ndarray, output: np.ndarray, mask: np.ndarray) -> RoundTripScores:
    """``photo``, ``output``: ``(H, W, 3)`` uint8; ``mask``: ``(H, W)`` bool person mask (not empty)."""
    mask = np.asarray(mask, dtype=bool)
    if photo.shape != output.shape or mask.shape != photo.shape[:2] or not mask.any():
        raise ValueError(f"photo {photo.shape}, output {output.shape} and a non-empty mask {mask.shape} must agree")
    ys, xs = np.nonzero(mask)
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    mse = float(((photo[box].astype(np.float64) - output[box]) ** 2).mean())
    psnr = 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))

    def detail(image: np.ndarray) -> float:
        gray = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
        return float(np.abs(cv2.Laplacian(gray, cv2.CV_64F))[mask].mean())

    return RoundTripScores(psnr=round(psnr, 2), detail=round(detail(output) / max(detail(photo), 1e-9), 3))
