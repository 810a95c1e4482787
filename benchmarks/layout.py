"""Target-layout quality (issue 14): the keypoint prior alone, the geometric network alone, and the prior +
network, on a SynthHumans set none of them trained on; then L1/PSNR of the model's images with its own
predicted layout against the true layout (and of the training-free warp of the image).

Layout scores, per pair then averaged:
* ``layout_iou``: `recapture evaluate`'s (mean IoU over non-background labels present in either map);
* ``band_iou``: the same with pixels within 2 px of a true label boundary left out (tolerant to edges);
* ``iou_<group>``: mean IoU of the group's labels (arms, legs, hair, face, shoes), over pairs where the
  group appears in either map.

    recapture synth --out data/synth-eval-256 --people 60 --poses 6 --seed 12345 --size 256x176
    PYTHONPATH=src python3 benchmarks/layout.py --data data/synth-eval-256/manifest.yaml \\
        --model default --network-alone runs/default-export/layout-noprior.safetensors
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from recapture.body.parts import LIP20
from recapture.data.dataset import PairBatch, PairDataset, collate_pairs
from recapture.evaluation.ssim import l1_distance, psnr, to_uint8
from recapture.evaluation.synthetic import layout_iou
from recapture.hub import load_generator
from recapture.body.keypoint_warp import part_warp, warp_image

GROUPS = {"arms": ("left_arm", "right_arm"), "legs": ("left_leg", "right_leg"), "hair": ("hair",),
          "face": ("face",), "shoes": ("left_shoe", "right_shoe")}
BAND = 2


def boundary_band(labels: torch.Tensor, width: int = BAND) -> torch.Tensor:
    """``(B, H, W)`` bool: pixels within ``width`` px of a label boundary of ``labels``."""
    x = labels.unsqueeze(1).float()
    high = F.max_pool2d(x, 3, 1, 1)
    low = -F.max_pool2d(-x, 3, 1, 1)
    edge = (high != low).float()
    return F.max_pool2d(edge, 2 * width + 1, 1, width)[:, 0] > 0


def scores(predicted: torch.Tensor, truth: torch.Tensor) -> dict[str, list[float]]:
    """Per-pair layout scores of ``(B, H, W)`` label maps."""
    out: dict[str, list[float]] = {"layout_iou": layout_iou(predicted, truth, LIP20.num_parts)[0].tolist()}
    band = boundary_band(truth)
    ignore = LIP20.num_parts  # an extra label that neither map scores
    kept_p = torch.where(band, torch.full_like(predicted, ignore), predicted)
    kept_t = torch.where(band, torch.full_like(truth, ignore), truth)
    hot_p = F.one_hot(kept_p, ignore + 1)[..., :ignore].flatten(1, 2).double()
    hot_t = F.one_hot(kept_t, ignore + 1)[..., :ignore].flatten(1, 2).double()
    inter = (hot_p * hot_t).sum(1)
    union = hot_p.sum(1) + hot_t.sum(1) - inter
    union[:, 0] = 0
    present = union > 0
    iou = torch.where(present, inter / union.clamp_min(1), torch.zeros_like(union))
    out["band_iou"] = (iou.sum(1) / present.sum(1).clamp_min(1)).tolist()
    hot_p = F.one_hot(predicted, LIP20.num_parts).flatten(1, 2).double()
    hot_t = F.one_hot(truth, LIP20.num_parts).flatten(1, 2).double()
    inter = (hot_p * hot_t).sum(1)
    union = hot_p.sum(1) + hot_t.sum(1) - inter
    for group, names in GROUPS.items():
        index = [LIP20.index(n) for n in names]
        seen = union[:, index] > 0
        values = torch.where(seen, inter[:, index] / union[:, index].clamp_min(1), torch.zeros_like(inter[:, index]))
        count = seen.sum(1)
        out[f"iou_{group}"] = [float(v / c) for v, c in zip(values.sum(1), count) if c > 0]
    return out


def image_scores(images: torch.Tensor, batch: PairBatch) -> dict[str, list[float]]:
    """L1 and PSNR of ``(B, 3, H, W)`` images in [-1, 1] against the batch's targets."""
    generated = to_uint8(((images.float() + 1) / 2).clamp(0, 1), "generated").cpu()
    real = to_uint8(((batch.target_image.float() + 1) / 2).clamp(0, 1), "real").cpu()
    return {"l1": l1_distance(generated, real).tolist(), "psnr": psnr(generated, real).tolist()}


