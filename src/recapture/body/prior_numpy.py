"""The keypoint prior in vectorised NumPy, without torch: the part-affine backward warp (the one
implementation: :mod:`recapture.body.keypoint_warp` is its torch-tensor API) and the correspondence
network's inputs built on it (:func:`prior_grid`, :func:`majority_labels`, :func:`area_resize`,
:func:`disk_heatmaps`), which the ONNX Runtime photo path (``recapture edit --backend onnxruntime``) runs
without importing torch.

Per segment the work is a handful of whole-image array operations (no per-pixel Python), and the running
winner of the depth order is kept instead of stacking all segments, so a 1280x880 full-resolution prior
needs a few image-sized buffers, not eleven. ``tests/test_prior_numpy.py`` pins it to the torch
implementation it replaced (``tests/golden/keypoint_warp.json``: same segments, labels and coordinates)
and to torch's pooling, one-hot and heatmaps.

Arrays: labels ``(H, W)`` integers of ``label_set``; keypoints ``(18, 2)`` y/x in the labels' pixel frame
(-1 missing). One pair at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recapture.body.part_maps import (
    ARMS, BACK, FRONT, HEAD, LEGS, NUM_SEGMENTS, SEGMENTS, TORSO, TWIN, SegmentMaps, assign_segments, face_channels,
    in_torso, limb_radius, limb_stroke, limb_strokes, owner_table, pixel_grid, segment_maps, torso_distance, twin_map,
)
from recapture.body.parts import LabelSet, get_label_set

#: Source pixels within this fraction of the image height around the torso quadrilateral belong to the
#: torso too: a sleeve or an arm lifted off the body leaves shirt behind (the torso's most common
#: clothing label where an arm lay over it), not a hole.
TORSO_MARGIN = 0.04
#: With ``twins``: a target limb whose own source pixels cover less than this share of its stroke is hidden in the
#: source (behind the body, or labelled as the other side) and is drawn from the other side's limb ...
HIDDEN_LIMB = 0.5
#: ... when one of its joints moves more than this many half-widths of the limb (one that stays, stays hidden).
STILL_LIMB = 0.5


@dataclass(frozen=True)
class NumpyPartWarp:
    """Where every target pixel comes from (:class:`recapture.body.keypoint_warp.PartWarp`, one pair)."""

    segment: np.ndarray  # (H, W) int64: winning segment, -1 where none covers the pixel
    source_coords: np.ndarray  # (H, W, 2) float32 y/x source pixel (the torso's map where segment is -1)
    labels: np.ndarray  # (H, W) int64 warped labels (0 where uncovered)
    unexplained: np.ndarray  # (H, W) bool: target limbs/torso the source keypoints cannot supply
    segment_valid: np.ndarray  # (S,) bool
    part_validity: np.ndarray  # (N,) float32
    torso_map: np.ndarray  # (2, 3) the torso's backward map (the background's motion)


def _sample_nearest(values: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """``values[round(y), round(x)]`` for ``(H, W, 2)`` y/x coordinates; 0 outside (grid_sample nearest, zeros)."""
    height, width = values.shape
    rows, cols = np.rint(coords[..., 0]), np.rint(coords[..., 1])
    inside = (rows >= 0) & (rows <= height - 1) & (cols >= 0) & (cols <= width - 1)
    flat = np.clip(rows, 0, height - 1, out=rows).astype(np.int32)
    flat *= width
    flat += np.clip(cols, 0, width - 1, out=cols).astype(np.int32)
    found = values.ravel().take(flat)
    found[~inside] = 0
    return found


def _target_window(backward: np.ndarray, region: np.ndarray) -> tuple[slice, slice] | None:
    """The target rows and columns whose ``(2, 3)`` backward map (target y/x -> source y/x) can land on a pixel of
    ``region`` (``(H, W)`` bool; nearest sampling, so within half a pixel of its box), one pixel of slack
    for float32 rounding; None when ``region`` is empty; the whole frame when the map is (nearly) singular."""
    rows, cols = np.nonzero(region.any(axis=1))[0], np.nonzero(region.any(axis=0))[0]
    if rows.size == 0:
        return None
    height, width = region.shape
    (a, b), (c, d) = (float(v) for v in backward[0, :2]), (float(v) for v in backward[1, :2])
    determinant = a * d - b * c
    if abs(determinant) < 1e-6:
        return slice(0, height), slice(0, width)
    corners = np.array([[y, x] for y in (rows[0] - 0.5, rows[-1] + 0.5) for x in (cols[0] - 0.5, cols[-1] + 0.5)])
    reached = (corners - backward[:, 2]) @ (np.array([[d, -b], [-c, a]]) / determinant).T
    low = np.floor(reached.min(axis=0)).astype(np.int64) - 1
    high = np.ceil(reached.max(axis=0)).astype(np.int64) + 2
    low, high = np.clip(low, 0, (height, width)), np.clip(high, 0, (height, width))
    return slice(int(low[0]), int(high[0])), slice(int(low[1]), int(high[1]))


def _backward_points(backward: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``(h, w, 2)`` float32 source y/x of the target pixels ``rows`` ``(h, 1)`` x ``cols`` ``(1, w)`` under a
    ``(2, 3)`` backward map (computed in the map's dtype)."""
    return np.stack([(backward[k, 0] * rows + backward[k, 1] * cols + backward[k, 2]).astype(np.float32, copy=False)
                     for k in (0, 1)], -1)


