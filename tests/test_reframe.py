"""A camera that zoomed (models/reframe.py): the similarity, the re-framed source against a naive reference, the
pairs it leaves alone, and the generator's switch."""

from __future__ import annotations

import dataclasses
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from recapture.body.keypoints import keypoints_to_heatmaps
from recapture.config import ConfigError, ModelConfig
from recapture.hub import load_generator
from recapture.models.layout_ops import to_one_hot
from recapture.models.reframe import reframe_source, zoom_between
from recapture.pipelines.recapture import Recapturer, SourceInput

sys.path.insert(0, str(Path(__file__).parent))
from test_layout_prior import mannequin_keypoints, mannequin_layout  # noqa: E402

SIZE = (64, 44)


def _scaled(keypoints: np.ndarray, scale: float, shift: tuple[float, float]) -> np.ndarray:
    present = (keypoints >= 0).all(axis=1)
    return np.where(present[:, None], keypoints * scale + np.asarray(shift), -1.0)


def _naive_bilinear(image: np.ndarray, y: float, x: float) -> np.ndarray:
    """``(C,)`` bilinear sample of ``(C, H, W)`` at pixel ``(y, x)``, the border repeated outside."""
    height, width = image.shape[1:]
    y, x = min(max(y, 0.0), height - 1.0), min(max(x, 0.0), width - 1.0)
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    y1, x1 = min(y0 + 1, height - 1), min(x0 + 1, width - 1)
    dy, dx = y - y0, x - x0
    return ((1 - dy) * (1 - dx) * image[:, y0, x0] + (1 - dy) * dx * image[:, y0, x1]
            + dy * (1 - dx) * image[:, y1, x0] + dy * dx * image[:, y1, x1])


def test_zoom_between_recovers_a_known_similarity() -> None:
    source = mannequin_keypoints()
    scale, shift = zoom_between(source, _scaled(source, 1.7, (-12.0, 5.0)))
    assert scale == pytest.approx(1.7)
    np.testing.assert_allclose(shift, [-12.0, 5.0], atol=1e-9)
    torsoless = source.copy()
    torsoless[[1, 2, 5, 8, 11]] = -1.0
    assert zoom_between(torsoless, source) is None
    bent = source.copy()  # the torso foreshortened to half its length, the limbs as they were: not a zoom
    bent[[0, 1, 2, 3, 4, 5, 6, 7, 14, 15, 16, 17]] += [(34 - 15) / 2, 0.0]
    assert zoom_between(source, bent) is None
    collapsed = source.copy()
    collapsed[3] = collapsed[2]  # a bone of length 0 in the source: left out of the agreement, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert zoom_between(collapsed, _scaled(source, 1.5, (0.0, 0.0)))[0] == pytest.approx(1.5)
    one_hip = _scaled(source, 2.0, (0.0, 0.0))
    one_hip[11] = -1.0  # a side view shows one hip: the torso still measures the zoom
    assert zoom_between(source, one_hip)[0] == pytest.approx(2.0, rel=0.05)


def test_reframed_source_matches_a_naive_resampling_and_lands_on_the_target_torso() -> None:
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, *SIZE, generator=generator) * 2 - 1
    source = mannequin_keypoints()
    layout = to_one_hot(torch.from_numpy(mannequin_layout(source).astype(np.int64))[None], 20).float()
    scale, shift = 1.6, (-20.0, -8.0)
    target = _scaled(source, scale, shift)
    framed = reframe_source(image, layout, source[None], target[None], zoom=1.25)
    assert framed.zoomed.tolist() == [True]
    pixels = image[0].numpy()
    for y, x in [(0, 0), (10, 7), (33, 21), (63, 43), (47, 30)]:
        expected = _naive_bilinear(pixels, (y - shift[0]) / scale, (x - shift[1]) / scale)
        np.testing.assert_allclose(framed.source_image[0, :, y, x].numpy(), expected, atol=1e-5)
    inside = (target >= 0).all(axis=1) & (target[:, 0] <= SIZE[0] - 1) & (target[:, 1] <= SIZE[1] - 1) \
        & (target[:, 1] >= 0) & (target[:, 0] >= 0)
    np.testing.assert_allclose(framed.source_keypoints[0][inside], target[inside], atol=1e-9)
    assert (framed.source_keypoints[0][~inside] == -1).all() and (~inside).any()
    assert torch.allclose(framed.source_layout.sum(1), torch.ones(1, *SIZE))


