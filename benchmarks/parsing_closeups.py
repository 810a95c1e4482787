"""Human parsing of close-ups: CCP photos cut below the hips, as half-body photos reach the parser.

Most DeepFashion photos end at mid-thigh (of the 17,340 images of its 8,670 test pairs, 58% show the hips but
no knee, 14% the knees but no ankle, 28% the whole body: ``../shared/data/real-keypoints``), and portraits end
higher still; CCP's photos are full-body. Each photo of the split is scored whole and cut - its rows below
``hips + c * (ankles - hips)`` removed (hips and ankles from the cached keypoints; ``--cuts``, default 0.25 =
mid-thigh and 0.6 = below the knee) - with pose and person mask estimated on the cut photo, as the photo path
does. Parsers: the bundled ``ccp``, ``pose-mask`` and any ``--parser NAME=FILE`` (a parser ``.safetensors``);
scores as in benchmarks/parsing.py (pooled confusion matrices, coarse groups, LIP-20 parts present). Photos
with no hip or no ankle in the cached keypoints (or whose cut falls below the photo) are left out of every row; a
parser that refuses a photo (pose-mask without shoulders) is scored as all background there and counted under
"failed".

    .venv/bin/python benchmarks/parsing_closeups.py --split validation --parser "stage 4=runs/x/parser-ccp.safetensors"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from parsing import KEYPOINTS, ONNX, ONNX_FLOAT, parser_specs, person_inputs, scores
from recapture.body.parts import LIP20
from recapture.data.ccp import COARSE_GROUPS, HELD_OUT_IDS, CcpDataset, coarse_table, confusion, split_ids
from recapture.data.formats import read_annotations
from recapture.fileio import atomic_write_text
from recapture.pipelines.human_parsing import PersonModels, load_parser
from recapture.pipelines.onnx_parser import OnnxCcpParser
from recapture.training.parser_data import cut_photo

RESULTS = Path(__file__).resolve().parent / "results"


def split_photos(split: str) -> tuple[int, ...]:
    """``held-out`` (0905-1004, scored once per parser) or ``validation`` (the parser's validation photos)."""
    if split == "held-out":
        return tuple(HELD_OUT_IDS)
    if split == "validation":
        return split_ids(100, 0)[1]
    raise SystemExit(f"error: --split must be held-out or validation, got {split!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ccp", type=Path, default=Path("../shared/data/ccp"))
    parser.add_argument("--split", default="validation")
    parser.add_argument("--cuts", type=float, nargs="+", default=[0.25, 0.6])
    parser.add_argument("--parser", action="append", default=[], help="NAME=FILE: also score this parser file")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--onnx", action="store_true",
                        help="also the bundled ccp on ONNX Runtime: its default (int8 where it runs) and float32")
    parser.add_argument("--limit", type=int, default=0, help="only the first N photos of the split (a smoke run)")
    parser.add_argument("--name", default="", help="results/parsing-closeups-<split>[-NAME].{json,md}")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ids = split_photos(args.split)
    dataset = CcpDataset(args.ccp, ids[:args.limit] if args.limit > 0 else ids)
    table = read_annotations(KEYPOINTS)
    parsers = {name: load_parser(spec) for name, spec in parser_specs(args.parser).items()}
    if args.onnx:
        parsers[ONNX] = OnnxCcpParser("parser-ccp", args.threads)
        parsers[ONNX_FLOAT] = OnnxCcpParser("parser-ccp", args.threads, precision="float32")
    framings = ["whole"] + [f"cut {c:g}" for c in args.cuts]
    groups, lookup = len(COARSE_GROUPS), coarse_table()
    lip = {(f, n): np.zeros((LIP20.num_parts, LIP20.num_parts + 1), np.int64) for f in framings for n in parsers}
    coarse = {(f, n): np.zeros((groups, groups + 1), np.int64) for f in framings for n in parsers}
    failed = {key: 0 for key in lip}
    used = []
    with PersonModels.open() as models:
        for photo_id in dataset.ids:
            cached = table.get(dataset.photo_name(photo_id)).astype(np.float64)
            image = dataset.photo(photo_id)
            rows = [image.shape[0]] + [cut_photo(cached, c, image.shape[0]) for c in args.cuts]
            if any(r == image.shape[0] for r in rows[1:]):
                continue  # no hip or no ankle to cut at (or a cut below the photo's end)
            used.append(photo_id)
            truth = dataset.lip20_labels(photo_id, cached)
            for framing, bottom in zip(framings, rows):
                photo, true = np.ascontiguousarray(image[:bottom]), truth[:bottom]
                keypoints, mask = person_inputs(models, photo)
                for name, layout_parser in parsers.items():
                    try:
                        labels = layout_parser(photo, keypoints, mask)
                    except ValueError:  # e.g. pose-mask with no shoulder found: scored as all background
                        failed[framing, name] += 1
                        labels = np.zeros(true.shape, np.uint8)
                    lip[framing, name] += confusion(true, labels, LIP20.num_parts)
                    coarse[framing, name] += confusion(lookup[true], lookup[labels], groups)
    result = {"split": args.split, "photos": len(used), "cuts": args.cuts,
              "rows": {framing: {name: {**scores(lip[framing, name], coarse[framing, name]),
                                        "failed": failed[framing, name]} for name in parsers}
                       for framing in framings}}
    out = RESULTS / ("parsing-closeups-" + args.split + (f"-{args.name}" if args.name else ""))
    atomic_write_text(out.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    atomic_write_text(out.with_suffix(".md"), markdown(result))
    print(markdown(result))


def markdown(result: dict) -> str:
    """One table per framing: parsers x (pixel accuracy, mIoUs, coarse groups, Skirt)."""
    lines = [f"# Human parsing of close-ups: CCP {result['split']} ({result['photos']} photos)", ""]
    for framing, rows in result["rows"].items():
        lines += [f"## {framing}", "", "| parser | pixel acc. | LIP-20 mIoU | coarse mIoU | "
                  + " | ".join(n for n, _ in COARSE_GROUPS) + " | Skirt | failed |",
                  "|---" * (len(COARSE_GROUPS) + 6) + "|"]
        for name, r in rows.items():
            lines.append(f"| {name} | {r['pixel_accuracy']:.3f} | {r['lip20_miou']:.3f} | {r['coarse_miou']:.3f} | "
                         + " | ".join(f"{r['groups'][n]:.3f}" for n, _ in COARSE_GROUPS)
                         + f" | {r['lip20'].get('skirt', float('nan')):.3f} | {r['failed']} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
