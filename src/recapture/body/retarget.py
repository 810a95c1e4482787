"""Retargeting a pose onto a person's own skeleton, and the framing anchor of a pose.

A target pose taken from another person (a preset, an annotation row, a video) has that person's
proportions. :func:`retarget` keeps the *subject's* bone lengths and takes only the target's joint
angles (bone directions): walking the COCO-18 tree outwards from the neck, each target bone keeps its
direction and gets the subject's length. Bones the subject does not show (e.g. legs of an upper-body
photo) take the target's length times the median subject/target ratio of the bones both show.

:func:`anchor` and :func:`torso_length` are the framing rule's measures: a pose is placed by its hip
centre (the neck when a hip is missing) and scaled by its torso (neck to hip centre; the shoulder span
or the median bone ratio when a hip is missing). :func:`pose_distance` measures how far a target pose is from
the source's, in the same torso lengths (the photo path's choice of Ŝ_B). Pure numpy; keypoints are ``(18, 2)``
y/x, -1 missing.
"""

from __future__ import annotations

import numpy as np

from recapture.body.keypoints import KEYPOINT_INDEX, LIMBS, NUM_KEYPOINTS, missing_mask

NECK = KEYPOINT_INDEX["neck"]
HIPS = (KEYPOINT_INDEX["right_hip"], KEYPOINT_INDEX["left_hip"])
SHOULDERS = (KEYPOINT_INDEX["right_shoulder"], KEYPOINT_INDEX["left_shoulder"])


def _tree() -> tuple[tuple[int, int], ...]:
    """``(parent, child)`` bones in breadth-first order from the neck (the hip-hip bone is not a tree edge)."""
    order, seen, frontier = [], {NECK}, [NECK]
    while frontier:
        nxt = []
        for parent in frontier:
            for a, b in LIMBS:
                child = b if a == parent else a if b == parent else None
                if child is not None and child not in seen:
                    seen.add(child)
                    order.append((parent, child))
                    nxt.append(child)
        frontier = nxt
    return tuple(order)


#: Skeleton tree rooted at the neck: every joint but the neck appears once as a child.
TREE: tuple[tuple[int, int], ...] = _tree()


def _check(keypoints: np.ndarray, name: str) -> np.ndarray:
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.shape != (NUM_KEYPOINTS, 2):
        raise ValueError(f"{name} must be ({NUM_KEYPOINTS}, 2) y/x keypoints, got {keypoints.shape}")
    return keypoints


def _with_neck(keypoints: np.ndarray) -> np.ndarray:
    """A copy whose missing neck is the shoulders' midpoint when both shoulders are present."""
    out = keypoints.copy()
    present = ~missing_mask(out)
    if not present[NECK] and present[list(SHOULDERS)].all():
        out[NECK] = out[list(SHOULDERS)].mean(axis=0)
    return out


def bone_lengths(keypoints: np.ndarray) -> np.ndarray:
    """``(len(TREE),)`` length of each tree bone; NaN where either end is missing."""
    keypoints = _check(keypoints, "keypoints")
    present = ~missing_mask(keypoints)
    lengths = np.full(len(TREE), np.nan)
    for index, (parent, child) in enumerate(TREE):
        if present[parent] and present[child]:
            lengths[index] = float(np.linalg.norm(keypoints[child] - keypoints[parent]))
    return lengths


def scale_ratio(subject: np.ndarray, target: np.ndarray) -> float:
    """Median subject/target length ratio over the bones both poses show (torso first when both have it)."""
    subject_torso, target_torso = torso_length(subject), torso_length(target)
    if subject_torso and target_torso:
        return subject_torso / target_torso
    ratios = bone_lengths(subject) / bone_lengths(target)
    ratios = ratios[np.isfinite(ratios) & (ratios > 0)]
    if not ratios.size:
        raise ValueError("the subject and the target pose share no bone: cannot compare their sizes")
    return float(np.median(ratios))


def torso_length(keypoints: np.ndarray) -> float | None:
    """Neck to hip centre (the shoulder span x 1.5 without both hips); None when neither is available."""
    keypoints = _with_neck(_check(keypoints, "keypoints"))
    present = ~missing_mask(keypoints)
    if present[NECK] and present[list(HIPS)].all():
        return float(np.linalg.norm(keypoints[list(HIPS)].mean(axis=0) - keypoints[NECK]))
    if present[list(SHOULDERS)].all():
        return 1.5 * float(np.linalg.norm(keypoints[SHOULDERS[0]] - keypoints[SHOULDERS[1]]))
    return None


def has_hips(keypoints: np.ndarray) -> bool:
    """Both hips present."""
    return bool((~missing_mask(_check(keypoints, "keypoints")))[list(HIPS)].all())


def pose_distance(source: np.ndarray, target: np.ndarray) -> float:
    """How far ``target`` is from ``source`` (both ``(18, 2)`` y/x in one frame): the mean over the joints either
    pose shows of the joint's displacement in torso lengths (the source's, else the target's, else the height of
    the joints both show); a joint shown by one pose only counts 1. 0 for the same pose; inf when the poses share
    no joint or no scale can be measured."""
    source, target = _check(source, "source"), _check(target, "target")
    shown_source, shown_target = ~missing_mask(source), ~missing_mask(target)
    both, either = shown_source & shown_target, shown_source | shown_target
    if not both.any():
        return float("inf")
    scale = torso_length(source) or torso_length(target) or float(np.ptp(source[both, 0]))
    if not scale:
        return float("inf")
    moved = np.linalg.norm(target[both] - source[both], axis=1) / scale
    return float((moved.sum() + (either & ~both).sum()) / either.sum())


