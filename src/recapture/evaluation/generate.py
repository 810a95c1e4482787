"""``recapture evaluate --model``: generate a split's pairs with a model and score them in memory.

The images go through the documented pipeline (:class:`~recapture.evaluation.metrics.MetricAccumulator`,
exactly as folder mode would score the same PNGs), then the scores of
:mod:`recapture.evaluation.synthetic`: layout IoU, colour coherence and texture on any dataset with
layouts; the invisible-part error and the figure / clothing edit scores where the manifest has
SynthHumans' extras (an ``invisible`` folder, ``edit_figure`` / ``edit_clothing`` splits with ``edits``).

The appearance network sees the geometric network's own Ŝ_B (``target_layout="predicted"``, the real
use) or the true target layout (``"ground_truth"``, the paper's Table 3 "GT parsing" setting).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch.utils.data import DataLoader, Subset

from recapture.body.clothing import check_clothing
from recapture.body.edits import LayoutEdits
from recapture.body.parts import LabelSet, get_label_set
from recapture.data.dataset import PairBatch, PairDataset, collate_pairs, fit_width
from recapture.data.errors import FormatError
from recapture.data.formats import pair_name, read_layout
from recapture.data.manifest import Manifest, read_manifest
from recapture.data.synthetic import EditRecord, read_edits
from recapture.evaluation.folders import add_reference_folder
from recapture.evaluation.metrics import MetricAccumulator
from recapture.evaluation.options import EvaluationOptions, build_accumulator, report_settings
from recapture.evaluation.report import EvaluationReport
from recapture.evaluation.ssim import to_uint8
from recapture.evaluation.synthetic import EDIT_KINDS, ExtraScoreAccumulator
from recapture.models.generator import RecaptureGenerator
from recapture.hub import LoadedGenerator, load_generator

TARGET_LAYOUTS: tuple[str, ...] = ("predicted", "ground_truth")
SPLIT_SCORES: tuple[str, ...] = ("layout_iou", "invisible_l1", "colour_coherence", "colour_coherence_real",
                                 "texture_fidelity", "texture_l1")
EDIT_SCORES: tuple[str, ...] = tuple(f"edit_{kind}_{score}" for kind in EDIT_KINDS
                                     for score in ("l1", "ssim", "layout_iou"))


@dataclass(frozen=True)
class ModelEvaluationOptions:
    """Knobs of :func:`evaluate_model`.

    ``limit``: score that many pairs, evenly spaced over the pairs file (all when None); also applied to
    each edit split. ``out_dir``: write the generated PNGs there (``pair_name(from, to)``; edit pairs
    in ``<out_dir>/<edit split>/``). ``metrics``: batch size, device, Inception/LPIPS weights, FID
    reference and IS splits of the documented pipeline.
    """

    split: str = "test"
    limit: int | None = None
    out_dir: Path | None = None
    target_layout: str = "predicted"
    edits: bool = True
    num_workers: int = 0
    progress: bool = True
    metrics: EvaluationOptions = field(default_factory=lambda: EvaluationOptions(batch_size=16))

    def __post_init__(self) -> None:
        if self.target_layout not in TARGET_LAYOUTS:
            raise ValueError(f"target_layout must be one of {', '.join(TARGET_LAYOUTS)}, got {self.target_layout!r}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.out_dir is not None:
            object.__setattr__(self, "out_dir", Path(self.out_dir))


@dataclass(frozen=True)
class Generated:
    """One generated batch."""

    images: torch.Tensor  # (B, 3, H, W) uint8, exactly what the PNGs hold
    predicted_labels: torch.Tensor  # (B, H, W) long: argmax of the predicted Ŝ_B
    used_labels: torch.Tensor  # (B, H, W) long: the layout the appearance network used


def spread_indices(count: int, limit: int | None) -> list[int]:
    """``limit`` indices evenly spaced over ``range(count)`` (all of them when ``limit`` is None or larger)."""
    if limit is None or limit >= count:
        return list(range(count))
    return [(i * count) // limit for i in range(limit)]


def image_uint8(images: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` network images in [-1, 1] -> uint8, rounded as the evaluation pipeline rounds."""
    return to_uint8(((images.detach().float() + 1.0) / 2.0).clamp(0.0, 1.0), "generated").cpu()


@torch.no_grad()
def generate(generator: RecaptureGenerator, batch: PairBatch, target_layout: torch.Tensor | None = None,
             layout_logits: torch.Tensor | None = None) -> Generated:
    """Recapture a batch: the appearance network sees ``target_layout`` ``(B, H, W)`` labels, or Ŝ_B if None
    (``layout_logits`` when already computed, else the geometric network's, from the batch's keypoints)."""
    output = generator(batch.source_image, batch.source_layout, batch.source_pose, batch.target_pose,
                       target_layout=target_layout, source_keypoints=batch.source_keypoints,
                       target_keypoints=batch.target_keypoints, layout_logits=layout_logits)
    return Generated(images=image_uint8(output.image), predicted_labels=output.layout_logits.argmax(dim=1).cpu(),
                     used_labels=output.target_layout.argmax(dim=1).cpu())


