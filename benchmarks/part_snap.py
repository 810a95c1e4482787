"""Samples kept to their own parts (``CorrespondenceConfig.snap_reach``), on VALIDATION pairs only: how the reach
was chosen (docs/correspondence.md, "Samples keep to their own parts").

With ``snap_reach`` > 0, a target pixel of a part that is not skin whose full-size prior sample lands on source skin
(an arm that hung along the trousers and has moved away, a leg, the face) samples the nearest source pixel of its own
part within that fraction of the source height (``body/prior_numpy.snap_to_own_parts``). The rule has no weights:
the bundled ``default`` renders every pair with each reach, with its geometric network's Ŝ_B (the whole model, as
``recapture evaluate`` and ``--layout network``) and with the warp of S_A (``--layout prior``, the photo path's
default). Pair sets (never the held-out photos 0905-1004 nor the pose2sim ``test`` part): CCP self-supervised pairs
of the 60 validation photos with the camera still and as made, studio view changes (SynthHumans, seed 4242),
pose2sim on a white wall, with the camera still and cropped per frame (``validation``), and the CCP photos re-posed
into their own pose. Needs ``runs/appearance-real/ccp-256x176.npz`` (``python -m recapture.training.parsed_photos``).
Writes ``benchmarks/results/part-snap.{json,md}``.

    .venv/bin/python benchmarks/part_snap.py
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch

from appearance import score
from layout_choice import SIZE, validation_sets
from pose2sim import batches, person_l1, save_results
from recapture.body.keypoints import keypoints_to_heatmaps
from recapture.data.pose2sim import DEFAULT_MANIFEST
from recapture.hub import load_generator
from recapture.models.correspondence import repose
from recapture.models.layout_ops import to_one_hot

#: The reaches compared (fractions of the source height; 0: the rule off, 1: no limit).
REACHES = (0.0, 0.02, 0.04, 1.0)
METRICS = ("l1", "psnr", "person_l1", "face_l1")


def white_sets() -> list[tuple]:
    """pose2sim validation pairs cropped per frame, every pixel the parse calls background set to white."""
    return [(b.source_image, b.source_layout.argmax(1), b.target_layout, b.target_image,
             b.source_keypoints.double().numpy(), b.target_keypoints.double().numpy())
            for b in batches("validation", DEFAULT_MANIFEST, white=True)]


def posed(sets: list[tuple]) -> Iterator[tuple]:
    """The batches of ``sets`` with float64 keypoints and their heatmaps: ``(image, labels, person, truth, source,
    target, [source heatmaps, target heatmaps])``."""
    for image, labels, person, truth, source, target in sets:
        source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
        yield image, labels, person, truth, source, target, [keypoints_to_heatmaps(k, SIZE) for k in (source, target)]


def pair_scores(default: torch.nn.Module, sets: list[tuple]) -> dict[str, dict[str, float]]:
    """``{"<Ŝ_B>, reach <r>": {metric: mean over pairs}}`` over batches of ``(image, labels, person one-hot, truth,
    source keypoints, target keypoints)``."""
    base = default.appearance.config
    table: dict[str, dict[str, list[float]]] = {}
    try:
        for image, labels, person, truth, source, target, poses in posed(sets):
            for reach in REACHES:
                default.appearance.config = dataclasses.replace(base, snap_reach=reach)
                for kind, rendered in both_layouts(default, image, labels, source, target, poses).items():
                    add_scores(table, f"{kind}, reach {reach:g}", rendered, truth, person, target, METRICS)
    finally:
        default.appearance.config = base
    return table_means(table)


def both_layouts(default: torch.nn.Module, image: torch.Tensor, labels: torch.Tensor, source: np.ndarray,
                 target: np.ndarray, poses: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{"network": the whole model's render, "prior": its appearance network on the warp of S_A}`` of one batch."""
    with torch.no_grad():
        return {"network": default(image, to_one_hot(labels, 20), *poses, source_keypoints=source,
                                   target_keypoints=target).image,
                "prior": repose(default.appearance, image, labels, source, target).image}


def add_scores(table: dict[str, dict[str, list[float]]], row: str, rendered: torch.Tensor, truth: torch.Tensor,
               person: torch.Tensor, target: np.ndarray, metrics: tuple[str, ...],
               extra: dict[str, list[float]] | None = None) -> None:
    """Append one batch's per-pair scores (``appearance.score``, person L1 and ``extra``) to ``table[row]``."""
    values = score(rendered, truth, target) | {"person_l1": person_l1(rendered, truth, person)} | (extra or {})
    found = table.setdefault(row, {key: [] for key in metrics})
    for key in metrics:
        found[key] += values[key]


def table_means(table: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    """``{row: {metric: mean over pairs}}``."""
    return {row: {key: float(np.mean(v)) for key, v in values.items()} for row, values in table.items()}


def l1_table(result: dict, title: str, intro: str, header: str) -> list[str]:
    """Markdown lines: ``# title``, ``intro``, one row per variant with whole-image and person L1 per pair set."""
    sets = list(result["sets"])
    lines = [f"# {title}", "", intro, "", f"| {header} | " + " | ".join(f"{s} L1 | person L1" for s in sets) + " |",
             "|---|" + "---|---|" * len(sets)]
    for row in result["sets"][sets[0]]:
        cells = [f"{result['sets'][s][row][k]:.4f}" for s in sets for k in ("l1", "person_l1")]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return lines


def markdown(result: dict) -> str:
    lines = l1_table(result, "Samples kept to their own parts (`snap_reach`), validation pairs (bundled `default` "
                     "weights)", "Whole-image L1 / person L1 per pair set; Ŝ_B = the geometric network's (the whole "
                     "model) or the warp of S_A (`--layout prior`). See the script's docstring.", "Ŝ_B, reach")
    lines += ["", f"Wall time {result['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def run_validation(name: str, pair_scores: Callable[[torch.nn.Module, list[tuple]], dict],
                   markdown: Callable[[dict], str]) -> None:
    """Score the bundled ``default`` on every validation pair set with ``pair_scores`` (one torch thread) and save
    ``benchmarks/results/NAME.{json,md}``."""
    torch.set_num_threads(1)
    started = time.time()
    default = load_generator("default").generator.eval()
    sources = validation_sets(default.appearance.config)
    sources["pose2sim on white"] = white_sets
    result = {"sets": {key: pair_scores(default, make()) for key, make in sources.items()}}
    result["seconds"] = round(time.time() - started, 1)
    save_results(name, result, markdown(result))


def main() -> None:
    run_validation("part-snap", pair_scores, markdown)


if __name__ == "__main__":
    main()
