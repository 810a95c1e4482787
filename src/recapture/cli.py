"""The ``recapture`` command line: thin Typer commands that call the library."""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Recapture: re-shoot a portrait with a new pose, figure or clothing.")
data_app = typer.Typer(no_args_is_help=True, help="Inspect and validate datasets.")
app.add_typer(data_app, name="data")


@app.callback()
def main() -> None:
    """Recapture command line."""


@data_app.command("inspect")
def data_inspect(path: str = typer.Argument(..., help="Manifest YAML, annotation CSV or pairs CSV."),
                 json_output: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """Validate a dataset file and print its counts (exit code 1 on invalid input)."""
    from recapture.data.inspect import inspect_cli

    result = inspect_cli(path, as_json=json_output)
    if result.stdout:
        typer.echo(result.stdout)
    if result.stderr:
        typer.echo(result.stderr, err=True)
    raise typer.Exit(result.exit_code)


@app.command("train")
def train(config: str | None = typer.Option(None, help="YAML preset, e.g. configs/synthetic.yaml."),
          overrides: list[str] = typer.Option([], "--set", help="Dotted override, e.g. train.steps=100."),
          resume: str | None = typer.Option(None, help="Run directory to continue exactly where it stopped.")) -> None:
    """Train (also under torchrun: `torchrun --nproc_per_node=K -m recapture train ...`)."""
    from recapture.config import ConfigError
    from recapture.data.formats import FormatError
    from recapture.training.checkpoint import CheckpointError
    from recapture.training.run import run_training
    from recapture.training.trainer import TrainingError

    if config is None and resume is None:
        typer.echo("error: give --config PRESET or --resume RUN_DIR", err=True)
        raise typer.Exit(2)
    try:
        result = run_training(config, overrides, resume)
    except (ConfigError, FormatError, TrainingError, CheckpointError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"trained to step {result.step} in {result.wall_seconds:.0f} s; checkpoint {result.last_checkpoint}")


@app.command("evaluate")
def evaluate(generated: str = typer.Option(..., help="Folder of generated images."),
             real: str = typer.Option(..., help="Folder of the real target images."),
             pairs: str | None = typer.Option(None, help="Pairs CSV (from,to) to match pair-named outputs."),
             annotations: str | None = typer.Option(None, help="Annotation CSV of the targets (masked metrics)."),
             json_path: str | None = typer.Option(None, "--json", help="Write the report as JSON here."),
             markdown: str | None = typer.Option(None, help="Write the Markdown table here."),
             inception_weights: str | None = typer.Option(None, help="weights-inception-2015-12-05-6726825d.pth."),
             lpips_weights: str | None = typer.Option(None, help="torchvision alexnet-owt-7be5be79.pth."),
             batch_size: int = typer.Option(32, min=1, help="Pairs per batch."),
             crop_last_panel: bool = typer.Option(False, help="Score the last panel of side-by-side strips."),
             fid_reference: str | None = typer.Option(None, help="FID reference folder (default: the targets)."),
             keypoint_offset: tuple[int, int] = typer.Option((0, 0), help="(y, x) added to annotation joints."),
             device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, ...")) -> None:
    """Score generated images against real ones with the documented pipeline (docs/evaluation.md)."""
    from pathlib import Path

    from recapture.evaluation import EvaluationOptions, evaluate_folders, to_markdown, write_json, write_markdown

    options = EvaluationOptions(batch_size=batch_size, crop_last_panel=crop_last_panel, device=device,
                                inception_weights=Path(inception_weights) if inception_weights else None,
                                lpips_weights=Path(lpips_weights) if lpips_weights else None,
                                fid_reference=Path(fid_reference) if fid_reference else None,
                                keypoint_offset=keypoint_offset)
    try:
        report = evaluate_folders(generated, real, pairs, annotations, options)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(to_markdown(report))
    if json_path:
        write_json(report, json_path)
    if markdown:
        write_markdown(report, markdown)


@app.command("synth")
def synth(out: str | None = typer.Option(None, help="Output folder of the dataset (manifest.yaml inside)."),
          people: int = typer.Option(100, min=2, help="Identities."),
          poses: int = typer.Option(6, min=2, help="Images per identity."),
          size: str = typer.Option("256x176", help="HxW: 256x176 (DeepFashion) or 128x64 (Market)."),
          labels: str = typer.Option("lip20", help="Label set of the layouts: lip20 | market7."),
          seed: int = typer.Option(0, help="Same seed -> byte-identical files."),
          workers: int = typer.Option(1, min=1, help="Worker processes."),
          background: str = typer.Option("plain", help="plain (studio) | cluttered (street)."),
          preview: str | None = typer.Option(None, help="Write a contact sheet PNG here instead.")) -> None:
    """Write SynthHumans, a procedural dataset with ground truth (docs/synthhumans.md)."""
    from recapture.data.synthetic import SynthConfig, generate, parse_size, write_preview

    try:
        if preview is not None:
            typer.echo(f"wrote {write_preview(preview, seed, parse_size(size), background=background)}")
            return
        if out is None:
            raise ValueError("give --out DIR (or --preview PNG)")
        summary = generate(SynthConfig(out, people, poses, parse_size(size), labels, seed, workers, background))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    counts = ", ".join(f"{split} {count}" for split, count in summary.images.items())
    typer.echo(f"wrote {summary.total_images} images ({counts}) in {summary.seconds:.1f} s; {summary.manifest}")


if __name__ == "__main__":
    app()
