"""The bundled ``default`` model on close-up framings (DeepFashion's most common one) against the floors.

57% of DeepFashion's test images end at mid-thigh and 14% between knee and ankle (docs/parser.md, "Stage 4").
This scores the whole ``default`` generator (its own Ŝ_B) on CCP self-supervised pairs with a still camera
(``make_pair(still_camera=True)``, the pairs of benchmarks/appearance.py ``--still-camera``) whose two images are
both cut at the same row - the target's hips plus ``cut`` x its hips->ankles length (0.25: mid-thigh, 0.6: below
the knee) - and the window above it zoomed to 256x176 around the hips, as a camera framing the upper body would;
joints outside the window become missing. Source layouts: CCP's labels carried through the deformation and cut the
same way (not re-parsed on the cut photo). Pairs whose target shows no hips or ankles are left out. Rows: the
bundled generator, the part-affine warp (floor), the source copied; L1 (on [0, 1]), PSNR, and L1 over the target's
person. Validation photos by default; ``--split held-out`` is for reporting a final model once.

    .venv/bin/python benchmarks/closeups.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from appearance import pairs_of, score
from pose2sim import person_l1, save_results
from recapture.body.keypoint_warp import warp_image
from recapture.body.keypoints import keypoints_to_heatmaps
from recapture.data.ccp import HELD_OUT_IDS
from recapture.data.ccp_pairs import CcpPhotos, training_ids
from recapture.hub import load_generator
from recapture.models.layout_ops import to_one_hot

SIZE = (256, 176)
HIPS, ANKLES = [8, 11], [10, 13]


def window(keypoints: np.ndarray, cut: float) -> tuple[float, float, float] | None:
    """``(top, left, height)`` of the close-up window for ``(18, 2)`` target keypoints, or None without hips/ankles."""
    hips, ankles = keypoints[HIPS], keypoints[ANKLES]
    if (hips < 0).any() or (ankles < 0).any():
        return None
    height = hips[:, 0].mean() + cut * (ankles[:, 0].mean() - hips[:, 0].mean())
    return 0.0, hips[:, 1].mean() - height * SIZE[1] / SIZE[0] / 2, height


def zoom(image: Tensor, box: tuple[float, float, float], mode: str) -> Tensor:
    """``(C, H, W)`` -> ``(C, 256, 176)``: the window ``box`` resampled (border pixels repeated outside)."""
    top, left, height = box
    ys = torch.linspace(top, top + height - 1, SIZE[0])
    xs = torch.linspace(left, left + height * SIZE[1] / SIZE[0] - 1, SIZE[1])
    rows, cols = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([cols / (image.shape[-1] - 1) * 2 - 1, rows / (image.shape[-2] - 1) * 2 - 1], dim=-1)
    return F.grid_sample(image[None].float(), grid[None], mode=mode, padding_mode="border", align_corners=True)[0]


def zoom_keypoints(keypoints: np.ndarray, box: tuple[float, float, float]) -> np.ndarray:
    """Keypoints in the zoomed window (the same pixel-centre convention as :func:`zoom`); outside -> -1."""
    top, left, height = box
    scale = (SIZE[0] - 1) / (height - 1)
    out = np.stack([(keypoints[:, 0] - top) * scale, (keypoints[:, 1] - left) * scale], axis=1)
    inside = (out >= 0).all(axis=1) & (out[:, 0] <= SIZE[0] - 1) & (out[:, 1] <= SIZE[1] - 1)
    return np.where(((keypoints >= 0).all(axis=1) & inside)[:, None], out, -1.0)


def closeup_scores(generator: torch.nn.Module, batches: list, cut: float) -> dict[str, dict[str, list[float]]]:
    """Per-pair scores of every row on the pairs cut at ``cut``."""
    rows: dict[str, dict[str, list[float]]] = {}
    for batch in batches:
        boxes = [window(k, cut) for k in batch.target_keypoints]
        keep = [i for i, box in enumerate(boxes) if box is not None]
        if not keep:
            continue
        images = [torch.stack([zoom(side[i], boxes[i], "bilinear") for i in keep])
                  for side in (batch.source_image, batch.target_image)]
        labels = [torch.stack([zoom(side[i][None], boxes[i], "nearest")[0].long() for i in keep])
                  for side in (batch.source_labels, batch.target_labels)]
        points = [np.stack([zoom_keypoints(side[i], boxes[i]) for i in keep])
                  for side in (batch.source_keypoints, batch.target_keypoints)]
        with torch.no_grad():
            made = {"bundled default (its own Ŝ_B)": generator(
                images[0], to_one_hot(labels[0], 20), *(keypoints_to_heatmaps(p, SIZE) for p in points),
                source_keypoints=points[0], target_keypoints=points[1]).image,
                "part-affine warp (floor)": warp_image(images[0], labels[0], points[0], points[1], "lip20"),
                "source copied (floor)": images[0]}
        truth = to_one_hot(labels[1], 20)
        for name, image in made.items():
            values = score(image, images[1], points[1])
            values["person_l1"] = person_l1(image, images[1], truth)
            for key in ("l1", "psnr", "person_l1"):
                rows.setdefault(name, {}).setdefault(key, []).extend(values[key])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", default="runs/appearance-real/ccp-256x176.npz")
    parser.add_argument("--split", choices=("validation", "held-out"), default="validation")
    parser.add_argument("--cuts", default="0.25,0.6", help="hips->ankles fractions of the window's bottom edge")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="closeups")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.time()
    generator = load_generator("default").generator.eval()
    ids = tuple(HELD_OUT_IDS) if args.split == "held-out" else training_ids()[1]
    batches = pairs_of(CcpPhotos.load(args.photos), ids, generator.appearance.config, args.seed, still_camera=True)
    result: dict = {"split": args.split, "seed": args.seed, "cuts": {}}
    lines = [f"# The default model on close-ups ({args.split} CCP pairs, still camera, cut and zoomed to 256x176)", "",
             "| cut (hips->ankles) | method | pairs | L1 | PSNR | person L1 |", "|---|---|---|---|---|---|"]
    for cut in (float(c) for c in args.cuts.split(",")):
        rows = closeup_scores(generator, batches, cut)
        result["cuts"][str(cut)] = {name: {key: float(np.mean(v)) for key, v in values.items()} | {
            "pairs": len(values["l1"])} for name, values in rows.items()}
        lines += [f"| {cut} | {name} | {r['pairs']} | {r['l1']:.4f} | {r['psnr']:.2f} | {r['person_l1']:.4f} |"
                  for name, r in result["cuts"][str(cut)].items()]
    result["seconds"] = round(time.time() - started, 1)
    save_results(args.name, result, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
