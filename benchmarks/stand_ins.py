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

from confident_layout import run_variants

VARIANTS = (("off", {"stand_ins": False}), ("on", {"stand_ins": True}))


def main() -> None:
    run_variants("stand-ins", VARIANTS, "Stand-ins for parts the source does not show (`stand_ins`)", "stand-ins",
                 part="appearance")


if __name__ == "__main__":
    main()
