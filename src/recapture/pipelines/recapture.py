"""The user-facing recapture API: one source portrait + a target pose (+ layout edits) -> new image.

Everything here works in the model frame (``config.image_size``). A source image of another size is
resized to it (bilinear; its keypoints scaled and its layout resized nearest). Photos of people in
the wild go through :mod:`recapture.pipelines.wild` first (crop, pose, parsing), which calls this.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image

from recapture.body.keypoints import keypoints_to_heatmaps, missing_mask, scale_keypoints
from recapture.body.parts import LabelSet, get_label_set
from recapture.config import ModelConfig
from recapture.lazy import LazyModule, no_grad

if TYPE_CHECKING:
    from recapture.hub import LoadedGenerator
    from recapture.models.generator import RecaptureGenerator

# Imported when a torch model runs: the ONNX Runtime photo path (onnx_photo.OnnxRecapturer) never loads torch.
torch = LazyModule("torch")
F = LazyModule("torch.nn.functional")


@dataclass(frozen=True)
class SourceInput:
    """A source portrait in the model frame."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    keypoints: np.ndarray  # (18, 2) float y/x, -1 missing
    layout: np.ndarray  # (H, W) uint8 labels of the model's label set


@dataclass(frozen=True)
class Result:
    """One recapture."""

    image: np.ndarray  # (H, W, 3) uint8 RGB: the generated portrait
    target_layout: np.ndarray  # (H, W) uint8: the layout the appearance network used (after edits)
    predicted_layout: np.ndarray  # (H, W) uint8: Ŝ_B as the geometric network predicted it
    target_keypoints: np.ndarray  # (18, 2) float y/x
    source: SourceInput


@dataclass(frozen=True)
class FullRender:
    """A person rendered at photo resolution by a copying appearance network (:meth:`Recapturer.repose_full`)."""

    image: np.ndarray  # (H', W', 3) uint8 RGB
    flow: np.ndarray  # (H', W', 2) float32 y/x: the source_full pixel each output pixel was copied from


#: How the target is made: the model (geometric + appearance networks) or the training-free keypoint
#: part-affine warp of the source (layout and pixels; the floor every model must beat).
METHODS = ("model", "warp")


def check_method(method: str) -> str:
    """``method`` if it is one of :data:`METHODS`; ValueError listing them otherwise."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return method


@dataclass(frozen=True)
class LayoutPrediction:
    """The geometric step of one recapture (model frame)."""

    predicted_layout: np.ndarray  # (H, W) uint8: Ŝ_B as the geometric network predicted it
    target_layout: np.ndarray  # (H, W) uint8: what the appearance network will use (after edits)
    target_keypoints: np.ndarray  # (18, 2) float y/x


@dataclass(frozen=True)
class Attention:
    """SAT attention of one target pixel over the source (paper Fig. 4)."""

    weights: np.ndarray  # (H, W) float32 over source pixels, upsampled to the image size, max 1
    overlay: np.ndarray  # (H, W, 3) uint8: the source image with the weights as a heat-map
    pixel: tuple[int, int]  # (y, x) target pixel in the image frame


def _to_rgb_array(image: np.ndarray | Image.Image | str | Path) -> np.ndarray:
    if isinstance(image, (str, Path)):
        from recapture.pipelines.wild import load_photo

        return load_photo(image)
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8 or 0 in array.shape:
        raise ValueError(f"source_image must be a non-empty (H, W, 3) uint8 RGB array, got {array.shape} {array.dtype}")
    return array


def _pad_to_aspect(image: np.ndarray, layout: np.ndarray, keypoints: np.ndarray,
                   size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pad image (border median colour), layout (0) and keypoints (shifted) to the aspect of ``size``,
    centred; unchanged when the aspect already matches to within half a pixel."""
    in_h, in_w = image.shape[:2]
    want_w = in_h * size[1] / size[0]
    pad_y = pad_x = 0
    if want_w > in_w + 0.5:
        pad_x = int(round(want_w)) - in_w
    elif in_w * size[0] / size[1] > in_h + 0.5:
        pad_y = int(round(in_w * size[0] / size[1])) - in_h
    if not pad_x and not pad_y:
        return image, layout, keypoints
    top, left = pad_y // 2, pad_x // 2
    ring = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    colour = np.median(ring, axis=0).round().astype(np.uint8)
    padded = np.empty((in_h + pad_y, in_w + pad_x, 3), np.uint8)
    padded[:] = colour
    padded[top:top + in_h, left:left + in_w] = image
    labels = np.zeros(padded.shape[:2], np.uint8)
    labels[top:top + in_h, left:left + in_w] = layout
    moved = np.where(missing_mask(keypoints)[:, None], -1.0, keypoints + (top, left))
    return padded, labels, moved


