"""Semantic-aware appearance transformation network (paper §3.1, Fig. 2(b)).

Encoder over ``[source_image, source_layout, source_pose]`` giving ``Φ_k`` at every level ``k``; the
layout encoder gives target signals ``T_k`` from ``[target_layout, target_pose]``. Decoder, from the
bottleneck (level ``L = num_down``) up to level 0::

    x = Merge(Φ_L, T_L) + num_blocks residual blocks                   (bottleneck)
    for k = L-1 .. 0:  x = Merge(upsample(x), T_k) + decoder_blocks residual blocks
    at k == sat_level: x = ConvNormAct([x, SAT(x, Φ_k, S_A@k, Ŝ_B@k)])   (intra-part transfer)
    at k == lgr_level: x = ConvNormAct([x, LGR(x, Ŝ_B@k)])               (inter-part reasoning)
    image = tanh(conv3x3(x))

(at the bottleneck level the SAT/LGR steps apply to the bottleneck output). ``S_A@k``/``Ŝ_B@k`` are
the layouts area-pooled to level ``k``; SAT uses their argmax labels, LGR the part fractions. With
``sat_enabled``/``lgr_enabled`` off this is the paper's "Basic" network (Table 4).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from recapture.body.keypoints import NUM_KEYPOINTS
from recapture.body.parts import get_label_set
from recapture.config import ModelConfig
from recapture.models.blocks import ConvNormAct, Merge, PyramidEncoder, conv2d, level_widths, validate_model_config
from recapture.models.layout_ops import labels_at, layout_at
from recapture.models.lgr import LayoutGraphReasoning
from recapture.models.sat import SemanticAttentiveTransfer


class LayoutEncoder(nn.Module):
    """The target-signal encoder (paper §3.2, blue blocks of Fig. 2(a)):
    ``(target_layout (B, N, H, W), target_pose (B, 18, H, W))`` -> one feature per decoder level,
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


class AppearanceGenerator(nn.Module):
    """``(source_image (B, 3, H, W) in [-1, 1], source_layout (B, N, H, W), source_pose (B, 18, H, W),
    target_layout (B, N, H, W), target_pose (B, 18, H, W)) -> image (B, 3, H, W)`` (tanh)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        validate_model_config(config)
        sn, norm, depth = config.spectral_norm, config.norm, config.num_down
        self.config = config
        self.num_parts = get_label_set(config.label_set).num_parts
        widths = level_widths(config.base_channels, config.max_channels, depth)
        self.encoder = PyramidEncoder(3 + self.num_parts + NUM_KEYPOINTS, widths, sn, norm)
        self.layout_encoder = LayoutEncoder(config)
        targets = self.layout_encoder.widths
        self.bottleneck = Merge(widths[depth], targets[depth], widths[depth], config.num_blocks, False, sn, norm)
        self.decoder = nn.ModuleList(Merge(widths[k + 1], targets[k], widths[k], config.decoder_blocks, True, sn, norm)
                                     for k in reversed(range(depth)))
        self.sat: SemanticAttentiveTransfer | None = None
        self.lgr: LayoutGraphReasoning | None = None
        if config.sat_enabled:
            channels = widths[config.sat_level]
            self.sat = SemanticAttentiveTransfer(channels, channels, config.sat_dim, sn)
            self.sat_fuse = ConvNormAct(2 * channels, channels, 3, 1, sn, norm)
        if config.lgr_enabled:
            channels = widths[config.lgr_level]
            self.lgr = LayoutGraphReasoning(config.label_set, channels, config.lgr_dim, config.lgr_steps,
                                            config.lgr_dim, sn)
            self.lgr_fuse = ConvNormAct(channels + config.lgr_dim, channels, 3, 1, sn, norm)
        self.head = conv2d(widths[0], 3, 3, sn=sn)

    def forward(self, source_image: Tensor, source_layout: Tensor, source_pose: Tensor, target_layout: Tensor,
                target_pose: Tensor) -> Tensor:
        return self._run(source_image, source_layout, source_pose, target_layout, target_pose, None)

    def sat_attention(self, source_image: Tensor, source_layout: Tensor, source_pose: Tensor,
                      target_layout: Tensor, target_pose: Tensor, pixel: tuple[int, int]) -> Tensor:
        """SAT weights of the feature pixel ``(y, x)`` (at ``sat_level``) over source pixels: ``(B, h, w)``."""
        if self.sat is None:
            raise ValueError("sat_attention needs model.sat_enabled=true")
        return self._run(source_image, source_layout, source_pose, target_layout, target_pose, pixel)

    def _run(self, source_image: Tensor, source_layout: Tensor, source_pose: Tensor, target_layout: Tensor,
             target_pose: Tensor, probe: tuple[int, int] | None) -> Tensor:
        """The image, or (``probe`` given) SAT's attention map of that pixel, computed on the way."""
        depth = self.config.num_down
        sources = self.encoder(torch.cat([source_image, source_layout, source_pose], dim=1))
        targets = self.layout_encoder(target_layout, target_pose)
        x = self.bottleneck(sources[depth], targets[depth])
        for level in range(depth, -1, -1):
            if level < depth:
                x = self.decoder[depth - 1 - level](x, targets[level])
            size = (x.shape[-2], x.shape[-1])
            if self.sat is not None and level == self.config.sat_level:
                source_labels, target_labels = labels_at(source_layout, size), labels_at(target_layout, size)
                if probe is not None:
                    return self.sat.attention_map(x, sources[level], source_labels, target_labels, probe)
                transferred = self.sat(x, sources[level], source_labels, target_labels)
                x = self.sat_fuse(torch.cat([x, transferred], dim=1))
            if self.lgr is not None and level == self.config.lgr_level:
                x = self.lgr_fuse(torch.cat([x, self.lgr(x, layout_at(target_layout, size))], dim=1))
        return torch.tanh(self.head(x))
