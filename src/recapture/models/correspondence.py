"""Correspondence appearance head: learn geometry small, copy appearance big (docs/correspondence.md).

At a small internal size ``(h, w)`` the networks decide, for every target pixel, *where in the source
it comes from* (a sampling grid, "flow") and *whether the source shows it* (visibility ``v``); a decoder
also paints pixels for what the source never showed (the LGR-informed generated image). The pixels
themselves come from the full-resolution source::

    prior   = keypoint part-affine backward warp (body/keypoint_warp.py); the torso's map where no part covers
    SAT     = part-restricted attention (models/sat.py) -> expected source position of each target pixel
    flow    = prior + flow_scale * decoder([..., SAT position - prior])     (last layer zero: starts at prior)
    full    = full-size prior + upsample(flow - prior)    (the prior grid at the output size keeps part edges
                                                           sharp; without it: upsample(flow))
    image   = v * grid_sample(source at full size, full) + (1 - v) * upsample(generated)
    stand   = ``stand_ins`` (default; models/stand_in.py): a target part the source has no pixel of takes the mean
              colour of its kin the source shows (skin, upper or lower garments) where the flow misses that kin;
              ``back_of_head_fill`` (default): on a pair turning the person's back, target hair whose sample lands
              on the source face takes the source hair's mean colour
    image  += refine(image, v, generated)                                 (last layer zero)
    still   = ``background: still`` (default; models/still_background.py): beyond ``still_margin`` internal pixels
              of the target person (feathered) the output is the source pixel in place - a fixed camera; where the
              source person was and the target person is not, the background is filled from the source's own
              background around it (``vacated: fill``; ``vacated: network`` keeps the network's painting there).

Grids are ``grid_sample`` x/y in [-1, 1] with ``align_corners=True``, so an identity grid upsampled
bilinearly is the identity at any output size (a 1120x840 photo as well as 256x176). Nothing here
normalises features over the image (no InstanceNorm/BatchNorm), so no single location can dominate
the output (the "droplet" of the instance-normed decoder).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recapture.body.keypoints import NUM_KEYPOINTS, keypoints_to_heatmaps
from recapture.body.parts import get_label_set
from recapture.config import ModelConfig
from recapture.models.blocks import Merge, PyramidEncoder, activation, conv2d, level_widths
from recapture.models.geometric import keypoints_or_centroids
from recapture.body.part_maps import face_channels, is_back_view, turns_back
from recapture.body.prior_numpy import keypoints_to_size, snap_to_own_parts
from recapture.models.layout_ops import labels_at, layout_at, majority_layout, to_one_hot
from recapture.models.lgr import LayoutGraphReasoning
from recapture.models.prior_grid import PriorGrid, prior_grid, sample_source, with_full_prior
from recapture.models.sat import SemanticAttentiveTransfer
from recapture.models.stand_in import back_of_head_fill, kin_matrix, stand_ins
from recapture.models.still_background import VACATED_RULES, people_weights, still_composite


BACKGROUND_RULES = ("still", "follow")
#: Config keys of rules, not learned: a weight file written before one existed takes its current default
#: (:data:`MISSING_KEY_DEFAULTS`).
RULE_KEYS = ("background", "still_margin", "still_feather", "vacated", "twin_limbs", "snap_reach", "back_of_head",
             "stand_ins", "back_of_head_fill")


@dataclass(frozen=True)
class CorrespondenceConfig:
    """Sizes of the correspondence appearance network (all learned parts run at ``internal_size``)."""

    label_set: str = "lip20"
    internal_size: tuple[int, int] = (128, 88)  # (h, w) of layouts, poses and the prior grid
    base_channels: int = 16  # width at level 0 (doubles per level up to max_channels)
    max_channels: int = 64
    num_down: int = 2  # SAT and LGR run at the bottleneck, level num_down
    blocks: int = 1  # residual blocks at the bottleneck
    sat_dim: int = 32
    lgr_dim: int = 32
    lgr_steps: int = 2
    refine_channels: int = 8  # width of the full-resolution refinement
    flow_scale: float = 0.1  # grid units per unit of the flow head's output
    visibility_bias: float = 4.0  # initial visibility logit (sigmoid 0.98: start from the warped source)
    background: str = "still"  # still: the background stays in place (fixed camera) | follow: the network's output
    still_margin: int = 1  # internal pixels around the target person that stay the network's output
    still_feather: int = 0  # internal pixels of the seam's ramp (box blur radius; < still_margin keeps the people)
    vacated: str = "fill"  # where the source person was and the target is not: fill (from the background) | network
    twin_limbs: bool = True  # the prior draws a limb the source hides from the other side's (part_warp twins)
    #: A non-limb target pixel whose full-size prior sample lands on a source limb samples the nearest source pixel
    #: of its own part within this fraction of the source height instead (prior_numpy.snap_to_own_parts; 0: off)
    snap_reach: float = 0.04
    #: Target parts the source shows none of take the mean colour of their kin it shows (models/stand_in.py)
    stand_ins: bool = True
    #: On a target seen from behind, target hair pixels whose prior sample lands on the source face or sunglasses
    #: sample the source hair mirrored across its edge (prior_numpy.hair_over_face)
    back_of_head: bool = True
    #: On a pair that turns the person's back (part_maps.turns_back), target hair pixels whose coarse sample lands
    #: on the source face take the source hair's mean colour (stand_in.back_of_head_fill)
    back_of_head_fill: bool = True

    def __post_init__(self) -> None:
        factor = 2 ** self.num_down
        height, width = self.internal_size
        if height % factor or width % factor:
            raise ValueError(f"correspondence internal_size {self.internal_size} must be divisible by {factor}")
        for name in ("base_channels", "max_channels", "num_down", "sat_dim", "lgr_dim", "refine_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"correspondence {name} must be >= 1, got {getattr(self, name)}")
        if self.background not in BACKGROUND_RULES:
            raise ValueError(f"correspondence background must be one of {BACKGROUND_RULES}, got {self.background!r}")
        if self.vacated not in VACATED_RULES:
            raise ValueError(f"correspondence vacated must be one of {VACATED_RULES}, got {self.vacated!r}")
        if not 0.0 <= self.snap_reach <= 1.0:
            raise ValueError(f"correspondence snap_reach must be in [0, 1], got {self.snap_reach}")
        if self.still_margin < 0 or self.still_feather < 0:
            raise ValueError(f"correspondence still_margin/still_feather must be >= 0, got "
                             f"{self.still_margin}/{self.still_feather}")


#: What a weight file lacking a rule's key gets: the config's default for it.
MISSING_KEY_DEFAULTS = {field.name: field.default for field in fields(CorrespondenceConfig) if field.name in RULE_KEYS}


@dataclass(frozen=True)
class CorrespondenceOutput:
    """What :class:`CorrespondenceGenerator` returns."""

    image: Tensor  # (B, 3, H, W) in [-1, 1] at the output size
    flow: Tensor  # (B, H, W, 2) where each output pixel was sampled in the source (x/y; identity on a still background)
    visibility: Tensor  # (B, 1, H, W) in [0, 1]: weight of the copied source pixel
    invented: Tensor  # (B, 1, H, W) 1 - visibility: what the network painted
    generated: Tensor  # (B, 3, h, w) the decoder's own pixels at the internal size
    coarse_flow: Tensor  # (B, h, w, 2) the flow at the internal size
    visibility_logits: Tensor  # (B, 1, h, w)


def back_views(config: CorrespondenceConfig, target_keypoints: np.ndarray, height: int) -> list[bool]:
    """Per pair, whether :func:`~recapture.body.prior_numpy.hair_over_face` applies: ``config.back_of_head`` and the
    ``(B, 18, 2)`` target keypoints (frame of ``height`` rows) show the person's back (``part_maps.is_back_view``)."""
    return [config.back_of_head and is_back_view(k, height) for k in np.asarray(target_keypoints, dtype=np.float64)]