def anchor(keypoints: np.ndarray, hips: bool = True) -> np.ndarray | None:
    """``(2,)`` y/x placement point: the hip centre (when ``hips`` and both are present), else the neck
    (or the shoulders' midpoint); None if neither."""
    keypoints = _with_neck(_check(keypoints, "keypoints"))
    present = ~missing_mask(keypoints)
    if hips and present[list(HIPS)].all():
        return keypoints[list(HIPS)].mean(axis=0)
    if present[NECK]:
        return keypoints[NECK].copy()
    return None


#: The bones whose 2D length says how far the body is turned (neck to each shoulder). A retargeted one takes the
#: subject's length only within ``PROPORTION_TOLERANCE`` of the target's own length at the subject's scale: a
#: shoulder line the target shows end-on (turned to the side) stays short instead of taking the subject's frontal
#: width - which turned a side view into a back view - and the reverse. Other bones carry the subject's proportions.
TURNING_BONES: tuple[tuple[int, int], ...] = ((NECK, SHOULDERS[0]), (NECK, SHOULDERS[1]))
PROPORTION_TOLERANCE = 0.25


def retarget(subject: np.ndarray, target: np.ndarray, tolerance: float = PROPORTION_TOLERANCE) -> np.ndarray:
    """The target pose with the subject's bone lengths, neck at the target's neck.

    subject, target: ``(18, 2)`` y/x (-1 missing), any frames. Each bone keeps the target's direction and takes
    the subject's length (:data:`TURNING_BONES` clipped to ``1 -+ tolerance`` times the target's length scaled by
    :func:`scale_ratio`, ``tolerance`` by default :data:`PROPORTION_TOLERANCE`; the target's length so scaled where
    the subject lacks the bone). Joints missing in the target stay missing; a joint whose tree parent is missing in
    the target hangs from its nearest present ancestor, along the target's direction, scaled by :func:`scale_ratio`.
    ValueError when the target has no neck (nor both shoulders) or the two poses share no bone.
    """
    subject = _with_neck(_check(subject, "subject"))
    target = _with_neck(_check(target, "target"))
    target_present = ~missing_mask(target)
    if not target_present[NECK]:
        raise ValueError("the target pose has no neck (nor both shoulders): it cannot be retargeted")
    ratio = scale_ratio(subject, target)
    subject_lengths = bone_lengths(subject)
    target_lengths = bone_lengths(target)
    out = np.full_like(target, -1.0)
    out[NECK] = target[NECK]
    placed = {NECK}
    parent_of = {child: parent for parent, child in TREE}
    for index, (parent, child) in enumerate(TREE):
        if not target_present[child]:
            continue
        if parent in placed:
            offset = target[child] - target[parent]
            expected = ratio * target_lengths[index]
            length = subject_lengths[index] if np.isfinite(subject_lengths[index]) else expected
            if (parent, child) in TURNING_BONES:
                length = float(np.clip(length, (1 - tolerance) * expected, (1 + tolerance) * expected))
            norm = float(np.linalg.norm(offset))
            out[child] = out[parent] + (offset / norm * length if norm > 1e-9 else 0.0)
        else:
            ancestor = parent
            while ancestor not in placed:
                ancestor = parent_of[ancestor]
            out[child] = out[ancestor] + ratio * (target[child] - target[ancestor])
        placed.add(child)
    return out


#: Joints a target pose may leave out that the subject then keeps (hips, knees, ankles): an upper-body target on
#: a full-body photo moves the upper body and leaves the legs standing. Face and arm joints are not borrowed (a
#: target without eyes faces away; a missing arm joint is usually hidden behind the body).
KEPT_FROM_SUBJECT: tuple[int, ...] = tuple(KEYPOINT_INDEX[f"{side}_{joint}"] for joint in ("hip", "knee", "ankle")
                                           for side in ("right", "left"))


def complete(placed: np.ndarray, subject: np.ndarray, joints: tuple[int, ...] = KEPT_FROM_SUBJECT) -> np.ndarray:
    """``placed`` (a target pose already in the subject's frame) with each of ``joints`` it lacks and the subject
    shows taken from the subject, hung from its tree parent with the subject's own offset
    (``placed[parent] + subject[child] - subject[parent]``, outwards from the neck, so a whole leg follows its
    hip). A pose without any joint stays empty."""
    placed = _with_neck(_check(placed, "placed"))
    subject = _with_neck(_check(subject, "subject"))
    present, subject_present = ~missing_mask(placed), ~missing_mask(subject)
    if not present.any():
        return placed
    wanted = set(joints)
    for parent, child in TREE:
        if child in wanted and not present[child] and subject_present[child] and present[parent] \
                and subject_present[parent]:
            placed[child] = placed[parent] + subject[child] - subject[parent]
            present[child] = True
    return placed


def place(keypoints: np.ndarray, at: np.ndarray, scale: float = 1.0, hips: bool = True) -> np.ndarray:
    """Scale a pose about its :func:`anchor` (``hips`` as there) by ``scale`` and move the anchor to ``at``;
    missing joints stay -1."""
    keypoints = _check(keypoints, "keypoints")
    origin = anchor(keypoints, hips)
    if origin is None:
        raise ValueError("the pose has neither hips nor a neck to place it by")
    present = ~missing_mask(keypoints)
    out = np.full_like(keypoints, -1.0)
    out[present] = (keypoints[present] - origin) * scale + np.asarray(at, dtype=np.float64)
    return out