def edited_layouts(labels: torch.Tensor, edits: Sequence[LayoutEdits], keypoints: torch.Tensor,
                   label_set: LabelSet) -> torch.Tensor:
    """``(B, H, W)`` labels with ``edits[i]`` applied to sample ``i`` (posed by ``keypoints`` ``(B, 18, 2)``)."""
    rows = [edit.apply(labels[i].cpu().numpy(), keypoints[i].cpu().numpy(), label_set) for i, edit in enumerate(edits)]
    return torch.from_numpy(np.stack(rows).astype(np.int64))


def layout_edits(record: EditRecord) -> LayoutEdits:
    """The layout edit that SynthHumans applied to render ``record.target``."""
    if record.kind == "figure":
        return LayoutEdits.from_figure(str(record.part_group), float(record.factor or 1.0))
    return LayoutEdits.from_garments(str(record.garment_from), str(record.garment_to))


def write_images(folder: Path, batch: PairBatch, images: torch.Tensor) -> None:
    """Write ``(B, 3, H, W)`` uint8 images as ``folder/pair_name(source, target)``."""
    folder.mkdir(parents=True, exist_ok=True)
    for source, target, image in zip(batch.source_name, batch.target_name, images):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / pair_name(source, target))


def read_invisible(folder: Path, batch: PairBatch, size: tuple[int, int]) -> torch.Tensor:
    """``(B, 1, H, W)`` uint8 0/1 SynthHumans invisible masks of the batch's pairs (255 in the file = 1)."""
    masks = []
    for source, target in zip(batch.source_name, batch.target_name):
        path = folder / pair_name(source, target)
        masks.append(fit_width(read_layout(path), size, path) > 127)
    return torch.from_numpy(np.stack(masks)).unsqueeze(1).to(torch.uint8)


