"""The target's torso made person in Ŝ_B (``model.layout_torso_person``), on VALIDATION pairs only: how the rule
was chosen (docs/models.md, "The torso is person").

On real people the geometric network sometimes leaves holes of background inside the target's body - most on
people unlike CCP's (a bare torso the parser calls a garment, a leaning or kicking pose): under the
still-background rule the wall is then copied where the body should be. With the rule, every Ŝ_B pixel inside the
quadrilateral of the target's shoulders and hips (``body/part_maps.torso_mask``) is person, its most likely part.
No weights: the bundled ``default`` renders every pair with the rule off and on, and on with a stricter
confident-person setting (the whole model, its Ŝ_B, as ``recapture evaluate`` and ``--layout network``). Pair sets as ``part_snap.py`` (never the held-out photos 0905-1004
nor the pose2sim ``test`` part). Needs ``runs/appearance-real/ccp-256x176.npz`` (``python -m
recapture.training.parsed_photos``). Writes ``benchmarks/results/torso-layout.{json,md}``.

    .venv/bin/python benchmarks/torso_layout.py
"""

from __future__ import annotations

from confident_layout import run_variants

#: The rule off and on (with the confident-person setting of the bundled file, 0.8 above 0.3), then on with that
#: setting made stricter: with the torso kept, trimming unsure edges costs less.
VARIANTS = (("off (the model before the rule)", {"layout_torso_person": False}),
            ("torso made person", {"layout_torso_person": True}),
            *((f"torso made person, confidence {c:g} above 0.3", {"layout_torso_person": True,
                                                                 "layout_person_confidence": c,
                                                                 "layout_confident_above": 0.3}) for c in (0.9, 0.95)))


def main() -> None:
    run_variants("torso-layout", VARIANTS, "The target's torso made person in Ŝ_B (`layout_torso_person`)", "rule")


if __name__ == "__main__":
    main()
