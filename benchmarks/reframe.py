"""A camera that zoomed (``model.reframe_zoom``, models/reframe.py), on VALIDATION pairs only: how the setting of
the bundled ``default`` was chosen (docs/models.md, "A camera that zoomed").

The rule has no weights: the bundled ``default`` renders every pair with the source re-framed to the target's scale
when the torso's length changes by more than each factor, and without (the whole model, its own Ŝ_B). Pair sets
(never the held-out photos 0905-1004 nor the pose2sim ``test`` part): those of ``part_snap.py`` - the framed studio
pairs change zoom as DeepFashion's do, but SynthHumans draws its wall for the image, not for the camera (the wall's
gradient does not zoom with the person), so there the background L1 column is not the camera's truth; the real
photos framed that way are ``closeups.py --framed``. Needs ``runs/appearance-real/ccp-256x176.npz``. Writes
``benchmarks/results/reframe.{json,md}``.

    .venv/bin/python benchmarks/reframe.py
"""

from __future__ import annotations

import dataclasses

import torch

from part_snap import add_scores, l1_table, posed, run_validation, table_means
from pose2sim import region_l1
from recapture.models.layout_ops import to_one_hot

ZOOMS = (0.0, 1.15, 1.25, 1.4)
METRICS = ("l1", "psnr", "person_l1", "background_l1")


def name(zoom: float) -> str:
    return f"reframe_zoom {zoom}" if zoom else "off"


def background_l1(rendered: torch.Tensor, truth: torch.Tensor, person: torch.Tensor) -> list[float]:
    """Per-pair L1 (on [0, 1]) over the target's background pixels (``person`` one-hot, argmax 0)."""
    return region_l1(rendered, truth, (person.argmax(dim=1, keepdim=True) == 0).float())


def pair_scores(default: torch.nn.Module, sets: list[tuple]) -> dict[str, dict[str, float]]:
    """``{variant: {metric: mean over pairs}}`` with ``model.reframe_zoom`` set to each of :data:`ZOOMS`."""
    base = default.config
    table: dict[str, dict[str, list[float]]] = {}
    try:
        for image, labels, person, truth, source, target, poses in posed(sets):
            for zoom in ZOOMS:
                default.config = dataclasses.replace(base, reframe_zoom=zoom)
                with torch.no_grad():
                    made = default(image, to_one_hot(labels, 20), *poses, source_keypoints=source,
                                   target_keypoints=target).image
                add_scores(table, name(zoom), made, truth, person, target, METRICS,
                           {"background_l1": background_l1(made, truth, person)})
    finally:
        default.config = base
    return table_means(table)


def markdown(result: dict) -> str:
    sets = list(result["sets"])
    lines = l1_table(result, "A camera that zoomed (`reframe_zoom`), validation pairs (bundled `default` weights)",
                     "Whole-image L1 / person L1 per pair set, the whole model. See the script's docstring.",
                     "re-framing")
    for key, label in (("background_l1", "Background L1"), ("psnr", "PSNR")):
        lines += ["", f"{label}: " + "; ".join(
            f"{s} " + " / ".join(f"{result['sets'][s][row][key]:.4f}" for row in result["sets"][s]) for s in sets)]
    return "\n".join(lines + ["", f"Wall time {result['seconds']:.0f} s."]) + "\n"


def main() -> None:
    run_validation("reframe", pair_scores, markdown)


if __name__ == "__main__":
    main()
