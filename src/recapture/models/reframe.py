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

from recapture.body.retarget import bone_lengths
from recapture.models.prior_grid import pixel_to_grid

NECK, HIPS = 1, (8, 11)
#: The torso's joints (neck, shoulders, hips): the shift lays their mean in the source on that in the target.
TORSO_JOINTS = (1, 2, 5, 8, 11)
#: The torso's ratio is trusted only within this factor of the median ratio of the bones both poses show.
AGREEMENT = 1.25


def torso_length(keypoints: np.ndarray) -> float | None:
    """Neck to the middle of the hips it shows (one hip on a side view); None without the neck or a hip."""
    hips = [keypoints[h] for h in HIPS if (keypoints[h] >= 0).all()]
    if (keypoints[NECK] < 0).any() or not hips:
        return None
    return float(np.linalg.norm(np.mean(hips, axis=0) - keypoints[NECK]))


def zoom_between(source_keypoints: np.ndarray, target_keypoints: np.ndarray) -> tuple[float, np.ndarray] | None:
    """``(scale, shift)`` of the similarity ``target = scale * source + shift`` (y/x pixels): the ratio of the
    torso lengths, then the shift that lays the mean of the torso joints both poses show on each other. None when
    a torso or a shared torso joint is missing, or when the median length ratio of the bones both poses show
    (``retarget.bone_lengths``) disagrees with the torso's by more than :data:`AGREEMENT` (a torso bent towards the
    camera, a view turned: the body did not zoom as a whole)."""
    source, target = np.asarray(source_keypoints, np.float64), np.asarray(target_keypoints, np.float64)
    lengths = torso_length(source), torso_length(target)
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


@dataclass(frozen=True)
class Reframed:
    """A batch with its zoomed pairs' sources re-framed (others unchanged)."""

    source_image: Tensor  # (B, 3, H, W)
    source_layout: Tensor  # (B, N, H, W) one-hot or soft, channel 0 the background
    source_keypoints: np.ndarray  # (B, 18, 2) y/x, -1 missing
    zoomed: Tensor  # (B,) bool: the pairs re-framed


def reframe_source(source_image: Tensor, source_layout: Tensor, source_keypoints: Tensor | np.ndarray,
                   target_keypoints: Tensor | np.ndarray, zoom: float) -> Reframed:
    """Re-frame the source of every pair whose target is closer by more than ``zoom`` (> 1; module doc).

    ``source_image`` ``(B, 3, H, W)``, ``source_layout`` ``(B, N, h, w)`` (any size: resampled in its own frame),
    keypoints ``(B, 18, 2)`` y/x in the image's pixel frame."""
    if zoom <= 1.0:
        raise ValueError(f"reframe zoom must be > 1, got {zoom}")
    source = np.asarray(source_keypoints.detach().cpu() if isinstance(source_keypoints, Tensor) else source_keypoints,
                        dtype=np.float64).reshape(-1, 18, 2).copy()
    target = np.asarray(target_keypoints.detach().cpu() if isinstance(target_keypoints, Tensor) else target_keypoints,
                        dtype=np.float64).reshape(-1, 18, 2)
    image, layout = source_image.clone(), source_layout.clone()
    zoomed = torch.zeros(source.shape[0], dtype=torch.bool)
    size = tuple(source_image.shape[-2:])
    for index in range(source.shape[0]):
        similarity = zoom_between(source[index], target[index])
        if similarity is None or similarity[0] <= zoom:
            continue
        scale, shift = similarity
        zoomed[index] = True
        grid = _source_grid(scale, shift, size, source_image.device)
        image[index] = F.grid_sample(source_image[index:index + 1], grid, mode="bilinear", padding_mode="border",
                                     align_corners=True)[0]
        layout[index] = _resample_layout(source_layout[index:index + 1], grid, size)[0]
        present = (source[index] >= 0).all(axis=1)
        moved = source[index] * scale + shift
        inside = (moved >= 0).all(axis=1) & (moved[:, 0] <= size[0] - 1) & (moved[:, 1] <= size[1] - 1)
        source[index] = np.where((present & inside)[:, None], moved, -1.0)
    return Reframed(source_image=image, source_layout=layout, source_keypoints=source, zoomed=zoomed)


def _source_grid(scale: float, shift: np.ndarray, size: tuple[int, int], device: torch.device) -> Tensor:
    """``(1, H, W, 2)`` grid: where each re-framed pixel lies in the source (``(p - shift) / scale``)."""
    ys = torch.arange(size[0], dtype=torch.float32, device=device).view(-1, 1).expand(size)
    xs = torch.arange(size[1], dtype=torch.float32, device=device).view(1, -1).expand(size)
    coords = torch.stack([(ys - float(shift[0])) / scale, (xs - float(shift[1])) / scale], dim=-1)
    return pixel_to_grid(coords, size)[None]


def _resample_layout(layout: Tensor, grid: Tensor, size: tuple[int, int]) -> Tensor:
    """``(1, N, h, w)`` layout re-framed by the image-frame ``grid`` (nearest; the border repeated outside)."""
    small = tuple(layout.shape[-2:])
    if small != size:
        grid = F.interpolate(grid.permute(0, 3, 1, 2), size=small, mode="bilinear", align_corners=True)
        grid = grid.permute(0, 2, 3, 1)
    return F.grid_sample(layout, grid, mode="nearest", padding_mode="border", align_corners=True)
