"""ONNX export of the generator and an ONNX Runtime backend with the torch generator's call signature.

One ``.onnx`` file holds both networks as one graph (opset 17, batch 1, the model's image size)::

    inputs   source_image (1, 3, H, W) in [-1, 1], source_layout (1, N, H, W) one-hot,
             source_pose (1, 18, H, W), target_pose (1, 18, H, W), target_layout (1, N, H, W) one-hot
             [with model.geometric_prior: warped_layout (1, N, H, W), unexplained (1, 1, H, W)]
    outputs  image (1, 3, H, W)            render(source_image, source_layout, source_pose,
                                                  target_layout, target_pose)
             layout_logits (1, N, H, W)    geometric(source_layout, source_pose, target_pose)

With ``model.geometric_prior`` the keypoint part warp (:func:`recapture.body.keypoint_warp.warp_layout`,
data-dependent NumPy) stays outside the graph: :class:`OnnxGenerator` computes it in torch and feeds its
``layout`` and ``unexplained`` maps; the graph holds the U-Net and the learned gains.

The two outputs share no node, so :class:`OnnxGenerator` cuts the graph into two ONNX Runtime sessions
(``onnx.utils.Extractor``): the geometric network runs alone, the caller edits its layout, then the
appearance network runs - the same flow as :class:`recapture.models.generator.RecaptureGenerator`.
The file's metadata carries ``model_config`` (YAML), so it is self-contained.

A ``model.appearance: correspondence`` model (the bundled ``default``) exports its appearance network only
(metadata kind ``recapture-correspondence-onnx``): the networks at the internal size and the full-resolution
step (flow upsampled to any output size, ``GridSample`` of the full-size source, visibility blend,
refinement; height and width dynamic), with the keypoint prior's grids, the pooled source and the layouts
as inputs. :mod:`recapture.pipelines.onnx_photo` runs it without torch; its geometric network is exported
alone (:func:`export_geometric_onnx`, run by :mod:`recapture.pipelines.onnx_geometric`).

SAT's fast path sorts pixels into data-dependent segments, which a static graph cannot hold; the export
switches SAT to its dense masked form (:attr:`recapture.models.sat.SemanticAttentiveTransfer.dense`,
same result, ``2 (HW)² (D + C)`` FLOPs at the SAT level: see docs/performance.md). Spectral norm is
folded before tracing (:func:`recapture.models.inference.prepare_for_inference`).
"""

from __future__ import annotations

import copy
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import Tensor, nn

from recapture.body.keypoints import NUM_KEYPOINTS
from recapture.config import ConfigError, ModelConfig, from_dict, to_dict
from recapture.fileio import atomic_path
from recapture.hub import LoadedGenerator, WeightsError, load_generator
from recapture.models.correspondence import CorrespondenceGenerator
from recapture.models.prior_grid import PriorGrid
from recapture.models.generator import GeneratorOutput, RecaptureGenerator
from recapture.models.inference import is_folded, prepare_for_inference
from recapture.models.layout_ops import check_shape, to_one_hot
from recapture.models.sat import SemanticAttentiveTransfer
from recapture.pipelines.onnx_photo import CORRESPONDENCE_INPUTS, CORRESPONDENCE_KIND, session
from recapture.pipelines.recapture import Recapturer

INPUTS = ("source_image", "source_layout", "source_pose", "target_pose", "target_layout")
PRIOR_INPUTS = ("warped_layout", "unexplained")
OUTPUTS = ("image", "layout_logits")
GEOMETRIC_INPUTS = ("source_layout", "source_pose", "target_pose")
OPSET = 17
KIND = "recapture-generator-onnx"


class _Graph(nn.Module):
    """What is traced: both networks side by side, the appearance network fed the given target layout
    and (prior models) the geometric network fed the given keypoint warp."""

    def __init__(self, generator: RecaptureGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, source_image: Tensor, source_layout: Tensor, source_pose: Tensor, target_pose: Tensor,
                target_layout: Tensor, *prior: Tensor) -> tuple[Tensor, Tensor]:
        image = self.generator.render(source_image, source_layout, source_pose, target_layout, target_pose)
        geometric = self.generator.geometric
        with given_warp(geometric, *prior) if prior else nullcontext():  # prior: the warp as two graph inputs
            return image, geometric(source_layout, source_pose, target_pose)


