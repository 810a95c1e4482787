"""Clothing edits: change a garment of a layout, extending or trimming its shape (docs/edits.md).

Positions along a limb are :class:`~recapture.body.bones.Ownership` chain positions (0 shoulder/hip,
1 elbow/knee, 2 wrist/ankle) of the person's own limbs; widths are SynthHumans' garment widths relative to the
person's own measured skin or garment width under them.
Left/right skin labels come from the side of the bone that owns the pixel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import cv2
import numpy as np

from recapture.body.bones import CHAINS, GROUPS, BoneMaps, LabelRoles, bone_maps, label_roles, ownership
from recapture.body.figure import check_layout, fill_from_nearest, scale_region
from recapture.body.parts import LabelSet

UPPER_CATEGORIES: tuple[str, ...] = ("t_shirt", "long_sleeves", "coat", "no_coat")
LOWER_CATEGORIES: tuple[str, ...] = ("pants", "shorts", "skirt")
CLOTHING_SLOTS: dict[str, tuple[str, ...]] = {"upper": UPPER_CATEGORIES, "lower": LOWER_CATEGORIES}
TOP_GARMENTS: tuple[str, ...] = ("upper_clothes", "dress", "jumpsuits")
#: Frontal distance between the shoulders in body units (SynthHumans' proportions).
SHOULDER_SPAN = 0.23
#: Labels measured for a group's width: (garments, skin).
_TISSUE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "legs": (("pants", "lower_clothes", "socks"), ("left_leg", "right_leg", "legs")),
    "torso": ((*TOP_GARMENTS, "coat", "scarf"), ()),
}


@dataclass(frozen=True)
class GarmentShapes:
    """Garment geometry. Ends and hem lengths are chain positions on the person's own legs or arms (0 hip or
    shoulder, 1 knee or elbow, 2 ankle or wrist): a skirt's or a coat's hem ends exactly there; growths are
    garment width / width of what it covers; ``waist`` is the fraction of
    the way from the hips to the neck where skirts and coat tails start; ``coat_strip`` the half width
    (body units) of the open coat front that shows the top, drawn from ``coat_strip_top`` of the way
    down the spine to the hips when the person faces the camera: the left shoulder lies right of the
    right shoulder by more than ``facing`` times the frontal shoulder span (0.23 body units)."""

    t_shirt_end: float = 0.45
    long_sleeve_end: float = 1.9
    coat_sleeve_end: float = 1.92
    shorts_end: float = 0.5
    pants_end: float = 1.95
    skirt_length: float = 1.09
    skirt_flare: float = 1.6
    coat_length: float = 0.8
    coat_flare: float = 1.4
    sleeve_growth: float = 1.12
    pants_growth: float = 1.12
    coat_sleeve_growth: float = 1.25
    coat_torso_growth: float = 1.1
    waist: float = 0.37
    coat_strip: float = 0.03
    coat_strip_top: float = 0.07
    facing: float = 0.25


def check_clothing(slot: str, category: str, label_set: LabelSet) -> None:
    """ValueError naming the valid slots/categories, or the label set's missing part."""
    if slot not in CLOTHING_SLOTS:
        raise ValueError(f"unknown clothing slot {slot!r}; valid: {', '.join(CLOTHING_SLOTS)}")
    if category not in CLOTHING_SLOTS[slot]:
        raise ValueError(f"unknown {slot} garment {category!r}; valid: {', '.join(CLOTHING_SLOTS[slot])}")
    if category in ("coat", "no_coat") and "coat" not in label_set.names:
        raise ValueError(f"label set {label_set.name} has no coat part, so {slot}={category} cannot be expressed "
                         f"(use lip20)")