def heat_overlay(image: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Blend a [0, 1] ``(H, W)`` map over an RGB image as a blue-to-red heat-map."""
    import cv2

    heat = cv2.applyColorMap((np.clip(weights, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    alpha = 0.35 + 0.5 * np.clip(weights, 0, 1)[..., None]
    return (image * (1 - alpha) + heat * alpha).clip(0, 255).astype(np.uint8)


@dataclass(frozen=True)
class FullFrame:
    """The model frame at the size of a larger source of the same aspect (``Recapturer.repose_full``): size
    ``(H', W')`` and factor ``H' / H``; layouts are enlarged nearest, keypoints scaled about pixel centres."""

    size: tuple[int, int]
    factor: float

    @classmethod
    def of(cls, image_size: tuple[int, int], source_full: np.ndarray) -> FullFrame:
        """The frame of ``source_full`` ``(H', W', 3)``; ValueError when its aspect is not the model frame's."""
        height, width = image_size
        full_size = tuple(source_full.shape[:2])
        if abs(full_size[1] / full_size[0] - width / height) > 0.02:
            raise ValueError(f"source_full {full_size} does not have the model frame's aspect {height}x{width}")
        return cls(size=full_size, factor=full_size[0] / height)  # type: ignore[arg-type]

    def labels(self, values: np.ndarray) -> np.ndarray:
        """``(H, W)`` labels -> ``(H', W')`` uint8 (nearest)."""
        return cv2.resize(np.asarray(values).astype(np.uint8), self.size[::-1], interpolation=cv2.INTER_NEAREST)

    def check_labels(self, values: np.ndarray) -> np.ndarray:
        """``(H', W')`` labels already at this size as int64; ValueError naming the sizes otherwise."""
        values = np.asarray(values)
        if values.shape != tuple(self.size):
            raise ValueError(f"source_full_layout {values.shape} does not match source_full {tuple(self.size)}")
        return values.astype(np.int64)

    def points(self, points: np.ndarray) -> np.ndarray:
        """``(18, 2)`` model-frame y/x -> full-size y/x float64 (-1 stays missing)."""
        points = np.asarray(points, dtype=np.float64)
        return np.where(missing_mask(points)[:, None], -1.0, (points + 0.5) * self.factor - 0.5)


class Recapturer:
    """``Recapturer.from_pretrained("default")(source_image, target_pose, source_pose=..., source_layout=...)``."""

    def __init__(self, generator: RecaptureGenerator, config: ModelConfig, device: str | torch.device = "cpu",
                 loaded: LoadedGenerator | None = None) -> None:
        self.generator = generator.to(device).eval()
        self.config = config
        self.device = torch.device(device)
        self.label_set: LabelSet = get_label_set(config.label_set)
        self.image_size: tuple[int, int] = tuple(config.image_size)  # type: ignore[assignment]
        self.loaded = loaded

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path = "default", device: str | torch.device = "cpu") -> Recapturer:
        """Bundled weights by name (``default``: 256x176 output, for real photos; ``synthhumans``: 128x64,
        the demo's synthetic tour), an exported ``.safetensors`` file, or a training run directory."""
        from recapture.hub import load_generator

        loaded = load_generator(name_or_path, device)
        return cls(loaded.generator, loaded.config, device, loaded)

    # ------------------------------------------------------------ inputs
    def prepare_source(self, source_image: np.ndarray | Image.Image | str | Path,
                       source_pose: np.ndarray | None = None, source_layout: np.ndarray | None = None) -> SourceInput:
        """Bring a source portrait into the model frame; estimate its pose / parse it when not given.

        An image of another aspect ratio is padded (centred, with its border's median colour; layout
        background) to the model's aspect before resizing: never squashed. Without a pose or layout the
        photo goes through the real-photo stages (:func:`recapture.pipelines.photo.prepare_photo`).
        """
        image = _to_rgb_array(source_image)
        if source_pose is None or source_layout is None:
            from recapture.pipelines.photo import prepare_photo

            return prepare_photo(self, image).framed.source
        keypoints = np.asarray(source_pose, dtype=np.float64)
        if keypoints.shape != (18, 2):
            raise ValueError(f"source_pose must be (18, 2) y/x keypoints, got {keypoints.shape}")
        layout = np.asarray(source_layout)
        if layout.shape != image.shape[:2]:
            raise ValueError(f"source_layout must be {image.shape[:2]} like the image, got {layout.shape}")
        if layout.size and int(layout.max()) >= self.label_set.num_parts:
            raise ValueError(f"source_layout has label {int(layout.max())} >= {self.label_set.num_parts} parts "
                             f"of label set {self.label_set.name}")
        image, layout, keypoints = _pad_to_aspect(image, layout.astype(np.uint8), keypoints, self.image_size)
        height, width = self.image_size
        in_h, in_w = image.shape[:2]
        if (in_h, in_w) != (height, width):
            image = np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))
            layout = np.asarray(Image.fromarray(layout).resize((width, height), Image.NEAREST))
            keypoints = scale_keypoints(keypoints, height / in_h, width / in_w)
        return SourceInput(image=image, keypoints=keypoints, layout=layout.astype(np.uint8))

    def _to_label_set(self, lip20_layout: np.ndarray) -> np.ndarray:
        if self.label_set.name == "lip20":
            return lip20_layout
        from recapture.body.parts import merge_lip20

        return merge_lip20(lip20_layout, self.label_set.name)

    def framed(self, source: SourceInput, target_pose: np.ndarray) -> SourceInput:
        """``source`` re-framed to ``target_pose``'s scale when the camera zoomed in by more than the model's
        ``reframe_zoom`` (:mod:`recapture.models.reframe`, as the generator's forward does), else ``source``.
        :meth:`predict_layout` and :meth:`render` both apply it; :meth:`repose_full` does not (the photo path's
        framing rule keeps the person's scale, so the rule never fires there)."""
        zoom = getattr(self.config, "reframe_zoom", 0.0)
        if not zoom:
            return source
        from recapture.models.reframe import reframe_source, zoom_in

        if zoom_in(source.keypoints, target_pose, zoom) is None:
            return source
        image = torch.from_numpy(np.array(source.image)).permute(2, 0, 1).float()[None]
        layout = self.label_set.one_hot(torch.from_numpy(source.layout.astype(np.int64)))[None].float()
        out = reframe_source(image, layout, source.keypoints[None], np.asarray(target_pose)[None], zoom)
        return SourceInput(image=out.source_image[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy(),
                           keypoints=out.source_keypoints[0], layout=out.source_layout[0].argmax(0).numpy()
                           .astype(np.uint8))

    def _tensors(self, source: SourceInput, target_pose: np.ndarray) -> tuple[torch.Tensor, ...]:
        size = self.image_size
        image = torch.from_numpy(np.array(source.image)).permute(2, 0, 1).float().div(127.5).sub(1.0)
        layout = self.label_set.one_hot(torch.from_numpy(source.layout.astype(np.int64)))
        source_heat = keypoints_to_heatmaps(source.keypoints, size)
        target_heat = keypoints_to_heatmaps(target_pose, size)
        return tuple(t.unsqueeze(0).to(self.device) for t in (image, layout, source_heat, target_heat))

    def _check_target_layout(self, target_layout: np.ndarray) -> np.ndarray:
        labels = np.asarray(target_layout)
        if labels.shape != self.image_size:
            raise ValueError(f"target_layout must be {self.image_size} (the model frame), got {labels.shape}")
        if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= self.label_set.num_parts):
            raise ValueError(f"target_layout labels must lie in [0, {self.label_set.num_parts}) for label set "
                             f"{self.label_set.name}")
        return labels.astype(np.uint8)

    def _target_keypoints(self, target_pose: np.ndarray) -> np.ndarray:
        keypoints = np.asarray(target_pose, dtype=np.float64)
        if keypoints.shape != (18, 2):
            raise ValueError(f"target_pose must be (18, 2) y/x keypoints in the model frame, got {keypoints.shape}")
        if missing_mask(keypoints).all():
            raise ValueError("target_pose has no joint: all 18 keypoints are missing")
        return keypoints

    # ------------------------------------------------------------ outputs
    @no_grad
    def predict_layout(self, source: SourceInput, target_pose: np.ndarray, edits: object | None = None,
                       target_layout: np.ndarray | None = None, method: str = "model") -> LayoutPrediction:
        """Ŝ_B for ``source`` in ``target_pose`` ((18, 2) model frame) — the geometric network's
        (``method="model"``) or the training-free keypoint warp of the source layout (``"warp"``) — then
        ``target_layout`` (replacing it) and ``edits`` (a :class:`recapture.body.edits.LayoutEdits`)."""
        check_method(method)
        keypoints = self._target_keypoints(target_pose)
        source = self.framed(source, keypoints)
        _, layout, source_heat, target_heat = self._tensors(source, keypoints)
        if method == "warp":
            from recapture.body.keypoint_warp import warp_layout

            twins = self.copies_full_resolution and self.generator.appearance.config.twin_limbs
            logits = warp_layout(layout, source.keypoints[None], keypoints[None], self.label_set, twins).layout
        else:
            logits = self.generator.geometric(layout, source_heat, target_heat, source.keypoints[None],
                                              keypoints[None])
        predicted = logits.argmax(dim=1)[0].cpu().numpy().astype(np.uint8)
        used = predicted if target_layout is None else self._check_target_layout(target_layout)
        if edits is not None and not edits.is_empty():  # type: ignore[attr-defined]
            used = edits.apply(used, keypoints, self.label_set)  # type: ignore[attr-defined]
        return LayoutPrediction(predicted_layout=predicted, target_layout=used, target_keypoints=keypoints)

    @no_grad
    def warp(self, source: SourceInput, target_pose: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` uint8: the training-free keypoint warp of ``source`` into ``target_pose`` (no network;
        the floor every model must beat, :func:`recapture.body.keypoint_warp.warp_image`)."""
        from recapture.body.keypoint_warp import warp_image

        keypoints = self._target_keypoints(target_pose)
        image = torch.from_numpy(np.array(source.image)).permute(2, 0, 1).float()[None]
        layout = torch.from_numpy(source.layout.astype(np.int64))[None]
        moved = warp_image(image, layout, source.keypoints[None], keypoints[None], self.label_set)
        return moved[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()

    @property
    def has_geometric(self) -> bool:
        """Whether ``predict_layout(method="model")`` can run (a geometric network is at hand)."""
        return getattr(self.generator, "geometric", None) is not None

    @property
    def copies_full_resolution(self) -> bool:
        """Whether the appearance network copies pixels along a flow (``model.appearance: correspondence``),
        so :meth:`render_full` can take them from a larger image of the same view."""
        from recapture.models.correspondence import CorrespondenceGenerator

        return isinstance(getattr(self.generator, "appearance", None), CorrespondenceGenerator)

    def render_full(self, source: SourceInput, target_pose: np.ndarray, target_layout: np.ndarray,
                    source_full: np.ndarray) -> np.ndarray:
        """``(H', W', 3)`` uint8 at the size of ``source_full``: :meth:`repose_full`'s image."""
        return self.repose_full(source, target_pose, target_layout, source_full).image

    @no_grad
    def repose_full(self, source: SourceInput, target_pose: np.ndarray, target_layout: np.ndarray,
                    source_full: np.ndarray, source_full_layout: np.ndarray | None = None) -> FullRender:
        """The person at the size of ``source_full``, a larger ``(H', W', 3)`` uint8 image of exactly the model
        frame's view (same aspect): the networks run at their internal size, the pixels are sampled from
        ``source_full`` (the source's layout ``source_full_layout`` at that size when given, else the model
        frame's enlarged nearest; the target layout enlarged, keypoints scaled); also where each pixel was
        sampled. Needs :attr:`copies_full_resolution`."""
        from recapture.models.correspondence import repose
        from recapture.models.prior_grid import grid_to_pixel

        if not self.copies_full_resolution:
            raise ValueError("this model paints its pixels (model.appearance: generative): use render()")
        frame = FullFrame.of(self.image_size, source_full)
        keypoints = self._target_keypoints(target_pose)
        labels = self._check_target_layout(target_layout)

        def enlarge_labels(values: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(frame.labels(values).astype(np.int64))[None].to(self.device)

        image = torch.from_numpy(np.ascontiguousarray(source_full)).permute(2, 0, 1).float().div(127.5).sub(1.0)
        full_layout = (enlarge_labels(source.layout) if source_full_layout is None
                       else torch.from_numpy(frame.check_labels(source_full_layout))[None].to(self.device))
        output = repose(self.generator.appearance, image[None].to(self.device), full_layout,
                        frame.points(source.keypoints)[None], frame.points(keypoints)[None], enlarge_labels(labels))
        rgb = ((output.image[0].permute(1, 2, 0).float().cpu().numpy() + 1.0) * 127.5).round().clip(0, 255)
        flow = grid_to_pixel(output.flow[0].float().cpu(), frame.size).numpy().astype(np.float32)
        return FullRender(image=rgb.astype(np.uint8), flow=flow)

    @no_grad
    def render(self, source: SourceInput, target_pose: np.ndarray, target_layout: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` uint8: the appearance network's image of ``source`` in ``target_pose`` with
        ``target_layout`` (``(H, W)`` labels); the geometric network does not run."""
        keypoints = self._target_keypoints(target_pose)
        labels = self._check_target_layout(target_layout)
        source = self.framed(source, keypoints)
        image, layout, source_heat, target_heat = self._tensors(source, keypoints)
        used_hot = self.label_set.one_hot(torch.from_numpy(labels.astype(np.int64))).unsqueeze(0).to(self.device)
        output = self.generator.render(image, layout, source_heat, used_hot, target_heat,
                                       source_keypoints=source.keypoints[None], target_keypoints=keypoints[None])
        rgb = ((output[0].permute(1, 2, 0).float().cpu().numpy() + 1.0) * 127.5).round().clip(0, 255)
        return rgb.astype(np.uint8)

    def __call__(self, source_image: np.ndarray | Image.Image | str | Path, target_pose: np.ndarray, *,
                 source_pose: np.ndarray | None = None, source_layout: np.ndarray | None = None,
                 edits: object | None = None, target_layout: np.ndarray | None = None) -> Result:
        """Recapture the source in ``target_pose`` ((18, 2) y/x in the model frame): prepare_source,
        predict_layout (``edits`` and ``target_layout`` as there), render."""
        source = self.prepare_source(source_image, source_pose, source_layout)
        layouts = self.predict_layout(source, target_pose, edits, target_layout)
        image = self.render(source, layouts.target_keypoints, layouts.target_layout)
        return Result(image=image, target_layout=layouts.target_layout, predicted_layout=layouts.predicted_layout,
                      target_keypoints=layouts.target_keypoints, source=source)

    @no_grad
    def attention(self, result: Result, pixel: tuple[int, int]) -> Attention:
        """SAT attention of target pixel ``(y, x)`` (image frame) of a previous ``result``."""
        height, width = self.image_size
        if not (0 <= pixel[0] < height and 0 <= pixel[1] < width):
            raise ValueError(f"pixel {pixel} outside the {height}x{width} image")
        image, layout, source_heat, target_heat = self._tensors(result.source, result.target_keypoints)
        used_hot = self.label_set.one_hot(torch.from_numpy(result.target_layout.astype(np.int64))).unsqueeze(0)
        found = self.generator.sat_attention(image, layout, source_heat, target_heat, pixel,
                                             target_layout=used_hot.to(self.device))
        weights = found.weights[:1, None].float()
        weights = F.interpolate(weights, size=(height, width), mode="nearest")[0, 0].cpu().numpy()
        peak = float(weights.max())
        weights = weights / peak if peak > 0 else weights
        return Attention(weights=weights.astype(np.float32), overlay=heat_overlay(result.source.image, weights),
                         pixel=pixel)
