"""SynthHumans ground truth beyond pose pairs: invisible-part masks and the edits applied to edit pairs.

Invisible mask of a pair (source, target), computed on the layouts as written (in the dataset's label
set): a target pixel is invisible (255) iff its label is not background and that label covers fewer
than ``min_source_pixels`` pixels (default 1, i.e. none) of the source layout; every other pixel is 0.

Edits CSV (comma-separated, one row per edit pair, names as in the split's pairs CSV):
``from,to,part_group,factor`` for figure edits (``to`` re-rendered with the widths of ``part_group``
multiplied by ``factor``) and ``from,to,garment_from,garment_to`` for clothing edits (``none`` = no
garment, e.g. ``none,coat`` = a coat added).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from recapture.data.errors import FormatError
from recapture.data.synthetic.people import CLOTHING_CHANGES, PART_GROUPS

FIGURE_EDITS_HEADER = ("from", "to", "part_group", "factor")
CLOTHING_EDITS_HEADER = ("from", "to", "garment_from", "garment_to")
_GARMENTS = {g for change in CLOTHING_CHANGES.values() for g in change}


def invisible_mask(source_layout: np.ndarray, target_layout: np.ndarray, min_source_pixels: int = 1) -> np.ndarray:
    """``(H, W)`` bool: target pixels whose (non-background) part covers < ``min_source_pixels`` source pixels.

    Layouts are ``(H, W)`` integer label maps of the same label set; sizes may differ.
    """
    source = np.asarray(source_layout)
    target = np.asarray(target_layout)
    if source.ndim != 2 or target.ndim != 2:
        raise ValueError(f"layouts must be (H, W) label maps, got {source.shape} and {target.shape}")
    counts = np.bincount(source.ravel().astype(np.int64), minlength=256)
    seen = counts >= max(int(min_source_pixels), 1)
    return (target != 0) & ~seen[target.astype(np.int64)]


@dataclass(frozen=True)
class EditRecord:
    """One edit pair: ``source`` -> ``target`` and the edit applied to render ``target``.

    Figure edits set ``part_group`` and ``factor``; clothing edits set ``garment_from`` and ``garment_to``.
    """

    source: str
    target: str
    part_group: str | None = None
    factor: float | None = None
    garment_from: str | None = None
    garment_to: str | None = None

    @property
    def kind(self) -> str:
        return "figure" if self.part_group is not None else "clothing"


def write_edits(path: str | Path, kind: str, records: Sequence[EditRecord]) -> None:
    """Write ``kind`` (figure | clothing) edit records as CSV (the header tells the kind)."""
    if kind not in ("figure", "clothing") or any(r.kind != kind for r in records):
        raise ValueError(f"an edits CSV holds edits of one kind (figure or clothing), asked for {kind!r}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FIGURE_EDITS_HEADER if kind == "figure" else CLOTHING_EDITS_HEADER)
    for r in records:
        writer.writerow((r.source, r.target, r.part_group, f"{r.factor:g}") if kind == "figure"
                        else (r.source, r.target, r.garment_from, r.garment_to))
    Path(path).write_text(buffer.getvalue(), encoding="utf-8")


def read_edits(path: str | Path) -> list[EditRecord]:
    """Read an edits CSV written by :func:`write_edits`; FormatError naming line and field otherwise."""
    path = Path(path)
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(path, f"cannot read edits CSV ({exc})") from None
    if not rows or tuple(rows[0]) not in (FIGURE_EDITS_HEADER, CLOTHING_EDITS_HEADER):
        raise FormatError(path, f"header must be {','.join(FIGURE_EDITS_HEADER)} or {','.join(CLOTHING_EDITS_HEADER)}",
                          line=1, field="header")
    figure = tuple(rows[0]) == FIGURE_EDITS_HEADER
    records = []
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 4 or not row[0] or not row[1]:
            raise FormatError(path, f"expected 4 fields with non-empty names, got {row!r}", number)
        if figure:
            if row[2] not in PART_GROUPS:
                raise FormatError(path, f"unknown part group {row[2]!r}; valid: {', '.join(PART_GROUPS)}", number,
                                  "part_group")
            try:
                factor = float(row[3])
            except ValueError:
                raise FormatError(path, f"not a number: {row[3]!r}", number, "factor") from None
            if not factor > 0:
                raise FormatError(path, f"factor must be positive, got {row[3]}", number, "factor")
            records.append(EditRecord(row[0], row[1], part_group=row[2], factor=factor))
        else:
            for value, name in ((row[2], "garment_from"), (row[3], "garment_to")):
                if value not in _GARMENTS:
                    valid = ", ".join(sorted(_GARMENTS))
                    raise FormatError(path, f"unknown garment {value!r}; valid: {valid}", number, name)
            records.append(EditRecord(row[0], row[1], garment_from=row[2], garment_to=row[3]))
    return records
