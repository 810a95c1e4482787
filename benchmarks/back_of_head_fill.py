"""The back-of-head fill (``CorrespondenceConfig.back_of_head_fill``, models/stand_in.py), on VALIDATION pairs only:
how the rule was chosen (docs/correspondence.md, "The back of the head").

On pairs that turn the person's back (``part_maps.turns_back``: the target keypoints show the back, the source's do
not), target hair pixels whose coarse sample lands on the source face or sunglasses take the source hair's mean
colour instead of the back-of-head rule's mirrored hair (a mosaic of hair blocks and face fragments on real photos).
No weights: the bundled ``default`` renders every pair with the fill off and on, with both Ŝ_B (the geometric
network's and the warp of S_A). Pair sets as ``back_of_head.py`` (never the held-out photos 0905-1004 nor the
pose2sim ``test`` part). Needs ``runs/appearance-real/ccp-256x176.npz`` (``python -m
recapture.training.parsed_photos``). Writes ``benchmarks/results/back-of-head-fill.{json,md}``.

    .venv/bin/python benchmarks/back_of_head_fill.py
"""

from __future__ import annotations

from back_of_head import markdown, pair_scores
from part_snap import run_validation


def main() -> None:
    run_validation("back-of-head-fill", lambda default, sets: pair_scores(default, sets, "back_of_head_fill"),
                   lambda result: markdown(result, "The back-of-head fill (`back_of_head_fill`)"))


if __name__ == "__main__":
    main()