def _moves(source: np.ndarray, target: np.ndarray, index: int, height: int) -> bool:
    """Limb segment ``index`` moves between the poses: one of its joints by more than :data:`STILL_LIMB` x its
    half-width (a limb that stays where it was stays as hidden as it was)."""
    _, a, b, _ = SEGMENTS[index]
    shift = np.linalg.norm(target[[a, b]] - source[[a, b]], axis=1).max()
    return bool(shift > STILL_LIMB * limb_radius(target, index, height))


def _fill_from_twins(fit: SegmentMaps, assigned: np.ndarray, source: np.ndarray, target: np.ndarray,
                     segment: np.ndarray, coords: np.ndarray, grid: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Draw the target limbs the source hides from the other side's limb (:func:`twin_map`), in place: a limb
    that moves and whose own source pixels cover less than :data:`HIDDEN_LIMB` of its target stroke (its nominal
    width) takes, at the stroke's uncovered pixels, the twin's source pixels they land on. Returns the ``(H, W)``
    bool mask of the pixels so drawn (``grid``: the frame's :func:`pixel_grid`)."""
    size = segment.shape
    ys, xs = grid
    filled = np.zeros(size, dtype=bool)
    for index in ARMS + LEGS:
        backward = twin_map(source, target, index, fit.scale)
        if backward is None or not _moves(source, target, index, size[0]):
            continue
        stroke = limb_stroke(target, index, size)
        if stroke is None:
            continue
        window, inside = stroke
        here_segment = segment[window]
        if not inside.any() or (here_segment[inside] == index).mean() >= HIDDEN_LIMB:
            continue
        here = _backward_points(backward, ys[window[0]], xs[:, window[1]])
        drawn = inside & (here_segment < 0) & _sample_nearest(assigned == TWIN[index], here).astype(bool)
        here_segment[drawn] = index
        coords[window][drawn] = here[drawn]
        filled[window] |= drawn
    return filled


def part_warp(labels: np.ndarray, source: np.ndarray, target: np.ndarray,
              label_set: str | LabelSet = "lip20", twins: bool = False) -> NumpyPartWarp:
    """The part-by-part backward warp of ``(H, W)`` source labels from ``source`` to ``target`` keypoints.
    With ``twins``, target limb pixels the source cannot supply (the limb hidden or mislabelled in the source)
    are taken from the other side's limb, left/right labels swapped (:func:`_fill_from_twins`)."""
    found = label_set if isinstance(label_set, LabelSet) else get_label_set(label_set)
    labels = np.asarray(labels).astype(np.int64)
    if labels.size and int(labels.max()) >= found.num_parts:
        raise ValueError(f"source_layout has label {int(labels.max())} >= {found.num_parts} parts of {found.name}")
    source, target = (np.asarray(k, dtype=np.float64).reshape(18, 2) for k in (source, target))
    size = labels.shape
    owners = owner_table(found)
    fit = segment_maps(source, target, size[0])
    assigned = assign_segments(labels, source, owners, fit.source_ok)
    torso_parts = owners[:, TORSO][labels] & (labels > 0)
    arm_parts = (owners[:, list(ARMS)].any(axis=1) & ~owners[:, TORSO])[labels]
    # Torso-part pixels within the margin of the source torso, arm pixels inside it: the torso distance is
    # measured once, and only at those (disjoint) pixels.
    inside = np.zeros(size, dtype=bool)
    rows, cols = np.nonzero(torso_parts | arm_parts)
    distance = torso_distance(source, rows.astype(np.float32), cols.astype(np.float32))
    if distance is not None:
        inside[rows, cols] = np.where(torso_parts[rows, cols], distance <= TORSO_MARGIN * size[0], distance <= 0.0)
    fill = int(np.bincount(labels[inside & torso_parts], minlength=found.num_parts).argmax())
    if not (inside & torso_parts).any():
        inside = inside & torso_parts
    ys, xs = pixel_grid(size)
    maps = fit.maps.astype(np.float32)
    best_depth = np.full(size, -np.inf, dtype=np.float32)
    segment = np.full(size, -1, dtype=np.int64)
    coords = np.empty((*size, 2), dtype=np.float32)
    for k in (0, 1):  # where nothing covers a pixel its coordinates are the first segment's
        coords[..., k] = maps[0, k, 0] * ys + maps[0, k, 1] * xs + maps[0, k, 2]
    for index in range(NUM_SEGMENTS):
        if not fit.used[index]:
            continue
        region = (assigned == index) | inside if index == TORSO else assigned == index
        window = _target_window(fit.maps[index], region)  # only target pixels that can land on the region
        if window is None:
            continue
        here = _backward_points(maps[index], ys[window[0]], xs[:, window[1]])
        depth = best_depth[window]
        covered = _sample_nearest(region, here).astype(bool) & (np.float32(fit.depth[index]) > depth)
        depth[covered] = np.float32(fit.depth[index])
        segment[window][covered] = index
        coords[window][covered] = here[covered]
    filled = _fill_from_twins(fit, assigned, source, target, segment, coords, (ys, xs)) if twins else None
    small = labels.astype(np.uint8) if found.num_parts <= 256 else labels  # the same values, a quarter of the reads
    warped = np.where(segment >= 0, _sample_nearest(small, coords), 0).astype(np.int64)
    if filled is not None:
        warped = np.where(filled, np.asarray(found.flip_permutation)[warped], warped)
    hole = (segment == TORSO) & ~owners[:, TORSO][warped]  # a limb lay over the source torso
    warped = np.where(hole, fill, warped)
    if fit.views == (FRONT, BACK) and "hair" in found.names:
        for name in ("face", "sunglasses"):
            if name in found.names:
                warped = np.where((segment == HEAD) & (warped == found.index(name)), found.index("hair"), warped)
    unexplained = limb_strokes(target, [s for s in range(NUM_SEGMENTS) if not fit.valid[s]], size)
    if not fit.valid[TORSO]:
        unexplained |= in_torso(target, size, 0.0)
    counts = np.bincount(labels.ravel(), minlength=found.num_parts).astype(np.float32)
    explained_pixels = (assigned >= 0) & fit.valid[np.maximum(assigned, 0)]
    explained = np.bincount(labels.ravel(), weights=explained_pixels.ravel(), minlength=found.num_parts)
    validity = np.where(counts > 0, explained / np.maximum(counts, 1), 1.0).astype(np.float32)
    validity[0] = 1.0
    return NumpyPartWarp(segment=segment, source_coords=coords, labels=warped, unexplained=unexplained,
                         segment_valid=fit.valid.copy(), part_validity=validity, torso_map=fit.maps[TORSO])


def pixel_to_grid(coords: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(..., 2)`` pixel y/x -> grid x/y in [-1, 1] (align_corners=True), float32."""
    x = coords[..., 1] * np.float32(2.0 / max(size[1] - 1, 1)) - np.float32(1.0)
    y = coords[..., 0] * np.float32(2.0 / max(size[0] - 1, 1)) - np.float32(1.0)
    return np.stack([x, y], axis=-1).astype(np.float32)


@dataclass(frozen=True)
class NumpyPriorGrid:
    """:class:`recapture.models.prior_grid.PriorGrid` of one pair as arrays."""

    grid: np.ndarray  # (H, W, 2) float32 x/y in [-1, 1]; the torso's map where no part covers
    covered: np.ndarray  # (H, W) float32
    labels: np.ndarray  # (H, W) int64 warped layout


def prior_grid(labels: np.ndarray, source: np.ndarray, target: np.ndarray,
               label_set: str | LabelSet = "lip20", twins: bool = False) -> NumpyPriorGrid:
    """The part warp as a sampling grid (as :func:`recapture.models.prior_grid.prior_grid`)."""
    warp = part_warp(labels, source, target, label_set, twins)
    size = labels.shape
    ys, xs = pixel_grid(size)
    torso = warp.torso_map.astype(np.float32)
    background = np.stack([torso[k, 0] * ys + torso[k, 1] * xs + torso[k, 2] for k in (0, 1)], axis=-1)
    covered = warp.segment >= 0
    coords = np.where(covered[..., None], warp.source_coords, background)
    return NumpyPriorGrid(grid=pixel_to_grid(coords, size), covered=covered.astype(np.float32), labels=warp.labels)


#: Limbs: they move with their own segment (an arm that swings away, a leg). A target pixel of another part whose
#: sample lands on one of them would copy that limb's skin a second time where it used to be. Not the face: where a
#: predicted layout's hairline is off, snapping its hair pixels off the forehead drew hair on the face.
LIMB_PARTS = ("left_arm", "right_arm", "left_leg", "right_leg")


def _sample_pixels(grid: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The nearest source pixel ``(ys, xs)`` of each sample of a ``(H, W, 2)`` x/y grid in [-1, 1]."""
    xs = np.rint((grid[..., 0] + 1.0) * (max(width - 1, 1) / 2.0)).astype(np.int64).clip(0, width - 1)
    ys = np.rint((grid[..., 1] + 1.0) * (max(height - 1, 1) / 2.0)).astype(np.int64).clip(0, height - 1)
    return ys, xs


def snap_to_own_parts(grid: np.ndarray, source_labels: np.ndarray, target_labels: np.ndarray,
                      label_set: str | LabelSet = "lip20", reach: float = 0.04, back_view: bool = False
                      ) -> np.ndarray:
    """A full-resolution sampling grid made to respect the parts (SAT's rule, applied to the prior's samples).

    ``grid`` ``(H, W, 2)`` x/y in [-1, 1] samples the ``(Hs, Ws)`` ``source_labels`` for the ``(H, W)``
    ``target_labels``. A target pixel of a part that is not a limb (:data:`LIMB_PARTS`) whose sample lands on a
    source limb pixel (e.g. a hand that lay over the trousers and has moved away) samples instead the nearest
    source pixel of its own part, if one lies within ``reach`` x ``Hs`` pixels of the sample; other pixels and
    parts the source lacks keep their sample (``reach`` 0: none moved). With ``back_view`` (the target shows the
    person's back), first the back of the head: :func:`hair_over_face`. Returns a new float32 array."""
    found = label_set if isinstance(label_set, LabelSet) else get_label_set(label_set)
    limb = np.zeros(found.num_parts, dtype=bool)
    limb[[found.index(name) for name in LIMB_PARTS if name in found.names]] = True
    source_labels, target_labels = np.asarray(source_labels), np.asarray(target_labels)
    out = (hair_over_face(grid, source_labels, target_labels, found) if back_view
           else np.array(grid, dtype=np.float32))
    if reach <= 0 or not limb.any():
        return out
    height, width = source_labels.shape
    ys, xs = _sample_pixels(out, height, width)
    wrong = (target_labels > 0) & limb[source_labels[ys, xs]] & ~limb[target_labels]
    if not wrong.any():
        return out
    from scipy.ndimage import distance_transform_edt  # lazy: importing scipy.ndimage costs ~0.35 s

    limit = reach * height
    margin = int(np.ceil(limit)) + 1
    y0, y1 = max(0, int(ys[wrong].min()) - margin), min(height, int(ys[wrong].max()) + margin + 1)
    x0, x1 = max(0, int(xs[wrong].min()) - margin), min(width, int(xs[wrong].max()) + margin + 1)
    for part in np.unique(target_labels[wrong]):
        own = source_labels[y0:y1, x0:x1] == part
        if not own.any():
            continue
        distance, (near_y, near_x) = distance_transform_edt(~own, return_indices=True)
        rows, cols = np.nonzero(wrong & (target_labels == part))
        at_y, at_x = ys[rows, cols] - y0, xs[rows, cols] - x0
        close = distance[at_y, at_x] <= limit
        rows, cols, at_y, at_x = rows[close], cols[close], at_y[close], at_x[close]
        out[rows, cols, 0] = (near_x[at_y, at_x] + x0) * np.float32(2.0 / max(width - 1, 1)) - np.float32(1.0)
        out[rows, cols, 1] = (near_y[at_y, at_x] + y0) * np.float32(2.0 / max(height - 1, 1)) - np.float32(1.0)
    return out


def _mirrored(own: np.ndarray, near_y: np.ndarray, near_x: np.ndarray, at_y: np.ndarray, at_x: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """For samples ``(at_y, at_x)`` off the ``own`` mask, their nearest own pixel ``p`` (``near_y/near_x``, a
    distance transform's indices) mirrored, ``2p - sample``, where that is inside ``own``, else ``p``."""
    edge_y, edge_x = near_y[at_y, at_x], near_x[at_y, at_x]
    mirror_y, mirror_x = 2 * edge_y - at_y, 2 * edge_x - at_x
    inside = (mirror_y >= 0) & (mirror_y < own.shape[0]) & (mirror_x >= 0) & (mirror_x < own.shape[1])
    inside[inside] = own[mirror_y[inside], mirror_x[inside]]
    return np.where(inside, mirror_y, edge_y), np.where(inside, mirror_x, edge_x)


def hair_over_face(grid: np.ndarray, source_labels: np.ndarray, target_labels: np.ndarray,
                   label_set: str | LabelSet = "lip20") -> np.ndarray:
    """The back of the head for a target seen from behind: target hair pixels whose sample lands on the source's
    face or sunglasses sample the source hair instead, mirrored across the hair's nearest edge (the sample's
    nearest hair pixel ``p``, then ``2p - sample`` if that is hair too, else ``p``), so the hair's own texture
    continues over the place of the face. ``grid`` ``(H, W, 2)`` x/y in [-1, 1] over the ``(Hs, Ws)``
    ``source_labels``; unchanged without source hair or a label set without hair and face. New float32 array."""
    found = label_set if isinstance(label_set, LabelSet) else get_label_set(label_set)
    out = np.array(grid, dtype=np.float32)
    channels = face_channels(found)
    if channels is None:
        return out
    hair = channels[0]
    face = np.zeros(found.num_parts, dtype=bool)
    face[channels[1]] = True
    source_labels, target_labels = np.asarray(source_labels), np.asarray(target_labels)
    height, width = source_labels.shape
    ys, xs = _sample_pixels(out, height, width)
    rows, cols = np.nonzero((target_labels == hair) & face[source_labels[ys, xs]])
    own = source_labels == hair
    if not len(rows) or not own.any():
        return out
    from scipy.ndimage import distance_transform_edt  # lazy: importing scipy.ndimage costs ~0.35 s

    _, (near_y, near_x) = distance_transform_edt(~own, return_indices=True)
    pick_y, pick_x = _mirrored(own, near_y, near_x, ys[rows, cols], xs[rows, cols])
    out[rows, cols, 0] = pick_x * np.float32(2.0 / max(width - 1, 1)) - np.float32(1.0)
    out[rows, cols, 1] = pick_y * np.float32(2.0 / max(height - 1, 1)) - np.float32(1.0)
    return out


def _bins(count: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive-pooling bins (torch's ``area`` interpolation): for each input index its first bin and a
    second bin it also belongs to (-1 if none)."""
    starts = (np.arange(out) * count) // out
    ends = -((-(np.arange(out) + 1) * count) // out)
    first = np.full(count, -1, dtype=np.int64)
    second = np.full(count, -1, dtype=np.int64)
    for index in range(out):
        span = np.arange(starts[index], ends[index])
        fresh = first[span] < 0
        first[span[fresh]] = index
        second[span[~fresh]] = index
    return first, second


def majority_labels(labels: np.ndarray, num_parts: int, size: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` labels -> ``(h, w)`` int64 majority part of each cell of torch's ``area`` pooling (ties to
    the lower label), as ``majority_layout``/``labels_at`` compute it, by exact integer counts."""
    labels = np.asarray(labels).astype(np.int64)
    if labels.shape == tuple(size):
        return labels.copy()
    rows, cols = _bins(labels.shape[0], size[0]), _bins(labels.shape[1], size[1])
    counts = np.zeros(size[0] * size[1] * num_parts, dtype=np.int64)
    for row in rows:
        for col in cols:
            # Only the rows and columns in a bin of this kind (every one for the first bins, the few shared
            # ones for the second): the same counts as the whole image with the others masked out.
            ys, xs = np.nonzero(row >= 0)[0], np.nonzero(col >= 0)[0]
            cell = (row[ys, None] * size[1] + col[None, xs]) * num_parts + labels[np.ix_(ys, xs)]
            counts += np.bincount(cell.ravel(), minlength=counts.size)
    return counts.reshape(*size, num_parts).argmax(axis=-1)


def disk_heatmaps(keypoints: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(18, H, W)`` float32 disk heatmaps (:func:`recapture.body.keypoints.keypoints_to_heatmaps`)."""
    from recapture.body.keypoints import heatmap_radius

    points = np.asarray(keypoints, dtype=np.float32).reshape(18, 2)
    radius = np.float32(heatmap_radius(size[0]))
    ys, xs = pixel_grid(size)
    present = (points[:, 0] != -1) & (points[:, 1] != -1)
    inside = (ys[None] - points[:, 0, None, None]) ** 2 + (xs[None] - points[:, 1, None, None]) ** 2 <= radius * radius
    return (inside & present[:, None, None]).astype(np.float32)


def one_hot(labels: np.ndarray, num_parts: int) -> np.ndarray:
    """``(H, W)`` labels -> ``(N, H, W)`` float32 one-hot."""
    return (np.asarray(labels)[None] == np.arange(num_parts)[:, None, None]).astype(np.float32)


def keypoints_to_size(keypoints: np.ndarray, size: tuple[int, int], new_size: tuple[int, int]) -> np.ndarray:
    """``(..., 18, 2)`` y/x from a ``size`` pixel frame to a ``new_size`` one (align_corners=True); -1 kept."""
    out = np.asarray(keypoints, dtype=np.float64).copy()
    present = (out[..., 0] != -1) & (out[..., 1] != -1)
    for axis in (0, 1):
        ratio = (new_size[axis] - 1) / max(size[axis] - 1, 1)
        out[..., axis] = np.where(present, out[..., axis] * ratio, -1.0)
    return out


def area_resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(C, H, W)`` -> ``(C, h, w)`` float32 means over torch's ``area`` (adaptive average pooling) cells."""
    out = np.asarray(array, dtype=np.float32)
    for axis, count in ((1, size[0]), (2, size[1])):
        length = out.shape[axis]
        if length == count:
            continue
        starts = (np.arange(count) * length) // count
        ends = -((-(np.arange(count) + 1) * length) // count)
        sums = np.concatenate([np.zeros_like(out.take([0], axis=axis), dtype=np.float64),
                               np.cumsum(out, axis=axis, dtype=np.float64)], axis=axis)
        shape = [1, 1, 1]
        shape[axis] = count
        out = ((sums.take(ends, axis=axis) - sums.take(starts, axis=axis)) / (ends - starts).reshape(shape)
               ).astype(np.float32)
    return out
