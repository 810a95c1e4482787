"""The parser's superpixel pooling (models/parser_rules.superpixel_pooled) and its setting in weight files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from skimage.segmentation import slic

from recapture.config import ConfigError, from_dict, to_dict
from recapture.hub import WeightsError
from recapture.models.parser_rules import SuperpixelPooling, superpixel_pooled, superpixel_regions
from recapture.pipelines.human_parsing import CcpParser, superpixel_setting


def _random_probabilities(rng: np.random.Generator, height: int, width: int, parts: int = 20) -> np.ndarray:
    logits = rng.normal(size=(height, width, parts)).astype(np.float32)
    exp = np.exp(logits - logits.max(axis=2, keepdims=True))
    return (exp / exp.sum(axis=2, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("connected", [True, False])
def test_pooling_equals_a_naive_mean_per_superpixel(connected: bool) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(36, 28, 3), dtype=np.uint8)
    image[:, 14:] //= 4  # a colour edge for SLIC to find
    probabilities = _random_probabilities(rng, 36, 28)
    pooling = SuperpixelPooling(segments=(12, 40), compactness=10.0, iterations=3, connected=connected, weight=0.6)
    expected = np.zeros((36, 28, 20), np.float64)
    for segments in pooling.segments:
        regions = slic(image, n_segments=segments, compactness=10.0, max_num_iter=3, start_label=0,
                       enforce_connectivity=pooling.connected)
        for label in np.unique(regions):
            inside = regions == label
            expected[inside] += probabilities[inside].astype(np.float64).mean(axis=0)
    expected = 0.4 * probabilities + 0.6 * expected / 2
    pooled = superpixel_pooled(probabilities, image, pooling)
    assert pooled.shape == probabilities.shape and pooled.dtype == np.float32
    np.testing.assert_allclose(pooled, expected, atol=1e-6)
    np.testing.assert_allclose(pooled.sum(axis=2), 1.0, atol=1e-5)


def test_pooling_moves_a_part_edge_onto_the_colour_edge() -> None:
    """A network edge 4 px left of the photo's colour edge ends on the colour edge after pooling."""
    image = np.zeros((48, 64, 3), np.uint8)
    image[:, :32] = (200, 40, 40)
    image[:, 32:] = (30, 60, 210)
    probabilities = np.zeros((48, 64, 20), np.float32)
    probabilities[:, :28, 5] = 0.9
    probabilities[:, 28:, 9] = 0.9
    probabilities[..., 0] = 0.1
    pooled = superpixel_pooled(probabilities, image, SuperpixelPooling(segments=(24, 48), weight=1.0))
    labels = pooled.argmax(axis=2)
    assert (labels[:, :32] == 5).all() and (labels[:, 32:] == 9).all()
    assert (probabilities.argmax(axis=2)[:, 28:32] == 9).all()  # before: the four columns were wrong


def test_weight_zero_is_the_network_unchanged() -> None:
    probabilities = _random_probabilities(np.random.default_rng(1), 8, 6)
    assert superpixel_pooled(probabilities, np.zeros((8, 6, 3), np.uint8), SuperpixelPooling()) is probabilities


@pytest.mark.parametrize("values", [{"weight": 1.5}, {"weight": -0.1}, {"segments": []}, {"segments": [0, 10]},
                                    {"compactness": 0.0}, {"iterations": 0}])
def test_bad_settings_are_config_errors(values: dict) -> None:
    with pytest.raises(ConfigError, match="superpixels"):
        from_dict(SuperpixelPooling, values)


def test_setting_round_trips_through_metadata_and_bad_metadata_names_the_file() -> None:
    shipped = SuperpixelPooling(segments=(500, 1000, 2000), compactness=15.0, iterations=4, connected=False,
                                weight=0.7)
    assert superpixel_setting({"superpixels": json.dumps(to_dict(shipped))}, "x.safetensors") == shipped
    assert superpixel_setting({}, "old.safetensors").weight == 0.0  # files before the pooling: off
    for bad in ('{"weight": 2}', '{"segment": [5]}', "[1, 2]", "not json", '{"segments": 5}'):
        with pytest.raises(WeightsError, match=r"bad\.safetensors \(bad superpixels setting"):
            superpixel_setting({"superpixels": bad}, "bad.safetensors")


@pytest.mark.parametrize("side", [True, False])
def test_segmentations_made_beside_the_network_are_those_made_in_turn(side: bool, monkeypatch) -> None:  # noqa: ANN001
    """CcpParser.start_superpixels on the side thread (two threads) or in turn (one): the same segmentations,
    so the pooled probabilities do not depend on the thread count."""
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, size=(40, 26, 3), dtype=np.uint8)
    parser = CcpParser.__new__(CcpParser)  # no network: only the superpixel step is exercised
    parser.superpixels = SuperpixelPooling(segments=(10, 30), connected=False, weight=0.7)
    monkeypatch.setattr(CcpParser, "side_thread", lambda self: side)
    made = parser.start_superpixels(image)()
    expected = [slic(image, n_segments=n, compactness=15.0, max_num_iter=4, enforce_connectivity=False,
                     start_label=0).ravel() for n in (10, 30)]
    assert len(made) == 2 and all((a == b).all() for a, b in zip(made, expected))
    parser.superpixels = SuperpixelPooling()
    assert parser.start_superpixels(image) is None


@pytest.mark.parametrize("value", [0, 255])
def test_a_plain_crop_pools_without_nan(value: int) -> None:
    """A crop of one colour (a black-padded photo edge, a white wall): finite probabilities that still sum to 1."""
    probabilities = _random_probabilities(np.random.default_rng(3), 64, 40)
    pooled = superpixel_pooled(probabilities, np.full((64, 40, 3), value, np.uint8),
                               SuperpixelPooling(connected=False, weight=0.7))
    assert np.isfinite(pooled).all()
    np.testing.assert_allclose(pooled.sum(axis=2), 1.0, atol=1e-5)


@pytest.mark.parametrize("connected", [True, False])
def test_one_lab_conversion_gives_slics_own_segmentations(connected: bool) -> None:
    """superpixel_regions converts to Lab once for all scales: the segmentations of SLIC given the RGB crop."""
    rng = np.random.default_rng(5)
    ys, xs = np.mgrid[0:80, 0:52]
    image = np.stack([ys * 3, xs * 4, (ys + xs) * 2], axis=2) + rng.integers(0, 40, size=(80, 52, 3))
    image = np.clip(image, 0, 255).astype(np.uint8)
    pooling = SuperpixelPooling(segments=(30, 120), compactness=15.0, iterations=4, connected=connected, weight=0.7)
    found = superpixel_regions(image, pooling)
    for regions, segments in zip(found, pooling.segments):
        own = slic(image, n_segments=segments, compactness=15.0, max_num_iter=4, start_label=0,
                   enforce_connectivity=connected)
        np.testing.assert_array_equal(regions, own.ravel())
