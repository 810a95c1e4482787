"""The keypoint prior as a sampling grid, and the parameter-free full-resolution sampling step.

Grids are ``grid_sample`` x/y in [-1, 1] with ``align_corners=True`` (an identity grid upsampled bilinearly is the
identity at any output size). The prior is the keypoint part-affine backward warp (body/keypoint_warp.py), the
torso's map where no body segment covers a pixel; :func:`sample_source` upsamples a coarse grid (as a residual over
the prior's full-size grid when given) and samples the full-resolution source with it (docs/correspondence.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from recapture.body.keypoint_warp import part_warp
from recapture.body.keypoints import NUM_KEYPOINTS
from recapture.body.part_maps import TORSO, segment_maps


@dataclass(frozen=True)
class PriorGrid:
    """The keypoint part-affine warp as a sampling grid at the internal size."""

    grid: Tensor  # (B, h, w, 2) x/y in [-1, 1] (align_corners=True); the torso's map where no part covers
    covered: Tensor  # (B, 1, h, w) float: 1 where a body segment supplies the pixel
    labels: Tensor  # (B, h, w) long: the warped source layout (the prior's target layout)
    full: Tensor | None = None  # (B, H, W, 2) the same warp's grid at the output size, when computed
    turned: Tensor | None = None  # (B,) float: 1 where the pair turns the person's back (part_maps.turns_back)


def pixel_to_grid(coords: Tensor, size: tuple[int, int]) -> Tensor:
    """``(..., 2)`` pixel y/x in a ``size`` frame -> ``(..., 2)`` grid x/y in [-1, 1] (align_corners=True)."""
    height, width = size
    x = coords[..., 1] * (2.0 / max(width - 1, 1)) - 1.0
    y = coords[..., 0] * (2.0 / max(height - 1, 1)) - 1.0
    return torch.stack([x, y], dim=-1)


def grid_to_pixel(grid: Tensor, size: tuple[int, int]) -> Tensor:
    """Inverse of :func:`pixel_to_grid`: ``(..., 2)`` x/y grid -> ``(..., 2)`` pixel y/x."""
    height, width = size
    return torch.stack([(grid[..., 1] + 1.0) * (max(height - 1, 1) / 2.0),
                        (grid[..., 0] + 1.0) * (max(width - 1, 1) / 2.0)], dim=-1)


def torso_grid(source_keypoints: Tensor | np.ndarray, target_keypoints: Tensor | np.ndarray,
               size: tuple[int, int], device: torch.device | None = None) -> Tensor:
    """``(B, h, w, 2)`` grid of the torso's map (keypoint_warp's) applied to every pixel: where the background
    comes from when the framing follows the body (the identity when the torso does not move or is missing)."""
    source = np.asarray(source_keypoints.detach().cpu() if isinstance(source_keypoints, Tensor) else source_keypoints,
                        dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 2)
    target = np.asarray(target_keypoints.detach().cpu() if isinstance(target_keypoints, Tensor) else target_keypoints,
                        dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 2)
    maps = torch.as_tensor(np.stack([segment_maps(s, t, size[0]).maps[TORSO] for s, t in zip(source, target)]),
                           dtype=torch.float32, device=device)
    return affine_grid(maps, size)


def affine_grid(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """``(B, h, w, 2)`` sampling grid of ``(B, 2, 3)`` affine maps taking each output pixel's y/x (and 1) to the
    source pixel y/x it comes from."""
    ys = torch.arange(size[0], dtype=torch.float32, device=maps.device).view(-1, 1).expand(size)
    xs = torch.arange(size[1], dtype=torch.float32, device=maps.device).view(1, -1).expand(size)
    points = torch.stack([ys, xs, torch.ones_like(ys)], dim=-1)
    return pixel_to_grid(torch.einsum("bij,hwj->bhwi", maps.to(points.dtype), points), size)


def prior_grid(source_labels: Tensor, source_keypoints: Tensor | np.ndarray, target_keypoints: Tensor | np.ndarray,
               label_set: str = "lip20", twins: bool = False) -> PriorGrid:
    """The part-affine warp's sampling grid for ``(B, h, w)`` source labels and ``(B, 18, 2)`` y/x keypoints
    in the labels' pixel frame (-1 missing); pixels no body segment covers follow the torso's map (``twins``:
    :func:`recapture.body.keypoint_warp.part_warp`)."""
    size = (source_labels.shape[-2], source_labels.shape[-1])
    warp = part_warp(source_labels, source_keypoints, target_keypoints, label_set, twins)
    covered = warp.segment >= 0
    background = torso_grid(source_keypoints, target_keypoints, size, source_labels.device)
    grid = torch.where(covered[..., None], pixel_to_grid(warp.source_coords, size), background)
    return PriorGrid(grid=grid.float(), covered=covered[:, None].float(), labels=warp.labels)


def with_full_prior(prior: PriorGrid, full: PriorGrid) -> PriorGrid:
    """``prior`` (internal size) carrying ``full``'s grid (the same keypoints' warp at the output size)."""
    return PriorGrid(grid=prior.grid, covered=prior.covered, labels=prior.labels, full=full.grid)


def sample_source(source_image: Tensor, coarse_flow: Tensor, output_size: tuple[int, int],
                  prior: PriorGrid | None = None) -> tuple[Tensor, Tensor]:
    """Upsample a ``(B, h, w, 2)`` grid to ``output_size`` (as a residual over ``prior.full`` when given) and
    sample the ``(B, C, H', W')`` source (any size) with it: ``(flow (B, H, W, 2), copied (B, C, H, W))``.
    Parameter-free."""
    full = prior.full if prior is not None and prior.full is not None else None
    if full is not None and tuple(full.shape[1:3]) != tuple(output_size):
        raise ValueError(f"prior grid at the output size is {tuple(full.shape[1:3])}, output size {output_size}")
    residual = coarse_flow - prior.grid if full is not None else coarse_flow
    flow = F.interpolate(residual.permute(0, 3, 1, 2), size=output_size, mode="bilinear",
                         align_corners=True).permute(0, 2, 3, 1)
    if full is not None:
        flow = flow + full
    copied = F.grid_sample(source_image, flow, mode="bilinear", padding_mode="border", align_corners=True)
    return flow, copied
