"""The correspondence model's background rule (``background: still``): a fixed camera keeps the background in
place far from both people, the target person stays the network's output, the background the source person
left is filled from around it (or, ``vacated: network``, painted by the network), old weight files get the rule."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from recapture.models.correspondence import (MISSING_KEY_DEFAULTS, RULE_KEYS, CorrespondenceConfig,
                                             CorrespondenceGenerator, load_correspondence)
from recapture.models.prior_grid import PriorGrid
from recapture.models.layout_ops import to_one_hot
from recapture.models.sat import identity_grid
from recapture.models.still_background import people_weights, push_pull_fill

SIZE = (24, 16)
CONFIG = CorrespondenceConfig(internal_size=SIZE, base_channels=8, max_channels=16, sat_dim=8, lgr_dim=8,
                              refine_channels=4, still_margin=3, still_feather=1)
FULL = (72, 48)  # three output pixels per internal pixel
UPPER_CLOTHES = 5


def _model(config: CorrespondenceConfig) -> CorrespondenceGenerator:
    """Random weights everywhere (the zero-initialised flow and refinement heads too), so the network moves and
    repaints every pixel."""
    torch.manual_seed(0)
    model = CorrespondenceGenerator(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.3)
    return model


def _case() -> tuple[torch.Tensor, dict[str, torch.Tensor], PriorGrid]:
    """The source person in rows 2-9, columns 10-14; the target person in rows 6-13, columns 0-4 (more than
    margin + feather from the source person); the bottom rows are background far from both."""
    source_labels = torch.zeros(1, *SIZE, dtype=torch.long)
    source_labels[0, 2:10, 10:15] = UPPER_CLOTHES
    target_labels = torch.zeros(1, *SIZE, dtype=torch.long)
    target_labels[0, 6:14, 0:5] = UPPER_CLOTHES
    grid = identity_grid(1, SIZE).permute(0, 2, 3, 1) + 0.2 * torch.rand(1, *SIZE, 2, generator=torch.Generator()
                                                                           .manual_seed(1))
    prior = PriorGrid(grid=grid, covered=(target_labels > 0).float()[:, None], labels=target_labels)
    pose = torch.zeros(1, 18, *SIZE)
    inputs = {"source_layout": to_one_hot(source_labels, 20), "source_pose": pose,
              "target_layout": to_one_hot(target_labels, 20), "target_pose": pose}
    source = torch.rand(1, 3, *FULL, generator=torch.Generator().manual_seed(2)) * 2 - 1
    return source, inputs, prior


def _render(config: CorrespondenceConfig):
    source, inputs, prior = _case()
    with torch.no_grad():
        return source, _model(config)(source, **inputs, prior=prior)


def test_far_background_is_the_source_pixel_in_place_exactly() -> None:
    source, still = _render(CONFIG)
    _, follow = _render(dataclasses.replace(CONFIG, background="follow"))
    # internal rows >= 13 + margin + feather + 1 = 18 are far from both people: output rows >= 18 * 71 / 23
    far = (slice(None), slice(None), slice(56, None), slice(None))
    assert torch.equal(still.image[far], source[far])
    assert float((follow.image[far] - source[far]).abs().mean()) > 0.05  # the network alone moves it
    assert float(still.invented[far].abs().max()) == 0.0
    identity = identity_grid(1, FULL).permute(0, 2, 3, 1)
    assert torch.allclose(still.flow[:, 56:], identity[:, 56:], atol=1e-5)


def _output_box(rows: tuple[int, int], columns: tuple[int, int]) -> tuple[slice, slice]:
    """Output rows/columns whose bilinear neighbours lie in the internal ``rows`` x ``columns`` (inclusive)."""
    def axis(first: int, last: int, internal: int, output: int) -> slice:
        step = (output - 1) / (internal - 1)
        return slice(int(first * step) + 1, int(last * step) + 1)
    return axis(*rows, SIZE[0], FULL[0]), axis(*columns, SIZE[1], FULL[1])


def _fill(source: torch.Tensor) -> torch.Tensor:
    """The vacated background's fill at the output size for :func:`_case` (the rule's own steps)."""
    source_layout = _case()[1]["source_layout"]
    vacated = people_weights(source_layout, source_layout, CONFIG.still_margin, CONFIG.still_feather, "fill")[:, 2:]
    small = F.interpolate(source, size=SIZE, mode="area")
    return F.interpolate(push_pull_fill(small, 1.0 - vacated), size=FULL, mode="bilinear", align_corners=True)


@pytest.mark.parametrize(("person", "vacated"), [("target", "fill"), ("target", "network"), ("source", "network")])
def test_the_people_stay_the_networks_output(person: str, vacated: str) -> None:
    """On the target person (re-posed), and with ``vacated: network`` on the place the source person left (the
    network's inpainting, not a copy of the old person), the output is the network's, unchanged by the rule."""
    config = dataclasses.replace(CONFIG, vacated=vacated)
    source, still = _render(config)
    _, follow = _render(dataclasses.replace(config, background="follow"))
    rows, columns = _output_box((6, 13), (0, 4)) if person == "target" else _output_box((2, 9), (10, 14))
    # the weight there is 1 up to float rounding of the pooling and the bilinear upsampling
    assert torch.allclose(still.image[..., rows, columns], follow.image[..., rows, columns], atol=1e-6, rtol=0)
    assert torch.allclose(still.flow[:, rows, columns], follow.flow[:, rows, columns], atol=1e-5, rtol=1e-6)
    assert float((still.image - source)[..., rows, columns].abs().mean()) > 0.05  # not the source in place


def test_the_vacated_background_is_filled_from_around_it() -> None:
    """``vacated: fill``: where the source person was (and the target is not), the background rebuilt from the
    source's own background around it, marked invented; not the network's painting, not the old person."""
    source, still = _render(CONFIG)
    _, follow = _render(dataclasses.replace(CONFIG, background="follow"))
    rows, columns = _output_box((2, 9), (10, 14))
    fill = _fill(source)
    assert torch.allclose(still.image[..., rows, columns], fill[..., rows, columns], atol=1e-5)
    assert float((still.image - follow.image)[..., rows, columns].abs().mean()) > 0.05
    assert float((still.image - source)[..., rows, columns].abs().mean()) > 0.05
    assert float(still.invented[..., rows, columns].min()) > 1 - 1e-5


def test_push_pull_fill_keeps_the_known_and_fills_smoothly() -> None:
    generator = torch.Generator().manual_seed(3)
    image = torch.rand(2, 3, 20, 14, generator=generator)
    known = torch.ones(2, 1, 20, 14)
    assert torch.equal(push_pull_fill(image, known), image)
    known[:, :, 5:15, 3:11] = 0.0
    constant = torch.full_like(image, 0.4)
    assert torch.allclose(push_pull_fill(constant, known), constant, atol=1e-6)  # a plain wall stays plain
    filled = push_pull_fill(image, known)
    assert torch.equal(filled * known, image * known)
    assert float(filled.min()) >= float(image.min()) - 1e-6 and float(filled.max()) <= float(image.max()) + 1e-6
    ramp = torch.linspace(0, 1, 14).expand(2, 3, 20, 14).clone()
    assert float((push_pull_fill(ramp, known) - ramp)[..., 5:15, 3:11].abs().mean()) < 0.15  # follows the ramp
    assert not push_pull_fill(image, torch.zeros_like(known)).isnan().any()


@pytest.mark.parametrize("vacated", ["fill", "network"])
def test_the_seam_is_a_ramp_between_the_two(vacated: str) -> None:
    """Every output pixel lies between the network's output, the source pixel in place and (``fill``) the fill
    (a convex blend)."""
    config = dataclasses.replace(CONFIG, vacated=vacated)
    source, still = _render(config)
    _, follow = _render(dataclasses.replace(config, background="follow"))
    parts = (source, follow.image) + ((_fill(source),) if vacated == "fill" else ())
    low, high = torch.stack(parts).amin(0), torch.stack(parts).amax(0)
    assert bool(((still.image >= low - 1e-6) & (still.image <= high + 1e-6)).all())
    strictly = (still.image > low + 1e-3) & (still.image < high - 1e-3)
    assert bool(strictly.any())  # a feathered seam, not a hard cut


def test_old_weight_files_get_the_rule_and_follow_is_kept(tmp_path: Path) -> None:
    model = _model(dataclasses.replace(CONFIG, background="follow", still_margin=7))
    fields = dataclasses.asdict(model.config)
    old = {key: value for key, value in fields.items() if key not in MISSING_KEY_DEFAULTS}
    save_file(model.state_dict(), str(tmp_path / "old.safetensors"), metadata={"config": json.dumps(old)})
    save_file(model.state_dict(), str(tmp_path / "new.safetensors"), metadata={"config": json.dumps(fields)})
    loaded_old = load_correspondence(str(tmp_path / "old.safetensors"))
    assert (loaded_old.config.background, loaded_old.config.still_margin) == ("still", 1)
    assert loaded_old.config == dataclasses.replace(model.config, **MISSING_KEY_DEFAULTS)
    assert load_correspondence(str(tmp_path / "new.safetensors")).config == model.config


def test_every_rule_key_is_a_config_field() -> None:
    assert set(MISSING_KEY_DEFAULTS) == set(RULE_KEYS)


@pytest.mark.parametrize("change", [{"background": "torso"}, {"still_margin": -1}, {"still_feather": -2},
                                    {"vacated": "blur"}])
def test_bad_background_settings_are_clear_errors(change: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="background|still_margin|vacated"):
        dataclasses.replace(CONFIG, **change)


def test_still_camera_pairs_keep_the_background_and_the_pose_change() -> None:
    """``make_pair(still_camera=True)``: the same pose change as the pair as made (same draws), and the
    background far from the person is the photo's own (the camera did not move), which the pair as made
    (global similarity and displacement) does not keep."""
    import sys

    import numpy as np

    from recapture.data.ccp_pairs import make_pair

    sys.path.insert(0, str(Path(__file__).parent))
    from test_layout_prior import mannequin_keypoints, mannequin_layout

    keypoints = mannequin_keypoints(1.0, (0.0, 10.0))
    labels = mannequin_layout(keypoints, (64, 64))
    image = (np.random.default_rng(4).random((64, 64, 3)) * 255).astype(np.uint8)
    still = make_pair(image, labels, keypoints, np.random.default_rng(7), (32, 32), still_camera=True)
    moved = make_pair(image, labels, keypoints, np.random.default_rng(7), (32, 32))
    assert torch.equal(still.target_image, moved.target_image)
    person = torch.nn.functional.max_pool2d(((still.source_labels > 0) | (still.target_labels > 0)).float()[None],
                                            9, stride=1, padding=4)[0] > 0
    far = ~person
    assert float(far.float().mean()) > 0.3
    assert float((still.source_image - still.target_image).abs()[:, far].max()) < 0.01  # one grey level
    assert float((moved.source_image - moved.target_image).abs()[:, far].mean()) > 0.1


def test_a_still_share_of_the_training_mix_makes_fixed_camera_pairs() -> None:
    """``PairMix(still=1)`` makes every CCP pair with a fixed camera (far background = source in place); the
    default mix draws nothing more, so runs written before the share keep their pair streams."""
    import numpy as np

    from recapture.data.ccp_pairs import CcpPhotos
    from recapture.training.correspondence_data import PairMix, make_batch

    photos = _mannequin_photos()
    still = make_batch(photos, np.array([0, 0]), np.random.default_rng(3), CONFIG, 0.0, PairMix(unchanged=0, still=1))
    moved = make_batch(photos, np.array([0, 0]), np.random.default_rng(3), CONFIG, 0.0, PairMix(unchanged=0))
    assert isinstance(photos, CcpPhotos)
    for batch, small in ((still, True), (moved, False)):
        gap = (batch.source_image - batch.target_image).abs().amax(1)
        far = gap[:, :8, :8]  # the top-left corner, away from the mannequin
        assert (float(far.max()) < 0.01) == small
    with pytest.raises(ValueError, match="still"):
        PairMix(still=1.5)


def _mannequin_photos():  # noqa: ANN202 - a CcpPhotos of one mannequin photo
    import sys

    import numpy as np

    from recapture.data.ccp_pairs import CcpPhotos

    sys.path.insert(0, str(Path(__file__).parent))
    from test_layout_prior import mannequin_keypoints, mannequin_layout

    keypoints = mannequin_keypoints(1.0, (0.0, 10.0))
    labels = mannequin_layout(keypoints, (64, 64))
    image = (np.random.default_rng(4).random((64, 64, 3)) * 255).astype(np.uint8)
    return CcpPhotos(images=image[None], labels=labels[None], keypoints=keypoints[None], ids=np.array([1]))


def test_fine_tuning_starts_from_the_bundled_default_appearance() -> None:
    """``init: default``: the bundled generator's appearance weights, loaded into a training-size model."""
    from recapture.hub import load_generator
    from recapture.training.correspondence import initial_weights

    weights = initial_weights("default")
    model = CorrespondenceGenerator(CorrespondenceConfig())
    model.load_state_dict(weights)
    bundled = load_generator("default").generator.appearance.state_dict()
    assert all(torch.equal(weights[k], v.float()) for k, v in bundled.items())
    with pytest.raises(ValueError, match="synthhumans"):
        initial_weights("synthhumans")
