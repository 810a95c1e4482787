"""The paper's Table 4 ablation on SynthHumans: Basic, +SAT, +SAT+LGR with one data set, one step budget
and the same seeds, each variant trained with >= 2 seeds; reports mean ± std over seeds.

    python benchmarks/ablation.py --steps 4000 --seeds 0,1 --variants basic,sat,sat_lgr [--limit 600]
    python benchmarks/ablation.py --people 120 --poses 6 --steps 500   # writes its own SynthHumans first

Each run is ``recapture train --config CONFIG --set ...`` (``run_training``) with the variant's model
switches, ``train.steps``, ``train.seed``, ``train.run_dir`` and ``data.manifest``; then
``recapture evaluate --model RUN --data MANIFEST --split test`` (``evaluate_model``, the EMA weights
when the config keeps them) with the SynthHumans scores. Runs are sequential; after the first one the
script prints an estimate of the remaining time. The table and JSON are rewritten after every run, so
an interrupted ablation keeps what it finished; ``--reuse`` skips the training of runs whose
checkpoint already reached ``--steps``.

Variants: basic (no SAT, no LGR), sat (SAT only), sat_lgr (SAT + LGR with the config's n =
``model.lgr_steps``), sat_lgr_n3 (SAT + LGR with n = 3, the paper's "LGR(r, n + 1)" row).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import torch

from recapture.config import ExperimentConfig, load_config
from recapture.data.synthetic import SynthConfig, generate, parse_size
from recapture.evaluation import EvaluationOptions, EvaluationReport, report_to_dict
from recapture.evaluation.generate import ModelEvaluationOptions, evaluate_model
from recapture.evaluation.report import metric_fields
from recapture.training.checkpoint import list_checkpoints
from recapture.training.distributed import resolve_device
from recapture.training.run import run_training

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Variant:
    """One row of the table: a name, its label and its ``--set`` model overrides."""

    name: str
    label: str
    overrides: tuple[str, ...]


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("basic", "Basic", ("model.sat_enabled=false", "model.lgr_enabled=false")),
    Variant("sat", "Basic+SAT", ("model.sat_enabled=true", "model.lgr_enabled=false")),
    Variant("sat_lgr", "Basic+SAT+LGR", ("model.sat_enabled=true", "model.lgr_enabled=true")),
    Variant("sat_lgr_n3", "Basic+SAT+LGR (n=3)", ("model.sat_enabled=true", "model.lgr_enabled=true",
                                                  "model.lgr_steps=3")),
)}
#: Columns of the main table and of the edit table (JSON keys of the report).
MAIN_COLUMNS = ("ssim", "masked_ssim", "l1", "invisible_l1", "colour_coherence", "texture_fidelity", "layout_iou",
                "lpips", "fid")
EDIT_COLUMNS = ("edit_figure_l1", "edit_figure_ssim", "edit_figure_layout_iou", "edit_clothing_l1",
                "edit_clothing_ssim", "edit_clothing_layout_iou")


@dataclass(frozen=True)
class ModelSwitches:
    """The model settings the ablation varies, as the run used them."""

    sat_enabled: bool
    sat_level: int
    lgr_enabled: bool
    lgr_level: int
    lgr_steps: int


@dataclass(frozen=True)
class RunResult:
    """One trained and evaluated run."""

    variant: str
    seed: int
    run_dir: str
    model: ModelSwitches
    train_seconds: float
    eval_seconds: float
    trained: bool
    report: EvaluationReport


@dataclass(frozen=True)
class MetricStat:
    """Mean and sample standard deviation (None for one value) of one metric over seeds."""

    mean: float
    std: float | None
    count: int


def summarise(runs: Sequence[RunResult], variant: str) -> dict[str, MetricStat]:
    """Mean ± std over the seeds of ``variant`` for every metric that every one of its runs has."""
    reports = [r.report for r in runs if r.variant == variant]
    out = {}
    for f in metric_fields():
        values = [report.value(f.metadata["key"]) for report in reports]
        if values and all(v is not None for v in values):
            std = statistics.stdev(values) if len(values) > 1 else None
            out[f.metadata["key"]] = MetricStat(statistics.fmean(values), std, len(values))
    return out


def _cell(stat: MetricStat | None, digits: int) -> str:
    if stat is None:
        return "n/a"
    return f"{stat.mean:.{digits}f}" + ("" if stat.std is None else f" ± {stat.std:.{digits}f}")


def _table(runs: Sequence[RunResult], variants: Sequence[Variant], columns: Sequence[str]) -> list[str]:
    meta = {f.metadata["key"]: f.metadata for f in metric_fields()}
    summaries = {v.name: summarise(runs, v.name) for v in variants}
    shown = [c for c in columns if any(c in s for s in summaries.values())]
    arrows = {True: " ↑", False: " ↓", None: ""}
    lines = ["| Variant | seeds | " + " | ".join(meta[c]["label"] + arrows[meta[c]["higher"]] for c in shown) + " |",
             "|---" * (len(shown) + 2) + "|"]
    for v in variants:
        seeds = sorted(r.seed for r in runs if r.variant == v.name)
        if seeds:
            cells = [_cell(summaries[v.name].get(c), meta[c]["digits"]) for c in shown]
            lines.append(f"| {v.label} | {len(seeds)} | " + " | ".join(cells) + " |")
    return lines


def to_markdown(runs: Sequence[RunResult], variants: Sequence[Variant], info: dict) -> str:
    """The ablation tables (mean ± sample std over seeds), the runs and how they were made."""
    real = [r.report.colour_coherence_real for r in runs if r.report.colour_coherence_real is not None]
    lines = ["# Ablation on SynthHumans (paper Table 4)", "",
             f"Command: `{info['command']}`", "",
             f"{info['steps']} training steps per run, seeds {info['seeds']}, config `{info['config']}`, data "
             f"`{info['data']}`, {info['test_pairs']}; wall time {info['wall_seconds']:.0f} s "
             f"({info['finished']} of {info['planned']} runs).", "",
             *_table(runs, variants, MAIN_COLUMNS), "", "Edits (SynthHumans re-rendered truth):", "",
             *_table(runs, variants, EDIT_COLUMNS), ""]
    if real:
        lines += [f"Colour coherence of the real targets (the floor): {statistics.fmean(real):.4f}.", ""]
    lines += ["Metric definitions: docs/evaluation.md. ± is the sample standard deviation over seeds.", "",
              "| Variant | seed | run | train s | eval s |", "|---|---|---|---|---|"]
    lines += [f"| {VARIANTS[r.variant].label} | {r.seed} | `{r.run_dir}` | "
              f"{r.train_seconds:.0f}{'' if r.trained else ' (reused)'} | {r.eval_seconds:.0f} |" for r in runs]
    return "\n".join(lines) + "\n"


def write_results(out: Path, runs: Sequence[RunResult], variants: Sequence[Variant], info: dict) -> None:
    """Write ``out.md`` and ``out.json``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    data = {**info, "runs": [{**{k: v for k, v in asdict(r).items() if k != "report"},
                              "report": report_to_dict(r.report)} for r in runs],
            "summary": {v.name: {k: asdict(s) for k, s in summarise(runs, v.name).items()} for v in variants}}
    out.with_suffix(".json").write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(to_markdown(runs, variants, info), encoding="utf-8")


