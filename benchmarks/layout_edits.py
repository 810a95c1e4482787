"""Layout edits: time per edit at 256x176 and agreement with SynthHumans' re-rendered truth.

For SynthHumans people, each applicable edit is applied twice: to the identity (re-rendered in the
same pose: the truth) and to the source layout through :class:`recapture.body.edits.LayoutEdits`.
Printed per edit: the median wall and CPU time (CPU time is what a loaded shared machine does not
inflate), and the error = pixels whose label differs from the truth, for the edited layout and for the
unedited source layout (the "do nothing" baseline), summed over the samples.

    .venv/bin/python benchmarks/layout_edits.py --people 12 --poses 3
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np

from recapture.body.edits import LayoutEdits
from recapture.body.parts import LIP20
from recapture.data.synthetic import ClothingEdit, FigureEdit, render_person, sample_identity, sample_shot
from recapture.data.synthetic.people import CLOTHING_CHANGES

SIZE = (256, 176)
FIGURE_EDITS = (("arms", 0.75), ("arms", 1.35), ("legs", 0.75), ("legs", 1.35), ("torso", 0.75), ("torso", 1.35))


def _edits(identity):
    """(name, edited identity, layout edit) for every edit that applies to ``identity``."""
    for change in CLOTHING_CHANGES:
        edit = ClothingEdit(change)
        if edit.applicable(identity):
            yield change, edit.apply(identity), LayoutEdits.from_clothing_change(change)
    for group, factor in FIGURE_EDITS:
        yield f"{group}={factor}", FigureEdit(group, factor).apply(identity), LayoutEdits.from_figure(group, factor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=12)
    parser.add_argument("--poses", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="", help="run only the edits whose name contains this text")
    args = parser.parse_args()
    times: dict[str, list[float]] = defaultdict(list)
    cpu_times: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for person in range(args.people):
        identity = sample_identity(args.seed, person)
        for pose_index in range(args.poses):
            pose, background = sample_shot(args.seed, person, pose_index, "plain", 0.0)
            source = render_person(identity, pose, background, SIZE)
            for name, edited, layout_edits in _edits(identity):
                if args.only not in name:
                    continue
                truth = render_person(edited, pose, background, SIZE).layout
                start, cpu_start = time.perf_counter(), time.process_time()
                ours = layout_edits.apply(source.layout, source.keypoints, LIP20)
                times[name].append(time.perf_counter() - start)
                cpu_times[name].append(time.process_time() - cpu_start)
                errors[name].append((int((ours != truth).sum()), int((source.layout != truth).sum())))
    print(f"{'edit':<26}{'n':>4}{'wall ms':>9}{'cpu ms':>8}{'err edited':>12}{'err unedited':>14}{'ratio':>7}")
    for name in errors:
        ours, unedited = np.sum(errors[name], axis=0)
        wall, cpu = 1000 * np.median(times[name]), 1000 * np.median(cpu_times[name])
        ratio = ours / max(unedited, 1)
        print(f"{name:<26}{len(errors[name]):>4}{wall:>9.1f}{cpu:>8.1f}{ours:>12}{unedited:>14}{ratio:>7.2f}")


if __name__ == "__main__":
    main()