class _Layout:
    """One layout being edited: labels, bone maps, roles and the ownership of the current labels."""

    def __init__(self, labels: np.ndarray, maps: BoneMaps, roles: LabelRoles) -> None:
        self.maps, self.roles = maps, roles
        self.labels = labels
        self.owner = ownership(labels, maps, roles)

    def set(self, labels: np.ndarray) -> None:
        self.labels = labels
        self.owner = ownership(labels, self.maps, self.roles)

    def is_label(self, *names: str) -> np.ndarray:
        return np.isin(self.labels, self.roles.labels(*names))

    def on(self, group: str) -> np.ndarray:
        return self.owner.group == GROUPS.index(group)

    def skin(self, kind: str) -> np.ndarray:
        """``(H, W)`` skin label of each pixel's chain side for ``kind`` ``arm`` | ``leg``."""
        lut = np.full(len(CHAINS) + 1, self.roles.background, np.int64)
        for i, chain in enumerate(CHAINS):
            side = chain.split("_")[0]
            label = self.roles.label(f"{side}_{kind}", f"{kind}s")
            if label is not None:
                lut[i] = label
        return lut[self.owner.chain].astype(self.labels.dtype)

    def relabel(self, mask: np.ndarray, values: np.ndarray | int) -> np.ndarray:
        """New labels with ``mask`` set to ``values`` (array or label); returns the mask actually changed."""
        out = self.labels.copy()
        out[mask] = values[mask] if isinstance(values, np.ndarray) else values
        changed = out != self.labels
        self.set(out)
        return changed

    def rescale(self, region: np.ndarray, group: str, factor: float) -> None:
        """Scale ``region`` (restricted to pixels owned by ``group``) by ``factor`` about its bones."""
        region = region & self.on(group)
        if region.any():
            self.set(scale_region(self.labels, self.maps, self.owner, region, group, factor, self.roles.background))

    def px_per_unit(self, group: str, skin_growth: float) -> float | None:
        """Pixels per body unit of ``group`` measured from its visible width: the garment and skin pixels
        of each scaling bone (:data:`_TISSUE`) over twice the bone length, divided by the nominal width
        (skin counts as the garment width / ``skin_growth``); the median over bones whose length is
        mostly covered, else the bone-length estimate (None without bones)."""
        garments, skins = _TISSUE[group]
        garment, skin = self.is_label(*garments), self.is_label(*skins)
        ratios = []
        for k in self.maps.indices(group=group, scaling=True):
            spec, length, t = self.maps.specs[k], self.maps.length(k), self.maps.t[k]
            mine = (self.owner.bone == k) & (t >= 0) & (t <= 1)
            worn, bare = int((mine & garment).sum()), int((mine & skin).sum())
            bins = np.unique(np.clip((t[mine & (garment | skin)] * 8).astype(np.int64), 0, 7))
            if length >= 2 and bins.size >= 6:
                nominal = spec.radius * (worn + bare / skin_growth) / (worn + bare)
                ratios.append((worn + bare) / (2.0 * length) / nominal)
        return float(np.median(ratios)) if ratios else (self.maps.unit or None)

    def hull(self, length: float, flare: float, scale: float, waist: float) -> np.ndarray | None:
        """``(H, W)`` bool convex hull from the ``waist`` over both thighs down to the hem, which lies at chain
        position ``length`` on the person's own legs (0 hip, 1 knee, 2 ankle): hip disks 1.1 and hem disks
        ``flare`` times the person's measured thigh half width (0.05 body units of ``scale`` px, ``scale``
        measured from the visible legs), each hem disk touching the hem point from above, so the hull ends
        there. None without a thigh."""
        points = []
        circle = np.stack([np.sin(np.linspace(0, 2 * np.pi, 16, endpoint=False)),
                           np.cos(np.linspace(0, 2 * np.pi, 16, endpoint=False))], axis=1)
        for side in ("left", "right"):
            thigh, shin = self.maps.find(f"{side}_thigh"), self.maps.find(f"{side}_shin")
            if thigh is None:
                continue
            hip, knee = self.maps.start[thigh], self.maps.end[thigh]
            below = (self.maps.end[shin] - knee) if shin is not None else (knee - hip)
            hem = hip + min(length, 1.0) * (knee - hip) + max(length - 1.0, 0.0) * below
            along = below if length > 1.0 else knee - hip
            direction = along / max(float(np.hypot(*along)), 1e-9)
            radius = 0.05 * flare * scale
            centre = hem - min(radius, float(np.hypot(*(hem - hip)))) * direction
            points += [hip + 0.055 * scale * circle, centre + radius * circle]
        if not points:
            return None
        spine, hip_line = self.maps.find("spine"), self.maps.find("hip_line")
        if spine is not None:
            neck, mid_hip = self.maps.start[spine], self.maps.end[spine]
            centre = mid_hip + waist * (neck - mid_hip)
            half = 0.75 * (self.maps.end[hip_line] - self.maps.start[hip_line]) if hip_line is not None else 0.0
            points.append(np.stack([centre - half, centre + half]))
        yx = np.concatenate(points).astype(np.float32)
        hull = cv2.convexHull(np.ascontiguousarray(yx[:, ::-1]))[:, 0, :]
        mask = np.zeros(self.labels.shape, np.uint8)
        cv2.fillConvexPoly(mask, np.int32(np.rint(hull * 16)), 1, lineType=cv2.LINE_8, shift=4)
        return mask.astype(bool)


