"""The photo path on ONNX Runtime without torch: ``recapture edit --backend onnxruntime``.

What runs where (the ``default`` model: ``model.appearance: correspondence``):

* MediaPipe: people, pose, person mask (as on the torch path);
* ONNX Runtime: the CCP parser (:mod:`recapture.pipelines.onnx_parser`) and the correspondence appearance
  network, whose graph also holds the full-resolution step (flow upsampling, bilinear ``GridSample`` of the
  full-size source, visibility blend, refinement) with dynamic height and width;
* ONNX Runtime: the geometric network when Ŝ_B comes from it (:mod:`recapture.pipelines.onnx_geometric`);
* NumPy/OpenCV: the keypoint prior (:mod:`recapture.body.prior_numpy`: layout warp, prior grids at the
  internal and the full size), area pooling, heatmaps, crops and the composite.

The ONNX files are made from the bundled (or given) weights on first use and kept in the cache
(:func:`onnx_cache_dir`), named by a digest of the weights file, the kind and :data:`ONNX_FORMAT`; a
run that finds them imports no torch. Making them imports torch once (a few seconds). The geometric network
(``--layout network``, and ``auto`` when the pose changes) runs from its own cached export
(:mod:`recapture.pipelines.onnx_geometric`); ``--method warp``, SAT attention maps and generative models keep the
torch backend (docs/performance.md).
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from recapture.body.part_maps import is_back_view, turns_back
from recapture.body.parts import get_label_set
from recapture.body.prior_numpy import (
    area_resize, disk_heatmaps, keypoints_to_size, majority_labels, one_hot, part_warp, prior_grid,
    snap_to_own_parts,
)
from recapture.config import ConfigError, ModelConfig, from_dict
from recapture.fileio import file_digest
from recapture.models.inference import BESIDE
from recapture.pipelines.recapture import FullFrame, FullRender, LayoutPrediction, Recapturer, SourceInput, check_method

#: Metadata ``kind`` of a correspondence export (its appearance network and full-resolution step).
CORRESPONDENCE_KIND = "recapture-correspondence-onnx"
CORRESPONDENCE_INPUTS = ("source_image", "small", "source_layout", "source_pose", "target_layout", "target_pose",
                         "grid", "covered", "full_grid", "turned")
#: Bumped when an export's graph changes: part of every cache file name, so stale files are not used.
ONNX_FORMAT = 13  # 4: still-background rule; 5: its identity grid in float32; 6: parser aligns as MatMuls;
#                   7: the vacated background filled (still_background.py); 8: still margin 1, no feather;
#                   9: ``twin_limbs`` in the metadata; 10: ``snap_reach`` in the metadata;
#                   11: ``back_of_head`` in the metadata; 12: stand-ins for parts the source lacks (stand_in.py);
#                   13: the ``turned`` input (the back-of-head fill, stand_in.back_of_head_fill)


class OnnxUnavailable(ValueError):
    """The ONNX path cannot run this request (one line, naming what to use instead)."""


def onnx_cache_dir() -> Path:
    """``$RECAPTURE_CACHE/onnx``, else ``$XDG_CACHE_HOME/recapture/onnx``, else ``~/.cache/recapture/onnx``."""
    root = os.environ.get("RECAPTURE_CACHE")
    if root:
        return Path(root) / "onnx"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "recapture" / "onnx"


@functools.lru_cache(maxsize=16)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    """A weights file's sha256, once per process for each (path, modification time, size): the generator's and
    the geometric network's ONNX files are both keyed on the generator's weights."""
    return file_digest(Path(path))


def cache_key(weights: Path, kind: str, extra: str = "") -> str:
    """Digest naming the ONNX file of ``weights`` (its bytes' sha256, the kind, :data:`ONNX_FORMAT`, ``extra``)."""
    stat = weights.stat()
    text = f"{_digest(str(weights.resolve()), stat.st_mtime_ns, stat.st_size)}|{kind}|{ONNX_FORMAT}|{extra}"
    return hashlib.sha256(text.encode()).hexdigest()


def cached(weights: Path, kind: str, export: Callable[[Path], object], extra: str = "") -> Path:
    """The cached ONNX file of ``weights``, made with ``export(path)`` (atomic) when absent."""
    path = onnx_cache_dir() / f"{kind}-{cache_key(weights, kind, extra)}.onnx"
    if not path.is_file():
        export(path)
    return path


def session(path: str | Path | bytes, threads: int = 1):  # noqa: ANN201 - onnxruntime.InferenceSession
    """A CPU ONNX Runtime session of an ONNX file (or its serialised bytes) with ``threads`` intra-op threads (the thread policy's count), one inter-op
    thread, sequential execution (our graphs are chains: parallel branches would only compete for the same
    cores), every graph optimisation (constant folding, Conv+BatchNorm+ReLU fusion, NCHWc layouts) and no
    spinning: idle intra-op threads otherwise spin-wait after each run and take the core from the NumPy work
    that follows (the warm photo's parse stage: 0.20-0.22 s with spinning, 0.16 s without, 2 threads)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    model = path if isinstance(path, bytes) else str(path)
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class OnnxCorrespondence:
    """The exported correspondence appearance network with its NumPy inputs (one pair at a time).

    With ``threads`` >= 2 the full-resolution prior grid (the largest input, ~45 ms of NumPy at 672x462) is
    computed on the side thread (:data:`BESIDE`) while the main thread makes the other inputs; with one thread
    everything runs in turn. The inputs are the same either way."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        self.path = Path(path)
        self.threads = threads
        self.session = session(self.path, threads)
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        if self.metadata.get("kind") != CORRESPONDENCE_KIND or "model_config" not in self.metadata:
            raise OnnxUnavailable(f"not a Recapture correspondence ONNX model: {self.path}")
        try:
            self.config: ModelConfig = from_dict(ModelConfig, yaml.safe_load(self.metadata["model_config"]))
        except (ConfigError, yaml.YAMLError) as err:
            raise OnnxUnavailable(f"{self.path}: bad model_config ({err})") from None
        self.internal_size: tuple[int, int] = tuple(self.config.network_size)  # type: ignore[assignment]
        self.num_parts = get_label_set(self.config.label_set).num_parts
        #: The keypoint prior draws limbs the source hides from their twins (``CorrespondenceConfig.twin_limbs``).
        self.twins = self.metadata.get("twin_limbs", "false") == "true"
        #: The full-size prior grid keeps samples on their own parts (``CorrespondenceConfig.snap_reach``).
        self.snap_reach = float(self.metadata.get("snap_reach", "0"))
        #: The back of a head seen from behind samples the source hair (``CorrespondenceConfig.back_of_head``).
        self.back_of_head = self.metadata.get("back_of_head", "false") == "true"
        #: The graph's input names (``turned`` is absent from a graph without the back-of-head fill).
        self.inputs = {item.name for item in self.session.get_inputs()}

    def feeds(self, source_image: np.ndarray, source_labels: np.ndarray, source_keypoints: np.ndarray,
              target_keypoints: np.ndarray, target_labels: np.ndarray, soft_target: bool = False
              ) -> dict[str, np.ndarray]:
        """The graph's inputs for an ``(H, W, 3)`` uint8 source, ``(H, W)`` labels and ``(18, 2)`` keypoints of one
        frame (``models.correspondence.prepare_inputs``; ``soft_target``: the target layout area-pooled, as
        ``render_layouts`` does, instead of its majority labels)."""
        size, full = self.internal_size, source_labels.shape
        label_set = self.config.label_set
        full_args = (source_labels, source_keypoints, target_keypoints, label_set, self.twins)
        pending = BESIDE.submit(prior_grid, *full_args) if self.threads > 1 else None
        image = np.ascontiguousarray(source_image.transpose(2, 0, 1), dtype=np.float32) / np.float32(127.5) - 1
        small_labels = majority_labels(source_labels, self.num_parts, size)
        source_points = keypoints_to_size(source_keypoints, full, size)
        target_points = keypoints_to_size(target_keypoints, full, size)
        prior = prior_grid(small_labels, source_points, target_points, label_set, self.twins)
        target = (area_resize(one_hot(target_labels, self.num_parts), size) if soft_target
                  else one_hot(majority_labels(target_labels, self.num_parts, size), self.num_parts))
        arrays = (image, area_resize(image, size), one_hot(small_labels, self.num_parts),
                  disk_heatmaps(source_points, size), target, disk_heatmaps(target_points, size), prior.grid,
                  prior.covered[None], snap_to_own_parts((pending.result() if pending else prior_grid(*full_args)).grid,
                                                         source_labels, target_labels, label_set, self.snap_reach,
                                                         self.back_of_head and is_back_view(target_keypoints, full[0])),
                  np.float32(turns_back(source_keypoints, target_keypoints, full[0])))
        return {name: np.ascontiguousarray(a[None], dtype=np.float32) for name, a in zip(CORRESPONDENCE_INPUTS, arrays)
                if name in self.inputs}

    def __call__(self, *args: np.ndarray, soft_target: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(image (H, W, 3) uint8, flow (H, W, 2) float32 source pixel y/x)`` for :meth:`feeds`' arguments."""
        image, flow = self.session.run(["image", "flow"], self.feeds(*args, soft_target=soft_target))
        rgb = ((image[0].transpose(1, 2, 0) + 1.0) * 127.5).round().clip(0, 255).astype(np.uint8)
        height, width = rgb.shape[:2]
        pixels = np.stack([(flow[0, ..., 1] + 1.0) * (max(height - 1, 1) / 2.0),
                           (flow[0, ..., 0] + 1.0) * (max(width - 1, 1) / 2.0)], axis=-1)
        return rgb, pixels.astype(np.float32)


class OnnxRecapturer(Recapturer):
    """A :class:`Recapturer` for the photo path whose networks run in ONNX Runtime: no torch. Ŝ_B is the NumPy
    keypoint prior or (``method="model"``) the geometric network (:class:`~recapture.pipelines.onnx_geometric.OnnxGeometric`,
    when the generator's weights are known). ``--method warp`` and attention maps raise :class:`OnnxUnavailable`
    (they need the torch backend)."""

    def __init__(self, appearance: OnnxCorrespondence, source: str = "", weights: Path | None = None) -> None:
        # Recapturer.__init__ is not called: it would put a torch generator on a torch device.
        self.appearance = appearance
        #: The generator weights whose geometric network runs on ONNX Runtime when Ŝ_B asks for it (made from them
        #: and cached on first use: :mod:`recapture.pipelines.onnx_geometric`); None: an ONNX file was given.
        self.weights = weights
        self._geometric = None
        self.generator = None
        self.config = appearance.config
        self.device = "cpu"
        self.label_set = get_label_set(self.config.label_set)
        self.image_size = tuple(self.config.image_size)  # type: ignore[assignment]
        self.loaded = None
        self.source = source or str(appearance.path)

    @property
    def copies_full_resolution(self) -> bool:
        return True

    @property
    def has_geometric(self) -> bool:
        return self.weights is not None and self.config.geometric_prior

    @property
    def geometric(self):  # noqa: ANN201 - OnnxGeometric
        """The geometric network's ONNX runner (exported and cached on first use)."""
        if not self.has_geometric:
            raise OnnxUnavailable("no geometric network over the keypoint prior at hand (an ONNX file "
                                  "holds none: give the model's .safetensors or bundled name); use --layout prior "
                                  "or --backend torch")
        if self._geometric is None:
            from recapture.pipelines.onnx_geometric import OnnxGeometric, cached_geometric_onnx

            self._geometric = OnnxGeometric(cached_geometric_onnx(self.weights), self.appearance.threads)
        return self._geometric

    def predict_layout(self, source: SourceInput, target_pose: np.ndarray, edits: object | None = None,
                       target_layout: np.ndarray | None = None, method: str = "model") -> LayoutPrediction:
        """Ŝ_B: the keypoint prior's warp of the source layout (``method`` "warp") or the geometric network's."""
        check_method(method)
        keypoints = self._target_keypoints(target_pose)
        if method == "warp":
            predicted = part_warp(source.layout, source.keypoints, keypoints, self.label_set,
                                  self.appearance.twins).labels.astype(np.uint8)
        else:
            predicted = self.geometric.labels(source.layout, source.keypoints, keypoints)
        used = predicted if target_layout is None else self._check_target_layout(target_layout)
        if edits is not None and not edits.is_empty():  # type: ignore[attr-defined]
            used = edits.apply(used, keypoints, self.label_set)  # type: ignore[attr-defined]
        return LayoutPrediction(predicted_layout=predicted, target_layout=used, target_keypoints=keypoints)

    def warp(self, source: SourceInput, target_pose: np.ndarray) -> np.ndarray:
        raise OnnxUnavailable("--method warp runs on the torch backend only; use --backend torch")

    def attention(self, *args: object, **kwargs: object) -> None:
        raise OnnxUnavailable("SAT attention maps need the torch backend (drop --backend onnxruntime)")

    def render(self, source: SourceInput, target_pose: np.ndarray, target_layout: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` uint8 in the model frame (as :meth:`Recapturer.render`)."""
        keypoints = self._target_keypoints(target_pose)
        labels = self._check_target_layout(target_layout)
        return self.appearance(source.image, source.layout, source.keypoints, keypoints, labels, soft_target=True)[0]

    def repose_full(self, source: SourceInput, target_pose: np.ndarray, target_layout: np.ndarray,
                    source_full: np.ndarray, source_full_layout: np.ndarray | None = None) -> FullRender:
        """The person at the size of ``source_full`` (as :meth:`Recapturer.repose_full`)."""
        frame = FullFrame.of(self.image_size, source_full)
        keypoints = self._target_keypoints(target_pose)
        labels = self._check_target_layout(target_layout)
        full_layout = (frame.labels(source.layout) if source_full_layout is None
                       else frame.check_labels(source_full_layout))
        image, flow = self.appearance(np.ascontiguousarray(source_full), full_layout,
                                      frame.points(source.keypoints), frame.points(keypoints),
                                      frame.labels(labels))
        return FullRender(image=image, flow=flow)


def generator_weights(model: str | Path) -> Path:
    """The weights file of a bundled name or a ``.safetensors`` path."""
    from recapture.hub import REGISTRY, WeightsError, bundled_path

    path = Path(model)
    if not path.exists() and str(model) in REGISTRY:
        return bundled_path(str(model))
    if path.is_file():
        return path
    raise WeightsError(f"--backend onnxruntime takes a bundled name, a .safetensors file or an exported .onnx file, "
                       f"got {model!r}")


def onnx_recapturer(model: str | Path = "default", threads: int = 1) -> Recapturer:
    """The ONNX Runtime recapturer of ``model``: torch-free (:class:`OnnxRecapturer`) for a correspondence
    model, from its cached export (made on first use); a generative model goes through
    :func:`recapture.pipelines.onnx_backend.onnx_recapturer` (torch in the loop)."""
    path = Path(model)
    if path.suffix != ".onnx":
        if not _is_correspondence(generator_weights(model)):
            from recapture.pipelines.onnx_backend import onnx_recapturer as torch_side

            return torch_side(model, threads)
        return OnnxRecapturer(OnnxCorrespondence(cached_photo_onnx(model), threads), str(model),
                              generator_weights(model))
    if _onnx_kind(path) != CORRESPONDENCE_KIND:
        from recapture.pipelines.onnx_backend import onnx_recapturer as torch_side

        return torch_side(model, threads)
    return OnnxRecapturer(OnnxCorrespondence(path, threads), str(model))


def cached_generator_onnx(model: str | Path = "default") -> Path:
    """The cached ONNX export of a generator (bundled name or ``.safetensors``), made when absent."""
    weights = generator_weights(model)

    def export(out: Path) -> None:
        from recapture.pipelines.onnx_backend import export_onnx

        export_onnx(weights, out)

    return cached(weights, "generator", export)


def cached_photo_onnx(model: str | Path = "default") -> Path:
    """:func:`cached_generator_onnx`, and for a correspondence model over the keypoint prior also its geometric
    network's export (:func:`recapture.pipelines.onnx_geometric.cached_geometric_onnx`): every file the photo path
    may read, made now so that later runs find them cached."""
    path = cached_generator_onnx(model)
    section = _model_section(generator_weights(model))
    if section.get("appearance") == "correspondence" and section.get("geometric_prior"):
        from recapture.pipelines.onnx_geometric import cached_geometric_onnx

        cached_geometric_onnx(model)
    return path


def torch_free_problem(model: str | Path) -> str:
    """"" when ``model`` can run on the torch-free photo path: an ``.onnx`` file (opened by ONNX Runtime) or a
    bundled name or ``.safetensors`` file of a correspondence model; else why not, in one line (``recapture
    edit``'s default backend then takes torch)."""
    if Path(model).suffix == ".onnx":
        return ""
    try:
        if _is_correspondence(generator_weights(model)):
            return ""
    except Exception as err:  # noqa: BLE001 - a file that is no model at all: torch's loader says why
        return f"{model} is not a bundled name or a readable .safetensors model ({type(err).__name__})"
    return f"{model} is not a correspondence model (only those run without torch)"


def _model_section(weights: Path) -> dict:
    """The ``model`` section of a generator file's ``model_config`` (header only)."""
    import json
    import struct

    with open(weights, "rb") as handle:
        length = struct.unpack("<Q", handle.read(8))[0]
        header = json.loads(handle.read(length))
    config = yaml.safe_load(header.get("__metadata__", {}).get("model_config", "") or "{}") or {}
    return config.get("model", config) or {}


def _is_correspondence(weights: Path) -> bool:
    """Whether a generator file's ``model_config`` says ``appearance: correspondence``."""
    return _model_section(weights).get("appearance") == "correspondence"


def _onnx_kind(path: Path) -> str | None:
    return session(path).get_modelmeta().custom_metadata_map.get("kind")
