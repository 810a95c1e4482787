"""Figure and clothing edits on real people (CCP training photos, hand-made labels mapped to LIP-20, the
bundled CCP keypoints): the edit geometry follows the person's own layout and keypoints, not SynthHumans'
proportions. Training ids only (held-out 0905-1004 are never used)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from recapture.body.clothing import GarmentShapes
from recapture.body.edits import apply_clothing_edit, apply_figure_edit
from recapture.body.keypoints import KEYPOINT_INDEX
from recapture.body.parts import get_label_set

ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ccp"
KEYPOINTS = Path(__file__).resolve().parents[1] / "src" / "recapture" / "assets" / "ccp-keypoints.csv"
LIP20 = get_label_set("lip20")
pytestmark = pytest.mark.skipif(not (ROOT / "photos").is_dir(), reason="CCP photos not available")


def person(photo_id: int, factor: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """LIP-20 labels (half size, CCP's unmapped classes -> background) and keypoints of a CCP photo."""
    from recapture.data.ccp import IGNORE, CcpDataset
    from recapture.data.formats import read_annotations

    keypoints = read_annotations(KEYPOINTS).get(CcpDataset.photo_name(photo_id)).astype(np.float64)
    labels = CcpDataset(ROOT).lip20_labels(photo_id, keypoints)
    labels[labels == IGNORE] = 0
    size = (round(labels.shape[1] * factor), round(labels.shape[0] * factor))
    small = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
    return small, np.where(keypoints < 0, -1.0, (keypoints + 0.5) * factor - 0.5)


def width(labels: np.ndarray, start: np.ndarray, end: np.ndarray, allowed: set[int]) -> float:
    """Length (pixels) of the run of ``allowed`` labels across the bone ``start -> end`` at its middle, along
    its normal: the limb's own width there."""
    direction = (end - start) / np.linalg.norm(end - start)
    normal, middle = np.array([-direction[1], direction[0]]), (start + end) / 2

    def inside(step: float) -> bool:
        y, x = np.rint(middle + step * normal).astype(int)
        return 0 <= y < labels.shape[0] and 0 <= x < labels.shape[1] and int(labels[y, x]) in allowed

    if not inside(0.0):
        return 0.0
    low = high = 0.0
    while inside(low - 0.5):
        low -= 0.5
    while inside(high + 0.5):
        high += 0.5
    return high - low + 0.5


#: (group, lower bone's joints, labels of the limb) measured at the middle of the lower bone.
LIMBS = {"legs": (("knee", "ankle"), {"pants", "left_leg", "right_leg"}),
         "arms": (("elbow", "wrist"), {"left_arm", "right_arm"})}


@pytest.mark.parametrize("photo_id, group", [(19, "legs"), (28, "legs"), (19, "arms"), (21, "arms")])
def test_widening_scales_the_persons_own_limb_width(photo_id: int, group: str) -> None:
    """A factor f makes each limb f times as wide as this person's own limb (measured across the shin or the
    forearm on the layout), whatever their build (shins 22-36 px, forearms 11-16 px here)."""
    labels, keypoints = person(photo_id)
    (upper, lower), names = LIMBS[group]
    allowed = {LIP20.index(name) for name in names}
    for side in ("right", "left"):
        start, end = keypoints[KEYPOINT_INDEX[f"{side}_{upper}"]], keypoints[KEYPOINT_INDEX[f"{side}_{lower}"]]
        before = width(labels, start, end, allowed)
        assert before >= 8
        for factor in (0.8, 1.3):
            after = width(apply_figure_edit(labels, keypoints, LIP20, {group: factor}), start, end, allowed)
            assert after / before == pytest.approx(factor, abs=0.1), (side, factor, before, after)


def hem_row(keypoints: np.ndarray, length: float) -> float:
    """The lowest row of chain position ``length`` (0 hip, 1 knee, 2 ankle) over both legs."""
    rows = []
    for side in ("right", "left"):
        hip, knee, ankle = (keypoints[KEYPOINT_INDEX[f"{side}_{joint}"]] for joint in ("hip", "knee", "ankle"))
        rows.append((hip + min(length, 1.0) * (knee - hip) + max(length - 1.0, 0.0) * (ankle - knee))[0])
    return max(rows)


@pytest.mark.parametrize("photo_id", (8, 19, 28, 30))
def test_a_skirt_hem_falls_at_the_documented_chain_position_of_the_persons_own_legs(photo_id: int) -> None:
    """lower=skirt on people in trousers: the skirt ends at chain position ``skirt_length`` of their own legs
    (default 1.09: just below the knee; 0.6: above it), within a tenth of a thigh. (Trousers left between the
    legs below the hem and owned by the torso still become skirt: a few stray pixels on photo 30.)"""
    labels, keypoints = person(photo_id)
    joint = lambda name: keypoints[KEYPOINT_INDEX[name]]  # noqa: E731
    thigh = float(np.mean([np.linalg.norm(joint(f"{s}_knee") - joint(f"{s}_hip")) for s in ("right", "left")]))
    for length in (GarmentShapes().skirt_length, 0.6):
        skirted = apply_clothing_edit(labels, keypoints, LIP20, {"lower": "skirt"}, GarmentShapes(skirt_length=length))
        rows = np.nonzero((skirted == LIP20.index("skirt")).sum(axis=1) >= 6)[0]  # rows of skirt, not strays
        assert abs(rows.max() + 0.5 - hem_row(keypoints, length)) <= 0.1 * thigh, (length, rows.max(), thigh)
        hips = keypoints[[KEYPOINT_INDEX["right_hip"], KEYPOINT_INDEX["left_hip"]], 0].min()
        assert rows.min() < hips