def snap_prior(prior: PriorGrid, source_labels: Tensor, target_labels: Tensor, config: CorrespondenceConfig,
               backs: list[bool] | None = None) -> PriorGrid:
    """``prior`` (at the labels' size) with :func:`~recapture.body.prior_numpy.snap_to_own_parts` applied to its
    grid: ``(B, H, W)`` source and target labels, ``config.snap_reach``, ``backs`` (:func:`back_views`; None:
    no back views)."""
    backs = backs or [False] * len(prior.grid)
    grids = [snap_to_own_parts(g, s, t, config.label_set, config.snap_reach, back) for g, s, t, back in
             zip(*(x.detach().cpu().numpy() for x in (prior.grid, source_labels, target_labels)), backs)]
    return replace(prior, grid=torch.from_numpy(np.stack(grids)).to(prior.grid.device))


def load_correspondence(path: str) -> CorrespondenceGenerator:
    """A model from a safetensors file whose metadata holds its config (no code is executed)."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(path, framework="pt") as handle:
        metadata = handle.metadata() or {}
    if "config" not in metadata:
        raise ValueError(f"{path}: no correspondence config in the file's metadata")
    values = MISSING_KEY_DEFAULTS | json.loads(metadata["config"])
    values["internal_size"] = tuple(values["internal_size"])
    model = CorrespondenceGenerator(CorrespondenceConfig(**values))
    model.load_state_dict(load_file(path))
    return model.eval()


class Refinement(nn.Module):
    """A light residual refinement at the output size: ``(composite, visibility, generated) -> composite + r``,
    its last layer zero so it starts as the identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv2d(7, channels, 3, sn=False), activation(), conv2d(channels, 3, 3, sn=False))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, composite: Tensor, visibility: Tensor, generated: Tensor) -> Tensor:
        return composite + self.body(torch.cat([composite, visibility, generated], dim=1))


