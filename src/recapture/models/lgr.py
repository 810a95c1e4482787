"""Layout Graph Reasoning (LGR), paper §3.4, eqs. (3)-(7).

Input: a decoder feature ``Φ (B, C, H, W)`` and the target layout ``Ŝ_B`` at the same resolution as
part fractions ``(B, N, H, W)`` (area-pooled one-hot). Output ``Φ̃ (B, out_dim, H, W)``, concatenated
to ``Φ`` by the caller. With ``f = φ(Φ)`` a 1x1 projection to ``D`` channels:

1. gather (coordinate -> graph space):
   ``Q_p = softmax_pixels(a(Φ)) fᵀ`` — ``a`` is a 1x1 conv to ``N`` channels read as one learned
   soft assignment of pixels per node (eq. 3); ``Q_s`` = masked average of ``f`` over each part of
   ``Ŝ_B`` (eq. 5; an empty part gives a zero node, never NaN);
   ``Q = σ(Conv1d([Q_p, Q_s]))``, ``N x 2D -> N x D`` (eq. 6; kernel 1, shared over nodes).
2. propagate ``n`` times: ``Q ← σ(E Q W_e)`` (eq. 7), one ``W_e`` per step, ``E`` the label set's
   normalised skeleton adjacency ``D^-1/2 (A + I) D^-1/2`` (a buffer).
3. distribute (graph -> coordinate space): ``Q ← W' Q`` with a learned ``W' ∈ R^{N x N}``, then each
   pixel takes the mean of its part's node (from ``Ŝ_B``) and its softmax-over-nodes assignment
   ``softmax_nodes(a(Φ))``, followed by a 1x1 conv ``D -> out_dim``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from recapture.body.parts import get_label_set
from recapture.models.blocks import activation, conv1d, conv2d, linear


def masked_average(features: Tensor, masks: Tensor) -> Tensor:
    """Eq. (5): ``features (B, D, P)``, part masks/fractions ``masks (B, N, P)`` -> ``(B, N, D)`` per-part
    weighted means; a part with no pixels gives a zero row (never NaN)."""
    area = masks.sum(dim=-1, keepdim=True)
    return (masks @ features.transpose(1, 2)) / area.clamp_min(1e-6)


class LayoutGraphReasoning(nn.Module):
    """LGR over the part graph of ``label_set``: ``(Φ (B, C, H, W), Ŝ_B (B, N, H, W)) -> (B, out, H, W)``."""

    adjacency: Tensor

    def __init__(self, label_set: str, in_channels: int, dim: int, steps: int, out_channels: int,
                 sn: bool = True) -> None:
        super().__init__()
        labels = get_label_set(label_set)
        self.num_parts = labels.num_parts
        self.register_buffer("adjacency", labels.normalized_adjacency(), persistent=False)
        self.project = conv2d(in_channels, dim, 1, sn=sn)  # φ: features to node width D
        self.assign = conv2d(in_channels, self.num_parts, 1, sn=sn)  # P's learned pixel-node assignment
        self.fuse = conv1d(2 * dim, dim, sn=sn)  # eq. (6)
        self.propagate = nn.ModuleList(linear(dim, dim, sn=sn, bias=False) for _ in range(steps))  # W_e
        self.node_mix = linear(self.num_parts, self.num_parts, sn=sn, bias=False)  # W'
        self.distribute = conv2d(dim, out_channels, 1, sn=sn)
        self.act = activation()

    def gather(self, feature: Tensor, layout: Tensor) -> tuple[Tensor, Tensor]:
        """Step 1: node features ``Q (B, N, D)`` and the assignment logits ``(B, N, H*W)``."""
        projected = self.project(feature).flatten(2)  # (B, D, P)
        logits = self.assign(feature).flatten(2)  # (B, N, P)
        q_projected = logits.softmax(dim=-1) @ projected.transpose(1, 2)  # (B, N, D)
        q_sampled = masked_average(projected, layout.flatten(2))
        nodes = self.fuse(torch.cat([q_projected, q_sampled], dim=-1).transpose(1, 2)).transpose(1, 2)
        return self.act(nodes), logits

    def reason(self, nodes: Tensor) -> Tensor:
        """Step 2: ``n`` propagation steps ``σ(E Q W_e)`` over ``(B, N, D)``."""
        for weight in self.propagate:
            nodes = self.act(weight(self.adjacency @ nodes))
        return nodes

    def forward(self, feature: Tensor, layout: Tensor) -> Tensor:
        batch, _, height, width = feature.shape
        if tuple(layout.shape) != (batch, self.num_parts, height, width):
            raise ValueError(f"LGR: layout must be ({batch}, {self.num_parts}, {height}, {width}), "
                             f"got {tuple(layout.shape)}")
        nodes, logits = self.gather(feature, layout)
        nodes = self.reason(nodes)
        nodes = self.node_mix(nodes.transpose(1, 2)).transpose(1, 2)  # W' Q: mix across nodes
        pixel_to_node = 0.5 * (layout.flatten(2) + logits.softmax(dim=1))  # (B, N, P)
        spread = nodes.transpose(1, 2) @ pixel_to_node  # (B, D, P)
        return self.distribute(spread.reshape(batch, -1, height, width))