def _progress(enabled: bool) -> Progress:
    """A progress bar on stderr (stdout carries the report)."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), console=Console(stderr=True), disable=not enabled)


class _ModelRun:
    """One ``evaluate_model`` call: the model, the manifest, the accumulators and the progress bar."""

    def __init__(self, loaded: LoadedGenerator, manifest: Manifest, options: ModelEvaluationOptions,
                 progress: Progress) -> None:
        self.loaded, self.manifest, self.options, self.progress = loaded, manifest, options, progress
        self.device = torch.device(options.metrics.device)
        self.generator = loaded.generator.to(self.device).eval()
        self.label_set = get_label_set(manifest.label_set)
        self.totals: dict[str, int] = {}
        config = loaded.config
        if tuple(config.output_size) != tuple(manifest.image_size) or config.label_set != manifest.label_set:
            raise ValueError(f"model {loaded.source} outputs {config.output_size[0]}x{config.output_size[1]} "
                             f"{config.label_set} images but manifest {manifest.path} is {manifest.image_size[0]}x"
                             f"{manifest.image_size[1]} {manifest.label_set}: evaluate it with a model of that "
                             f"size (--model default is 256x176, synthhumans 128x64)")

    def batches(self, split: str) -> Iterator[PairBatch]:
        dataset = PairDataset(self.manifest, split=split, flip=False)
        indices = spread_indices(len(dataset), self.options.limit)
        self.totals[split] = len(dataset)
        loader = DataLoader(Subset(dataset, indices), batch_size=self.options.metrics.batch_size,
                            collate_fn=collate_pairs, num_workers=self.options.num_workers)
        task = self.progress.add_task(f"{split} ({self.loaded.source})", total=len(indices))
        for batch in loader:
            yield batch.to(self.device)
            self.progress.advance(task, len(batch))

    def score_split(self, extra: ExtraScoreAccumulator) -> MetricAccumulator:
        """Generate and score the evaluated split; returns the metric accumulator."""
        options, spec = self.options, self.manifest.split(self.options.split)
        accumulator = build_accumulator(options.metrics)
        invisible = self.manifest.resolve(spec.extras["invisible"]) if "invisible" in spec.extras else None
        for batch in self.batches(options.split):
            truth = batch.target_layout.argmax(dim=1)
            out = generate(self.generator, batch, truth if options.target_layout == "ground_truth" else None)
            real = image_uint8(batch.target_image)
            accumulator.update(out.images, real, target_keypoints=batch.target_keypoints.cpu(),
                               real_ids=list(batch.target_name))
            masks = None if invisible is None else read_invisible(invisible, batch, self.manifest.image_size)
            extra.update(out.images, real, truth, batch.target_keypoints, out.predicted_labels, masks)
            if options.out_dir is not None:
                write_images(options.out_dir, batch, out.images)
        add_reference_folder(accumulator, options.metrics)
        return accumulator

    def edit_records(self, split: str) -> dict[tuple[str, str], EditRecord]:
        """The edits CSV of an edit split by ``(source, target)``; ValueError if the label set cannot express one."""
        records = {(r.source, r.target): r for r in read_edits(self.manifest.resolve(self.manifest.split(split)
                                                                                      .extras["edits"]))}
        for record in records.values():
            for slot, category in layout_edits(record).clothing:
                check_clothing(slot, category, self.label_set)
        return records

    def score_edits(self, split: str, records: dict[tuple[str, str], EditRecord], extra: ExtraScoreAccumulator) -> None:
        """Generate the pairs of an edit split with the edit applied to Ŝ_B (or the true layout) and score them."""
        kind = split.removeprefix("edit_")
        edits_csv = self.manifest.resolve(self.manifest.split(split).extras["edits"])
        for batch in self.batches(split):
            truth = batch.target_layout.argmax(dim=1)
            missing = [p for p in zip(batch.source_name, batch.target_name) if p not in records]
            if missing:
                raise FormatError(edits_csv, f"no edit row for pair {missing[0][0]},{missing[0][1]} of split {split!r}")
            if self.options.target_layout == "ground_truth":
                used, edited = truth, None
            else:
                with torch.no_grad():
                    logits = self.generator.geometric(batch.source_layout, batch.source_pose, batch.target_pose,
                                                      batch.source_keypoints, batch.target_keypoints)
                edits = [layout_edits(records[p]) for p in zip(batch.source_name, batch.target_name)]
                used = edited = edited_layouts(logits.argmax(dim=1), edits, batch.target_keypoints,
                                               self.label_set)
            out = generate(self.generator, batch, used.to(self.device),
                           None if self.options.target_layout == "ground_truth" else logits)
            extra.update_edit(kind, out.images, image_uint8(batch.target_image), edited, truth)
            if self.options.out_dir is not None:
                write_images(self.options.out_dir / split, batch, out.images)


def _edit_reasons(manifest: Manifest, options: ModelEvaluationOptions) -> dict[str, str]:
    reasons = {}
    for kind in EDIT_KINDS:
        split = f"edit_{kind}"
        if not options.edits:
            why = "edit scores not asked for (--no-edits)"
        elif split not in manifest.splits or "edits" not in manifest.splits[split].extras:
            why = f"manifest {manifest.path} has no split {split!r} with an `edits` CSV (SynthHumans only)"
        else:
            continue
        reasons.update({f"edit_{kind}_{score}": why for score in ("l1", "ssim", "layout_iou")})
    if options.target_layout == "ground_truth":
        reasons.update({f"edit_{kind}_layout_iou": "the true layout was given (--target-layout ground_truth)"
                        for kind in EDIT_KINDS if f"edit_{kind}_layout_iou" not in reasons})
    return reasons


def evaluate_model(model: str | Path | LoadedGenerator, manifest: str | Path | Manifest,
                   options: ModelEvaluationOptions = ModelEvaluationOptions()) -> EvaluationReport:
    """Generate ``options.split`` of ``manifest`` with ``model`` (bundled name, exported file, run directory
    or a loaded generator) and score it: the documented metrics plus :mod:`recapture.evaluation.synthetic`."""
    manifest = manifest if isinstance(manifest, Manifest) else read_manifest(manifest)
    loaded = model if isinstance(model, LoadedGenerator) else load_generator(model, options.metrics.device)
    spec = manifest.split(options.split)
    reasons = _edit_reasons(manifest, options)
    if "invisible" not in spec.extras:
        reasons["invisible_l1"] = f"split {options.split!r} of {manifest.path} has no `invisible` masks (SynthHumans)"
    with _progress(options.progress) as progress:
        run = _ModelRun(loaded, manifest, options, progress)
        extra = ExtraScoreAccumulator(run.label_set, reasons)
        accumulator = run.score_split(extra)
        for kind in (k for k in EDIT_KINDS if f"edit_{k}_l1" not in reasons):
            try:
                records = run.edit_records(f"edit_{kind}")
            except FormatError:
                raise
            except ValueError as exc:
                extra.reasons.update({name: f"edit_{kind}: {exc}" for name in EDIT_SCORES if kind in name})
                continue
            run.score_edits(f"edit_{kind}", records, extra)
    described = (f"model {loaded.source} (step {loaded.metadata.get('step', '?')}); split {options.split!r} of "
                 f"{manifest.path}: {accumulator.count} of {run.totals[options.split]} pairs; target layout "
                 f"{options.target_layout}")
    report = accumulator.compute(report_settings(options.metrics, accumulator, generated_by=described,
                                                 synthhumans=SYNTHETIC_SETTINGS))
    return extra.compute(SPLIT_SCORES + EDIT_SCORES).merged_into(report)


SYNTHETIC_SETTINGS = ("layout_iou: mean IoU over non-background labels of argmax S_B vs the true target layout; "
                      "colour_coherence: mean over left/right region pairs (L/R labels; sleeves and trouser legs "
                      "split by owning limb) of the mean-RGB L1 / 255, regions of the true target layout eroded "
                      "by 1 px, >= 4 px each; "
                      "texture_fidelity/texture_l1: SSIM map / L1 over garment pixels of the true target layout; "
                      "invisible_l1: L1 over SynthHumans invisible-mask pixels; edit_*: the edit applied to S_B "
                      "(or the true edited layout with --target-layout ground_truth) vs the re-rendered truth")
