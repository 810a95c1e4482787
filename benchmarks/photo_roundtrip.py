"""Own-pose round trip of real photos through the photo path (issue: real photos end to end).

For each photo: the framing detected, the people found, the stage times, and two scores over the
person's box (the box of its mask): PSNR of the recaptured photo against the input, and the
high-frequency ratio (mean absolute Laplacian inside the person mask, output / input). The same two
scores are given for the *crop ceiling*: the model-frame source crop itself pasted back with its own
layout as alpha, i.e. what a perfect model-frame generator would reach through the crop -> model
frame -> composite path. A contact sheet (input | own pose | ``--pose``) is written too.

Default photos: four CCP *training-split* photos (0150, 0400, 0650, 0900; Apache-2.0, ../shared/data/ccp),
the development set for work on the photo path. ``--held-out`` scores four held-out photos (0905, 0930,
0960, 1004) instead: they are for reporting a finished photo path once, never for choosing one (written
beside the development results with the suffix ``-held-out``).

    .venv/bin/python benchmarks/photo_roundtrip.py --model default
    .venv/bin/python benchmarks/photo_roundtrip.py --model default --held-out
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from recapture.evaluation.roundtrip import round_trip_scores
from recapture.fileio import atomic_path, atomic_write_text
from recapture.pipelines.photo import PhotoModels, PhotoRequest, run_photo
from recapture.pipelines.poses import load_pose
from recapture.pipelines.recapture import Recapturer
from recapture.pipelines.inpainting import inpaint_background
from recapture.pipelines.wild import composite, layout_alpha

ROOT = Path(__file__).resolve().parents[1]
CCP = ROOT.parent / "shared" / "data" / "ccp" / "photos"
DEVELOPMENT = ("0150.jpg", "0400.jpg", "0650.jpg", "0900.jpg")
HELD_OUT = ("0905.jpg", "0930.jpg", "0960.jpg", "1004.jpg")


def scores(photo: np.ndarray, output: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(PSNR over the mask's box, high-frequency ratio) as :func:`round_trip_scores` gives them."""
    found = round_trip_scores(photo, output, mask)
    return found.psnr, found.detail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--parser", default=None, help="ccp | pose-mask | FILE (default: ccp when bundled)")
    parser.add_argument("--pose", default="walking", help="the other pose of the contact sheet")
    parser.add_argument("--photos", nargs="*", type=Path, default=None, help="default: the development photos")
    parser.add_argument("--held-out", action="store_true", help="the four held-out photos (final report only)")
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/photo_roundtrip")
    args = parser.parse_args()
    if args.photos is None:
        args.photos = [CCP / name for name in (HELD_OUT if args.held_out else DEVELOPMENT)]
    if args.out is None:
        args.out = ROOT / "benchmarks" / "results" / ("photo_roundtrip-held-out" if args.held_out else "photo_roundtrip")
    torch.set_num_threads(1)
    recapturer = Recapturer.from_pretrained(args.model)
    target = load_pose(args.pose).keypoints
    rows, sheet = [], []
    with PhotoModels(recapturer, args.parser) as models:
        for path in args.photos:
            own = run_photo(PhotoRequest(source=path), models)
            posed = run_photo(PhotoRequest(source=path, target=target), models)
            prepared = own.prepared
            photo, mask = prepared.decoded.photo, prepared.segmented.person_mask > 0.5
            background = inpaint_background(photo, prepared.segmented.person_mask)
            ceiling = composite(background, prepared.framed.source.image, layout_alpha(prepared.framed.source.layout),
                                prepared.framed.crop)
            rows.append({"photo": path.name, "size": list(photo.shape[:2]), "framing": prepared.framed.extent,
                         "people": prepared.people, "parser": prepared.parsed.parser,
                         "seconds": round(sum(own.timings.values()), 2),
                         "timings": {k: round(v, 3) for k, v in own.timings.items()},
                         "psnr_hf": scores(photo, own.composite, mask), "ceiling_psnr_hf": scores(photo, ceiling, mask)})
            print(json.dumps(rows[-1]), flush=True)
            sheet.append(np.concatenate([photo, own.composite, posed.composite], axis=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"model": args.model, "pose": args.pose, "machine": platform.processor() or platform.machine(),
              "threads": 1, "photos": rows}
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(report, indent=1) + "\n")
    lines = ["| photo | framing | people | parser | time (s) | PSNR (dB) | HF ratio | crop ceiling PSNR | ceiling HF |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['photo']} | {r['framing']} | {r['people']} | {r['parser']} | {r['seconds']} | {r['psnr_hf'][0]} | "
              f"{r['psnr_hf'][1]} | {r['ceiling_psnr_hf'][0]} | {r['ceiling_psnr_hf'][1]} |" for r in rows]
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    width = max(s.shape[1] for s in sheet)
    padded = [np.pad(s, ((0, 4), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in sheet]
    picture = Image.fromarray(np.concatenate(padded, axis=0))
    picture.thumbnail((1800, 4000))
    with atomic_path(args.out.with_suffix(".jpg")) as temporary:
        picture.save(temporary, format="JPEG", quality=85)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
