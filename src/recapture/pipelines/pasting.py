"""The *composite* stage of the real-photo path: the new person's alpha at photo resolution and the paste.

The alpha is the target layout's foreground; where the appearance was copied at photo resolution, the
source's own soft person mask carried along the same flow draws the edge (hair, fingers). Behind the old
person the background is inpainted wherever the new alpha lets it show, and the old person's soft rim is
kept where the new person still covers it (docs/in-the-wild.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from recapture.pipelines.framing import Appearance, Framed
from recapture.pipelines.recapture import LayoutPrediction
from recapture.pipelines.inpainting import HoleFill, apply_fill, fill_hole
from recapture.pipelines.wild import (
    PersonCrop, composite, layout_alpha, mask_to_model, model_to_photo,
)

#: Warn when more than this share of the new person's pixels is invented rather than copied.
INVENTED_WARNING = 0.3


@dataclass(frozen=True)
class Composited:
    """image and background ``(H, W, 3)`` uint8; invented ``(H, W)`` bool: new-person pixels whose part the
    source did not show or an edit changed; invented_share: their share of the new person's pixels;
    alpha ``(H, W)`` float32: the pasted person's alpha on the photo (0: the pixel is the background's)."""

    image: np.ndarray
    background: np.ndarray
    invented: np.ndarray
    invented_share: float
    alpha: np.ndarray | None = None


def person_alpha(framed: Framed, target_layout: np.ndarray) -> np.ndarray:
    """``(h, w)`` float32 model-frame alpha: the layout's foreground, cleared below ``framed.bottom``."""
    alpha = layout_alpha(target_layout)
    _clear_below(alpha, framed, framed.crop)
    return alpha


def _clear_below(alpha: np.ndarray, framed: Framed, window: PersonCrop) -> None:
    """Zero the rows of a ``window``-frame alpha below ``framed.bottom`` (in place)."""
    if framed.bottom is not None:
        rows = (np.arange(alpha.shape[0]) + 0.5) / window.scale + window.box[0]
        alpha[rows > framed.bottom] = 0.0