def test_pairs_within_the_zoom_factor_without_a_torso_or_zooming_out_are_left_alone() -> None:
    image = torch.rand(2, 3, *SIZE)
    layout = torch.rand(2, 20, *SIZE)
    source = mannequin_keypoints()
    bare = np.full((18, 2), -1.0)
    target = np.stack([_scaled(source, 1.2, (3.0, 1.0)), _scaled(source, 2.0, (0.0, 0.0)),
                       _scaled(source, 0.5, (20.0, 10.0))])
    framed = reframe_source(image[[0, 1, 0]], layout[[0, 1, 0]], np.stack([source, bare, source]), target, zoom=1.25)
    assert framed.zoomed.tolist() == [False, False, False]
    image, layout, source = image[[0, 1, 0]], layout[[0, 1, 0]], np.stack([source, bare, source])
    assert torch.equal(framed.source_image, image) and torch.equal(framed.source_layout, layout)
    np.testing.assert_array_equal(framed.source_keypoints, source)
    with pytest.raises(ValueError, match="zoom"):
        reframe_source(image, layout, source, target, zoom=1.0)
    with pytest.raises(ConfigError, match="reframe_zoom"):
        ModelConfig(reframe_zoom=0.9)


def test_the_generator_reframes_only_zoomed_pairs_and_only_when_asked() -> None:
    default = load_generator("default").generator.eval()
    size = default.config.output_size
    source = mannequin_keypoints(size[0] / SIZE[0])
    image = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    labels = mannequin_layout(source, size, size[0] / SIZE[0])
    layout = to_one_hot(torch.from_numpy(labels.astype(np.int64))[None], 20).float()
    original = default.config
    base = dataclasses.replace(original, reframe_zoom=0.0)

    def run(zoom: float, target: np.ndarray) -> torch.Tensor:
        default.config = dataclasses.replace(base, reframe_zoom=zoom)
        with torch.no_grad():
            return default(image, layout, keypoints_to_heatmaps(source[None], size),
                           keypoints_to_heatmaps(target[None], size), source_keypoints=source[None],
                           target_keypoints=target[None]).image

    try:
        near = _scaled(source, 1.1, (2.0, 0.0))
        assert torch.equal(run(1.25, near), run(0.0, near))
        closer = _scaled(source, 1.6, (-40.0, -50.0))
        off, on = run(0.0, closer), run(1.25, closer)
        assert torch.isfinite(on).all() and not torch.equal(off, on)
        framed = reframe_source(image, layout, source[None], closer[None], 1.25)
        default.config = base
        with torch.no_grad():
            by_hand = default(framed.source_image, framed.source_layout,
                              keypoints_to_heatmaps(framed.source_keypoints, size),
                              keypoints_to_heatmaps(closer[None], size), source_keypoints=framed.source_keypoints,
                              target_keypoints=closer[None]).image
        assert torch.allclose(on, by_hand, atol=1e-5)
    finally:
        default.config = original


def test_the_recapture_pipeline_reframes_as_the_generator_does() -> None:
    recapturer = Recapturer.from_pretrained("default")
    size = recapturer.image_size
    zoomed = dataclasses.replace(recapturer.config, reframe_zoom=1.25)
    recapturer.config = zoomed
    points = mannequin_keypoints(size[0] / SIZE[0])
    labels = mannequin_layout(points, size, size[0] / SIZE[0])
    pixels = np.random.default_rng(2).integers(0, 256, (*size, 3), dtype=np.uint8)
    source = SourceInput(image=pixels, keypoints=points, layout=labels)
    assert recapturer.framed(source, _scaled(points, 1.1, (0.0, 3.0))) is source
    assert recapturer.framed(source, _scaled(points, 0.6, (60.0, 40.0))) is source  # a wider shot: left alone
    target = _scaled(points, 1.5, (-30.0, -40.0))
    framed = recapturer.framed(source, target)
    torso = [1, 2, 5, 8, 11]
    np.testing.assert_allclose(framed.keypoints[torso], target[torso], atol=1e-9)
    generator = recapturer.generator
    base = generator.config
    generator.config = zoomed
    try:
        with torch.no_grad():
            made = generator(torch.from_numpy(pixels).permute(2, 0, 1).float()[None] / 127.5 - 1.0,
                             to_one_hot(torch.from_numpy(labels.astype(np.int64))[None], 20).float(),
                             keypoints_to_heatmaps(points[None], size), keypoints_to_heatmaps(target[None], size),
                             source_keypoints=points[None], target_keypoints=target[None])
    finally:
        generator.config = base
    predicted = recapturer.predict_layout(source, target).predicted_layout
    np.testing.assert_array_equal(predicted, made.predicted_labels()[0].numpy())
