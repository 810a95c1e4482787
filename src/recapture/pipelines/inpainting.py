"""Background inpainting where the old person was (paper §4.5).

The paper inpaints the background with a learned model [41]; here OpenCV's classical Telea / Navier-Stokes
inpainting stands in (no weights, nothing to download) on a reduced copy, with film-grain detail matched to
the hole's surroundings added back at photo resolution.

The work is split in two so that the expensive part can run while the rest of the photo is being worked on:
:func:`fill_hole` depends only on the photo and the old person's mask; :func:`apply_fill` then takes out of
the hole what the new person will cover opaquely (``keep``), adds the grain and writes the fill.
:func:`inpaint_background` is the two in a row. :class:`PendingFill` starts :func:`fill_hole` on a background
thread as soon as the mask is known (the photo path: right after segmentation), at the lowest CPU priority so
that it fills the gaps the photo's stages leave on the two cores, and keeps it for every later render of the
same photo (the web editor, a video).
"""

from __future__ import annotations

import math
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from recapture.pipelines.wild import check_photo

__all__ = ["METHODS", "HoleFill", "fill_hole", "apply_fill", "inpaint_background", "PendingFill"]

#: OpenCV's inpainting methods by name.
METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


@dataclass(frozen=True)
class HoleFill:
    """The inpainted box of a photo. box: ``(y0, y1, x0, x1)`` in photo pixels; filled: ``(y1-y0, x1-x0, 3)``
    uint8 fill of the whole box; hole: ``(y1-y0, x1-x0)`` bool pixels that may take the fill (the dilated
    hole and the person); factor: the working scale of the inpainting (1 = photo resolution)."""

    box: tuple[int, int, int, int]
    filled: np.ndarray
    hole: np.ndarray
    factor: float


def fill_hole(photo: np.ndarray, person_mask: np.ndarray, method: str = "telea", dilate_px: int | None = None,
              radius: int | None = None, max_side: int = 1024) -> HoleFill | None:
    """Inpaint where the person was (mask > 0.5, dilated by ``dilate_px``, default 1% of the longer side);
    None when the mask is empty.

    OpenCV ``cv2.inpaint`` (``"telea"`` or ``"ns"``) runs on the hole's box plus the ring it reads, shrunk by
    the factor that brings the whole photo to ``max_side`` pixels at most; the hole is dilated at that size (so
    by about one working pixel more) and the fill is upsampled back."""
    photo = check_photo(photo)
    if method not in METHODS:
        raise ValueError(f"method must be 'telea' or 'ns', got {method!r}")
    mask = np.asarray(person_mask)
    if mask.shape != photo.shape[:2]:
        raise ValueError(f"person mask {mask.shape} does not match the photo {photo.shape[:2]}")
    height, width = mask.shape
    dilate_px = max(3, round(0.01 * max(height, width))) if dilate_px is None else int(dilate_px)
    person = mask > 0.5
    if not person.any():
        return None
    factor = min(1.0, max_side / max(height, width))
    radius = 3 if radius is None else int(radius)  # Telea's cost grows with radius^2; 3 is OpenCV's example
    # Only the hole's box and the ring Telea reads around it are worked on (a small person in a big photo).
    ys, xs = np.nonzero(person.any(axis=1))[0], np.nonzero(person.any(axis=0))[0]
    reach = dilate_px + int(math.ceil((radius + 4) / factor))
    y0, y1 = max(0, ys[0] - reach), min(height, ys[-1] + 1 + reach)
    x0, x1 = max(0, xs[0] - reach), min(width, xs[-1] + 1 + reach)
    filled, hole = _inpaint_region(photo[y0:y1, x0:x1], person[y0:y1, x0:x1], factor, dilate_px, radius,
                                   METHODS[method])
    return HoleFill(box=(int(y0), int(y1), int(x0), int(x1)), filled=filled, hole=hole | person[y0:y1, x0:x1],
                    factor=factor)


def apply_fill(photo: np.ndarray, fill: HoleFill | None, keep: np.ndarray | None = None,
               detail: bool = True) -> np.ndarray:
    """``photo`` with ``fill`` written into its hole, a new ``(H, W, 3)`` uint8 array. ``keep`` (``(H, W)``
    bool, e.g. where the new person will be opaque) is taken out of the hole: those pixels stay as they are.
    With ``detail``, Gaussian grain of the hole's surroundings' detail strength (measured in a ring around the
    hole; fixed seed) is added to an upsampled fill. Only hole pixels change."""
    out = check_photo(photo).copy()
    if fill is None:
        return out
    y0, y1, x0, x1 = fill.box
    hole = fill.hole.copy()
    if keep is not None:
        hole &= ~np.asarray(keep, dtype=bool)[y0:y1, x0:x1]
    filled = fill.filled
    if detail and fill.factor < 1 and hole.any():
        filled = _add_grain(photo[y0:y1, x0:x1], filled, hole)
    np.copyto(out[y0:y1, x0:x1], filled, where=hole[..., None])
    return out


