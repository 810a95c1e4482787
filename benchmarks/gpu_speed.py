"""Issue 19's GPU numbers in one prepared run (for a lent GPU; nothing needs one): inference images/s of the
bundled ``default`` generator at 256x176 (fp32 and bf16 autocast, several batch sizes; the keypoint prior
is part of the forward, as in use) and training images/s of ``configs/default.yaml`` (fp32 and bf16; the
trainer's step of ``benchmarks/train_speed.py`` on random batches).

    python benchmarks/gpu_speed.py [--device cuda] [--batches 1 16 64] [--steps 10] [--out benchmarks/results/gpu_speed]

``--device cpu --batches 2 --steps 1 --train-batch 2`` checks the script on a CPU machine (its numbers say
nothing about a GPU). Results: JSON and Markdown beside ``--out``; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from pipeline_speed import generator_inputs
from recapture.fileio import atomic_write_text
from recapture.hub import load_generator
from train_speed import measure

ROOT = Path(__file__).resolve().parents[1]


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def inference(device: torch.device, batch: int, bf16: bool, steps: int) -> dict[str, object]:
    """Images/s of the ``default`` generator's forward on ``batch`` copies of one pair (median of ``steps``)."""
    loaded = load_generator("default")
    generator = loaded.generator.to(device).eval()
    tensors, keys = generator_inputs(loaded.config)
    tensors = [t.to(device).expand(batch, *t.shape[1:]).contiguous() for t in tensors]
    keys = {name: np.repeat(value, batch, axis=0) for name, value in keys.items()}
    times = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        for step in range(steps + 2):  # two warm-up calls
            synchronise(device)
            start = time.perf_counter()
            generator(*tensors, **keys)
            synchronise(device)
            if step >= 2:
                times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    result: dict[str, object] = {"batch": batch, "bf16": bf16, "size": "x".join(map(str, loaded.config.image_size)),
                                 "ms_per_batch": 1000 * seconds, "images_per_s": batch / seconds}
    if device.type == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--train-batch", type=int, default=32)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu_speed")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run this on a lent GPU machine (or --device cpu to check it)")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    report: dict[str, object] = {"device": name, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                 "torch": torch.__version__, "inference": [], "training": []}
    for bf16 in (False, True):
        for batch in args.batches:
            report["inference"].append(inference(device, batch, bf16, args.steps))  # type: ignore[union-attr]
        report["training"].append(measure("default", args.steps, args.train_batch, device, bf16))  # type: ignore[union-attr]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(report, indent=1) + "\n")
    lines = [f"# GPU speed on {name} ({report['date']}, torch {report['torch']})", "",
             "| what | batch | bf16 | ms per batch / iteration | images/s |", "|---|---|---|---|---|"]
    lines += [f"| inference `default` {r['size']} | {r['batch']} | {r['bf16']} | {r['ms_per_batch']:.1f} | "
              f"{r['images_per_s']:.1f} |" for r in report["inference"]]  # type: ignore[union-attr]
    lines += [f"| training `configs/default.yaml` {r['size']} | {r['batch']} | {r['bf16']} | "
              f"{1000 * float(r['seconds_per_iteration']):.1f} | {float(r['images_per_s']):.1f} |"
              for r in report["training"]]  # type: ignore[union-attr]
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
