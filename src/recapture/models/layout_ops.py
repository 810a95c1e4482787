"""Small operations on layouts shared by the networks and losses.

A layout here is a ``(B, N, H, W)`` one-hot (or soft) tensor over a label set's ``N`` parts, or a
``(B, H, W)`` integer label map. Feature maps of the appearance network live at *levels*: level ``k``
has ``(H / 2**k, W / 2**k)`` pixels. Layouts are brought to a level by area pooling (each feature
pixel gets the fraction of each part it covers); hard labels at a level are the argmax of those
fractions (majority vote, ties to the lower label).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def to_one_hot(labels: Tensor, num_parts: int) -> Tensor:
    """``(B, H, W)`` integer labels -> ``(B, N, H, W)`` float one-hot; ValueError when out of range."""
    if labels.dtype.is_floating_point or labels.dim() != 3:
        raise ValueError(f"expected (B, H, W) integer labels, got {tuple(labels.shape)} {labels.dtype}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_parts):
        raise ValueError(f"layout labels must lie in [0, {num_parts}), found "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    return F.one_hot(labels.long(), num_parts).permute(0, 3, 1, 2).float()


def straight_through_one_hot(logits: Tensor) -> Tensor:
    """``(B, N, H, W)`` logits -> one-hot of the argmax whose gradient is the softmax's.

    The value is exactly one-hot (what a user-edited or ground-truth layout looks like), the
    backward pass is that of ``softmax(logits)`` (straight-through estimator).
    """
    probabilities = logits.softmax(dim=1)
    hard = F.one_hot(logits.argmax(dim=1), logits.shape[1]).permute(0, 3, 1, 2).to(probabilities.dtype)
    return hard + (probabilities - probabilities.detach())  # exactly one-hot: x - x == 0


def layout_at(layout: Tensor, size: tuple[int, int]) -> Tensor:
    """``(B, N, H, W)`` layout -> ``(B, N, h, w)`` part fractions per feature pixel (area pooling)."""
    if tuple(layout.shape[-2:]) == tuple(size):
        return layout
    return F.interpolate(layout, size=size, mode="area")


def labels_at(layout: Tensor, size: tuple[int, int]) -> Tensor:
    """``(B, N, H, W)`` layout -> ``(B, h, w)`` long hard labels (majority part per feature pixel)."""
    return layout_at(layout.detach(), size).argmax(dim=1)


def check_shape(name: str, tensor: Tensor, expected: tuple[int, ...], what: str) -> None:
    """Raise ValueError naming ``name`` unless ``tensor`` has shape ``expected``."""
    if tuple(tensor.shape) != expected:
        raise ValueError(f"{name}: expected {what} of shape {expected}, got {tuple(tensor.shape)}")




def blob_labels(batch: int, num_parts: int, size: tuple[int, int], generator: torch.Generator | None = None,
                blobs_per_part: int = 1) -> Tensor:
    """Random blob-like ``(B, H, W)`` label maps (Voronoi cells of random seeds, ``blobs_per_part``
    cells per part) for tests and benchmarks."""
    height, width = size
    seeds = torch.rand(batch, num_parts * blobs_per_part, 2, generator=generator)
    ys = (torch.arange(height) + 0.5) / height
    xs = (torch.arange(width) + 0.5) / width
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(1, -1, 2)
    nearest = torch.cdist(grid.expand(batch, -1, -1), seeds).argmin(dim=-1)
    return (nearest % num_parts).reshape(batch, height, width)


def majority_layout(labels: Tensor, num_parts: int, size: tuple[int, int]) -> Tensor:
    """``(B, H, W)`` labels -> ``(B, N, h, w)`` one-hot of the majority part of each internal pixel (the argmax
    of ``area`` pooling of the one-hot, ties to the lower part). When ``(H, W)`` is a whole multiple of ``size``
    (the photo path's pixel-aligned windows) the parts are counted per cell instead of pooling a full-size
    one-hot (about 20x less work at 1024x704)."""
    (batch, height, width), (h, w) = labels.shape, size
    if height % h or width % w:
        return to_one_hot(F.interpolate(to_one_hot(labels, num_parts), size=size, mode="area").argmax(dim=1),
                          num_parts)
    cells = torch.arange(batch * h * w, device=labels.device).view(batch, h, 1, w, 1)
    index = (cells * num_parts + labels.view(batch, h, height // h, w, width // w)).flatten()
    counts = torch.bincount(index, minlength=batch * h * w * num_parts).view(batch, h, w, num_parts)
    return to_one_hot(counts.argmax(dim=-1), num_parts)
