"""Candidate geometric networks for the bundled ``default``, on VALIDATION pairs only: how a fine-tuned Ŝ_B network
is chosen before it replaces the shipped one (docs/models.md).

Each candidate is a geometric weight file written by ``recapture.training.layout_real`` (``RUN/best.safetensors``);
the bundled ``default`` renders every pair with its own geometric network and with each candidate's in its place
(the appearance network, the rules and the settings unchanged: the whole model, as ``recapture evaluate`` and
``--layout network``). Pair sets (never the held-out photos 0905-1004 nor the pose2sim ``test`` part): those of
``part_snap.py``, with the studio view changes both full body and framed as DeepFashion's pairs (half body, zoom
changes). Needs ``runs/appearance-real/ccp-256x176.npz`` (``python -m recapture.training.parsed_photos``). Writes
``benchmarks/results/NAME.{json,md}``.

    .venv/bin/python benchmarks/geometric_candidates.py framed=runs/layout-real-framed/best.safetensors
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from part_snap import add_scores, l1_table, posed, run_validation, table_means
from recapture.hub import load_generator
from recapture.models.layout_ops import to_one_hot
from recapture.training.layout_real import export_default

METRICS = ("l1", "psnr", "person_l1", "face_l1")


def geometric_state(path: str) -> dict[str, torch.Tensor]:
    """The inference-form state of the geometric network in a ``layout_real`` weight file (joined to the bundled
    default and loaded as the photo path loads it: spectral norms folded)."""
    with tempfile.TemporaryDirectory() as folder:
        joined = Path(folder) / "joined.safetensors"
        export_default(Path(path), str(joined))
        return load_generator(joined).generator.geometric.state_dict()


def scorer(candidates: dict[str, str]):
    """``pair_scores(default, sets) -> {row: {metric: mean over pairs}}`` with one row per geometric network."""

    def pair_scores(default: torch.nn.Module, sets: list[tuple]) -> dict[str, dict[str, float]]:
        shipped = {k: v.clone() for k, v in default.geometric.state_dict().items()}
        weights = {"shipped": shipped} | {name: geometric_state(path) for name, path in candidates.items()}
        table: dict[str, dict[str, list[float]]] = {}
        try:
            for image, labels, person, truth, source, target, poses in posed(sets):
                for name, state in weights.items():
                    default.geometric.load_state_dict(state)
                    with torch.no_grad():
                        made = default(image, to_one_hot(labels, 20), *poses, source_keypoints=source,
                                       target_keypoints=target).image
                    add_scores(table, name, made, truth, person, target, METRICS)
        finally:
            default.geometric.load_state_dict(shipped)
        return table_means(table)

    return pair_scores


def markdown(result: dict) -> str:
    lines = l1_table(result, "Geometric network candidates, validation pairs (bundled `default`'s appearance)",
                     "Whole-image L1 / person L1 per pair set, the whole model with each geometric network. See the "
                     "script's docstring.", "geometric network")
    sets = list(result["sets"])
    lines += ["", "PSNR: " + "; ".join(f"{s} " + " / ".join(f"{result['sets'][s][row]['psnr']:.2f}"
                                                            for row in result["sets"][s]) for s in sets),
              "", f"Wall time {result['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("candidates", nargs="+", metavar="NAME=FILE", help="geometric weights (layout_real)")
    parser.add_argument("--name", default="geometric-candidates")
    args = parser.parse_args()
    candidates = dict(item.split("=", 1) for item in args.candidates)
    run_validation(args.name, scorer(candidates), markdown)


if __name__ == "__main__":
    main()
