"""The back of the head (``CorrespondenceConfig.back_of_head``), on VALIDATION pairs only: how the rule was chosen
(docs/correspondence.md, "The back of the head").

When the target keypoints show the person's back (``part_maps.view_of``), target hair pixels whose full-size prior
sample lands on the source face or sunglasses sample the source hair instead, mirrored across its nearest edge
(``body/prior_numpy.hair_over_face``). The rule has no weights: the bundled ``default`` renders every pair with the
rule off and on (the whole model: its geometric network's Ŝ_B, as ``recapture evaluate`` and ``--layout network``;
and its appearance network on the warp of S_A, the photo path's ``--layout prior``). Pair sets (never the held-out
photos 0905-1004 nor the pose2sim ``test`` part): as ``geometric_candidates.py`` (studio view changes full body and
framed as DeepFashion's pairs). Needs ``runs/appearance-real/ccp-256x176.npz`` (``python -m
recapture.training.parsed_photos``). Writes ``benchmarks/results/back-of-head.{json,md}``.

    .venv/bin/python benchmarks/back_of_head.py
"""

from __future__ import annotations

import dataclasses

import torch

from part_snap import add_scores, both_layouts, l1_table, posed, run_validation, table_means
from recapture.models.correspondence import back_views

METRICS = ("l1", "psnr", "person_l1", "face_l1")


def pair_scores(default: torch.nn.Module, sets: list[tuple], rule: str = "back_of_head"
                ) -> dict[str, dict[str, float]]:
    """``{"<Ŝ_B>, rule <off|on>": {metric: mean over pairs}}`` with the appearance config's boolean ``rule`` off
    and on (and the share of pairs whose target is a back view)."""
    base = default.appearance.config
    table: dict[str, dict[str, list[float]]] = {}
    backs: list[float] = []
    try:
        for image, labels, person, truth, source, target, poses in posed(sets):
            backs += [float(b) for b in back_views(dataclasses.replace(base, back_of_head=True), target,
                                                   image.shape[-2])]
            for flag in (False, True):
                default.appearance.config = dataclasses.replace(base, **{rule: flag})
                for kind, rendered in both_layouts(default, image, labels, source, target, poses).items():
                    add_scores(table, f"{kind}, rule {'on' if flag else 'off'}", rendered, truth, person, target,
                               METRICS)
    finally:
        default.appearance.config = base
    return table_means(table) | {"back views": {"share": sum(backs) / max(len(backs), 1)}}


def markdown(result: dict, title: str = "The back of the head (`back_of_head`)") -> str:
    sets = list(result["sets"])
    shares = {s: result["sets"][s].pop("back views")["share"] for s in sets}
    lines = l1_table(result, f"{title}, validation pairs (bundled `default` weights)",
                     "Whole-image L1 / person L1 per pair set; Ŝ_B = the geometric network's (the whole model) or "
                     "the warp of S_A (`--layout prior`). See the script's docstring.", "Ŝ_B, rule")
    lines += ["", "Face-box L1: " + "; ".join(f"{s} " + " / ".join(f"{result['sets'][s][row]['face_l1']:.4f}"
                                                                     for row in result["sets"][s]) for s in sets),
              "", "Share of pairs whose target is a back view: " + ", ".join(f"{s} {v:.2f}" for s, v in shares.items()),
              "", f"Wall time {result['seconds']:.0f} s."]
    for s in sets:
        result["sets"][s]["back views"] = {"share": shares[s]}
    return "\n".join(lines) + "\n"


def main() -> None:
    run_validation("back-of-head", pair_scores, markdown)


if __name__ == "__main__":
    main()
