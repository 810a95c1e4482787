"""A back view's face made hair in Ŝ_B (``model.layout_back_hair``), on VALIDATION pairs only: how the setting of
the bundled ``default`` was chosen (docs/models.md, "A back view shows no face").

The geometric network, trained mostly on front views, draws a face on some heads seen from behind; the appearance
network then copies the source face there (the back-of-head rule, ``CorrespondenceConfig.back_of_head``, acts on
Ŝ_B's hair only). With the rule, on pairs whose target keypoints show the person's back
(``part_maps.is_back_view``), Ŝ_B's face and sunglasses probabilities go to hair. No weights: the bundled
``default`` renders every pair with the rule off and on (the whole model: its Ŝ_B, as ``recapture evaluate`` and
``--layout network``). Pair sets as ``part_snap.py`` (never the held-out photos 0905-1004 nor the pose2sim
``test`` part). Needs ``runs/appearance-real/ccp-256x176.npz`` (``python -m recapture.training.parsed_photos``).
Writes ``benchmarks/results/back-hair.{json,md}``.

    .venv/bin/python benchmarks/back_hair.py
"""

from __future__ import annotations

from confident_layout import run_variants

VARIANTS = (("off", {"layout_back_hair": False}), ("on", {"layout_back_hair": True}))


def main() -> None:
    run_variants("back-hair", VARIANTS, "A back view's face made hair in Ŝ_B (`layout_back_hair`)", "back hair")


if __name__ == "__main__":
    main()
