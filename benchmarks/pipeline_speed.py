"""Speed of the whole photo path and of the generator (issue 19), with same-run baselines.

    python benchmarks/pipeline_speed.py [--photo PATH] [--cold 3] [--warm 5] [--repeats 5]
                                        [--baseline 544caa2] [--train-steps 3] [--out benchmarks/results]

Sections (all medians; the load average is recorded beside each, since the 2-core machine is shared):

* cold ``recapture edit`` on a 560x420 (H x W) photo: wall time of a fresh process (interpreter start
  included), its peak RSS and whether torch was imported, for the code as it is (``--backend torch``, and
  ``default`` with no ``--backend``: the default, onnxruntime, whose ONNX files are made once into a
  temporary ``RECAPTURE_CACHE`` before the timed runs, that time reported) and for the code at ``--baseline``
  (``git archive`` into a temporary folder, run with ``PYTHONPATH``; nothing in the checkout changes),
  alternating runs, the 1-minute load average recorded before each run; ratios to the baseline are of
  medians of the same run;
* warm per-photo time: models loaded once, photos recaptured in a loop through the API, with each stage's
  time (``PhotoResult.timings``);
* the generator at 256x176: GFLOPs (``FlopCounterMode``, 2 per multiply-add) and latency of eager torch
  (folded weights, ``inference_mode``; also unfolded and channels-last) against ONNX Runtime, for the
  bundled ``default`` model when shipped, else random weights of ``configs/default.yaml`` and
  ``configs/deepfashion.yaml`` (labelled);
* training images/s of ``configs/default.yaml`` at batch 8 (``benchmarks/train_speed.py``).

The photo is a CCP photo (``../shared/data/ccp/photos``) resized, or skimage's astronaut; it is written
to a temporary folder only. Targets (reported, not asserted): cold <= 0.5x the baseline and < 600 MiB,
warm < 0.4 s/photo, generator <= 0.3x PATN's 247.7 GFLOPs, training >= 4 img/s.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CCP_PHOTOS = ROOT.parent / "shared" / "data" / "ccp" / "photos"
PATN_GFLOPS = 247.7
PHOTO_SIZE = (560, 420)  # (H, W)
POSE = "hand_up"

#: Runs the command line in this process and prints its peak RSS and whether matplotlib was imported.
COLD = """
import json, resource, runpy, sys, time
sys.argv = ["recapture"] + sys.argv[1:]
code = 0
try:
    runpy.run_module("recapture", run_name="__main__")
except SystemExit as stop:
    code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
torch = sys.modules.get("torch")
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child of this (torch-loaded) benchmark would
# report at least the benchmark's own peak.
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
kib = int(status["VmHWM"].split()[0]) if "VmHWM" in status else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
peak = kib / 1024
print("COLD " + json.dumps({"exit": code, "peak_rss_mib": peak,
                            "matplotlib": "matplotlib" in sys.modules, "torch": torch is not None,
                            "threads": torch.get_num_threads() if torch is not None else None,
                            "package": sys.modules["recapture"].__file__}))
