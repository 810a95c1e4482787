"""The CCP parser's network in 8-bit integers on ONNX Runtime (static quantization; see docs/parser.md).

The float32 graph of :mod:`recapture.pipelines.onnx_parser` spends ~90% of the parser's network time in the
convolutions of the frozen Inception stages. Quantized statically in ONNX's QDQ format - weights int8 per output
channel (symmetric), activations uint8 per tensor - ONNX Runtime runs them as integer convolutions (AVX2 / VNNI on
x86), about twice as fast on 2 cores.

Static quantization needs each activation's range, measured by running the network on real crops. That is done
once, offline, on CCP training photos (:mod:`recapture.training.parser_int8`), and the ranges travel in the parser
weights file's :data:`RANGES_KEY` metadata (JSON: ONNX Runtime's calibration cache, ~30 KB; the tensors are
unchanged). At first use the float32 export is prepared (shape inference, Conv + BatchNorm folding: ONNX Runtime's
``quant_pre_process``) and quantized with the stored ranges into the ONNX cache (~5 s; no photo is needed). The
ranges are keyed by structural tensor names (:func:`structural_names`: what computes each tensor, not what the
exporter called it). When they do not fit (a network changed by another exporter or optimiser) or the installed
ONNX Runtime cannot quantize from stored ranges (its ``quantize_static`` lacks ``calibration_cache_path``),
:class:`Int8Unavailable` says so and the parser runs in float32.
"""

from __future__ import annotations

import inspect
import json
import tempfile
from pathlib import Path

from recapture.fileio import atomic_path
from recapture.pipelines.onnx_photo import cached

#: The parser weights file's metadata key holding the activation ranges (ONNX Runtime's calibration cache JSON).
RANGES_KEY = "int8_ranges"


class Int8Unavailable(RuntimeError):
    """The parser cannot run in int8 here (one line saying why); float32 can."""


def quantization_settings() -> dict:
    """The ``quantize_static`` arguments (the calibration and the run-time quantization must use the same)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    return {"quant_format": QuantFormat.QDQ, "per_channel": True, "activation_type": QuantType.QUInt8,
            "weight_type": QuantType.QInt8, "op_types_to_quantize": ["Conv"],
            "calibrate_method": CalibrationMethod.MinMax}


def can_quantize_from_ranges() -> bool:
    """Whether the installed ONNX Runtime quantizes from stored ranges (``quantize_static(calibration_cache_path)``)."""
    try:
        from onnxruntime.quantization import quantize_static
    except ImportError:
        return False
    return "calibration_cache_path" in inspect.signature(quantize_static).parameters


#: x86 CPU flags (``/proc/cpuinfo``) of the VNNI instructions, with which ONNX Runtime's uint8 x int8 convolutions
#: cannot saturate; without them (AVX2's ``vpmaddubsw`` adds pairs of products in 16 bits) they can.
VNNI_FLAGS = ("avx512_vnni", "avx_vnni")


def has_vnni(cpuinfo: str) -> bool:
    """Whether a ``/proc/cpuinfo`` text names a VNNI flag (:data:`VNNI_FLAGS`) on its ``flags`` lines."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags" and set(value.split()) & set(VNNI_FLAGS):
            return True
    return False


def int8_safe_cpu() -> bool:
    """Whether this CPU runs the int8 network as it was measured: x86 with VNNI (read from ``/proc/cpuinfo``;
    False where it cannot be read), or a non-x86 CPU (ARM's integer dot products do not saturate). ``auto``
    precision runs float32 elsewhere (the int8 scores were measured on an AMD EPYC with AVX-512 VNNI only)."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return True
    try:
        return has_vnni(Path("/proc/cpuinfo").read_text())
    except OSError:
        return False


def require_quantizer() -> None:
    """:class:`Int8Unavailable` unless :func:`can_quantize_from_ranges`."""
    if not can_quantize_from_ranges():
        raise Int8Unavailable("this onnxruntime cannot quantize from stored ranges (quantize_static has no "
                              "calibration_cache_path)")


def prepare_parser_onnx(source: str | Path, out: str | Path) -> Path:
    """The float32 parser graph ``source`` made ready for quantization, to ``out`` (atomic): one opset entry per
    domain (joining the backbone and head graphs repeats them), shape inference and the Conv + BatchNorm folding
    of ONNX Runtime's ``quant_pre_process``, then every tensor named by what computes it
    (:func:`structural_names`), so that the stored ranges find their tensors in any export of the same network."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(str(source))
    versions = {entry.domain: entry.version for entry in model.opset_import}
    del model.opset_import[:]
    model.opset_import.extend(onnx.helper.make_opsetid(domain, version) for domain, version in versions.items())
    with tempfile.TemporaryDirectory() as folder, atomic_path(out) as tmp:
        single = Path(folder) / "single-opset.onnx"
        onnx.save(model, str(single))
        quant_pre_process(str(single), str(single), skip_symbolic_shape=True)
        prepared = onnx.load(str(single))
        rename_tensors(prepared, structural_names(prepared))
        onnx.save(prepared, str(tmp))
    return Path(out)


