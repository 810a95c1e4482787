"""The geometric network of the photo path on ONNX Runtime, without torch (``--layout network`` and ``auto``).

The exported graph (:func:`recapture.pipelines.onnx_backend.export_geometric_onnx`, metadata kind
:data:`GEOMETRIC_KIND`) is one pass of :class:`recapture.models.geometric.GeometricGenerator` at the model's image
size, its inputs :data:`GEOMETRIC_PASS_INPUTS`: the source layout (one-hot), both poses (disk heatmaps), the keypoint
warp of the source layout (one-hot) and its ``unexplained`` map. :class:`OnnxGeometric` computes those in NumPy
(:mod:`recapture.body.prior_numpy`, the plain warp: the network was trained on it) and the eval-mode clean-ups of
the torch module: the average with the mirrored pair (``model.layout_flip_average``: left/right parts and joints
swapped, log-probabilities averaged), the target's torso made person (``model.layout_torso_person``), the
person/background decision on ``model.layout_person_confidence`` beyond ``model.layout_confident_above`` and the
removal of parts smaller than ``model.layout_min_area`` pixels. Its
logits are the torch module's to float rounding (tests/test_layout_choice.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from recapture.body.keypoints import flip_keypoints
from recapture.body.part_maps import torso_mask
from recapture.body.parts import get_label_set
from recapture.body.prior_numpy import disk_heatmaps, one_hot, part_warp
from recapture.body.retarget import pose_distance
from recapture.config import ConfigError, ModelConfig, from_dict
from recapture.pipelines.onnx_photo import OnnxUnavailable, cached, generator_weights, session

#: Metadata ``kind`` of a geometric-network export.
GEOMETRIC_KIND = "recapture-geometric-onnx"
#: Inputs of the exported pass, in order.
GEOMETRIC_PASS_INPUTS = ("source_layout", "source_pose", "target_pose", "warped_layout", "unexplained")


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities over axis 0 of ``(N, H, W)`` logits."""
    shifted = logits - logits.max(axis=0, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=0, keepdims=True))


class OnnxGeometric:
    """``(source labels (H, W), source keypoints (18, 2), target keypoints (18, 2)) -> Ŝ_B logits (N, H, W)`` in the
    model frame, as the torch geometric network computes them in eval mode (module doc)."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        self.path = Path(path)
        self.session = session(self.path, threads)
        metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        if metadata.get("kind") != GEOMETRIC_KIND or "model_config" not in metadata:
            raise OnnxUnavailable(f"not a Recapture geometric-network ONNX model: {self.path}")
        try:
            self.config: ModelConfig = from_dict(ModelConfig, yaml.safe_load(metadata["model_config"]))
        except (ConfigError, yaml.YAMLError) as err:
            raise OnnxUnavailable(f"{self.path}: bad model_config ({err})") from None
        self.label_set = get_label_set(self.config.label_set)
        self.size: tuple[int, int] = tuple(self.config.image_size)  # type: ignore[assignment]
        #: Channel c of a mirrored layout is channel ``flip_parts[c]`` of the photo's (left/right parts swapped).
        self.flip_parts = np.asarray(self.label_set.flip_permutation)
        self.mirror_labels = np.argsort(self.flip_parts).astype(np.uint8)  # label l of the photo -> of its mirror

    def _pass(self, labels: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        warp = part_warp(labels, source, target, self.label_set)
        parts = self.label_set.num_parts
        arrays = (one_hot(labels, parts), disk_heatmaps(source, self.size), disk_heatmaps(target, self.size),
                  one_hot(warp.labels, parts), warp.unexplained[None])
        feeds = {name: np.ascontiguousarray(a[None], dtype=np.float32) for name, a in zip(GEOMETRIC_PASS_INPUTS, arrays)}
        return self.session.run(["layout_logits"], feeds)[0][0]

    def logits(self, labels: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        """``(N, H, W)`` float32 logits of Ŝ_B (log-probabilities when the flip averaging is on)."""
        labels = np.asarray(labels)
        if labels.shape != self.size:
            raise ValueError(f"source layout must be {self.size} (the model frame), got {labels.shape}")
        source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
        logits = self._pass(labels, source, target)
        if self.config.layout_flip_average:
            width = self.size[1]
            mirrored = self._pass(np.ascontiguousarray(self.mirror_labels[labels[:, ::-1]]),
                                  flip_keypoints(source, width), flip_keypoints(target, width))
            back = mirrored[self.flip_parts, :, ::-1]
            logits = np.logaddexp(log_softmax(logits), log_softmax(back)) - np.float32(np.log(2.0))
        if self.config.layout_torso_person:
            logits[0][torso_mask(target, self.size)] = -1e4
        confidence = self.config.layout_person_confidence
        if confidence > 0 and pose_distance(source, target) > self.config.layout_confident_above:
            background = np.exp(log_softmax(logits)[0]) >= 1.0 - confidence
            logits[0][~background] = -1e4
            logits[1:, background] = -1e4
        if self.config.layout_min_area > 0:
            area = np.bincount(logits.argmax(axis=0).ravel(), minlength=len(logits))
            small = (area > 0) & (area < self.config.layout_min_area)
            small[0] = False
            logits[small] = -1e4
        return logits.astype(np.float32, copy=False)

    def labels(self, labels: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        """``(H, W)`` uint8: the argmax of :meth:`logits`."""
        return self.logits(labels, source, target).argmax(axis=0).astype(np.uint8)


def cached_geometric_onnx(model: str | Path = "default") -> Path:
    """The cached ONNX export of a model's geometric network (bundled name or ``.safetensors``), made when absent."""
    weights = generator_weights(model)

    def export(out: Path) -> None:
        from recapture.pipelines.onnx_backend import export_geometric_onnx

        export_geometric_onnx(weights, out)

    return cached(weights, "geometric", export)
