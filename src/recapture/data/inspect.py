"""``recapture data inspect``: validate a manifest, an annotation CSV or a pairs CSV and count what it holds.

The kind of file is detected from its header line (annotation and pairs CSVs) or else read as a
manifest YAML. A manifest is checked in depth: every row of every split parses, every image named by
a pair exists, decodes and has the manifest's size, every layout exists with in-range labels.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from recapture.body.keypoints import KEYPOINT_NAMES
from recapture.body.parts import get_label_set
from recapture.data.dataset import fit_width
from recapture.data.formats import (
    ANNOTATION_HEADER, PAIRS_HEADER, AnnotationTable, FormatError, layout_name, read_annotations,
    read_image, read_layout, read_pairs,
)
from recapture.data.manifest import Manifest, SplitSpec, read_manifest

__all__ = ["AnnotationStats", "PairsStats", "SplitReport", "ManifestReport", "InspectReport", "CliOutput",
           "inspect_path", "inspect_annotations", "inspect_pairs", "inspect_manifest", "inspect_cli"]

#: Problems kept verbatim per split (all are counted).
MAX_PROBLEMS = 20


@dataclass(frozen=True)
class AnnotationStats:
    """Counts of an annotation table; ``missing_per_joint`` follows KEYPOINT_NAMES."""

    path: Path
    rows: int
    all_missing_rows: int
    rows_with_missing: int
    missing_per_joint: tuple[int, ...]
    y_range: tuple[int, int] | None
    x_range: tuple[int, int] | None

    def to_json(self) -> dict[str, Any]:
        return {"kind": "annotations", "path": str(self.path), "rows": self.rows,
                "all_missing_rows": self.all_missing_rows, "rows_with_missing": self.rows_with_missing,
                "missing_per_joint": dict(zip(KEYPOINT_NAMES, self.missing_per_joint)),
                "y_range": self.y_range, "x_range": self.x_range}

    def text(self) -> str:
        joints = ", ".join(f"{n} {c:,}" for n, c in zip(KEYPOINT_NAMES, self.missing_per_joint))
        ranges = (f"present y in [{self.y_range[0]}, {self.y_range[1]}], x in [{self.x_range[0]}, {self.x_range[1]}]"
                  if self.y_range and self.x_range else "no present joint")
        return (f"annotations {self.path}\n  rows: {self.rows:,} (all joints missing: {self.all_missing_rows:,}; "
                f"some joint missing: {self.rows_with_missing:,})\n  missing per joint: {joints}\n  {ranges}")


@dataclass(frozen=True)
class PairsStats:
    """Counts of a pairs file."""

    path: Path
    pairs: int
    unique_images: int
    duplicate_pairs: int
    self_pairs: int

    def to_json(self) -> dict[str, Any]:
        return {"kind": "pairs", "path": str(self.path), "pairs": self.pairs, "unique_images": self.unique_images,
                "duplicate_pairs": self.duplicate_pairs, "self_pairs": self.self_pairs}

    def text(self) -> str:
        return (f"pairs {self.path}\n  pairs: {self.pairs:,} over {self.unique_images:,} images "
                f"(duplicates: {self.duplicate_pairs:,}; source == target: {self.self_pairs:,})")


@dataclass(frozen=True)
class SplitReport:
    """One manifest split: its files' counts, the images/layouts checked, part pixel shares, problems."""

    name: str
    annotations: AnnotationStats
    pairs: PairsStats
    images_checked: int
    layouts_checked: int
    joints_outside: int
    part_names: tuple[str, ...]
    part_shares: tuple[float, ...]
    problem_count: int
    problems: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.annotations.rows, "pairs": self.pairs.pairs,
                "annotations": self.annotations.to_json(), "pairs_file": self.pairs.to_json(),
                "images_checked": self.images_checked, "layouts_checked": self.layouts_checked,
                "joints_outside": self.joints_outside,
                "part_shares": dict(zip(self.part_names, self.part_shares)),
                "problem_count": self.problem_count, "problems": list(self.problems)}

    def text(self) -> str:
        shares = ", ".join(f"{n} {s:.1%}" for n, s in zip(self.part_names, self.part_shares))
        lines = [f"split {self.name}: {self.pairs.pairs:,} pairs, {self.annotations.rows:,} annotation rows, "
                 f"{self.images_checked:,} images and {self.layouts_checked:,} layouts checked, "
                 f"{self.joints_outside:,} joints outside the frame",
                 *("  " + line for line in self.annotations.text().splitlines()),
                 *("  " + line for line in self.pairs.text().splitlines()),
                 f"  part shares: {shares or 'n/a'}", f"  problems: {self.problem_count:,}"]
        lines += [f"    {p}" for p in self.problems]
        return "\n".join(lines)


@dataclass(frozen=True)
class ManifestReport:
    """A manifest and the report of each of its splits."""

    manifest: Manifest
    splits: tuple[SplitReport, ...]

    @property
    def path(self) -> Path:
        return self.manifest.path

    @property
    def problem_count(self) -> int:
        return sum(s.problem_count for s in self.splits)

    def to_json(self) -> dict[str, Any]:
        m = self.manifest
        return {"kind": "manifest", "path": str(m.path), "name": m.name, "label_set": m.label_set,
                "image_size": list(m.image_size), "keypoint_offset": list(m.keypoint_offset),
                "problem_count": self.problem_count, "splits": {s.name: s.to_json() for s in self.splits}}

    def text(self) -> str:
        m = self.manifest
        head = (f"manifest {m.name} ({m.path}): label set {m.label_set}, image size "
                f"{m.image_size[0]}x{m.image_size[1]}, keypoint offset {m.keypoint_offset}")
        return "\n".join([head, *(s.text() for s in self.splits)])


