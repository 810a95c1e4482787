"""Write one generator file from two trainings of the same model: the geometric network of one run (or file)
and everything else of another (how the bundled `default` got a geometric network trained longer than
its appearance stage; docs/models.md).

    .venv/bin/python scripts/combine_generator.py --geometric runs/default-geometric-cpu \\
        --rest runs/default-export/default.safetensors --config configs/default.yaml \\
        --out src/recapture/assets/weights/default.safetensors --meta step=... --meta trained_on=...
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from recapture.config import load_config
from recapture.hub import list_checkpoints, read_model_file, save_generator


def weights_of(source: str, use_ema: bool) -> dict[str, torch.Tensor]:
    """Raw generator tensors of a model file, a run directory (newest checkpoint) or a checkpoint directory."""
    path = Path(source)
    if path.is_dir():
        checkpoint = path if (path / "state.pt").is_file() else list_checkpoints(path)[-1]
        name = "ema.safetensors" if use_ema and (checkpoint / "ema.safetensors").is_file() else "generator.safetensors"
        path = checkpoint / name
    return read_model_file(path)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--geometric", required=True, help="run, checkpoint or file whose geometric.* tensors to take")
    parser.add_argument("--rest", required=True, help="run, checkpoint or file for every other tensor")
    parser.add_argument("--config", required=True, help="YAML preset whose model section describes both")
    parser.add_argument("--out", required=True)
    parser.add_argument("--meta", action="append", default=[], help="KEY=VALUE metadata")
    parser.add_argument("--no-ema", action="store_true", help="take raw weights of run directories, not the EMA")
    args = parser.parse_args()
    rest, geometric = weights_of(args.rest, not args.no_ema), weights_of(args.geometric, not args.no_ema)
    if {k for k in rest if k.startswith("geometric.")} != {k for k in geometric if k.startswith("geometric.")}:
        raise SystemExit("error: the two sources have different geometric networks")
    merged = {**rest, **{k: v for k, v in geometric.items() if k.startswith("geometric.")}}
    meta = dict(item.split("=", 1) for item in args.meta)
    path = save_generator(merged, load_config(args.config).model, args.out, meta)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