@contextmanager
def given_warp(geometric: nn.Module, warped_layout: Tensor, unexplained: Tensor) -> Iterator[None]:
    """Within the block ``geometric`` (a prior model's geometric network) takes ``warped_layout`` ``(B, N, H, W)``
    and ``unexplained`` ``(B, 1, H, W)`` as its keypoint warp instead of computing it."""
    from recapture.body.keypoint_warp import WarpedLayout

    validity = warped_layout.new_ones(warped_layout.shape[:2])  # not read by the network
    warped = WarpedLayout(layout=warped_layout, validity=validity, unexplained=unexplained)
    geometric.warp = lambda *args, **kwargs: warped  # type: ignore[method-assign]
    try:
        yield
    finally:
        geometric.__dict__.pop("warp", None)


@contextmanager
def dense_sat(module: nn.Module) -> Iterator[None]:
    """Within the block every SAT under ``module`` uses its dense, exportable form."""
    sats = [m for m in module.modules() if isinstance(m, SemanticAttentiveTransfer)]
    before = [m.dense for m in sats]
    for sat in sats:
        sat.dense = True
    try:
        yield
    finally:
        for sat, value in zip(sats, before):
            sat.dense = value


def graph_inputs(config: ModelConfig) -> tuple[str, ...]:
    """Input names of the exported graph of a model with ``config``."""
    return INPUTS + (PRIOR_INPUTS if config.geometric_prior else ())


def example_inputs(config: ModelConfig, seed: int = 0) -> tuple[Tensor, ...]:
    """A fixed, valid batch-1 input in :data:`INPUTS` order (random one-hot layouts, sparse poses)."""
    from recapture.body.parts import get_label_set
    from recapture.models.layout_ops import blob_labels

    generator = torch.Generator().manual_seed(seed)
    height, width = config.image_size
    parts = get_label_set(config.label_set).num_parts
    layouts = [to_one_hot(blob_labels(1, parts, (height, width), generator), parts) for _ in range(2)]
    poses = [(torch.rand(1, NUM_KEYPOINTS, height, width, generator=generator) > 0.99).float() for _ in range(2)]
    image = torch.rand(1, 3, height, width, generator=generator) * 2 - 1
    return image, layouts[0], poses[0], poses[1], layouts[1]


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote."""

    path: Path
    config: ModelConfig
    seconds: float


def export_onnx(model: str | Path | LoadedGenerator, out: str | Path) -> OnnxExport:
    """Write the generator of ``model`` (bundled name, ``.safetensors`` file, run directory or loaded) to
    ``out`` as ONNX, atomically, with its ``model_config`` in the metadata."""
    import onnx

    start = time.perf_counter()
    loaded = model if isinstance(model, LoadedGenerator) else load_generator(model)
    if not isinstance(loaded.generator, RecaptureGenerator):
        raise WeightsError(f"{loaded.source}: only a torch generator can be exported")
    generator = loaded.generator
    if not is_folded(generator):
        generator = prepare_for_inference(copy.deepcopy(generator))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    correspondence = loaded.config.appearance == "correspondence"
    with atomic_path(out) as tmp:
        with dense_sat(generator), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on shape checks that are constant here
            if correspondence:
                _trace_correspondence(generator.appearance, tmp)  # type: ignore[arg-type]
            else:
                inputs = example_inputs(loaded.config)
                if loaded.config.geometric_prior:
                    inputs += (inputs[4], torch.zeros_like(inputs[4][:, :1]))
                torch.onnx.export(_Graph(generator), inputs, tmp, dynamo=False,
                                  input_names=list(graph_inputs(loaded.config)), output_names=list(OUTPUTS),
                                  opset_version=OPSET)
        graph = onnx.load(tmp)
        info = {"kind": CORRESPONDENCE_KIND if correspondence else KIND,
                "model_config": yaml.safe_dump(to_dict(loaded.config), sort_keys=False),
                "source": loaded.source, "sat": "dense", **_prior_metadata(generator),
                **{k: v for k, v in loaded.metadata.items() if k in ("trained_on", "step", "tensors_sha256")}}
        onnx.helper.set_model_props(graph, info)
        onnx.save(graph, tmp)
    return OnnxExport(path=out, config=loaded.config, seconds=time.perf_counter() - start)


def _prior_metadata(generator: RecaptureGenerator) -> dict[str, str]:
    """What the NumPy side of a correspondence export must know about the keypoint prior (``twin_limbs``,
    ``snap_reach``, ``back_of_head``)."""
    appearance = generator.appearance
    if not isinstance(appearance, CorrespondenceGenerator):
        return {}
    return {"twin_limbs": "true" if appearance.config.twin_limbs else "false",
            "snap_reach": repr(float(appearance.config.snap_reach)),
            "back_of_head": "true" if appearance.config.back_of_head else "false"}


class _GeometricPass(nn.Module):
    """One pass of a prior model's geometric network over a given keypoint warp (:mod:`.onnx_geometric`)."""

    def __init__(self, geometric: nn.Module) -> None:
        super().__init__()
        self.geometric = geometric

    def forward(self, source_layout: Tensor, source_pose: Tensor, target_pose: Tensor, warped_layout: Tensor,
                unexplained: Tensor) -> Tensor:
        with given_warp(self.geometric, warped_layout, unexplained):
            return self.geometric._predict(source_layout, source_pose, target_pose, None, None)