InspectReport = Union[AnnotationStats, PairsStats, ManifestReport]


def annotation_stats(table: AnnotationTable) -> AnnotationStats:
    """Missing-joint counts and coordinate ranges of a table."""
    missing = table.missing()
    present = table.keypoints[~missing]
    return AnnotationStats(
        path=table.path or Path("<memory>"), rows=len(table), all_missing_rows=int(missing.all(axis=1).sum()),
        rows_with_missing=int(missing.any(axis=1).sum()), missing_per_joint=tuple(int(c) for c in missing.sum(axis=0)),
        y_range=(int(present[:, 0].min()), int(present[:, 0].max())) if len(present) else None,
        x_range=(int(present[:, 1].min()), int(present[:, 1].max())) if len(present) else None,
    )


def inspect_annotations(path: str | Path, offset: tuple[int, int] = (0, 0)) -> AnnotationStats:
    return annotation_stats(read_annotations(path, offset))


def pairs_stats(path: Path, pairs: list[tuple[str, str]]) -> PairsStats:
    counts = Counter(pairs)
    return PairsStats(path=path, pairs=len(pairs), unique_images=len({n for p in pairs for n in p}),
                      duplicate_pairs=sum(c - 1 for c in counts.values()), self_pairs=sum(a == b for a, b in pairs))


def inspect_pairs(path: str | Path) -> PairsStats:
    return pairs_stats(Path(path), read_pairs(path))


def _inspect_split(manifest: Manifest, name: str, spec: SplitSpec) -> SplitReport:
    label_set = get_label_set(manifest.label_set)
    table = read_annotations(manifest.resolve(spec.annotations), manifest.keypoint_offset)
    pairs_path = manifest.resolve(spec.pairs)
    pairs = read_pairs(pairs_path)
    images_dir, layouts_dir = manifest.resolve(spec.images), manifest.resolve(spec.layouts)
    height, width = manifest.image_size
    problems: list[str] = []
    histogram = np.zeros(label_set.num_parts, dtype=np.int64)
    images_checked = layouts_checked = joints_outside = 0
    for image_name in sorted({n for p in pairs for n in p}):
        if image_name in table:
            kp = table.get(image_name)
            present = (kp != -1).all(axis=1)
            joints_outside += int((present & ((kp[:, 0] >= height) | (kp[:, 1] >= width))).sum())
        else:
            problems.append(f"{image_name}: no row in {table.path}")
        try:
            image_path = images_dir / image_name
            fit_width(read_image(image_path), manifest.image_size, image_path)
            images_checked += 1
        except FormatError as exc:
            problems.append(str(exc))
        try:
            layout_path = layouts_dir / layout_name(image_name)
            labels = fit_width(read_layout(layout_path, label_set.num_parts), manifest.image_size, layout_path)
            histogram += np.bincount(labels.ravel(), minlength=label_set.num_parts)
            layouts_checked += 1
        except FormatError as exc:
            problems.append(str(exc))
    total = int(histogram.sum())
    shares = tuple(float(c) / total for c in histogram) if total else ()
    return SplitReport(name=name, annotations=annotation_stats(table), pairs=pairs_stats(pairs_path, pairs),
                       images_checked=images_checked, layouts_checked=layouts_checked, joints_outside=joints_outside,
                       part_names=label_set.names if total else (), part_shares=shares,
                       problem_count=len(problems), problems=tuple(problems[:MAX_PROBLEMS]))


def inspect_manifest(path: str | Path) -> ManifestReport:
    """Validate every split of a manifest in depth (see the module docstring)."""
    manifest = read_manifest(path)
    return ManifestReport(manifest=manifest,
                          splits=tuple(_inspect_split(manifest, n, s) for n, s in manifest.splits.items()))


def inspect_path(path: str | Path) -> InspectReport:
    """Detect the file kind by its header and inspect it; FormatError when it cannot be parsed."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(path, "no such file")
    with path.open("rb") as handle:
        first = handle.readline(4096).decode("utf-8-sig", errors="replace")
    header = "".join(first.split())
    if header == ANNOTATION_HEADER:
        return inspect_annotations(path)
    if header == PAIRS_HEADER:
        return inspect_pairs(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        return inspect_manifest(path)
    raise FormatError(path, f"not a manifest (.yaml/.yml) and header {first.strip()[:80]!r} is neither "
                            f"{ANNOTATION_HEADER!r} nor {PAIRS_HEADER!r}", line=1, field="header")


@dataclass(frozen=True)
class CliOutput:
    """What ``recapture data inspect`` prints and its exit code."""

    stdout: str
    stderr: str
    exit_code: int


def inspect_cli(path: str | Path, as_json: bool = False) -> CliOutput:
    """Run the inspection for the command line: invalid input gives a message and exit code 1."""
    try:
        report = inspect_path(path)
    except FormatError as exc:
        return CliOutput("", f"error: {exc}", 1)
    stdout = json.dumps(report.to_json()) if as_json else report.text()
    problems = report.problem_count if isinstance(report, ManifestReport) else 0
    if problems:
        return CliOutput(stdout, f"error: {report.path}: {problems} problems (see the report)", 1)
    return CliOutput(stdout, "", 0)
