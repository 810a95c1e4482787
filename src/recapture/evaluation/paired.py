"""``inception_distance``: a paired perceptual distance that needs no download (not LPIPS).

LPIPS's *unweighted* form (Zhang et al. 2018, ``lpips=False``) on the bundled Inception-v3 of
:mod:`recapture.models.inception`: for each stage ``l`` of :data:`PAIRED_STAGES`, the feature maps of
the generated and the real image are unit-normalised along channels, their squared difference is
summed over channels and averaged over positions; the distance is the sum over stages::

    d(g, r) = Σ_l mean_hw Σ_c (f_l(g) / |f_l(g)|_c - f_l(r) / |f_l(r)|_c)²

Each stage term lies in [0, 4]. The images go in at their own size (no resize, as LPIPS is used in
the pose-transfer literature), so mixed_2/5/7 are 29x19/14x9/14x9 at 256x176. The stages are the
deeper ones (mixed_2 and beyond): they respond to parts and textures rather than to pixel shifts,
so a person in the wrong pose scores worse than a slightly blurred or noisy true target (measured in
docs/evaluation.md). It is *not* comparable with published LPIPS numbers: no learned weights, another
backbone.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from recapture.models.inception import InceptionBackbone

PAIRED_STAGES = ("mixed_2", "mixed_5", "mixed_7")
#: Smallest image side the stages accept (Inception's stem needs 75 px up to mixed_10).
MIN_SIDE = 75
PAIRED_DESCRIPTION = ("unweighted LPIPS form (unit-normalised channels, squared difference "
                      "summed over channels, spatial mean, sum over stages) on bundled Inception-v3 stages "
                      f"{', '.join(PAIRED_STAGES)} at the real image size; not LPIPS")
StageMaps = dict[str, Tensor]


def unit_normalise(features: Tensor, eps: float = 1e-10) -> Tensor:
    """``(B, C, h, w)`` divided by its L2 norm over channels (LPIPS's ``normalize_tensor``)."""
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class InceptionDistance:
    """``inception_distance`` on an :class:`~recapture.models.inception.InceptionBackbone`.

    ``maps(images)`` gives the normalised stage maps of ``(B, 3, H, W)`` uint8 images (cacheable for the
    real side); ``distance(generated_maps, real_maps)`` the ``(B,)`` distances; ``__call__`` both.
    """

    def __init__(self, backbone: InceptionBackbone, stages: Sequence[str] = PAIRED_STAGES) -> None:
        self.backbone = backbone
        self.stages = tuple(stages)

    @torch.no_grad()
    def maps(self, images: Tensor) -> StageMaps:
        """Normalised stage maps ``{stage: (B, C, h, w)}`` of uint8 images of at least 75x75."""
        if min(images.shape[-2:]) < MIN_SIDE:
            raise ValueError(f"inception_distance needs images of at least {MIN_SIDE}x{MIN_SIDE}, "
                             f"got {tuple(images.shape[-2:])}")
        return {name: unit_normalise(value) for name, value in self.backbone.stages(images, self.stages).items()}

    def distance(self, generated: StageMaps, real: StageMaps) -> Tensor:
        """``(B,)`` distance between two sets of normalised maps."""
        total = None
        for name in self.stages:
            term = (generated[name] - real[name]).pow(2).sum(dim=1).mean(dim=(1, 2))
            total = term if total is None else total + term
        assert total is not None
        return total

    def __call__(self, generated: Tensor, real: Tensor) -> Tensor:
        """``(B,)`` distances of uint8 image pairs of one size."""
        return self.distance(self.maps(generated), self.maps(real))
