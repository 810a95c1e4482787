"""Target-layout quality on real people: CCP's held-out photos (0905-1004), each re-posed by a thin-plate
spline through its joints (not the keypoint prior's part-by-part model), the truth being the photo's own
LIP-20 layout carried by that spline.

For each photo: target keypoints = the photo's keypoints with limbs rotated about their joints
(:func:`recapture.data.ccp_pairs.pose_change` at half strength by default, seeded by the photo id); the truth target layout =
the source layout sampled through the thin-plate spline that takes the target joints (and 8 fixed image
border points) to the source joints. Scored: the source layout unchanged, the keypoint prior alone,
and the model's Ŝ_B (prior + network), with benchmarks/layout.py's definitions.

    PYTHONPATH=src python3 benchmarks/layout_ccp.py --model default --out benchmarks/results/layout_ccp
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.interpolate import RBFInterpolator

from recapture.body.keypoints import keypoints_to_heatmaps, missing_mask
from recapture.body.parts import LIP20
from recapture.data.ccp import HELD_OUT_IDS
from recapture.data.ccp_pairs import build_photos, pose_change
from recapture.hub import load_generator
from recapture.body.keypoint_warp import part_warp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from layout import scores, write_atomic  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SIZE = (256, 176)


def thin_plate_target(labels: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``labels`` moved so that the joints ``source`` land on ``target`` (backward thin-plate spline)."""
    height, width = labels.shape
    present = ~missing_mask(source) & ~missing_mask(target)
    border = np.array([(y, x) for y in (0, height / 2, height - 1) for x in (0, width - 1)]
                      + [(0, width / 2), (height - 1, width / 2)], dtype=np.float64)
    spline = RBFInterpolator(np.concatenate([target[present], border]), np.concatenate([source[present], border]),
                             kernel="thin_plate_spline", smoothing=1.0)
    ys, xs = np.mgrid[0:height, 0:width]
    coords = spline(np.stack([ys.ravel(), xs.ravel()], 1).astype(np.float64))
    rows = np.clip(np.round(coords[:, 0]), 0, height - 1).astype(int)
    cols = np.clip(np.round(coords[:, 1]), 0, width - 1).astype(int)
    inside = (coords[:, 0] > -0.5) & (coords[:, 0] < height - 0.5) & (coords[:, 1] > -0.5) & (coords[:, 1] < width - 0.5)
    return np.where(inside, labels[rows, cols], 0).reshape(height, width).astype(np.uint8)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ccp", default=str(ROOT.parent / "shared" / "data" / "ccp"))
    parser.add_argument("--keypoints", default=str(ROOT / "src" / "recapture" / "assets" / "ccp-keypoints.csv"))
    parser.add_argument("--model", default="default")
    parser.add_argument("--limit", type=int, help="first N held-out photos")
    parser.add_argument("--strength", type=float, default=0.5, help="pose_change strength (1 = its full range)")
    parser.add_argument("--out", default="benchmarks/results/layout_ccp")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    start = time.monotonic()
    ids = tuple(HELD_OUT_IDS)[: args.limit]
    photos = build_photos(args.ccp, ids, args.keypoints, SIZE)
    model = load_generator(args.model)
    table: dict[str, dict[str, list[float]]] = {}
    for index, photo_id in enumerate(photos.ids):
        source_kp = photos.keypoints[index]
        target_kp = pose_change(source_kp, np.random.default_rng(int(photo_id)), args.strength)
        source = torch.from_numpy(photos.labels[index].astype(np.int64))[None]
        truth = torch.from_numpy(thin_plate_target(photos.labels[index], source_kp, target_kp).astype(np.int64))[None]
        hot = LIP20.one_hot(source)
        poses = [keypoints_to_heatmaps(k, SIZE)[None] for k in (source_kp, target_kp)]
        kps = [torch.as_tensor(k, dtype=torch.float32)[None] for k in (source_kp, target_kp)]
        rows = {"copy source layout": source,
                "prior alone (keypoint warp)": part_warp(source, *kps, LIP20).labels,
                "prior + network": model.generator.geometric(hot, *poses, *kps).argmax(1)}
        for row, predicted in rows.items():
            for key, values in scores(predicted, truth).items():
                table.setdefault(row, {}).setdefault(key, []).extend(values)
    result = {"photos": len(ids), "ids": f"{ids[0]:04d}-{ids[-1]:04d} (held out)", "model": model.source,
              "strength": args.strength,
              "seconds": time.monotonic() - start,
              "rows": {r: {k: sum(v) / len(v) for k, v in vals.items() if v} for r, vals in table.items()}}
    columns = ["layout_iou", "band_iou", "iou_arms", "iou_legs", "iou_hair", "iou_face", "iou_shoes"]
    lines = [f"CCP held-out photos {result['ids']}, {len(ids)} photos, thin-plate re-posed; model `{model.source}`.",
             "", "| layout | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row, values in result["rows"].items():
        lines.append(f"| {row} | " + " | ".join(f"{values.get(c, float('nan')):.3f}" for c in columns) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_atomic(Path(args.out + ".json"), json.dumps(result, indent=2) + "\n")
    write_atomic(Path(args.out + ".md"), text)


if __name__ == "__main__":
    main()