def structural_names(model) -> dict[str, str]:  # noqa: ANN001 - onnx.ModelProto
    """``{tensor name: structural name}`` for every tensor a node of ``model`` computes: a digest of the node's
    operator, attributes and inputs (graph inputs by name, initializers by content, other tensors by their own
    structural names) and the output's index. The exporter names tensors after the module scopes it happens to
    see (two exports of the parser differ: ``/1/AveragePool`` vs ``/1/tower_2/pool/AveragePool``); the digest
    depends on the computation only. Int8Unavailable when two tensors would get one name."""
    import hashlib

    import onnx
    from onnx import numpy_helper

    def content(tensor) -> str:  # noqa: ANN001 - onnx.TensorProto: its values and shape, not its name
        return hashlib.sha1(numpy_helper.to_array(tensor).tobytes() + str(list(tensor.dims)).encode()).hexdigest()

    def attribute(item) -> str:  # noqa: ANN001 - onnx.AttributeProto
        if item.type == onnx.AttributeProto.TENSOR:
            return f"{item.name}=tensor:{content(item.t)}"
        return " ".join(str(item).split())

    known = {tensor.name: f"init:{content(tensor)}" for tensor in model.graph.initializer}
    known.update({value.name: f"input:{value.name}" for value in model.graph.input if value.name not in known})
    names: dict[str, str] = {}
    taken: set[str] = set()
    for node in model.graph.node:  # topologically sorted (ONNX requires it)
        text = "|".join([node.domain, node.op_type, *(attribute(item) for item in node.attribute),
                         *(known.get(name, f"missing:{name}") for name in node.input)])
        for index, output in enumerate(node.output):
            if output:
                digest = "t" + hashlib.sha1(f"{text}|{index}".encode()).hexdigest()[:20]
                if digest in taken:
                    raise Int8Unavailable(f"two tensors of the parser graph compute the same value ({output})")
                taken.add(digest)
                names[output], known[output] = digest, digest
    return names


def rename_tensors(model, names: dict[str, str]) -> None:  # noqa: ANN001 - onnx.ModelProto
    """Rename the computed tensors of ``model`` in place (node inputs and outputs, shape information); the graph's
    outputs keep their names."""
    names = {old: new for old, new in names.items() if old not in {value.name for value in model.graph.output}}
    for node in model.graph.node:
        node.input[:] = [names.get(name, name) for name in node.input]
        node.output[:] = [names.get(name, name) for name in node.output]
    for value in model.graph.value_info:
        value.name = names.get(value.name, value.name)


def quantize_parser_onnx(prepared: str | Path, ranges: str, out: str | Path) -> Path:
    """The prepared parser graph quantized with the stored ``ranges`` (calibration cache JSON) to ``out``
    (atomic); :class:`Int8Unavailable` when this ONNX Runtime cannot or the ranges do not fit the graph."""
    require_quantizer()
    from onnxruntime.quantization import quantize_static

    try:
        json.loads(ranges)
    except json.JSONDecodeError as err:
        raise Int8Unavailable(f"bad {RANGES_KEY} metadata ({err})") from None
    with tempfile.TemporaryDirectory() as folder, atomic_path(out) as tmp:
        cache_file = Path(folder) / "ranges.json"
        cache_file.write_text(ranges)
        try:
            quantize_static(str(prepared), str(tmp), None, calibration_cache_path=str(cache_file),
                            **quantization_settings())
        except (ValueError, KeyError, TypeError) as err:
            raise Int8Unavailable(f"the stored ranges do not fit this parser graph ({str(err).splitlines()[0]})") from None
    return Path(out)


def cached_parser_int8(weights: str | Path = "parser-ccp") -> Path:
    """The cached int8 ONNX file of a parser whose weights file carries :data:`RANGES_KEY` (quantized when
    absent); :class:`Int8Unavailable` for a file without ranges or where they cannot be used."""
    import onnxruntime

    from recapture.hub import read_model_metadata
    from recapture.models.inception import WEIGHTS_SHA1
    from recapture.pipelines.onnx_parser import cached_parser_onnx, parser_weights

    path = parser_weights(weights)
    ranges = read_model_metadata(path).get(RANGES_KEY)
    if ranges is None:
        raise Int8Unavailable(f"{path} has no {RANGES_KEY} (calibrate it: python -m recapture.training.parser_int8)")
    require_quantizer()

    def build(out: Path) -> None:
        with tempfile.TemporaryDirectory() as folder:
            prepared = prepare_parser_onnx(cached_parser_onnx(path), Path(folder) / "prepared.onnx")
            quantize_parser_onnx(prepared, ranges, out)

    return cached(path, "parser-int8", build, extra=f"{WEIGHTS_SHA1}|onnxruntime {onnxruntime.__version__}")