def prepare_data(args: argparse.Namespace, config: ExperimentConfig) -> Path:
    """The manifest: ``--data``, or a SynthHumans set written into the work folder, or the config's."""
    if args.data:
        return Path(args.data)
    if args.people is None:
        if not config.data.manifest:
            raise SystemExit("error: give --data MANIFEST or --people N --poses M (the config names no data)")
        return Path(config.data.manifest)
    height, width = parse_size(args.size) if args.size else tuple(config.model.image_size)
    folder = Path(args.work) / f"synthhumans-p{args.people}-v{args.poses}-{height}x{width}-s{args.synth_seed}"
    manifest = folder / "manifest.yaml"
    if not manifest.is_file():
        summary = generate(SynthConfig(folder, args.people, args.poses, (height, width), config.model.label_set,
                                       args.synth_seed, args.synth_workers))
        print(f"wrote SynthHumans ({summary.total_images} images) in {summary.seconds:.1f} s: {manifest}")
    return manifest


def run_one(args: argparse.Namespace, variant: Variant, seed: int, manifest: Path) -> RunResult:
    """Train (unless reused) and evaluate one variant with one seed."""
    run_dir = Path(args.work) / f"{variant.name}-seed{seed}"
    overrides = [*args.set, *variant.overrides, f"train.steps={args.steps}", f"train.seed={seed}",
                 f"train.run_dir={run_dir}", f"data.manifest={manifest}"]
    config = load_config(args.config, overrides)
    done = list_checkpoints(run_dir)
    trained = not (args.reuse and done and done[-1].name.endswith(f"{args.steps:08d}"))
    start = time.monotonic()
    if trained:
        run_training(args.config, overrides)
    train_seconds = time.monotonic() - start
    start = time.monotonic()
    device = str(resolve_device(config.train.device))
    report = evaluate_model(run_dir, manifest, ModelEvaluationOptions(
        split="test", limit=args.limit, progress=not args.quiet,
        metrics=EvaluationOptions(batch_size=args.batch_size, device=device)))
    m = config.model
    model = ModelSwitches(m.sat_enabled, m.sat_level, m.lgr_enabled, m.lgr_level, m.lgr_steps)
    return RunResult(variant.name, seed, str(run_dir), model, train_seconds, time.monotonic() - start, trained, report)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "synthetic.yaml"), help="training preset")
    parser.add_argument("--data", help="SynthHumans manifest (default: the config's data.manifest)")
    parser.add_argument("--people", type=int, help="write a SynthHumans set of this many identities first")
    parser.add_argument("--poses", type=int, default=6, help="images per identity of that set")
    parser.add_argument("--size", help="HxW of that set (default: the config's model.image_size)")
    parser.add_argument("--synth-seed", type=int, default=0)
    parser.add_argument("--synth-workers", type=int, default=2)
    parser.add_argument("--steps", type=int, help="training steps per run (default: the config's train.steps)")
    parser.add_argument("--seeds", default="0,1", help="comma-separated training seeds")
    parser.add_argument("--variants", default="basic,sat,sat_lgr", help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--limit", type=int, help="test pairs scored per run, evenly spaced (default: all)")
    parser.add_argument("--batch-size", type=int, default=16, help="evaluation batch size")
    parser.add_argument("--set", action="append", default=[], help="extra config override (repeatable)")
    parser.add_argument("--work", default=str(ROOT / "runs" / "ablation"), help="run directories go here")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ablation"),
                        help="writes OUT.md and OUT.json")
    parser.add_argument("--reuse", action="store_true", help="skip training runs already at --steps")
    parser.add_argument("--quiet", action="store_true", help="no evaluation progress bar")
    args = parser.parse_args(argv)
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; valid: {', '.join(VARIANTS)}")
    args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    if args.steps is None:
        args.steps = load_config(args.config, args.set).train.steps
    return args


