"""``recapture evaluate --generated DIR --real DIR``: score files on disk (no model code is imported).

Files are matched (:mod:`recapture.evaluation.matching`), read (:mod:`recapture.evaluation.strips`),
scored in batches by a :class:`~recapture.evaluation.metrics.MetricAccumulator` per row (the method,
then each floor of :mod:`recapture.evaluation.baselines` with ``baselines=True``), all rows sharing each
batch's real images, their stage maps and the cached features of the real files.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from recapture.data.formats import AnnotationTable, read_annotations, read_image, read_layout, read_pairs
from recapture.evaluation.baselines import Floor, FloorBatch, available_floors
from recapture.evaluation.cache import file_digest
from recapture.evaluation.matching import (ImageIndex, MatchedPair, Matching, MatchingError, list_images,
                                           match_by_name, match_pairs)
from recapture.evaluation.metrics import MetricAccumulator, RealBatch
from recapture.evaluation.options import (EvaluationOptions, build_accumulator, build_networks, inference_pool,
                                          report_settings)
from recapture.evaluation.report import EvaluationReport
from recapture.evaluation.strips import fit_to, read_generated

NEED_REASONS = {"source": "the source images", "keypoints": "--annotations (target keypoints)",
                "source_keypoints": "the sources' keypoints in --annotations",
                "layouts": "--source-layouts DIR (a layout PNG per source image, same stem)"}


@dataclass(frozen=True)
class Source:
    """A pair's source image file, its keypoints and its layout file (None when not given)."""

    path: Path
    keypoints: np.ndarray | None
    layout: Path | None = None


class KeypointLookup:
    """``(18, 2)`` keypoints of an image name in an annotation table: by exact name, else by stem."""

    def __init__(self, table: AnnotationTable) -> None:
        self.table = table
        self.stems: dict[str, str] = {}
        for name in table.names:
            self.stems.setdefault(Path(name).stem, name)

    def __call__(self, name: str) -> np.ndarray | None:
        if name in self.table:
            return self.table.get(name)
        found = self.stems.get(Path(name).stem)
        return None if found is None else self.table.get(found)


def _digest_key(path: Path, size: tuple[int, int], native: tuple[int, int]) -> str:
    digest = file_digest(path)
    return digest if size == native else f"{digest}-{size[0]}x{size[1]}"


def _chw(images: Sequence[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.stack(images))).permute(0, 3, 1, 2)


