"""Where Ŝ_B costs the most, on VALIDATION pairs only: the bundled ``default``'s appearance network rendered with
its geometric network's Ŝ_B, with the true target layout (CCP and studio labels; pose2sim's parse), and with Ŝ_B
corrected from the truth in one respect at a time (docs/models.md, "Where Ŝ_B costs").

Rows (every one rendered by ``models.correspondence.repose`` with hard labels, so they compare among themselves):
``network``: Ŝ_B's argmax; ``truth``: the target layout; ``truth silhouette``: person exactly where the truth is,
each person pixel Ŝ_B's most likely part; ``truth parts``: Ŝ_B's silhouette, each of its person pixels the true part
where the truth is person; ``truth <group>``: every pixel that Ŝ_B or the truth gives to the group takes the true
label (``head``: hat, hair, sunglasses, face; ``upper``: upper garments, scarf, gloves, arms; ``lower``: lower
garments, legs, socks, shoes). A diagnostic: nothing is chosen on it. Pair sets as ``part_snap.py`` (never the
held-out photos 0905-1004 nor the pose2sim ``test`` part). Writes ``benchmarks/results/layout-oracles.{json,md}``.

    .venv/bin/python benchmarks/layout_oracles.py
"""

from __future__ import annotations

import torch

from part_snap import add_scores, l1_table, posed, run_validation, table_means
from recapture.body.parts import LIP20
from recapture.models.correspondence import repose
from recapture.models.layout_ops import to_one_hot

GROUPS = {"head": ("hat", "hair", "sunglasses", "face"),
          "upper": ("upper_clothes", "coat", "dress", "jumpsuits", "scarf", "glove", "left_arm", "right_arm"),
          "lower": ("pants", "skirt", "left_leg", "right_leg", "socks", "left_shoe", "right_shoe")}
METRICS = ("l1", "person_l1", "face_l1")


def corrected(network: torch.Tensor, probabilities: torch.Tensor, truth: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{row: (B, H, W) labels}`` from Ŝ_B's labels and ``(B, N, H, W)`` probabilities and the true labels."""
    best_part = probabilities[:, 1:].argmax(dim=1) + 1
    rows = {"network": network, "truth": truth,
            "truth silhouette": torch.where(truth > 0, best_part, 0),
            "truth parts": torch.where(network > 0, torch.where(truth > 0, truth, network), 0)}
    for name, parts in GROUPS.items():
        members = torch.tensor([LIP20.index(p) for p in parts])
        touched = torch.isin(network, members) | torch.isin(truth, members)
        rows[f"truth {name}"] = torch.where(touched, truth, network)
    return rows


def pair_scores(default: torch.nn.Module, sets: list[tuple]) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, list[float]]] = {}
    for image, labels, person, truth_image, source, target, poses in posed(sets):
        with torch.no_grad():
            made = default(image, to_one_hot(labels, 20), *poses, source_keypoints=source, target_keypoints=target)
            layouts = corrected(made.layout_logits.argmax(1), made.layout_logits.softmax(1), person.argmax(1))
            for row, target_labels in layouts.items():
                rendered = repose(default.appearance, image, labels, source, target, target_labels).image
                add_scores(table, row, rendered, truth_image, person, target, METRICS)
    return table_means(table)


def markdown(result: dict) -> str:
    sets = list(result["sets"])
    lines = l1_table(result, "Where Ŝ_B costs: Ŝ_B corrected from the truth, validation pairs (bundled `default`)",
                     "Whole-image L1 / person L1 per pair set. See the script's docstring.", "target layout")
    lines += ["", "Face-box L1: " + "; ".join(f"{s} " + " / ".join(f"{result['sets'][s][row]['face_l1']:.4f}"
                                                                     for row in result["sets"][s]) for s in sets),
              "", f"Wall time {result['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def main() -> None:
    run_validation("layout-oracles", pair_scores, markdown)


if __name__ == "__main__":
    main()
