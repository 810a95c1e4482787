"""The CCP parser's int8 network (pipelines/parser_int8.py) and its calibration photos (training/parser_int8.py)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from recapture.body.parts import LIP20  # noqa: E402
from recapture.data.ccp import HELD_OUT_IDS, split_ids  # noqa: E402
from recapture.hub import bundled_models, bundled_path, read_model_file, read_model_metadata, write_model_file  # noqa: E402
from recapture.pipelines import parser_int8  # noqa: E402
from recapture.pipelines.onnx_parser import OnnxCcpParser  # noqa: E402
from recapture.pipelines.parser_int8 import RANGES_KEY, Int8Unavailable, cached_parser_int8  # noqa: E402
from recapture.training.parser_int8 import calibration_ids  # noqa: E402

from test_layout_prior import mannequin_keypoints, mannequin_layout  # noqa: E402


def test_calibration_photos_are_training_photos_only() -> None:
    ids = calibration_ids()
    training, validation = split_ids(100, 0)
    assert len(ids) == len(set(ids)) == 32 and set(ids) <= set(training)
    assert not set(ids) & set(validation) and not set(ids) & set(HELD_OUT_IDS)
    assert calibration_ids() == ids and calibration_ids(seed=1) != ids


def test_a_bad_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="precision must be one of auto, int8, float32"):
        OnnxCcpParser(precision="int4")


def _bundled_parser_file() -> Path:
    if "parser-ccp" not in bundled_models("parser"):
        pytest.skip("no bundled parser-ccp")
    return bundled_path("parser-ccp")


def _bundled_ranges_or_skip() -> None:
    if RANGES_KEY not in read_model_metadata(_bundled_parser_file()):
        pytest.skip("the bundled parser has no int8 ranges")


def _copy_with_metadata(tmp_path: Path, name: str, change) -> Path:  # noqa: ANN001 - a metadata -> metadata callable
    tensors, metadata = read_model_file(_bundled_parser_file())
    metadata = change({key: value for key, value in metadata.items() if key != "tensors_sha256"})
    return write_model_file(tensors, tmp_path / name, metadata)


def test_a_file_without_ranges_or_a_runtime_without_the_quantizer_is_int8_unavailable(tmp_path: Path,
                                                                                      monkeypatch) -> None:  # noqa: ANN001
    plain = _copy_with_metadata(tmp_path, "plain.safetensors",
                                lambda metadata: {k: v for k, v in metadata.items() if k != RANGES_KEY})
    with pytest.raises(Int8Unavailable, match=f"plain.safetensors has no {RANGES_KEY}"):
        cached_parser_int8(plain)
    _bundled_ranges_or_skip()
    monkeypatch.setattr(parser_int8, "can_quantize_from_ranges", lambda: False)
    with pytest.raises(Int8Unavailable, match="cannot quantize from stored ranges"):
        cached_parser_int8("parser-ccp")


def _inception_or_skip() -> None:
    from recapture.models.inception import InceptionUnavailable, weights_path

    try:
        weights_path()
    except InceptionUnavailable as err:
        pytest.skip(str(err))


def test_ranges_that_do_not_fit_the_graph_fall_back_to_float32(tmp_path: Path) -> None:
    """Ranges of a graph whose tensors are named otherwise: int8 asked for is refused in one line; auto warns
    and runs the float32 network."""
    _inception_or_skip()
    _bundled_ranges_or_skip()

    def renamed(metadata: dict[str, str]) -> dict[str, str]:
        cache = json.loads(metadata[RANGES_KEY])
        cache["data"] = {f"other{name}": value for name, value in cache["data"].items()}
        return {**metadata, RANGES_KEY: json.dumps(cache)}

    path = _copy_with_metadata(tmp_path, "renamed.safetensors", renamed)
    with pytest.raises(Int8Unavailable, match="do not fit this parser graph"):
        OnnxCcpParser(path, precision="int8")
    with pytest.warns(UserWarning, match="running it in float32"):
        runtime = OnnxCcpParser(path)
    assert runtime.precision == "float32"


def test_the_int8_network_agrees_with_float32() -> None:
    """The bundled parser in int8 and in float32 on a mannequin: integer convolutions in the graph, (nearly) the
    same labels and probabilities, no NaN."""
    import onnx

    _inception_or_skip()
    _bundled_ranges_or_skip()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto must find int8 without falling back where it was measured
        automatic = OnnxCcpParser("parser-ccp")
    assert automatic.precision == ("int8" if parser_int8.int8_safe_cpu() else "float32")
    quantized = OnnxCcpParser("parser-ccp", precision="int8")
    assert quantized.precision == "int8"
    graph = onnx.load(str(quantized.onnx_path)).graph
    assert sum(node.op_type == "QuantizeLinear" for node in graph.node) >= 78  # every convolution's input
    reference = OnnxCcpParser("parser-ccp", precision="float32")
    assert reference.precision == "float32" and reference.onnx_path != quantized.onnx_path
    keypoints = mannequin_keypoints(6.0)
    labels = mannequin_layout(keypoints, (400, 280), 6.0)
    image = np.random.default_rng(0).integers(0, 255, (LIP20.num_parts, 3)).astype(np.uint8)[labels]
    mask = (labels > 0).astype(np.float32)
    if not parser_int8.int8_safe_cpu():
        pytest.skip("x86 without VNNI: auto runs float32 here; the thresholds below were measured with VNNI")
    expected, got = (p.probabilities(image, keypoints, mask) for p in (reference, quantized))
    # Calibrated ranges: mean difference 0.0014, 93% of the body's labels equal on this random-coloured (unreal)
    # person; the same ranges scaled by 3 (coarser steps): 0.0026 and 82%; by 0.3 (clipped): 0.013 and 24%.
    assert np.isfinite(got).all() and np.abs(got - expected).mean() < 0.002
    body = mask > 0
    assert (got.argmax(axis=0)[body] == expected.argmax(axis=0)[body]).mean() > 0.9


def test_vnni_is_read_from_the_flags_lines_only() -> None:
    from recapture.pipelines.parser_int8 import has_vnni

    assert has_vnni("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\nbugs\t\t: spectre\n")
    assert has_vnni("flags : avx2 avx_vnni\n")
    assert not has_vnni("processor\t: 0\nflags\t\t: fpu sse avx2 fma\nmodel name\t: avx512_vnni-like CPU\n")
    assert not has_vnni("")


@pytest.mark.parametrize("missing", ["int8_safe_cpu", "can_quantize_from_ranges"])
def test_auto_runs_float32_quietly_where_int8_was_not_measured_or_cannot_be_made(missing: str,
                                                                               monkeypatch) -> None:  # noqa: ANN001
    """On x86 without VNNI (uint8 x int8 products may saturate) or with an ONNX Runtime that cannot quantize from
    stored ranges, auto is float32 without a warning; int8 asked for by name runs on such a CPU."""
    _inception_or_skip()
    _bundled_ranges_or_skip()
    monkeypatch.setattr(parser_int8, missing, lambda: False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert OnnxCcpParser("parser-ccp").precision == "float32"
    if missing == "int8_safe_cpu":
        assert OnnxCcpParser("parser-ccp", precision="int8").precision == "int8"
    else:
        with pytest.raises(Int8Unavailable, match="cannot quantize from stored ranges"):
            OnnxCcpParser("parser-ccp", precision="int8")


def test_calibration_refuses_an_existing_output_and_a_bad_folder(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """One-line errors before any work: an existing --out is never overwritten; a folder that is not CCP."""
    from recapture.training.parser_int8 import main

    existing = tmp_path / "done.safetensors"
    existing.write_bytes(b"earlier")
    assert main(["--ccp", str(tmp_path), "--out", str(existing)]) == 1
    assert "exists: name a new file" in capsys.readouterr().err and existing.read_bytes() == b"earlier"
    assert main(["--ccp", str(tmp_path / "nowhere"), "--out", str(tmp_path / "new.safetensors")]) == 1
    assert "not a CCP folder" in capsys.readouterr().err and not (tmp_path / "new.safetensors").exists()
