"""The three conditional patch discriminators of paper §3.5.

* D1 ``layout``:   (layout | target_pose) — is the layout real and consistent with the pose?
* D2 ``pose``:     (image | target_pose)  — is the image real and in the target pose?
* D3 ``identity``: (image | source_image) — is the image real and the source person?

Each is a PatchGAN conditioned by channel concatenation: ``discriminator_layers`` 4x4 stride-2 convs
(width doubling from ``discriminator_channels``, capped at 8x), a 4x4 stride-1 conv, and a 4x4
stride-1 conv to one logit per patch. Spectral norm replaces normalisation layers.

:class:`Discriminators` judges a batch with all three in one ``forward`` call, so the trainer can wrap
it in DistributedDataParallel (the objectives feed real and fake samples as one concatenated batch).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from recapture.body.keypoints import NUM_KEYPOINTS
from recapture.body.parts import get_label_set
from recapture.config import ModelConfig
from recapture.models.blocks import activation, conv2d


class PatchDiscriminator(nn.Module):
    """``(sample (B, Cs, H, W), condition (B, Cc, H, W)) -> patch logits (B, 1, h, w)``."""

    def __init__(self, sample_channels: int, condition_channels: int, channels: int, layers: int,
                 sn: bool = True) -> None:
        super().__init__()
        self.sample_channels = sample_channels
        self.condition_channels = condition_channels
        width = channels
        stages: list[nn.Module] = [conv2d(sample_channels + condition_channels, width, 4, 2, sn), activation()]
        for _ in range(layers - 1):
            wider = min(width * 2, channels * 8)
            stages += [conv2d(width, wider, 4, 2, sn), activation()]
            width = wider
        wider = min(width * 2, channels * 8)
        stages += [conv2d(width, wider, 4, 1, sn), activation(), conv2d(wider, 1, 4, 1, sn)]
        self.net = nn.Sequential(*stages)

    def forward(self, sample: Tensor, condition: Tensor) -> Tensor:
        if sample.shape[1] != self.sample_channels or condition.shape[1] != self.condition_channels:
            raise ValueError(f"discriminator expects {self.sample_channels} + {self.condition_channels} channels, "
                             f"got {sample.shape[1]} + {condition.shape[1]}")
        return self.net(torch.cat([sample, condition], dim=1))


@dataclass(frozen=True)
class PatchLogits:
    """Patch logits ``(B, 1, h, w)`` of D1-D3 for one batch."""

    layout: Tensor  # D1(layout | target_pose)
    pose: Tensor  # D2(image | target_pose)
    identity: Tensor  # D3(image | source_image)


class Discriminators(nn.Module):
    """D1-D3 together, so a trainer keeps one module and one optimiser for them."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        num_parts = get_label_set(config.label_set).num_parts
        args = (config.discriminator_channels, config.discriminator_layers, config.spectral_norm)
        self.layout = PatchDiscriminator(num_parts, NUM_KEYPOINTS, *args)  # D1
        self.pose = PatchDiscriminator(3, NUM_KEYPOINTS, *args)  # D2
        self.identity = PatchDiscriminator(3, 3, *args)  # D3

    def forward(self, layout: Tensor, image: Tensor, target_pose: Tensor, source_image: Tensor) -> PatchLogits:
        """Judge ``layout (B, N, H, W)`` and ``image (B, 3, H, W)`` given ``target_pose`` and ``source_image``."""
        return PatchLogits(layout=self.layout(layout, target_pose), pose=self.pose(image, target_pose),
                           identity=self.identity(image, source_image))