def _leg_tissue() -> tuple[str, ...]:
    return (*_TISSUE["legs"][0], *_TISSUE["legs"][1])


def _legs_shape(lay: _Layout, scale: float, shapes: GarmentShapes) -> tuple[np.ndarray, np.ndarray]:
    """``(H, W)`` bool masks ``(tubes, pelvis)``: trouser-wide tubes (round ends) along the present leg
    bones, and the pelvis (within 0.06 body units of the hip line, or between the waist and the hips
    within the hip half distance + 0.05 of the spine)."""
    maps = lay.maps
    tubes = np.zeros(lay.labels.shape, bool)
    for k in maps.indices(group="legs"):
        tubes |= maps.distance[k] <= maps.specs[k].radius * scale
    pelvis = np.zeros(lay.labels.shape, bool)
    hip_line, spine = maps.find("hip_line"), maps.find("spine")
    if hip_line is not None:
        pelvis |= maps.distance[hip_line] <= 0.06 * scale
    if spine is not None:
        hips = 0.5 * maps.length(hip_line) if hip_line is not None else 0.0
        pelvis |= (maps.t[spine] >= 1.0 - shapes.waist) & (maps.distance[spine] <= hips + 0.05 * scale)
    return tubes, pelvis


def _remove_skirt(lay: _Layout, shapes: GarmentShapes) -> None:
    """Take a skirt off: skirt pixels -> pants in the leg tubes and in the pelvis below the hips, the top
    garment in the pelvis above the hips (the top hangs over trousers, as in SynthHumans), background
    elsewhere. A label set without ``skirt`` (market7) treats the lower garment beyond the trouser shape
    as the skirt."""
    scale = lay.px_per_unit("legs", shapes.pants_growth)
    if scale is None:
        return
    tubes, pelvis = _legs_shape(lay, scale, shapes)
    if "skirt" in lay.roles.label_set.names:
        skirt = lay.is_label("skirt")
    else:
        skirt = lay.is_label("lower_clothes") & ~(tubes | pelvis)
    if not skirt.any():
        return
    pants = lay.roles.label("pants", "lower_clothes")
    values = np.full(lay.labels.shape, lay.roles.background, lay.labels.dtype)
    values[pelvis & _above_hips(lay)] = _top_label(lay)
    values[pelvis & ~_above_hips(lay)] = pants
    values[tubes] = pants
    lay.relabel(skirt, values)


def _put_on_skirt(lay: _Layout, shapes: GarmentShapes) -> np.ndarray:
    """Draw the skirt hull over background, legs and trousers; return the trouser pixels left outside it."""
    scale = lay.px_per_unit("legs", shapes.pants_growth)
    hull = lay.hull(shapes.skirt_length, shapes.skirt_flare, scale, shapes.waist) if scale is not None else None
    if hull is None:
        return np.zeros(lay.labels.shape, bool)
    skirt = lay.roles.label("skirt", "lower_clothes")
    cover = (lay.labels == lay.roles.background) | lay.is_label(*_leg_tissue(), "skirt", *TOP_GARMENTS)
    lay.relabel(hull & cover, skirt)
    trousers = lay.is_label("pants") | (lay.is_label("lower_clothes") & ~hull)
    lay.relabel(trousers & ~lay.on("legs"), skirt)
    return trousers & lay.on("legs")


