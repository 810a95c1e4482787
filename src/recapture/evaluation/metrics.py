"""One documented metrics pipeline for pose transfer (see docs/evaluation.md).

:class:`MetricAccumulator` scores batches already in memory (``update`` then ``compute``) and returns an
:class:`~recapture.evaluation.report.EvaluationReport`; :mod:`recapture.evaluation.folders` feeds it files.

Images are 8-bit RGB: uint8 tensors, or floats in [0, 1] that are quantised to 8 bits first so that
scoring in memory gives the numbers scoring the saved PNGs would. The networks are given as a
:class:`MetricNetworks` (plain callables, so tests inject tiny ones); :func:`build_networks` makes the
documented ones: the bundled Inception for FID, KID and ``inception_distance`` (always offline),
torch-fidelity's Inception for IS and AlexNet LPIPS when their weights files exist.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from recapture.evaluation.cache import FeatureCache
from recapture.evaluation.distributions import KID_SUBSET_SIZE, KID_SUBSETS, frechet_distance, kernel_distance
from recapture.evaluation.paired import MIN_SIDE, PAIRED_DESCRIPTION, InceptionDistance, StageMaps
from recapture.evaluation.report import EvaluationReport, EvaluationSettings
from recapture.evaluation.ssim import l1_distance, literature_pose_mask, psnr, ssim, to_uint8

__all__ = ["MetricAccumulator", "MetricNetworks", "RealBatch", "WorkerPool", "literature_pose_mask", "run_chunks"]

FeatureFunction = Callable[[Tensor], Tensor]
LpipsFunction = Callable[[Tensor, Tensor], Tensor]
MASKED_KEYS = ("masked_ssim", "masked_is")
_FIELD_OF_KEY = {"is": "inception_score", "is_std": "inception_score_std", "masked_is": "masked_inception_score",
                 "masked_is_std": "masked_inception_score_std"}


class WorkerPool(ThreadPoolExecutor):
    """A thread pool that knows its size: :func:`run_chunks` cuts each batch into ``workers`` slices."""

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self.workers = workers


@dataclass(frozen=True)
class MetricNetworks:
    """The learned parts of the pipeline; a None network makes its metrics unavailable.

    Attributes:
        features: ``(B, 3, H, W)`` uint8 -> ``(B, D)`` features for FID and KID.
        paired: the ``inception_distance`` (normalised stage maps of each side, then their distance).
        logits: ``(B, 3, H, W)`` uint8 -> ``(B, K)`` logits for IS and masked IS.
        lpips: ``(generated, real)`` in [-1, 1] -> ``(B,)`` LPIPS.
        unavailable: reasons for the metrics of missing networks (e.g. a missing weights file).
        cache: features of keyed images (real targets), shared by every accumulator of a run.
        pool: threads that run the networks on slices of each batch (None: in the calling thread).
    """

    features: FeatureFunction | None = None
    paired: InceptionDistance | None = None
    logits: FeatureFunction | None = None
    lpips: LpipsFunction | None = None
    unavailable: Mapping[str, str] = field(default_factory=dict)
    cache: FeatureCache = field(default_factory=lambda: FeatureCache(None, "memory"))
    pool: WorkerPool | None = None


def run_chunks(function: Callable[[Tensor], Tensor | StageMaps], images: Tensor,
               pool: WorkerPool | None) -> Tensor | StageMaps:
    """``function(images)``, computed as one slice of the batch per pool thread (results concatenated)."""
    workers = 1 if pool is None else pool.workers
    if pool is None or workers < 2 or len(images) < 2:
        return function(images)
    parts = list(pool.map(function, torch.tensor_split(images, min(workers, len(images)))))
    if isinstance(parts[0], dict):
        return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}
    return torch.cat(parts)


def pixel_metrics(generated: Tensor, real: Tensor, pool: WorkerPool | None) -> Tensor:
    """``(B, 3)`` SSIM, L1 and PSNR of each pair, one slice of the batch per pool thread."""
    def scores(pairs: Tensor) -> Tensor:
        g, r = pairs[:, :3], pairs[:, 3:]
        return torch.stack([ssim(g, r), l1_distance(g, r), psnr(g, r)], dim=1)

    return run_chunks(scores, torch.cat([generated, real], dim=1), pool)  # type: ignore[return-value]


class RealBatch:
    """A batch of real targets as every row of a run scores them: uint8 images, pose masks, names and
    cache keys, and (computed once, on first use) their ``inception_distance`` stage maps."""

    def __init__(self, images: Tensor, masks: Tensor | None = None, ids: Sequence[str | None] | None = None,
                 keys: Sequence[str | None] | None = None) -> None:
        self.images = to_uint8(images, "real")
        batch = len(self.images)
        self.masks = masks
        self.ids = list(ids) if ids is not None else [None] * batch
        self.keys = list(keys) if keys is not None else [None] * batch
        if len(self.ids) != batch or len(self.keys) != batch:
            raise ValueError(f"real_ids/real_keys need {batch} entries, got {len(self.ids)} and {len(self.keys)}")
        self._maps: StageMaps | None = None

    @staticmethod
    def build(real: Tensor, target_keypoints: np.ndarray | Tensor | None = None, masks: Tensor | None = None,
              ids: Sequence[str | None] | None = None, keys: Sequence[str | None] | None = None) -> RealBatch:
        """A RealBatch whose masks come from ``masks`` or else the literature pose mask of the keypoints."""
        images = to_uint8(real, "real")
        batch, size = images.shape[0], (images.shape[2], images.shape[3])
        if masks is None and target_keypoints is not None:
            keypoints = np.asarray(target_keypoints.cpu() if isinstance(target_keypoints, Tensor) else target_keypoints)
            if keypoints.shape != (batch, 18, 2):
                raise ValueError(f"target_keypoints must be ({batch}, 18, 2), got {keypoints.shape}")
            masks = torch.stack([literature_pose_mask(k, size) for k in keypoints]).unsqueeze(1)
        if masks is not None:
            masks = masks.unsqueeze(1) if masks.dim() == 3 else masks
            if masks.shape != (batch, 1, *size):
                raise ValueError(f"masks must be ({batch}, 1, {size[0]}, {size[1]}), got {tuple(masks.shape)}")
            masks = (masks > 0.5).to(device=images.device, dtype=torch.uint8)
        return RealBatch(images, masks, ids, keys)

    def paired_maps(self, paired: InceptionDistance, pool: WorkerPool | None) -> StageMaps:
        if self._maps is None:
            self._maps = run_chunks(paired.maps, self.images, pool)  # type: ignore[assignment]
        assert self._maps is not None
        return self._maps


class MetricAccumulator:
    """Running sums and features over batches of (generated, real) pairs.

    Args:
        networks: the networks (:class:`MetricNetworks`; default none: pixel metrics only).
        fid_on_targets: FID/KID reference = the real targets (each ``real_ids`` once); False when
            :meth:`add_fid_reference` supplies another reference set.
        is_splits: IS splits (10 in the literature), capped at the number of images.
        kid_subsets, kid_subset_size: KID's subsets (size capped at the smaller set).
        device: where the metrics run.
    """

    def __init__(self, networks: MetricNetworks | None = None, fid_on_targets: bool = True, is_splits: int = 10,
                 kid_subsets: int = KID_SUBSETS, kid_subset_size: int = KID_SUBSET_SIZE,
                 device: torch.device | str = "cpu") -> None:
        self.networks = networks or MetricNetworks()
        self.unavailable = dict(self.networks.unavailable)
        self.fid_on_targets = fid_on_targets
        self.is_splits, self.kid_subsets, self.kid_subset_size = is_splits, kid_subsets, kid_subset_size
        self.device = torch.device(device)
        self.count = 0
        self.masked_count = 0
        self.paired_count = 0
        self.with_masks: bool | None = None
        self.sums = dict.fromkeys(("ssim", "l1", "psnr", "lpips", "inception_distance", "masked_ssim", "masked_l1"),
                                  0.0)
        self.features: dict[str, list[np.ndarray]] = {"generated": [], "real": [], "logits": [], "masked_logits": []}
        self.seen_real: set[str] = set()

    def _features(self, images: Tensor, keys: Sequence[str | None]) -> np.ndarray:
        """``(B, D)`` float64 features; keyed images come from (and go to) the shared cache."""
        nets, found = self.networks, {}
        for i, key in enumerate(keys):
            if key is not None and (cached := nets.cache.get(key)) is not None:
                found[i] = cached
        todo = [i for i in range(len(images)) if i not in found]
        if todo:
            assert nets.features is not None
            computed = run_chunks(nets.features, images[todo].to(self.device), nets.pool)
            for i, row in zip(todo, computed.detach().float().cpu().numpy()):  # type: ignore[union-attr]
                found[i] = row
                if keys[i] is not None:
                    nets.cache.put(keys[i], row)  # type: ignore[arg-type]
        return np.stack([found[i] for i in range(len(images))]).astype(np.float64)

    def update(self, generated: Tensor, real: Tensor, target_keypoints: np.ndarray | Tensor | None = None,
               masks: Tensor | None = None, real_ids: Sequence[str] | None = None,
               real_keys: Sequence[str | None] | None = None) -> None:
        """Add a batch: ``(B, 3, H, W)`` uint8 or [0, 1] float images; ``target_keypoints`` ``(B, 18, 2)``
        (or ``masks`` ``(B, 1, H, W)``) for the masked metrics; ``real_ids`` so that a target repeated across
        pairs enters FID once; ``real_keys`` to cache the targets' features."""
        self.update_batch(generated, RealBatch.build(real.to(self.device), target_keypoints, masks, real_ids,
                                                     real_keys))

    @torch.no_grad()
    def update_batch(self, generated: Tensor, real: RealBatch, generated_keys: Sequence[str | None] | None = None
                     ) -> None:
        """Add the generated images of a :class:`RealBatch` (shared by the rows of a run)."""
        g, r, mask, nets = to_uint8(generated, "generated").to(self.device), real.images, real.masks, self.networks
        if g.shape != r.shape:
            raise ValueError(f"generated {tuple(g.shape)} and real {tuple(r.shape)} differ in shape")
        has = mask is not None
        if self.with_masks is not None and has != self.with_masks:
            raise ValueError("give target_keypoints (or masks) to every update or to none")
        self.with_masks = has
        self.count += len(g)
        pixel = pixel_metrics(g, r, nets.pool).sum(dim=0)
        for j, name in enumerate(("ssim", "l1", "psnr")):
            self.sums[name] += float(pixel[j])
        if nets.lpips is not None:
            self.sums["lpips"] += float(nets.lpips(g.float() / 127.5 - 1, r.float() / 127.5 - 1).sum())
        if nets.paired is not None and min(g.shape[-2:]) >= MIN_SIDE:
            generated_maps = run_chunks(nets.paired.maps, g, nets.pool)
            distances = nets.paired.distance(generated_maps, real.paired_maps(nets.paired, nets.pool))  # type: ignore
            self.sums["inception_distance"] += float(distances.sum())
            self.paired_count += len(g)
        elif nets.paired is not None:
            self.unavailable["inception_distance"] = f"images smaller than {MIN_SIDE}x{MIN_SIDE} px"
        if mask is not None:
            keep = mask.flatten(1).amax(dim=1) > 0
            self.masked_count += int(keep.sum())
            if keep.any():
                self.sums["masked_ssim"] += float(ssim(g[keep] * mask[keep], r[keep] * mask[keep]).sum())
                self.sums["masked_l1"] += float(l1_distance(g[keep], r[keep], mask[keep]).sum())
        if nets.logits is not None:
            self.features["logits"].append(run_chunks(nets.logits, g, nets.pool).detach().double().cpu().numpy())
            if mask is not None:
                masked = run_chunks(nets.logits, g * mask, nets.pool)
                self.features["masked_logits"].append(masked.detach().double().cpu().numpy())
        if nets.features is None:
            return
        self.features["generated"].append(self._features(g, list(generated_keys or [None] * len(g))))
        if self.fid_on_targets:
            fresh = []
            for i, name in enumerate(real.ids):
                if name is None:
                    fresh.append(i)
                elif name not in self.seen_real:
                    fresh.append(i)
                    self.seen_real.add(name)
            if fresh:
                self.features["real"].append(self._features(r[fresh], [real.keys[i] for i in fresh]))

    @torch.no_grad()
    def add_fid_reference(self, images: Tensor, keys: Sequence[str | None] | None = None) -> None:
        """Add ``(B, 3, H, W)`` images to the FID/KID reference set (with ``fid_on_targets=False``)."""
        if self.fid_on_targets:
            raise ValueError("add_fid_reference needs MetricAccumulator(fid_on_targets=False)")
        if self.networks.features is not None:
            images = to_uint8(images, "reference images").to(self.device)
            self.features["real"].append(self._features(images, list(keys or [None] * len(images))))

    def _is(self, name: str, out: dict[str, float | None]) -> None:
        from torch_fidelity.metric_isc import isc_features_to_metric

        logits = torch.from_numpy(np.concatenate(self.features[name]))
        score = isc_features_to_metric(logits, max(1, min(self.is_splits, len(logits))), True, 2020)
        prefix = "masked_inception_score" if name == "masked_logits" else "inception_score"
        out[prefix] = score["inception_score_mean"]
        out[f"{prefix}_std"] = score["inception_score_std"]

    def _distribution_metrics(self, unavailable: dict[str, str]) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for name in ("logits", "masked_logits"):
            if self.features[name]:
                self._is(name, out)
        if self.networks.features is None:
            return out
        generated = np.concatenate(self.features["generated"])
        real = np.concatenate(self.features["real"]) if self.features["real"] else generated[:0]
        if len(generated) < 2 or len(real) < 2:
            reason = f"needs >= 2 images per set, got {len(generated)} generated and {len(real)} real"
            unavailable.update(fid=f"FID {reason}", kid=f"KID {reason}")
            return out
        out["fid"] = frechet_distance(generated, real)
        kid = kernel_distance(generated, real, self.kid_subsets, self.kid_subset_size)
        out["kid"], out["kid_std"] = kid.mean, kid.std
        return out

    def compute(self, settings: EvaluationSettings | None = None) -> EvaluationReport:
        """The averaged metrics as a report; ValueError if nothing was added."""
        if self.count == 0:
            raise ValueError("no pairs were scored")
        nets, unavailable = self.networks, dict(self.unavailable)
        values: dict[str, float | None] = {name: self.sums[name] / self.count for name in ("ssim", "l1", "psnr")}
        if nets.lpips is not None:
            values["lpips"] = self.sums["lpips"] / self.count
        if self.paired_count == self.count:
            values["inception_distance"] = self.sums["inception_distance"] / self.count
        if not self.with_masks:
            for key in MASKED_KEYS:
                unavailable.setdefault(key, "no target keypoints (annotations) given")
        elif self.masked_count == 0:
            unavailable.setdefault("masked_ssim", "every target pose mask is empty (no keypoints)")
        else:
            values["masked_ssim"] = self.sums["masked_ssim"] / self.masked_count
            values["masked_l1"] = self.sums["masked_l1"] / self.masked_count
        values.update(self._distribution_metrics(unavailable))
        for key, network in (("lpips", nets.lpips), ("inception_distance", nets.paired), ("fid", nets.features),
                             ("kid", nets.features), ("is", nets.logits), ("masked_is", nets.logits)):
            if network is None:
                unavailable.setdefault(key, "no network given")
        unavailable = {k: v for k, v in unavailable.items() if values.get(_FIELD_OF_KEY.get(k, k)) is None}
        settings = replace(settings or EvaluationSettings(), is_splits=max(1, min(self.is_splits, self.count)),
                           inception_distance=PAIRED_DESCRIPTION if nets.paired is not None else "")
        return EvaluationReport(count=self.count, masked_count=self.masked_count if self.with_masks else None,
                                settings=settings, unavailable=unavailable, **values)

