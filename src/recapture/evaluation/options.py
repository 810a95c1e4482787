"""The knobs of a scoring run and the networks and settings they make (shared by folder and model mode)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch

from recapture.evaluation.cache import FeatureCache, default_cache_dir
from recapture.evaluation.metrics import MetricAccumulator, MetricNetworks, WorkerPool
from recapture.evaluation.networks import (ALEXNET_WEIGHTS_NAME, ALEXNET_WEIGHTS_URL, INCEPTION_WEIGHTS_NAME,
                                           INCEPTION_WEIGHTS_URL, WeightsUnavailable, load_is_inception, load_lpips,
                                           resolve_weights)
from recapture.evaluation.paired import InceptionDistance
from recapture.evaluation.report import EvaluationSettings
from recapture.evaluation.strips import Panels
from recapture.models.inception import WEIGHTS_SHA1, InceptionUnavailable, load_inception

#: Cache sub-folder: the backbone's weights and the preprocessing (bump the suffix if either changes).
CACHE_NAMESPACE = f"inception-{WEIGHTS_SHA1[:12]}-uint8-bilinear299-v1"


@dataclass(frozen=True)
class EvaluationOptions:
    """Knobs of a scoring run (defaults reproduce the documented pipeline).

    ``threads``: Inception runs on that many slices of each batch in a thread pool, one torch thread
    each (None: ``torch.get_num_threads()``); ``cache_dir``: feature cache (None: the default folder,
    :func:`~recapture.evaluation.cache.default_cache_dir`); ``use_cache=False``: memory only.
    ``inception_distance=False`` skips the paired distance (it runs Inception on both images of every
    pair, ~40% of the CPU time of a run whose reference features are cached). ``baselines``: also score
    the floors; ``source_layouts``: folder of the sources' layout PNGs (same
    stem as the image; needed by the warp floor) in ``label_set``; ``strict``: fail when a pair or a file
    is unmatched.
    """

    batch_size: int = 32
    inception_weights: Path | None = None
    lpips_weights: Path | None = None
    panels: Panels = field(default_factory=Panels)
    fid_reference: Path | None = None
    keypoint_offset: tuple[int, int] = (0, 0)
    is_splits: int = 10
    device: str = "cpu"
    inception_distance: bool = True
    baselines: bool = False
    source_layouts: Path | None = None
    label_set: str = "lip20"
    strict: bool = False
    cache_dir: Path | None = None
    use_cache: bool = True
    threads: int | None = None


def build_networks(options: EvaluationOptions, pool: WorkerPool | None = None) -> MetricNetworks:
    """The documented networks; one whose weights are missing makes its metrics unavailable with the reason."""
    unavailable: dict[str, str] = {}
    features = paired = logits = lpips = None
    try:
        backbone = load_inception(options.device)
        features, paired = backbone.features, InceptionDistance(backbone)
        if not options.inception_distance:
            paired = None
            unavailable["inception_distance"] = "turned off (--no-inception-distance)"
    except InceptionUnavailable as exc:
        unavailable.update({key: str(exc) for key in ("fid", "kid", "inception_distance")})
    try:
        logits = load_is_inception(options.inception_weights, options.device)
    except WeightsUnavailable as exc:
        why = f"IS needs torch-fidelity's Inception logits (the bundled Inception has no classifier): {exc}"
        unavailable.update({key: why for key in ("is", "masked_is")})
    try:
        lpips = load_lpips(options.lpips_weights, options.device)
    except WeightsUnavailable as exc:
        unavailable["lpips"] = str(exc)
    folder = (options.cache_dir or default_cache_dir()) if options.use_cache else None
    return MetricNetworks(features=features, paired=paired, logits=logits, lpips=lpips, unavailable=unavailable,
                          cache=FeatureCache(folder, CACHE_NAMESPACE), pool=pool)


def build_accumulator(options: EvaluationOptions, networks: MetricNetworks | None = None) -> MetricAccumulator:
    """A :class:`MetricAccumulator` with ``networks`` (default :func:`build_networks`)."""
    return MetricAccumulator(networks or build_networks(options), fid_on_targets=options.fid_reference is None,
                             is_splits=options.is_splits, device=options.device)


@contextlib.contextmanager
def inference_pool(threads: int | None) -> Iterator[WorkerPool | None]:
    """A pool of ``threads`` workers with torch limited to one thread each (restored after);
    None for a single thread. Two one-thread workers run Inception ~20% faster than one two-thread call."""
    count = threads or torch.get_num_threads()
    if count < 2:
        yield None
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with WorkerPool(count) as pool:
            yield pool
    finally:
        torch.set_num_threads(before)


def report_settings(options: EvaluationOptions, accumulator: MetricAccumulator, **extra: str | None
                    ) -> EvaluationSettings:
    """The :class:`EvaluationSettings` of a run with ``options`` (``extra``: further settings fields)."""
    nets = accumulator.networks
    cache = nets.cache.folder
    return EvaluationSettings(
        panels=options.panels.describe(),
        feature_cache=str(cache) if cache is not None else "memory only (--no-cache)",
        inception_weights=None if nets.logits is None else str(resolve_weights(
            options.inception_weights, INCEPTION_WEIGHTS_NAME, INCEPTION_WEIGHTS_URL, "--inception-weights")),
        lpips_weights=None if nets.lpips is None else str(resolve_weights(
            options.lpips_weights, ALEXNET_WEIGHTS_NAME, ALEXNET_WEIGHTS_URL, "--lpips-weights")),
        fid_reference=(f"all images of {options.fid_reference}" if options.fid_reference is not None
                       else EvaluationSettings.fid_reference), **extra)
