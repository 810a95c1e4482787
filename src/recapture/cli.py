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


BACKENDS = ("torch", "onnxruntime")


def _runtime(threads: int | None, backend: str = "torch") -> None:
    """Check the backend name and apply the thread policy once, at a command's start (docs/performance.md)."""
    from recapture.models.inference import apply_thread_policy

    if backend not in BACKENDS:
        raise ValueError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    apply_thread_policy(threads)


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
          resume: str | None = typer.Option(None, help="Run directory to continue exactly where it stopped."),
          force: bool = typer.Option(False, help="Start over in a non-empty run folder (the old one is renamed "
                                                 "aside, never deleted).")) -> None:
    """Train (also under torchrun: `torchrun --nproc_per_node=K -m recapture train ...`)."""
    from recapture.config import ConfigError
    from recapture.data.errors import FormatError
    from recapture.devices import DeviceError
    from recapture.training.checkpoint import CheckpointError
    from recapture.training.run import run_training
    from recapture.training.trainer import TrainingError

    if config is None and resume is None:
        typer.echo("error: give --config PRESET or --resume RUN_DIR", err=True)
        raise typer.Exit(2)
    try:
        result = run_training(config, overrides, resume, force, say=lambda line: typer.echo(line, err=True))
    except (ConfigError, FormatError, TrainingError, CheckpointError, DeviceError, OSError) as exc:
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
             inception_weights: str | None = typer.Option(None, help="IS only: weights-inception-2015-12-05-6726825d.pth."),
             lpips_weights: str | None = typer.Option(None, help="torchvision alexnet-owt-7be5be79.pth."),
             batch_size: int = typer.Option(32, min=1, help="Pairs per batch."),
             panel: int = typer.Option(1, help="Strips: score panel K (1-based; -1 = last) of --panels N."),
             panels: int = typer.Option(1, min=1, help="Strips: N equal panels side by side (1 = whole image)."),
             panel_gap: int = typer.Option(0, min=0, help="Strips: px between panels (width = N*panel + (N-1)*gap)."),
             inception_distance: bool = typer.Option(True, help="--no-inception-distance: skip the paired distance."),
             baselines: bool = typer.Option(False, help="Also score the floors (all-white, copy-source, ...)."),
             source_layouts: str | None = typer.Option(None, help="Floors: sources' layout PNGs (the warp floor)."),
             label_set: str = typer.Option("lip20", help="Floors: label set of --source-layouts."),
             strict: bool = typer.Option(False, help="Fail when a pair has no file or a file no pair."),
             cache_dir: str | None = typer.Option(None, help="Feature cache (default ~/.cache/recapture/features)."),
             cache: bool = typer.Option(True, help="--no-cache: do not read or write the feature cache."),
             fid_reference: str | None = typer.Option(None, help="FID reference folder (default: the targets)."),
             keypoint_offset: tuple[int, int] = typer.Option((0, 0), help="(y, x) added to annotation joints."),
             device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, ..."),
             backend: str = typer.Option("torch", help="torch | onnxruntime (CPU, no attention maps)."),
             threads: int | None = typer.Option(None, min=1, help="Threads (default: $RECAPTURE_THREADS or free cores)."),
             ) -> None:
    """Score generated images against real ones with the documented pipeline (docs/evaluation.md):
    a folder (--generated --real) or a model generating a dataset split (--model --data)."""
    from pathlib import Path

    from recapture.evaluation import (EvaluationOptions, Panels, evaluate_folders, to_markdown, write_json,
                                      write_markdown)
    from recapture.devices import check_device
    from recapture.fileio import check_output_dir, check_output_file

    try:
        options = EvaluationOptions(batch_size=batch_size, panels=Panels(panel, panels, panel_gap), device=device,
                                    inception_weights=Path(inception_weights) if inception_weights else None,
                                    lpips_weights=Path(lpips_weights) if lpips_weights else None,
                                    fid_reference=Path(fid_reference) if fid_reference else None,
                                    keypoint_offset=keypoint_offset, baselines=baselines, strict=strict,
                                    inception_distance=inception_distance,
                                    source_layouts=Path(source_layouts) if source_layouts else None,
                                    label_set=label_set,
                                    cache_dir=Path(cache_dir) if cache_dir else None, use_cache=cache)
        _runtime(threads, backend)
        check_device(device)
        for path, what in ((json_path, "--json"), (markdown, "--markdown")):
            if path:
                check_output_file(path, what)
        if out:
            check_output_dir(out, "--out")
        if model is not None and data is not None and generated is None and real is None:
            from recapture.evaluation.generate import ModelEvaluationOptions, evaluate_model

            if backend == "onnxruntime":
                from recapture.pipelines.onnx_backend import load_onnx_generator

                model = load_onnx_generator(model)  # type: ignore[assignment]
            report = evaluate_model(model, data, ModelEvaluationOptions(
                split=split, limit=limit, out_dir=Path(out) if out else None, target_layout=target_layout,
                edits=edits, metrics=options))
        elif generated is not None and real is not None and model is None and data is None:
            report = evaluate_folders(generated, real, pairs, annotations, options)
        else:
            raise ValueError("give either --generated DIR --real DIR, or --model RUN --data MANIFEST")
    except (ValueError, FileNotFoundError) as exc:  # FileNotFoundError: also recapture.hub.WeightsError
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
          size: str = typer.Option("256x176", help="HxW: 256x176 (DeepFashion) or 128x64 (Market); sides 16-1024."),
          labels: str = typer.Option("lip20", help="Label set of the layouts: lip20 | market7."),
          seed: int = typer.Option(0, help="Same seed -> byte-identical files."),
          workers: int = typer.Option(1, min=1, help="Worker processes."),
          background: str = typer.Option("plain", help="plain (studio) | cluttered (street)."),
          preview: str | None = typer.Option(None, help="Write a contact sheet PNG here instead."),
          overwrite: bool = typer.Option(False, help="Replace an earlier SynthHumans dataset in --out (only a "
                                                     "folder holding its manifest.yaml is cleared).")) -> None:
    """Write SynthHumans, a procedural dataset with ground truth (docs/synthhumans.md)."""
    from recapture.data.synthetic import SynthConfig, generate, parse_size, write_preview

    try:
        if preview is not None:
            typer.echo(f"wrote {write_preview(preview, seed, parse_size(size), background=background)}")
            return
        if out is None:
            raise ValueError("give --out DIR (or --preview PNG)")
        summary = generate(SynthConfig(out, people, poses, parse_size(size), labels, seed, workers, background,
                                       overwrite=overwrite))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    counts = ", ".join(f"{split} {count}" for split, count in summary.images.items())
    typer.echo(f"wrote {summary.total_images} images ({counts}) in {summary.seconds:.1f} s; {summary.manifest}")


