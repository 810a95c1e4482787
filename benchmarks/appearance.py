"""The correspondence appearance model against the floors, on real photos (one run, one table).

* Held-out CCP self-supervised pairs (photos 0905-1004, one pair each, fixed seed; scored once per final
  model): the photo deformed part by part is the source, the photo the target (data/ccp_pairs.py).
  Rows: the model given the part-affine warp of the source layout as its target layout (what it gets at
  test time without a learned Ŝ_B), the model given the true target layout (an upper bound), the
  training-free part-affine warp of the source (``warp_image``: the floor), the model's own training-free
  prior (the same warp with the background on the torso's map), the source copied, all-white.
  L1 (on [0, 1]), PSNR, SSIM (evaluation/ssim.py, the literature's settings) over the 256x176 image, and
  L1/PSNR over the face box (from the target's head keypoints).
* Own-pose round trip at full resolution: a held-out photo re-posed into its own pose (identical keypoints,
  its own layout), PSNR over the person box at the photo's native size (~550x830).

    .venv/bin/python benchmarks/appearance.py --weights runs/appearance-real/best.safetensors
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
import torch.nn.functional as F

from recapture.body.keypoints import keypoints_to_heatmaps, missing_mask
from recapture.data.ccp import HELD_OUT_IDS, CcpDataset
from recapture.data.ccp_pairs import CcpPhotos, fill_ignored, make_pair, training_ids
from recapture.data.formats import read_annotations
from recapture.evaluation.ssim import psnr, ssim
from recapture.hub import LoadedGenerator, load_generator
from recapture.models.correspondence import (CorrespondenceConfig, CorrespondenceGenerator, load_correspondence,
                                             repose)
from recapture.models.layout_ops import majority_layout
from recapture.body.keypoint_warp import warp_image
from recapture.training.correspondence_data import Batch, collate
from recapture.training.parsed_photos import ParsedLayouts

HEAD = (0, 14, 15, 16, 17)
RESULTS = Path(__file__).resolve().parent / "results"


def face_box(keypoints: np.ndarray, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """``(top, bottom, left, right)`` around the present head joints (nose, eyes, ears), or None."""
    points = keypoints[list(HEAD)]
    points = points[~missing_mask(points)]
    if len(points) < 2:
        return None
    centre = points.mean(axis=0)
    half = max(np.ptp(points[:, 1]) * 0.9, np.ptp(points[:, 0]), 0.045 * size[0])
    top, bottom = int(max(0, centre[0] - 1.2 * half)), int(min(size[0], centre[0] + 1.1 * half))
    left, right = int(max(0, centre[1] - half)), int(min(size[1], centre[1] + half))
    return (top, bottom, left, right) if bottom - top >= 4 and right - left >= 4 else None


def _uint8(images: torch.Tensor) -> torch.Tensor:
    return ((images.clamp(-1, 1) + 1) * 127.5).round()


def score(made: torch.Tensor, real: torch.Tensor, keypoints: np.ndarray) -> dict[str, list[float]]:
    """Per-pair L1 / PSNR / SSIM and face-box L1 / PSNR of ``(B, 3, H, W)`` [-1, 1] images."""
    made, real = _uint8(made), _uint8(real)
    out = {"l1": ((made - real).abs().mean(dim=(1, 2, 3)) / 255).tolist(), "psnr": psnr(made, real).tolist(),
           "ssim": ssim(made, real).tolist(), "face_l1": [], "face_psnr": []}
    for i in range(made.shape[0]):
        box = face_box(keypoints[i], tuple(made.shape[-2:]))
        if box is None:
            continue
        top, bottom, left, right = box
        a, b = made[i:i + 1, :, top:bottom, left:right], real[i:i + 1, :, top:bottom, left:right]
        out["face_l1"].append(float((a - b).abs().mean() / 255))
        out["face_psnr"].append(float(psnr(a, b)))
    return out


def pairs_of(photos: CcpPhotos, ids: tuple[int, ...], config: CorrespondenceConfig, seed: int,
             parsed: np.ndarray | None = None, still_camera: bool = False) -> list[Batch]:
    """One self-supervised pair per photo id, batched by 10 (``parsed``: the parser's layouts in the row order of
    ``photos``, carried through the deformation as the source layouts; None: CCP's ground truth;
    ``still_camera``: the same pose changes without the global zoom/shift of the whole photo)."""
    rows = [int(np.flatnonzero(photos.ids == i)[0]) for i in ids]
    rng = np.random.default_rng(seed)
    pairs = [make_pair(photos.images[r], photos.labels[r], photos.keypoints[r], rng, config.internal_size,
                       parsed=None if parsed is None else parsed[r], still_camera=still_camera) for r in rows]
    return [collate(pairs[i:i + 10], config, [False] * len(pairs[i:i + 10])) for i in range(0, len(pairs), 10)]


def pair_table(model: CorrespondenceGenerator, batches: list[Batch], generators: dict[str, LoadedGenerator],
               others: dict[str, CorrespondenceGenerator] | None = None) -> dict[str, dict[str, list[float]]]:
    """Scores of the model, other correspondence weights (warped source layout), whole generators (their own
    predicted Ŝ_B) and the floors on the same pairs."""
    rows: dict[str, dict[str, list[float]]] = {}

    def add(name: str, made: torch.Tensor, batch: Batch) -> None:
        for key, values in score(made, batch.target_image, batch.target_keypoints).items():
            rows.setdefault(name, {}).setdefault(key, []).extend(values)

    size = model.config.internal_size
    for batch in batches:
        with torch.no_grad():
            inputs = (batch.source_image, batch.source_layout, batch.source_pose)
            add("model (warped source layout)", model(*inputs, batch.target_layout, batch.target_pose,
                                                      batch.prior).image, batch)
            oracle = majority_layout(batch.target_labels, model.num_parts, size)
            add("model (true target layout)", model(*inputs, oracle, batch.target_pose, batch.prior).image, batch)
            for name, other in (others or {}).items():  # its own prior and warped layout (its config's rules)
                add(name, repose(other, batch.source_image, batch.source_labels, batch.source_keypoints,
                                 batch.target_keypoints).image, batch)
        for name, loaded in generators.items():
            output = tuple(batch.target_image.shape[-2:])
            with torch.no_grad():
                made = loaded.generator(batch.source_image, batch.source_labels,
                                        keypoints_to_heatmaps(batch.source_keypoints, output),
                                        keypoints_to_heatmaps(batch.target_keypoints, output),
                                        source_keypoints=batch.source_keypoints,
                                        target_keypoints=batch.target_keypoints).image
            add(name, made, batch)
        add("part-affine warp (floor)", warp_image(batch.source_image, batch.source_labels, batch.source_keypoints,
                                                    batch.target_keypoints, "lip20"), batch)
        add("the model's prior alone: part-affine warp, background on the torso's map (no network)",
            F.grid_sample(batch.source_image, batch.prior.full, mode="bilinear", padding_mode="border",
                          align_corners=True), batch)
        add("source copied (floor)", batch.source_image, batch)
        add("all-white (floor)", torch.ones_like(batch.target_image), batch)
    return rows


def round_trip(model: CorrespondenceGenerator, root: Path, keypoints_csv: Path, ids: tuple[int, ...]
               ) -> dict[str, list[float]]:
    """Photos re-posed into their own pose at native resolution: PSNR over the person box."""
    dataset = CcpDataset(root, ids)
    table = read_annotations(keypoints_csv)
    out: dict[str, list[float]] = {"model": [], "part-affine warp (floor)": []}
    for photo_id in dataset.ids:
        keypoints = table.get(dataset.photo_name(photo_id)).astype(np.float64)[None]
        labels = torch.as_tensor(fill_ignored(dataset.lip20_labels(photo_id, keypoints[0])).astype(np.int64))[None]
        image = torch.as_tensor(dataset.photo(photo_id)).permute(2, 0, 1)[None].float() / 127.5 - 1.0
        with torch.no_grad():
            made = repose(model, image, labels, keypoints, keypoints).image
        warped = warp_image(image, labels, keypoints, keypoints, "lip20")
        rows, cols = torch.nonzero(labels[0] > 0, as_tuple=True)
        box = (slice(None), slice(None), slice(int(rows.min()), int(rows.max()) + 1),
               slice(int(cols.min()), int(cols.max()) + 1))
        out["model"].append(float(psnr(_uint8(made)[box], _uint8(image)[box])))
        out["part-affine warp (floor)"].append(float(psnr(_uint8(warped)[box], _uint8(image)[box])))
    return out


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="runs/appearance-real/best.safetensors")
    parser.add_argument("--photos", default="runs/appearance-real/ccp-256x176.npz")
    parser.add_argument("--ccp", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "ccp"))
    parser.add_argument("--keypoints", default="src/recapture/assets/ccp-keypoints.csv")
    parser.add_argument("--round-trip", type=int, default=20, help="held-out photos for the full-size round trip")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--generator", action="append", default=[], metavar="NAME=MODEL",
                        help="also score a whole generator (bundled name or file) with its own predicted layout")
    parser.add_argument("--split", choices=("held-out", "validation"), default="held-out",
                        help="validation: the 60 validation photos of 0001-0904 (for development runs)")
    parser.add_argument("--name", default="appearance")
    parser.add_argument("--parsed", default="", help="the parser's layouts (training/parsed_photos.py) as the pairs' "
                        "source layouts, for every row (the test-time input); default: CCP's ground truth")
    parser.add_argument("--compare", action="append", default=[], metavar="NAME=WEIGHTS",
                        help="also score other correspondence weights (warped source layout)")
    parser.add_argument("--still-camera", action="store_true",
                        help="pairs made with a fixed camera (the background in place, as in the real uses)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.time()
    model = load_correspondence(args.weights)
    photos = CcpPhotos.load(args.photos)
    ids = tuple(HELD_OUT_IDS) if args.split == "held-out" else training_ids()[1]
    generators = {name: load_generator(where) for name, where in (item.split("=", 1) for item in args.generator)}
    parsed = ParsedLayouts.load(args.parsed).for_photos(photos) if args.parsed else None
    others = {name: load_correspondence(where) for name, where in (item.split("=", 1) for item in args.compare)}
    table = pair_table(model, pairs_of(photos, ids, model.config, args.seed, parsed, args.still_camera), generators,
                       others)
    trip = round_trip(model, Path(args.ccp), Path(args.keypoints), ids[:args.round_trip])
    result = {
        "weights": args.weights, "split": args.split, "source_layouts": args.parsed or "CCP ground truth",
        "still_camera": args.still_camera, "pairs": len(table["all-white (floor)"]["l1"]), "seed": args.seed,
        "pair_scores": {name: {key: _mean(values) for key, values in scores.items()} | {
            "face_pairs": len(scores["face_l1"])} for name, scores in table.items()},
        "round_trip_person_psnr": {name: _mean(values) for name, values in trip.items()},
        "round_trip_photos": args.round_trip, "seconds": round(time.time() - started, 1),
    }
    camera = ", fixed camera" if args.still_camera else ""
    lines = [f"# Appearance on real photos ({result['pairs']} {args.split} CCP self-supervised pairs{camera}, 256x176)", "",
             f"Source layouts: {result['source_layouts']}; target layout of the correspondence rows: the part-affine "
             "warp of the source layout unless named.", "",
             "| method | L1 | PSNR | SSIM | face L1 | face PSNR |", "|---|---|---|---|---|---|"]
    for name, scores in result["pair_scores"].items():
        lines.append(f"| {name} | {scores['l1']:.4f} | {scores['psnr']:.2f} | {scores['ssim']:.3f} | "
                     f"{scores['face_l1']:.4f} | {scores['face_psnr']:.2f} |")
    if trip["model"]:
        lines += ["", f"Own-pose round trip, {len(trip['model'])} {args.split} photos at native size, PSNR over the "
                  "person box: " + ", ".join(f"{k} {v:.2f} dB" for k, v in result["round_trip_person_psnr"].items())]
    RESULTS.mkdir(exist_ok=True)
    for suffix, text in ((".json", json.dumps(result, indent=2)), (".md", "\n".join(lines) + "\n")):
        handle, temporary = tempfile.mkstemp(dir=RESULTS, suffix=suffix)
        with os.fdopen(handle, "w") as file:
            file.write(text)
        os.replace(temporary, RESULTS / f"{args.name}{suffix}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
