"""A camera that zoomed between the two shots: the source re-framed to the target's scale before the model runs.

DeepFashion's pairs change framing in a third of the cases (a full-body shot and a half-body one: the person 1.5-2x
larger in one image; docs/models.md, "Framed as DeepFashion's pairs"). The model's rules assume a fixed camera
(``background: still``: the background stays in place), and its networks learned pose changes at one scale (the
CCP pairs zoom by at most 12%). When the torso's length - neck to the middle of the hips, the one body measure that
both framings show - grows by more than the factor ``zoom`` from the source to the target keypoints, and the
other bones both poses show agree (their median length ratio), the camera is taken to have zoomed: the source
image, its layout and its keypoints are resampled with the similarity (scale, then shift) that lays the source
torso on the target's - the source as that camera would have shot it - and the pair is then a fixed-camera pair
at one scale. Only zooms in are re-framed (the target the closer shot): a wider target would need what the source
never framed, and repeating its border there cost on plain walls (docs/models.md). Pixels outside the source's
frame (a shift) repeat its border, image and layout alike; keypoints that leave the frame become missing (-1).

Parameter-free; off (``zoom`` 0) unless the model's config sets ``reframe_zoom``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from recapture.body.keypoint_warp import keypoint_array
from recapture.body.keypoints import drop_outside, scale_keypoints
from recapture.body.retarget import HIPS, NECK, SHOULDERS, bone_lengths
from recapture.models.prior_grid import affine_grid

#: The torso's joints: the shift lays their mean in the source on that in the target.
TORSO_JOINTS = (NECK, *SHOULDERS, *HIPS)
#: The torso's ratio is trusted only within this factor of the median ratio of the bones both poses show.
AGREEMENT = 1.25


def neck_to_hips(keypoints: np.ndarray) -> float | None:
    """Neck to the middle of the hips it shows (one hip on a side view); None without the neck or a hip. Unlike
    ``retarget.torso_length`` there is no shoulder-span fallback: a turned body's shoulders are no torso length."""
    hips = [keypoints[h] for h in HIPS if (keypoints[h] >= 0).all()]
    if (keypoints[NECK] < 0).any() or not hips:
        return None
    return float(np.linalg.norm(np.mean(hips, axis=0) - keypoints[NECK]))


def zoom_between(source_keypoints: np.ndarray, target_keypoints: np.ndarray) -> tuple[float, np.ndarray] | None:
    """``(scale, shift)`` of the similarity ``target = scale * source + shift`` (y/x pixels): the ratio of the
    torso lengths (:func:`neck_to_hips`), then the shift that lays the mean of the torso joints both poses show on
    each other. None when a torso or a shared torso joint is missing, or when the median length ratio of the bones
    both poses show (``retarget.bone_lengths``) disagrees with the torso's by more than :data:`AGREEMENT` (a torso
    bent towards the camera, a view turned: the body did not zoom as a whole)."""
    source, target = np.asarray(source_keypoints, np.float64), np.asarray(target_keypoints, np.float64)
    lengths = neck_to_hips(source), neck_to_hips(target)
    shared = [j for j in TORSO_JOINTS if (source[j] >= 0).all() and (target[j] >= 0).all()]
    if lengths[0] is None or lengths[1] is None or lengths[0] < 1e-6 or not shared:
        return None
    scale = lengths[1] / lengths[0]
    with np.errstate(divide="ignore", invalid="ignore"):  # a bone of length 0 (joints on one pixel): left out
        bones = bone_lengths(target) / bone_lengths(source)
    bones = bones[np.isfinite(bones) & (bones > 0)]
    if not bones.size or abs(np.log(scale / float(np.median(bones)))) > np.log(AGREEMENT):
        return None
    return scale, target[shared].mean(axis=0) - scale * source[shared].mean(axis=0)


def zoom_in(source_keypoints: np.ndarray, target_keypoints: np.ndarray, zoom: float
            ) -> tuple[float, np.ndarray] | None:
    """:func:`zoom_between`'s similarity when the target is closer by more than ``zoom`` (> 1), else None: the
    pairs the rule re-frames."""
    if zoom <= 1.0:
        raise ValueError(f"reframe zoom must be > 1, got {zoom}")
    similarity = zoom_between(source_keypoints, target_keypoints)
    return similarity if similarity is not None and similarity[0] > zoom else None


@dataclass(frozen=True)
class Reframed:
    """A batch with its zoomed pairs' sources re-framed (others unchanged; nothing copied when none is)."""

    source_image: Tensor  # (B, 3, H, W)
    source_layout: Tensor  # (B, N, H, W) one-hot or soft, channel 0 the background
    source_keypoints: np.ndarray  # (B, 18, 2) y/x, -1 missing
    zoomed: Tensor  # (B,) bool: the pairs re-framed


def reframe_source(source_image: Tensor, source_layout: Tensor, source_keypoints: Tensor | np.ndarray,
                   target_keypoints: Tensor | np.ndarray, zoom: float) -> Reframed:
    """Re-frame the source of every pair whose target is closer by more than ``zoom`` (> 1; :func:`zoom_in`,
    module doc).

    ``source_image`` ``(B, 3, H, W)``, ``source_layout`` ``(B, N, h, w)`` (any size: resampled in its own frame),
    keypoints ``(B, 18, 2)`` y/x in the image's pixel frame."""
    batch, size = source_image.shape[0], tuple(source_image.shape[-2:])
    source = keypoint_array("source_keypoints", source_keypoints, batch)
    target = keypoint_array("target_keypoints", target_keypoints, batch)
    found = {index: similarity for index in range(batch)
             if (similarity := zoom_in(source[index], target[index], zoom)) is not None}
    zoomed = torch.tensor([index in found for index in range(batch)], dtype=torch.bool)
    if not found:
        return Reframed(source_image=source_image, source_layout=source_layout, source_keypoints=source,
                        zoomed=zoomed)
    image, layout, source = source_image.clone(), source_layout.clone(), source.copy()
    for index, (scale, shift) in found.items():
        to_source = torch.tensor([[1.0 / scale, 0.0, -shift[0] / scale], [0.0, 1.0 / scale, -shift[1] / scale]],
                                 device=source_image.device)
        grid = affine_grid(to_source[None], size)
        image[index] = F.grid_sample(source_image[index:index + 1], grid, mode="bilinear", padding_mode="border",
                                     align_corners=True)[0]
        layout[index] = _resample_layout(source_layout[index:index + 1], grid, size)[0]
        source[index] = drop_outside(scale_keypoints(source[index], scale, scale, *shift), size)
    return Reframed(source_image=image, source_layout=layout, source_keypoints=source, zoomed=zoomed)


def _resample_layout(layout: Tensor, grid: Tensor, size: tuple[int, int]) -> Tensor:
    """``(1, N, h, w)`` layout re-framed by the image-frame ``grid`` (nearest; the border repeated outside)."""
    small = tuple(layout.shape[-2:])
    if small != size:
        grid = F.interpolate(grid.permute(0, 3, 1, 2), size=small, mode="bilinear", align_corners=True)
        grid = grid.permute(0, 2, 3, 1)
    return F.grid_sample(layout, grid, mode="nearest", padding_mode="border", align_corners=True)
