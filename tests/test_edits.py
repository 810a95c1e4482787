"""Layout edits (figure and clothing) on stick people drawn from known keypoints and widths."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from recapture.body.edits import (
    CLOTHING_CHANGE_EDITS, CLOTHING_CHANGE_GARMENTS, CLOTHING_SLOTS, FIGURE_GROUPS, LayoutEdits, apply_clothing_edit,
    apply_figure_edit, edit_region,
)
from recapture.body.keypoints import KEYPOINT_INDEX
from recapture.body.parts import LIP20, MARKET7, merge_lip20

L = {name: LIP20.index(name) for name in LIP20.names}
#: Joints of the stick person at 256x176 (y, x), front view: the person's left is on the image right.
JOINTS = {
    "nose": (40, 88), "neck": (70, 88), "left_eye": (36, 94), "right_eye": (36, 82),
    "right_shoulder": (75, 63), "right_elbow": (115, 52), "right_wrist": (152, 46),
    "left_shoulder": (75, 113), "left_elbow": (115, 124), "left_wrist": (152, 130),
    "right_hip": (145, 76), "right_knee": (190, 74), "right_ankle": (235, 73),
    "left_hip": (145, 100), "left_knee": (190, 102), "left_ankle": (235, 103),
}
ARM_HALF, LEG_HALF = 7.0, 11.0
TORSO = np.array([(72, 63), (72, 113), (150, 108), (150, 68)], float)  # (y, x) corners at 256x176


def stick_person(size=(256, 176), top="t_shirt", bottom="pants", crossed=False, missing=()):
    """``(labels, keypoints, torso_mask)`` of a stick person; ``crossed`` puts the left forearm across
    the belly; ``missing`` joints are set to -1 after drawing."""
    height, width = size
    sy, sx = height / 256.0, width / 176.0
    joints = dict(JOINTS)
    if crossed:
        joints["left_elbow"], joints["left_wrist"] = (120, 122), (122, 74)
    keypoints = np.full((18, 2), -1.0)
    for name, (y, x) in joints.items():
        keypoints[KEYPOINT_INDEX[name]] = (round(y * sy), round(x * sx))
    labels = np.zeros(size, np.uint8)

    def xy(name):
        y, x = keypoints[KEYPOINT_INDEX[name]]
        return int(x), int(y)

    def bone(a, b, label, half, t0=0.0, t1=1.0):
        (ax, ay), (bx, by) = xy(a), xy(b)
        p = (int(round(ax + t0 * (bx - ax))), int(round(ay + t0 * (by - ay))))
        q = (int(round(ax + t1 * (bx - ax))), int(round(ay + t1 * (by - ay))))
        cv2.line(labels, p, q, int(label), max(1, int(round(2 * half * sy))) | 1)

    corners = np.int32(np.rint(TORSO[:, ::-1] * [sx, sy]))
    cv2.fillPoly(labels, [corners], L["upper_clothes"])
    torso_mask = labels == L["upper_clothes"]
    pelvis = np.array([(140, 68), (140, 108), (160, 110), (160, 66)], float)
    cv2.fillPoly(labels, [np.int32(np.rint(pelvis[:, ::-1] * [sx, sy]))], L["pants"])
    for side in ("left", "right"):
        bone(f"{side}_hip", f"{side}_knee", L[f"{side}_leg"], LEG_HALF)
        bone(f"{side}_knee", f"{side}_ankle", L[f"{side}_leg"], 0.8 * LEG_HALF)
        if bottom in ("pants", "shorts"):
            bone(f"{side}_hip", f"{side}_knee", L["pants"], LEG_HALF * 1.1, 0.0, 1.0 if bottom == "pants" else 0.5)
        if bottom == "pants":
            bone(f"{side}_knee", f"{side}_ankle", L["pants"], 0.9 * LEG_HALF, 0.0, 0.95)
        ax, ay = xy(f"{side}_ankle")
        cv2.ellipse(labels, (ax, ay + int(6 * sy)), (max(1, int(8 * sx)), max(1, int(5 * sy))), 0, 0, 360,
                    L[f"{side}_shoe"], -1)
    for side in ("left", "right"):
        bone(f"{side}_shoulder", f"{side}_elbow", L[f"{side}_arm"], ARM_HALF)
        bone(f"{side}_elbow", f"{side}_wrist", L[f"{side}_arm"], 0.8 * ARM_HALF, 0.0, 1.25)
        if top == "t_shirt":
            bone(f"{side}_shoulder", f"{side}_elbow", L["upper_clothes"], 1.15 * ARM_HALF, 0.0, 0.45)
        elif top == "long_sleeves":
            bone(f"{side}_shoulder", f"{side}_elbow", L["upper_clothes"], 1.12 * ARM_HALF)
            bone(f"{side}_elbow", f"{side}_wrist", L["upper_clothes"], 0.9 * ARM_HALF, 0.0, 0.9)
    cv2.circle(labels, (int(88 * sx), int(42 * sy)), int(17 * sy), L["hair"], -1)
    cv2.circle(labels, (int(88 * sx), int(46 * sy)), int(14 * sy), L["face"], -1)
    for name in missing:
        keypoints[KEYPOINT_INDEX[name]] = -1
    return labels, keypoints, torso_mask


def _point(keypoints, name):
    return keypoints[KEYPOINT_INDEX[name]].astype(float)


def _segment_distance(shape, a, b):
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    d = b - a
    t = np.clip(((ys - a[0]) * d[0] + (xs - a[1]) * d[1]) / (d @ d), 0, 1)
    return np.hypot(ys - a[0] - t * d[0], xs - a[1] - t * d[1])


def _width_across(labels, a, b, parts, at=0.5):
    """Length of the run of ``parts`` pixels through the point ``at`` along ``a -> b``, measured on the
    perpendicular in 0.25 px steps."""
    mid, d = a + at * (b - a), (b - a) / np.linalg.norm(b - a)
    steps = np.arange(-120, 121)
    points = np.rint(mid + 0.25 * steps[:, None] * np.array([-d[1], d[0]])).astype(int)
    points = np.clip(points, 0, np.array(labels.shape) - 1)
    inside = np.isin(labels[points[:, 0], points[:, 1]], parts)
    centre = 120
    if not inside[centre]:
        return 0.0
    low = centre - np.argmin(inside[centre::-1]) if not inside[:centre + 1].all() else 0
    high = centre + np.argmin(inside[centre:]) if not inside[centre:].all() else len(inside)
    return 0.25 * (high - low)


ARM_PARTS = [L["left_arm"], L["right_arm"], L["upper_clothes"]]


# ---- figure edits ---------------------------------------------------------------------------------


def test_factor_one_is_the_identity() -> None:
    labels, keypoints, _ = stick_person()
    same = apply_figure_edit(labels, keypoints, LIP20, {"arms": 1.0, "legs": 1.0, "torso": 1.0, "body": 1.0})
    assert same.dtype == labels.dtype and np.array_equal(same, labels)
    assert LayoutEdits().is_empty() and LayoutEdits.parse(figure=["arms=1"]).is_empty()
    assert np.array_equal(LayoutEdits.parse(figure=["arms=1.0"]).apply(labels, keypoints, LIP20), labels)


def test_fatter_arms_change_only_a_band_around_the_arm_bones() -> None:
    labels, keypoints, _ = stick_person()
    before = labels.copy()
    out = apply_figure_edit(labels, keypoints, LIP20, {"arms": 1.3})
    assert np.array_equal(labels, before), "input modified"
    changed = edit_region(labels, out)
    assert changed.sum() > 100
    band = np.full(labels.shape, np.inf)
    for side in ("left", "right"):
        for a, b in (("shoulder", "elbow"), ("elbow", "wrist")):
            a_, b_ = _point(keypoints, f"{side}_{a}"), _point(keypoints, f"{side}_{b}")
            band = np.minimum(band, _segment_distance(labels.shape, a_, b_))
    assert band[changed].max() <= 1.3 * 1.15 * ARM_HALF + 3
    allowed = [L["background"], L["left_arm"], L["right_arm"], L["upper_clothes"]]
    assert np.isin(labels[changed], allowed).all() and np.isin(out[changed], allowed).all()
    for part in ("face", "hair", "pants", "left_leg", "right_leg", "left_shoe", "right_shoe"):
        assert np.array_equal(out == L[part], labels == L[part]), part
    # Sides stay on their sides: no left_arm pixel on the image left half and vice versa.
    assert not (out[:, :88] == L["left_arm"]).any() and not (out[:, 88:] == L["right_arm"]).any()


@pytest.mark.parametrize("factor", [0.7, 1.3])
def test_arm_width_scales_with_the_factor(factor: float) -> None:
    labels, keypoints, _ = stick_person()
    out = apply_figure_edit(labels, keypoints, LIP20, {"arms": factor})
    for side in ("left", "right"):
        a, b = _point(keypoints, f"{side}_elbow"), _point(keypoints, f"{side}_wrist")
        before, after = _width_across(labels, a, b, ARM_PARTS), _width_across(out, a, b, ARM_PARTS)
        assert abs(after - factor * before) <= 2.0, (side, before, after)
    area_before = np.isin(labels, [L["left_arm"], L["right_arm"]]).sum()
    area_after = np.isin(out, [L["left_arm"], L["right_arm"]]).sum()
    assert (area_after > area_before) == (factor > 1)
    assert abs(area_after / area_before - factor) < 0.2


def test_thinner_arm_leaves_background_outside_and_torso_behind() -> None:
    labels, keypoints, torso = stick_person(top="sleeveless", crossed=True)
    out = apply_figure_edit(labels, keypoints, LIP20, {"arms": 0.6})
    arm = labels == L["left_arm"]
    vacated = arm & (out != L["left_arm"])
    assert vacated.sum() > 50
    kernel = np.ones((9, 9), np.uint8)
    inner = cv2.erode(torso.astype(np.uint8), kernel).astype(bool)
    outer = ~cv2.dilate(torso.astype(np.uint8), kernel).astype(bool)
    assert (out[vacated & inner] == L["upper_clothes"]).all() and (vacated & inner).sum() > 20
    assert (out[vacated & outer] == L["background"]).all() and (vacated & outer).sum() > 5


def test_legs_and_torso_edits_change_their_own_width() -> None:
    labels, keypoints, _ = stick_person()
    legs = apply_figure_edit(labels, keypoints, LIP20, {"legs": 1.2})
    a, b = _point(keypoints, "left_knee"), _point(keypoints, "left_ankle")
    before, after = _width_across(labels, a, b, [L["pants"]], 0.4), _width_across(legs, a, b, [L["pants"]], 0.4)
    assert before > 10 and abs(after - 1.2 * before) <= 2.0
    torso = apply_figure_edit(labels, keypoints, LIP20, {"torso": 0.7})
    row = 110
    assert (torso[row] == L["upper_clothes"]).sum() < 0.85 * (labels[row] == L["upper_clothes"]).sum()
    for out in (legs, torso):
        for part in ("face", "hair", "left_shoe", "right_shoe"):
            assert np.array_equal(out == L[part], labels == L[part]), part
    arms = [L["left_arm"], L["right_arm"]]
    assert np.array_equal(np.isin(legs, arms), np.isin(labels, arms))


def test_missing_joints_leave_their_group_unchanged() -> None:
    labels, keypoints, _ = stick_person(missing=("left_elbow",))
    out = apply_figure_edit(labels, keypoints, LIP20, {"arms": 1.3})
    assert np.array_equal(out[:, 100:] == L["left_arm"], labels[:, 100:] == L["left_arm"])
    assert (out[:, :80] != labels[:, :80]).any()
    no_neck = stick_person(missing=("neck",))
    assert np.array_equal(apply_figure_edit(no_neck[0], no_neck[1], LIP20, {"torso": 1.4}), no_neck[0])
    none = np.full((18, 2), -1)
    edits = LayoutEdits.parse(figure=["body=1.3"], clothing=["lower=skirt", "upper=coat"])
    assert np.array_equal(edits.apply(labels, none, LIP20), labels)


def test_flip_commutes_with_edits() -> None:
    """Mirroring the layout (swapping left/right labels and joints) commutes with an edit."""
    from recapture.body.keypoints import flip_keypoints

    labels, keypoints, _ = stick_person(bottom="pants")
    flipped = LIP20.flip_labels(labels[:, ::-1])
    flipped_keypoints = flip_keypoints(keypoints, labels.shape[1])
    for edits in (LayoutEdits.parse(figure=["arms=1.3", "legs=0.8"]), LayoutEdits.parse(clothing=["lower=shorts"])):
        direct = edits.apply(labels, keypoints, LIP20)
        mirrored = LIP20.flip_labels(edits.apply(flipped, flipped_keypoints, LIP20)[:, ::-1])
        assert (direct != mirrored).mean() < 0.003


# ---- clothing edits -------------------------------------------------------------------------------


def test_skirt_replaces_trousers_above_the_knees() -> None:
    labels, keypoints, _ = stick_person(bottom="pants")
    out = apply_clothing_edit(labels, keypoints, LIP20, {"lower": "skirt"})
    knee_row = int(_point(keypoints, "left_knee")[0])
    assert (out == L["skirt"]).sum() > 1000
    assert not (out[:knee_row] == L["pants"]).any()
    assert not (out == L["pants"]).any()
    below = out[knee_row + 15:]
    assert (below == L["left_leg"]).sum() > 100 and (below == L["right_leg"]).sum() > 100
    assert not (out[:, 88:] == L["right_leg"]).any() and not (out[:, :88] == L["left_leg"]).any()
    for part in ("face", "hair", "left_arm", "right_arm", "left_shoe", "right_shoe"):
        assert np.array_equal(out == L[part], labels == L[part]), part
    back = apply_clothing_edit(out, keypoints, LIP20, {"lower": "pants"})
    assert not (back == L["skirt"]).any() and (back[knee_row:] == L["pants"]).sum() > 200


def test_shorts_free_the_legs_below_mid_thigh_on_the_right_sides() -> None:
    labels, keypoints, _ = stick_person(bottom="pants")
    out = apply_clothing_edit(labels, keypoints, LIP20, {"lower": "shorts"})
    hip, knee = _point(keypoints, "left_hip")[0], _point(keypoints, "left_knee")[0]
    cut = int(hip + 0.7 * (knee - hip))
    assert not (out[cut:] == L["pants"]).any()
    assert (out[int(hip) + 3:int(hip + 0.4 * (knee - hip))] == L["pants"]).sum() > 200
    freed = (labels == L["pants"]) & np.isin(out, [L["left_leg"], L["right_leg"]])
    assert freed.sum() > 500
    person_left = np.zeros(labels.shape, bool)
    person_left[:, 88:] = True  # front view: the person's left is on the image right
    assert (out[freed & person_left] == L["left_leg"]).all() and (out[freed & ~person_left] == L["right_leg"]).all()
    assert np.isin(out[(labels == L["pants"]) & ~freed], [L["pants"], L["background"]]).all()
    pants = apply_clothing_edit(out, keypoints, LIP20, {"lower": "pants"})
    assert (pants[cut:int(_point(keypoints, "left_ankle")[0]) - 8] == L["pants"]).sum() > 1000
    for part in ("left_shoe", "right_shoe", "face"):
        assert np.array_equal(pants == L[part], labels == L[part]), part


def test_long_sleeves_cover_the_arms_but_not_the_hands() -> None:
    labels, keypoints, _ = stick_person(top="t_shirt")
    out = apply_clothing_edit(labels, keypoints, LIP20, {"upper": "long_sleeves"})
    for side in ("left", "right"):
        shoulder, elbow, wrist = (_point(keypoints, f"{side}_{j}") for j in ("shoulder", "elbow", "wrist"))
        near = np.minimum(_segment_distance(labels.shape, shoulder, elbow),
                          _segment_distance(labels.shape, elbow, elbow + 0.6 * (wrist - elbow))) <= 9
        assert not (out[near] == L[f"{side}_arm"]).any(), side
        hand = _segment_distance(labels.shape, wrist, wrist + 0.25 * (wrist - elbow)) <= 3
        assert (out[hand] == L[f"{side}_arm"]).all(), side
    short = apply_clothing_edit(out, keypoints, LIP20, {"upper": "t_shirt"})
    a, b = _point(keypoints, "left_elbow"), _point(keypoints, "left_wrist")
    assert _width_across(short, a, b, [L["left_arm"]]) > 5 and _width_across(short, a, b, [L["upper_clothes"]]) == 0


def test_coat_on_and_off() -> None:
    labels, keypoints, _ = stick_person(top="long_sleeves")
    coat = apply_clothing_edit(labels, keypoints, LIP20, {"upper": "coat"})
    assert (coat == L["coat"]).sum() > 3000
    strip = coat == L["upper_clothes"]
    assert 0 < strip.sum() < 0.2 * (labels == L["upper_clothes"]).sum()  # the open front
    hip_row = int(_point(keypoints, "left_hip")[0])
    assert (coat[hip_row + 5:] == L["coat"]).sum() > 100  # the tails
    off = apply_clothing_edit(coat, keypoints, LIP20, {"upper": "no_coat"})
    assert not (off == L["coat"]).any() and (off == L["upper_clothes"]).sum() > 3000
    with pytest.raises(ValueError, match="market7"):
        apply_clothing_edit(merge_lip20(labels, "market7"), keypoints, MARKET7, {"upper": "coat"})


def test_market7_edits() -> None:
    labels, keypoints, _ = stick_person(size=(128, 64), bottom="pants", top="t_shirt")
    market = merge_lip20(labels, "market7")
    m = {name: MARKET7.index(name) for name in MARKET7.names}
    shorts = apply_clothing_edit(market, keypoints, MARKET7, {"lower": "shorts"})
    knee = int(_point(keypoints, "left_knee")[0])
    assert not (shorts[knee:] == m["lower_clothes"]).any() and (shorts[knee:] == m["legs"]).sum() > 20
    sleeves = apply_clothing_edit(market, keypoints, MARKET7, {"upper": "long_sleeves"})
    assert (sleeves == m["arms"]).sum() < 0.3 * (market == m["arms"]).sum()
    skirt = apply_clothing_edit(market, keypoints, MARKET7, {"lower": "skirt"})
    assert (skirt == m["lower_clothes"]).sum() > (market[:knee] == m["lower_clothes"]).sum()
    fat = apply_figure_edit(market, keypoints, MARKET7, {"arms": 1.4})
    assert (fat == m["arms"]).sum() > (market == m["arms"]).sum()
    assert np.array_equal(fat == m["head"], market == m["head"])


@pytest.mark.parametrize("size", [(128, 64), (256, 176)])
def test_every_edit_runs_and_keeps_the_head(size: tuple[int, int]) -> None:
    labels, keypoints, _ = stick_person(size=size, top="long_sleeves", bottom="shorts")
    for group in FIGURE_GROUPS:
        for factor in (0.5, 0.8, 1.3, 2.0):
            out = LayoutEdits.parse(figure=[f"{group}={factor}"]).apply(labels, keypoints, LIP20)
            assert out.shape == labels.shape and out.dtype == labels.dtype
            assert np.array_equal(out == L["face"], labels == L["face"])
    for slot, categories in CLOTHING_SLOTS.items():
        for category in categories:
            out = LayoutEdits.parse(clothing=[f"{slot}={category}"]).apply(labels, keypoints, LIP20)
            assert np.array_equal(out == L["face"], labels == L["face"]) and out.max() < LIP20.num_parts


# ---- names, parsing, SynthHumans --------------------------------------------------------------------


def test_parse_and_errors_list_valid_names() -> None:
    edits = LayoutEdits.parse(figure=["arms=0.8", "body=1.2"], clothing=["lower=skirt", "upper=coat"])
    assert edits.figure == (("arms", 0.8), ("body", 1.2)) and edits.clothing == (("lower", "skirt"), ("upper", "coat"))
    assert not edits.is_empty()
    for figure, clothing, pattern in (
        (["neck=1.2"], [], "arms, legs, torso, body"), (["arms=fat"], [], "not a number"),
        (["arms=3"], [], r"\[0.5, 2.0\]"), (["arms"], [], "NAME=VALUE"),
        ([], ["hat=cap"], "upper, lower"), ([], ["lower=kilt"], "pants, shorts, skirt"),
        ([], ["upper=skirt"], "t_shirt, long_sleeves, coat, no_coat"),
    ):
        with pytest.raises(ValueError, match=pattern):
            LayoutEdits.parse(figure=figure, clothing=clothing)
    with pytest.raises(ValueError, match=r"\[0.5, 2.0\]"):
        apply_figure_edit(np.zeros((8, 8), np.uint8), np.full((18, 2), -1), LIP20, {"arms": 2.0, "body": 1.5})


def test_bad_layouts_are_rejected() -> None:
    keypoints = np.full((18, 2), -1)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        apply_figure_edit(np.zeros((2, 8, 8), np.uint8), keypoints, LIP20, {"arms": 1.2})
    with pytest.raises(ValueError, match="market7"):
        apply_clothing_edit(np.full((8, 8), 9, np.uint8), keypoints, MARKET7, {"lower": "pants"})
    with pytest.raises(ValueError, match=r"\(18, 2\)"):
        apply_figure_edit(np.zeros((8, 8), np.uint8), np.zeros((17, 2)), LIP20, {"arms": 1.2})
    with pytest.raises(ValueError, match="finite"):
        apply_figure_edit(np.zeros((8, 8), np.uint8), np.full((18, 2), np.nan), LIP20, {"arms": 1.2})
    with pytest.raises(ValueError, match="shape"):
        edit_region(np.zeros((4, 4)), np.zeros((4, 5)))


def test_names_match_synthhumans() -> None:
    from recapture.data.synthetic.people import BOTTOMS, CLOTHING_CHANGES, PART_GROUPS

    assert set(CLOTHING_CHANGE_EDITS) == set(CLOTHING_CHANGES)
    assert CLOTHING_CHANGE_GARMENTS == CLOTHING_CHANGES
    assert set(PART_GROUPS) <= set(FIGURE_GROUPS)
    assert set(BOTTOMS) == set(CLOTHING_SLOTS["lower"])
    for change, (garment_from, garment_to) in CLOTHING_CHANGES.items():
        edits = LayoutEdits.from_garments(garment_from, garment_to)
        assert edits == LayoutEdits.from_clothing_change(change)
        slot, category = edits.clothing[0]
        assert category == (garment_to if garment_to != "none" else f"no_{garment_from}")
    assert LayoutEdits.from_figure("legs", 0.85).figure == (("legs", 0.85),)
    with pytest.raises(ValueError, match="pants_to_skirt"):
        LayoutEdits.from_clothing_change("pants_to_kilt")
    with pytest.raises(ValueError, match="none->coat"):
        LayoutEdits.from_garments("pants", "kilt")
