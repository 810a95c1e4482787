"""Per-part geometric maps of the keypoint prior: which source pixels belong to which body segment, and
where each segment goes from the source pose to the target pose.

A *segment* is one rigid piece of the body: the torso, the head, and the upper/lower arm and thigh/shin
of each side (hands, feet and shoes ride on the lower segment). Each gets a *backward* map
``target pixel -> source pixel`` (an affine map, ``(2, 3)`` acting on ``(y, x, 1)``), fitted from the
segment's keypoints in both poses:

* limbs: the target bone is carried onto the source bone (rotation + translation), stretched along the
  bone by the ratio of the bone lengths (foreshortening) and across it by the body's scale ratio only,
  so a limb seen end-on keeps its width;
* torso: least-squares affine map of the neck, shoulders and hips (singular values clamped to
  [1/3, 3] x the body scale ratio, so a side-on torso does not collapse);
* head (and hair, a segment of its own for depth): rotation about the neck by the turn of the neck -> head-keypoint direction (or of the torso's
  up direction when the head has no keypoint in both poses), scaled by the body scale ratio.

A segment whose keypoints are missing in either pose has no map of its own (``valid`` is False); a
lower limb then borrows its parent's map (the limb continues rigidly), anything else is dropped.
Depth order (a larger value is nearer the camera) follows the *target* view, read from the skeleton:
the person's left shoulder right of their right shoulder is a front view, the mirror a back view,
close shoulders a side view whose near side is the one the nose turns to.
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from recapture.body.parts import LabelSet

#: Segment names in index order, their (start, end) COCO-18 joints (-1: special) and parent segment.
SEGMENTS: tuple[tuple[str, int, int, int], ...] = (
    ("torso", -1, -1, -1), ("head", -1, -1, -1),
    ("right_upper_arm", 2, 3, -1), ("right_lower_arm", 3, 4, 2),
    ("left_upper_arm", 5, 6, -1), ("left_lower_arm", 6, 7, 4),
    ("right_thigh", 8, 9, -1), ("right_shin", 9, 10, 6),
    ("left_thigh", 11, 12, -1), ("left_shin", 12, 13, 8),
    ("hair", -1, -1, -1),
)
SEGMENT_NAMES: tuple[str, ...] = tuple(s[0] for s in SEGMENTS)
NUM_SEGMENTS = len(SEGMENTS)
TORSO, HEAD, HAIR = 0, 1, 10
ARMS, LEGS = (2, 3, 4, 5), (6, 7, 8, 9)
#: The same segment of the other side (right upper arm <-> left upper arm, ...).
TWIN = {2: 4, 3: 5, 4: 2, 5: 3, 6: 8, 7: 9, 8: 6, 9: 7}
RIGHT_SIDE, LEFT_SIDE = (2, 3, 6, 7), (4, 5, 8, 9)
NECK, NOSE = 1, 0
TORSO_JOINTS = (1, 2, 5, 8, 11)
TORSO_QUAD = (2, 5, 11, 8)  # right shoulder, left shoulder, left hip, right hip
HEAD_JOINTS = (0, 14, 15, 16, 17)
#: Half-width of a limb as a fraction of the torso length (source pixels this close to a bone go with it).
LIMB_RADIUS = {2: 0.09, 3: 0.08, 4: 0.09, 5: 0.08, 6: 0.13, 7: 0.1, 8: 0.13, 9: 0.1}
#: Which segments may own a part, by part name (other names: every segment but the head).
_HEAD_PARTS = {"hat", "sunglasses", "face", "head"}
_OWNERS: dict[str, tuple[int, ...]] = {
    "background": (), "hair": (HAIR,), "glove": ARMS, "arms": ARMS, "left_arm": (4, 5), "right_arm": (2, 3),
    "left_leg": (8, 9), "right_leg": (6, 7), "legs": LEGS, "socks": (7, 9), "left_shoe": (9,),
    "right_shoe": (7,), "shoes": (7, 9), "pants": (TORSO,) + LEGS, "skirt": (TORSO,) + LEGS,
    "lower_clothes": (TORSO,) + LEGS,
}
FRONT, BACK, SIDE = "front", "back", "side"


def owner_table(label_set: LabelSet) -> np.ndarray:
    """``(N, S)`` bool: part ``n`` may belong to segment ``s`` (as :func:`part_maps.owner_table`)."""
    table = np.zeros((label_set.num_parts, NUM_SEGMENTS), dtype=bool)
    for label, name in enumerate(label_set.names):
        table[label, list((HEAD,) if name in _HEAD_PARTS else _OWNERS.get(name, (TORSO,) + ARMS + LEGS))] = True
    return table


def _present(keypoints: np.ndarray) -> np.ndarray:
    return (keypoints[:, 0] != -1) & (keypoints[:, 1] != -1)


def _torso_length(keypoints: np.ndarray, present: np.ndarray) -> float | None:
    """Neck (or shoulder midpoint) to hip midpoint, None when it cannot be measured."""
    top = keypoints[NECK] if present[NECK] else (keypoints[[2, 5]].mean(0) if present[[2, 5]].all() else None)
    hips = [j for j in (8, 11) if present[j]]
    if top is None or not hips:
        return None
    return float(np.linalg.norm(top - keypoints[hips].mean(0))) or None


def scale_ratio(source: np.ndarray, target: np.ndarray) -> float:
    """Body scale of the source over the target (torso lengths; spread of shared joints otherwise)."""
    sp, tp = _present(source), _present(target)
    ls, lt = _torso_length(source, sp), _torso_length(target, tp)
    if ls and lt:
        return float(np.clip(ls / lt, 0.1, 10.0))
    both = sp & tp
    if both.sum() >= 2:
        ds = np.linalg.norm(source[both] - source[both].mean(0), axis=1).mean()
        dt = np.linalg.norm(target[both] - target[both].mean(0), axis=1).mean()
        if ds > 1e-6 and dt > 1e-6:
            return float(np.clip(ds / dt, 0.1, 10.0))
    return 1.0


def view_of(keypoints: np.ndarray, height: float) -> tuple[str, str]:
    """``(view, near side)``: front | back | side, and "right" | "left" (the side nearer the camera)."""
    present = _present(keypoints)
    length = _torso_length(keypoints, present) or 0.25 * height
    view, dx = SIDE, 0.0
    for right, left in ((2, 5), (8, 11)):
        if present[right] and present[left]:
            dx = (keypoints[left, 1] - keypoints[right, 1]) / length
            view = FRONT if dx > 0.2 else BACK if dx < -0.2 else SIDE
            break
    else:
        view = FRONT if present[[0, 14, 15]].any() else SIDE
    facing = 0.0
    if present[NOSE] and present[NECK]:
        facing = keypoints[NOSE, 1] - keypoints[NECK, 1]
    if abs(facing) > 1e-6 and view == SIDE:
        return view, "right" if facing > 0 else "left"
    right_count = present[[2, 3, 4, 8, 9, 10, 17]].sum()
    left_count = present[[5, 6, 7, 11, 12, 13, 16]].sum()
    if view == SIDE:
        return view, "right" if right_count >= left_count else "left"
    near_right = dx * (1 if view == FRONT else -1) >= 0
    return view, "right" if near_right else "left"


def is_back_view(keypoints: np.ndarray, height: float) -> bool:
    """Whether ``keypoints`` (18, 2) in a frame of ``height`` rows show the person's back (:func:`view_of`)."""
    return view_of(keypoints, height)[0] == BACK


