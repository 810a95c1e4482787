"""Metrics pipeline: one documented way to score pose-transfer outputs (docs/evaluation.md)."""

from recapture.evaluation.matching import MatchedPair, MatchingError, match_by_name, match_pairs
from recapture.evaluation.metrics import (EvaluationOptions, MetricAccumulator, evaluate_folders,
                                          literature_pose_mask)
from recapture.evaluation.networks import (FeatureExtractor, InceptionOutputs, WeightsUnavailable, load_inception,
                                           load_lpips)
from recapture.evaluation.report import (EvaluationReport, EvaluationSettings, read_json, report_from_dict,
                                         report_to_dict, to_markdown, write_json, write_markdown)
from recapture.evaluation.ssim import l1_distance, psnr, ssim

__all__ = [
    "EvaluationOptions", "EvaluationReport", "EvaluationSettings", "FeatureExtractor", "InceptionOutputs",
    "MatchedPair", "MatchingError", "MetricAccumulator", "WeightsUnavailable", "evaluate_folders",
    "l1_distance", "literature_pose_mask", "load_inception", "load_lpips", "match_by_name", "match_pairs",
    "psnr", "read_json", "report_from_dict", "report_to_dict", "ssim", "to_markdown", "write_json",
    "write_markdown",
]
