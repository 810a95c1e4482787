"""Stand-ins for parts the source does not show (models/stand_in.py): a naive per-pixel reference, what is and is
not replaced, and the correspondence head unchanged where the source shows every part; the back-of-head fill."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

from recapture.body.keypoints import FLIP_PERMUTATION
from recapture.body.parts import get_label_set
from recapture.models.correspondence import CorrespondenceConfig, CorrespondenceGenerator, prepare_inputs
from recapture.models.layout_ops import to_one_hot
from recapture.models.sat import identity_grid
from recapture.models.stand_in import KIN, MIN_PIXELS, back_of_head_fill, kin_matrix, stand_ins

sys.path.insert(0, str(Path(__file__).parent))
from test_layout_prior import mannequin_keypoints, mannequin_layout  # noqa: E402

LIP20 = get_label_set("lip20")
PARTS = LIP20.num_parts


def naive(small: np.ndarray, source: np.ndarray, target: np.ndarray, landed: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, one image: ``small`` (3, h, w), hard ``source``/``target`` labels (h, w), ``landed`` (h, w) the
    source label the flow lands on."""
    absent, colour = np.zeros(target.shape), np.zeros((3, *target.shape))
    shown = {part for part in range(1, PARTS) if (source == part).sum() >= MIN_PIXELS}
    for y, x in np.ndindex(target.shape):
        part = int(target[y, x])
        if part == 0 or (source == part).any():
            continue
        kin = {LIP20.index(n) for group in KIN if LIP20.names[part] in group for n in group} - {part}
        present = [k for k in kin if k in shown]
        if not present:
            continue
        colour[:, y, x] = np.concatenate([small[:, source == k] for k in present], axis=1).mean(axis=1)
        absent[y, x] = float(landed[y, x] not in kin)
    return absent, colour


def person(height: int = 24, width: int = 16) -> np.ndarray:
    """A frontal person in jeans: face, shirt, arms (skin), pants, shoes."""
    labels = np.zeros((height, width), np.int64)
    labels[1:5, 6:10] = LIP20.index("face")
    labels[5:12, 4:12] = LIP20.index("upper_clothes")
    labels[5:12, 2:4] = LIP20.index("right_arm")
    labels[5:12, 12:14] = LIP20.index("left_arm")
    labels[12:21, 4:12] = LIP20.index("pants")
    labels[21:23, 4:12] = LIP20.index("left_shoe")
    return labels


