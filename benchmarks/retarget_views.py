"""Does retargeting keep the view of the target pose? (``body.retarget``, docs/in-the-wild.md "Framing and
retargeting").

Retargeting gives the target pose the subject's bone lengths. A 2D bone length mixes body proportions with
foreshortening: the shoulder line of a person turned to the side is short, so a frontal subject's full shoulder
width made such a pose a front view - or a back view when the annotation's shoulders cross - and a pose read as a
back view gets the back-of-head rule (hair over the face). Since 2026-12-07 the neck-shoulder bones keep the
subject's length only within ``PROPORTION_TOLERANCE`` of the target's own.

Subjects: 60 CCP photos of the appearance training part (``src/recapture/assets/ccp-keypoints.csv``, BlazePose,
photos 0001-0904 only), both shoulders and hips found. Targets: every DeepFashion test pose
(``../shared/data/real-keypoints/fasion-annotation-test.csv``) with both shoulders and hips. For each, the view
(``part_maps.view_of``) of the target and of the retargeted pose, with the clip (this release) and without it (the
previous behaviour, an infinite tolerance, in the same run). Writes
``benchmarks/results/retarget-views.{json,md}``.

    .venv/bin/python benchmarks/retarget_views.py
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np

from pose2sim import save_results
from recapture.body.retarget import PROPORTION_TOLERANCE, retarget
from recapture.body.keypoints import missing_mask
from recapture.body.part_maps import view_of
from recapture.data.formats import read_annotations
from recapture.pipelines.poses import guess_frame

ROOT = Path(__file__).resolve().parents[1]
SUBJECTS = ROOT / "src" / "recapture" / "assets" / "ccp-keypoints.csv"
TARGETS = ROOT.parent / "shared" / "data" / "real-keypoints" / "fasion-annotation-test.csv"
VIEWS = ("front", "side", "back")
TORSO = [1, 2, 5, 8, 11]


def usable(keypoints: np.ndarray) -> bool:
    return not missing_mask(keypoints[TORSO]).any()


def poses() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Subjects (every 14th usable CCP photo of 0001-0904, at most 60) and the usable DeepFashion test poses."""
    table = read_annotations(SUBJECTS)
    names = [n for n in table.names if int(Path(n).stem) <= 904 and usable(table.get(n))]
    subjects = [table.get(n) for n in names[::14][:60]]
    _, offset = guess_frame(TARGETS)
    targets_table = read_annotations(TARGETS, offset=offset)
    targets = [targets_table.get(n) for n in targets_table.names if usable(targets_table.get(n))]
    return subjects, targets


def confusion(subjects: list[np.ndarray], targets: list[np.ndarray], tolerance: float) -> dict[str, dict[str, int]]:
    """``{target view: {retargeted view: count}}`` over every subject x target."""
    counts: dict[str, Counter] = {view: Counter() for view in VIEWS}
    for target in targets:
        wanted = view_of(target, 256)[0]
        for subject in subjects:
            counts[wanted][view_of(retarget(subject, target, tolerance), 1000)[0]] += 1
    return {view: {other: counts[view][other] for other in VIEWS} for view in VIEWS}


def markdown(result: dict) -> str:
    lines = ["# Does retargeting keep the view of the target pose?", "",
             f"{result['subjects']} CCP subjects (training photos) x {result['targets']} DeepFashion test poses; "
             "rows: the target's view, columns: the retargeted pose's view (share of the row).", ""]
    for name, table in result["confusion"].items():
        lines += [f"## {name}", "", "| target \\ retargeted | " + " | ".join(VIEWS) + " | kept |",
                  "|---|" + "---|" * (len(VIEWS) + 1)]
        for view in VIEWS:
            total = max(1, sum(table[view].values()))
            cells = [f"{table[view][other] / total:.1%}" for other in VIEWS]
            lines.append(f"| {view} ({total}) | " + " | ".join(cells) + f" | **{table[view][view] / total:.1%}** |")
        lines.append("")
    lines.append(f"Wall time {result['seconds']:.0f} s.")
    return "\n".join(lines) + "\n"


def main() -> None:
    started = time.time()
    subjects, targets = poses()
    result = {"subjects": len(subjects), "targets": len(targets), "confusion": {
        f"shoulder lines within {PROPORTION_TOLERANCE:.0%} of the target's (this release)":
            confusion(subjects, targets, PROPORTION_TOLERANCE),
        "the subject's lengths everywhere (before)": confusion(subjects, targets, float("inf"))}}
    result["seconds"] = round(time.time() - started, 1)
    save_results("retarget-views", result, markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
