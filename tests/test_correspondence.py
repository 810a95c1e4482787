"""The correspondence appearance head: known warps recovered, exact copy at full resolution, absent parts,
no droplet; SAT's expected coordinates; the self-supervised CCP pairs' truth."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recapture.body.parts import LIP20
from recapture.data.ccp import HELD_OUT_IDS
from recapture.data.ccp_pairs import CcpPhotos, fit_photo, make_pair, training_ids
from recapture.models.correspondence import CorrespondenceConfig, CorrespondenceGenerator, repose
from recapture.models.prior_grid import PriorGrid, grid_to_pixel, pixel_to_grid, prior_grid, torso_grid, with_full_prior
from recapture.models.layout_ops import blob_labels, to_one_hot
from recapture.models.sat import SemanticAttentiveTransfer, identity_grid

CCP = Path(__file__).resolve().parents[2] / "shared" / "data" / "ccp"
SIZE = (16, 12)
CONFIG = CorrespondenceConfig(internal_size=SIZE, base_channels=8, max_channels=16, sat_dim=8, lgr_dim=8,
                              refine_channels=4)


def _inputs(batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = blob_labels(batch, 20, SIZE, generator)
    layout = to_one_hot(labels, 20)
    pose = torch.zeros(batch, 18, *SIZE)
    return {"source_layout": layout, "source_pose": pose, "target_layout": layout, "target_pose": pose}


def _identity_prior(batch: int) -> PriorGrid:
    grid = identity_grid(batch, SIZE).permute(0, 2, 3, 1).contiguous()
    return PriorGrid(grid=grid, covered=torch.ones(batch, 1, *SIZE), labels=torch.zeros(batch, *SIZE, dtype=torch.long))


def _texture(batch: int, size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, 6, 5, generator=generator) * 2 - 1
    return F.interpolate(coarse, size=size, mode="bicubic", align_corners=True).clamp(-1, 1)


def test_pixel_grid_round_trip() -> None:
    coords = torch.tensor([[0.0, 0.0], [15.0, 11.0], [3.5, 7.25]])
    assert torch.allclose(grid_to_pixel(pixel_to_grid(coords, SIZE), SIZE), coords, atol=1e-5)
    assert torch.allclose(pixel_to_grid(coords, SIZE)[1], torch.tensor([1.0, 1.0]))


def test_identity_pose_with_full_visibility_returns_the_full_resolution_source_exactly() -> None:
    torch.manual_seed(0)
    model = CorrespondenceGenerator(CONFIG).eval()
    torch.nn.init.constant_(model.visibility_head.bias, 60.0)
    source = torch.rand(2, 3, 97, 71) * 2 - 1  # full resolution, not a multiple of the internal size
    with torch.no_grad():
        out = model(source, **_inputs(2), prior=_identity_prior(2))
    assert out.image.shape == source.shape
    assert float((out.image - source).abs().max()) < 1e-4  # float32 rounding of the sampling positions
    assert float(out.invented.max()) < 1e-6
    full = PriorGrid(grid=identity_grid(2, (97, 71)).permute(0, 2, 3, 1), covered=torch.ones(2, 1, 97, 71),
                     labels=torch.zeros(2, 97, 71, dtype=torch.long))
    with torch.no_grad():
        sharp = model(source, **_inputs(2), prior=with_full_prior(_identity_prior(2), full))
    assert float((sharp.image - source).abs().max()) < 1e-4


def test_prior_grid_with_identical_poses_is_the_identity() -> None:
    labels = torch.zeros(1, 32, 24, dtype=torch.long)
    labels[0, 4:10, 9:15] = LIP20.index("face")
    labels[0, 10:22, 7:17] = LIP20.index("upper_clothes")
    keypoints = np.full((1, 18, 2), -1.0)
    keypoints[0, [0, 1, 2, 5, 8, 11]] = [[7, 12], [10, 12], [11, 8], [11, 16], [21, 9], [21, 15]]
    prior = prior_grid(labels, keypoints, keypoints)
    identity = identity_grid(1, (32, 24)).permute(0, 2, 3, 1)
    assert torch.allclose(prior.grid, identity, atol=1e-4)
    assert prior.covered[0, 0, 15, 12] == 1 and prior.covered[0, 0, 0, 0] == 0


def test_repose_into_the_own_pose_returns_the_photo_at_its_size() -> None:
    torch.manual_seed(0)
    model = CorrespondenceGenerator(CONFIG).eval()
    torch.nn.init.constant_(model.visibility_head.bias, 60.0)
    labels = torch.zeros(1, 66, 50, dtype=torch.long)
    labels[0, 8:20, 18:30] = LIP20.index("face")
    labels[0, 20:44, 14:36] = LIP20.index("upper_clothes")
    keypoints = np.full((1, 18, 2), -1.0)
    keypoints[0, [0, 1, 2, 5, 8, 11]] = [[14, 24], [21, 24], [22, 16], [22, 32], [42, 18], [42, 30]]
    photo = _texture(1, (66, 50), seed=3)
    with torch.no_grad():
        out = repose(model, photo, labels, keypoints, keypoints)
    assert out.image.shape == photo.shape
    assert float((out.image - photo).abs().max()) < 1e-3


def test_background_follows_a_translated_torso() -> None:
    source = np.full((1, 18, 2), -1.0)
    source[0, [1, 2, 5, 8, 11]] = [[10, 12], [11, 8], [11, 16], [21, 9], [21, 15]]
    target = np.where(source >= 0, source + np.array([2.0, -3.0]), -1.0)
    coords = grid_to_pixel(torso_grid(source, target, (32, 24)), (32, 24))
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(24.0), indexing="ij")
    assert torch.allclose(coords[0], torch.stack([ys - 2.0, xs + 3.0], dim=-1), atol=1e-3)


@pytest.mark.parametrize("shift", [(1.5, -2.0), (-3.0, 2.5)])
def test_head_recovers_a_known_translation_to_sub_pixel_error(shift: tuple[float, float]) -> None:
    torch.manual_seed(0)
    model = CorrespondenceGenerator(CONFIG)
    prior = _identity_prior(2)
    truth = pixel_to_grid(grid_to_pixel(prior.grid, SIZE) + torch.tensor(shift), SIZE)
    inputs = _inputs(2)
    source = _texture(2, (32, 24))
    optimizer = torch.optim.Adam(model.flow_head.parameters(), lr=0.05)
    scale = torch.tensor([(SIZE[1] - 1) / 2.0, (SIZE[0] - 1) / 2.0])
    for _ in range(60):
        out = model(source, **inputs, prior=prior)
        error = ((out.coarse_flow - truth) * scale).norm(dim=-1).mean()
        optimizer.zero_grad()
        error.backward()
        optimizer.step()
    assert float(error.detach()) < 0.5
    start = ((prior.grid - truth) * scale).norm(dim=-1).mean()
    assert float(start) > 1.5  # the prior alone was off by more than a pixel


def test_head_recovers_a_mirror_through_its_prior_grid() -> None:
    model = CorrespondenceGenerator(CONFIG).eval()
    torch.nn.init.constant_(model.visibility_head.bias, 60.0)
    source = _texture(1, (64, 48))
    mirror = identity_grid(1, SIZE).permute(0, 2, 3, 1) * torch.tensor([-1.0, 1.0])
    prior = PriorGrid(grid=mirror.contiguous(), covered=torch.ones(1, 1, *SIZE), labels=torch.zeros(1, *SIZE).long())
    with torch.no_grad():
        out = model(source, **_inputs(1), prior=prior)
    assert float((out.image - source.flip(-1)).abs().max()) < 1e-4


def test_no_nan_with_parts_absent_from_the_source() -> None:
    torch.manual_seed(0)
    model = CorrespondenceGenerator(CONFIG)
    inputs = _inputs(2)
    source_labels = torch.zeros(2, *SIZE, dtype=torch.long)
    source_labels[1, 4:8, 4:8] = 5  # image 0: nothing but background; image 1: one part
    inputs["source_layout"] = to_one_hot(source_labels, 20)
    keypoints = np.full((2, 18, 2), -1.0)
    prior = prior_grid(source_labels, keypoints, keypoints)
    out = model(torch.rand(2, 3, 32, 24) * 2 - 1, **inputs, prior=prior)
    out.image.mean().backward()
    assert torch.isfinite(out.image).all() and torch.isfinite(out.coarse_flow).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_no_droplet_for_a_plain_input() -> None:
    """No feature normalisation over the image, and a plain input gives a plain output: the corners'
    statistics stay within the range of the rest of the image (an instance-normed decoder's droplet is a
    corner many standard deviations away)."""
    torch.manual_seed(0)
    # background: follow - with no person in the layouts the still-background rule would return the input itself
    model = CorrespondenceGenerator(dataclasses.replace(CONFIG, background="follow")).eval()
    assert not any(isinstance(m, (torch.nn.InstanceNorm2d, torch.nn.BatchNorm2d)) for m in model.modules())
    torch.nn.init.constant_(model.visibility_head.bias, -60.0)  # the painted pixels only
    torch.nn.init.normal_(model.refine.body[-1].weight, std=0.1)
    plain = torch.full((1, 3, 64, 48), 0.2)
    layout = to_one_hot(torch.zeros(1, *SIZE, dtype=torch.long), 20)
    pose = torch.zeros(1, 18, *SIZE)
    with torch.no_grad():
        out = model(plain, layout, pose, layout, pose, _identity_prior(1))
    patches = F.avg_pool2d(out.image, 8)  # (1, 3, 8, 6) patch means
    interior = patches[..., 1:-1, 1:-1]
    low, high = interior.amin(dim=(2, 3)), interior.amax(dim=(2, 3))
    spread = (high - low).clamp_min(0.02)
    for corner in (patches[..., 0, 0], patches[..., 0, -1], patches[..., -1, 0], patches[..., -1, -1]):
        assert bool(((corner >= low - spread) & (corner <= high + spread)).all())


def test_sat_expected_coordinates_are_the_attention_weighted_source_positions() -> None:
    torch.manual_seed(0)
    sat = SemanticAttentiveTransfer(4, 4, 3, sn=False)
    torch.nn.init.zeros_(sat.query.weight)
    torch.nn.init.zeros_(sat.query.bias)  # zero queries: uniform attention over the part
    source = torch.zeros(1, 6, 5, dtype=torch.long)
    source[0, 1:3, 1:4] = 2
    target = torch.zeros(1, 6, 5, dtype=torch.long)
    target[0, 4, 0] = 2
    target[0, 5, 4] = 7  # absent from the source
    feature = torch.randn(1, 4, 6, 5)
    transferred, coords, present = sat.transfer_with_coordinates(feature, feature, source, target)
    grid = identity_grid(1, (6, 5))[0]
    expected = grid[:, 1:3, 1:4].mean(dim=(1, 2))
    assert torch.allclose(coords[0, :, 4, 0], expected, atol=1e-6)
    assert present[0, 0, 4, 0] == 1 and present[0, 0, 5, 4] == 0
    assert torch.allclose(transferred, sat(feature, feature, source, target), atol=1e-6)


def test_generator_with_correspondence_appearance_copies_the_source() -> None:
    from recapture.config import ModelConfig
    from recapture.models.generator import RecaptureGenerator

    config = ModelConfig(image_size=(32, 24), num_down=2, sat_level=2, lgr_level=2, base_channels=8, max_channels=16,
                         sat_dim=8, lgr_dim=8, layout_channels=8, geometric_channels=8, appearance="correspondence")
    torch.manual_seed(0)
    generator = RecaptureGenerator(config).eval()
    assert isinstance(generator.appearance, CorrespondenceGenerator)
    torch.nn.init.constant_(generator.appearance.visibility_head.bias, 60.0)
    labels = blob_labels(1, 20, (32, 24), torch.Generator().manual_seed(1))
    keypoints = np.full((1, 18, 2), -1.0)
    pose = torch.zeros(1, 18, 32, 24)
    source = _texture(1, (32, 24), seed=2)
    with torch.no_grad():
        out = generator(source, labels, pose, pose, to_one_hot(labels, 20), source_keypoints=keypoints,
                        target_keypoints=keypoints)
    assert float((out.image - source).abs().max()) < 1e-3  # no keypoints: identity grid, everything visible
    with pytest.raises(ValueError, match="model.appearance"):
        ModelConfig(appearance="painted")


def test_bundled_geometry_joins_a_correspondence_appearance(tmp_path: Path) -> None:
    from recapture.hub import bundled_models, bundled_path, load_generator, save_generator
    from recapture.training.correspondence import with_geometric

    if "default" not in bundled_models():
        pytest.skip("no bundled default in this copy")
    model = CorrespondenceGenerator(CorrespondenceConfig())
    config, weights, metadata = with_geometric(bundled_path("default"), model)
    save_generator(weights, config, tmp_path / "joined.safetensors", metadata, half=False)
    loaded = load_generator(tmp_path / "joined.safetensors")
    assert loaded.config.appearance == "correspondence" and "CCP" in loaded.metadata["trained_on"]
    assert torch.equal(loaded.generator.appearance.flow_head.bias, model.flow_head.bias)
    with pytest.raises(ValueError, match="does not fit"):
        with_geometric(bundled_path("default"), CorrespondenceGenerator(CorrespondenceConfig(internal_size=(64, 44))))


def test_held_out_photos_never_reach_training_or_validation() -> None:
    train, valid = training_ids()
    assert not (set(train) | set(valid)) & set(HELD_OUT_IDS)
    assert len(train) + len(valid) == 904


@pytest.mark.skipif(not (CCP / "photos").is_dir(), reason="CCP not present")
@pytest.mark.parametrize("reverse", [False, True])
def test_self_supervised_pair_truth_reconstructs_the_target(reverse: bool) -> None:
    from recapture.data.ccp import CcpDataset
    from recapture.data.formats import read_annotations

    table = read_annotations(Path(__file__).resolve().parents[1] / "src/recapture/assets/ccp-keypoints.csv")
    dataset = CcpDataset(CCP, (3,))
    keypoints = table.get("0003.jpg").astype(float)
    image, labels, points = fit_photo(dataset.photo(3), dataset.lip20_labels(3, keypoints).clip(0, 19), keypoints,
                                      (128, 88))
    pair = make_pair(image, labels, points, np.random.default_rng(0), (64, 44), reverse=reverse)
    rebuilt = F.grid_sample(pair.source_image[None], pair.flow[None], align_corners=True)[0]
    target = F.interpolate(pair.target_image[None], size=(64, 44), mode="area")[0]
    error = ((rebuilt - target).abs().mean(0) * pair.visible).sum() / pair.visible.sum()
    assert float(pair.visible.mean()) > 0.6
    assert float(error) < 0.08  # [-1, 1] scale: the copy of a real photo through its truth correspondence
    assert float((pair.source_image - pair.target_image).abs().mean()) > float(error)


def _synthetic_photos(count: int, size: tuple[int, int] = (64, 44)) -> CcpPhotos:
    from recapture.data.synthetic.articulation import sample_articulation
    from recapture.data.synthetic.people import sample_identity
    from recapture.data.synthetic.render import render_person, sample_background

    rng = np.random.default_rng(5)
    shots = [render_person(sample_identity(3, k), sample_articulation(rng, 0.0), sample_background(rng, "plain"), size)
             for k in range(count)]
    return CcpPhotos(images=np.stack([r.image for r in shots]), labels=np.stack([r.layout for r in shots]),
                     keypoints=np.stack([r.keypoints.astype(float) for r in shots]), ids=np.arange(1, count + 1))


def test_parsed_source_layout_follows_the_same_deformation() -> None:
    photos = _synthetic_photos(1)
    image, labels, points = photos.images[0], photos.labels[0], photos.keypoints[0]
    truth = make_pair(image, labels, points, np.random.default_rng(4), (32, 22))
    carried = make_pair(image, labels, points, np.random.default_rng(4), (32, 22), parsed=labels)
    assert torch.equal(truth.source_image, carried.source_image) and torch.equal(truth.flow, carried.flow)
    differ = truth.source_labels != carried.source_labels
    assert float(differ.float().mean()) < 0.03  # the parse equal to the truth gives (almost) the true layout
    assert int((truth.source_labels > 0).sum()) > 100
    other = make_pair(image, labels, points, np.random.default_rng(4), (32, 22), parsed=np.zeros_like(labels))
    assert int(other.source_labels.max()) == 0 and torch.equal(other.target_labels, truth.target_labels)


def test_synthetic_pairs_have_part_visibility_and_no_flow_loss() -> None:
    from recapture.data.synthetic.truth import invisible_mask
    from recapture.training.correspondence import flow_weight
    from recapture.training.correspondence_data import PairMix, make_batch, synthetic_pair

    pair = synthetic_pair(np.random.default_rng(1), (64, 44), (64, 44))
    source_labels, target_labels = pair.source_labels.numpy(), pair.target_labels.numpy()
    assert not pair.flow_known
    assert torch.equal(pair.visible, 1.0 - torch.as_tensor(invisible_mask(source_labels, target_labels)).float())
    photos = _synthetic_photos(3)
    batch = make_batch(photos, np.array([0, 1, 2, 0]), np.random.default_rng(0), CONFIG, 0.0,
                       PairMix(synthetic=0.5))
    known = batch.flow_known.bool()
    assert 0 < int(known.sum()) < 4
    weight = flow_weight(batch)
    assert float(weight[~known].abs().sum()) == 0.0 and float(weight[known].sum()) > 0


def test_synthetic_pairs_on_a_plain_wall_have_a_smooth_background() -> None:
    """``background="plain"`` (the mix's ``plain`` share): a studio wall, not a cluttered room; same camera."""
    from recapture.training.correspondence_data import synthetic_pair

    def roughness(kind: str) -> float:
        pair = synthetic_pair(np.random.default_rng(2), (64, 44), (64, 44), background=kind, crop_probability=0.0)
        people = ((pair.source_labels > 0) | (pair.target_labels > 0)).float()[None, None]
        wall = F.max_pool2d(people, 5, stride=1, padding=2)[0, 0] == 0  # antialiased edges count as people
        assert float((pair.source_image - pair.target_image).abs()[:, wall].max()) < 1e-6  # the camera is still
        steps = (pair.source_image[:, 1:] - pair.source_image[:, :-1]).abs()
        return float(steps[:, wall[1:] & wall[:-1]].mean())

    assert roughness("plain") < 0.5 * roughness("cluttered")


def test_pair_stream_is_reproducible_from_its_start_step() -> None:
    from recapture.training.correspondence_data import PairMix, PairStream, batch_loader

    photos = _synthetic_photos(3)

    def first(start: int) -> torch.Tensor:
        stream = PairStream(photos, np.arange(3), None, CONFIG, 2, 0.0, PairMix(reverse=0.5), 0, start)
        return next(iter(batch_loader(stream, 0))).source_image

    assert torch.equal(first(7), first(7)) and not torch.equal(first(7), first(8))


def test_training_settings_files_load_and_reject_unknown_keys(tmp_path: Path) -> None:
    from recapture.config import ConfigError
    from recapture.training.correspondence import load_settings

    configs = Path(__file__).resolve().parents[1] / "configs"
    mix = load_settings(str(configs / "correspondence-mix.yaml"), steps=7)
    assert mix.steps == 7 and mix.mix().reverse > 0 and mix.mix().synthetic > 0 and mix.true_layout_fraction == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("reverse_fractoin: 0.3\n")
    with pytest.raises(ConfigError, match="reverse_fractoin"):
        load_settings(str(bad))


def test_parsed_layouts_name_a_missing_photo(tmp_path: Path) -> None:
    from recapture.training.parsed_photos import ParsedLayouts

    photos = _synthetic_photos(2)
    stored = ParsedLayouts(labels=photos.labels[:1] + 1, ids=np.array([2]), parsed=np.array([True]))
    stored.save(tmp_path / "parsed.npz")
    loaded = ParsedLayouts.load(tmp_path / "parsed.npz")
    with pytest.raises(ValueError, match="0001"):
        loaded.for_photos(photos)
    shifted = type(photos)(photos.images[1:], photos.labels[1:], photos.keypoints[1:], photos.ids[1:])
    assert np.array_equal(loaded.for_photos(shifted), photos.labels[:1] + 1)


def test_framed_pairs_follow_deepfashion_framings() -> None:
    """``framings``: each shot's height/top from ``FRAMINGS``; ``hips`` shots end above the knees, ``whole`` ones
    show the ankles; the framing draw follows DeepFashion's counts; the ``framed`` share of the mix uses it."""
    from recapture.data.synthetic.articulation import (DEEPFASHION_FRAMINGS, deepfashion_framing, reframed,
                                                       sample_articulation)
    from recapture.data.synthetic.people import sample_identity
    from recapture.training.correspondence_data import PairMix, synthetic_pair

    pose = sample_articulation(np.random.default_rng(0), 0.0, "front")
    assert 1.5 <= reframed(pose, "hips", np.random.default_rng(1)).height <= 1.9
    with pytest.raises(ValueError, match="unknown framing 'ankle'"):
        reframed(pose, "ankle", np.random.default_rng(1))
    whole_ankles = hips_knees = 0
    for k in range(6):
        pair = synthetic_pair(np.random.default_rng(k), (128, 88), (64, 44), sample_identity(4, k), "plain",
                              ("front", "front"), 0.0, ("whole", "hips"))
        whole_ankles += int(pair.source_keypoints[10, 0] >= 0 or pair.source_keypoints[13, 0] >= 0)
        hips_knees += int(pair.target_keypoints[9, 0] >= 0 or pair.target_keypoints[12, 0] >= 0)
        assert pair.target_keypoints[8, 0] >= 0 or pair.target_keypoints[11, 0] >= 0  # the hips stay in the frame
    assert whole_ankles == 6 and hips_knees <= 2  # a knee bent up (sitting, walking) may stay in the frame
    rng = np.random.default_rng(3)
    drawn = [deepfashion_framing(rng) for _ in range(4000)]
    total = sum(DEEPFASHION_FRAMINGS.values())
    assert abs(drawn.count(("hips", "hips")) / 4000 - 3176 / total) < 0.03
    assert abs(drawn.count(("whole", "hips")) / 4000 - 1479 / total) < 0.02
    with pytest.raises(ValueError, match="framed"):
        PairMix(framed=1.5)
    plain = synthetic_pair(np.random.default_rng(9), (128, 88), (64, 44), sample_identity(4, 0), "plain",
                           ("front", "front"), 0.0)
    assert plain.source_keypoints[10, 0] >= 0 or plain.source_keypoints[13, 0] >= 0
