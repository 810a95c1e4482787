"""Studio view changes: the appearance network against the floors on SynthHumans pairs shot like DeepFashion
(one person, a plain studio background, a fixed camera, full body, the view turning between the two shots).

About 40% of DeepFashion's test pairs have a back view on one side (`fasion-pairs-test.csv`: front<->back 1,258,
side<->back 940, back<->full/additional 1,344 of 8,670), which neither real proxy has: CCP self-supervised pairs
keep the view, pose2sim's people mostly face the cameras. SynthHumans gives those pairs with the exact target
image. The identities are drawn with seed ``--seed`` (not the training mix's 7211, not the bundled data sets'
0-9), ``--pairs`` per kind:

- ``same view``: front -> front (a pose change);
- ``front <-> side``, ``front <-> back``, ``side <-> back``: half each way.

Rows: the bundled ``default`` (its own predicted Ŝ_B), its correspondence appearance network given the warp of
the source layout as target layout and given the true target layout, extra weights (``--weights NAME=FILE``,
warp of the source layout), the part-affine warp (floor), the source copied, all-white. L1 on [0, 1], PSNR, SSIM,
face box L1 (the target's head keypoints) and person L1 (the target's true person), per kind and over all pairs.
``--deepfashion-framing`` shoots the two sides as DeepFashion's pairs are framed; SynthHumans then keeps its wall
still while the person zooms (a camera that did not zoom), ``--camera-zoom`` zooms the wall with the framing as a
camera's framing change does (``render.camera_background``; DeepFashion's walls are plain, so this matters for the
wall's gradient only).

    .venv/bin/python benchmarks/studio_views.py --weights still=runs/appearance-still/best.safetensors
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from appearance import score
from pose2sim import FLOOR, add_model_arguments, load_networks, person_l1, save_results, table_lines
from recapture.body.keypoint_warp import warp_image
from recapture.body.keypoints import keypoints_to_heatmaps
from recapture.data.ccp_pairs import CcpPair
from recapture.models.correspondence import CorrespondenceGenerator, repose
from recapture.models.layout_ops import to_one_hot
from recapture.training.correspondence_data import Batch, collate, studio_framing, studio_pair

SIZE = (256, 176)
KINDS = {"same view": (("front", "front"),), "front <-> side": (("front", "right_side"), ("left_side", "front")),
         "front <-> back": (("front", "back"), ("back", "front")),
         "side <-> back": (("right_side", "back"), ("back", "left_side"))}
SEED = 4242  # identities: not the training mix's 7211, not the bundled data sets' 0-9


def framing_change(seed: int, index: int) -> str:
    """``framing: same``, ``framing: target closer`` or ``framing: target wider`` for pair ``index``."""
    tightness = {"whole": 0, "knee": 1, "hips": 2}
    source, target = (tightness[framing] for framing in studio_framing(seed, index))
    return "framing: " + ("same" if source == target else "target closer" if target > source else "target wider")


def studio_pairs(seed: int, per_kind: int, internal: tuple[int, int], framed: bool = False, camera: bool = False
                 ) -> dict[str, list[CcpPair]]:
    """``{kind: pairs}``: ``per_kind`` pairs of each of :data:`KINDS`, the directions alternating (``camera``: the
    wall zooms with the framing)."""
    return {kind: [studio_pair(seed, 1000 * number + i, SIZE, internal, directions[i % len(directions)], framed,
                               camera) for i in range(per_kind)]
            for number, (kind, directions) in enumerate(KINDS.items())}


def methods(pairs: list[CcpPair], default: torch.nn.Module, networks: dict[str, CorrespondenceGenerator]
            ) -> tuple[dict[str, torch.Tensor], Batch]:
    """Every row's ``(B, 3, H, W)`` image and the collated batch of one list of pairs."""
    first = next(iter(networks.values()))
    batch = collate(pairs, first.config, [False] * len(pairs))
    made: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        poses = [keypoints_to_heatmaps(k, SIZE) for k in (batch.source_keypoints, batch.target_keypoints)]
        made["bundled default (its own Ŝ_B)"] = default(
            batch.source_image, to_one_hot(batch.source_labels, first.num_parts), *poses,
            source_keypoints=batch.source_keypoints, target_keypoints=batch.target_keypoints).image
        posed = (batch.source_image, batch.source_labels, batch.source_keypoints, batch.target_keypoints)
        for name, network in networks.items():  # each with its own prior (its config's rules)
            made[f"{name} (warp of S_A)"] = repose(network, *posed).image
            made[f"{name} (true target layout)"] = repose(network, *posed, batch.target_labels).image
        made[FLOOR] = warp_image(batch.source_image, batch.source_labels, batch.source_keypoints,
                                 batch.target_keypoints, "lip20")
    made["source copied (floor)"] = batch.source_image
    made["all-white (floor)"] = torch.ones_like(batch.target_image)
    return made, batch


def run(seed: int, per_kind: int, default: torch.nn.Module, networks: dict[str, CorrespondenceGenerator],
        framed: bool = False, camera: bool = False) -> dict[str, dict[str, dict[str, float | int]]]:
    """``{kind: {method: {metric: mean}}}`` with kind ``all`` too."""
    table: dict[str, dict[str, dict[str, list[float]]]] = {}
    internal = next(iter(networks.values())).config.internal_size
    for number, (kind, pairs) in enumerate(studio_pairs(seed, per_kind, internal, framed, camera).items()):
        for start in range(0, per_kind, 10):
            made, batch = methods(pairs[start:start + 10], default, networks)
            person = to_one_hot(batch.target_labels, 20)
            framings = [framing_change(seed, 1000 * number + i) for i in range(start, start + len(batch.target_image))]
            for name, image in made.items():
                values = score(image, batch.target_image, batch.target_keypoints)
                values["person_l1"] = person_l1(image, batch.target_image, person)
                for group in ("all", kind):
                    for key, found in values.items():
                        table.setdefault(group, {}).setdefault(name, {}).setdefault(key, []).extend(found)
                for i, group in enumerate(framings if framed else []):  # face boxes are not per pair: left out
                    row = table.setdefault(group, {}).setdefault(name, {"face_l1": [], "face_psnr": []})
                    for key in ("l1", "psnr", "ssim", "person_l1"):
                        row.setdefault(key, []).append(values[key][i])
    return {kind: {name: {key: float(np.mean(v)) if v else None for key, v in values.items()}
                   | {"pairs": len(values["l1"])} for name, values in rows.items()} for kind, rows in table.items()}


def markdown(result: dict) -> str:
    lines = ["# Studio view changes (SynthHumans, plain background, fixed camera, 256x176)", ""]
    for kind, rows in result["kinds"].items():
        lines += table_lines(kind, rows)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--pairs", type=int, default=20, help="pairs per kind")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--deepfashion-framing", action="store_true",
                        help="frame the two shots as DeepFashion's test pairs are (half body, zoom changes)")
    parser.add_argument("--camera-zoom", action="store_true",
                        help="the wall zooms with the framing, as a camera's would (render.camera_background)")
    parser.add_argument("--name", default="studio-views")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.time()
    loaded, networks = load_networks(args.model, args.weights)
    result = {"model": args.model, "weights": args.weights, "seed": args.seed, "pairs_per_kind": args.pairs,
              "deepfashion_framing": args.deepfashion_framing, "camera_zoom": args.camera_zoom,
              "kinds": run(args.seed, args.pairs, loaded.generator.eval(), networks, args.deepfashion_framing,
                           args.camera_zoom)}
    result["seconds"] = round(time.time() - started, 1)
    save_results(args.name, result, markdown(result))


if __name__ == "__main__":
    main()
