"""Calibrate the CCP parser's int8 network (:mod:`recapture.pipelines.parser_int8`): its activation ranges measured
on CCP training photos, written into a copy of the parser weights file.

Each calibration photo goes through the real-photo path (``parse_photo``: segmentation, people, pose, the parser's
crop and its mirror) with the float32 ONNX parser, whose network inputs are recorded; ONNX Runtime's MinMax
calibration then runs the prepared graph on them. The photos are drawn (seeded) from the training part of the
parser's split (``split_ids(100, 0)[0]``): never its validation photos, never the held-out 0905-1004. The ranges go
into ``--out`` as the :data:`~recapture.pipelines.parser_int8.RANGES_KEY` metadata with the photos used
(``int8_calibration``); the tensors are copied unchanged (same ``tensors_sha256``). ``--out`` must be a new file.

    python -m recapture.training.parser_int8 --ccp ../shared/data/ccp --out runs/parser-ccp-int8.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from recapture.data.ccp import CcpDataset, CcpError, split_ids
from recapture.fileio import OutputPathError, check_output_file
from recapture.hub import WeightsError, read_model_file, write_model_file
from recapture.pipelines.human_parsing import PersonModels, parse_photo
from recapture.pipelines.onnx_parser import OnnxCcpParser, network_feeds, parser_weights
from recapture.pipelines.parser_int8 import RANGES_KEY, prepare_parser_onnx, quantization_settings

#: Calibration photos drawn from the parser's training part, and the draw's seed (chosen on validation:
#: docs/parser.md).
PHOTOS = 32
SEED = 0


def calibration_ids(count: int = PHOTOS, seed: int = SEED) -> tuple[int, ...]:
    """``count`` CCP ids drawn with ``seed`` from the parser's training part (sorted)."""
    training = np.array(split_ids(100, 0)[0])
    return tuple(sorted(int(i) for i in np.random.default_rng(seed).choice(training, count, replace=False)))


class _RecordingParser(OnnxCcpParser):
    """The float32 ONNX parser, keeping every batch of network inputs it runs."""

    def __init__(self, weights: str | Path) -> None:
        super().__init__(weights, precision="float32")
        self.recorded: list[dict[str, np.ndarray]] = []

    def _logits(self, views: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
        self.recorded.append(network_feeds(views))
        return super()._logits(views)


def network_inputs(weights: str | Path, dataset: CcpDataset) -> list[dict[str, np.ndarray]]:
    """The parser network's inputs (a crop and its mirror per batch) for each photo of ``dataset``."""
    recorder = _RecordingParser(weights)
    with PersonModels.open() as models:
        for photo_id in dataset.ids:
            parse_photo(dataset.photo(photo_id), parser=recorder, models=models)
    return recorder.recorded


def activation_ranges(weights: str | Path, inputs: list[dict[str, np.ndarray]]) -> str:
    """ONNX Runtime's MinMax calibration of the prepared parser graph on ``inputs``: the calibration cache JSON."""
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    from recapture.pipelines.onnx_parser import cached_parser_onnx

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.pending = iter(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.pending, None)

    with tempfile.TemporaryDirectory() as folder:
        prepared = prepare_parser_onnx(cached_parser_onnx(weights), Path(folder) / "prepared.onnx")
        cache = Path(folder) / "ranges.json"
        quantize_static(str(prepared), str(Path(folder) / "int8.onnx"), Reader(), calibration_cache_path=str(cache),
                        **quantization_settings())
        return json.dumps(json.loads(cache.read_text()), separators=(",", ":"))


def calibrate(weights: str | Path, ccp: Path, out: Path, count: int = PHOTOS, seed: int = SEED) -> Path:
    """Measure the ranges on ``count`` training photos and write ``weights`` with them to ``out`` (new file)."""
    if Path(out).exists():
        raise OutputPathError(f"--out {out} exists: name a new file (an earlier calibration is never overwritten)")
    check_output_file(out, "--out", inputs=[parser_weights(weights)])
    ids = calibration_ids(count, seed)
    ranges = activation_ranges(weights, network_inputs(weights, CcpDataset(ccp, ids)))
    tensors, metadata = read_model_file(parser_weights(weights))
    metadata = {key: value for key, value in metadata.items() if key != "tensors_sha256"}
    metadata[RANGES_KEY] = ranges
    metadata["int8_calibration"] = json.dumps({"photos": list(ids), "split": "split_ids(100, 0) training part",
                                               "seed": seed, "method": "MinMax"})
    return write_model_file(tensors, out, metadata)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ccp", type=Path, required=True, help="CCP folder (photos/, annotations/)")
    parser.add_argument("--weights", default="parser-ccp", help="bundled name or parser .safetensors")
    parser.add_argument("--out", type=Path, required=True, help="new parser .safetensors with the ranges")
    parser.add_argument("--photos", type=int, default=PHOTOS)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    try:
        print(calibrate(args.weights, args.ccp, args.out, args.photos, args.seed))
    except (OutputPathError, CcpError, WeightsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