def _lowest_priority() -> None:
    """Run the calling thread at the lowest CPU priority (nice 19; Linux, where a thread id names one thread;
    elsewhere nothing)."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except OSError:
            pass


class PendingFill:
    """:func:`fill_hole` of ``photo`` and ``person_mask`` with ``method``, made on a background thread (one
    worker for the process: fills queue rather than compete) at the lowest CPU priority, so that it takes only
    the cycles the photo's own stages leave free (ONNX Runtime's threads, the NumPy stages) instead of slowing
    them. :meth:`result` returns it; if it is not ready then (e.g. a machine busy with other processes starves the
    worker), the caller makes it itself at its own priority (the same pixels: :func:`fill_hole` is
    deterministic) and the background copy is cancelled or discarded. An error of :func:`fill_hole` is raised
    there."""

    _workers = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recapture-fill", initializer=_lowest_priority)

    def __init__(self, photo: np.ndarray, person_mask: np.ndarray, method: str = "telea") -> None:
        self.photo, self.person_mask, self.method = photo, person_mask, method
        self._future = self._workers.submit(fill_hole, photo, person_mask, method)
        self._lock = threading.Lock()
        self._made: tuple[HoleFill | None] | None = None

    def result(self, method: str | None = None) -> HoleFill | None:
        """The fill (None: an empty mask); another ``method`` than the pending one is made now, here."""
        if method is not None and method != self.method:
            return fill_hole(self.photo, self.person_mask, method)
        if self._made is None and self._future.done() and not self._future.cancelled():
            return self._future.result()
        with self._lock:
            if self._made is None:
                self._future.cancel()
                self._made = (fill_hole(self.photo, self.person_mask, self.method),)
        return self._made[0]


def inpaint_background(photo: np.ndarray, person_mask: np.ndarray, method: str = "telea",
                       dilate_px: int | None = None, radius: int | None = None, max_side: int = 1024,
                       keep: np.ndarray | None = None, detail: bool = True) -> np.ndarray:
    """:func:`apply_fill` of :func:`fill_hole` (see both): ``(H, W, 3)`` uint8, the person's hole inpainted."""
    fill = fill_hole(photo, person_mask, method, dilate_px, radius, max_side)
    return apply_fill(photo, fill, keep, detail)


def _inpaint_region(region: np.ndarray, person: np.ndarray, factor: float, dilate_px: int, radius: int,
                    flag: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV inpainting of ``region`` at ``factor`` of its size; returns the upsampled fill and the hole."""
    height, width = person.shape
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = cv2.resize(region, size, interpolation=cv2.INTER_AREA) if factor < 1 else region
    # The hole is dilated at the working size (any covered working pixel counts), then brought back.
    small_hole = cv2.resize(person.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
    small_dilate = int(math.ceil(dilate_px * factor))
    if small_dilate > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * small_dilate + 1,) * 2)
        small_hole = cv2.dilate(small_hole.astype(np.uint8), kernel) > 0
    filled = cv2.inpaint(np.ascontiguousarray(small), small_hole.astype(np.uint8), radius, flag)
    hole = small_hole
    if factor < 1:
        filled = cv2.resize(filled, (width, height), interpolation=cv2.INTER_LINEAR)
        hole = cv2.resize(small_hole.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
    return filled, hole


def _add_grain(photo: np.ndarray, filled: np.ndarray, hole: np.ndarray, seed: int = 0) -> np.ndarray:
    """``filled`` plus Gaussian noise in ``hole`` whose per-channel std is the photo's detail strength in a
    ring around the hole (std of the 4-neighbour Laplacian / sqrt(20), exact for white noise)."""
    ys, xs = np.nonzero(hole[::4, ::4])
    if not ys.size:
        return filled
    pad = max(4, int(0.05 * 4 * max(ys.max() - ys.min(), xs.max() - xs.min())))
    y0, x0 = max(0, 4 * ys.min() - pad), max(0, 4 * xs.min() - pad)
    y1, x1 = min(hole.shape[0], 4 * ys.max() + pad + 4), min(hole.shape[1], 4 * xs.max() + pad + 4)
    local_hole = hole[y0:y1, x0:x1].astype(np.uint8)
    ring = (cv2.dilate(local_hole, np.ones((2 * pad + 1,) * 2, np.uint8)) > 0) & (local_hole == 0)
    if ring.sum() < 16:
        return filled
    laplacian = cv2.Laplacian(np.ascontiguousarray(photo[y0:y1, x0:x1]), cv2.CV_16S)
    std = laplacian[ring].astype(np.float32).std(axis=0) / math.sqrt(20.0)
    out = filled.copy()
    where = np.nonzero(hole)
    noise = np.random.default_rng(seed).standard_normal((where[0].size, 3), dtype=np.float32) * std
    out[where] = np.clip(out[where].astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return out
