"""Garment-colour training views of the CCP parser: each garment recoloured on its own
(training/parser_data.py::recolour_garments), drawn apart from the other augmentations."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from recapture.body.parts import LIP20
from recapture.training.parser_data import GARMENTS, cache_plans, recolour_garments


def top_and_skirt(colour: tuple[int, int, int] = (200, 40, 40)) -> tuple[np.ndarray, np.ndarray]:
    """A ``(64, 48, 3)`` grey crop with a top over a skirt of one saturated ``colour`` and their labels."""
    image = np.full((64, 48, 3), 128, np.uint8)
    labels = np.zeros((64, 48), np.uint8)
    labels[8:30, 12:36] = LIP20.index("upper_clothes")
    labels[30:56, 10:38] = LIP20.index("skirt")
    image[labels > 0] = colour
    return image, labels


def hue(pixel: np.ndarray) -> int:
    return int(cv2.cvtColor(pixel.reshape(1, 1, 3).astype(np.uint8), cv2.COLOR_RGB2HSV)[0, 0, 0])


def test_each_garment_gets_its_own_colour_and_the_rest_stays() -> None:
    image, labels = top_and_skirt()
    changed = [s for s in range(40) if hue(recolour_garments(image, labels, s)[15, 24]) !=
               hue(recolour_garments(image, labels, s)[45, 24])]
    assert len(changed) > 25  # one colour before; two garments, two independent draws after
    out = recolour_garments(image, labels, changed[0])
    assert np.abs(out[:4].astype(int) - image[:4]).max() == 0 and np.abs(out[60:].astype(int) - image[60:]).max() == 0  # off the garments
    inside_top = out[12:26, 16:32].reshape(-1, 3)
    assert (inside_top == inside_top[0]).all()  # one garment, one transform
    assert np.array_equal(recolour_garments(image, labels, changed[0]), out)  # the seed fixes the view


def test_one_dress_keeps_one_colour_from_neckline_to_hem() -> None:
    image, labels = top_and_skirt()
    labels[labels > 0] = LIP20.index("dress")
    for seed in range(10):
        out = recolour_garments(image, labels, seed)
        assert hue(out[15, 24]) == hue(out[45, 24])


def test_garment_views_are_the_other_views_recoloured() -> None:
    ids = tuple(range(1, 41))
    plain = cache_plans(ids, 2, seed=5, cut_share=0.5)
    painted = cache_plans(ids, 2, seed=5, cut_share=0.5, garment_share=0.67)
    assert [(i, replace(a, garment_seed=None)) for i, a in painted] == plain
    seeds = [a.garment_seed for _, a in painted]
    assert all(s is None for s in seeds[:2 * len(ids)])  # the plain view and its mirror stay as photographed
    share = np.mean([s is not None for s in seeds[2 * len(ids):]])
    assert 0.5 < share < 0.8
    assert set(GARMENTS) <= set(LIP20.names)