"""


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def median_times(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall seconds of each callable over ``repeats`` rounds after one warm-up round; the
    callables take turns within a round, so a change of load hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_index in range(repeats + 1):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            if round_index:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def make_photos(folder: Path, count: int, given: Path | None) -> list[Path]:
    """``count`` 560x420 JPEGs: CCP photos resized (cropped to the aspect), the given one, or the astronaut."""
    height, width = PHOTO_SIZE
    sources = [given] if given else sorted(CCP_PHOTOS.glob("*.jpg"))[:count] if CCP_PHOTOS.is_dir() else []
    images = [Image.open(p).convert("RGB") for p in sources]
    if not images:
        from skimage import data

        images = [Image.fromarray(data.astronaut())]
    paths = []
    for i in range(count):
        image = images[i % len(images)]
        scale = max(width / image.width, height / image.height)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
        left, top = (image.width - width) // 2, (image.height - height) // 2
        path = folder / f"photo_{i}.jpg"
        image.crop((left, top, left + width, top + height)).save(path, quality=95)
        paths.append(path)
    return paths


def baseline_tree(commit: str, folder: Path) -> Path | None:
    """The package source at ``commit`` (``git archive``, read-only), or None when git cannot give it."""
    archive = folder / "base.tar"
    done = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(archive), commit, "src"],
                          capture_output=True, text=True)
    if done.returncode:
        return None
    with tarfile.open(archive) as tar:
        tar.extractall(folder / "base", filter="data")
    return folder / "base" / "src"


def cold_edit(photo: Path, out: Path, model: str, pythonpath: Path | None, backend: str = "torch") -> dict[str, object]:
    """One fresh-process ``recapture edit``: wall seconds, peak RSS, matplotlib/torch imported or not."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RECAPTURE_THREADS")}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    args = ["edit", str(photo), "--pose", POSE, "--out", str(out), "--model", model]
    if pythonpath is None:  # the code as it is: torch named, onnxruntime as the default (no flag)
        args += ["--backend", "torch"] if backend == "torch" else []
    load = load1()
    wall, info, done = cold_command(args, env)
    if info.get("exit"):
        info["error"] = (done.stderr.strip().splitlines() or ["?"])[-1][:300]
    return {"wall_s": wall, "load1": load, **info}


