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
    from recapture.data.errors import FormatError
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
def evaluate(generated: str | None = typer.Option(None, help="Folder of generated images (folder mode)."),
             real: str | None = typer.Option(None, help="Folder of the real target images (folder mode)."),
             pairs: str | None = typer.Option(None, help="Pairs CSV (from,to) to match pair-named outputs."),
             annotations: str | None = typer.Option(None, help="Annotation CSV of the targets (masked metrics)."),
             model: str | None = typer.Option(None, help="Model mode: run directory, .safetensors or bundled name."),
             data: str | None = typer.Option(None, help="Model mode: dataset manifest YAML."),
             split: str = typer.Option("test", help="Model mode: split of the manifest to generate."),
             out: str | None = typer.Option(None, help="Model mode: also write the generated PNGs here."),
             limit: int | None = typer.Option(None, min=1, help="Model mode: score N pairs, evenly spaced."),
             target_layout: str = typer.Option("predicted", help="Model mode: predicted (S_B) | ground_truth."),
             edits: bool = typer.Option(True, help="Model mode: score SynthHumans' edit splits when present."),
             json_path: str | None = typer.Option(None, "--json", help="Write the report as JSON here."),
             markdown: str | None = typer.Option(None, help="Write the Markdown table here."),
             inception_weights: str | None = typer.Option(None, help="weights-inception-2015-12-05-6726825d.pth."),
             lpips_weights: str | None = typer.Option(None, help="torchvision alexnet-owt-7be5be79.pth."),
             batch_size: int = typer.Option(32, min=1, help="Pairs per batch."),
             crop_last_panel: bool = typer.Option(False, help="Score the last panel of side-by-side strips."),
             fid_reference: str | None = typer.Option(None, help="FID reference folder (default: the targets)."),
             keypoint_offset: tuple[int, int] = typer.Option((0, 0), help="(y, x) added to annotation joints."),
             device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, ...")) -> None:
    """Score generated images against real ones with the documented pipeline (docs/evaluation.md):
    a folder (--generated --real) or a model generating a dataset split (--model --data)."""
    from pathlib import Path

    from recapture.evaluation import EvaluationOptions, evaluate_folders, to_markdown, write_json, write_markdown
    from recapture.evaluation.generate import ModelEvaluationOptions, evaluate_model
    from recapture.hub import WeightsError

    options = EvaluationOptions(batch_size=batch_size, crop_last_panel=crop_last_panel, device=device,
                                inception_weights=Path(inception_weights) if inception_weights else None,
                                lpips_weights=Path(lpips_weights) if lpips_weights else None,
                                fid_reference=Path(fid_reference) if fid_reference else None,
                                keypoint_offset=keypoint_offset)
    try:
        if model is not None and data is not None and generated is None and real is None:
            report = evaluate_model(model, data, ModelEvaluationOptions(
                split=split, limit=limit, out_dir=Path(out) if out else None, target_layout=target_layout,
                edits=edits, metrics=options))
        elif generated is not None and real is not None and model is None and data is None:
            report = evaluate_folders(generated, real, pairs, annotations, options)
        else:
            raise ValueError("give either --generated DIR --real DIR, or --model RUN --data MANIFEST")
    except (ValueError, WeightsError) as exc:
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


@app.command("edit")
def edit(source: str = typer.Argument(..., help="Source portrait (a dataset image or a photo in the wild)."),
         pose: str = typer.Option(..., help="Target pose: preset name, FILE.csv:ROW, FILE.json or a photo."),
         out: str = typer.Option(..., help="Output PNG."),
         model: str = typer.Option("synthhumans", help="Bundled weights name, exported file or run directory."),
         pose_frame: str | None = typer.Option(None, help="HxW frame of --pose keypoints if not inferable."),
         source_pose: str | None = typer.Option(None, help="Source keypoints (FILE.csv:ROW or JSON) in its frame."),
         source_layout: str | None = typer.Option(None, help="Source parsing PNG (LIP labels)."),
         thinner: list[str] = typer.Option([], help="Part group to make thinner (x0.8): arms, legs, torso, body."),
         fatter: list[str] = typer.Option([], help="Part group to make fatter (x1.25)."),
         scale: list[str] = typer.Option([], help="GROUP=FACTOR, e.g. arms=0.9."),
         clothing: list[str] = typer.Option([], help="SLOT=CATEGORY, e.g. lower=skirt, upper=long_sleeves."),
         layout_out: str | None = typer.Option(None, help="Also write the (edited) target layout here."),
         attention: str | None = typer.Option(None, help="Y,X model-frame pixel: write its SAT attention map."),
         ) -> None:
    """Recapture a portrait in a new pose, with figure and clothing edits."""
    from pathlib import Path

    from recapture.pipelines.edit import EditRequest, attention_pixel, parse_frame, run_edit

    try:
        request = EditRequest(source=Path(source), pose=pose, out=Path(out), model=model,
                              pose_frame=parse_frame(pose_frame), source_pose=source_pose,
                              source_layout=Path(source_layout) if source_layout else None,
                              thinner=tuple(thinner), fatter=tuple(fatter), scale=tuple(scale),
                              clothing=tuple(clothing), layout_out=Path(layout_out) if layout_out else None,
                              attention=attention_pixel(attention))
        outcome = run_edit(request)
    except (ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo("wrote " + ", ".join(str(p) for p in outcome.written))


@app.command("video")
def video(source: str = typer.Option(..., help="Source portrait photo (or dataset image with --source-pose)."),
          reference: str = typer.Option(..., help="Reference video whose poses drive the source."),
          out: str = typer.Option(..., help="Output MP4 (same FPS as the reference)."),
          model: str = typer.Option("synthhumans", help="Bundled weights name, exported file or run directory."),
          source_pose: str | None = typer.Option(None, help="Source keypoints (FILE.csv:ROW or JSON)."),
          source_layout: str | None = typer.Option(None, help="Source parsing PNG (LIP labels)."),
          smoothing: bool = typer.Option(True, help="One-Euro smoothing of the estimated keypoints."),
          ) -> None:
    """Recapture a portrait with the poses of every frame of a reference video."""
    from recapture.pipelines.video import prepare_video_source, recapture_video
    from recapture.pipelines.recapture import Recapturer

    try:
        recapturer = Recapturer.from_pretrained(model)
        prepared = prepare_video_source(recapturer, source, source_pose, source_layout)
        result = recapture_video(recapturer, prepared, reference, out, smoothing=smoothing)
    except (ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote {result.path}: {result.frames} frames at {result.fps:g} FPS")


@app.command("demo")
def demo(out: str = typer.Option("demo-out", help="Folder for index.html and its images."),
         model: str = typer.Option("synthhumans", help="Bundled weights name, exported file or run directory."),
         wild: bool = typer.Option(True, help="Include the in-the-wild photo section."),
         ) -> None:
    """Offline tour: pose changes, figure and clothing edits, attention, video, a photo in the wild."""
    from recapture.demo import run_demo

    report = run_demo(out, model=model, wild=wild)
    typer.echo(f"wrote {report.index} and {len(report.files)} files in {report.seconds:.1f} s")


@app.command("serve")
def serve(port: int = typer.Option(7860, help="Port of the web editor."),
          model: str = typer.Option("synthhumans", help="Bundled weights name, exported file or run directory."),
          host: str = typer.Option("127.0.0.1", help="Address to bind (keep 127.0.0.1 unless you mean it)."),
          pose_file: list[str] = typer.Option([], help="Annotation CSV whose rows the page offers as poses."),
          device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, ...")) -> None:
    """Interactive web editor: pose, figure and clothing edits, attention maps (docs/app.md)."""
    from recapture.app.server import serve as run_server

    try:
        run_server(model=model, host=host, port=port, pose_files=pose_file, device=device)
    except (ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None

@app.command("export")
def export(run: str = typer.Argument(..., help="Training run directory (its newest checkpoint is exported)."),
           out: str = typer.Option(..., help="Output .safetensors file (config in its metadata)."),
           meta: list[str] = typer.Option([], help="KEY=VALUE metadata, e.g. trained_on=..., command=..."),
           ema: bool = typer.Option(True, help="Export the EMA generator when the run has one.")) -> None:
    """Package a run's generator as one file loadable by --model / Recapturer.from_pretrained."""
    from recapture.hub import WeightsError, export_generator

    pairs = [item.split("=", 1) for item in meta]
    if any(len(p) != 2 for p in pairs):
        typer.echo("error: --meta takes KEY=VALUE", err=True)
        raise typer.Exit(2)
    try:
        path = export_generator(run, out, dict(pairs), use_ema=ema)
    except WeightsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    app()
