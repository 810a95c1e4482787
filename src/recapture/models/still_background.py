"""The correspondence model's background rule for a fixed camera (``background: still``, docs/correspondence.md).

The camera does not move between the two poses on the real uses (a person re-posed in their own photo,
DeepFashion's studio pairs, the pose2sim clips), so away from the people the output is the source pixel in place.
Two weights at the internal size ``(h, w)`` say where the network's output is kept and where the background is
rebuilt (:func:`people_weights`):

- ``network`` ``(B, 1, h, w)``: 1 within ``still_margin`` internal pixels of the target person (and, with
  ``vacated: network``, of the source person too), ramping to 0 over ``still_feather`` pixels;
- ``filled`` ``(B, 1, h, w)``: with ``vacated: fill``, ``(1 - network) * vacated`` where ``vacated`` is the source
  person, 1 internal pixel wider where ``still_margin - still_feather`` allows (so that where the two people
  coincide the network weight is 1 on all of it and ``filled`` is 0: a photo re-posed into its own pose stays the
  network's output): the background the source person hid and the target person no longer covers. It is filled
  from the source's own background around it (:func:`push_pull_fill`, parameter-free) instead of the network's
  painting.

:func:`still_composite` blends at the output size (the weights upsampled bilinearly, so they still sum to 1)::

    image = network * image + (1 - network - filled) * source in place + filled * fill
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from recapture.models.sat import identity_grid

VACATED_RULES = ("fill", "network")


def _grow(mask: Tensor, margin: int, feather: int) -> Tensor:
    if margin:
        mask = F.max_pool2d(mask, 2 * margin + 1, stride=1, padding=margin)
    if feather:
        mask = F.avg_pool2d(mask, 2 * feather + 1, stride=1, padding=feather, count_include_pad=False)
    return mask


def people_weights(source_layout: Tensor, target_layout: Tensor, margin: int, feather: int, vacated: str
                   ) -> Tensor:
    """``(B, 3, h, w)``: the ``network`` and ``filled`` weights and the ``vacated`` mask (module doc) of soft one-hot
    layouts ``(B, N, h, w)`` whose channel 0 is the background."""
    if vacated not in VACATED_RULES:
        raise ValueError(f"vacated must be one of {VACATED_RULES}, got {vacated!r}")
    source = (1.0 - source_layout[:, :1]).detach().clamp(0.0, 1.0)
    target = (1.0 - target_layout[:, :1]).detach().clamp(0.0, 1.0)
    if vacated == "network":
        nothing = torch.zeros_like(source)
        return torch.cat([_grow(torch.maximum(source, target), margin, feather), nothing, nothing], dim=1)
    network = _grow(target, margin, feather)
    left = _grow(source, max(0, min(1, margin - feather)), 0)  # the vacated mask
    return torch.cat([network, (1.0 - network) * left, left], dim=1)


def push_pull_fill(image: Tensor, known: Tensor, levels: int = 8) -> Tensor:
    """``image`` ``(B, C, h, w)`` with the pixels where ``known`` ``(B, 1, h, w)`` (in [0, 1]) is low replaced by
    a smooth fill from the known pixels around them: known-weighted means over 2x2, 4x4, ... blocks, each level
    filling the holes of the finer one (bilinear). A hole as wide as the image takes the known pixels' mean."""
    if levels == 0 or min(image.shape[-2:]) < 2:
        total = known.sum(dim=(2, 3), keepdim=True)
        mean = (image * known).sum(dim=(2, 3), keepdim=True) / total.clamp_min(1e-6)
        return known * image + (1.0 - known) * mean.expand_as(image)
    weight = F.avg_pool2d(known, 2, ceil_mode=True)
    coarse = F.avg_pool2d(image * known, 2, ceil_mode=True) / weight.clamp_min(1e-6)
    filled = push_pull_fill(coarse, (weight > 0).to(image.dtype), levels - 1)
    up = F.interpolate(filled, size=tuple(image.shape[-2:]), mode="bilinear", align_corners=False)
    return known * image + (1.0 - known) * up


def still_composite(image: Tensor, flow: Tensor, visibility: Tensor, source_image: Tensor, small_source: Tensor,
                    weights: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(image, flow, visibility)`` at the output size under the rule: ``image`` ``(B, 3, H, W)``, ``flow``
    ``(B, H, W, 2)``, ``visibility`` ``(B, 1, H, W)`` of the network; ``source_image`` at the output size,
    ``small_source`` at the internal size, ``weights`` from :func:`people_weights`. Where the network's weight
    is 0 the image is the source in place (flow the identity, visible) or the fill (invented)."""
    size = tuple(image.shape[-2:])
    up = F.interpolate(weights[:, :2], size=size, mode="bilinear", align_corners=True)
    network, filled = up[:, :1], up[:, 1:]
    in_place = F.interpolate(source_image, size=size, mode="bilinear", align_corners=True)
    fill = push_pull_fill(small_source, 1.0 - weights[:, 2:])
    fill = F.interpolate(fill, size=size, mode="bilinear", align_corners=True)
    kept = 1.0 - network - filled
    identity = identity_grid(weights.shape[0], tuple(weights.shape[-2:]), weights.device).to(weights.dtype)
    identity = F.interpolate(identity, size=size, mode="bilinear", align_corners=True).permute(0, 2, 3, 1)
    keep = network.permute(0, 2, 3, 1)
    return (network * image + kept * in_place + filled * fill, keep * flow + (1.0 - keep) * identity,
            network * visibility + kept)
