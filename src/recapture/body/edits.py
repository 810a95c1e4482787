"""Layout edits: what a user asks of the target layout Ŝ_B before the appearance transformation
(paper §3.2: "ŜB can be further modified by user ... for changing the body figure and clothing").

A :class:`LayoutEdits` holds figure edits (a part group made thinner or fatter, :mod:`.figure`) and
clothing edits (a garment slot set to a category, :mod:`.clothing`); ``apply`` runs the figure edits,
then the clothing edits, on an ``(H, W)`` label map. docs/edits.md describes every operation.

Names follow SynthHumans (``data/synthetic/people.py``) so that an edit made through the layout can be
scored against SynthHumans' re-rendered truth: :meth:`LayoutEdits.from_clothing_change` maps its
change names, :meth:`LayoutEdits.from_garments` the ``garment_from, garment_to`` of its edits CSV.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from recapture.body.bones import bone_maps, label_roles
from recapture.body.clothing import (
    CLOTHING_SLOTS, LOWER_CATEGORIES, UPPER_CATEGORIES, GarmentShapes, apply_clothing_edit, check_clothing,
    edit_clothing,
)
from recapture.body.figure import (
    FACTOR_RANGE, FIGURE_GROUPS, apply_figure_edit, check_factor, check_layout, edit_figure, resolve_factors,
)
from recapture.body.parts import LabelSet

__all__ = [
    "FIGURE_GROUPS", "FACTOR_RANGE", "CLOTHING_SLOTS", "UPPER_CATEGORIES", "LOWER_CATEGORIES", "CLOTHING_CHANGE_EDITS",
    "GarmentShapes", "LayoutEdits", "apply_figure_edit", "apply_clothing_edit", "edit_region",
]

#: SynthHumans clothing changes (``people.CLOTHING_CHANGES``) -> the layout edit ``(slot, category)``.
CLOTHING_CHANGE_EDITS: dict[str, tuple[str, str]] = {
    "shorts_to_pants": ("lower", "pants"),
    "t_shirt_to_long_sleeves": ("upper", "long_sleeves"),
    "pants_to_skirt": ("lower", "skirt"),
    "add_coat": ("upper", "coat"),
    "skirt_to_pants": ("lower", "pants"),
    "remove_coat": ("upper", "no_coat"),
}
#: SynthHumans garment pairs ``(garment_from, garment_to)`` of each change (``none`` = no garment).
CLOTHING_CHANGE_GARMENTS: dict[str, tuple[str, str]] = {
    "shorts_to_pants": ("shorts", "pants"),
    "t_shirt_to_long_sleeves": ("t_shirt", "long_sleeves"),
    "pants_to_skirt": ("pants", "skirt"),
    "add_coat": ("none", "coat"),
    "skirt_to_pants": ("skirt", "pants"),
    "remove_coat": ("coat", "none"),
}


def _split(entry: str, what: str) -> tuple[str, str]:
    name, sep, value = str(entry).partition("=")
    if not sep or not name.strip() or not value.strip():
        raise ValueError(f"{what} edit {entry!r} must look like NAME=VALUE")
    return name.strip(), value.strip()


@dataclass(frozen=True)
class LayoutEdits:
    """Edits of a target layout.

    ``figure``: ``(group, factor)`` pairs, group in :data:`FIGURE_GROUPS` (``body`` = arms, legs and
    torso), factor in [0.5, 2] (0.8 thinner, 1.3 fatter; factors of one group multiply).
    ``clothing``: ``(slot, category)`` pairs applied in order, slot ``upper`` (t_shirt, long_sleeves, coat,
    no_coat) or ``lower`` (pants, shorts, skirt).
    """

    figure: tuple[tuple[str, float], ...] = ()
    clothing: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        try:
            figure = tuple((str(g), float(f)) for g, f in self.figure)
        except (TypeError, ValueError):
            raise ValueError(f"figure edits must be (group, number) pairs, got {self.figure!r}") from None
        for group, factor in figure:
            if group not in FIGURE_GROUPS:
                raise ValueError(f"unknown figure group {group!r}; valid: {', '.join(FIGURE_GROUPS)}")
            check_factor(group, factor)
        clothing = tuple((str(s), str(c)) for s, c in self.clothing)
        for slot, category in clothing:
            if slot not in CLOTHING_SLOTS:
                raise ValueError(f"unknown clothing slot {slot!r}; valid: {', '.join(CLOTHING_SLOTS)}")
            if category not in CLOTHING_SLOTS[slot]:
                raise ValueError(f"unknown {slot} garment {category!r}; valid: {', '.join(CLOTHING_SLOTS[slot])}")
        object.__setattr__(self, "figure", figure)
        object.__setattr__(self, "clothing", clothing)

    @classmethod
    def parse(cls, figure: Sequence[str] = (), clothing: Sequence[str] = ()) -> "LayoutEdits":
        """From ``GROUP=FACTOR`` strings (``arms=0.8``) and ``SLOT=CATEGORY`` strings (``lower=skirt``)."""
        pairs = []
        for entry in figure:
            group, value = _split(entry, "figure")
            try:
                factor = float(value)
            except ValueError:
                raise ValueError(f"figure edit {entry!r}: factor {value!r} is not a number "
                                 f"(expected {FACTOR_RANGE[0]}..{FACTOR_RANGE[1]})") from None
            pairs.append((group, factor))
        return cls(figure=tuple(pairs), clothing=tuple(_split(entry, "clothing") for entry in clothing))

    @classmethod
    def from_clothing_change(cls, change: str) -> "LayoutEdits":
        """The layout edit of a SynthHumans clothing change (``pants_to_skirt`` -> ``lower=skirt``)."""
        if change not in CLOTHING_CHANGE_EDITS:
            raise ValueError(f"unknown clothing change {change!r}; valid: {', '.join(CLOTHING_CHANGE_EDITS)}")
        return cls(clothing=(CLOTHING_CHANGE_EDITS[change],))

    @classmethod
    def from_garments(cls, garment_from: str, garment_to: str) -> "LayoutEdits":
        """The layout edit of a SynthHumans edits-CSV row ``garment_from, garment_to`` (``none,coat``)."""
        for change, garments in CLOTHING_CHANGE_GARMENTS.items():
            if garments == (garment_from, garment_to):
                return cls.from_clothing_change(change)
        valid = ", ".join(f"{a}->{b}" for a, b in CLOTHING_CHANGE_GARMENTS.values())
        raise ValueError(f"no layout edit for garments {garment_from!r} -> {garment_to!r}; valid: {valid}")

    @classmethod
    def from_figure(cls, part_group: str, factor: float) -> "LayoutEdits":
        """The layout edit of a SynthHumans figure edit (part group arms | legs | torso, width factor)."""
        return cls(figure=((part_group, factor),))

    def is_empty(self) -> bool:
        """True when applying changes nothing by construction (no edits, or only factors of 1)."""
        return not self.clothing and all(factor == 1.0 for _, factor in self.figure)

    def apply(self, labels: np.ndarray, keypoints: np.ndarray, label_set: LabelSet,
              shapes: GarmentShapes = GarmentShapes()) -> np.ndarray:
        """Edit ``labels`` ``(H, W)`` of ``label_set`` posed by ``keypoints`` ``(18, 2)``: the figure edits,
        then each clothing edit in order. Returns new labels; the input is not modified."""
        labels = check_layout(labels, keypoints, label_set)
        for slot, category in self.clothing:
            check_clothing(slot, category, label_set)
        factors: dict[str, float] = {}
        for group, factor in self.figure:
            factors[group] = factors.get(group, 1.0) * factor
        per_group = resolve_factors(factors)
        if self.is_empty():
            return labels.copy()
        maps, roles = bone_maps(keypoints, labels.shape), label_roles(label_set)
        out = edit_figure(labels, maps, roles, per_group)
        for slot, category in self.clothing:
            out = edit_clothing(out, maps, roles, {slot: category}, shapes)
        return out


def edit_region(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool mask of the pixels whose label an edit changed."""
    before, after = np.asarray(before), np.asarray(after)
    if before.shape != after.shape:
        raise ValueError(f"layouts differ in shape: {before.shape} vs {after.shape}")
    return before != after
