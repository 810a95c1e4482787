"""Semantic-aware Attentive Transfer (SAT), paper §3.3, eqs. (1)-(2).

For every part ``c`` and every target pixel ``j`` with ``Ŝ_B[j] = c``::

    out_j = Σ_{i : S_A[i] = c} W_{j,i} Φ_l^i,     W_{j,i} = softmax_i( g(Φ_{L-l}^j)ᵀ θ(Φ_l^i) )

with ``g``/``θ`` 1x1 convolutions to ``sat_dim`` channels and the *value* the encoder feature ``Φ_l``
itself (no projection, as eq. (1) writes it), so the output has the encoder's channels. The logits
are not scaled (eq. (2) has no ``1/sqrt(d)``). Masks are hard labels. A target pixel whose part is
absent from the source layout receives zeros (there is nothing of that part to transfer).

:func:`part_attention` gathers the tokens of each (image, part) segment by sorting pixels by label and
runs one small matmul per segment, so the cost grows with ``Σ_c |S_A^c| · |Ŝ_B^c|`` rather than
``(HW)²``. Its segment sizes depend on the data, so it cannot be traced into a static graph.

:func:`dense_part_attention` is the same map as one dense masked attention: logits for every
(target, source) pixel pair, ``-inf`` (the dtype's lowest value) where the labels differ, a softmax
over source pixels, zeros where a target pixel's part is absent from the source. It uses only
fixed-shape operations, so it exports to ONNX (:attr:`SemanticAttentiveTransfer.dense`, set by
``recapture export --format onnx``). Its cost is ``2 · (HW)² · (D + C)`` FLOPs per image (query-key
and weights-value products; ``D`` = ``sat_dim``, ``C`` the value channels) and ``(HW)²`` floats of
memory: at the DeepFashion preset's SAT level (64x44, D = 64, C = 256) 5.1 GFLOPs and 30 MiB per matrix.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from recapture.models.blocks import conv2d


def identity_grid(batch: int, size: tuple[int, int], device: torch.device | None = None) -> Tensor:
    """``(B, 2, H, W)`` x/y of every pixel in ``grid_sample``'s [-1, 1] frame (``align_corners=True``)."""
    height, width = size
    ys = torch.linspace(-1.0, 1.0, height, device=device) if height > 1 else torch.zeros(1, device=device)
    xs = torch.linspace(-1.0, 1.0, width, device=device) if width > 1 else torch.zeros(1, device=device)
    grid = torch.stack([xs.view(1, -1).expand(height, width), ys.view(-1, 1).expand(height, width)])
    return grid.unsqueeze(0).expand(batch, -1, -1, -1)


def _tokens(feature: Tensor) -> Tensor:
    """``(B, C, H, W) -> (B * H * W, C)`` channel-last tokens, image-major."""
    return feature.flatten(2).transpose(1, 2).reshape(-1, feature.shape[1])


def _segments(labels: Tensor, num_segments_per_image: int) -> tuple[Tensor, list[int]]:
    """Sort pixel tokens by ``(image, label)``: returns the permutation and the segment sizes."""
    batch = labels.shape[0]
    offsets = torch.arange(batch, device=labels.device)[:, None] * num_segments_per_image
    segment = (labels.flatten(1).long() + offsets).flatten()
    order = torch.argsort(segment, stable=True)
    counts = torch.bincount(segment, minlength=batch * num_segments_per_image)
    return order, counts.tolist()


def _check(query: Tensor, key: Tensor, value: Tensor, source_labels: Tensor, target_labels: Tensor) -> None:
    batch, _, height, width = query.shape
    if key.shape[0] != batch or key.shape[1] != query.shape[1] or key.shape[2:] != query.shape[2:]:
        raise ValueError(f"SAT: key {tuple(key.shape)} does not match query {tuple(query.shape)}")
    if value.shape[0] != batch or value.shape[2:] != query.shape[2:]:
        raise ValueError(f"SAT: value {tuple(value.shape)} does not match query {tuple(query.shape)}")
    for name, labels in (("source_labels", source_labels), ("target_labels", target_labels)):
        if tuple(labels.shape) != (batch, height, width) or labels.dtype.is_floating_point:
            raise ValueError(f"SAT: {name} must be ({batch}, {height}, {width}) integer labels, "
                             f"got {tuple(labels.shape)} {labels.dtype}")