def export_geometric_onnx(model: str | Path | LoadedGenerator, out: str | Path) -> OnnxExport:
    """Write the geometric network of a ``model.geometric_prior`` model to ``out`` as ONNX (one pass; inputs
    :data:`recapture.pipelines.onnx_geometric.GEOMETRIC_PASS_INPUTS`), atomically, with its ``model_config``."""
    import onnx

    from recapture.pipelines.onnx_geometric import GEOMETRIC_KIND, GEOMETRIC_PASS_INPUTS

    start = time.perf_counter()
    loaded = model if isinstance(model, LoadedGenerator) else load_generator(model)
    if not isinstance(loaded.generator, RecaptureGenerator) or not loaded.config.geometric_prior:
        raise WeightsError(f"{loaded.source}: only a geometric network over the keypoint prior can be exported alone")
    generator = loaded.generator if is_folded(loaded.generator) else prepare_for_inference(
        copy.deepcopy(loaded.generator))
    _, layout, source_pose, target_pose, warped = example_inputs(loaded.config)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inputs = (layout, source_pose, target_pose, warped, torch.zeros_like(warped[:, :1]))
            torch.onnx.export(_GeometricPass(generator.geometric.eval()), inputs, tmp, dynamo=False,
                              input_names=list(GEOMETRIC_PASS_INPUTS), output_names=["layout_logits"],
                              opset_version=OPSET)
        graph = onnx.load(tmp)
        onnx.helper.set_model_props(graph, {"kind": GEOMETRIC_KIND, "source": loaded.source,
                                            "model_config": yaml.safe_dump(to_dict(loaded.config), sort_keys=False)})
        onnx.save(graph, tmp)
    return OnnxExport(path=out, config=loaded.config, seconds=time.perf_counter() - start)


class _CorrespondenceGraph(nn.Module):
    """What is traced for ``model.appearance: correspondence``: the networks at the internal size and the
    full-resolution step (flow upsampling, bilinear sampling of the full-size source, visibility blend,
    refinement), the keypoint prior given as inputs (see :mod:`recapture.pipelines.onnx_photo`)."""

    def __init__(self, appearance: CorrespondenceGenerator) -> None:
        super().__init__()
        self.appearance = appearance

    def forward(self, source_image: Tensor, small: Tensor, source_layout: Tensor, source_pose: Tensor,
                target_layout: Tensor, target_pose: Tensor, grid: Tensor, covered: Tensor,
                full_grid: Tensor, turned: Tensor) -> tuple[Tensor, Tensor]:
        coarse_flow, logits, generated = self.appearance.predict(small, source_layout, source_pose, target_layout,
                                                                 target_pose, grid, covered)
        prior = PriorGrid(grid=grid, covered=covered, labels=grid[..., 0].long(), full=full_grid, turned=turned)
        size = (full_grid.shape[1], full_grid.shape[2])
        output = self.appearance.compose_with_rules(source_image, coarse_flow, logits, generated, size, prior,
                                                    source_layout, target_layout, small)
        return output.image, output.flow