def _scaled(keypoints: np.ndarray, native: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Keypoints of an image of size ``native`` moved to ``size`` (missing joints stay -1)."""
    scale = np.array([size[0] / native[0], size[1] / native[1]])
    return np.where(keypoints < 0, -1.0, keypoints * scale)


class _Batches:
    """Consecutive pairs loaded as one batch per image size, with what the floors need."""

    def __init__(self, matched: Sequence[MatchedPair], options: EvaluationOptions,
                 targets: np.ndarray | None, sources: list[Source] | None) -> None:
        self.matched, self.options, self.targets, self.sources = matched, options, targets, sources

    def _group(self) -> Iterator[list[tuple[int, np.ndarray]]]:
        group: list[tuple[int, np.ndarray]] = []
        for i, pair in enumerate(self.matched):
            real = read_image(pair.real)
            if group and (real.shape != group[0][1].shape or len(group) == self.options.batch_size):
                yield group
                group = []
            group.append((i, real))
        if group:
            yield group

    def __iter__(self) -> Iterator[tuple[torch.Tensor, RealBatch, FloorBatch]]:
        for group in self._group():
            index = [i for i, _ in group]
            size = group[0][1].shape[:2]
            pairs = [self.matched[i] for i in index]
            generated = _chw([read_generated(p.generated, size, self.options.panels) for p in pairs])
            keypoints = None if self.targets is None else self.targets[index]
            real = RealBatch.build(_chw([r for _, r in group]), keypoints, ids=[str(p.real) for p in pairs],
                                   keys=[file_digest(p.real) for p in pairs])
            floor = FloorBatch(real=real.images, masks=real.masks, target_keypoints=keypoints)
            if self.sources is not None:
                floor = self._with_sources(floor, [self.sources[i] for i in index], size)
            yield generated, real, floor

    def _with_sources(self, floor: FloorBatch, sources: list[Source], size: tuple[int, int]) -> FloorBatch:
        images, keys, points, layouts = [], [], [], []
        for source in sources:
            image = read_image(source.path)
            images.append(fit_to(image, size))
            keys.append(_digest_key(source.path, size, image.shape[:2]))
            if source.keypoints is not None:
                points.append(_scaled(source.keypoints, image.shape[:2], size))
            if source.layout is not None:
                labels = read_layout(source.layout)
                layouts.append(np.asarray(Image.fromarray(labels).resize(size[::-1], Image.NEAREST)))
        whole = len(sources)
        return replace(floor, sources=_chw(images), source_keys=keys, label_set=self.options.label_set,
                       source_keypoints=np.stack(points) if len(points) == whole else None,
                       source_layouts=torch.from_numpy(np.stack(layouts)).long() if len(layouts) == whole else None)


def _layout_file(folder: Path | None, source: Path) -> Path | None:
    if folder is None:
        return None
    path = Path(folder) / f"{source.stem}.png"
    return path if path.is_file() else None


def _sources(matched: Sequence[MatchedPair], real_dir: str | Path, table: KeypointLookup | None,
             layouts: Path | None) -> tuple[list[Source] | None, str | None]:
    """Every pair's source (or None and the reason), with keypoints and layouts when all have them."""
    index = ImageIndex(real_dir)
    found = []
    for pair in matched:
        path = index.find(pair.source_name) if pair.source_name is not None else None
        if path is None:
            what = "no source name (pass --pairs)" if pair.source_name is None else \
                f"source {pair.source_name!r} not in {real_dir}"
            return None, f"pair with target {pair.target_name}: {what}"
        found.append(Source(path, None if table is None else table(pair.source_name),
                            _layout_file(layouts, path)))
    if any(s.keypoints is None for s in found):
        found = [replace(s, keypoints=None) for s in found]
    if any(s.layout is None for s in found):
        found = [replace(s, layout=None) for s in found]
    return found, None


def _floor_rows(options: EvaluationOptions, matched: Sequence[MatchedPair], real_dir: str | Path,
                table: KeypointLookup | None) -> tuple[list[Floor], dict[str, str], list[Source] | None]:
    if not options.baselines:
        return [], {}, None
    floors, reasons = available_floors()
    sources, why = _sources(matched, real_dir, table, options.source_layouts)
    have = {"source": sources is not None, "keypoints": table is not None,
            "source_keypoints": bool(sources) and sources[0].keypoints is not None,  # type: ignore[index]
            "layouts": bool(sources) and sources[0].layout is not None}  # type: ignore[index]
    usable = []
    for floor in floors:
        lacking = sorted(need for need in floor.needs if not have[need])
        if lacking:
            reasons[floor.name] = "needs " + "; ".join(NEED_REASONS[need] for need in lacking) + \
                (f" ({why})" if "source" in lacking and why else "")
        else:
            usable.append(floor)
    return usable, reasons, sources


def add_reference_folder(accumulator: MetricAccumulator, options: EvaluationOptions,
                         also: Sequence[MetricAccumulator] = ()) -> None:
    """Feed every image of ``options.fid_reference`` (if set) to the accumulator's FID/KID reference set
    (and the same features to the accumulators ``also``)."""
    if options.fid_reference is None or accumulator.networks.features is None:
        return
    before = len(accumulator.features["real"])
    files = list_images(options.fid_reference)
    for start in range(0, len(files), options.batch_size):
        chunk = files[start:start + options.batch_size]
        images = [read_image(p) for p in chunk]
        for shape in dict.fromkeys(image.shape for image in images):
            picked = [i for i, image in enumerate(images) if image.shape == shape]
            accumulator.add_fid_reference(_chw([images[i] for i in picked]), [file_digest(chunk[i]) for i in picked])
    for other in also:
        other.features["real"].extend(accumulator.features["real"][before:])


def match_files(generated_dir: str | Path, real_dir: str | Path, pairs_csv: str | Path | None,
                strict: bool = False) -> Matching:
    """Match the files (by pairs CSV or by name); MatchingError when nothing matches or, if ``strict``,
    when anything is missing or unmatched."""
    matching = (match_pairs(generated_dir, real_dir, read_pairs(pairs_csv)) if pairs_csv is not None
                else match_by_name(generated_dir, real_dir))
    if strict:
        matching.check_strict()
    if not matching.pairs:
        raise MatchingError(f"no pair to score in {generated_dir}: {matching.counts.summary()}"
                            + ("" if pairs_csv is not None else " - pass --pairs for pair-named outputs"))
    return matching


def evaluate_folders(generated_dir: str | Path, real_dir: str | Path, pairs_csv: str | Path | None = None,
                     annotations_csv: str | Path | None = None,
                     options: EvaluationOptions = EvaluationOptions()) -> EvaluationReport:
    """Score the images of ``generated_dir`` against their real targets in ``real_dir``.

    ``pairs_csv`` matches pair-named files (and names the sources the floors need); ``annotations_csv``
    gives keypoints for the masked metrics and the floors. Metrics whose weights are missing are
    reported unavailable with the file to provide; the others still run.
    """
    start = time.perf_counter()
    matching = match_files(generated_dir, real_dir, pairs_csv, options.strict)
    matched = matching.pairs
    table = (KeypointLookup(read_annotations(annotations_csv, offset=options.keypoint_offset))
             if annotations_csv else None)
    targets = None
    if table is not None:
        points = [table(p.target_name) for p in matched]
        absent = [p.target_name for p, k in zip(matched, points) if k is None]
        if absent:
            raise MatchingError(f"{annotations_csv}: no keypoints for target(s) {', '.join(absent[:5])}")
        targets = np.stack(points)  # type: ignore[arg-type]
    floors, floor_reasons, sources = _floor_rows(options, matched, real_dir, table)
    with inference_pool(options.threads) as pool:
        networks = build_networks(options, pool)
        rows = {name: build_accumulator(options, networks) for name in ["scored"] + [f.name for f in floors]}
        if table is None:
            for accumulator in rows.values():
                accumulator.unavailable.update({key: "no --annotations given (the pose mask needs the target "
                                                     "keypoints)" for key in ("masked_ssim", "masked_is")})
        for generated, real, floor_batch in _Batches(matched, options, targets, sources):
            rows["scored"].update_batch(generated, real)
            for floor in floors:
                images, keys = floor.make(floor_batch)
                rows[floor.name].update_batch(images, real, keys)
        main = rows.pop("scored")
        add_reference_folder(main, options, list(rows.values()))
        settings = report_settings(options, main)
        reports = {name: accumulator.compute(settings) for name, accumulator in rows.items()}
        report = main.compute(settings)
    return replace(report, matching=matching.counts, baselines=reports, baselines_unavailable=floor_reasons,
                   seconds=time.perf_counter() - start)
