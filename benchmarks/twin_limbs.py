"""Twin limbs in the keypoint prior, on VALIDATION pairs only: how ``CorrespondenceConfig.twin_limbs`` was chosen
(docs/correspondence.md, "Limbs the source hides").

With ``twin_limbs`` the prior (``body/prior_numpy.part_warp(..., twins=True)``) draws a target limb that the source
hides - behind the body, crossed over the other one, or labelled as the other side by the parser - from the other
side's limb, left/right labels swapped; the photo path's target layout (``--layout prior``) and the network's prior
grid both use it. Rows: the bundled ``default``'s appearance network with and without it (no retraining: the rule
has no weights), target layout = warp of S_A, and the floors, on the validation pairs of
``benchmarks/still_background.py`` (never the held-out photos 0905-1004 nor the pose2sim ``test`` part):
pose2sim cropped per frame and fixed camera, CCP self-supervised pairs of the 60 validation photos as made and with
the camera still, studio view changes (SynthHumans, seed 4242). Person L1: L1 over the target's person pixels.
Writes ``benchmarks/results/twin-limbs.{json,md}``.

    .venv/bin/python benchmarks/twin_limbs.py
"""

from __future__ import annotations

import copy
import dataclasses
import time

import torch

from pose2sim import FLOOR, batches, save_results, score_split, summary
from still_background import ccp_pairs, means, score_ccp
from studio_views import SEED, run
from recapture.data.ccp_pairs import CcpPhotos
from recapture.data.pose2sim import DEFAULT_MANIFEST, STILL_MANIFEST
from recapture.hub import load_generator
from recapture.models.correspondence import CorrespondenceGenerator

ON, OFF = "twin limbs", "no twin limbs (before)"
PHOTOS = "runs/appearance-real/ccp-256x176.npz"
COLUMNS = ("pose2sim per frame", "pose2sim fixed camera", "ccp as made", "ccp still camera", "studio")


def networks(default: torch.nn.Module) -> dict[str, CorrespondenceGenerator]:
    """The bundled appearance network with the rule on and off (same weights)."""
    off = copy.deepcopy(default.appearance)
    off.config = dataclasses.replace(off.config, twin_limbs=False)
    on = copy.deepcopy(default.appearance)
    on.config = dataclasses.replace(on.config, twin_limbs=True)
    return {ON: on, OFF: off}


def scores(default: torch.nn.Module) -> dict[str, dict[str, dict[str, float | None]]]:
    """``{column: {row: {metric: mean}}}`` for :data:`COLUMNS`; rows :data:`ON`, :data:`OFF` and the floors."""
    nets = networks(default)
    rows = [f"{name} (target layout = warp of S_A)" for name in nets] + [FLOOR, "source copied (floor)"]
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for column, manifest in zip(COLUMNS[:2], (DEFAULT_MANIFEST, STILL_MANIFEST)):
        found = summary(score_split(batches("validation", manifest), default, nets))["all"]
        out[column] = {row: found[row] for row in rows}
    photos = CcpPhotos.load(PHOTOS)
    for column, still in zip(COLUMNS[2:4], (False, True)):
        out[column] = {}
        for index, (name, network) in enumerate(nets.items()):
            found = means(score_ccp(network, ccp_pairs(photos, network.config, still), index == 0))
            out[column][f"{name} (target layout = warp of S_A)"] = found.pop("network (target layout = warp of S_A)")
            out[column].update(found)
    out["studio"] = {}
    for name, network in nets.items():
        found = run(SEED, 20, default, {name: network})["all"]
        out["studio"][f"{name} (target layout = warp of S_A)"] = found[f"{name} (warp of S_A)"]
        out["studio"].update({row: found[row] for row in rows[2:]})
    return out


def markdown(result: dict) -> str:
    lines = ["# Twin limbs in the keypoint prior, validation pairs (bundled `default` weights)", "",
             "L1 on [0, 1], whole image / person pixels; the appearance network with the target layout = warp of "
             "S_A. See the script's docstring for the pair sets.", "",
             "| method | " + " | ".join(f"{c} L1 | person L1" for c in COLUMNS) + " |",
             "|---|" + "---|---|" * len(COLUMNS)]
    table = result["scores"]
    for row in table[COLUMNS[0]]:
        cells = []
        for column in COLUMNS:
            values = table[column].get(row, {})
            cells += [f"{values[k]:.4f}" if values.get(k) is not None else "-" for k in ("l1", "person_l1")]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    torch.set_num_threads(1)
    started = time.time()
    default = load_generator("default").generator.eval()
    result = {"scores": scores(default)}
    result["seconds"] = round(time.time() - started, 1)
    save_results("twin-limbs", result, markdown(result))


if __name__ == "__main__":
    main()