class CorrespondenceGenerator(nn.Module):
    """``(source_image (B, 3, H, W) any size, source_layout / target_layout (B, N, h, w), source_pose /
    target_pose (B, 18, h, w), prior: PriorGrid) -> CorrespondenceOutput`` at the output size."""

    def __init__(self, config: CorrespondenceConfig) -> None:
        super().__init__()
        self.config = config
        self.num_parts = get_label_set(config.label_set).num_parts
        widths = level_widths(config.base_channels, config.max_channels, config.num_down)
        depth = config.num_down
        self.encoder = PyramidEncoder(3 + self.num_parts + NUM_KEYPOINTS, widths, False, "none")
        self.target_encoder = PyramidEncoder(self.num_parts + NUM_KEYPOINTS + 3 + 2 + 1, widths, False, "none")
        self.bottleneck = Merge(widths[depth], widths[depth], widths[depth], config.blocks, False, False, "none")
        self.sat = SemanticAttentiveTransfer(widths[depth], widths[depth], config.sat_dim, sn=False)
        self.sat_fuse = Merge(widths[depth], widths[depth] + 3, widths[depth], 0, False, False, "none")
        self.lgr = LayoutGraphReasoning(config.label_set, widths[depth], config.lgr_dim, config.lgr_steps,
                                        config.lgr_dim, False)
        self.lgr_fuse = Merge(widths[depth], config.lgr_dim, widths[depth], 0, False, False, "none")
        self.decoder = nn.ModuleList(Merge(widths[k + 1], widths[k], widths[k], 0, True, False, "none")
                                     for k in reversed(range(depth)))
        self.flow_head = conv2d(widths[0], 2, 3, sn=False)
        self.visibility_head = conv2d(widths[0], 1, 3, sn=False)
        self.image_head = conv2d(widths[0], 3, 3, sn=False)
        nn.init.zeros_(self.flow_head.weight)
        nn.init.zeros_(self.flow_head.bias)
        nn.init.zeros_(self.visibility_head.weight)
        nn.init.constant_(self.visibility_head.bias, config.visibility_bias)
        self.refine = Refinement(config.refine_channels)
        self.register_buffer("kin", kin_matrix(get_label_set(config.label_set)), persistent=False)
        self.face = face_channels(get_label_set(config.label_set))  # (hair, [face, sunglasses]) or None

    def _check(self, source_image: Tensor, tensors: dict[str, tuple[Tensor, int]], prior: PriorGrid) -> None:
        size = self.config.internal_size
        if source_image.dim() != 4 or source_image.shape[1] != 3:
            raise ValueError(f"source_image: expected (B, 3, H, W), got {tuple(source_image.shape)}")
        batch = source_image.shape[0]
        for name, (tensor, channels) in tensors.items():
            if tuple(tensor.shape) != (batch, channels, *size):
                raise ValueError(f"{name}: expected {(batch, channels, *size)} at the internal size, "
                                 f"got {tuple(tensor.shape)}")
        if tuple(prior.grid.shape) != (batch, *size, 2):
            raise ValueError(f"prior grid: expected {(batch, *size, 2)}, got {tuple(prior.grid.shape)}")

    def forward(self, source_image: Tensor, source_layout: Tensor, source_pose: Tensor, target_layout: Tensor,
                target_pose: Tensor, prior: PriorGrid, output_size: tuple[int, int] | None = None
                ) -> CorrespondenceOutput:
        parts = self.num_parts
        self._check(source_image, {"source_layout": (source_layout, parts), "source_pose": (source_pose, NUM_KEYPOINTS),
                                   "target_layout": (target_layout, parts), "target_pose": (target_pose, NUM_KEYPOINTS)},
                    prior)
        size = self.config.internal_size
        output_size = output_size or (source_image.shape[-2], source_image.shape[-1])
        small = F.interpolate(source_image, size=size, mode="area") if source_image.shape[-2:] != size else source_image
        coarse_flow, logits, generated = self.predict(small, source_layout, source_pose, target_layout, target_pose,
                                                      prior.grid, prior.covered)
        return self.compose_with_rules(source_image, coarse_flow, logits, generated, output_size, prior, source_layout,
                                       target_layout, small)

    def compose_with_rules(self, source_image: Tensor, coarse_flow: Tensor, visibility_logits: Tensor,
                           generated: Tensor, output_size: tuple[int, int], prior: PriorGrid, source_layout: Tensor,
                           target_layout: Tensor, small: Tensor) -> CorrespondenceOutput:
        """:meth:`compose` with the config's rules built from the ``(B, N, h, w)`` layouts and the ``(B, 3, h, w)``
        source at the internal size: :meth:`people_weight` (still background) and :meth:`stand_in`."""
        return self.compose(source_image, coarse_flow, visibility_logits, generated, output_size, prior,
                            self.people_weight(source_layout, target_layout), small,
                            self.stand_in(small, source_layout, target_layout, coarse_flow, prior.turned))

    def stand_in(self, small: Tensor, source_layout: Tensor, target_layout: Tensor, coarse_flow: Tensor,
                 turned: Tensor | None = None) -> tuple[Tensor, Tensor] | None:
        """``(painted (B, 1, h, w), colour (B, 3, h, w))`` at the internal size: :func:`stand_in.stand_ins` when
        ``config.stand_ins`` plus :func:`stand_in.back_of_head_fill` when ``config.back_of_head_fill`` for the pairs
        ``turned`` ``(B,)`` marks (their pixels are disjoint: hair the source shows is no stand-in); None when
        neither applies."""
        found = []
        if self.config.stand_ins:
            found.append(stand_ins(small, source_layout, target_layout, self.kin, coarse_flow))
        if self.config.back_of_head_fill and turned is not None and self.face is not None:
            found.append(back_of_head_fill(small, source_layout, target_layout, coarse_flow, turned, *self.face))
        if not found:
            return None
        return sum(p for p, _ in found).clamp(0.0, 1.0), sum(c for _, c in found)

    def people_weight(self, source_layout: Tensor, target_layout: Tensor) -> Tensor | None:
        """``(B, 3, h, w)`` weights of the ``background: still`` rule (:func:`still_background.people_weights`:
        where the network's output is kept, where the vacated background is filled); None for ``follow``."""
        if self.config.background == "follow":
            return None
        return people_weights(source_layout, target_layout, self.config.still_margin, self.config.still_feather,
                              self.config.vacated)

    def predict(self, small: Tensor, source_layout: Tensor, source_pose: Tensor, target_layout: Tensor,
                target_pose: Tensor, grid: Tensor, covered: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The networks at the internal size ``(h, w)`` (what the ONNX export holds): ``small`` ``(B, 3, h, w)``
        source, layouts, poses, the prior's ``grid`` ``(B, h, w, 2)`` and ``covered`` ``(B, 1, h, w)`` ->
        ``(coarse_flow (B, h, w, 2), visibility_logits (B, 1, h, w), generated (B, 3, h, w))``."""
        prior_map = grid.permute(0, 3, 1, 2)
        warped = F.grid_sample(small, grid, mode="bilinear", padding_mode="border", align_corners=True)
        sources = self.encoder(torch.cat([small, source_layout, source_pose], dim=1))
        targets = self.target_encoder(torch.cat([target_layout, target_pose, warped, prior_map, covered], dim=1))
        depth = self.config.num_down
        x = self.bottleneck(sources[depth], targets[depth])
        level_size = (x.shape[-2], x.shape[-1])
        transferred, coords, present = self.sat.transfer_with_coordinates(
            x, sources[depth], labels_at(source_layout, level_size), labels_at(target_layout, level_size))
        offset = (coords - F.interpolate(prior_map, size=level_size, mode="area")) * present
        x = self.sat_fuse(x, torch.cat([transferred, offset, present], dim=1))
        x = self.lgr_fuse(x, self.lgr(x, layout_at(target_layout, level_size)))
        for level, merge in zip(reversed(range(depth)), self.decoder):
            x = merge(x, targets[level])
        coarse_flow = (prior_map + self.config.flow_scale * self.flow_head(x)).permute(0, 2, 3, 1)
        logits = self.visibility_head(x)
        generated = torch.tanh(self.image_head(x))
        return coarse_flow, logits, generated

    def sat_attention(self, *_: object, **__: object) -> Tensor:
        """Not kept by this head: a clear error for :meth:`RecaptureGenerator.sat_attention`."""
        raise ValueError("sat_attention needs model.appearance=generative (the correspondence head does not keep "
                         "per-pixel SAT maps)")

    def compose(self, source_image: Tensor, coarse_flow: Tensor, visibility_logits: Tensor, generated: Tensor,
                output_size: tuple[int, int], prior: PriorGrid | None = None, people: Tensor | None = None,
                small: Tensor | None = None, stand_in: tuple[Tensor, Tensor] | None = None) -> CorrespondenceOutput:
        """The parameter-free full-resolution step (plus the light refinement); with ``stand_in``
        (:meth:`stand_in`) the parts the source lacks painted in their kin's colour before the refinement; with
        ``people`` (:meth:`people_weight`) the still-background rule (:func:`still_background.still_composite`;
        ``small``: the source at the internal size, area-resized here when not given)."""
        flow, copied = sample_source(source_image, coarse_flow, output_size, prior)
        visibility = F.interpolate(torch.sigmoid(visibility_logits), size=output_size, mode="bilinear",
                                   align_corners=True)
        painted = F.interpolate(generated, size=output_size, mode="bilinear", align_corners=True)
        composite = visibility * copied + (1.0 - visibility) * painted
        if stand_in is not None:
            absent, colour = (F.interpolate(x, size=output_size, mode="bilinear", align_corners=True)
                              for x in stand_in)
            composite = absent * colour + (1.0 - absent) * composite
            visibility = (1.0 - absent) * visibility
        image = self.refine(composite, visibility, painted).clamp(-1.0, 1.0)
        if people is not None:
            small = F.interpolate(source_image, size=tuple(people.shape[-2:]), mode="area") if small is None else small
            image, flow, visibility = still_composite(image, flow, visibility, source_image, small, people)
        return CorrespondenceOutput(image=image, flow=flow, visibility=visibility, invented=1.0 - visibility,
                                    generated=generated, coarse_flow=coarse_flow, visibility_logits=visibility_logits)


@dataclass(frozen=True)
class CorrespondenceInputs:
    """The network inputs at the internal size, built from full-size labels and keypoints."""

    source_layout: Tensor  # (B, N, h, w) one-hot
    source_pose: Tensor  # (B, 18, h, w)
    target_layout: Tensor  # (B, N, h, w) one-hot: the given target labels, else the warped source layout
    target_pose: Tensor  # (B, 18, h, w)
    prior: PriorGrid  # at the internal size, with the grid at the full size


def prepare_inputs(config: CorrespondenceConfig, source_labels: Tensor, source_keypoints: np.ndarray,
                   target_keypoints: np.ndarray, target_labels: Tensor | None = None) -> CorrespondenceInputs:
    """Inputs for re-posing within one ``(H, W)`` frame: ``(B, H, W)`` labels, ``(B, 18, 2)`` y/x keypoints."""
    size, full = config.internal_size, (source_labels.shape[-2], source_labels.shape[-1])
    parts = get_label_set(config.label_set).num_parts
    source_layout = majority_layout(source_labels, parts, size)
    source_points = keypoints_to_size(source_keypoints, full, size)
    target_points = keypoints_to_size(target_keypoints, full, size)
    twins = config.twin_limbs
    prior = prior_grid(source_layout.argmax(dim=1), source_points, target_points, config.label_set, twins)
    full = prior_grid(source_labels, source_keypoints, target_keypoints, config.label_set, twins)
    prior = with_full_prior(prior, snap_prior(full, source_labels, full.labels if target_labels is None
                                              else target_labels, config, back_views(config, target_keypoints,
                                                                                     full.grid.shape[1])))
    turned = [turns_back(s, t, full.grid.shape[1]) for s, t in zip(np.asarray(source_keypoints, np.float64),
                                                                    np.asarray(target_keypoints, np.float64))]
    prior = replace(prior, turned=torch.tensor(turned, dtype=torch.float32, device=source_labels.device))
    target_layout = (to_one_hot(prior.labels, parts) if target_labels is None
                     else majority_layout(target_labels, parts, size))
    return CorrespondenceInputs(source_layout=source_layout, source_pose=keypoints_to_heatmaps(source_points, size),
                                target_layout=target_layout, target_pose=keypoints_to_heatmaps(target_points, size),
                                prior=prior)


def repose(model: CorrespondenceGenerator, source_image: Tensor, source_labels: Tensor, source_keypoints: np.ndarray,
           target_keypoints: np.ndarray, target_labels: Tensor | None = None) -> CorrespondenceOutput:
    """Re-pose ``(B, 3, H, W)`` [-1, 1] photos at their own size (any size; the networks run small)."""
    inputs = prepare_inputs(model.config, source_labels, source_keypoints, target_keypoints, target_labels)
    return model(source_image, inputs.source_layout, inputs.source_pose, inputs.target_layout, inputs.target_pose,
                 inputs.prior)


def correspondence_config(config: ModelConfig) -> CorrespondenceConfig:
    """The correspondence network of a ``model.appearance: correspondence`` generator (SAT/LGR at the
    bottleneck, level ``model.sat_level``; everything at ``model.internal_size``)."""
    return CorrespondenceConfig(label_set=config.label_set, internal_size=tuple(config.network_size),
                                base_channels=config.base_channels, max_channels=config.max_channels,
                                num_down=config.sat_level, sat_dim=config.sat_dim, lgr_dim=config.lgr_dim,
                                lgr_steps=config.lgr_steps)


def render_layouts(model: CorrespondenceGenerator, source_image: Tensor, source_layout: Tensor, source_pose: Tensor,
                   target_layout: Tensor, target_pose: Tensor, source_keypoints: Tensor | np.ndarray | None = None,
                   target_keypoints: Tensor | np.ndarray | None = None) -> CorrespondenceOutput:
    """The generator's call shape: ``(B, 3, H, W)`` image, ``(B, N, H, W)`` layouts (the target layout may be a
    straight-through one-hot: its gradient is kept), ``(B, 18, H, W)`` poses, all at the output size;
    keypoints ``(B, 18, 2)`` in that frame (default: the centroids of the pose heatmaps)."""
    source_points = keypoints_or_centroids(source_keypoints, source_pose)
    target_points = keypoints_or_centroids(target_keypoints, target_pose)
    inputs = prepare_inputs(model.config, source_layout.argmax(dim=1), source_points, target_points,
                            target_layout.argmax(dim=1))
    target = layout_at(target_layout, model.config.internal_size)
    return model(source_image, inputs.source_layout, inputs.source_pose, target, inputs.target_pose, inputs.prior)