@app.command("edit")
def edit(source: str = typer.Argument(..., help="Source portrait (a dataset image or a photo in the wild)."),
         pose: str = typer.Option(..., help="Target pose: preset name, FILE.csv:ROW, FILE.json or a photo."),
         out: str = typer.Option(..., help="Output image (.jpg, .png, .webp, .tif, .bmp)."),
         model: str = typer.Option("default", help="Bundled weights name, exported file or run directory."),
         pose_frame: str | None = typer.Option(None, help="HxW frame of --pose keypoints if not inferable."),
         source_pose: str | None = typer.Option(None, help="Source keypoints (FILE.csv:ROW or JSON) in its frame."),
         source_layout: str | None = typer.Option(None, help="Source parsing PNG (LIP labels)."),
         thinner: list[str] = typer.Option([], help="Part group to make thinner (x0.8): arms, legs, torso, body."),
         fatter: list[str] = typer.Option([], help="Part group to make fatter (x1.25)."),
         scale: list[str] = typer.Option([], help="GROUP=FACTOR, e.g. arms=0.9."),
         clothing: list[str] = typer.Option([], help="SLOT=CATEGORY, e.g. lower=skirt, upper=long_sleeves."),
         layout_out: str | None = typer.Option(None, help="Also write the (edited) target layout here."),
         attention: str | None = typer.Option(None, help="Y,X model-frame pixel: write its SAT attention map."),
         parser: str | None = typer.Option(None, help="ccp | pose-mask | FILE (default: ccp when bundled)."),
         person: int = typer.Option(0, min=0, help="Which person: 0 = the largest, 1 = the next, ..."),
         allow_invent: bool = typer.Option(False, "--allow-invent", help="Let the model draw body parts the photo "
                                           "does not show (default: keep the photo's framing)."),
         no_retarget: bool = typer.Option(False, "--no-retarget", help="Use the target's own bone lengths "
                                          "(default: the subject's)."),
         invented_mask: str | None = typer.Option(None, help="Write a PNG of the invented (not copied) pixels."),
         quality: int = typer.Option(95, min=1, max=100, help="JPEG / WebP quality of the output."),
         verbose: bool = typer.Option(False, "--verbose", help="Show third-party (MediaPipe, TF Lite) log lines."),
         overwrite: bool = typer.Option(False, help="Allow --out to replace the source photo itself."),
         backend: str = typer.Option("auto", help="auto (onnxruntime when installed and the model runs on it, "
                                     "else torch) | torch | onnxruntime (CPU, no attention maps)."),
         threads: int | None = typer.Option(None, min=1, help="Threads (default: $RECAPTURE_THREADS or free cores)."),
         method: str = typer.Option("model", help="model (the networks) | warp (training-free keypoint part-affine "
                                    "warp of the source: the floor)."),
         layout: str = typer.Option("prior", help="Target layout of a photo: prior (keypoint warp of its parsing) | "
                                    "network (the geometric network's correction of it) | auto (network when the "
                                    "pose changes by over 0.1 torso lengths, else prior)."),
         ) -> None:
    """Recapture a portrait in a new pose, with figure and clothing edits (docs/cli.md)."""
    from pathlib import Path

    from recapture.pipelines.edit import (EditRequest, attention_pixel, check_outputs, choose_backend, parse_frame,
                                          run_edit)

    try:
        request = EditRequest(source=Path(source), pose=pose, out=Path(out), model=model,
                              pose_frame=parse_frame(pose_frame), source_pose=source_pose,
                              source_layout=Path(source_layout) if source_layout else None,
                              thinner=tuple(thinner), fatter=tuple(fatter), scale=tuple(scale),
                              clothing=tuple(clothing), layout_out=Path(layout_out) if layout_out else None,
                              attention=attention_pixel(attention), parser=parser, person=person,
                              allow_invent=allow_invent, retarget=not no_retarget,
                              invented_mask=Path(invented_mask) if invented_mask else None, quality=quality,
                              verbose=verbose, overwrite=overwrite, method=method,
                              layout=layout)
        check_outputs(request)  # before any model is loaded or exported
        from recapture.models.inference import resolve_threads

        chosen = choose_backend(request, backend, resolve_threads(threads).threads)
        if chosen.made:  # a first run: torch imported once to export them (docs/performance.md)
            typer.echo(f"note: made {len(chosen.made)} ONNX file(s) in {chosen.made[0].parent} (first run: later "
                       "runs skip torch)", err=True)
        if chosen.name == "onnxruntime":  # no torch import once the ONNX files are cached
            outcome = run_edit(request, chosen.recapturer, chosen.parser)
        else:
            _runtime(threads)
            import torch

            with torch.inference_mode():
                outcome = run_edit(request)
    except (ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for message in outcome.photo.messages if outcome.photo else ():
        typer.echo(f"warning: {message}", err=True)
    typer.echo("wrote " + ", ".join(str(p) for p in outcome.written))
    why = f" ({chosen.note})" if chosen.note and backend == "auto" else ""
    if outcome.photo is not None:
        typer.echo(f"{outcome.photo.summary()}, backend {chosen.name}{why}")
    elif why:
        typer.echo(f"backend {chosen.name}{why}")


@app.command("parse")
def parse(images: list[str] = typer.Argument(..., help="Photos, or folders of photos."),
          out: str = typer.Option(..., help="Output folder: STEM.png (LIP-20 layout), STEM.json (keypoints)."),
          parser: str = typer.Option("ccp", help="ccp (learned, bundled), pose-mask (fallback), or a FILE."),
          person: int = typer.Option(0, help="Which person to parse: 0 = the largest, 1 = the next, ..."),
          json_output: bool = typer.Option(False, "--json", help="Print one JSON object per photo."),
          visualize: bool = typer.Option(False, help="Also write STEM-overlay.jpg (colours + skeleton)."),
          backend: str = typer.Option("auto", help="auto (ccp on onnxruntime, int8, when it can run; else torch) | "
                                      "torch | onnxruntime."),
          threads: int | None = typer.Option(None, min=1, help="Threads (default: $RECAPTURE_THREADS or free cores)."),
          verbose: bool = typer.Option(False, "--verbose", help="Show third-party (MediaPipe, TF Lite) log lines."),
          ) -> None:
    """Parse people in photos into LIP-20 layouts and keypoints (exit code 1 if a photo has no person)."""
    import json

    from recapture.hub import WeightsError
    from recapture.pipelines.parse_files import parse_files

    try:
        from recapture.models.inference import resolve_threads

        done = parse_files(images, out, parser, person, visualize, backend, resolve_threads(threads).threads, verbose)
    except (ValueError, FileNotFoundError, WeightsError, RuntimeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for item in done:
        if item.error:
            typer.echo(f"error: {item.error}", err=True)
        elif json_output:
            typer.echo(json.dumps({"photo": str(item.photo), "layout": str(item.layout),
                                   "keypoints": str(item.keypoints), "overlay": str(item.overlay) if item.overlay else None, "people": item.people,
                                   "person": item.person, "confidence": item.confidence}))
        else:
            typer.echo(f"{item.photo}: {item.people} {'person' if item.people == 1 else 'people'}, parsed person "
                       f"{item.person} -> {item.layout}, {item.keypoints}")
    raise typer.Exit(1 if any(item.error for item in done) else 0)


@app.command("video")
def video(source: str = typer.Option(..., help="Source portrait photo (or dataset image with --source-pose)."),
          reference: str = typer.Option(..., help="Reference video whose poses drive the source."),
          out: str = typer.Option(..., help="Output MP4 (same FPS as the reference, its audio copied)."),
          model: str = typer.Option("default", help="Bundled weights name, exported file or run directory."),
          source_pose: str | None = typer.Option(None, help="Source keypoints (FILE.csv:ROW or JSON)."),
          source_layout: str | None = typer.Option(None, help="Source parsing PNG (LIP labels)."),
          smoothing: bool = typer.Option(True, help="One-Euro smoothing of the estimated keypoints."),
          size: int = typer.Option(1080, min=16, help="Cap on the output's long side (pixels)."),
          parser: str | None = typer.Option(None, help="ccp | pose-mask | FILE (default: ccp when bundled)."),
          person: int = typer.Option(0, min=0, help="Which person of the photo: 0 = the largest, ..."),
          allow_invent: bool = typer.Option(False, "--allow-invent", help="Let the model draw body parts the photo "
                                            "does not show (default: keep the photo's framing)."),
          no_retarget: bool = typer.Option(False, "--no-retarget", help="Use the reference's bone lengths "
                                           "(default: the subject's)."),
          verbose: bool = typer.Option(False, "--verbose", help="Show third-party (MediaPipe, TF Lite) log lines."),
          threads: int | None = typer.Option(None, min=1, help="Threads (default: $RECAPTURE_THREADS or free cores)."),
          layout: str = typer.Option("prior", help="Target layout of each frame: prior | network | auto (as edit)."),
          ) -> None:
    """Re-pose the person of a photo with the poses of every frame of a reference video, in the photo's scene."""
    from recapture.fileio import check_output_file
    from recapture.pipelines.video import run_video_command

    try:
        _runtime(threads)
        check_output_file(out, "--out", inputs=[source, reference])
        result = run_video_command(source, reference, out, model=model, source_pose=source_pose,
                                   source_layout=source_layout, smoothing=smoothing, size=size, parser=parser,
                                   person=person, allow_invent=allow_invent, retarget=not no_retarget,
                                   verbose=verbose, layout=layout)
    except (ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for message in result.messages:
        typer.echo(f"warning: {message}", err=True)
    typer.echo(f"wrote {result.path}")
    typer.echo(result.summary())


@app.command("demo")
def demo(out: str = typer.Option("demo-out", help="Folder for index.html and its images."),
         model: str = typer.Option("synthhumans", help="Bundled weights name, exported file or run directory."),
         wild: bool = typer.Option(True, help="Include the real people (bundled photos, the default model)."),
         threads: int | None = typer.Option(None, min=1, help="Threads (default: $RECAPTURE_THREADS or free cores)."),
         ) -> None:
    """Offline tour: real people re-posed and edited, then pose changes, edits, attention, video (synthetic)."""
    from recapture.demo import run_demo

    try:
        _runtime(threads)
        report = run_demo(out, model=model, wild=wild)
    except (ValueError, FileNotFoundError) as exc:  # bad --out / --model (WeightsError is a FileNotFoundError)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except Exception as exc:  # noqa: BLE001 - anything deep inside: one line, and --out left as it was
        reason = " ".join(str(exc).split())[:300] or "no message"
        typer.echo(f"error: the demo failed ({type(exc).__name__}: {reason}); {out} was left unchanged", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote {report.index} and {len(report.files)} files in {report.seconds:.1f} s")


@app.command("serve")
def serve(port: int = typer.Option(7860, min=1, max=65535, help="Port of the web editor (1-65535)."),
          model: str = typer.Option("default", help="Bundled weights name, exported file or run directory."),
          host: str = typer.Option("127.0.0.1", help="Address to bind (keep 127.0.0.1 unless you mean it)."),
          pose_file: list[str] = typer.Option([], help="Annotation CSV whose rows the page offers as poses."),
          device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, ..."),
          threads: int | None = typer.Option(None, min=1, help="Threads (default: $RECAPTURE_THREADS or free cores)."),
          ) -> None:
    """Interactive web editor: pose, figure and clothing edits, attention maps (docs/app.md)."""
    from recapture.app.server import serve as run_server

    try:
        _runtime(threads)
        run_server(model=model, host=host, port=port, pose_files=pose_file, device=device)
    except (ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None

@app.command("export")
def export(model: str = typer.Argument(..., help="Run directory (newest checkpoint); with --format onnx also a "
                                                 ".safetensors file or a bundled name (parser-ccp: the parser)."),
           out: str | None = typer.Option(None, help="Output file: .safetensors (config in its metadata) or .onnx "
                                                     "(default with --format onnx: the ONNX cache, "
                                                     "docs/performance.md)."),
           file_format: str = typer.Option("safetensors", "--format", help="safetensors | onnx (generator graph, "
                                                                    "dense SAT; docs/performance.md)."),
           meta: list[str] = typer.Option([], help="KEY=VALUE metadata, e.g. trained_on=..., command=..."),
           ema: bool = typer.Option(True, help="Export the EMA generator when the run has one.")) -> None:
    """Package a run's generator as one file loadable by --model / Recapturer.from_pretrained, or as ONNX."""
    from recapture.hub import WeightsError, export_generator

    pairs = [item.split("=", 1) for item in meta]
    if any(len(p) != 2 for p in pairs) or file_format not in ("safetensors", "onnx") or (
            out is None and file_format != "onnx"):
        typer.echo("error: --meta takes KEY=VALUE; --format is safetensors or onnx; --out is needed for safetensors",
                   err=True)
        raise typer.Exit(2)
    try:
        if file_format == "onnx":
            from recapture.pipelines.onnx_parser import export_onnx_file

            path = export_onnx_file(model, out)
        else:
            path = export_generator(model, out, dict(pairs), use_ema=ema)
    except (WeightsError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    app()
