"""Semantic-aware geometric transformation network (paper §3.2): a small U-Net predicting the target
layout ``Ŝ_B`` from the source layout and both poses.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from recapture.body.keypoints import NUM_KEYPOINTS
from recapture.body.parts import get_label_set
from recapture.config import ModelConfig
from recapture.models.blocks import Merge, PyramidEncoder, ResBlock, conv2d, level_widths, validate_model_config


class GeometricGenerator(nn.Module):
    """``(source_layout (B, N, H, W), source_pose (B, 18, H, W), target_pose) -> logits (B, N, H, W)``.

    U-Net: a strided encoder over ``[source_layout, source_pose, target_pose]`` (widths
    ``geometric_channels * 2**k`` capped at ``max_channels``, ``num_down`` levels), ``num_blocks``
    residual blocks at the bottleneck, a decoder with skip connections, a 3x3 conv to ``N`` logits.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        validate_model_config(config)
        sn, norm = config.spectral_norm, config.norm
        self.num_parts = get_label_set(config.label_set).num_parts
        widths = level_widths(config.geometric_channels, config.max_channels, config.num_down)
        self.encoder = PyramidEncoder(self.num_parts + 2 * NUM_KEYPOINTS, widths, sn, norm)
        self.bottleneck = nn.Sequential(*[ResBlock(widths[-1], sn, norm) for _ in range(config.num_blocks)])
        self.decoder = nn.ModuleList(Merge(widths[k + 1], widths[k], widths[k], 0, True, sn, norm)
                                     for k in reversed(range(config.num_down)))
        self.head = conv2d(widths[0], self.num_parts, 3, sn=sn)

    def forward(self, source_layout: Tensor, source_pose: Tensor, target_pose: Tensor) -> Tensor:
        skips = self.encoder(torch.cat([source_layout, source_pose, target_pose], dim=1))
        x = self.bottleneck(skips.pop())
        for merge in self.decoder:
            x = merge(x, skips.pop())
        return self.head(x)
