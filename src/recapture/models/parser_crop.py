"""The parser's person crop (torch-free: the ONNX parser uses it too): a photo window mapped onto the
parser's :data:`INPUT_SIZE` input, kept at the photo's aspect (see :mod:`recapture.models.parser`)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from recapture.body.keypoints import missing_mask

INPUT_SIZE: tuple[int, int] = (320, 208)


@dataclass(frozen=True)
class ParserCrop:
    """A crop of a photo onto :data:`INPUT_SIZE`: crop pixel ``(v, u)`` is photo pixel
    ``(top + v * scale, left + u * scale)``; it may reach beyond the photo (padded black)."""

    top: float
    left: float
    scale: float

    def matrix(self) -> np.ndarray:
        """``(2, 3)`` OpenCV affine matrix photo (x, y) -> crop (u, v)."""
        return np.array([[1 / self.scale, 0, -self.left / self.scale], [0, 1 / self.scale, -self.top / self.scale]])

    def keypoints(self, keypoints: np.ndarray) -> np.ndarray:
        """``(18, 2)`` photo y/x keypoints -> crop y/x (missing stay -1)."""
        keypoints = np.asarray(keypoints, dtype=np.float64)
        out = np.full_like(keypoints, -1.0)
        present = ~missing_mask(keypoints)
        out[present, 0] = (keypoints[present, 0] - self.top) / self.scale
        out[present, 1] = (keypoints[present, 1] - self.left) / self.scale
        return out

    def warp(self, array: np.ndarray, nearest: bool = False, size: tuple[int, int] = INPUT_SIZE) -> np.ndarray:
        """A photo-sized ``(H, W[, C])`` array -> its crop of ``size`` (zeros outside the photo)."""
        flag = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        return cv2.warpAffine(array, self.matrix(), (size[1], size[0]), flags=flag, borderMode=cv2.BORDER_CONSTANT)

    def unwarp(self, array: np.ndarray, photo_size: tuple[int, int], nearest: bool = False) -> np.ndarray:
        """A crop ``(h, w[, C])`` array (any C: OpenCV warps every channel alike) -> photo size; zeros outside
        the crop."""
        flag = (cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR) | cv2.WARP_INVERSE_MAP
        return cv2.warpAffine(array, self.matrix(), (photo_size[1], photo_size[0]), flags=flag,
                              borderMode=cv2.BORDER_CONSTANT)


def parser_crop(keypoints: np.ndarray, mask: np.ndarray, margin: float = 0.06, zoom: float = 1.0,
                shift: tuple[float, float] = (0.0, 0.0), size: tuple[int, int] = INPUT_SIZE) -> ParserCrop:
    """The crop around the person mask (> 0.5) and the keypoints, ``margin`` of the box height added on
    every side, widened or heightened to ``size``'s aspect; ``zoom`` > 1 zooms in and ``shift`` moves
    the centre by fractions of the crop (augmentation). Whole photo when there is no person."""
    height, width = mask.shape
    ys, xs = np.nonzero(mask > 0.5)
    present = np.asarray(keypoints, dtype=np.float64)[~missing_mask(keypoints)]
    ys = np.concatenate([ys, present[:, 0]])
    xs = np.concatenate([xs, present[:, 1]])
    if ys.size == 0:
        y0, y1, x0, x1 = 0.0, height - 1.0, 0.0, width - 1.0
    else:
        y0, y1, x0, x1 = float(ys.min()), float(ys.max()), float(xs.min()), float(xs.max())
    box_h = (y1 - y0 + 1) * (1 + 2 * margin)
    box_w = (x1 - x0 + 1) + 2 * margin * (y1 - y0 + 1)
    crop_h = max(box_h, box_w * size[0] / size[1]) / zoom
    centre_y = (y0 + y1) / 2 + shift[0] * crop_h
    centre_x = (x0 + x1) / 2 + shift[1] * crop_h * size[1] / size[0]
    scale = crop_h / size[0]
    return ParserCrop(top=centre_y - crop_h / 2, left=centre_x - scale * size[1] / 2, scale=scale)