def turns_back(source_keypoints: np.ndarray, target_keypoints: np.ndarray, height: float) -> bool:
    """Whether a pair turns the person's back to the camera: the ``(18, 2)`` target keypoints show the back
    (:func:`is_back_view`) and the source keypoints do not (so the source face is one the target hides)."""
    return is_back_view(target_keypoints, height) and not is_back_view(source_keypoints, height)


def face_channels(label_set: LabelSet) -> tuple[int, list[int]] | None:
    """``(hair, [face, sunglasses])`` label indices (sunglasses when the set has them) of a label set a back view's
    head is remapped in (a person seen from behind shows hair, no face); None without hair and face."""
    if not {"hair", "face"} <= set(label_set.names):
        return None
    faces = [label_set.index(name) for name in ("face", "sunglasses") if name in label_set.names]
    return label_set.index("hair"), faces


def depth_order(keypoints: np.ndarray, height: float) -> np.ndarray:
    """``(S,)`` depth of each segment in the pose ``keypoints`` (larger = nearer the camera)."""
    view, near = view_of(keypoints, height)
    depth = np.zeros(NUM_SEGMENTS)
    depth[HEAD] = 0.5
    depth[HAIR] = -0.1 if view == FRONT else 0.5  # long hair hangs behind a front-facing torso
    near_side, far_side = (RIGHT_SIDE, LEFT_SIDE) if near == "right" else (LEFT_SIDE, RIGHT_SIDE)
    for side, sign in ((near_side, 1.0), (far_side, -1.0 if view == SIDE else 1.0)):
        upper_arm, lower_arm, thigh, shin = side
        arm = (1.0 if view != BACK else -1.0) if view != SIDE else sign
        depth[upper_arm], depth[lower_arm] = arm, arm + 0.1
        leg = -0.3 if view != SIDE else (-0.2 if sign > 0 else -0.6)
        depth[thigh], depth[shin] = leg, leg + 0.05
        if side is near_side:
            depth[list(side)] += 0.01
    return depth