def cold_command(args: list[str], env: dict[str, str],
                 timeout: float = 900) -> tuple[float, dict[str, object], subprocess.CompletedProcess]:
    """``recapture ARGS`` in a fresh process under :data:`COLD`: wall seconds, what COLD printed (exit, peak
    RSS, imports, threads) and the finished process."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", COLD, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)
    wall = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith("COLD ")]
    return wall, json.loads(lines[-1][5:]) if lines else {"exit": done.returncode}, done


def fill_onnx_cache(model: str) -> float:
    """Make the ONNX files of ``model`` and the parser in ``$RECAPTURE_CACHE`` (what a first onnxruntime run
    does); seconds."""
    from recapture.pipelines.onnx_parser import export_onnx_file

    start = time.perf_counter()
    for name in (model, "parser-ccp"):
        export_onnx_file(name)
    return time.perf_counter() - start


def cold_section(photo: Path, folder: Path, runs: int, models: list[str], baseline: str) -> dict[str, object]:
    base_src = baseline_tree(baseline, folder)
    export_s = fill_onnx_cache(models[-1])
    variants = [(f"now:{m} torch", m, None, "torch") for m in models] + [
        (f"now:{models[-1]}, no --backend (onnxruntime)", models[-1], None, "onnxruntime")]
    if base_src is not None:
        variants.append((f"{baseline}:synthhumans", "synthhumans", base_src, "torch"))
    samples: dict[str, list[dict[str, object]]] = {variant[0]: [] for variant in variants}
    for i in range(runs):  # alternate, so that a load spike hits every variant alike
        for name, model, path, backend in variants:
            samples[name].append(cold_edit(photo, folder / f"cold_{i}.png", model, path, backend))
    summary = {}
    for name, runs_of in samples.items():
        ok = [r for r in runs_of if not r.get("exit")]
        summary[name] = {
            "wall_s_median": statistics.median(r["wall_s"] for r in ok) if ok else None,
            "wall_s_all": [round(r["wall_s"], 2) for r in runs_of],
            "peak_rss_mib_median": statistics.median(r["peak_rss_mib"] for r in ok) if ok else None,
            "matplotlib_imported": any(r.get("matplotlib") for r in ok),
            "torch_imported": any(r.get("torch", True) for r in ok) if ok else None,
            "threads": ok[0]["threads"] if ok else None,
            "load1_median": statistics.median(float(r["load1"]) for r in runs_of),
            "errors": sorted({str(r["error"]) for r in runs_of if r.get("error")}),
        }
    base = summary.get(f"{baseline}:synthhumans", {}).get("wall_s_median")
    for values in summary.values():
        values["ratio_to_baseline"] = values["wall_s_median"] / base if base and values["wall_s_median"] else None
    return {"photo": f"{PHOTO_SIZE[0]}x{PHOTO_SIZE[1]}", "pose": POSE, "baseline": baseline, "runs": runs,
            "onnx_export_s": export_s, "variants": summary}


def warm_section(photos: list[Path], folder: Path, model: str, backend: str = "torch") -> dict[str, object]:
    """Per-photo time with the models loaded once (first photo excluded: it creates the MediaPipe graphs)."""
    from recapture.pipelines.edit import EditRequest, onnx_models
    from recapture.pipelines.photo import PhotoModels, PhotoRequest, run_photo
    from recapture.pipelines.poses import load_pose
    from recapture.pipelines.recapture import Recapturer

    start, load = time.perf_counter(), load1()
    if backend == "onnxruntime":  # the torch-free path of `recapture edit --backend onnxruntime`
        request = EditRequest(source=photos[0], pose=POSE, out=folder / "unused.jpg", model=model)
        recapturer, parser = onnx_models(request, torch.get_num_threads())
    else:
        recapturer, parser = Recapturer.from_pretrained(model), None
    load_s = time.perf_counter() - start
    target = load_pose(POSE).keypoints
    walls, stages = [], []
    with PhotoModels(recapturer, parser) as models, torch.inference_mode():
        for i, photo in enumerate(photos):
            start = time.perf_counter()
            found = run_photo(PhotoRequest(source=photo, target=target, out=folder / f"warm_{i}.jpg"), models)
            if i:
                walls.append(time.perf_counter() - start)
                stages.append(found.timings)
    names = list(dict.fromkeys(name for timing in stages for name in timing))
    return {"model": model, "backend": backend, "photos": len(walls), "model_load_s": load_s,
            "threads": torch.get_num_threads(),
            "load1_before": load, "load1_after": load1(),
            "per_photo_s_median": statistics.median(walls), "per_photo_s_all": [round(w, 3) for w in walls],
            "stages_s_median": {n: statistics.median(t.get(n, 0.0) for t in stages) for n in names}}


def generator_inputs(config: object) -> tuple[tuple[torch.Tensor, ...], dict[str, np.ndarray]]:
    from recapture.body.keypoints import keypoints_to_heatmaps
    from recapture.pipelines.onnx_backend import example_inputs
    from recapture.pipelines.poses import fit_keypoints, preset_library

    size = tuple(config.image_size)  # type: ignore[attr-defined]
    presets = preset_library()
    keypoints = [fit_keypoints(presets[n].keypoints, presets[n].frame, size) for n in ("front", POSE)]
    image, layout = example_inputs(config)[:2]  # type: ignore[arg-type]
    poses = [keypoints_to_heatmaps(k, size)[None] for k in keypoints]
    return (image, layout, poses[0], poses[1]), {"source_keypoints": keypoints[0][None],
                                                 "target_keypoints": keypoints[1][None]}


def generator_section(label: str, loaded: object, unfolded: torch.nn.Module, folder: Path,
                      repeats: int) -> dict[str, object]:
    from torch.utils.flop_counter import FlopCounterMode

    from recapture.pipelines.onnx_backend import OnnxGenerator, dense_sat, export_onnx

    generator, config = loaded.generator, loaded.config  # type: ignore[attr-defined]
    inputs, keys = generator_inputs(config)

    def run(g: object, *tensors: torch.Tensor) -> Callable[[], object]:
        return lambda: g(*tensors, **keys)  # type: ignore[operator]

    def flops(g: torch.nn.Module) -> float:
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            g(*inputs, **keys)
        return counter.get_total_flops() / 1e9

    result: dict[str, object] = {"model": label, "size": "x".join(map(str, config.image_size)),
                                 "internal_size": "x".join(map(str, config.network_size)),
                                 "params_m": sum(p.numel() for p in generator.parameters()) / 1e6,
                                 "threads": torch.get_num_threads(), "load1_before": load1()}
    result["gflops_torch"] = flops(generator)
    with dense_sat(generator):
        result["gflops_onnx_graph"] = flops(generator)
    result["patn_ratio"] = result["gflops_torch"] / PATN_GFLOPS
    start = time.perf_counter()
    path = export_onnx(loaded, folder / f"{label.split()[0]}.onnx").path  # type: ignore[arg-type]
    result["onnx_export_s"] = time.perf_counter() - start
    result["onnx_mib"] = path.stat().st_size / 2**20
    last = [t.contiguous(memory_format=torch.channels_last) for t in inputs]
    runs = {"torch_ms": run(generator, *inputs), "torch_unfolded_ms": run(unfolded.eval(), *inputs),
            "torch_channels_last_ms": run(copy.deepcopy(generator).to(memory_format=torch.channels_last), *last)}
    if config.appearance == "correspondence":  # its export is the appearance network (+ the NumPy prior)
        from recapture.pipelines.onnx_photo import OnnxCorrespondence

        runtime = OnnxCorrespondence(path, torch.get_num_threads())
        image = ((inputs[0][0].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
        labels = inputs[1][0].argmax(0).numpy()
        points = keys["source_keypoints"][0], keys["target_keypoints"][0]
        runs["torch_appearance_ms"] = lambda: generator.render(inputs[0], inputs[1], inputs[2], inputs[1], inputs[3],
                                                               **keys)
        runs["onnxruntime_ms"] = lambda: runtime(image, labels, *points, labels, soft_target=True)
        result["onnx_scope"] = "appearance only (vs torch_appearance_ms)"
    else:
        runs["onnxruntime_ms"] = run(OnnxGenerator(path), *inputs)
        result["onnx_scope"] = "geometric + appearance (vs torch_ms)"
    with torch.inference_mode():
        result.update({name: 1000 * seconds for name, seconds in median_times(runs, repeats).items()})
    result["load1_after"] = load1()
    return result


def loaded_generators() -> list[tuple[str, object, torch.nn.Module]]:
    """(label, folded LoadedGenerator, the same weights unfolded): the bundled ``default`` model when
    shipped, else labelled random-weight stand-ins."""
    from recapture.config import load_config
    from recapture.hub import LoadedGenerator, bundled_models, bundled_path, load_generator, read_model_file
    from recapture.models.generator import RecaptureGenerator
    from recapture.models.inference import prepare_for_inference

    if "default" in bundled_models("generator"):
        loaded = load_generator("default")
        unfolded = RecaptureGenerator(loaded.config)
        weights, _ = read_model_file(bundled_path("default"))
        unfolded.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in weights.items()})
        return [("default (bundled weights)", loaded, unfolded)]
    found = []
    for preset in ("default", "deepfashion"):
        path = ROOT / "configs" / f"{preset}.yaml"
        if path.is_file():
            torch.manual_seed(0)
            config = load_config(path).model
            unfolded = RecaptureGenerator(config).eval()
            generator = prepare_for_inference(copy.deepcopy(unfolded))
            found.append((f"{preset} (configs/{preset}.yaml, RANDOM weights)",
                          LoadedGenerator(generator, config, str(path), {}), unfolded))
    return found


def train_section(steps: int) -> dict[str, object]:
    path = ROOT / "configs" / "default.yaml"
    if not path.is_file() or steps < 1:
        return {"skipped": "no configs/default.yaml" if steps else "--train-steps 0"}
    spec = importlib.util.spec_from_file_location("train_speed", ROOT / "benchmarks" / "train_speed.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    start_load = load1()
    try:
        found = module.measure("default", steps, 8, torch.device("cpu"), False)
    except Exception as error:  # noqa: BLE001 - a benchmark reports what failed and goes on
        return {"error": f"{type(error).__name__}: {error}"}
    return {**found, "steps": steps, "load1_before": start_load, "load1_after": load1()}


def to_markdown(report: dict[str, object]) -> str:
    """The report as Markdown tables."""
    lines = [f"# Pipeline speed ({report['date']})", "",
             f"{report['machine']}; load average (1 min) at start {report['load1_start']:.2f}, at end "
             f"{report['load1_end']:.2f} - a shared 2-core machine: medians, not "
             "best cases.", ""]
    cold = report.get("cold")
    if isinstance(cold, dict):
        lines += [f"## Cold `recapture edit` ({cold['photo']} photo, pose {cold['pose']}, {cold['runs']} runs each)",
                  "", "| code:model | wall s (median) | / baseline | all runs | load1 (median) | peak RSS MiB | "
                  "torch | matplotlib | threads |", "|---|---|---|---|---|---|---|---|---|"]
        for name, v in cold["variants"].items():
            wall = f"{v['wall_s_median']:.2f}" if v["wall_s_median"] else "failed"
            rss = f"{v['peak_rss_mib_median']:.0f}" if v["peak_rss_mib_median"] else "-"
            ratio = f"{v['ratio_to_baseline']:.2f}" if v.get("ratio_to_baseline") else "-"
            lines.append(f"| {name} | {wall} | {ratio} | {v['wall_s_all']} | {v['load1_median']:.1f} | {rss} | "
                         f"{v['torch_imported']} | {v['matplotlib_imported']} | {v['threads']} |")
            lines += [f"|  | error: {e} | | | | | | | |" for e in v["errors"]]
        lines += ["", f"The onnxruntime runs read ONNX files made once before them ({cold['onnx_export_s']:.1f} s, "
                  "what a first run spends, importing torch once).", ""]
    warm = [w for w in report.get("warm") or [] if "per_photo_s_median" in w]
    if warm:
        lines += [f"## Warm (models loaded once, through the API; median over {warm[0]['photos']} photos after "
                  "a first one)", "", "| | " + " | ".join(f"`{w['model']}` {w['backend']}" for w in warm) + " |",
                  "|---" * (len(warm) + 1) + "|",
                  "| load1 before / after | " + " | ".join(f"{w['load1_before']:.1f} / {w['load1_after']:.1f}"
                                                             for w in warm) + " |",
                  "| model load s | " + " | ".join(f"{w['model_load_s']:.2f}" for w in warm) + " |",
                  "| **per photo s** | " + " | ".join(f"**{w['per_photo_s_median']:.3f}**" for w in warm) + " |",
                  "| per photo s, best | " + " | ".join(f"{min(w['per_photo_s_all']):.3f}" for w in warm) + " |",
                  "| threads | " + " | ".join(str(w.get("threads")) for w in warm) + " |"]
        for stage in dict.fromkeys(k for w in warm for k in w["stages_s_median"]):
            lines.append(f"| {stage} | " + " | ".join(f"{w['stages_s_median'].get(stage, 0):.4f}" for w in warm) + " |")
        per_photo = {w["backend"]: w["per_photo_s_median"] for w in warm}
        if {"torch", "onnxruntime"} <= set(per_photo):
            ratio = per_photo["onnxruntime"] / per_photo["torch"]
            lines += ["", f"onnxruntime / torch per photo (same run): {ratio:.2f}"]
        lines.append("")
    lines += [f"warm not measured: {w}" for w in report.get("warm") or [] if "per_photo_s_median" not in w]
    gens = report.get("generator") or []
    if gens:
        lines += [f"## Generator, batch 1 (median of {report['repeats']} runs)", "",
                  "| model | size (internal) | params M | GFLOPs torch | / PATN 247.7 | GFLOPs ONNX graph | "
                  "torch ms | torch unfolded ms | torch channels-last ms | torch appearance ms | onnxruntime ms "
                  "(scope) | threads | load1 before / after |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for g in gens:
            if "error" in g:
                lines.append(f"| {g['model']} | error: {g['error']} |" + " |" * 11)
                continue
            lines.append(f"| {g['model']} | {g['size']} ({g['internal_size']}) | {g['params_m']:.1f} | "
                         f"{g['gflops_torch']:.1f} | {g['patn_ratio']:.3f} | {g['gflops_onnx_graph']:.1f} | "
                         f"{g['torch_ms']:.0f} | {g['torch_unfolded_ms']:.0f} | {g['torch_channels_last_ms']:.0f} | "
                         f"{g.get('torch_appearance_ms', float('nan')):.0f} | {g['onnxruntime_ms']:.0f} "
                         f"({g['onnx_scope']}) | {g['threads']} | {g['load1_before']:.1f} / {g['load1_after']:.1f} |")
        lines.append("")
    train = report.get("train")
    if isinstance(train, dict):
        lines += ["## Training (configs/default.yaml, batch 8, random data)", ""]
        lines.append(f"{train['images_per_s']:.2f} images/s ({train['seconds_per_iteration']:.2f} s/iteration, "
                     f"{train['steps']} steps)" if "images_per_s" in train else f"not measured: {train}")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, help="photo to resize to 560x420 (default: CCP photos / astronaut)")
    parser.add_argument("--cold", type=int, default=3, help="cold runs per variant (0 = skip)")
    parser.add_argument("--warm", type=int, default=5, help="photos in the warm loop (0 = skip)")
    parser.add_argument("--repeats", type=int, default=5, help="generator timings per variant")
    parser.add_argument("--baseline", default="544caa2", help="commit whose cold edit time is the baseline")
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--skip-generator", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="threads in this process (default: policy)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    from recapture.hub import bundled_models
    from recapture.models.inference import apply_thread_policy

    policy = apply_thread_policy(args.threads)
    report: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": f"{platform.processor() or 'cpu'}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}", "load1_start": load1(), "repeats": args.repeats,
        "thread_policy": {"threads": policy.threads, "source": policy.source, "load": policy.load}}
    with tempfile.TemporaryDirectory(prefix="recapture-bench-") as name:
        folder = Path(name)
        os.environ["RECAPTURE_CACHE"] = str(folder / "cache")  # the ONNX files: made here, never in the user's cache
        photos = make_photos(folder, max(2, args.warm + 1), args.photo)
        models = ["synthhumans"] + (["default"] if "default" in bundled_models("generator") else [])
        if args.cold:
            report["cold"] = cold_section(photos[0], folder, args.cold, models, args.baseline)
        report["warm"] = []
        if args.warm and not args.cold:
            report["onnx_export_s"] = fill_onnx_cache(models[-1])
        for backend in ("torch", "onnxruntime") if args.warm else ():
            try:
                report["warm"].append(warm_section(photos[: args.warm + 1], folder, models[-1], backend))
            except (ImportError, ValueError) as error:
                report["warm"].append({"backend": backend, "error": f"{type(error).__name__}: {error}"})
        if not args.skip_generator:
            gens = []
            for label, loaded, unfolded in loaded_generators():
                try:
                    gens.append(generator_section(label, loaded, unfolded, folder, args.repeats))
                except Exception as error:  # noqa: BLE001 - report the failure, keep the other numbers
                    gens.append({"model": label, "error": f"{type(error).__name__}: {error}"})
            report["generator"] = gens
        report["train"] = train_section(args.train_steps)
    report["load1_end"] = load1()
    args.out.mkdir(parents=True, exist_ok=True)
    from recapture.fileio import atomic_write_text

    atomic_write_text(args.out / "pipeline_speed.json", json.dumps(report, indent=2) + "\n")
    markdown = to_markdown(report)
    atomic_write_text(args.out / "pipeline_speed.md", markdown + "\n")
    print(markdown)


if __name__ == "__main__":
    main()
