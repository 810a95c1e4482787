"""Which Ŝ_B the photo path should use, on VALIDATION pairs only: the keypoint prior (the warp of the source layout),
the geometric network's, the network's with the prior's head (:func:`head_from_prior`), or a choice by how much the
pose changes (docs/models.md).

Per pair, the bundled ``default`` renders the target with its geometric network's Ŝ_B (the whole model), with the
prior as target layout (its appearance network alone, as ``--layout prior``) and with the network's Ŝ_B whose head
parts come from the prior; :func:`recapture.body.retarget.pose_distance` measures the pose change (mean joint
displacement in torso lengths). The rule "network (or the network with the prior's head) above ``t``, prior at or
below" is scored for each threshold ``t`` from the same per-pair scores. Pair sets (never the held-out photos
0905-1004 nor the pose2sim ``test`` part): pose2sim cropped per frame and fixed camera (``validation``), CCP
self-supervised pairs of the 60 validation photos with the camera still and as made, studio view changes
(SynthHumans, seed 4242; full body and framed as DeepFashion's pairs), and the same CCP photos re-posed into their
own pose (change 0: the round trip). Needs ``runs/appearance-real/ccp-256x176.npz`` (``python -m
recapture.training.parsed_photos``). Writes ``benchmarks/results/layout-choice.{json,md}``.

    .venv/bin/python benchmarks/layout_choice.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from appearance import score
from pose2sim import batches, person_l1, save_results
from still_background import add, ccp_pairs
from studio_views import SEED, studio_pairs
from recapture.body.keypoints import keypoints_to_heatmaps
from recapture.body.parts import LIP20
from recapture.body.prior_numpy import part_warp
from recapture.body.retarget import pose_distance
from recapture.data.ccp_pairs import CcpPhotos
from recapture.data.pose2sim import DEFAULT_MANIFEST, STILL_MANIFEST
from recapture.hub import load_generator
from recapture.models.correspondence import repose
from recapture.models.layout_ops import to_one_hot
from recapture.training.correspondence_data import collate

PHOTOS = "runs/appearance-real/ccp-256x176.npz"
THRESHOLDS = (0.0, 0.05, 0.1, 0.2, 0.3)
ALTERNATIVES = ("prior", "network", "network, head from prior")
SIZE = (256, 176)
Table = dict[str, list[float]]


#: The head parts a real photo's prior keeps under ``network, head from prior`` (a try at the second face the
#: network's wider head gives a real photo's side view: docs/models.md).
HEAD = tuple(LIP20.index(name) for name in ("hat", "hair", "sunglasses", "face"))


def head_from_prior(network: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """``network`` labels, with every pixel either layout gives a head part taken from ``prior`` (``(H, W)``)."""
    head = np.isin(network, HEAD) | np.isin(prior, HEAD)
    return np.where(head, prior, network)


def render_all(default: torch.nn.Module, image: torch.Tensor, labels: torch.Tensor, source: np.ndarray,
               target: np.ndarray) -> dict[str, torch.Tensor]:
    """Each Ŝ_B's render ``(B, 3, H, W)`` in [-1, 1] of one batch (labels ``(B, H, W)``, keypoints ``(B, 18, 2)``
    model frame): the whole model, the prior, and the network with the prior's head."""
    poses = [keypoints_to_heatmaps(k, SIZE) for k in (source, target)]
    layout = to_one_hot(labels, 20)
    with torch.no_grad():
        made = {"network": default(image, layout, *poses, source_keypoints=source, target_keypoints=target).image,
                "prior": repose(default.appearance, image, labels, source, target).image}
        network = default.geometric(layout, *poses, source, target).argmax(1).numpy()
        twins = default.appearance.config.twin_limbs
        prior = np.stack([part_warp(l, s, t, "lip20", twins).labels for l, s, t in zip(labels.numpy(), source, target)])
        mixed = torch.from_numpy(np.stack([head_from_prior(n, p) for n, p in zip(network, prior)]).astype(np.int64))
        made["network, head from prior"] = repose(default.appearance, image, labels, source, target, mixed).image
    return made


def add_scores(table: dict[str, Table], name: str, made: torch.Tensor, truth: torch.Tensor, person: torch.Tensor,
               target: np.ndarray) -> None:
    values = score(made, truth, target)
    values["person_l1"] = person_l1(made, truth, person)
    add(table, name, values)


def collect(default: torch.nn.Module, sets: list[tuple[torch.Tensor, ...]]) -> dict:
    """Per-pair scores of both renders and the pose changes, over batches of ``(image, labels, person one-hot,
    truth, source keypoints, target keypoints)``."""
    table: dict[str, Table] = {}
    changes: list[float] = []
    for image, labels, person, truth, source, target in sets:
        source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
        for name, made in render_all(default, image, labels, source, target).items():
            add_scores(table, name, made, truth, person, target)
        changes += [pose_distance(s, t) for s, t in zip(source, target)]
    return {"changes": changes, **table}


