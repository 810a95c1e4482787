"""Time of ``recapture demo`` as a user runs it after install (issue 16: "offline in under a minute").

    python benchmarks/demo_time.py [--runs 2] [--out benchmarks/results/demo]

Each run is a fresh process (``pipeline_speed.cold_command``: the command line run in-process, its peak RSS read
from ``/proc``) writing into a new temporary folder, with an empty ``RECAPTURE_CACHE``, so the first
onnxruntime export is part of every run, as on a fresh install. Reported: wall seconds per run (interpreter
start included), the time the demo prints, peak RSS, the 1-minute load average before each run, and the
size of the written demo. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from pipeline_speed import cold_command, load1

from recapture.fileio import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]


def one_run(folder: Path, threads: int | None) -> dict[str, object]:
    """A fresh-process ``recapture demo --out folder/demo`` with its own empty cache."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RECAPTURE_THREADS")}
    env["RECAPTURE_CACHE"] = str(folder / "cache")
    out = folder / "demo"
    load = load1()
    wall, info, done = cold_command(["demo", "--out", str(out)] + (["--threads", str(threads)] if threads else []), env)
    said = [line for line in done.stdout.splitlines() + done.stderr.splitlines() if line and "COLD " not in line]
    files = [p for p in out.rglob("*") if p.is_file()] if out.is_dir() else []
    return {"wall_s": round(wall, 2), "load1_before": load, "exit": info.get("exit"),
            "peak_rss_mib": round(float(info.get("peak_rss_mib", 0.0))), "threads": info.get("threads"),
            "files": len(files), "megabytes": round(sum(p.stat().st_size for p in files) / 1e6, 2),
            "last_line": said[-1][:200] if said else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="passed to the demo (default: its policy)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "demo")
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as folder:
            runs.append(one_run(Path(folder), args.threads))
    walls = [r["wall_s"] for r in runs if r["exit"] == 0]
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
              "machine": platform.processor() or platform.machine(), "runs": runs,
              "wall_s_median": statistics.median(walls) if walls else None}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(report, indent=1) + "\n")
    lines = [f"# `recapture demo` from a fresh process ({report['date']})", "",
             f"{report['cpus']} CPUs ({report['machine']}); each run with an empty cache (the first ONNX export "
             f"included), into a new folder. Median wall time of the successful runs: "
             f"{report['wall_s_median']} s.", "",
             "| run | wall s | load1 before | exit | peak RSS MiB | threads | files | MB | last line printed |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {i} | {r['wall_s']} | {r['load1_before']:.2f} | {r['exit']} | {r['peak_rss_mib']} | {r['threads']} "
              f"| {r['files']} | {r['megabytes']} | {r['last_line']} |" for i, r in enumerate(runs, 1)]
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
