"""The full generator: geometric network (target layout) followed by the appearance network (image).

Which target layout the appearance network sees:

* ``target_layout`` given (a user edit at inference, or the ground truth for teacher forcing): that
  layout, as is.
* otherwise the prediction ``Ŝ_B`` as a *straight-through one-hot*: the value is the one-hot of
  ``argmax(logits)`` (so SAT/LGR get hard part masks, exactly like an edited layout), the gradient is
  that of ``softmax(logits)``, so the image losses also reach the geometric network through the
  layout encoder and LGR's part pooling. SAT's masks are integer labels and carry no gradient.

The cross-entropy and D1 adversarial terms train the geometric network through ``layout_logits``
directly (see :mod:`recapture.models.losses`).

Sizes: tensors in and out are at ``model.image_size`` (the output size); with a smaller
``model.internal_size`` the appearance network sees its inputs area-pooled to that size and its image
is upsampled back (bilinear). Ŝ_B is computed once per call; a caller that already has it (the
recapture pipeline, after showing it to the user) passes ``layout_logits`` and the geometric network
does not run again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import Tensor, nn

from recapture.body.keypoints import NUM_KEYPOINTS, keypoints_to_heatmaps
from recapture.config import ModelConfig
from recapture.models.appearance import AppearanceGenerator
from recapture.models.blocks import validate_model_config
from recapture.models.correspondence import CorrespondenceGenerator, correspondence_config, render_layouts
from recapture.models.geometric import GeometricGenerator, to_network_size, to_output_size
from recapture.models.layout_ops import check_shape, straight_through_one_hot, to_one_hot
from recapture.models.reframe import reframe_source


@dataclass(frozen=True)
class GeneratorOutput:
    """What :class:`RecaptureGenerator` produces."""

    image: Tensor  # (B, 3, H, W) in [-1, 1]
    layout_logits: Tensor  # (B, N, H, W) the geometric network's Ŝ_B logits
    target_layout: Tensor  # (B, N, H, W) the layout the appearance network used

    def predicted_labels(self) -> Tensor:
        """``(B, H, W)`` long: argmax of the predicted layout."""
        return self.layout_logits.argmax(dim=1)


@dataclass(frozen=True)
class SatAttention:
    """SAT attention of one target pixel (paper Fig. 4)."""

    weights: Tensor  # (B, h, w) over source pixels at the SAT level; sums to 1 over the pixel's part
    pixel: tuple[int, int]  # (y, x) of the target pixel at the SAT level
    level: int  # SAT level: the map is at 1 / 2**level of the network size (model.internal_size)


class RecaptureGenerator(nn.Module):
    """Geometric + appearance networks (paper Fig. 2)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        validate_model_config(config)
        self.config = config
        self.geometric = GeometricGenerator(config)
        self.appearance: AppearanceGenerator | CorrespondenceGenerator = (
            CorrespondenceGenerator(correspondence_config(config)) if config.appearance == "correspondence"
            else AppearanceGenerator(config))
        self.num_parts = self.geometric.num_parts

    def _inputs(self, source_image: Tensor, source_layout: Tensor, source_pose: Tensor, target_pose: Tensor,
                target_layout: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Validate shapes; integer ``(B, H, W)`` layouts become one-hot. Returns both layouts."""
        if source_image.dim() != 4 or source_image.shape[1] != 3:
            raise ValueError(f"source_image: expected (B, 3, H, W), got {tuple(source_image.shape)}")
        batch, _, height, width = source_image.shape
        factor = 2 ** self.config.num_down
        if self.config.internal_size is not None and (height, width) != self.config.output_size:
            raise ValueError(f"source_image: {height}x{width}, but this model takes {self.config.output_size} "
                             f"(model.image_size)")
        if self.config.internal_size is None and (height % factor or width % factor):
            raise ValueError(f"source_image: height and width {height}x{width} must be divisible by {factor} "
                             f"(2**model.num_down)")
        layouts = []
        for name, layout in (("source_layout", source_layout), ("target_layout", target_layout)):
            if layout is not None and not layout.dtype.is_floating_point:
                layout = to_one_hot(layout, self.num_parts)
            if layout is not None:
                check_shape(name, layout, (batch, self.num_parts, height, width), "a one-hot layout (B, parts, H, W)")
            layouts.append(layout)
        for name, pose in (("source_pose", source_pose), ("target_pose", target_pose)):
            check_shape(name, pose, (batch, NUM_KEYPOINTS, height, width), "pose heatmaps (B, 18, H, W)")
        return layouts[0], layouts[1]

    def forward(self, source_image: Tensor, source_layout: Tensor, source_pose: Tensor, target_pose: Tensor,
                target_layout: Tensor | None = None, *, source_keypoints: Tensor | np.ndarray | None = None,
                target_keypoints: Tensor | np.ndarray | None = None,
                layout_logits: Tensor | None = None) -> GeneratorOutput:
        """Recapture ``source_image`` in ``target_pose`` (and ``target_layout`` when given).

        ``source_keypoints``/``target_keypoints`` ``(B, 18, 2)`` feed the geometric prior;
        ``layout_logits`` ``(B, N, H, W)``: a Ŝ_B already computed for these inputs (not recomputed).
        """
        source_layout, target_layout = self._inputs(source_image, source_layout, source_pose, target_pose,
                                                    target_layout)
        if self.config.reframe_zoom and source_keypoints is not None and target_keypoints is not None:
            framed = reframe_source(source_image, source_layout, source_keypoints, target_keypoints,
                                    self.config.reframe_zoom)
            if bool(framed.zoomed.any()):
                source_image, source_layout = framed.source_image, framed.source_layout
                heat = keypoints_to_heatmaps(framed.source_keypoints, tuple(source_image.shape[-2:]))
                zoomed = framed.zoomed.to(source_pose.device)
                source_pose = source_pose.clone()
                source_pose[zoomed] = heat.to(source_pose)[zoomed]
                source_keypoints = framed.source_keypoints
        if layout_logits is None:
            layout_logits = self.geometric(source_layout, source_pose, target_pose, source_keypoints,
                                           target_keypoints)
        else:
            check_shape("layout_logits", layout_logits, tuple(source_layout.shape), "Ŝ_B logits (B, parts, H, W)")
        used = straight_through_one_hot(layout_logits) if target_layout is None else target_layout
        image = self.render(source_image, source_layout, source_pose, used, target_pose,
                            source_keypoints=source_keypoints, target_keypoints=target_keypoints)
        return GeneratorOutput(image=image, layout_logits=layout_logits, target_layout=used)

    def render(self, source_image: Tensor, source_layout: Tensor, source_pose: Tensor, target_layout: Tensor,
               target_pose: Tensor, *, source_keypoints: Tensor | np.ndarray | None = None,
               target_keypoints: Tensor | np.ndarray | None = None) -> Tensor:
        """The appearance network at ``model.internal_size``; ``(B, 3, H, W)`` at the input size.
        ``model.appearance: correspondence`` copies pixels from the full-size source along the keypoints'
        part warp (keypoints default to the pose heatmaps' centroids)."""
        if isinstance(self.appearance, CorrespondenceGenerator):
            return render_layouts(self.appearance, source_image, source_layout, source_pose, target_layout,
                                  target_pose, source_keypoints, target_keypoints).image
        size = tuple(self.config.internal_size or source_image.shape[-2:])
        inputs = [to_network_size(t, size) for t in (source_image, source_layout)]
        poses = [to_network_size(p, size, binary=True) for p in (source_pose, target_pose)]
        image = self.appearance(inputs[0], inputs[1], poses[0], to_network_size(target_layout, size), poses[1])
        return to_output_size(image, tuple(source_image.shape[-2:]))

    def sat_attention(self, source_image: Tensor, source_layout: Tensor, source_pose: Tensor, target_pose: Tensor,
                      pixel: tuple[int, int], target_layout: Tensor | None = None) -> SatAttention:
        """SAT weights over source pixels for the target pixel ``pixel = (y, x)`` in image coordinates."""
        source_layout, target_layout = self._inputs(source_image, source_layout, source_pose, target_pose,
                                                    target_layout)
        level = self.config.sat_level
        height, width = source_image.shape[-2:]
        if not (0 <= pixel[0] < height and 0 <= pixel[1] < width):
            raise ValueError(f"pixel {pixel} outside the {height}x{width} image")
        if target_layout is None:
            target_layout = straight_through_one_hot(self.geometric(source_layout, source_pose, target_pose))
        size = tuple(self.config.internal_size or (height, width))
        at_level = ((pixel[0] * size[0] // height) >> level, (pixel[1] * size[1] // width) >> level)
        weights = self.appearance.sat_attention(
            to_network_size(source_image, size), to_network_size(source_layout, size),
            to_network_size(source_pose, size, True), to_network_size(target_layout, size),
            to_network_size(target_pose, size, True), at_level)
        return SatAttention(weights=weights, pixel=at_level, level=level)
