"""The CCP parser's int8 network against its float32 one, on the validation photos (never the held-out ones).

For each validation photo of the parser's split (``split_ids(100, 0)[1]``: drawn from 0001-0904) the ONNX parser
runs in float32 and in int8 (``--weights``: a parser file with ``int8_ranges``, by default the bundled one; made by
``python -m recapture.training.parser_int8``), on the same pose and person mask; scored as benchmarks/parsing.py
does (pooled confusion matrices: coarse groups, LIP-20 parts present), with the share of pixels whose label agrees
and the median wall / CPU seconds of the parser call (network and post-processing; 2 threads). The two precisions
alternate photo by photo, so both see the same machine load. Results: ``benchmarks/results/parser-int8.{json,md}``.

    .venv/bin/python benchmarks/parser_int8.py
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from parsing import KEYPOINTS, person_inputs, scores
from recapture.body.parts import LIP20
from recapture.data.ccp import COARSE_GROUPS, CcpDataset, coarse_table, confusion, split_ids
from recapture.data.formats import read_annotations
from recapture.fileio import atomic_write_text
from recapture.pipelines.human_parsing import PersonModels
from recapture.pipelines.parse_files import parse_files
from recapture.pipelines.onnx_parser import OnnxCcpParser

RESULTS = Path(__file__).resolve().parent / "results"
PRECISIONS = ("float32", "int8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ccp", type=Path, default=Path("../shared/data/ccp"))
    parser.add_argument("--weights", default="parser-ccp", help="bundled name or parser .safetensors with ranges")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="only the first N validation photos (a smoke run)")
    parser.add_argument("--name", default="", help="results/parser-int8[-NAME].{json,md}")
    parser.add_argument("--whole", type=int, default=20,
                        help="validation photos timed through `recapture parse`'s work on each backend")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ids = split_ids(100, 0)[1]
    dataset = CcpDataset(args.ccp, ids[:args.limit] if args.limit > 0 else ids)
    table = read_annotations(KEYPOINTS)
    parsers = {name: OnnxCcpParser(args.weights, args.threads, precision=name) for name in PRECISIONS}
    lookup, groups = coarse_table(), len(COARSE_GROUPS)
    matrices = {name: np.zeros((LIP20.num_parts, LIP20.num_parts + 1), np.int64) for name in PRECISIONS}
    coarse = {name: np.zeros((groups, groups + 1), np.int64) for name in PRECISIONS}
    wall = {name: [] for name in PRECISIONS}
    cpu = {name: [] for name in PRECISIONS}
    agreement = []
    with PersonModels.open() as models:
        for photo_id in dataset.ids:
            image = dataset.photo(photo_id)
            truth = dataset.lip20_labels(photo_id, table.get(dataset.photo_name(photo_id)))
            keypoints, mask = person_inputs(models, image)
            labels = {}
            for name, layout_parser in parsers.items():
                started, started_cpu = time.perf_counter(), time.process_time()
                labels[name] = layout_parser(image, keypoints, mask)
                wall[name].append(time.perf_counter() - started)
                cpu[name].append(time.process_time() - started_cpu)
                matrices[name] += confusion(truth, labels[name], LIP20.num_parts)
                coarse[name] += confusion(lookup[truth], lookup[labels[name]], groups)
            agreement.append(float((labels["float32"] == labels["int8"]).mean()))
    whole = (whole_parse_seconds([dataset.photo_path(i) for i in dataset.ids[:args.whole]], args.threads)
             if args.whole > 0 else None)
    result = {"split": "validation (split_ids(100, 0))", "whole_parse_seconds_per_photo": whole, "photos": len(dataset.ids), "threads": args.threads,
              "weights": str(args.weights), "label_agreement_mean": float(np.mean(agreement)),
              "label_agreement_min": float(np.min(agreement)),
              "precisions": {name: {**scores(matrices[name], coarse[name]),
                                    "seconds_per_photo": float(np.median(wall[name])),
                                    "cpu_seconds_per_photo": float(np.median(cpu[name]))} for name in PRECISIONS}}
    out = RESULTS / (f"parser-int8-{args.name}" if args.name else "parser-int8")
    atomic_write_text(out.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    atomic_write_text(out.with_suffix(".md"), markdown(result))
    print(markdown(result))


def whole_parse_seconds(photos: list[Path], threads: int) -> dict[str, float]:
    """Wall seconds per photo of ``recapture parse``'s work (decode, people, pose, segmentation, parsing, PNG and
    JSON written; after loading) with the ccp parser on each backend, the backends alternated twice."""
    times = {backend: [] for backend in ("torch", "auto")}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(2):
            for backend, found in times.items():
                started = time.perf_counter()
                parse_files(photos, tempfile.mkdtemp(dir=folder), "ccp", backend=backend, threads=threads)
                found.append((time.perf_counter() - started) / len(photos))
    return {backend: float(np.mean(found)) for backend, found in times.items()}


def markdown(result: dict) -> str:
    lines = [f"# The parser's int8 network vs float32, {result['split']} ({result['photos']} photos, "
             f"{result['threads']} threads)", "",
             "| precision | selection | coarse mIoU | LIP-20 mIoU | pixel acc. | dress/jump. | lower garment | Skirt "
             "| s/photo (CPU s) |", "|---|---|---|---|---|---|---|---|---|"]
    for name, row in result["precisions"].items():
        lines.append(f"| {name} | {(row['coarse_miou'] + row['lip20_miou']) / 2:.4f} | {row['coarse_miou']:.4f} | "
                     f"{row['lip20_miou']:.4f} | {row['pixel_accuracy']:.4f} | {row['groups']['dress/jumpsuit']:.3f} | "
                     f"{row['groups']['lower garment']:.3f} | {row['lip20'].get('skirt', float('nan')):.3f} | "
                     f"{row['seconds_per_photo']:.3f} ({row['cpu_seconds_per_photo']:.3f}) |")
    whole = result.get("whole_parse_seconds_per_photo") or {"torch": float("nan"), "auto": float("nan")}
    lines += ["", f"Whole `recapture parse` per photo (first validation photos, torch / auto = ONNX Runtime int8): "
              f"{whole['torch']:.3f} / {whole['auto']:.3f} s (each includes loading its parser once)."]
    lines += ["", f"Labels equal on {result['label_agreement_mean']:.4f} of the pixels (mean over photos; worst photo "
              f"{result['label_agreement_min']:.4f}). Weights: `{result['weights']}`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
