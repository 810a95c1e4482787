"""SynthHumans generation speed, files written (images, layouts, CSVs, invisible masks, edit splits).

    python benchmarks/synth_speed.py [--quick] [--json OUT.json]

For 128x64 and 256x176, with 1 and 2 worker processes, writes a fresh dataset into a temporary folder
and prints images/s = (people x poses) / wall seconds of the whole ``generate`` call (process start,
edit re-renders and masks included but not counted as images), plus images/s per CPU second of this
process and its workers (the wall figure drops when other jobs share the cores: the load average is
printed). Targets on 2 cores: >= 100 images/s at 128x64 and >= 25 images/s at 256x176.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from recapture.data.synthetic import SynthConfig, generate

TARGETS = {(128, 64): 100.0, (256, 176): 25.0}


@dataclass(frozen=True)
class SpeedRow:
    """One measurement."""

    size: tuple[int, int]
    workers: int
    images: int
    wall_seconds: float
    images_per_second: float
    images_per_cpu_second: float


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(size: tuple[int, int], workers: int, people: int, poses: int) -> SpeedRow:
    """Generate ``people`` x ``poses`` images at ``size`` with ``workers`` processes into a temp folder."""
    with tempfile.TemporaryDirectory(prefix="synth-speed-") as folder:
        config = SynthConfig(Path(folder) / "data", people=people, poses=poses, size=size, seed=1, workers=workers)
        cpu, start = _cpu_seconds(), time.perf_counter()
        generate(config)
        wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    images = people * poses
    return SpeedRow(size, workers, images, wall, images / wall, images / max(cpu, 1e-9))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images (noisier)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    scale = 0.25 if args.quick else 1.0
    rows = []
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.2f}")
    for size, (people, poses) in (((128, 64), (120, 10)), ((256, 176), (40, 8))):
        for workers in (1, 2):
            row = measure(size, workers, max(4, int(people * scale)), poses)
            rows.append(row)
            target = TARGETS[size]
            verdict = "meets" if row.images_per_second >= target else "below"
            print(f"{size[0]}x{size[1]} workers={workers}: {row.images_per_second:7.1f} images/s wall "
                  f"({row.images} images in {row.wall_seconds:.1f} s; {row.images_per_cpu_second:.1f} images per CPU s)"
                  f" - {verdict} the {target:.0f} images/s target")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))


if __name__ == "__main__":
    main()
