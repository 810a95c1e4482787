"""Golden outputs of every bundled model: fixed inputs, stored statistics, a tolerance.

A weight file swapped or damaged by mistake changes these numbers. After retraining a bundled model on
purpose, refresh its file with ``RECAPTURE_UPDATE_GOLDEN=1 python -m pytest tests/test_bundled.py`` and
commit ``tests/golden/NAME.json`` with the weights.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from recapture.hub import REGISTRY, bundled_models

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("RECAPTURE_UPDATE_GOLDEN") == "1"
#: Tolerances: thumbnail pixels (0-255), layout label fractions, channel statistics (0-255), parser confidence.
THUMB_ATOL, FRACTION_ATOL, STAT_ATOL, CONFIDENCE_ATOL = 1.5, 0.005, 0.5, 0.01


def thumbnail(image: np.ndarray, cells: tuple[int, int] = (8, 4)) -> np.ndarray:
    """``(H, W, 3)`` uint8 -> ``(cells, 3)`` block means (H and W cropped to multiples of the cells)."""
    height, width = (image.shape[0] // cells[0]) * cells[0], (image.shape[1] // cells[1]) * cells[1]
    blocks = image[:height, :width].astype(np.float64).reshape(cells[0], height // cells[0], cells[1], width // cells[1], 3)
    return blocks.mean(axis=(1, 3))


def generator_statistics(name: str) -> dict[str, object]:
    """Re-pose a SynthHumans showcase person into the `walking` preset with bundled generator ``name``."""
    from recapture.app.inputs import demo_samples
    from recapture.pipelines.poses import fit_keypoints, preset_library
    from recapture.pipelines.recapture import Recapturer

    torch.manual_seed(0)
    recapturer = Recapturer.from_pretrained(name)
    source = demo_samples(recapturer.image_size, recapturer.label_set, count=1)[0].source
    preset = preset_library()["walking"]
    target = fit_keypoints(preset.keypoints, preset.frame, recapturer.image_size)
    result = recapturer(source.image, target, source_pose=source.keypoints, source_layout=source.layout)
    counts = np.bincount(result.predicted_layout.ravel(), minlength=recapturer.label_set.num_parts)
    return {
        "thumbnail": thumbnail(result.image).round(3).tolist(),
        "channel_mean": result.image.reshape(-1, 3).mean(axis=0).round(3).tolist(),
        "channel_std": result.image.reshape(-1, 3).std(axis=0).round(3).tolist(),
        "layout_fractions": (counts / counts.sum()).round(5).tolist(),
    }


def parser_statistics(name: str, parser: object = None) -> dict[str, object]:
    """Parse a SynthHumans showcase person (256x176, exact keypoints, its body as the person mask) with bundled
    parser ``name`` (in torch) or the given ``CcpParser``."""
    from recapture.app.inputs import demo_samples
    from recapture.body.parts import LIP20
    from recapture.pipelines.human_parsing import CcpParser

    source = demo_samples((256, 176), LIP20, count=1)[0].source
    parser = CcpParser(name) if parser is None else parser
    labels, confidence = parser.predict(source.image, source.keypoints, (source.layout > 0).astype(np.float32))
    counts = np.bincount(labels.ravel(), minlength=LIP20.num_parts)
    return {"layout_fractions": (counts / counts.sum()).round(5).tolist(),
            "confidence": np.nan_to_num(confidence, nan=-1.0).round(4).tolist()}


STATISTICS = {"generator": generator_statistics, "parser": parser_statistics}


def compare(found: dict[str, object], expected: dict[str, object]) -> None:
    tolerances = {"thumbnail": THUMB_ATOL, "channel_mean": STAT_ATOL, "channel_std": STAT_ATOL,
                  "layout_fractions": FRACTION_ATOL, "confidence": CONFIDENCE_ATOL}
    assert set(found) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(np.asarray(found[key]), np.asarray(value), atol=tolerances[key], rtol=0, err_msg=key)


@pytest.mark.parametrize("name", bundled_models())
def test_bundled_model_reproduces_its_golden_output(name: str) -> None:
    kind = REGISTRY[name].kind
    assert kind in STATISTICS, f"no golden-output recipe for bundled {kind} {name!r}"
    found = STATISTICS[kind](name)
    path = GOLDEN / f"{name}.json"
    if UPDATE:
        path.write_text(json.dumps(found, indent=None) + "\n")
    assert path.is_file(), f"{path} missing: run with RECAPTURE_UPDATE_GOLDEN=1 once and commit it"
    compare(found, json.loads(path.read_text()))


def test_bundled_parser_in_int8_reproduces_its_golden_output() -> None:
    """The bundled parser's int8 network on ONNX Runtime (the photo path's default) has its own golden output."""
    pytest.importorskip("onnxruntime")
    from recapture.pipelines.onnx_parser import OnnxCcpParser

    from recapture.pipelines.parser_int8 import int8_safe_cpu

    if "parser-ccp" not in bundled_models("parser"):
        pytest.skip("no bundled parser-ccp")
    if not int8_safe_cpu():
        pytest.skip("x86 without VNNI: the int8 convolutions may round otherwise than where the golden was made")
    parser = OnnxCcpParser("parser-ccp", precision="int8")
    found = parser_statistics("parser-ccp", parser)
    path = GOLDEN / "parser-ccp-int8.json"
    if UPDATE:
        path.write_text(json.dumps(found, indent=None) + "\n")
    assert path.is_file(), f"{path} missing: run with RECAPTURE_UPDATE_GOLDEN=1 once and commit it"
    compare(found, json.loads(path.read_text()))


def test_golden_comparison_notices_a_changed_output() -> None:
    expected = {"thumbnail": [[10.0, 20.0, 30.0]], "channel_mean": [1.0, 2.0, 3.0], "channel_std": [1.0, 1.0, 1.0],
                "layout_fractions": [0.5, 0.5]}
    compare(expected, expected)
    with pytest.raises(AssertionError):
        compare({**expected, "thumbnail": [[10.0, 20.0, 33.0]]}, expected)
    with pytest.raises(AssertionError):
        compare({**expected, "layout_fractions": [0.49, 0.51]}, expected)
