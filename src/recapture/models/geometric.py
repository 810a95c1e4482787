"""Semantic-aware geometric transformation network (paper §3.2): a small U-Net predicting the target
layout ``Ŝ_B`` from the source layout and both poses.

With ``model.geometric_prior`` the network does not draw ``Ŝ_B`` from scratch: the keypoint prior
(:func:`recapture.body.keypoint_warp.warp_layout`) moves the source layout part by part, and the
network predicts residual logits over it (newly visible parts, hair and loose clothes, view changes)::

    logits = prior_gain * one_hot(warped S_A) + residual_gain * upsample(U-Net(warped S_A, unexplained,
                                                                              S_A, K_A, K_B))

The warp runs at the input (output) size; the U-Net at ``model.internal_size``. Both gains are learned
(initially 4 and 0.5, so an untrained network returns the warp).

At inference (eval mode) four optional clean-ups, in this order: ``model.layout_flip_average`` averages the class
probabilities with those predicted for the mirrored pair (left/right parts and joints swapped, mapped back);
``model.layout_torso_person`` makes every pixel inside the target's shoulders-hips quadrilateral person (its most
likely part; :func:`recapture.body.part_maps.torso_mask`): a torso is never wall, although the network, unsure of
an unusual person (a bare torso parsed as a garment, a kicking pose), may leave holes there;
``model.layout_person_confidence`` makes a pixel person only where 1 - P(background) exceeds it (then its most
likely part), for pose changes beyond ``model.layout_confident_above`` torso lengths
(:func:`recapture.body.retarget.pose_distance`): the network's edges are unsure on large pose changes; and
``model.layout_min_area`` drops labels that cover fewer pixels than that in an image (their pixels take the
next most likely label): stray specks of a part the person does not show.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recapture.body.keypoints import FLIP_PERMUTATION, NUM_KEYPOINTS, flip_keypoints, heatmaps_to_keypoints
from recapture.body.part_maps import torso_mask
from recapture.body.parts import get_label_set
from recapture.body.retarget import pose_distance
from recapture.config import ModelConfig
from recapture.models.blocks import Merge, PyramidEncoder, ResBlock, conv2d, level_widths, validate_model_config
from recapture.body.keypoint_warp import WarpedLayout, warp_layout


def to_network_size(tensor: Tensor, size: tuple[int, int], binary: bool = False) -> Tensor:
    """Resize ``(B, C, H, W)`` to ``size``: area pooling (layouts, images), max pooling for ``binary`` heatmaps."""
    if tuple(tensor.shape[-2:]) == tuple(size):
        return tensor
    if binary:
        return F.adaptive_max_pool2d(tensor, size)
    if tensor.shape[-2] % size[0] == 0 and tensor.shape[-1] % size[1] == 0:
        return F.interpolate(tensor, size=size, mode="area")
    return F.interpolate(tensor, size=size, mode="bilinear", align_corners=False, antialias=True)


def to_output_size(tensor: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear upsampling of network outputs ``(B, C, h, w)`` to ``size`` (identity when equal)."""
    if tuple(tensor.shape[-2:]) == tuple(size):
        return tensor
    return F.interpolate(tensor, size=size, mode="bilinear", align_corners=False)


def _mirrored(keypoints: Tensor | np.ndarray, width: int) -> np.ndarray:
    """``(B, 18, 2)`` keypoints of the horizontally mirrored images (left/right joints swapped)."""
    array = np.asarray(keypoints.detach().cpu() if isinstance(keypoints, Tensor) else keypoints, dtype=np.float64)
    return np.stack([flip_keypoints(item, width) for item in array])


def keypoints_from_heatmaps(pose: Tensor) -> np.ndarray:
    """``(B, 18, H, W)`` disk heatmaps -> ``(B, 18, 2)`` y/x centroids (-1 missing): a fallback when the
    caller has no keypoints (exact keypoints give a sharper prior)."""
    return np.stack([heatmaps_to_keypoints(p.detach().cpu()).astype(np.float64) for p in pose])


def keypoints_or_centroids(given: Tensor | np.ndarray | None, pose: Tensor) -> np.ndarray:
    """``(B, 18, 2)`` float64 keypoints: ``given`` (a tensor or an array) when there, else the centroids of the
    ``(B, 18, H, W)`` heatmaps ``pose`` (:func:`keypoints_from_heatmaps`)."""
    if given is None:
        return keypoints_from_heatmaps(pose)
    return np.asarray(given.detach().cpu() if isinstance(given, Tensor) else given, dtype=np.float64)