def _trace_correspondence(appearance: CorrespondenceGenerator, path: Path) -> None:
    """Export :class:`_CorrespondenceGraph` to ``path``: static internal size, dynamic full size."""
    config = appearance.config
    generator = torch.Generator().manual_seed(0)
    height, width = config.internal_size
    parts = appearance.num_parts
    full = (2 * height + 6, 2 * width + 4)  # any size: the full-resolution axes are dynamic
    inputs = (torch.rand(1, 3, *full, generator=generator) * 2 - 1,
              torch.rand(1, 3, height, width, generator=generator),
              torch.zeros(1, parts, height, width), torch.zeros(1, NUM_KEYPOINTS, height, width),
              torch.zeros(1, parts, height, width), torch.zeros(1, NUM_KEYPOINTS, height, width),
              torch.rand(1, height, width, 2, generator=generator) * 2 - 1, torch.ones(1, 1, height, width),
              torch.rand(1, *full, 2, generator=generator) * 2 - 1, torch.ones(1))
    dynamic = {"source_image": {2: "height", 3: "width"}, "full_grid": {1: "height", 2: "width"},
               "image": {2: "height", 3: "width"}, "flow": {1: "height", 2: "width"}}
    torch.onnx.export(_CorrespondenceGraph(appearance), inputs, path, dynamo=False,
                      input_names=list(CORRESPONDENCE_INPUTS), output_names=["image", "flow"], opset_version=OPSET,
                      dynamic_axes=dynamic)


class _Session:
    """One ONNX Runtime session called with torch tensors, one batch item at a time (the graph is batch 1)."""

    def __init__(self, model: object, inputs: tuple[str, ...], output: str, threads: int) -> None:
        self.session = session(model.SerializeToString(), threads)  # type: ignore[attr-defined]
        self.inputs, self.output = inputs, output

    def __call__(self, *tensors: Tensor) -> Tensor:
        pieces = []
        for item in range(tensors[0].shape[0]):
            feeds = {name: t[item:item + 1].detach().float().cpu().contiguous().numpy()
                     for name, t in zip(self.inputs, tensors)}
            pieces.append(torch.from_numpy(self.session.run([self.output], feeds)[0]))
        return torch.cat(pieces)


class _Geometric:
    """``geometric(source_layout, source_pose, target_pose, source_keypoints=None, target_keypoints=None)``
    as :class:`recapture.models.geometric.GeometricGenerator` computes it (keypoint warp in torch)."""

    def __init__(self, session: _Session, config: ModelConfig) -> None:
        self.session, self.config = session, config

    def __call__(self, source_layout: Tensor, source_pose: Tensor, target_pose: Tensor,
                 source_keypoints: Tensor | np.ndarray | None = None,
                 target_keypoints: Tensor | np.ndarray | None = None) -> Tensor:
        if not self.config.geometric_prior:
            return self.session(source_layout, source_pose, target_pose)
        from recapture.models.geometric import keypoints_from_heatmaps
        from recapture.body.keypoint_warp import warp_layout

        source = keypoints_from_heatmaps(source_pose) if source_keypoints is None else source_keypoints
        target = keypoints_from_heatmaps(target_pose) if target_keypoints is None else target_keypoints
        warped = warp_layout(source_layout.detach().float(), source, target, self.config.label_set)
        return self.session(source_layout, source_pose, target_pose, warped.layout, warped.unexplained)


