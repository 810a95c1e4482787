"""Ŝ_B's person/background decision on large pose changes (``model.layout_person_confidence`` and
``model.layout_confident_above``), on VALIDATION pairs only: how the setting of the bundled ``default`` was chosen
(docs/models.md, "Confident silhouettes").

The geometric network's argmax calls a pixel person when some part beats the background. With a confidence ``c``, a
pixel is person only where 1 - P(background) > ``c`` (its part then the most likely one), for the pairs whose pose
changes by more than ``above`` torso lengths (``retarget.pose_distance``). The rule has no weights: the bundled
``default`` renders every pair with each setting (the whole model: its Ŝ_B, as ``recapture evaluate`` and
``--layout network``). Pair sets (never the held-out photos 0905-1004 nor the pose2sim ``test`` part): as
``part_snap.py``. Needs ``runs/appearance-real/ccp-256x176.npz`` (``python -m recapture.training.parsed_photos``).
Writes ``benchmarks/results/confident-layout.{json,md}``.

    .venv/bin/python benchmarks/confident_layout.py
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from appearance import score
from layout_choice import SIZE, validation_sets
from part_snap import white_sets
from pose2sim import person_l1, save_results
from recapture.body.keypoints import keypoints_to_heatmaps
from recapture.hub import load_generator
from recapture.models.layout_ops import to_one_hot

#: (name, layout_person_confidence, layout_confident_above); confidence 0: the plain argmax.
VARIANTS = (("argmax", 0.0, 0.0), ("0.7, every pair", 0.7, 0.0), ("0.8, every pair", 0.8, 0.0),
            ("0.9, every pair", 0.9, 0.0), ("0.8, above 0.2", 0.8, 0.2), ("0.8, above 0.3", 0.8, 0.3),
            ("0.85, above 0.3", 0.85, 0.3))
METRICS = ("l1", "person_l1", "face_l1", "person_area")


def pair_scores(default: torch.nn.Module, sets: list[tuple]) -> dict[str, dict[str, float]]:
    """``{variant: {metric: mean over pairs}}`` over batches of ``(image, labels, person one-hot, truth, source
    keypoints, target keypoints)``; ``person_area``: the share of Ŝ_B's pixels that are not background."""
    base = default.geometric.config
    table: dict[str, dict[str, list[float]]] = {}
    try:
        for image, labels, person, truth, source, target in sets:
            source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
            poses = [keypoints_to_heatmaps(k, SIZE) for k in (source, target)]
            for name, confidence, above in VARIANTS:
                default.geometric.config = dataclasses.replace(base, layout_person_confidence=confidence,
                                                               layout_confident_above=above)
                with torch.no_grad():
                    made = default(image, to_one_hot(labels, 20), *poses, source_keypoints=source,
                                   target_keypoints=target)
                values = score(made.image, truth, target)
                values["person_l1"] = person_l1(made.image, truth, person)
                values["person_area"] = (made.target_layout.argmax(1) > 0).float().mean(dim=(1, 2)).tolist()
                row = table.setdefault(name, {k: [] for k in METRICS})
                for key in METRICS:
                    row[key] += values[key]
    finally:
        default.geometric.config = base
    return {row: {key: float(np.mean(v)) for key, v in values.items()} for row, values in table.items()}


def markdown(result: dict) -> str:
    sets = list(result["sets"])
    lines = ["# Confident silhouettes (`layout_person_confidence`), validation pairs (bundled `default` weights)", "",
             "Whole-image L1 / person L1 per pair set, the whole model (its geometric network's Ŝ_B). See the "
             "script's docstring.", "",
             "| confidence, pose change | " + " | ".join(f"{s} L1 | person L1" for s in sets) + " |",
             "|---|" + "---|---|" * len(sets)]
    for row in result["sets"][sets[0]]:
        cells = [f"{result['sets'][s][row][k]:.4f}" for s in sets for k in ("l1", "person_l1")]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    lines += ["", "Share of Ŝ_B's pixels that are person: " + "; ".join(
        f"{s} " + " / ".join(f"{result['sets'][s][row]['person_area']:.3f}" for row in result["sets"][s])
        for s in sets), "", f"Wall time {result['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def main() -> None:
    torch.set_num_threads(1)
    started = time.time()
    default = load_generator("default").generator.eval()
    sources = validation_sets(default.appearance.config)
    sources["pose2sim on white"] = white_sets
    result = {"sets": {name: pair_scores(default, make()) for name, make in sources.items()}}
    result["seconds"] = round(time.time() - started, 1)
    save_results("confident-layout", result, markdown(result))


if __name__ == "__main__":
    main()