def part_attention(query: Tensor, key: Tensor, value: Tensor, source_labels: Tensor,
                   target_labels: Tensor) -> Tensor:
    """Part-restricted attention, eqs. (1)-(2), computed segment by segment.

    query ``(B, D, H, W)`` (g of the decoder feature), key ``(B, D, H, W)`` (θ of the encoder feature),
    value ``(B, C, H, W)``, source/target labels ``(B, H, W)`` integer. Returns ``(B, C, H, W)``.
    """
    _check(query, key, value, source_labels, target_labels)
    batch, _, height, width = query.shape
    channels = value.shape[1]
    num_labels = int(max(source_labels.max(), target_labels.max())) + 1 if source_labels.numel() else 1
    source_order, source_counts = _segments(source_labels, num_labels)
    target_order, target_counts = _segments(target_labels, num_labels)
    keys = _tokens(key)[source_order].split(source_counts)
    values = _tokens(value)[source_order].split(source_counts)
    queries = _tokens(query)[target_order].split(target_counts)
    pieces = []
    for q, k, v in zip(queries, keys, values):
        if q.shape[0] == 0:
            continue
        if k.shape[0] == 0:
            pieces.append(q.new_zeros(q.shape[0], channels))
            continue
        pieces.append(torch.softmax(q @ k.T, dim=-1) @ v)
    inverse = torch.empty_like(target_order)
    inverse[target_order] = torch.arange(target_order.numel(), device=target_order.device)
    out = torch.cat(pieces)[inverse]
    return out.reshape(batch, height * width, channels).transpose(1, 2).reshape(batch, channels, height, width)


def dense_part_attention(query: Tensor, key: Tensor, value: Tensor, source_labels: Tensor,
                         target_labels: Tensor) -> Tensor:
    """The same result through a dense ``(HW)²`` masked attention matrix (reference, ONNX export)."""
    _check(query, key, value, source_labels, target_labels)
    batch, channels, height, width = value.shape
    q = query.flatten(2).transpose(1, 2)
    k = key.flatten(2)
    v = value.flatten(2).transpose(1, 2)
    same = target_labels.flatten(1)[:, :, None] == source_labels.flatten(1)[:, None, :]
    logits = (q @ k).masked_fill(~same, torch.finfo(q.dtype).min)
    weights = torch.softmax(logits, dim=-1) * same.any(dim=-1, keepdim=True)
    out = weights @ v
    return out.transpose(1, 2).reshape(batch, channels, height, width)


class SemanticAttentiveTransfer(nn.Module):
    """SAT: ``(Φ_{L-l} (B, Cd, H, W), Φ_l (B, Ce, H, W), S_A labels, Ŝ_B labels) -> (B, Ce, H, W)``."""

    #: Use the dense masked form in :meth:`forward` (same result; set for ONNX export).
    dense: bool = False

    def __init__(self, decoder_channels: int, encoder_channels: int, dim: int, sn: bool = True) -> None:
        super().__init__()
        self.query = conv2d(decoder_channels, dim, 1, sn=sn)  # g
        self.key = conv2d(encoder_channels, dim, 1, sn=sn, bias=False)  # θ (a bias would cancel in the softmax)
        self.out_channels = encoder_channels

    def forward(self, decoder_feature: Tensor, encoder_feature: Tensor, source_labels: Tensor,
                target_labels: Tensor, dense: bool = False) -> Tensor:
        """Transferred feature ``Φ̂_{L-l}``; ``dense=True`` (or :attr:`dense`) uses the dense form (same result)."""
        attend = dense_part_attention if dense or self.dense else part_attention
        return attend(self.query(decoder_feature), self.key(encoder_feature), encoder_feature,
                      source_labels, target_labels)

    def transfer_with_coordinates(self, decoder_feature: Tensor, encoder_feature: Tensor, source_labels: Tensor,
                                  target_labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``Φ̂_{L-l}`` and, under the same weights ``W_{j,·}``, the expected source position of every target
        pixel: ``(transferred (B, Ce, H, W), coordinates (B, 2, H, W) x/y in [-1, 1] (align_corners=True),
        present (B, 1, H, W))``; ``present`` is 1 where the pixel's part exists in the source (else the
        coordinates are 0, the centre)."""
        batch, channels, height, width = encoder_feature.shape
        grid = identity_grid(batch, (height, width), encoder_feature.device).to(encoder_feature.dtype)
        ones = encoder_feature.new_ones(batch, 1, height, width)
        value = torch.cat([encoder_feature, grid, ones], dim=1)
        attend = dense_part_attention if self.dense else part_attention
        out = attend(self.query(decoder_feature), self.key(encoder_feature), value, source_labels, target_labels)
        return out[:, :channels], out[:, channels:channels + 2], out[:, channels + 2:]

    def attention_map(self, decoder_feature: Tensor, encoder_feature: Tensor, source_labels: Tensor,
                      target_labels: Tensor, pixel: tuple[int, int]) -> Tensor:
        """Weights ``W_{j,·}`` of target pixel ``j = (y, x)`` over source pixels: ``(B, H, W)``.

        Each map sums to 1 over the source pixels of ``j``'s part and is 0 elsewhere; it is all zeros
        when that part is absent from the source.
        """
        batch, _, height, width = decoder_feature.shape
        y, x = pixel
        if not (0 <= y < height and 0 <= x < width):
            raise ValueError(f"SAT attention pixel {pixel} outside the {height}x{width} feature map")
        query = self.query(decoder_feature)[:, :, y, x]
        key = self.key(encoder_feature).flatten(2)
        logits = torch.einsum("bd,bdp->bp", query, key)
        same = source_labels.flatten(1) == target_labels[:, y, x][:, None]
        logits = logits.masked_fill(~same, torch.finfo(logits.dtype).min)
        weights = torch.softmax(logits, dim=-1) * same.any(dim=-1, keepdim=True)
        return weights.reshape(batch, height, width)