def main(argv: Sequence[str] | None = None) -> list[RunResult]:
    """Run the ablation; returns the runs (also written to ``--out``.md/.json)."""
    args = parse_args(argv)
    command = shlex.join(["python", "benchmarks/ablation.py", *(sys.argv[1:] if argv is None else argv)])
    variants = [VARIANTS[v] for v in args.variants.split(",")]
    manifest = prepare_data(args, load_config(args.config, args.set))
    plan = [(v, s) for s in args.seed_list for v in variants]
    start, runs = time.monotonic(), []
    info = {"command": command, "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "config": args.config, "overrides": args.set, "data": str(manifest), "steps": args.steps,
            "seeds": args.seed_list, "variants": [v.name for v in variants], "planned": len(plan),
            "test_pairs": f"{args.limit} test pairs" if args.limit else "all test pairs",
            "torch": torch.__version__, "threads": torch.get_num_threads()}
    for number, (variant, seed) in enumerate(plan, start=1):
        result = run_one(args, variant, seed, manifest)
        runs.append(result)
        wall = time.monotonic() - start
        info.update(wall_seconds=wall, finished=len(runs))
        write_results(Path(args.out), runs, variants, info)
        print(f"[{number}/{len(plan)}] {variant.label} seed {seed}: train {result.train_seconds:.0f} s, eval "
              f"{result.eval_seconds:.0f} s; SSIM {result.report.ssim:.4f}, L1 {result.report.l1:.4f}")
        if number == 1 and len(plan) > 1:
            remaining = wall * (len(plan) - 1)
            print(f"estimated time left: {remaining / 60:.1f} min for {len(plan) - 1} more runs if each takes as "
                  f"long as the first (variants differ in cost); finish about "
                  f"{time.strftime('%H:%M', time.localtime(time.time() + remaining))} local time")
    print(f"wrote {Path(args.out).with_suffix('.md')} and .json in {time.monotonic() - start:.0f} s")
    return runs


if __name__ == "__main__":
    main()