def add(table: dict[str, dict[str, list[float]]], row: str, values: dict[str, list[float]]) -> None:
    for key, items in values.items():
        table.setdefault(row, {}).setdefault(key, []).extend(items)


@torch.no_grad()
def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    dataset = PairDataset(args.data, split=args.split)
    indices = list(range(len(dataset))) if args.limit is None else \
        [(i * len(dataset)) // args.limit for i in range(min(args.limit, len(dataset)))]
    loader = DataLoader(Subset(dataset, indices), batch_size=args.batch_size, collate_fn=collate_pairs)
    model = load_generator(args.model, device)
    alone = load_generator(args.network_alone, device) if args.network_alone else None
    table: dict[str, dict[str, list[float]]] = {}
    start = time.monotonic()
    for batch in loader:
        batch = batch.to(device)
        truth = batch.target_layout.argmax(1)
        add(table, "copy source layout", scores(batch.source_layout.argmax(1), truth))
        warp = part_warp(batch.source_layout, batch.source_keypoints, batch.target_keypoints, LIP20)
        add(table, "prior alone (keypoint warp)", scores(warp.labels, truth))
        add(table, "warp image (training-free)", image_scores(
            warp_image(batch.source_image, batch.source_layout, None, None, LIP20, warp=warp), batch))
        if alone is not None:
            logits = alone.generator.geometric(batch.source_layout, batch.source_pose, batch.target_pose,
                                               batch.source_keypoints, batch.target_keypoints)
            add(table, "network alone", scores(logits.argmax(1), truth))
        keypoints = {"source_keypoints": batch.source_keypoints, "target_keypoints": batch.target_keypoints}
        logits = model.generator.geometric(batch.source_layout, batch.source_pose, batch.target_pose,
                                           batch.source_keypoints, batch.target_keypoints)
        add(table, "prior + network", scores(logits.argmax(1), truth))
        predicted = model.generator(batch.source_image, batch.source_layout, batch.source_pose, batch.target_pose,
                                    layout_logits=logits, **keypoints)
        add(table, "model, predicted layout", image_scores(predicted.image, batch))
        given = model.generator(batch.source_image, batch.source_layout, batch.source_pose, batch.target_pose,
                                target_layout=batch.target_layout, layout_logits=logits, **keypoints)
        add(table, "model, true layout", image_scores(given.image, batch))
    rows = {row: {k: sum(v) / len(v) for k, v in values.items() if v} for row, values in table.items()}
    return {"data": str(args.data), "split": args.split, "pairs": len(indices), "model": model.source,
            "network_alone": alone.source if alone else None, "model_metadata": model.metadata,
            "seconds": time.monotonic() - start, "device": str(device), "rows": rows,
            "definitions": __doc__.split("Layout scores")[1].split("    recapture synth")[0].strip()}


def markdown(result: dict) -> str:
    layout_cols = ["layout_iou", "band_iou"] + [f"iou_{g}" for g in GROUPS]
    lines = [f"Target layout on `{result['data']}` ({result['split']}, {result['pairs']} pairs), model "
             f"`{result['model']}`.", "", "| layout | " + " | ".join(layout_cols) + " |",
             "|---" * (len(layout_cols) + 1) + "|"]
    for row, values in result["rows"].items():
        if "layout_iou" in values:
            lines.append(f"| {row} | " + " | ".join(f"{values.get(c, float('nan')):.3f}" for c in layout_cols) + " |")
    lines += ["", "| images | L1 | PSNR |", "|---|---|---|"]
    for row, values in result["rows"].items():
        if "l1" in values:
            lines.append(f"| {row} | {values['l1']:.4f} | {values['psnr']:.2f} |")
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="manifest of a SynthHumans set (256x176)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", default="default", help="model with the prior (bundled name, file or run)")
    parser.add_argument("--network-alone", help="model whose geometric network has no prior (file or run)")
    parser.add_argument("--limit", type=int, help="score N pairs, evenly spaced")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="benchmarks/results/layout", help="writes OUT.json and OUT.md")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    result = run(args)
    text = markdown(result)
    print(text)
    write_atomic(Path(args.out + ".json"), json.dumps(result, indent=2) + "\n")
    write_atomic(Path(args.out + ".md"), text)


if __name__ == "__main__":
    main()