def _feather(alpha: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0.05:
        return alpha
    return np.clip(cv2.GaussianBlur(alpha, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT), 0.0, 1.0)


#: Width (model pixels, each side) of the band along the layout's edge where the copied photo-resolution
#: person mask draws the edge of the alpha (the layout is only known to about a model pixel).
EDGE_BAND = 1.5


def photo_alpha(framed: Framed, geometry: LayoutPrediction, generated: Appearance, person_mask: np.ndarray,
                feather_px: float | None = None) -> tuple[np.ndarray, PersonCrop]:
    """The new person's alpha in the frame the person is pasted from (``(alpha (h', w') float32, window)``).

    Model-frame person: the layout's foreground, feathered (default 0.5% of the crop's height). A person
    copied at photo resolution: the layout's foreground enlarged (nearest, as the appearance does), except within
    :data:`EDGE_BAND` model pixels of its edge, where the source's person mask copied along the same flow as
    the pixels gives the edge (hair, fingers, the segmenter's own soft silhouette at photo resolution), unless an
    edit changed the layout there, or outside the layout where the copy does not continue the new person (there
    the copied mask is the old person left behind, e.g. the old head beside a moved one: :func:`_foreign`); the
    layout's own edges are feathered (default 1 photo pixel)."""
    alpha = person_alpha(framed, geometry.target_layout)
    height = framed.crop.box[2] - framed.crop.box[0]
    if generated.full is None or generated.full_crop is None or generated.flow is None:
        feather = max(1.0, 0.005 * height) if feather_px is None else float(feather_px)
        return _feather(alpha, feather * framed.crop.scale), framed.crop
    window = generated.full_crop
    size = window.model_size[::-1]
    factor = window.scale / framed.crop.scale
    layout = cv2.resize(alpha, size, interpolation=cv2.INTER_NEAREST) > 0.5  # as the appearance enlarges it
    copied = cv2.remap(mask_to_model(person_mask, window), generated.flow[..., 1], generated.flow[..., 0],
                       cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    reach = max(1, int(round(EDGE_BAND * factor)))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2)
    binary = layout.astype(np.uint8)
    band = cv2.dilate(binary, disk) != cv2.erode(binary, disk)
    edited = (geometry.target_layout != geometry.predicted_layout).astype(np.uint8)
    edited = cv2.resize(cv2.dilate(edited, np.ones((3, 3), np.uint8)), size, interpolation=cv2.INTER_NEAREST) > 0
    feather = 1.0 if feather_px is None else float(feather_px)
    soft = _feather(layout.astype(np.float32), feather * window.scale)
    source_labels, target_labels = (cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
                                    for labels in (framed.source.layout, geometry.target_layout))
    use = band & ~edited & ~_foreign(layout, band, generated.flow, reach, source_labels, target_labels)
    out = np.where(use, np.clip(copied, 0.0, 1.0), soft).astype(np.float32)
    _clear_below(out, framed, window)
    return np.clip(out, 0.0, 1.0), window


def _foreign(layout: np.ndarray, band: np.ndarray, flow: np.ndarray, reach: int, source_labels: np.ndarray,
             target_labels: np.ndarray) -> np.ndarray:
    """``(h', w')`` bool: band pixels outside the ``layout`` whose copy does not continue the new person's nearest
    labelled pixel: the ``flow`` (y/x source pixel) jumps by more than ``reach`` pixels from that pixel's, or it copies
    another part of the old person (a source label that is neither background nor the nearest target label).
    There the copied mask shows what was left behind (the old head beside a moved one, the old chin above a
    still shoulder). ``source_labels``: the source layout at the window's size; ``target_labels``: the target's."""
    foreign = np.zeros(layout.shape, dtype=bool)
    outside = band & ~layout
    labelled = target_labels != 0
    if not outside.any() or not labelled.any():
        return foreign
    near_y, near_x = _nearest(labelled)
    ys, xs = np.nonzero(outside)
    ny, nx = near_y[ys, xs], near_x[ys, xs]
    source = flow[ys, xs]
    jump = np.hypot(*(source - flow[ny, nx] - np.stack([ys - ny, xs - nx], axis=-1)).T)
    sy = np.clip(np.rint(source[:, 0]).astype(np.int64), 0, layout.shape[0] - 1)
    sx = np.clip(np.rint(source[:, 1]).astype(np.int64), 0, layout.shape[1] - 1)
    copied = source_labels[sy, sx]
    other = (copied != 0) & (copied != target_labels[ny, nx])
    foreign[ys, xs] = (jump > reach) | other
    return foreign


def _to_photo_mask(model_mask: np.ndarray, crop: PersonCrop, photo_size: tuple[int, int],
                   threshold: float) -> np.ndarray:
    """A model-frame ``(h, w)`` map resampled onto the whole photo frame, thresholded."""
    region, (y0, x0, y1, x1) = model_to_photo(model_mask.astype(np.float32), crop, photo_size,
                                              border_mode=cv2.BORDER_CONSTANT)
    out = np.zeros(photo_size, dtype=bool)
    out[y0:y1, x0:x1] = region > threshold
    return out


def invented_labels(source_layout: np.ndarray, geometry: LayoutPrediction, min_share: float = 0.002) -> np.ndarray:
    """``(h, w)`` bool model-frame pixels of parts absent from the source (fewer than ``min_share`` of its
    person pixels) or changed by an edit."""
    counts = np.bincount(source_layout.ravel(), minlength=256)
    floor = max(1.0, min_share * counts[1:].sum())
    absent = counts < floor
    absent[0] = False
    layout = geometry.target_layout
    return absent[layout] | ((layout != geometry.predicted_layout) & (layout != 0))


#: The background shows through wherever the pasted person's alpha is below this: those pixels are inpainted.
OPAQUE = 0.99
#: A soft edge pixel of the old person is restored when the new alpha there is at least its old mask minus this.
EDGE_TOLERANCE = 0.25


def restore_edges(background: np.ndarray, photo: np.ndarray, person_mask: np.ndarray, alpha: np.ndarray
                  ) -> np.ndarray:
    """``background`` with the photo's own pixels back on the hole's soft rim: pixels not inside the old person
    (mask below :data:`OPAQUE`: its soft edge and the dilation ring) that the new person covers about as much
    as the old one did (``alpha`` >= mask - :data:`EDGE_TOLERANCE`) and whose nearest old-person pixel the new
    person covers (``alpha`` >= 0.5): that edge is still there and the rim is its own blend with the real
    background. Beside an edge that moved, the rim stays inpainted (no trace of the old person).
    ``alpha``: the new person's ``(H, W)`` photo-frame alpha."""
    mask = np.asarray(person_mask, dtype=np.float32)
    person = mask > 0.5
    changed = np.any(background != photo, axis=-1) & (mask < OPAQUE)
    if not changed.any() or not person.any():
        return background
    ys, xs = np.nonzero(changed | person)
    y0, x0, y1, x1 = ys.min(), xs.min(), ys.max() + 1, xs.max() + 1
    near_y, near_x = _nearest(person[y0:y1, x0:x1])
    local = alpha[y0:y1, x0:x1]
    rim = (changed[y0:y1, x0:x1] & (local >= mask[y0:y1, x0:x1] - EDGE_TOLERANCE)
           & (local[near_y, near_x] >= 0.5))
    out = background.copy()
    np.copyto(out[y0:y1, x0:x1], photo[y0:y1, x0:x1], where=rim[..., None])
    return out


def composite_person(photo: np.ndarray, person_mask: np.ndarray, framed: Framed, geometry: LayoutPrediction,
                     generated: Appearance, background: np.ndarray | None = None, method: str = "telea",
                     feather_px: float | None = None, fill: HoleFill | None = None) -> Composited:
    """Paste the new person with its alpha (:func:`photo_alpha`) on the background: where the person was,
    inpainted (unless ``background`` is given, e.g. once per video) wherever that alpha lets it show (below
    :data:`OPAQUE`, feathered edges included, so no trace of the old person stays beside the new one), with
    the old person's still-covered soft rim restored (:func:`restore_edges`). ``fill``: the inpainting of
    ``person_mask`` already made (:func:`~recapture.pipelines.inpainting.fill_hole` with ``method``, e.g. the
    prepared photo's :class:`~recapture.pipelines.inpainting.PendingFill`); None: made here."""
    alpha, window = photo_alpha(framed, geometry, generated, person_mask, feather_px)
    size = photo.shape[:2]
    region, (y0, x0, y1, x1) = model_to_photo(alpha, window, size, border_mode=cv2.BORDER_CONSTANT)
    new_alpha = np.zeros(size, dtype=np.float32)
    new_alpha[y0:y1, x0:x1] = region
    if background is None:
        fill = fill_hole(photo, person_mask, method) if fill is None else fill
        background = apply_fill(photo, fill, keep=new_alpha >= OPAQUE)
        background = restore_edges(background, photo, person_mask, new_alpha)
    rgb = generated.full if window is not framed.crop else generated.image
    image = composite(background, rgb, alpha, window, feather_px=0.0)
    model_alpha = person_alpha(framed, geometry.target_layout)
    invented_model = invented_labels(framed.source.layout, geometry) & (model_alpha > 0)
    invented = _to_photo_mask(invented_model.astype(np.float32), framed.crop, size, 0.5)
    share = float(invented_model.sum() / max(1.0, float((model_alpha > 0).sum())))
    return Composited(image=image, background=background, invented=invented, invented_share=share,
                      alpha=new_alpha)


def _nearest(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(near_y, near_x)`` ``(h, w)`` int: the nearest ``True`` pixel of ``mask`` for every pixel."""
    from scipy.ndimage import distance_transform_edt  # lazy: importing scipy.ndimage costs ~0.35 s

    _, (near_y, near_x) = distance_transform_edt(~mask, return_indices=True)
    return near_y, near_x
