"""The correspondence model's background rule on VALIDATION pairs only: how it was chosen (docs/correspondence.md).

Settings compared: ``background: follow`` (the network's output everywhere: the background on the torso's map,
the behaviour before the rule) and ``background: still`` with several ``still_margin`` / ``still_feather``
values and both ``vacated`` rules (the background the source person leaves: the network's painting, or filled
from the background around it), all with the bundled ``default``'s weights (the rule has none; ``--weights`` for
other correspondence weights). Pairs, never the held-out photos 0905-1004 nor the pose2sim ``test`` part:

* pose2sim ``validation`` (30 real pose changes, fixed lab cameras, each frame cropped around its person; rows:
  the bundled generator with its own Ŝ_B), by pair kind (same camera / other camera);
* pose2sim fixed camera ``validation`` (``benchmarks/data/pose2sim-still``: 74 same-camera pairs, one crop window
  per camera, so the background stays in place; the bundled generator);
* CCP self-supervised pairs of the 60 validation photos of 0001-0904 (``training_ids``; one pair per photo,
  seed 0; rows: the appearance network, target layout = warp of S_A), as made (the whole photo deformed: the
  background moves with the person) and with ``still_camera`` (the same pose changes, the camera still);
* studio view changes (``benchmarks/studio_views.py``: SynthHumans, plain background, front/side/back views,
  80 pairs; rows: the bundled generator with its own Ŝ_B).

Floors (part-affine warp, source copied) once per pair set. Writes ``benchmarks/results/still-background.{json,md}``.

    .venv/bin/python benchmarks/still_background.py
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from appearance import score
from pose2sim import batches, methods, pair_kind, person_l1, save_results
from studio_views import SEED, studio_pairs
from studio_views import methods as studio_methods
from recapture.body.keypoint_warp import warp_image
from recapture.data.ccp_pairs import CcpPhotos, make_pair, training_ids
from recapture.data.pose2sim import DEFAULT_MANIFEST, STILL_MANIFEST
from recapture.hub import load_generator
from recapture.models.correspondence import CorrespondenceConfig, CorrespondenceGenerator, load_correspondence
from recapture.models.layout_ops import to_one_hot
from recapture.training.correspondence_data import Batch, collate

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: (background, still_margin, still_feather, vacated); the first is the baseline the floors are scored with.
SETTINGS = (("follow", 0, 0, "network"), ("still", 4, 2, "network"), ("still", 0, 0, "fill"), ("still", 1, 0, "fill"),
            ("still", 1, 1, "fill"), ("still", 2, 0, "fill"), ("still", 2, 1, "fill"), ("still", 3, 1, "fill"),
            ("still", 4, 2, "fill"))
BUNDLED = "bundled default (its own Ŝ_B)"
FLOORS = ("part-affine warp (floor)", "source copied (floor)")
Scores = dict[str, list[float]]


def setting_name(background: str, margin: int, feather: int, vacated: str) -> str:
    if background == "follow":
        return "follow (before the rule)"
    return f"still, margin {margin}, feather {feather}, vacated: {vacated}"


def ccp_pairs(photos: CcpPhotos, config: object, still_camera: bool, seed: int = 0) -> list[Batch]:
    """One pair per validation photo (seed ``seed``), batched by 10; ``still_camera``: no global map."""
    rows = [int(np.flatnonzero(photos.ids == i)[0]) for i in training_ids()[1] if i in set(photos.ids.tolist())]
    rng = np.random.default_rng(seed)
    pairs = [make_pair(photos.images[r], photos.labels[r], photos.keypoints[r], rng, config.internal_size,
                       still_camera=still_camera) for r in rows]
    return [collate(pairs[i:i + 10], config, [False] * len(pairs[i:i + 10])) for i in range(0, len(pairs), 10)]


def add(table: dict[str, Scores], name: str, values: Scores) -> None:
    for key, found in values.items():
        table.setdefault(name, {}).setdefault(key, []).extend(found)


def score_ccp(network: CorrespondenceGenerator, parts: list[Batch], floors: bool) -> dict[str, Scores]:
    """The network (warped source layout) and, with ``floors``, the floors on CCP pairs."""
    table: dict[str, Scores] = {}
    for batch in parts:
        with torch.no_grad():
            made = {"network (target layout = warp of S_A)": network(
                batch.source_image, batch.source_layout, batch.source_pose, batch.target_layout, batch.target_pose,
                batch.prior).image}
        if floors:
            made[FLOORS[0]] = warp_image(batch.source_image, batch.source_labels, batch.source_keypoints,
                                         batch.target_keypoints, "lip20")
            made[FLOORS[1]] = batch.source_image
        person = to_one_hot(batch.target_labels, 20)
        for name, image in made.items():
            values = score(image, batch.target_image, batch.target_keypoints)
            values["person_l1"] = person_l1(image, batch.target_image, person)
            add(table, name, values)
    return table


def score_pose2sim(default: torch.nn.Module, parts: list, floors: bool) -> dict[str, dict[str, Scores]]:
    """``{kind: {row: scores}}``: the bundled generator (and the floors) on pose2sim validation pairs."""
    keep = {BUNDLED, *(FLOORS if floors else ())}
    table: dict[str, dict[str, Scores]] = {}
    for batch in parts:
        kinds = [pair_kind(s, t) for s, t in zip(batch.source_name, batch.target_name)]
        keypoints = batch.target_keypoints.double().numpy()
        made = {k: v for k, v in methods(batch, default, {"network": default.appearance}).items() if k in keep}
        for name, image in made.items():
            for index, kind in enumerate(kinds):
                one = slice(index, index + 1)
                values = score(image[one], batch.target_image[one], keypoints[one])
                values["person_l1"] = person_l1(image[one], batch.target_image[one], batch.target_layout[one])
                for group in ("all", kind):
                    add(table.setdefault(group, {}), name, values)
    return table


def score_studio(default: torch.nn.Module, parts: list[list], floors: bool) -> dict[str, Scores]:
    """The bundled generator (its own Ŝ_B) and, with ``floors``, the floors on the studio view pairs."""
    table: dict[str, Scores] = {}
    network = {"network": default.appearance}
    for pairs in parts:
        made, batch = studio_methods(pairs, default, network)
        for name in (BUNDLED, *(FLOORS if floors else ())):
            values = score(made[name], batch.target_image, batch.target_keypoints)
            values["person_l1"] = person_l1(made[name], batch.target_image, to_one_hot(batch.target_labels, 20))
            add(table, name, values)
    return table


def means(table: dict[str, Scores]) -> dict[str, dict[str, float | None]]:
    return {name: {k: float(np.mean(v)) if v else None for k, v in values.items()} for name, values in table.items()}


def markdown(result: dict) -> str:
    lines = ["# The background rule on validation pairs (bundled `default` weights)", "",
             "L1 on [0, 1]. pose2sim: the bundled generator (its own Ŝ_B), validation part. CCP: the appearance "
             "network, target layout = warp of S_A, 60 validation photos of 0001-0904; *as made* deforms the whole "
             "photo (the background moves), *still camera* the same pose changes without the global map. pose2sim "
             "fixed camera: the same-camera pairs of `benchmarks/data/pose2sim-still` (one crop window per camera).",
             "", "| setting | pose2sim L1 | same camera | other camera | PSNR | SSIM | face L1 | person L1 | pose2sim "
             "fixed camera L1 | PSNR | person L1 | CCP as made L1 | CCP still camera L1 | PSNR | SSIM | studio L1 "
             "| PSNR | person L1 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def row(name: str, pose: dict, fixed: dict, made: dict, still: dict, studio: dict) -> str:
        a, same, other = pose["all"], pose["same camera"], pose["other camera"]
        return (f"| {name} | {a['l1']:.4f} | {same['l1']:.4f} | {other['l1']:.4f} | {a['psnr']:.2f} | {a['ssim']:.3f} "
                f"| {a['face_l1']:.4f} | {a['person_l1']:.4f} | {fixed['l1']:.4f} | {fixed['psnr']:.2f} "
                f"| {fixed['person_l1']:.4f} | {made['l1']:.4f} | {still['l1']:.4f} "
                f"| {still['psnr']:.2f} | {still['ssim']:.3f} | {studio['l1']:.4f} | {studio['psnr']:.2f} "
                f"| {studio['person_l1']:.4f} |")

    network = "network (target layout = warp of S_A)"
    for name, scores in result["settings"].items():
        lines.append(row(name, {k: v[BUNDLED] for k, v in scores["pose2sim"].items()},
                         scores["pose2sim fixed camera"][BUNDLED], scores["ccp as made"][network],
                         scores["ccp still camera"][network], scores["studio"][BUNDLED]))
    for floor in FLOORS:
        first = result["floors"]
        lines.append(row(floor, {k: v[floor] for k, v in first["pose2sim"].items()},
                         first["pose2sim fixed camera"][floor], first["ccp as made"][floor],
                         first["ccp still camera"][floor], first["studio"][floor]))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", default="runs/appearance-real/ccp-256x176.npz",
                        help="CCP photo cache (data/ccp_pairs.build_photos) holding the validation photos")
    parser.add_argument("--name", default="still-background")
    parser.add_argument("--weights", default="", help="correspondence weights in place of the bundled appearance")
    parser.add_argument("--chosen", action="store_true",
                        help="only the rule as configured by default (and the floors), not every setting")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.time()
    default = load_generator("default").generator.eval()
    if args.weights:
        default.appearance = load_correspondence(args.weights)
    network = default.appearance
    photos = CcpPhotos.load(args.photos)
    pose_parts = batches("validation", DEFAULT_MANIFEST)
    fixed_parts = batches("validation", STILL_MANIFEST)
    ccp = {"ccp as made": ccp_pairs(photos, network.config, False),
           "ccp still camera": ccp_pairs(photos, network.config, True)}
    studio = [pairs[start:start + 10] for pairs in studio_pairs(SEED, 20, network.config.internal_size).values()
              for start in (0, 10)]
    base = network.config
    result: dict = {"settings": {}, "floors": {}}
    try:
        defaults = CorrespondenceConfig()
        chosen = (defaults.background, defaults.still_margin, defaults.still_feather, defaults.vacated)
        for index, setting in enumerate((chosen,) if args.chosen else SETTINGS):
            background, margin, feather, vacated = setting
            network.config = dataclasses.replace(base, background=background, still_margin=margin,
                                                 still_feather=feather, vacated=vacated)
            first = index == 0
            pose = score_pose2sim(default, pose_parts, first)
            fixed = score_pose2sim(default, fixed_parts, first)["all"]
            tables = {"pose2sim": pose} | {name: score_ccp(network, parts, first) for name, parts in ccp.items()}
            summary = {"pose2sim": {k: means(v) for k, v in pose.items()}, "pose2sim fixed camera": means(fixed)} | {
                name: means(tables[name]) for name in ccp} | {"studio": means(score_studio(default, studio, first))}
            result["settings"][setting_name(*setting)] = summary
            if first:
                result["floors"] = summary
            print(setting_name(*setting), f"{time.time() - started:.0f} s", flush=True)
    finally:
        network.config = base
    result["weights"] = args.weights or "bundled default"
    result["pairs"] = {"pose2sim": len(next(iter(pose["all"].values()))["l1"]), "studio": 10 * len(studio),
                       "pose2sim fixed camera": sum(len(b.source_name) for b in fixed_parts),
                       **{name: sum(len(b.source_image) for b in parts) for name, parts in ccp.items()}}
    result["seconds"] = round(time.time() - started, 1)
    save_results(args.name, result, markdown(result))


if __name__ == "__main__":
    main()