class OnnxGenerator(nn.Module):
    """ONNX Runtime stand-in for :class:`RecaptureGenerator` at inference (CPU): ``generator(...)`` and
    ``generator.geometric(...)`` take and return the same tensors. SAT attention maps need torch."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__()
        import onnx
        from google.protobuf.message import DecodeError
        from onnx.utils import Extractor

        path = Path(path)
        try:
            graph = onnx.load(str(path))
        except (OSError, ValueError, DecodeError) as err:
            raise WeightsError(f"not an ONNX model: {path} ({str(err).splitlines()[0] if str(err) else err})") from None
        self.metadata = {p.key: p.value for p in graph.metadata_props}
        if self.metadata.get("kind") == CORRESPONDENCE_KIND:
            raise WeightsError(f"{path}: a correspondence export holds the appearance network for the photo path "
                               "(recapture edit --backend onnxruntime); other uses need --backend torch")
        if self.metadata.get("kind") != KIND or "model_config" not in self.metadata:
            raise WeightsError(f"not a Recapture ONNX generator: {path} (export one with "
                               f"`recapture export MODEL --format onnx --out FILE.onnx`)")
        try:
            self.config = from_dict(ModelConfig, yaml.safe_load(self.metadata["model_config"]))
        except (ConfigError, yaml.YAMLError) as err:
            raise WeightsError(f"not a Recapture ONNX generator: {path} (bad model_config: {err})") from None
        threads = threads or torch.get_num_threads()
        cut = Extractor(graph)
        geometric_inputs = GEOMETRIC_INPUTS + (PRIOR_INPUTS if self.config.geometric_prior else ())
        self.geometric = _Geometric(_Session(cut.extract_model(list(geometric_inputs), ["layout_logits"]),
                                             geometric_inputs, "layout_logits", threads), self.config)
        self.appearance = _Session(cut.extract_model(list(INPUTS), ["image"]), INPUTS, "image", threads)
        from recapture.body.parts import get_label_set

        self.num_parts = get_label_set(self.config.label_set).num_parts
        self.source = str(path)

    def _layout(self, name: str, layout: Tensor, batch: int) -> Tensor:
        if not layout.dtype.is_floating_point:
            layout = to_one_hot(layout, self.num_parts)
        check_shape(name, layout, (batch, self.num_parts, *self.config.image_size), "a one-hot layout (B, parts, H, W)")
        return layout

    def forward(self, source_image: Tensor, source_layout: Tensor, source_pose: Tensor, target_pose: Tensor,
                target_layout: Tensor | None = None, *, source_keypoints: Tensor | np.ndarray | None = None,
                target_keypoints: Tensor | np.ndarray | None = None,
                layout_logits: Tensor | None = None) -> GeneratorOutput:
        """As :meth:`RecaptureGenerator.forward` (the predicted layout is used as a hard one-hot)."""
        batch = source_image.shape[0]
        check_shape("source_image", source_image, (batch, 3, *self.config.image_size), "an image (B, 3, H, W)")
        for name, pose in (("source_pose", source_pose), ("target_pose", target_pose)):
            check_shape(name, pose, (batch, NUM_KEYPOINTS, *self.config.image_size), "pose heatmaps (B, 18, H, W)")
        source_layout = self._layout("source_layout", source_layout, batch)
        if layout_logits is None:
            layout_logits = self.geometric(source_layout, source_pose, target_pose, source_keypoints,
                                           target_keypoints)
        used = (to_one_hot(layout_logits.argmax(dim=1), self.num_parts) if target_layout is None
                else self._layout("target_layout", target_layout, batch))
        image = self.render(source_image, source_layout, source_pose, used, target_pose)
        return GeneratorOutput(image=image, layout_logits=layout_logits, target_layout=used)

    def render(self, source_image: Tensor, source_layout: Tensor, source_pose: Tensor, target_layout: Tensor,
               target_pose: Tensor, *, source_keypoints: object = None, target_keypoints: object = None) -> Tensor:
        """The appearance network's image ``(B, 3, H, W)`` (as :meth:`RecaptureGenerator.render`; the
        exported appearance networks take poses as heatmaps, so keypoints are not used)."""
        return self.appearance(source_image, source_layout, source_pose, target_pose, target_layout)

    def sat_attention(self, *args: object, **kwargs: object) -> None:
        """Not available: the exported graph has no attention output."""
        raise ValueError("SAT attention maps need the torch backend (drop --backend onnxruntime)")


def load_onnx_generator(model: str | Path, threads: int | None = None) -> LoadedGenerator:
    """An :class:`OnnxGenerator` from an ``.onnx`` file, or from any model ``load_generator`` reads (exported
    to a temporary ONNX file first, which takes a few seconds)."""
    path = Path(model)
    if path.suffix == ".onnx":
        if not path.is_file():
            raise WeightsError(f"no ONNX model at {path}")
        generator = OnnxGenerator(path, threads)
    else:
        with tempfile.TemporaryDirectory(prefix="recapture-onnx-") as folder:
            generator = OnnxGenerator(export_onnx(model, Path(folder) / "generator.onnx").path, threads)
        generator.source = str(model)
    return LoadedGenerator(generator=generator, config=generator.config,  # type: ignore[arg-type]
                           source=generator.source, metadata=generator.metadata)


def onnx_recapturer(model: str | Path, threads: int | None = None) -> Recapturer:
    """A :class:`Recapturer` whose generator runs in ONNX Runtime (see :func:`load_onnx_generator`)."""
    loaded = load_onnx_generator(model, threads)
    return Recapturer(loaded.generator, loaded.config, "cpu", loaded)  # type: ignore[arg-type]