def _lower(lay: _Layout, category: str, shapes: GarmentShapes) -> None:
    """lower=pants: leg skin above the ankles -> pants (widened); lower=shorts: trousers beyond
    ``shorts_end`` -> leg skin (narrowed); lower=skirt: :func:`_put_on_skirt`, freed legs -> skin."""
    pants = lay.roles.label("pants", "lower_clothes")
    if category == "skirt":
        bare = _put_on_skirt(lay, shapes)
    else:
        _remove_skirt(lay, shapes)
        if category == "pants":
            skin = lay.is_label("left_leg", "right_leg", "legs") & lay.on("legs")
            lay.rescale(lay.relabel(skin & (lay.owner.position < shapes.pants_end), pants), "legs", shapes.pants_growth)
            return
        bare = (lay.labels == pants) & lay.on("legs") & (lay.owner.position > shapes.shorts_end)
    lay.rescale(lay.relabel(bare, lay.skin("leg")), "legs", 1.0 / shapes.pants_growth)


def _top_label(lay: _Layout) -> int:
    """The top garment worn on the torso (most pixels among upper_clothes/dress/jumpsuits)."""
    candidates = lay.roles.labels(*TOP_GARMENTS)
    counts = [int((lay.labels[lay.on("torso")] == c).sum()) for c in candidates]
    return candidates[int(np.argmax(counts))] if counts and max(counts) > 0 else lay.roles.label("upper_clothes")


def _above_hips(lay: _Layout) -> np.ndarray:
    """Pixels whose position along the spine is above the mid-hip (everything without a spine)."""
    spine = lay.maps.find("spine")
    if spine is None:
        return np.ones(lay.labels.shape, bool)
    return lay.maps.t[spine] <= 1.0


def _front_strip(lay: _Layout, shapes: GarmentShapes, scale: float | None) -> np.ndarray:
    """Pixels of the open coat front (the person faces the camera: left shoulder on the image right)."""
    maps = lay.maps
    spine, left, right = maps.find("spine"), maps.find("left_shoulder_line"), maps.find("right_shoulder_line")
    empty = np.zeros(lay.labels.shape, bool)
    if spine is None or left is None or right is None or scale is None:
        return empty
    if maps.end[left][1] - maps.end[right][1] <= shapes.facing * SHOULDER_SPAN * scale:
        return empty
    t = maps.t[spine]
    return (t >= shapes.coat_strip_top) & (t <= 1.0) & (maps.distance[spine] <= shapes.coat_strip * scale)


def _upper(lay: _Layout, category: str, shapes: GarmentShapes) -> None:
    """long_sleeves: arm skin up to ``long_sleeve_end`` -> the top (widened); t_shirt: sleeves beyond
    ``t_shirt_end`` -> arm skin (narrowed); coat: :func:`_coat`; no_coat: :func:`_no_coat`."""
    arms = lay.on("arms")
    if category == "long_sleeves":
        skin = lay.is_label("left_arm", "right_arm", "arms") & arms & (lay.owner.position < shapes.long_sleeve_end)
        lay.rescale(lay.relabel(skin, _top_label(lay)), "arms", shapes.sleeve_growth)
    elif category == "t_shirt":
        sleeve = lay.is_label(*TOP_GARMENTS) & arms & (lay.owner.position > shapes.t_shirt_end)
        lay.rescale(lay.relabel(sleeve, lay.skin("arm")), "arms", 1.0 / shapes.sleeve_growth)
    elif category == "coat":
        _coat(lay, shapes)
    else:
        _no_coat(lay, shapes)


