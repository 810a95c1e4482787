"""Metrics pipeline: one documented way to score pose-transfer outputs (docs/evaluation.md).

Folder scoring imports no model-loading code; :mod:`recapture.evaluation.generate` (``--model`` mode) is
imported on its own, only when a model is scored.
"""

from recapture.evaluation.baselines import Floor, FloorBatch, available_floors
from recapture.evaluation.cache import FeatureCache, default_cache_dir, file_digest
from recapture.evaluation.distributions import KernelDistance, frechet_distance, kernel_distance
from recapture.evaluation.folders import evaluate_folders, match_files
from recapture.evaluation.matching import MatchedPair, Matching, MatchingError, match_by_name, match_pairs
from recapture.evaluation.metrics import MetricAccumulator, MetricNetworks, RealBatch, literature_pose_mask
from recapture.evaluation.networks import WeightsUnavailable, load_is_inception, load_lpips
from recapture.evaluation.options import EvaluationOptions, build_accumulator, build_networks
from recapture.evaluation.paired import PAIRED_STAGES, InceptionDistance
from recapture.evaluation.report import (EvaluationReport, EvaluationSettings, MatchCounts, read_json,
                                         report_from_dict, report_to_dict, to_markdown, write_json, write_markdown)
from recapture.evaluation.ssim import l1_distance, psnr, ssim
from recapture.evaluation.strips import Panels

__all__ = [
    "EvaluationOptions", "EvaluationReport", "EvaluationSettings", "FeatureCache", "Floor", "FloorBatch",
    "InceptionDistance", "KernelDistance", "MatchCounts", "MatchedPair", "Matching", "MatchingError",
    "MetricAccumulator", "MetricNetworks", "PAIRED_STAGES", "Panels", "RealBatch", "WeightsUnavailable",
    "available_floors", "build_accumulator", "build_networks", "default_cache_dir", "evaluate_folders",
    "file_digest", "frechet_distance", "kernel_distance", "l1_distance", "literature_pose_mask", "load_is_inception",
    "load_lpips", "match_by_name", "match_files", "match_pairs", "psnr", "read_json", "report_from_dict",
    "report_to_dict", "ssim", "to_markdown", "write_json", "write_markdown",
]