class GeometricGenerator(nn.Module):
    """``(source_layout (B, N, H, W), source_pose (B, 18, H, W), target_pose) -> logits (B, N, H, W)``.

    U-Net: a strided encoder (widths ``geometric_channels * 2**k`` capped at ``max_channels``,
    ``num_down`` levels), ``num_blocks`` residual blocks at the bottleneck, a decoder with skip
    connections, a 3x3 conv to ``N`` logits. Without the prior its input is ``[S_A, K_A, K_B]``; with
    it ``[warped S_A, unexplained, S_A, K_A, K_B]`` and the output is a residual (module doc).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        validate_model_config(config)
        sn, norm = config.spectral_norm, config.norm
        self.config = config
        self.label_set = get_label_set(config.label_set)
        self.num_parts = self.label_set.num_parts
        self.prior = config.geometric_prior
        inputs = self.num_parts + 2 * NUM_KEYPOINTS + (self.num_parts + 1 if self.prior else 0)
        widths = level_widths(config.geometric_channels, config.max_channels, config.num_down)
        self.encoder = PyramidEncoder(inputs, widths, sn, norm)
        self.bottleneck = nn.Sequential(*[ResBlock(widths[-1], sn, norm) for _ in range(config.num_blocks)])
        self.decoder = nn.ModuleList(Merge(widths[k + 1], widths[k], widths[k], 0, True, sn, norm)
                                     for k in reversed(range(config.num_down)))
        self.head = conv2d(widths[0], self.num_parts, 3, sn=sn)
        if self.prior:
            self.prior_gain = nn.Parameter(torch.tensor([4.0]))
            self.residual_gain = nn.Parameter(torch.tensor([0.5]))

    def _unet(self, x: Tensor) -> Tensor:
        skips = self.encoder(x)
        x = self.bottleneck(skips.pop())
        for merge in self.decoder:
            x = merge(x, skips.pop())
        return self.head(x)

    def forward(self, source_layout: Tensor, source_pose: Tensor, target_pose: Tensor,
                source_keypoints: Tensor | np.ndarray | None = None,
                target_keypoints: Tensor | np.ndarray | None = None) -> Tensor:
        """Logits of Ŝ_B at the input size. Keypoints ``(B, 18, 2)`` (input frame) feed the prior; when
        absent they are read off the heatmaps. In eval mode the clean-ups of the module doc apply."""
        if self.prior:
            source_keypoints = keypoints_from_heatmaps(source_pose) if source_keypoints is None else source_keypoints
            target_keypoints = keypoints_from_heatmaps(target_pose) if target_keypoints is None else target_keypoints
        logits = self._predict(source_layout, source_pose, target_pose, source_keypoints, target_keypoints)
        if self.training:
            return logits
        if self.config.layout_flip_average:
            parts, joints = list(self.label_set.flip_permutation), list(FLIP_PERMUTATION)
            width = source_layout.shape[-1]
            mirrored = [None if k is None else _mirrored(k, width) for k in (source_keypoints, target_keypoints)]
            flipped = self._predict(source_layout.flip(-1)[:, parts], source_pose.flip(-1)[:, joints],
                                    target_pose.flip(-1)[:, joints], *mirrored).flip(-1)[:, parts]
            logits = torch.logaddexp(logits.log_softmax(1), flipped.log_softmax(1)) - float(np.log(2.0))
        if self.config.layout_torso_person:
            size = tuple(logits.shape[-2:])
            torso = np.stack([torso_mask(k, size) for k in keypoints_or_centroids(target_keypoints, target_pose)])
            background = torch.arange(self.num_parts, device=logits.device).view(1, -1, 1, 1) == 0
            logits = logits.masked_fill(torch.from_numpy(torso)[:, None].to(logits.device) & background, -1e4)
        if self.config.layout_person_confidence > 0:
            logits = self._confident_person(logits, source_pose, target_pose, source_keypoints, target_keypoints)
        if self.config.layout_min_area > 0:
            area = F.one_hot(logits.argmax(1), self.num_parts).sum(dim=(1, 2))
            small = (area > 0) & (area < self.config.layout_min_area)
            small[:, 0] = False
            logits = logits.masked_fill(small[:, :, None, None], -1e4)
        return logits

    def _confident_person(self, logits: Tensor, source_pose: Tensor, target_pose: Tensor,
                          source_keypoints: Tensor | np.ndarray | None,
                          target_keypoints: Tensor | np.ndarray | None) -> Tensor:
        """``(B, N, H, W)`` logits whose argmax calls a pixel background where P(background) >= 1 -
        ``layout_person_confidence`` and its most likely part otherwise, for the pairs whose pose changes by more
        than ``layout_confident_above`` (others unchanged); the losing labels are -1e4."""
        sources = keypoints_or_centroids(source_keypoints, source_pose)
        targets = keypoints_or_centroids(target_keypoints, target_pose)
        above = self.config.layout_confident_above
        moved = torch.tensor([pose_distance(s, t) > above for s, t in zip(sources, targets)], device=logits.device)
        background = logits.softmax(1)[:, :1] >= 1.0 - self.config.layout_person_confidence
        losing = torch.cat([~background, background.expand(-1, self.num_parts - 1, -1, -1)], dim=1)
        return logits.masked_fill(losing & moved[:, None, None, None], -1e4)

    def _predict(self, source_layout: Tensor, source_pose: Tensor, target_pose: Tensor,
                 source_keypoints: Tensor | np.ndarray | None, target_keypoints: Tensor | np.ndarray | None) -> Tensor:
        """Ŝ_B logits of one pass (no clean-ups)."""
        size = tuple(self.config.internal_size or source_layout.shape[-2:])
        poses = [to_network_size(p, size, binary=True) for p in (source_pose, target_pose)]
        if not self.prior:
            logits = self._unet(torch.cat([to_network_size(source_layout, size), *poses], dim=1))
            return to_output_size(logits, tuple(source_layout.shape[-2:]))
        warped = self.warp(source_layout, source_pose, target_pose, source_keypoints, target_keypoints)
        inputs = torch.cat([to_network_size(warped.layout, size), to_network_size(warped.unexplained, size),
                            to_network_size(source_layout, size), *poses], dim=1)
        residual = to_output_size(self._unet(inputs), tuple(source_layout.shape[-2:]))
        return self.prior_gain * warped.layout + self.residual_gain * residual

    @torch.no_grad()
    def warp(self, source_layout: Tensor, source_pose: Tensor, target_pose: Tensor,
             source_keypoints: Tensor | np.ndarray | None = None,
             target_keypoints: Tensor | np.ndarray | None = None) -> WarpedLayout:
        """The keypoint prior alone."""
        source = keypoints_from_heatmaps(source_pose) if source_keypoints is None else source_keypoints
        target = keypoints_from_heatmaps(target_pose) if target_keypoints is None else target_keypoints
        return warp_layout(source_layout.detach().float(), source, target, self.label_set)