def _coat(lay: _Layout, shapes: GarmentShapes) -> None:
    """Top garments above the hips (but the front strip) and the arms up to ``coat_sleeve_end`` -> coat,
    widened; tails over the hips when both thighs are present."""
    coat = lay.roles.label("coat")
    tops = lay.is_label(*TOP_GARMENTS)
    torso_scale = lay.px_per_unit("torso", 1.0)
    keep = _front_strip(lay, shapes, torso_scale)
    torso = lay.relabel(tops & lay.on("torso") & _above_hips(lay) & ~keep, coat)
    arms = lay.on("arms") & (lay.owner.position < shapes.coat_sleeve_end)
    from_skin = lay.relabel(lay.is_label("left_arm", "right_arm") & arms, coat)
    from_sleeve = lay.relabel(tops & arms, coat)
    lay.rescale(torso, "torso", shapes.coat_torso_growth)
    lay.rescale(from_skin, "arms", shapes.coat_sleeve_growth)
    lay.rescale(from_sleeve, "arms", shapes.coat_sleeve_growth / shapes.sleeve_growth)
    scale = lay.px_per_unit("legs", shapes.pants_growth)
    both_thighs = all(lay.maps.find(f"{side}_thigh") is not None for side in ("left", "right"))
    if shapes.coat_length > 0.1 and scale is not None and both_thighs:
        hull = lay.hull(shapes.coat_length, shapes.coat_flare, scale, shapes.waist)
        if hull is not None:
            cover = (lay.labels == lay.roles.background) | lay.is_label(*TOP_GARMENTS, *_leg_tissue(), "skirt")
            lay.relabel(hull & cover, coat)


def _no_coat(lay: _Layout, shapes: GarmentShapes) -> None:
    """Coat above the hips and on the arms -> the top (dress if one shows, else upper_clothes), narrowed
    to long sleeves; tails -> the nearest lower-body label, background outside the trouser shape."""
    coat = lay.roles.label("coat")
    dress = lay.roles.label("dress")
    top = dress if dress is not None and (lay.labels == dress).any() else lay.roles.label("upper_clothes")
    is_coat = lay.labels == coat
    torso = lay.relabel(is_coat & lay.on("torso") & _above_hips(lay), top)
    sleeves = lay.relabel(is_coat & lay.on("arms"), top)
    lay.rescale(torso, "torso", 1.0 / shapes.coat_torso_growth)
    lay.rescale(sleeves, "arms", shapes.sleeve_growth / shapes.coat_sleeve_growth)
    tails = lay.labels == coat
    lower = lay.is_label(*_leg_tissue(), "skirt", "dress")
    filled = fill_from_nearest(lay.labels, tails, ~lower, lay.roles.background)
    scale = lay.px_per_unit("legs", shapes.pants_growth)
    if scale is not None:
        narrow = np.isin(filled, lay.roles.labels(*_leg_tissue())) & ~np.logical_or(*_legs_shape(lay, scale, shapes))
        filled[tails & narrow] = lay.roles.background
    lay.set(filled)


def edit_clothing(labels: np.ndarray, maps: BoneMaps, roles: LabelRoles, changes: Mapping[str, str],
                  shapes: GarmentShapes) -> np.ndarray:
    """:func:`apply_clothing_edit` on checked inputs with precomputed bone maps."""
    lay = _Layout(labels.copy(), maps, roles)
    if "lower" in changes:
        _lower(lay, changes["lower"], shapes)
    if "upper" in changes:
        _upper(lay, changes["upper"], shapes)
    return lay.labels


def apply_clothing_edit(labels: np.ndarray, keypoints: np.ndarray, label_set: LabelSet,
                        changes: Mapping[str, str], shapes: GarmentShapes = GarmentShapes()) -> np.ndarray:
    """Change garments of ``labels`` ``(H, W)`` of ``label_set`` posed by ``keypoints`` ``(18, 2)``.

    ``changes`` maps a slot (``upper``, ``lower``) to a category (:data:`CLOTHING_SLOTS`); the lower
    garment changes first. Returns new labels of the input dtype. Parts whose joints are missing stay as
    they are (e.g. a skirt needs a hip and its knee, coat tails both thighs).
    """
    labels = check_layout(labels, keypoints, label_set)
    for slot, category in changes.items():
        check_clothing(slot, category, label_set)
    return edit_clothing(labels, bone_maps(keypoints, labels.shape), label_roles(label_set), changes, shapes)
