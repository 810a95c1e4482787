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

``--framed``: instead, each side framed on its own as DeepFashion's pairs are (``articulation.deepfashion_framing``:
the counts of its test pairs; ``whole`` = the photo as it is, ``knee`` = cut 0.6, ``hips`` = cut 0.25 of that
side's hips->ankles), so a third of the pairs change zoom by 1.5-2x as DeepFashion's do - real photos, framed like
the kept-back pairs, with a breakdown by framing change. The background zooms with the framing (a camera change the
still-background rule does not follow; DeepFashion's walls are plain), so person L1 is the column for the person.

    .venv/bin/python benchmarks/closeups.py
    .venv/bin/python benchmarks/closeups.py --framed --name closeups-framed
"""

from __future__ import annotations

import argparse
import dataclasses
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
from recapture.data.synthetic.articulation import deepfashion_framing
from recapture.hub import load_generator
from recapture.models.layout_ops import to_one_hot

SIZE = (256, 176)
HIPS, ANKLES = [8, 11], [10, 13]
#: The cut of each DeepFashion framing (``--framed``); ``whole`` keeps the photo.
FRAMING_CUTS = {"hips": 0.25, "knee": 0.6}
WHOLE = (0.0, 0.0, float(SIZE[0]))


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


Box = tuple[float, float, float]


def cut_boxes(batch, cut: float) -> list[tuple[Box, Box] | None]:  # noqa: ANN001
    """Both sides of every pair cut at the target's row ``cut`` (None without hips/ankles)."""
    return [None if box is None else (box, box) for box in (window(k, cut) for k in batch.target_keypoints)]


def framed_boxes(batch, rng: np.random.Generator) -> list[tuple[Box, Box] | None]:  # noqa: ANN001
    """Each side of every pair framed on its own with a DeepFashion (source, target) framing (``--framed``)."""
    boxes: list[tuple[Box, Box] | None] = []
    for points in zip(batch.source_keypoints, batch.target_keypoints):
        sides = [WHOLE if kind == "whole" else window(side, FRAMING_CUTS[kind])
                 for kind, side in zip(deepfashion_framing(rng), points)]
        boxes.append(None if None in sides else (sides[0], sides[1]))
    return boxes


def framing_change(boxes: tuple[Box, Box]) -> str:
    """``same`` framing, ``target closer`` (zoomed in by more than 20%) or ``target wider``."""
    ratio = boxes[0][2] / boxes[1][2]
    return "target closer" if ratio > 1.2 else "target wider" if ratio < 1 / 1.2 else "same"


def closeup_scores(generator: torch.nn.Module, batches: list, boxes_of,  # noqa: ANN001
                   zooms: tuple[float, ...] = ()) -> dict[str, dict[str, list]]:
    """Per-pair scores of every row on the pairs windowed by ``boxes_of(batch)`` (:func:`cut_boxes`,
    :func:`framed_boxes`); ``change``: each pair's :func:`framing_change`. ``zooms``: extra rows of the generator
    with ``model.reframe_zoom`` set to each (models/reframe.py)."""
    base = generator.config
    variants = {"bundled default (its own Ŝ_B)": base.reframe_zoom} | {
        f"bundled default, reframe_zoom {factor}" if factor else "bundled default, reframe off": factor
        for factor in zooms}
    rows: dict[str, dict[str, list[float]]] = {}
    for batch in batches:
        boxes = boxes_of(batch)
        keep = [i for i, box in enumerate(boxes) if box is not None]
        if not keep:
            continue
        images = [torch.stack([zoom(side[i], boxes[i][k], "bilinear") for i in keep])
                  for k, side in enumerate((batch.source_image, batch.target_image))]
        labels = [torch.stack([zoom(side[i][None], boxes[i][k], "nearest")[0].long() for i in keep])
                  for k, side in enumerate((batch.source_labels, batch.target_labels))]
        points = [np.stack([zoom_keypoints(side[i], boxes[i][k]) for i in keep])
                  for k, side in enumerate((batch.source_keypoints, batch.target_keypoints))]
        changes = [framing_change(boxes[i]) for i in keep]
        made = {}
        with torch.no_grad():
            for name, factor in variants.items():
                generator.config = dataclasses.replace(base, reframe_zoom=factor)
                made[name] = generator(images[0], to_one_hot(labels[0], 20),
                                       *(keypoints_to_heatmaps(p, SIZE) for p in points),
                                       source_keypoints=points[0], target_keypoints=points[1]).image
            generator.config = base
        made |= {"part-affine warp (floor)": warp_image(images[0], labels[0], points[0], points[1], "lip20"),
                 "source copied (floor)": images[0]}
        truth = to_one_hot(labels[1], 20)
        for name, image in made.items():
            values = score(image, images[1], points[1])
            values["person_l1"] = person_l1(image, images[1], truth)
            for key in ("l1", "psnr", "person_l1"):
                rows.setdefault(name, {}).setdefault(key, []).extend(values[key])
            rows[name].setdefault("change", []).extend(changes)
    return rows


def summary(values: dict[str, list]) -> dict:
    """Means of one row's scores, overall and per framing change, with the pair counts."""
    changes = values.pop("change")
    out: dict = {key: float(np.mean(v)) for key, v in values.items()} | {"pairs": len(changes)}
    for change in sorted(set(changes)):
        picked = [i for i, c in enumerate(changes) if c == change]
        out[change] = {key: float(np.mean([v[i] for i in picked])) for key, v in values.items()} | {
            "pairs": len(picked)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", default="runs/appearance-real/ccp-256x176.npz")
    parser.add_argument("--split", choices=("validation", "held-out"), default="validation")
    parser.add_argument("--cuts", default="0.25,0.6", help="hips->ankles fractions of the window's bottom edge")
    parser.add_argument("--framed", action="store_true", help="each side framed as DeepFashion's (see above)")
    parser.add_argument("--reframe-zooms", default="",
                        help="extra rows: model.reframe_zoom values, comma separated (0: off)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="closeups")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.time()
    generator = load_generator("default").generator.eval()
    ids = tuple(HELD_OUT_IDS) if args.split == "held-out" else training_ids()[1]
    batches = pairs_of(CcpPhotos.load(args.photos), ids, generator.appearance.config, args.seed, still_camera=True)
    result: dict = {"split": args.split, "seed": args.seed, "cuts": {}}
    framing = "each side framed as DeepFashion's" if args.framed else "cut and zoomed to 256x176"
    lines = [f"# The default model on close-ups ({args.split} CCP pairs, still camera, {framing})", "",
             "| cut (hips->ankles) | method | pairs | L1 | PSNR | person L1 |", "|---|---|---|---|---|---|"]
    rng = np.random.default_rng(args.seed)
    framings = {"DeepFashion's": lambda batch: framed_boxes(batch, rng)} if args.framed else {
        str(cut): lambda batch, cut=cut: cut_boxes(batch, cut) for cut in (float(c) for c in args.cuts.split(","))}
    for key, boxes_of in framings.items():
        zooms = tuple(float(z) for z in args.reframe_zooms.split(",") if z.strip())
        result["cuts"][key] = {name: summary(values) for name, values in closeup_scores(
            generator, batches, boxes_of, zooms).items()}
        for name, r in result["cuts"][key].items():
            parts = [("", r)] + [(f", {c}", r[c]) for c in ("same", "target closer", "target wider") if c in r]
            lines += [f"| {key}{label} | {name} | {v['pairs']} | {v['l1']:.4f} | {v['psnr']:.2f} | "
                      f"{v['person_l1']:.4f} |" for label, v in parts if args.framed or not label]
    result["seconds"] = round(time.time() - started, 1)
    save_results(args.name, result, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
