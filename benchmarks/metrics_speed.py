"""How long `recapture evaluate` takes to score N generated 256x176 images (issue 17: 1,000 in < 3 min on 2 threads).

    python benchmarks/metrics_speed.py [--count 1000] [--threads 2] [--work runs/metrics_speed] [--baselines]

Writes N smooth synthetic "real" images and N perturbed "generated" ones (same names, matched by name),
fills the feature cache with the real images' features (what a previous run on the same test set
leaves), then times one `evaluate_folders` run: matching, reading, hashing, L1/PSNR/SSIM, masked
metrics off, FID and KID (generated side computed, real side from the cache) and inception_distance
(both sides computed: stage maps are not cached). Prints the wall time, the process CPU time (a quiet
machine's wall time is about CPU / threads: ``quiet_estimate_seconds``) and images per second, and writes
benchmarks/results/metrics_speed.{json,md} (``--out`` to change; ``--no-inception-distance`` to time
the run without the paired distance).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from recapture.evaluation import EvaluationOptions, FeatureCache, evaluate_folders, file_digest
from recapture.evaluation.options import CACHE_NAMESPACE
from recapture.models.inception import load_inception

SIZE = (256, 176)


def write_images(work: Path, count: int, seed: int = 0) -> tuple[Path, Path]:
    """``count`` real images (smooth colour fields with a few boxes) and noisy, shifted copies as generated."""
    real_dir, generated_dir = work / "real", work / "generated"
    real_dir.mkdir(parents=True, exist_ok=True)
    generated_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        name = f"img_{i:05d}.png"
        if (real_dir / name).exists() and (generated_dir / name).exists():
            continue
        field = Image.fromarray(rng.integers(0, 256, (6, 4, 3), dtype=np.uint8)).resize(SIZE[::-1], Image.BICUBIC)
        real = np.array(field)
        for _ in range(3):
            y, x = rng.integers(0, SIZE[0] - 40), rng.integers(0, SIZE[1] - 30)
            real[y:y + 40, x:x + 30] = rng.integers(0, 256, 3)
        generated = np.roll(real, int(rng.integers(-4, 5)), axis=1).astype(np.float64)
        generated = np.clip(generated + rng.normal(0, 12, real.shape), 0, 255).astype(np.uint8)
        Image.fromarray(real).save(real_dir / name)
        Image.fromarray(generated).save(generated_dir / name)
    return real_dir, generated_dir


def warm_cache(real_dir: Path, cache_dir: Path, batch: int = 32) -> float:
    """Cache the real images' features (what an earlier run on the same test set leaves); seconds taken."""
    start = time.perf_counter()
    cache, backbone = FeatureCache(cache_dir, CACHE_NAMESPACE), load_inception()
    files = sorted(p for p in real_dir.iterdir() if cache.get(file_digest(p)) is None)
    for i in range(0, len(files), batch):
        chunk = files[i:i + batch]
        images = torch.from_numpy(np.stack([np.asarray(Image.open(p).convert("RGB")) for p in chunk]))
        for path, row in zip(chunk, backbone.features(images.permute(0, 3, 1, 2)).numpy()):
            cache.put(file_digest(path), row)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--work", type=Path, default=Path("runs/metrics_speed"))
    parser.add_argument("--baselines", action="store_true", help="also score the floors (not part of the target)")
    parser.add_argument("--no-inception-distance", action="store_true", help="skip the paired distance")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/metrics_speed"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    real_dir, generated_dir = write_images(args.work, args.count)
    cache_dir = args.work / "cache"
    warm = warm_cache(real_dir, cache_dir)
    options = EvaluationOptions(batch_size=args.batch_size, threads=args.threads, cache_dir=cache_dir,
                                baselines=args.baselines, inception_distance=not args.no_inception_distance)
    cpu, wall = time.process_time(), time.perf_counter()
    report = evaluate_folders(generated_dir, real_dir, options=options)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    result = {"count": report.count, "threads": args.threads, "wall_seconds": round(wall, 1),
              "cpu_seconds": round(cpu, 1), "images_per_second": round(report.count / wall, 2),
              "target": "1000 images in < 180 s on 2 threads", "met": bool(report.count >= 1000 and wall < 180),
              "report_seconds": round(report.seconds or 0.0, 1), "cache_warm_seconds": round(warm, 1),
              "load_average_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
              "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
              "quiet_estimate_seconds": round(cpu / args.threads, 1),
              "fid": report.fid, "kid": report.kid, "inception_distance": report.inception_distance,
              "ssim": report.ssim, "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    rows = "\n".join(f"| {key} | {value} |" for key, value in result.items())
    args.out.with_suffix(".md").write_text(f"## Metrics speed\n\n| field | value |\n|---|---|\n{rows}\n",
                                           encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