def pose2sim_sets(manifest: object) -> list[tuple]:
    return [(b.source_image, b.source_layout.argmax(1), b.target_layout, b.target_image,
             b.source_keypoints.double().numpy(), b.target_keypoints.double().numpy())
            for b in batches("validation", manifest)]


def pair_sets(batches_: list) -> list[tuple]:
    return [(b.source_image, b.source_labels, to_one_hot(b.target_labels, 20), b.target_image, b.source_keypoints,
             b.target_keypoints) for b in batches_]


def own_pose_sets(photos: CcpPhotos, config: object) -> list[tuple]:
    """The validation photos re-posed into their own pose (source = target)."""
    out = []
    for b in ccp_pairs(photos, config, True):
        out.append((b.target_image, b.target_labels, to_one_hot(b.target_labels, 20), b.target_image,
                    b.target_keypoints, b.target_keypoints))
    return out


def summarise(found: dict) -> dict[str, dict[str, float]]:
    """``{row: {metric: mean}}`` with rows prior, network and ``auto t`` for each threshold."""
    changes = np.asarray(found["changes"])
    rows = {}
    for name in ALTERNATIVES:
        rows[name] = {k: float(np.mean(v)) for k, v in found[name].items()}
    per_pair = [k for k in found["prior"] if len(found["prior"][k]) == len(changes)]  # not the face box's
    for name in ALTERNATIVES[1:]:
        for threshold in THRESHOLDS:
            use = changes > threshold
            rows[f"auto: {name} above {threshold:g}, else prior"] = {
                k: float(np.mean(np.where(use, found[name][k], found["prior"][k]))) for k in per_pair}
    rows["pairs"] = {"count": len(changes), "median change": float(np.median(changes))}
    return rows


def markdown(result: dict) -> str:
    sets = list(result["sets"])
    lines = ["# The photo path's Ŝ_B: prior, geometric network, or a choice by pose change (validation)", "",
             "Whole-image L1 / person L1 (bundled `default` weights; see the script's docstring).", "",
             "| Ŝ_B | " + " | ".join(f"{s} L1 | person L1" for s in sets) + " |",
             "|---|" + "---|---|" * len(sets)]
    first = result["sets"][sets[0]]
    for row in first:
        if row == "pairs":
            continue
        cells = []
        for s in sets:
            values = result["sets"][s][row]
            cells += [f"{values['l1']:.4f}", f"{values['person_l1']:.4f}"]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    lines += ["", "Pairs / median pose change (torso lengths): " + ", ".join(
        f"{s} {result['sets'][s]['pairs']['count']} / {result['sets'][s]['pairs']['median change']:.2f}"
        for s in sets), f"Wall time {result['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def validation_sets(config: object) -> dict[str, Callable[[], list[tuple]]]:
    """The validation pair sets by name, each made when called: pose2sim cropped per frame and with the camera still,
    the CCP validation photos' pairs with the camera still and as made, studio view changes (seed 4242), and the
    CCP photos re-posed into their own pose."""
    photos = CcpPhotos.load(PHOTOS)
    return {"pose2sim per frame": lambda: pose2sim_sets(DEFAULT_MANIFEST),
            "pose2sim fixed camera": lambda: pose2sim_sets(STILL_MANIFEST),
            "ccp still camera": lambda: pair_sets(ccp_pairs(photos, config, True)),
            "ccp as made": lambda: pair_sets(ccp_pairs(photos, config, False)),
            "studio": lambda: studio_sets(config, False),
            "studio framed": lambda: studio_sets(config, True),
            "ccp own pose": lambda: own_pose_sets(photos, config)}


def studio_sets(config: object, framed: bool) -> list[tuple]:
    """Studio view changes (seed 4242), full body or framed as DeepFashion's pairs (``studio_views.py``)."""
    return pair_sets([collate(p[i:i + 10], config, [False] * len(p[i:i + 10]))
                      for p in studio_pairs(SEED, 20, config.internal_size, framed).values() for i in range(0, 20, 10)])


def main() -> None:
    torch.set_num_threads(1)
    started = time.time()
    default = load_generator("default").generator.eval()
    sources = validation_sets(default.appearance.config)
    result = {"sets": {name: summarise(collect(default, make())) for name, make in sources.items()}}
    result["seconds"] = round(time.time() - started, 1)
    save_results("layout-choice", result, markdown(result))


if __name__ == "__main__":
    main()
