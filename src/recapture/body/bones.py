"""Bone geometry of a layout for the figure and clothing edits.

A *bone* is a 2D segment between two COCO-18 joints (``keypoints`` are ``(18, 2)`` y/x, -1 missing).
:func:`bone_maps` measures, for every pixel, its distance to each present bone and its position ``t``
along it (0 at the start joint, 1 at the end joint, unclamped). :func:`ownership` assigns every *body
pixel* (not background, not a head part, not a shoe) to one bone by the lowest distance divided by the
bone's nominal half width (:data:`BONES`): skin labels choose among their own limb's bones (``left_arm``
the left arm chain, ``arms``/``glove`` the arm group), every other label (garments) among all present
bones, so a sleeve belongs to its arm while the torso behind an arm stays with the torso.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from recapture.body.keypoints import KEYPOINT_INDEX, missing_mask
from recapture.body.parts import LabelSet

GROUPS: tuple[str, ...] = ("torso", "arms", "legs")
CHAINS: tuple[str, ...] = ("torso", "left_arm", "right_arm", "left_leg", "right_leg")
#: Labels that never belong to a bone (they are never moved by an edit).
HEAD_PARTS: tuple[str, ...] = ("hat", "hair", "sunglasses", "face", "head")
SHOE_PARTS: tuple[str, ...] = ("left_shoe", "right_shoe", "shoes")
#: Skin (and glove/sock) labels owned by a limb group only.
ARM_ONLY: tuple[str, ...] = ("left_arm", "right_arm", "arms", "glove")
LEG_ONLY: tuple[str, ...] = ("left_leg", "right_leg", "legs", "socks")


@dataclass(frozen=True)
class BoneSpec:
    """One bone: joints (``mid_hip`` = mean of the present hips), group, chain, index along the chain
    (0 upper, 1 lower; -1 not a limb), nominal half width and length in body units (1 = standing height),
    whether widening happens perpendicular to it (``scaling``; the torso scales about the spine) and
    ``ramp``: the fractions of its length after the start and before the end over which a width factor
    fades in (the spine: from the neck to the chest, and out towards the hips, so that the neck, the
    shoulders and the hips under the legs' garments keep their width)."""

    name: str
    start: str
    end: str
    group: str
    chain: str
    link: int
    radius: float
    length: float
    scaling: bool
    ramp: tuple[float, float] = (0.0, 0.0)


def _limb(side: str, kind: str) -> tuple[BoneSpec, BoneSpec]:
    if kind == "arm":
        joints, names = ("shoulder", "elbow", "wrist"), ("upper_arm", "forearm")
        radii, lengths = (0.033, 0.025), (0.165, 0.145)
    else:
        joints, names = ("hip", "knee", "ankle"), ("thigh", "shin")
        radii, lengths = (0.05, 0.036), (0.235, 0.235)
    chain, group = f"{side}_{kind}", f"{kind}s"
    return tuple(BoneSpec(f"{side}_{names[i]}", f"{side}_{joints[i]}", f"{side}_{joints[i + 1]}", group, chain, i,
                          radii[i], lengths[i], True) for i in range(2))  # type: ignore[return-value]


#: Every bone; widths and lengths follow SynthHumans' body proportions (``data/synthetic/articulation.py``).
BONES: tuple[BoneSpec, ...] = (
    BoneSpec("spine", "neck", "mid_hip", "torso", "torso", -1, 0.10, 0.30, True, (0.25, 0.2)),
    BoneSpec("left_shoulder_line", "neck", "left_shoulder", "torso", "torso", -1, 0.03, 0.117, False),
    BoneSpec("right_shoulder_line", "neck", "right_shoulder", "torso", "torso", -1, 0.03, 0.117, False),
    BoneSpec("hip_line", "right_hip", "left_hip", "torso", "torso", -1, 0.03, 0.12, False),
    *_limb("left", "arm"), *_limb("right", "arm"), *_limb("left", "leg"), *_limb("right", "leg"),
)
BONE_INDEX: dict[str, int] = {b.name: i for i, b in enumerate(BONES)}


def joint_position(keypoints: np.ndarray, name: str) -> np.ndarray | None:
    """``(2,)`` float y/x of a joint (``mid_hip``: mean of the present hips), None if missing."""
    if name == "mid_hip":
        hips = [joint_position(keypoints, h) for h in ("left_hip", "right_hip")]
        present = [h for h in hips if h is not None]
        return np.mean(present, axis=0) if present else None
    index = KEYPOINT_INDEX[name]
    if missing_mask(keypoints)[index]:
        return None
    return np.asarray(keypoints[index], dtype=np.float64)


@dataclass(frozen=True)
class BoneMaps:
    """Per-pixel geometry of the present bones of one pose on an ``(H, W)`` grid.

    ``specs`` (K bones); ``start``/``end`` ``(K, 2)`` y/x; ``distance`` ``(K, H, W)`` distance to the
    segment; ``t`` ``(K, H, W)`` unclamped position along it; ``foot_low``/``foot_high`` ``(K,)`` bounds of
    ``t`` for the foot point (``-inf``/``inf`` at a chain end, 0/1 at an inner joint such as the elbow);
    ``nearest[f"scale_{group}"]`` ``(H, W)`` int: the nearest of the group's scaling bones (-1: none);
    ``owner``/``position`` ``(len(KINDS), H, W)``: the owner bone and chain position of each pixel for
    each label kind (see :func:`ownership`); ``unit``: pixels per body unit, the largest bone length /
    nominal length (bones only foreshorten), 0 without bones.
    """

    specs: tuple[BoneSpec, ...]
    start: np.ndarray
    end: np.ndarray
    distance: np.ndarray
    t: np.ndarray
    foot_low: np.ndarray
    foot_high: np.ndarray
    nearest: dict[str, np.ndarray]
    owner: np.ndarray
    position: np.ndarray
    unit: float

    @property
    def shape(self) -> tuple[int, int]:
        return self.distance.shape[1:]  # type: ignore[return-value]

    def indices(self, group: str | None = None, scaling: bool | None = None, chain: str | None = None) -> np.ndarray:
        """Indices of the present bones matching the filters."""
        return np.array([k for k, s in enumerate(self.specs)
                         if (group is None or s.group == group) and (scaling is None or s.scaling == scaling)
                         and (chain is None or s.chain == chain)], dtype=np.int64)

    def chain_ids(self) -> np.ndarray:
        """``(K,)`` index into :data:`CHAINS` of each present bone."""
        return np.array([CHAINS.index(s.chain) for s in self.specs], dtype=np.int64)

    def find(self, name: str) -> int | None:
        """Index of bone ``name`` if present."""
        return next((k for k, s in enumerate(self.specs) if s.name == name), None)

    def length(self, k: int) -> float:
        return float(np.hypot(*(self.end[k] - self.start[k])))

    def foot_points(self, bone: np.ndarray, t: np.ndarray) -> np.ndarray:
        """``(..., 2)`` foot points for per-pixel bone indices ``bone`` and positions ``t``."""
        clipped = np.clip(t, self.foot_low[bone], self.foot_high[bone])
        return self.start[bone] + clipped[..., None] * (self.end[bone] - self.start[bone])


def bone_maps(keypoints: np.ndarray, shape: tuple[int, int]) -> BoneMaps:
    """Geometry of every bone whose two joints are present (see :class:`BoneMaps`)."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.shape != (18, 2):
        raise ValueError(f"keypoints must have shape (18, 2), got {keypoints.shape}")
    if not np.isfinite(keypoints).all():
        raise ValueError(f"keypoints must be finite (-1 marks a missing joint), got {keypoints.tolist()}")
    specs, starts, ends = [], [], []
    for spec in BONES:
        a, b = joint_position(keypoints, spec.start), joint_position(keypoints, spec.end)
        if a is not None and b is not None:
            specs.append(spec)
            starts.append(a)
            ends.append(b)
    height, width = shape
    count = len(specs)
    start = np.asarray(starts, dtype=np.float32).reshape(count, 2)
    end = np.asarray(ends, dtype=np.float32).reshape(count, 2)
    ys = np.arange(height, dtype=np.float32).reshape(1, height, 1)
    xs = np.arange(width, dtype=np.float32).reshape(1, 1, width)
    dy, dx = (end - start)[:, 0].reshape(-1, 1, 1), (end - start)[:, 1].reshape(-1, 1, 1)
    ry, rx = ys - start[:, 0].reshape(-1, 1, 1), xs - start[:, 1].reshape(-1, 1, 1)
    t = ry * (dy / np.maximum(dy * dy + dx * dx, 1e-6)) + rx * (dx / np.maximum(dy * dy + dx * dx, 1e-6))
    tc = np.clip(t, 0.0, 1.0)
    ey, ex = ry - tc * dy, rx - tc * dx
    distance = np.sqrt(ey * ey + ex * ex)
    low = np.zeros(count, np.float32)
    high = np.ones(count, np.float32)
    for k, spec in enumerate(specs):
        inner = spec.link >= 0 and any(o.chain == spec.chain and o.link == 1 - spec.link for o in specs)
        low[k] = 0.0 if inner and spec.link == 1 else -np.inf
        high[k] = 1.0 if inner and spec.link == 0 else np.inf
    nearest = {f"scale_{g}": _nearest(distance, [s.group == g and s.scaling for s in specs], shape)[0] for g in GROUPS}
    unit = max([float(np.hypot(*(b - a))) / spec.length for spec, a, b in zip(specs, start, end)], default=0.0)
    owner, position = _owner_candidates(specs, unit, distance, t, shape)
    return BoneMaps(tuple(specs), start, end, distance, t, low, high, nearest, owner, position, unit)


#: Label kinds (:class:`LabelRoles`): which bones a label may belong to.
KINDS: tuple[str, ...] = ("none", "garment", "arms", "legs", "left_arm", "right_arm", "left_leg", "right_leg")
#: A pixel farther than this many nominal half widths from every allowed bone belongs to none.
REACH = 4.0


def _owner_candidates(specs: list[BoneSpec], unit: float, distance: np.ndarray, t: np.ndarray,
                      shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Owner bone and chain position of every pixel for each of :data:`KINDS`: ``(len(KINDS), H, W)``
    int (-1 none) and float. Garments take the lowest distance / nominal half width over all bones,
    except that a limb's root bone hands what lies behind its root joint (``t < 0``: the shoulder cap,
    the hip) to the torso; skin takes the lowest score within its own side's chain (its limb group when
    that chain is missing; none when the group is); nothing is owned beyond :data:`REACH` half widths."""
    owner = np.full((len(KINDS), *shape), -1, np.int64)
    position = np.zeros((len(KINDS), *shape), np.float32)
    if not specs:
        return owner, position
    score = distance / (np.array([s.radius for s in specs], np.float32).reshape(-1, 1, 1) * max(unit, 1e-6))
    link = np.array([max(s.link, 0) for s in specs], np.float32)

    def store(kind: str, allowed: list[bool]) -> None:
        bone, best, along = _nearest(score, allowed, shape, t)
        owned = best <= REACH
        owner[KINDS.index(kind)] = np.where(owned, bone, -1)
        position[KINDS.index(kind)] = np.where(owned, along + link[np.maximum(bone, 0)], 0.0)

    store("garment", [True] * len(specs))
    torso, torso_score, torso_t = _nearest(score, [s.group == "torso" for s in specs], shape, t)
    garment = owner[KINDS.index("garment")]
    root = np.array([s.link == 0 for s in specs] + [False])
    behind = root[garment] & (position[KINDS.index("garment")] < 0) & (torso >= 0) & (torso_score <= REACH)
    owner[KINDS.index("garment")] = np.where(behind, torso, garment)
    position[KINDS.index("garment")] = np.where(behind, torso_t, position[KINDS.index("garment")])
    for group in ("arms", "legs"):
        store(group, [s.group == group for s in specs])
    for chain in CHAINS[1:]:
        mine = [s.chain == chain for s in specs]
        store(chain, mine if any(mine) else [s.group == chain.split("_")[1] + "s" for s in specs])
    return owner, position


def _nearest(scores: np.ndarray, allowed: list[bool], shape: tuple[int, int],
             t: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Over allowed ``k``: ``(H, W)`` index of the lowest ``scores[k]`` (-1 when none is allowed), that
    score (inf) and ``t[k]`` there (0; only when ``t`` is given)."""
    best = np.full(shape, np.inf, np.float32)
    index = np.full(shape, -1, np.int64)
    along = np.zeros(shape, np.float32)
    for k, ok in enumerate(allowed):
        if ok:
            better = scores[k] < best
            np.copyto(best, scores[k], where=better)
            index[better] = k
            if t is not None:
                np.copyto(along, t[k], where=better)
    return index, best, along


@dataclass(frozen=True)
class LabelRoles:
    """What each label of a label set is to the edits: ``kind`` ``(N,)`` index into :data:`KINDS`:
    ``none`` (background, head parts, shoes: never owned, never moved), ``garment`` (any bone),
    ``arms``/``legs`` (unsided skin, glove, socks: that group's bones) or a sided skin label (its chain)."""

    label_set: LabelSet
    kind: np.ndarray
    background: int

    def label(self, *names: str) -> int | None:
        """The first of ``names`` that the label set has, else None."""
        return next((self.label_set.index(n) for n in names if n in self.label_set.names), None)

    def labels(self, *names: str) -> list[int]:
        """Labels of those ``names`` that the label set has."""
        return [self.label_set.index(n) for n in names if n in self.label_set.names]


@functools.lru_cache(maxsize=8)
def label_roles(label_set: LabelSet) -> LabelRoles:
    """:class:`LabelRoles` of ``label_set`` (requires a ``background`` label)."""
    kind = np.full(label_set.num_parts, KINDS.index("garment"), np.int64)
    for i, name in enumerate(label_set.names):
        if name == "background" or name in HEAD_PARTS or name in SHOE_PARTS:
            kind[i] = KINDS.index("none")
        elif name in KINDS:
            kind[i] = KINDS.index(name)
        elif name in ARM_ONLY:
            kind[i] = KINDS.index("arms")
        elif name in LEG_ONLY:
            kind[i] = KINDS.index("legs")
    return LabelRoles(label_set, kind, label_set.index("background"))


@dataclass(frozen=True)
class Ownership:
    """Which bone each pixel belongs to: ``bone`` ``(H, W)`` index into the maps' bones (-1: not a body
    pixel or no bone); ``group``/``chain`` ``(H, W)`` indices into :data:`GROUPS`/:data:`CHAINS` (-1);
    ``position`` ``(H, W)`` float: along a limb chain 0 at the shoulder/hip, 1 at the elbow/knee, 2 at
    the wrist/ankle (beyond at the hand); along the torso the owning bone's ``t``."""

    bone: np.ndarray
    group: np.ndarray
    chain: np.ndarray
    position: np.ndarray


def ownership(labels: np.ndarray, maps: BoneMaps, roles: LabelRoles) -> Ownership:
    """Assign every body pixel of ``labels`` ``(H, W)`` to a bone (see the module docstring)."""
    kind = roles.kind[labels][None]
    bone = np.take_along_axis(maps.owner, kind, axis=0)[0]
    position = np.take_along_axis(maps.position, kind, axis=0)[0]
    # Lookup tables with a trailing -1 so that bone -1 (not a body pixel) maps to -1.
    group_of = np.array([GROUPS.index(s.group) for s in maps.specs] + [-1])
    chain_of = np.array([CHAINS.index(s.chain) for s in maps.specs] + [-1])
    return Ownership(bone, group_of[bone], chain_of[bone], position)
