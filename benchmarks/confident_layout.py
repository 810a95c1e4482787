"""Ŝ_B's person/background decision on large pose changes (``model.layout_person_confidence`` and
``model.layout_confident_above``), on VALIDATION pairs only: how the setting of the bundled ``default`` was chosen
(docs/models.md, "Confident silhouettes").

The geometric network's argmax calls a pixel person when some part beats the background. With a confidence ``c``, a
pixel is person only where 1 - P(background) > ``c`` (its part then the most likely one), for the pairs whose pose
changes by more than ``above`` torso lengths (``retarget.pose_distance``). The rule has no weights: the bundled
``default`` renders every pair with each setting (the whole model: its Ŝ_B, as ``recapture evaluate`` and
``--layout network``). Pair sets (never the held-out photos 0905-1004 nor the pose2sim ``test`` part): as
``part_snap.py``. Needs ``runs/appearance-real/ccp-256x176.npz`` (``python -m recapture.training.parsed_photos``).
Writes ``benchmarks/results/confident-layout.{json,md}``. ``--geometric FILE`` puts a candidate geometric network
(a ``layout_real`` weight file, as ``geometric_candidates.py``) in place of the shipped one first, so that a
candidate's own setting is found before it is compared (``--settings`` lists ``confidence:above`` pairs).

    .venv/bin/python benchmarks/confident_layout.py
    .venv/bin/python benchmarks/confident_layout.py --geometric runs/layout-miss4/best.safetensors \
        --settings 0.8:0.3,0.9:0.3 --name confident-layout-miss4
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from geometric_candidates import geometric_state
from part_snap import add_scores, l1_table, posed, run_validation, table_means
from recapture.models.layout_ops import to_one_hot

#: (name, layout_person_confidence, layout_confident_above); confidence 0: the plain argmax.
SETTINGS = (("argmax", 0.0, 0.0), ("0.7, every pair", 0.7, 0.0), ("0.8, every pair", 0.8, 0.0),
            ("0.9, every pair", 0.9, 0.0), ("0.8, above 0.2", 0.8, 0.2), ("0.8, above 0.3", 0.8, 0.3),
            ("0.85, above 0.3", 0.85, 0.3))
#: (name, the geometric config's fields that variant changes).
VARIANTS = tuple((name, {"layout_person_confidence": confidence, "layout_confident_above": above})
                 for name, confidence, above in SETTINGS)
METRICS = ("l1", "person_l1", "face_l1", "person_area")


def pair_scores(default: torch.nn.Module, sets: list[tuple]) -> dict[str, dict[str, float]]:
    """:func:`layout_scores` of the confidence settings :data:`VARIANTS`."""
    return layout_scores(default, sets, VARIANTS)


def layout_scores(default: torch.nn.Module, sets: list[tuple],
                  variants: tuple[tuple[str, dict[str, object]], ...], part: str = "geometric"
                  ) -> dict[str, dict[str, float]]:
    """``{variant: {metric: mean over pairs}}`` over batches of ``(image, labels, person one-hot, truth, source
    keypoints, target keypoints)``, each variant the config of ``default``'s ``part`` (geometric | appearance)
    with its fields changed; ``person_area``: the share of Ŝ_B's pixels that are not background."""
    module = getattr(default, part)
    base = module.config
    table: dict[str, dict[str, list[float]]] = {}
    try:
        for image, labels, person, truth, source, target, poses in posed(sets):
            for name, changes in variants:
                module.config = dataclasses.replace(base, **changes)
                with torch.no_grad():
                    made = default(image, to_one_hot(labels, 20), *poses, source_keypoints=source,
                                   target_keypoints=target)
                area = (made.target_layout.argmax(1) > 0).float().mean(dim=(1, 2)).tolist()
                add_scores(table, name, made.image, truth, person, target, METRICS, {"person_area": area})
    finally:
        module.config = base
    return table_means(table)


def markdown(result: dict) -> str:
    return layout_markdown(result, "Confident silhouettes (`layout_person_confidence`)", "confidence, pose change")


def layout_markdown(result: dict, title: str, header: str) -> str:
    """The results of :func:`layout_scores` as Markdown: L1 per pair set and variant, Ŝ_B's person share."""
    sets = list(result["sets"])
    lines = l1_table(result, f"{title}, validation pairs (bundled `default` weights)", "Whole-image L1 / person L1 "
                     "per pair set, the whole model (its geometric network's Ŝ_B). See the script's docstring.",
                     header)
    lines += ["", "Share of Ŝ_B's pixels that are person: " + "; ".join(
        f"{s} " + " / ".join(f"{result['sets'][s][row]['person_area']:.3f}" for row in result["sets"][s])
        for s in sets), "", f"Wall time {result['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def run_variants(name: str, variants: tuple[tuple[str, dict[str, object]], ...], title: str, header: str,
                 part: str = "geometric") -> None:
    """Score the bundled ``default`` with each config variant of its ``part`` on every validation pair set and save
    ``benchmarks/results/NAME.{json,md}`` (:func:`layout_scores`, :func:`layout_markdown`)."""
    run_validation(name, lambda default, sets: layout_scores(default, sets, variants, part),
                   lambda result: layout_markdown(result, title, header))


def variants_of(settings: str) -> tuple[tuple[str, dict[str, object]], ...]:
    """``"0.8:0.3,0.9:0"`` -> variants of (confidence, above); an empty string -> :data:`VARIANTS`."""
    if not settings:
        return VARIANTS
    pairs = [tuple(float(value) for value in item.split(":")) for item in settings.split(",")]
    return tuple((f"{confidence}, above {above}" if confidence else "argmax",
                  {"layout_person_confidence": confidence, "layout_confident_above": above})
                 for confidence, above in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--geometric", default="", metavar="FILE", help="a candidate geometric network (layout_real)")
    parser.add_argument("--settings", default="", help="confidence:above pairs, comma separated (default: SETTINGS)")
    parser.add_argument("--name", default="confident-layout")
    args = parser.parse_args()
    variants = variants_of(args.settings)
    candidate = geometric_state(args.geometric) if args.geometric else None

    def scores(default: torch.nn.Module, sets: list[tuple]) -> dict[str, dict[str, float]]:
        if candidate is not None:
            default.geometric.load_state_dict(candidate)
        return layout_scores(default, sets, variants)

    run_validation(args.name, scores, markdown)


if __name__ == "__main__":
    main()