def run(small: torch.Tensor, source: np.ndarray, target: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    height, width = target.shape
    grid = identity_grid(1, (height, width)).permute(0, 2, 3, 1)
    one_hot = [to_one_hot(torch.from_numpy(x)[None], PARTS) for x in (source, target)]
    return stand_ins(small, one_hot[0], one_hot[1], kin_matrix(LIP20), grid)


def test_stand_ins_match_a_naive_reference() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        source, target = person(), person()
        target[12:21, 4:12] = LIP20.index(rng.choice(["skirt", "pants", "dress"]))  # lower garment edited
        target[16:21, 4:12] = LIP20.index(rng.choice(["left_leg", "right_leg", "skirt"]))  # bare lower legs
        target[5:9, 2:4] = LIP20.index(rng.choice(["coat", "right_arm"]))
        source[0, 0] = target[0, 0] = LIP20.index("skirt")  # a speck the source shows: no stand-in
        small = torch.from_numpy(rng.uniform(-1, 1, (1, 3, *source.shape))).float()
        absent, colour = run(small, source, target)
        expected_absent, expected_colour = naive(small[0].numpy(), source, target, source)
        np.testing.assert_allclose(absent[0, 0].numpy(), expected_absent, atol=1e-6)
        np.testing.assert_allclose(colour[0].numpy(), expected_colour, atol=1e-5)


def test_bare_legs_take_the_skin_and_a_skirt_keeps_the_trousers_texture() -> None:
    source, target = person(), person()
    target[12:16, 3:13] = LIP20.index("skirt")
    target[16:21, 4:12] = LIP20.index("left_leg")
    small = torch.zeros(1, 3, *source.shape)
    small[0, 0][source == LIP20.index("right_arm")] = 0.5
    small[0, 0][source == LIP20.index("left_arm")] = 0.3
    absent, colour = run(small, source, target)
    legs = target == LIP20.index("left_leg")
    assert absent[0, 0][torch.from_numpy(legs)].gt(1 - 1e-5).all()  # sampled from the jeans: not kin of skin
    torch.testing.assert_close(colour[0, 0][torch.from_numpy(legs)], torch.full((int(legs.sum()),), 0.4))
    skirt = torch.from_numpy(target == LIP20.index("skirt"))
    over_pants = skirt & torch.from_numpy(source == LIP20.index("pants"))
    assert absent[0, 0][over_pants].eq(0).all()  # a skirt sampled from the trousers keeps their pixels
    assert absent[0, 0][skirt & ~over_pants].gt(1 - 1e-5).all()  # its flare beyond them takes their colour
    assert absent[0, 0][torch.from_numpy(~legs) & ~skirt].eq(0).all()  # parts the source shows: untouched


def test_a_part_without_shown_kin_is_left_alone() -> None:
    source = person()
    source[source == LIP20.index("upper_clothes")] = LIP20.index("face")  # no upper garment at all
    target = person()
    target[5:12, 4:12] = LIP20.index("coat")
    absent, colour = run(torch.rand(1, 3, *source.shape), source, target)
    assert absent.eq(0).all() and colour.eq(0).all()


def test_the_head_is_unchanged_where_the_source_shows_every_part() -> None:
    torch.manual_seed(0)
    config = CorrespondenceConfig(internal_size=(24, 16), base_channels=4, max_channels=8, num_down=2, sat_dim=4,
                                  lgr_dim=4, lgr_steps=1, refine_channels=4)
    outputs = {}
    labels = torch.from_numpy(np.kron(person(), np.ones((2, 2), np.int64))[None])  # 48x32
    points = np.array([[[4, 16], [10, 16], [10, 10], [18, 8], [24, 6], [10, 22], [18, 24], [24, 26], [24, 12],
                        [34, 12], [42, 12], [24, 20], [34, 20], [42, 20], [3, 15], [3, 17], [4, 14], [4, 18]]], float)
    moved = points + np.random.default_rng(1).normal(0, 1, points.shape)
    image = torch.rand(1, 3, 48, 32) * 2 - 1
    for flag in (False, True):
        torch.manual_seed(0)
        model = CorrespondenceGenerator(CorrespondenceConfig(**{**config.__dict__, "stand_ins": flag})).eval()
        inputs = prepare_inputs(model.config, labels, points, moved, labels)
        with torch.no_grad():
            outputs[flag] = model(image, inputs.source_layout, inputs.source_pose, inputs.target_layout,
                                  inputs.target_pose, inputs.prior)
    torch.testing.assert_close(outputs[True].image, outputs[False].image, rtol=0, atol=0)
    edited = labels.clone()
    edited[:, 30:42, 8:24] = LIP20.index("left_leg")  # bare lower legs the source does not show
    with torch.no_grad():
        inputs = prepare_inputs(model.config, labels, points, moved, edited)
        made = model(image, inputs.source_layout, inputs.source_pose, inputs.target_layout, inputs.target_pose,
                     inputs.prior)
    assert made.invented[0, 0, 32:40, 10:22].min() > 0.99  # painted as skin, marked invented
    assert torch.isfinite(made.image).all()


def test_back_of_head_fill_matches_a_naive_reference() -> None:
    """Pairs turning the person's back: target hair pixels whose (identity) flow lands on the source face or
    sunglasses take the mean colour of the source hair; a pair not turning, and a source without hair, keep
    everything."""
    hair, face, sunglasses = (LIP20.index(n) for n in ("hair", "face", "sunglasses"))
    source = person()
    source[0:2, 5:11] = hair
    source[2, 6:8] = sunglasses
    bald = person()
    target = person()
    target[0:5, 5:11] = hair  # the back of the head: hair where the source shows face, sunglasses and hair
    small = torch.rand(3, 3, *source.shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    grid = identity_grid(3, source.shape).permute(0, 2, 3, 1)
    sources = to_one_hot(torch.from_numpy(np.stack([source, source, bald])), PARTS)
    targets = to_one_hot(torch.from_numpy(np.stack([target] * 3)), PARTS)
    turned = torch.tensor([1.0, 0.0, 1.0])
    painted, colour = back_of_head_fill(small, sources, targets, grid, turned, hair, [face, sunglasses])
    expected = np.zeros(source.shape)
    mean = small[0].numpy()[:, source == hair].mean(axis=1)
    for y, x in np.ndindex(source.shape):
        expected[y, x] = float(target[y, x] == hair and source[y, x] in (face, sunglasses))
    assert np.allclose(painted[0, 0].numpy(), expected, atol=1e-5) and expected.sum() == 12  # 10 face, 2 sunglasses
    on_hair = torch.from_numpy(target == hair)
    assert torch.allclose(colour[0][:, on_hair], torch.from_numpy(mean).float()[:, None].expand(3, int(on_hair.sum())),
                          atol=1e-6)
    assert colour[0][:, ~on_hair].abs().max() == 0
    assert painted[1:].abs().max() == 0 and colour[1:].abs().max() == 0  # not turned; no source hair


def test_back_of_head_fill_in_the_head_marks_the_back_of_the_head_invented() -> None:
    """The correspondence head with ``prepare_inputs``: a target turning its back (the source's joints with left and
    right swapped) gets the fill over the place of the face, marked invented; with the rule off it does not."""
    size = (64, 48)
    source_points = mannequin_keypoints(1.0)
    target_points = source_points[list(FLIP_PERMUTATION)]
    labels = mannequin_layout(source_points, size, 1.0)
    hair, face = LIP20.index("hair"), LIP20.index("face")
    behind = np.where(labels == face, hair, labels)
    config = CorrespondenceConfig(internal_size=size, base_channels=4, max_channels=8, sat_dim=4, lgr_dim=4,
                                  refine_channels=2)
    torch.manual_seed(0)
    image = torch.rand(1, 3, *size) * 2 - 1
    as_long = [torch.from_numpy(x.astype(np.int64))[None] for x in (labels, behind)]
    rendered = {}
    for flag in (False, True):
        model = CorrespondenceGenerator(dataclasses.replace(config, back_of_head_fill=flag)).eval()
        inputs = prepare_inputs(model.config, as_long[0], source_points[None], target_points[None], as_long[1])
        assert inputs.prior.turned.tolist() == [1.0]
        with torch.no_grad():
            rendered[flag] = model(image, inputs.source_layout, inputs.source_pose, inputs.target_layout,
                                   inputs.target_pose, inputs.prior)
    place = torch.from_numpy(labels == face)
    assert place.sum() > 20 and (labels == hair).sum() >= MIN_PIXELS
    assert rendered[True].invented[0, 0][place].mean() > 0.9 and rendered[False].invented[0, 0][place].mean() < 0.1
