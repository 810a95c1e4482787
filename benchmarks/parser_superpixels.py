"""Superpixel pooling of the CCP parser's probabilities, chosen on the validation photos (never the held-out ones).

For each validation photo of the parser's split (``split_ids(100, 0)``: drawn from 0001-0904), the shipped head's
crop probabilities - with and without the flip averaging - are mixed with their means over SLIC superpixels of
the crop (``models/parser_rules.superpixel_pooled``: one segmentation per entry of ``--segments``, averaged) for
every compactness, iteration count and weight of the grid (``--unconnected``: SLIC without its connectivity
step); then unwarped to the photo, voted and shoe-ruled as
the parser does, and scored as benchmarks/parsing.py does (pooled confusion matrices: coarse groups, LIP-20
parts present). Also the mean wall seconds of the SLIC segmentations per photo (the pooling's cost).
``--parser FILE`` scores another parser file (its own ``superpixels`` setting is ignored here: the grid is the
point). Results: ``benchmarks/results/parser-superpixels.{json,md}``.

    .venv/bin/python benchmarks/parser_superpixels.py
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from parsing import KEYPOINTS, person_inputs, scores
from recapture.body.parts import LIP20
from recapture.data.ccp import COARSE_GROUPS, CcpDataset, coarse_table, confusion, split_ids
from recapture.data.formats import read_annotations
from recapture.fileio import atomic_write_text
from recapture.models.parser_crop import parser_crop
from recapture.models.parser_rules import SuperpixelPooling, ruled_labels, superpixel_pooled
from recapture.pipelines.human_parsing import CcpParser, PersonModels

RESULTS = Path(__file__).resolve().parent / "results"


def labels_of(crop_probabilities: np.ndarray, crop, shape: tuple[int, int], keypoints: np.ndarray) -> np.ndarray:  # noqa: ANN001
    """The parser's labels from ``(h, w, 20)`` crop probabilities: unwarped, argmax, vote, shoe rule."""
    photo = crop.unwarp(np.ascontiguousarray(crop_probabilities, dtype=np.float32), shape).transpose(2, 0, 1)
    return ruled_labels(photo, keypoints)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ccp", type=Path, default=Path("../shared/data/ccp"))
    parser.add_argument("--parser", default="parser-ccp", help="bundled name or parser .safetensors")
    parser.add_argument("--segments", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--compactness", type=float, nargs="+", default=[15.0, 30.0, 50.0])
    parser.add_argument("--iterations", type=int, nargs="+", default=[4, 10])
    parser.add_argument("--weights", type=float, nargs="+", default=[0.5, 0.7, 0.85, 1.0])
    parser.add_argument("--unconnected", action="store_true", help="SLIC without its connectivity step")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="only the first N validation photos (a smoke run)")
    parser.add_argument("--name", default="", help="results/parser-superpixels[-NAME].{json,md}")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ids = split_ids(100, 0)[1]
    dataset = CcpDataset(args.ccp, ids[:args.limit] if args.limit > 0 else ids)
    table = read_annotations(KEYPOINTS)
    network = CcpParser(args.parser)
    grid = [SuperpixelPooling(tuple(args.segments), c, i, not args.unconnected, 1.0)
            for c in args.compactness for i in args.iterations]
    groups, lookup = len(COARSE_GROUPS), coarse_table()
    lip: dict[str, np.ndarray] = {}
    coarse: dict[str, np.ndarray] = {}
    seconds = {f"compactness {p.compactness:g}, {p.iterations} iterations": 0.0 for p in grid}
    with PersonModels.open() as models:
        for photo_id in dataset.ids:
            image = dataset.photo(photo_id)
            truth = dataset.lip20_labels(photo_id, table.get(dataset.photo_name(photo_id)).astype(np.float64))
            keypoints, mask = person_inputs(models, image)
            crop = parser_crop(keypoints, mask)
            crop_rgb, crop_mask, crop_keypoints = crop.warp(image), crop.warp(mask), crop.keypoints(keypoints)
            bases = {"flip": network.averaged_probabilities(crop_rgb, crop_mask, crop_keypoints),
                     "no flip": network.crop_probabilities(crop_rgb, crop_mask, crop_keypoints)}
            rows = {f"{base}, no pooling": probabilities for base, probabilities in bases.items()}
            for pooling in grid:
                key = f"compactness {pooling.compactness:g}, {pooling.iterations} iterations"
                for base, probabilities in bases.items():
                    started = time.perf_counter()
                    pooled = superpixel_pooled(probabilities, crop_rgb, pooling)  # weight 1: the pooled part alone
                    seconds[key] += (time.perf_counter() - started) / len(bases)
                    for weight in args.weights:
                        rows[f"{base}, {key}, weight {weight:g}"] = weight * pooled + (1 - weight) * probabilities
            for name, probabilities in rows.items():
                labels = labels_of(probabilities, crop, image.shape[:2], keypoints)
                lip.setdefault(name, np.zeros((LIP20.num_parts, LIP20.num_parts + 1), np.int64))
                coarse.setdefault(name, np.zeros((groups, groups + 1), np.int64))
                lip[name] += confusion(truth, labels, LIP20.num_parts)
                coarse[name] += confusion(lookup[truth], lookup[labels], groups)
    result = {"split": "validation (split_ids(100, 0))", "photos": len(dataset.ids), "parser": network.source,
              "segments": args.segments, "connected": not args.unconnected, "grid": [dataclasses.asdict(p) for p in grid],
              "pooling_seconds_per_photo": {k: v / len(dataset.ids) for k, v in seconds.items()},
              "rows": {name: scores(lip[name], coarse[name]) for name in lip}}
    out = RESULTS / ("parser-superpixels" + (f"-{args.name}" if args.name else ""))
    atomic_write_text(out.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    atomic_write_text(out.with_suffix(".md"), markdown(result))
    print(markdown(result))


def markdown(result: dict) -> str:
    """Rows by the validation mean of coarse and LIP-20 mIoU (the parser's selection score), best first."""
    ranked = sorted(result["rows"].items(), key=lambda kv: -(kv[1]["coarse_miou"] + kv[1]["lip20_miou"]))
    lines = [f"# Superpixel pooling of the parser: CCP {result['split']}, {result['photos']} photos", "",
             f"Segments per scale: {result['segments']}; connected superpixels: {result['connected']}; SLIC seconds per photo (crop 320x208): "
             + ", ".join(f"{k}: {v:.3f}" for k, v in result["pooling_seconds_per_photo"].items()), "",
             "| setting | selection (mean) | coarse mIoU | LIP-20 mIoU | pixel acc. | "
             + " | ".join(n for n, _ in COARSE_GROUPS) + " | Skirt |", "|---" * (len(COARSE_GROUPS) + 6) + "|"]
    for name, r in ranked:
        lines.append(f"| {name} | {(r['coarse_miou'] + r['lip20_miou']) / 2:.4f} | {r['coarse_miou']:.4f} | "
                     f"{r['lip20_miou']:.4f} | {r['pixel_accuracy']:.4f} | "
                     + " | ".join(f"{r['groups'][n]:.3f}" for n, _ in COARSE_GROUPS)
                     + f" | {r['lip20'].get('skirt', float('nan')):.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