def _clamped(linear: np.ndarray, scale: float, low: float = 1 / 3, high: float = 3.0) -> np.ndarray:
    u, s, vt = np.linalg.svd(linear)
    return u @ np.diag(np.clip(s, low * scale, high * scale)) @ vt


def _rotation(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def _angle(vector: np.ndarray) -> float:
    return float(np.arctan2(vector[1], vector[0]))


def _affine(linear: np.ndarray, target_point: np.ndarray, source_point: np.ndarray) -> np.ndarray:
    """``(2, 3)`` map ``t -> source_point + linear (t - target_point)``."""
    return np.concatenate([linear, (source_point - linear @ target_point)[:, None]], axis=1)


def _limb_map(source: np.ndarray, target: np.ndarray, a: int, b: int, scale: float) -> np.ndarray:
    ts, td = target[a], target[b] - target[a]
    ss, sd = source[a], source[b] - source[a]
    lt, ls = float(np.linalg.norm(td)), float(np.linalg.norm(sd))
    if ls < 1e-6:
        return _affine(np.eye(2) * scale, ts, ss)
    sdir = sd / ls
    tdir = td / lt if lt > 1e-6 else sdir
    along = float(np.clip(ls / max(lt, 1e-6), scale / 4, scale * 4))
    tperp, sperp = np.array([-tdir[1], tdir[0]]), np.array([-sdir[1], sdir[0]])
    linear = along * np.outer(sdir, tdir) + scale * np.outer(sperp, tperp)
    return _affine(linear, ts, ss)


def twin_map(source: np.ndarray, target: np.ndarray, index: int, scale: float) -> np.ndarray | None:
    """``(2, 3)`` backward map carrying limb segment ``index``'s target bone onto its :data:`TWIN`'s source bone
    (the other side's arm or leg, standing in for one the source hides); None without those joints."""
    _, a, b, _ = SEGMENTS[index]
    _, twin_a, twin_b, _ = SEGMENTS[TWIN[index]]
    if not (_present(target)[[a, b]].all() and _present(source)[[twin_a, twin_b]].all()):
        return None
    stand_in = source.copy()
    stand_in[[a, b]] = source[[twin_a, twin_b]]
    return _limb_map(stand_in, target, a, b, scale)


def _torso_map(source: np.ndarray, target: np.ndarray, both: np.ndarray, scale: float) -> np.ndarray | None:
    joints = [j for j in TORSO_JOINTS if both[j]]
    if len(joints) >= 3:
        t, s = target[joints], source[joints]
        tc, sc = t.mean(0), s.mean(0)
        spread = np.linalg.svd(t - tc, compute_uv=False)
        if spread[-1] > 0.05 * spread[0]:
            linear = np.linalg.lstsq(t - tc, s - sc, rcond=None)[0].T
            return _affine(_clamped(linear, scale), tc, sc)
    if len(joints) >= 2:
        a, b = joints[0], joints[-1]
        return _limb_map(source, target, a, b, scale) if np.linalg.norm(target[b] - target[a]) > 1e-6 else None
    if len(joints) == 1:
        return _affine(np.eye(2) * scale, target[joints[0]], source[joints[0]])
    return None


def _up(keypoints: np.ndarray, present: np.ndarray) -> np.ndarray | None:
    hips = [j for j in (8, 11) if present[j]]
    if not present[NECK] or not hips:
        return None
    return keypoints[NECK] - keypoints[hips].mean(0)


def _head_map(source: np.ndarray, target: np.ndarray, both: np.ndarray, scale: float) -> np.ndarray | None:
    sp, tp = _present(source), _present(target)
    if not both[NECK]:
        return None
    shared = [j for j in HEAD_JOINTS if both[j]]
    if shared:
        sv, tv = source[shared].mean(0) - source[NECK], target[shared].mean(0) - target[NECK]
    else:
        sv, tv = _up(source, sp), _up(target, tp)
    angle = 0.0 if sv is None or tv is None else _angle(sv) - _angle(tv)
    return _affine(scale * _rotation(angle), target[NECK], source[NECK])


@dataclass(frozen=True)
class SegmentMaps:
    """The backward maps of one (source, target) pose pair."""

    maps: np.ndarray  # (S, 2, 3) target (y, x, 1) -> source (y, x); identity rows where unused
    valid: np.ndarray  # (S,) bool: the segment has its own map (keypoints present in both poses)
    used: np.ndarray  # (S,) bool: the segment is placed (own map or borrowed from its parent)
    source_ok: np.ndarray  # (S,) bool: the segment's source pixels can be found (keypoints in the source)
    depth: np.ndarray  # (S,) target depth order, larger = nearer
    scale: float  # source / target body scale
    views: tuple[str, str]  # (source view, target view)


def segment_maps(source: np.ndarray, target: np.ndarray, height: float) -> SegmentMaps:
    """Fit every segment's backward map for ``source``/``target`` keypoints ``(18, 2)`` y/x (-1 missing)."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    sp, tp = _present(source), _present(target)
    both = sp & tp
    scale = scale_ratio(source, target)
    maps = np.tile(np.array([[1.0, 0, 0], [0, 1.0, 0]]), (NUM_SEGMENTS, 1, 1))
    valid = np.zeros(NUM_SEGMENTS, bool)
    source_ok = np.zeros(NUM_SEGMENTS, bool)
    fitted = {TORSO: _torso_map(source, target, both, scale), HEAD: _head_map(source, target, both, scale)}
    source_ok[TORSO] = sp[list(TORSO_JOINTS)].sum() >= 2
    source_ok[HEAD] = bool(sp[NECK])
    for index in ARMS + LEGS:
        _, a, b, _ = SEGMENTS[index]
        source_ok[index] = bool(sp[a] and sp[b])
        fitted[index] = _limb_map(source, target, a, b, scale) if both[a] and both[b] else None
    fitted[HAIR], source_ok[HAIR] = fitted[HEAD], source_ok[HEAD]
    used = np.zeros(NUM_SEGMENTS, bool)
    for index, (_, _, _, parent) in enumerate(SEGMENTS):
        if fitted[index] is not None:
            maps[index], valid[index], used[index] = fitted[index], True, True
        elif parent >= 0 and fitted[parent] is not None:
            maps[index], used[index] = fitted[parent], True
    views = (view_of(source, height)[0], view_of(target, height)[0])
    return SegmentMaps(maps=maps, valid=valid, used=used, source_ok=source_ok, depth=depth_order(target, height),
                       scale=scale, views=views)


def pixel_grid(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(H, 1)`` row and ``(1, W)`` column float32 coordinates of the pixel centres (they broadcast)."""
    ys = np.arange(size[0], dtype=np.float32)[:, None]
    xs = np.arange(size[1], dtype=np.float32)[None, :]
    return ys, xs


def _segment_distance(ys: np.ndarray, xs: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(H, W)`` float32 distance of every pixel centre to the segment ``a``-``b`` (y/x)."""
    ay, ax, by, bx = (float(v) for v in (*a, *b))
    dy, dx = by - ay, bx - ax
    oy, ox = ys - np.float32(ay), xs - np.float32(ax)
    t = np.clip((oy * np.float32(dy) + ox * np.float32(dx)) / np.float32(max(dy * dy + dx * dx, 1e-8)), 0.0, 1.0)
    return np.sqrt((oy - t * np.float32(dy)) ** 2 + (ox - t * np.float32(dx)) ** 2)


def _torso_distance(ys: np.ndarray, xs: np.ndarray, keypoints: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Distance to the shoulder-hip quadrilateral (0 inside), or to the available torso line."""
    corners = [keypoints[j] for j in TORSO_QUAD if present[j]]
    if len(corners) < 3:
        joints = [keypoints[j] for j in TORSO_JOINTS if present[j]]
        joints = joints * 2 if len(joints) == 1 else joints
        return np.minimum.reduce([_segment_distance(ys, xs, p, q) for p, q in zip(joints[:-1], joints[1:])])
    edges = list(zip(corners, corners[1:] + corners[:1]))
    distance = np.minimum.reduce([_segment_distance(ys, xs, p, q) for p, q in edges])
    positive = negative = np.ones(distance.shape, dtype=bool)
    for p, q in edges:
        cross = np.float32(q[1] - p[1]) * (ys - np.float32(p[0])) - np.float32(q[0] - p[0]) * (xs - np.float32(p[1]))
        positive, negative = positive & (cross >= 0), negative & (cross <= 0)
    return np.where(positive | negative, np.float32(0.0), distance)


def torso_distance(keypoints: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray | None:
    """float32 distance of the pixel centres ``ys``/``xs`` (float32, broadcastable: the frame's
    :func:`pixel_grid` or 1-D lists of pixels) to the torso quadrilateral (0 inside); None when fewer than
    three of its corners are known."""
    present = _present(keypoints)
    if sum(present[j] for j in TORSO_QUAD) < 3:
        return None
    return _torso_distance(ys, xs, keypoints, present)


def in_torso(keypoints: np.ndarray, size: tuple[int, int], margin: float) -> np.ndarray:
    """``(H, W)`` bool: within ``margin`` pixels of the torso quadrilateral."""
    distance = torso_distance(keypoints, *pixel_grid(size))
    return np.zeros(size, dtype=bool) if distance is None else distance <= margin


def torso_mask(keypoints: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` bool: the pixel centres strictly inside the torso quadrilateral, all four corners known (else
    none), by the even-odd rule (a twisted quadrilateral fills both its triangles). Ŝ_B's torso rule; :func:`in_torso`
    takes three corners, edges and a margin."""
    corners = np.asarray(keypoints, dtype=np.float64)[list(TORSO_QUAD)]
    inside = np.zeros(size, dtype=bool)
    if not _present(corners).all():
        return inside
    ys, xs = np.arange(size[0], dtype=np.float64)[:, None], np.arange(size[1], dtype=np.float64)[None, :]
    for (ay, ax), (by, bx) in zip(corners, np.roll(corners, -1, axis=0)):
        if ay != by:
            inside ^= (ys >= min(ay, by)) & (ys < max(ay, by)) & (xs < ax + (ys - ay) * (bx - ax) / (by - ay))
    return inside


def limb_radius(keypoints: np.ndarray, index: int, height: int) -> float:
    """Nominal half-width in pixels of limb segment ``index`` (:data:`LIMB_RADIUS` x the torso length; without
    a torso, 0.3 of the image ``height`` stands for it)."""
    return LIMB_RADIUS[index] * (_torso_length(keypoints, _present(keypoints)) or 0.3 * height)


def limb_stroke(keypoints: np.ndarray, index: int, size: tuple[int, int]
                ) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Limb segment ``index`` drawn at its half-width (:func:`limb_radius`) in a ``size`` frame, as ``(window,
    mask)``: the rows/columns box around it and the ``(h, w)`` bool stroke within the box; None without its joints
    or off the frame."""
    _, a, b, _ = SEGMENTS[index]
    present = _present(keypoints)
    if index not in ARMS + LEGS or not (present[a] and present[b]):
        return None
    radius = limb_radius(keypoints, index, size[0])
    ends = keypoints[[a, b]]
    low = np.clip(np.floor(ends.min(axis=0) - radius).astype(np.int64), 0, size)
    high = np.clip(np.ceil(ends.max(axis=0) + radius).astype(np.int64) + 1, 0, size)
    if (high <= low).any():
        return None
    ys = np.arange(low[0], high[0], dtype=np.float32)[:, None]
    xs = np.arange(low[1], high[1], dtype=np.float32)[None, :]
    window = (slice(int(low[0]), int(high[0])), slice(int(low[1]), int(high[1])))
    return window, _segment_distance(ys, xs, keypoints[a], keypoints[b]) <= radius


def limb_strokes(keypoints: np.ndarray, segments: list[int], size: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` bool: the limb ``segments`` drawn at their half-widths."""
    mask = np.zeros(size, dtype=bool)
    for index in segments:
        found = limb_stroke(keypoints, index, size)
        if found is not None:
            mask[found[0]] |= found[1]
    return mask


def assign_segments(labels: np.ndarray, keypoints: np.ndarray, owners: np.ndarray,
                    source_ok: np.ndarray) -> np.ndarray:
    """``(H, W)`` int64: the segment owning each source pixel, -1 for none (as :func:`part_maps.assign_segments`:
    the nearest allowed segment, ties to the lower index)."""
    present = _present(keypoints)
    length = _torso_length(keypoints, present) or 0.3 * labels.shape[0]
    # Only pixels some segment may own (not the background) are measured, as 1-D arrays of their centres: the
    # per-pixel arithmetic is the same, so is every result. Ownership is looked up per part, then per pixel.
    rows, cols = np.nonzero(owners.any(axis=1)[labels])
    ys, xs = rows.astype(np.float32), cols.astype(np.float32)
    allowed = owners[labels[rows, cols]]  # (P, S)
    best = np.full(rows.shape, np.inf, dtype=np.float32)
    index = np.zeros(rows.shape, dtype=np.int64)
    for segment in range(NUM_SEGMENTS):
        if not source_ok[segment] or not rows.size:
            continue
        if segment == TORSO:
            distance = _torso_distance(ys, xs, keypoints, present) + np.float32(1e-3)
        elif segment in (HEAD, HAIR):
            distance = np.zeros(rows.shape, dtype=np.float32)
        else:
            _, a, b, _ = SEGMENTS[segment]
            near = _segment_distance(ys, xs, keypoints[a], keypoints[b]) - np.float32(LIMB_RADIUS[segment] * length)
            distance = np.maximum(near, np.float32(0.0))
        better = allowed[:, segment] & (distance < best)
        best = np.where(better, distance, best)
        index[better] = segment
    assigned = np.full(labels.shape, -1, dtype=np.int64)
    assigned[rows, cols] = np.where(np.isfinite(best), index, -1)
    return assigned
