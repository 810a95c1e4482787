"""One documented metrics pipeline for pose transfer (see docs/evaluation.md).

* :class:`MetricAccumulator` scores batches already in memory (``update`` then ``compute``);
* :func:`evaluate_folders` matches files on disk, feeds them to an accumulator and returns the same
  :class:`~recapture.evaluation.report.EvaluationReport`.

Images are 8-bit RGB: uint8 tensors, or floats in [0, 1] that are quantised to 8 bits first so that
scoring in memory gives the numbers scoring the saved PNGs would.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from recapture.data.formats import AnnotationTable, read_annotations, read_image, read_pairs
from recapture.evaluation.matching import (MatchedPair, list_images, match_by_name, match_pairs,
                                           read_generated)
from recapture.evaluation.networks import (ALEXNET_WEIGHTS_NAME, ALEXNET_WEIGHTS_URL, INCEPTION_WEIGHTS_NAME,
                                           INCEPTION_WEIGHTS_URL, FeatureExtractor, WeightsUnavailable,
                                           load_inception, load_lpips, resolve_weights)
from recapture.evaluation.report import EvaluationReport, EvaluationSettings
from recapture.evaluation.ssim import l1_distance, literature_pose_mask, psnr, ssim, to_uint8

INCEPTION_KEYS = ("is", "masked_is", "fid")
MASKED_KEYS = ("masked_ssim", "masked_is")
LpipsFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _splits(count: int, wanted: int) -> int:
    return max(1, min(wanted, count))


class MetricAccumulator:
    """Running sums and Inception features over batches of (generated, real) pairs.

    Args:
        feature_extractor: Inception-like network (:class:`~recapture.evaluation.networks.FeatureExtractor`);
            None makes FID and IS unavailable.
        lpips: ``(generated, real) -> (B,)`` on [-1, 1] images; None makes LPIPS unavailable.
        unavailable: reasons for metrics known to be unavailable (e.g. a missing weights file).
        fid_on_targets: collect FID reference features from the real targets (each ``real_ids`` once);
            False when :meth:`add_fid_reference` supplies another reference set.
        is_splits: IS splits (10 in the literature), capped at the number of images.
        device: where the metrics run.
    """

    def __init__(self, feature_extractor: FeatureExtractor | None = None, lpips: LpipsFunction | None = None,
                 unavailable: dict[str, str] | None = None, fid_on_targets: bool = True, is_splits: int = 10,
                 device: torch.device | str = "cpu") -> None:
        self.feature_extractor = feature_extractor
        self.lpips = lpips
        self.unavailable = dict(unavailable or {})
        self.fid_on_targets = fid_on_targets
        self.is_splits = is_splits
        self.device = torch.device(device)
        self.count = 0
        self.masked_count = 0
        self.with_masks: bool | None = None
        self.sums = {key: 0.0 for key in ("ssim", "l1", "psnr", "lpips", "masked_ssim", "masked_l1")}
        self.features: dict[str, list[torch.Tensor]] = {"pool": [], "logits": [], "masked_logits": [], "real": []}
        self.seen_real: set[str] = set()

    def _masks(self, target_keypoints: np.ndarray | torch.Tensor | None, masks: torch.Tensor | None,
               batch: int, size: tuple[int, int]) -> torch.Tensor | None:
        if masks is None and target_keypoints is not None:
            keypoints = np.asarray(target_keypoints.cpu() if isinstance(target_keypoints, torch.Tensor)
                                   else target_keypoints)
            if keypoints.shape != (batch, 18, 2):
                raise ValueError(f"target_keypoints must be ({batch}, 18, 2), got {keypoints.shape}")
            masks = torch.stack([literature_pose_mask(k, size) for k in keypoints]).unsqueeze(1)
        has = masks is not None
        if self.with_masks is not None and has != self.with_masks:
            raise ValueError("give target_keypoints (or masks) to every update or to none")
        self.with_masks = has
        if masks is None:
            return None
        masks = masks.unsqueeze(1) if masks.dim() == 3 else masks
        if masks.shape != (batch, 1, *size):
            raise ValueError(f"masks must be ({batch}, 1, {size[0]}, {size[1]}), got {tuple(masks.shape)}")
        return (masks > 0.5).to(device=self.device, dtype=torch.uint8)

    @torch.no_grad()
    def update(self, generated: torch.Tensor, real: torch.Tensor,
               target_keypoints: np.ndarray | torch.Tensor | None = None, masks: torch.Tensor | None = None,
               real_ids: Sequence[str] | None = None) -> None:
        """Add a batch.

        Args:
            generated: ``(B, 3, H, W)`` uint8, or float in [0, 1].
            real: the real targets, same shape.
            target_keypoints: ``(B, 18, 2)`` y/x of the targets (-1 missing), for the masked metrics.
            masks: ``(B, 1, H, W)`` 0/1 masks instead of ``target_keypoints``.
            real_ids: names of the real images, so a target repeated across pairs enters FID once.
        """
        g = to_uint8(generated, "generated").to(self.device)
        r = to_uint8(real, "real").to(self.device)
        if g.shape != r.shape:
            raise ValueError(f"generated {tuple(g.shape)} and real {tuple(r.shape)} differ in shape")
        batch, size = g.shape[0], (g.shape[2], g.shape[3])
        mask = self._masks(target_keypoints, masks, batch, size)
        self.count += batch
        self.sums["ssim"] += float(ssim(g, r).sum())
        self.sums["l1"] += float(l1_distance(g, r).sum())
        self.sums["psnr"] += float(psnr(g, r).sum())
        if self.lpips is not None:
            self.sums["lpips"] += float(self.lpips(g.float() / 127.5 - 1, r.float() / 127.5 - 1).sum())
        if mask is not None:
            keep = mask.flatten(1).amax(dim=1) > 0
            gm, rm = g * mask, r * mask
            self.masked_count += int(keep.sum())
            if keep.any():
                self.sums["masked_ssim"] += float(ssim(gm[keep], rm[keep]).sum())
                self.sums["masked_l1"] += float(l1_distance(g[keep], r[keep], mask[keep]).sum())
        if self.feature_extractor is None:
            return
        out = self.feature_extractor(g)
        self.features["pool"].append(out.pool.double().cpu())
        self.features["logits"].append(out.logits.double().cpu())
        if mask is not None:
            self.features["masked_logits"].append(self.feature_extractor(g * mask).logits.double().cpu())
        if self.fid_on_targets:
            ids = list(real_ids) if real_ids is not None else [None] * batch
            if len(ids) != batch:
                raise ValueError(f"real_ids has {len(ids)} names for a batch of {batch}")
            fresh = []
            for i, name in enumerate(ids):
                if name is not None and name in self.seen_real:
                    continue
                fresh.append(i)
                if name is not None:
                    self.seen_real.add(name)
            if fresh:
                self.features["real"].append(self.feature_extractor(r[fresh]).pool.double().cpu())

    @torch.no_grad()
    def add_fid_reference(self, images: torch.Tensor) -> None:
        """Add ``(B, 3, H, W)`` images to the FID reference set (with ``fid_on_targets=False``)."""
        if self.fid_on_targets:
            raise ValueError("add_fid_reference needs MetricAccumulator(fid_on_targets=False)")
        if self.feature_extractor is not None:
            images = to_uint8(images, "reference images").to(self.device)
            self.features["real"].append(self.feature_extractor(images).pool.double().cpu())

    def _inception_metrics(self, unavailable: dict[str, str]) -> dict[str, float | None]:
        from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
        from torch_fidelity.metric_isc import isc_features_to_metric

        out: dict[str, float | None] = {}
        logits = torch.cat(self.features["logits"])
        score = isc_features_to_metric(logits, _splits(len(logits), self.is_splits), True, 2020)
        out["inception_score"] = score["inception_score_mean"]
        out["inception_score_std"] = score["inception_score_std"]
        if self.features["masked_logits"]:
            masked = torch.cat(self.features["masked_logits"])
            score = isc_features_to_metric(masked, _splits(len(masked), self.is_splits), True, 2020)
            out["masked_inception_score"] = score["inception_score_mean"]
            out["masked_inception_score_std"] = score["inception_score_std"]
        pool = torch.cat(self.features["pool"])
        real = torch.cat(self.features["real"]) if self.features["real"] else pool[:0]
        if len(pool) < 2 or len(real) < 2:
            unavailable["fid"] = f"FID needs >= 2 images per set, got {len(pool)} generated and {len(real)} real"
        else:
            stats = fid_features_to_statistics(pool), fid_features_to_statistics(real)
            out["fid"] = fid_statistics_to_metric(*stats, verbose=False)["frechet_inception_distance"]
        return out

    def compute(self, settings: EvaluationSettings | None = None) -> EvaluationReport:
        """The averaged metrics as a report; ValueError if nothing was added."""
        if self.count == 0:
            raise ValueError("no pairs were scored")
        unavailable = dict(self.unavailable)
        values: dict[str, float | None] = {name: self.sums[name] / self.count for name in ("ssim", "l1", "psnr")}
        if self.lpips is not None:
            values["lpips"] = self.sums["lpips"] / self.count
        else:
            unavailable.setdefault("lpips", "no LPIPS network given")
        if not self.with_masks:
            for key in MASKED_KEYS:
                unavailable.setdefault(key, "no target keypoints (annotations) given")
        elif self.masked_count == 0:
            unavailable.setdefault("masked_ssim", "every target pose mask is empty (no keypoints)")
        else:
            values["masked_ssim"] = self.sums["masked_ssim"] / self.masked_count
            values["masked_l1"] = self.sums["masked_l1"] / self.masked_count
        if self.feature_extractor is None:
            for key in INCEPTION_KEYS:
                unavailable.setdefault(key, "no Inception feature extractor given")
        else:
            values.update(self._inception_metrics(unavailable))
        unavailable = {k: v for k, v in unavailable.items() if values.get(_FIELD_OF_KEY.get(k, k)) is None}
        settings = replace(settings or EvaluationSettings(), is_splits=_splits(self.count, self.is_splits))
        return EvaluationReport(count=self.count, masked_count=self.masked_count if self.with_masks else None,
                                settings=settings, unavailable=unavailable, **values)


_FIELD_OF_KEY = {"is": "inception_score", "is_std": "inception_score_std", "masked_is": "masked_inception_score",
                 "masked_is_std": "masked_inception_score_std"}


@dataclass(frozen=True)
class EvaluationOptions:
    """Knobs of :func:`evaluate_folders` (defaults reproduce the documented pipeline)."""

    batch_size: int = 32
    inception_weights: Path | None = None
    lpips_weights: Path | None = None
    crop_last_panel: bool = False
    fid_reference: Path | None = None
    keypoint_offset: tuple[int, int] = (0, 0)
    is_splits: int = 10
    device: str = "cpu"


def _target_keypoints(table: AnnotationTable, names: Sequence[str]) -> np.ndarray:
    """``(N, 18, 2)`` keypoints of ``names``, by exact name or else by stem; FormatError if absent."""
    stems: dict[str, str] = {}
    for name in table.names:
        stems.setdefault(Path(name).stem, name)
    return np.stack([table.get(name if name in table else stems.get(Path(name).stem, name)) for name in names])


def _batches(items: Sequence[MatchedPair], batch_size: int, crop: bool) -> Iterator[tuple[list[int], np.ndarray,
                                                                                          np.ndarray]]:
    """Consecutive pairs loaded as ``(indices, generated (B,H,W,3), real (B,H,W,3))``, one size a batch."""
    index, gen, real = [], [], []
    for i, pair in enumerate(items):
        target = read_image(pair.real)
        if real and (target.shape != real[0].shape or len(real) == batch_size):
            yield index, np.stack(gen), np.stack(real)
            index, gen, real = [], [], []
        index.append(i)
        real.append(target)
        gen.append(read_generated(pair.generated, target.shape[:2], crop))
    if real:
        yield index, np.stack(gen), np.stack(real)


def _chw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)


def build_accumulator(options: EvaluationOptions) -> MetricAccumulator:
    """A :class:`MetricAccumulator` with the Inception and LPIPS networks of ``options``; a network whose
    weights file is missing makes its metrics unavailable (the reason names the file) instead of failing."""
    unavailable: dict[str, str] = {}
    extractor = lpips = None
    try:
        extractor = load_inception(options.inception_weights, options.device)
    except WeightsUnavailable as exc:
        unavailable.update({key: str(exc) for key in INCEPTION_KEYS})
    try:
        lpips = load_lpips(options.lpips_weights, options.device)
    except WeightsUnavailable as exc:
        unavailable["lpips"] = str(exc)
    return MetricAccumulator(extractor, lpips, unavailable, fid_on_targets=options.fid_reference is None,
                             is_splits=options.is_splits, device=options.device)


def add_reference_folder(accumulator: MetricAccumulator, options: EvaluationOptions) -> None:
    """Feed every image of ``options.fid_reference`` (if set) to the accumulator's FID reference set."""
    if options.fid_reference is None or accumulator.feature_extractor is None:
        return
    files = list_images(options.fid_reference)
    for start in range(0, len(files), options.batch_size):
        chunk = [read_image(p) for p in files[start:start + options.batch_size]]
        for shape in dict.fromkeys(image.shape for image in chunk):
            accumulator.add_fid_reference(_chw(np.stack([im for im in chunk if im.shape == shape])))


