"""Stand-ins for parts the source does not show (``CorrespondenceConfig.stand_ins``, models/stand_in.py) on the
re-posing VALIDATION pairs: the rule is for edited layouts, and this checks that plain re-posing does not lose by
it (docs/correspondence.md, "Parts the source does not show").

No weights: the bundled ``default`` renders every pair with the rule off and on. Pair sets as ``part_snap.py``
(never the held-out photos 0905-1004 nor the pose2sim ``test`` part). Needs
``runs/appearance-real/ccp-256x176.npz`` (``python -m recapture.training.parsed_photos``). Writes
``benchmarks/results/stand-ins.{json,md}``.

    .venv/bin/python benchmarks/stand_ins.py
"""

from __future__ import annotations

import torch

from confident_layout import layout_markdown, layout_scores
from part_snap import run_validation

VARIANTS = (("off", {"stand_ins": False}), ("on", {"stand_ins": True}))


def pair_scores(default: torch.nn.Module, sets: list[tuple]) -> dict[str, dict[str, float]]:
    return layout_scores(default, sets, VARIANTS, part="appearance")


def markdown(result: dict) -> str:
    return layout_markdown(result, "Stand-ins for parts the source does not show (`stand_ins`)", "stand-ins")


def main() -> None:
    run_validation("stand-ins", pair_scores, markdown)


if __name__ == "__main__":
    main()
