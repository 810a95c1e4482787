"""The target-signal encoder (paper §3.2, blue blocks of Fig. 2(a)): encodes ``{Ŝ_B, K_B}`` into one
feature per decoder level of the appearance network.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from recapture.body.keypoints import NUM_KEYPOINTS
from recapture.body.parts import get_label_set
from recapture.config import ModelConfig
from recapture.models.blocks import PyramidEncoder, level_widths


class LayoutEncoder(nn.Module):
    """``(target_layout (B, N, H, W), target_pose (B, 18, H, W))`` -> features
    ``[(B, widths[k], H / 2**k, W / 2**k) for k in 0..num_down]``.

    The layout may be one-hot (ground truth, user edit, straight-through prediction) or soft.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.widths = level_widths(config.layout_channels, config.max_channels, config.num_down)
        num_parts = get_label_set(config.label_set).num_parts
        self.encoder = PyramidEncoder(num_parts + NUM_KEYPOINTS, self.widths, config.spectral_norm, config.norm)

    def forward(self, target_layout: Tensor, target_pose: Tensor) -> list[Tensor]:
        return self.encoder(torch.cat([target_layout, target_pose], dim=1))