def report_settings(options: EvaluationOptions, accumulator: MetricAccumulator, **extra: str | None
                    ) -> EvaluationSettings:
    """The :class:`EvaluationSettings` of a run with ``options`` (``extra``: further settings fields)."""
    return EvaluationSettings(
        crop_last_panel=options.crop_last_panel,
        inception_weights=None if accumulator.feature_extractor is None else str(resolve_weights(
            options.inception_weights, INCEPTION_WEIGHTS_NAME, INCEPTION_WEIGHTS_URL, "--inception-weights")),
        lpips_weights=None if accumulator.lpips is None else str(resolve_weights(
            options.lpips_weights, ALEXNET_WEIGHTS_NAME, ALEXNET_WEIGHTS_URL, "--lpips-weights")),
        fid_reference=(f"all images of {options.fid_reference}" if options.fid_reference is not None
                       else EvaluationSettings.fid_reference), **extra)


def evaluate_folders(generated_dir: str | Path, real_dir: str | Path, pairs_csv: str | Path | None = None,
                     annotations_csv: str | Path | None = None,
                     options: EvaluationOptions = EvaluationOptions()) -> EvaluationReport:
    """Score the images of ``generated_dir`` against their real targets in ``real_dir``.

    Files are matched as :mod:`recapture.evaluation.matching` describes (by name, or by pair name with
    ``pairs_csv``); ``annotations_csv`` gives the target keypoints for the masked metrics. Metrics whose
    weights are missing are reported unavailable with the file to provide; the others still run.
    """
    pairs = read_pairs(pairs_csv) if pairs_csv is not None else None
    matched = match_pairs(generated_dir, real_dir, pairs) if pairs is not None else match_by_name(generated_dir,
                                                                                                    real_dir)
    keypoints = None
    if annotations_csv is not None:
        table = read_annotations(annotations_csv, offset=options.keypoint_offset)
        keypoints = _target_keypoints(table, [p.target_name for p in matched])
    accumulator = build_accumulator(options)
    if annotations_csv is None:
        accumulator.unavailable.update({key: "no --annotations given (the pose mask needs the target keypoints)"
                                        for key in MASKED_KEYS})
    for index, gen, real in _batches(matched, options.batch_size, options.crop_last_panel):
        accumulator.update(_chw(gen), _chw(real), None if keypoints is None else keypoints[index],
                           real_ids=[str(matched[i].real) for i in index])
    add_reference_folder(accumulator, options)
    return accumulator.compute(report_settings(options, accumulator))
