"""SynthHumans: determinism, keypoint/label agreement, left/right, views, colours, invisible masks, edits,
and the written dataset read back by recapture.data.formats and `recapture data inspect`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from recapture.body.keypoints import KEYPOINT_INDEX, KEYPOINT_NAMES
from recapture.body.parts import LIP20, merge_lip20
from recapture.cli import app
from recapture.data.errors import FormatError
from recapture.data.formats import layout_name, pair_name, read_annotations, read_image, read_layout, read_pairs
from recapture.data.manifest import read_manifest
from recapture.data.synthetic import (
    ClothingEdit, FigureEdit, SynthConfig, generate, invisible_mask, parse_size, read_edits, render_person,
    sample_articulation, sample_identity, sample_shot,
)
from recapture.data.synthetic.render import Background, majority_labels
from recapture.data.synthetic.articulation import LIMITS, Articulation

SIZE = (128, 64)
L = {name: i for i, name in enumerate(LIP20.names)}
CLOTHES = {"upper_clothes", "dress", "coat"}
LOWER = {"pants", "skirt", "dress", "coat", "upper_clothes"}


def _allowed(joint: str) -> set[int]:
    """LIP-20 labels a visible keypoint may lie on (its own body part or the garment covering it)."""
    side = joint.split("_")[0]
    head = {"face", "hair", "hat", "sunglasses"}
    table = {
        "shoulder": CLOTHES | {"hair", f"{side}_arm"}, "elbow": {"upper_clothes", "coat", f"{side}_arm", "glove"},
        "wrist": {"upper_clothes", "coat", f"{side}_arm", "glove"}, "hip": LOWER | {f"{side}_leg"},
        "knee": LOWER | {f"{side}_leg", "socks"}, "ankle": {"pants", "socks", f"{side}_leg", f"{side}_shoe"},
    }
    if joint == "neck":
        names = CLOTHES | head | {"left_arm", "right_arm"}
    elif joint in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"):
        names = head
    else:
        names = table[joint.split("_", 1)[1]]
    return {L[n] for n in names}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _pose(yaw: float, view: str, elevation: float = 20.0) -> Articulation:
    arm = (elevation, 0.0, 10.0, 0.0)
    return Articulation(view=view, yaw=yaw, torso=(0.0, 0.0, 0.0), head=(0.0, 0.0, 0.0), arms=(arm, arm),
                legs=((0.0, 6.0, 5.0, 10.0),) * 2, height=0.85, top=0.05, centre=0.5)


PLAIN = Background("plain", (0.0, 255.0, 0.0), (0.0, 255.0, 0.0), None, 1.0, (), 0.0, 0.0, 0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> SynthConfig:
    config = SynthConfig(tmp_path_factory.mktemp("synth") / "a", people=5, poses=3, size=SIZE, seed=7)
    generate(config)
    return config


def test_same_seed_byte_identical_with_workers(dataset: SynthConfig, tmp_path: Path) -> None:
    again = generate(dataclasses.replace(dataset, out=tmp_path / "b", workers=2))
    assert again.total_images > 0
    assert _files(dataset.out) == _files(tmp_path / "b")
    other = generate(dataclasses.replace(dataset, out=tmp_path / "c", seed=8))
    assert other.images == again.images
    assert _files(tmp_path / "c") != _files(dataset.out)


@pytest.mark.slow
def test_spawn_workers_identical(dataset: SynthConfig, tmp_path: Path) -> None:
    generate(dataclasses.replace(dataset, out=tmp_path / "s", workers=2, start_method="spawn"))
    assert _files(dataset.out) == _files(tmp_path / "s")


def test_image_depends_on_seed_person_pose_only(dataset: SynthConfig, tmp_path: Path) -> None:
    bigger = dataclasses.replace(dataset, out=tmp_path / "big", people=7)
    generate(bigger)
    for person in range(dataset.people):
        name = f"p{person:04d}_v01.png"
        first = [p for p in dataset.out.glob(f"*/{name}") if p.parent.name in ("train", "test")]
        second = [p for p in bigger.out.glob(f"*/{name}") if p.parent.name in ("train", "test")]
        assert first[0].read_bytes() == second[0].read_bytes()


def test_dataset_reads_back_and_inspects(dataset: SynthConfig) -> None:
    manifest = read_manifest(dataset.out / "manifest.yaml")
    assert set(manifest.splits) == {"train", "test", "edit_figure", "edit_clothing"}
    people = {}
    for split_name, split in manifest.splits.items():
        table = read_annotations(manifest.resolve(split.annotations))
        pairs = read_pairs(manifest.resolve(split.pairs))
        assert pairs and all(s in table and t in table for s, t in pairs)
        for name in table.names:
            image = read_image(manifest.resolve(split.images) / name)
            layout = read_layout(manifest.resolve(split.layouts) / layout_name(name), num_parts=20)
            assert image.shape == (*SIZE, 3) and layout.shape == SIZE and (layout > 0).any()
            if split_name in ("train", "test"):
                people.setdefault(split_name, set()).add(name[:5])
    assert people["train"].isdisjoint(people["test"]), "train/test must be split by identity"
    result = CliRunner().invoke(app, ["data", "inspect", str(dataset.out / "manifest.yaml")])
    assert result.exit_code == 0, result.output


def test_written_keypoints_match_renderer(dataset: SynthConfig) -> None:
    table = read_annotations(dataset.out / "annotations-train.csv")
    name = table.names[0]
    person, pose_index = int(name[1:5]), int(name[7:9])
    pose, background = sample_shot(dataset.seed, person, pose_index, "plain", dataset.crop_probability)
    rendering = render_person(sample_identity(dataset.seed, person), pose, background, SIZE)
    np.testing.assert_array_equal(table.get(name), rendering.keypoints)
    np.testing.assert_array_equal(read_image(dataset.out / "train" / name), rendering.image)


def _renders(count: int, size: tuple[int, int] = SIZE, seed: int = 11):
    for person in range(count):
        pose, background = sample_shot(seed, person, 0, "cluttered" if person % 3 == 0 else "plain", 0.2)
        yield pose, render_person(sample_identity(seed, person), pose, background, size)


@pytest.mark.parametrize("size", [SIZE, (256, 176)])
def test_keypoints_lie_on_their_parts(size: tuple[int, int]) -> None:
    present = 0
    seen = np.zeros(len(KEYPOINT_NAMES), bool)
    count = 60 if size == SIZE else 20
    for pose, rendering in _renders(count, size):
        for k, (y, x) in enumerate(rendering.keypoints):
            if y == -1:
                continue
            present += 1
            seen[k] = True
            label = LIP20.names[rendering.layout[y, x]]
            assert rendering.layout[y, x] in _allowed(KEYPOINT_NAMES[k]), (KEYPOINT_NAMES[k], label, pose.view)
    assert present > 0.6 * count * len(KEYPOINT_NAMES)
    assert seen.all()


def test_left_right_front_and_back() -> None:
    wrist_ok = {"left": {L["left_arm"], L["glove"], L["upper_clothes"], L["coat"]},
                "right": {L["right_arm"], L["glove"], L["upper_clothes"], L["coat"]}}
    checked = 0
    for person in range(12):
        identity = sample_identity(3, person)
        for yaw, view in ((0.0, "front"), (180.0, "back")):
            rendering = render_person(identity, _pose(yaw, view), PLAIN, SIZE)
            kp = rendering.keypoints
            left_x, right_x = kp[KEYPOINT_INDEX["left_shoulder"], 1], kp[KEYPOINT_INDEX["right_shoulder"], 1]
            assert (left_x > right_x) if view == "front" else (left_x < right_x)
            for side in ("left", "right"):
                y, x = kp[KEYPOINT_INDEX[f"{side}_wrist"]]
                assert y >= 0
                assert rendering.layout[y, x] in wrist_ok[side], (view, side, LIP20.names[rendering.layout[y, x]])
                checked += 1
            left, right = (np.argwhere(rendering.layout == L[f"{s}_arm"])[:, 1] for s in ("left", "right"))
            if len(left) and len(right):
                assert (left.mean() > right.mean()) == (view == "front")
    assert checked == 48


def test_view_rules_for_face_keypoints() -> None:
    identity = sample_identity(0, 1)
    back = render_person(identity, _pose(180.0, "back"), PLAIN, SIZE).keypoints
    for name in ("nose", "left_eye", "right_eye"):
        assert (back[KEYPOINT_INDEX[name]] == -1).all()
    right_side = render_person(identity, _pose(90.0, "right_side"), PLAIN, SIZE).keypoints
    assert (right_side[KEYPOINT_INDEX["left_ear"]] == -1).all() and (right_side[KEYPOINT_INDEX["left_eye"]] == -1).all()
    assert (right_side[KEYPOINT_INDEX["right_eye"]] >= 0).all()
    front = render_person(identity, _pose(0.0, "front"), PLAIN, SIZE).keypoints
    assert (front >= 0).all()


def test_layout_is_exactly_the_rendered_body() -> None:
    for person in range(8):
        pose = sample_articulation(np.random.default_rng(person))
        rendering = render_person(sample_identity(5, person), pose, PLAIN, (256, 176))
        body = (rendering.layout > 0).astype(np.uint8)
        kernel = np.ones((3, 3), np.uint8)
        outside = cv2.dilate(body, kernel) == 0
        inside = cv2.erode(body, kernel) == 1
        assert (rendering.image[outside] == (0, 255, 0)).all()
        distance = np.abs(rendering.image[inside].astype(int) - (0, 255, 0)).sum(axis=1)
        assert (distance > 8).mean() > 0.995
        count, components = cv2.connectedComponents(body)
        assert np.bincount(components[body > 0]).max() >= 0.9 * body.sum()


def test_garment_colour_is_fixed_per_person() -> None:
    medians = []
    outfits = {p: sample_identity(2, p).outfit for p in range(60)}
    people = [p for p, o in outfits.items() if o.top_texture.kind == "plain" and o.top != "dress" and not o.coat][:4]
    assert len(people) == 4
    for person in people:
        identity = sample_identity(2, person)
        colours = []
        for pose_index in range(4):
            pose, _ = sample_shot(2, person, pose_index, "plain", 0.0)
            rendering = render_person(identity, pose, PLAIN, (256, 176))
            shirt = cv2.erode((rendering.layout == L["upper_clothes"]).astype(np.uint8), np.ones((3, 3), np.uint8))
            colours.append(np.median(rendering.image[shirt > 0], axis=0))
        colours = np.array(colours)
        assert np.abs(colours - colours.mean(axis=0)).max() < 25, (person, colours)
        medians.append(colours.mean(axis=0))
    assert np.abs(medians[0] - medians[1]).sum() + np.abs(medians[2] - medians[3]).sum() > 0


def test_invisible_mask_rule_and_files(dataset: SynthConfig) -> None:
    source = np.array([[0, 5, 5], [14, 14, 0]], np.uint8)
    target = np.array([[15, 5, 9], [0, 14, 9]], np.uint8)
    expected = np.array([[1, 0, 1], [0, 0, 1]], bool)
    np.testing.assert_array_equal(invisible_mask(source, target), expected)
    np.testing.assert_array_equal(invisible_mask(source, target, min_source_pixels=2), expected)
    np.testing.assert_array_equal(invisible_mask(source, target, min_source_pixels=3), target > 0)
    folder = dataset.out / "test_invisible"
    for source_name, target_name in read_pairs(dataset.out / "pairs-test.csv"):
        mask = cv2.imread(str(folder / pair_name(source_name, target_name)), cv2.IMREAD_UNCHANGED)
        truth = invisible_mask(read_layout(dataset.out / "test_layouts" / layout_name(source_name)),
                               read_layout(dataset.out / "test_layouts" / layout_name(target_name)))
        np.testing.assert_array_equal(mask, truth.astype(np.uint8) * 255)


def test_invisible_mask_on_a_cropped_source() -> None:
    identity = sample_identity(6, 0)
    zoomed = dataclasses.replace(_pose(0.0, "front"), height=1.9)
    source = render_person(identity, zoomed, PLAIN, SIZE).layout
    target = render_person(identity, _pose(0.0, "front"), PLAIN, SIZE).layout
    shoes = np.isin(target, [L["left_shoe"], L["right_shoe"]])
    assert shoes.any() and not np.isin(source, [L["left_shoe"], L["right_shoe"]]).any()
    mask = invisible_mask(source, target)
    np.testing.assert_array_equal(mask[shoes], True)
    assert not mask[target == L["face"]].any()
    assert not mask[target == 0].any()


def test_edit_pairs_are_the_edits_they_claim(dataset: SynthConfig) -> None:
    for split in ("edit_figure", "edit_clothing"):
        records = read_edits(dataset.out / f"edits-{split}.csv")
        assert [(r.source, r.target) for r in records] == read_pairs(dataset.out / f"pairs-{split}.csv")
        for record in records:
            original = read_layout(dataset.out / "test_layouts" / layout_name(record.target.rsplit("_", 1)[0] + ".png"))
            edited = read_layout(dataset.out / f"{split}_layouts" / layout_name(record.target))
            source_bytes = (dataset.out / split / record.source).read_bytes()
            assert source_bytes == (dataset.out / "test" / record.source).read_bytes()
            if record.kind == "figure":
                grown = int((edited > 0).sum()) - int((original > 0).sum())
                assert grown * (record.factor - 1.0) >= 0, (record, grown)
            elif record.garment_to != "none":
                label = {"long_sleeves": "upper_clothes"}.get(record.garment_to, record.garment_to)
                assert (edited == L[label]).sum() > 0, record
            else:
                assert (edited == L["coat"]).sum() == 0 and (original == L["coat"]).sum() > 0


def test_figure_and_clothing_edits_change_the_layout() -> None:
    identity = sample_identity(4, 0)
    pose = _pose(0.0, "front", elevation=30.0)
    base = render_person(identity, pose, PLAIN, (256, 176)).layout
    for group, labels in (("arms", ("left_arm", "right_arm")), ("legs", ("left_leg", "right_leg", "pants", "skirt"))):
        fat = render_person(FigureEdit(group, 1.3).apply(identity), pose, PLAIN, (256, 176)).layout
        thin = render_person(FigureEdit(group, 0.8).apply(identity), pose, PLAIN, (256, 176)).layout
        area = [np.isin(x, [L[n] for n in labels]).sum() for x in (thin, base, fat)]
        assert area[0] < area[1] < area[2], (group, area)
    with_coat = ClothingEdit("add_coat").apply(dataclasses.replace(
        identity, outfit=dataclasses.replace(identity.outfit, coat=False)))
    assert (render_person(with_coat, pose, PLAIN, (256, 176)).layout == L["coat"]).sum() > 500
    outfit = dataclasses.replace(identity.outfit, top="t_shirt", bottom="shorts", coat=False)
    shorts = dataclasses.replace(identity, outfit=outfit)
    pants = ClothingEdit("shorts_to_pants").apply(shorts)
    legs = [np.isin(render_person(x, pose, PLAIN, (256, 176)).layout, [L["left_leg"], L["right_leg"]]).sum()
            for x in (shorts, pants)]
    assert legs[0] > legs[1]
    with pytest.raises(ValueError, match="does not apply"):
        ClothingEdit("pants_to_skirt").apply(shorts)


def test_market7_layouts_are_the_merge(dataset: SynthConfig, tmp_path: Path) -> None:
    market = dataclasses.replace(dataset, out=tmp_path / "m", label_set="market7")
    generate(market)
    assert read_manifest(market.out / "manifest.yaml").label_set == "market7"
    for path in sorted((dataset.out / "train_layouts").glob("*.png"))[:5]:
        merged = read_layout(market.out / "train_layouts" / path.name, num_parts=7)
        np.testing.assert_array_equal(merged, merge_lip20(read_layout(path), "market7"))
        assert (market.out / "train" / path.name).read_bytes() == (dataset.out / "train" / path.name).read_bytes()


@pytest.mark.parametrize("s", [2, 3])
def test_majority_labels_matches_naive_vote(s: int) -> None:
    rng = np.random.default_rng(s)
    labels = rng.choice([0, 0, 5, 14, 19], size=(6 * s, 5 * s)).astype(np.uint8)
    labels[:s, :s] = 7
    fast = majority_labels(labels, s)
    for y in range(6):
        for x in range(5):
            block = labels[y * s:(y + 1) * s, x * s:(x + 1) * s].ravel().tolist()
            score = {v: 2 * block.count(v) - (v == 0) for v in set(block)}
            best = max(score.values())
            assert fast[y, x] == min(v for v, c in score.items() if c == best)
    assert fast[0, 0] == 7


def test_pose_sampler_respects_joint_limits() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        pose = sample_articulation(rng)
        for side in range(2):
            for name, value in zip(("arm_elevation", "arm_azimuth", "elbow", "arm_twist"), pose.arms[side]):
                assert LIMITS[name][0] <= value <= LIMITS[name][1]
            for name, value in zip(("hip_flexion", "hip_abduction", "knee", "toe_out"), pose.legs[side]):
                assert LIMITS[name][0] <= value <= LIMITS[name][1]


def test_cli_synth_and_preview(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["synth", "--out", str(tmp_path / "d"), "--people", "2", "--poses", "2",
                                 "--size", "128x64", "--labels", "market7", "--background", "cluttered"])
    assert result.exit_code == 0, result.output
    assert read_manifest(tmp_path / "d" / "manifest.yaml").image_size == (128, 64)
    result = runner.invoke(app, ["synth", "--preview", str(tmp_path / "p.png"), "--size", "128x64", "--seed", "1"])
    assert result.exit_code == 0, result.output
    sheet = read_image(tmp_path / "p.png")
    assert sheet.shape[0] == 4 * 128 and sheet.shape[1] == 10 * 64
    assert runner.invoke(app, ["synth", "--out", str(tmp_path / "e"), "--size", "12by4"]).exit_code == 2


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 2 people"):
        SynthConfig(tmp_path, people=1, poses=3)
    with pytest.raises(ValueError, match="HxW"):
        parse_size("256-176")
    bad = tmp_path / "edits.csv"
    bad.write_text("from,to,part_group,factor\na.png,b.png,tail,1.2\n")
    with pytest.raises(FormatError, match="line 2.*part_group"):
        read_edits(bad)


def test_camera_background_is_the_wall_at_the_reference_framing_and_zooms_with_the_person() -> None:
    """``render.camera_background``: the still wall at the reference framing, and for a closer framing each row
    the reference wall's row that the zoom about the person maps it to (a naive linear interpolation)."""
    from recapture.data.synthetic.articulation import sample_articulation
    from recapture.data.synthetic.render import (
        CAMERA_HEIGHT, CAMERA_TOP, camera_background, draw_background, sample_background,
    )

    rng = np.random.default_rng(3)
    wall = dataclasses.replace(sample_background(rng, "plain"), top=(200, 180, 160), bottom=(120, 140, 230))
    size = (96, 64)
    pose = dataclasses.replace(sample_articulation(rng), height=CAMERA_HEIGHT, top=CAMERA_TOP)
    still = draw_background(wall, size)
    np.testing.assert_allclose(camera_background(wall, pose, size), still, atol=1e-3)
    closer = dataclasses.replace(pose, height=1.72, top=0.02)
    zoomed = camera_background(wall, closer, size)
    factor = CAMERA_HEIGHT / closer.height
    for row in (0, 20, 47, 95):
        reference = float(np.clip(factor * row + (CAMERA_TOP - closer.top * factor) * size[0], 0, size[0] - 1))
        low = int(np.floor(reference))
        high = min(low + 1, size[0] - 1)
        expected = (1 - (reference - low)) * still[low, 0] + (reference - low) * still[high, 0]
        np.testing.assert_allclose(zoomed[row, 10], expected, atol=0.05)
    assert not np.allclose(zoomed, still, atol=1.0)
