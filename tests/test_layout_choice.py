"""The photo path's choice of Ŝ_B (``--layout auto|prior|network``): the pose-change measure, the rule, and the
geometric network on ONNX Runtime against the torch module (tiny config, random weights, flip averaging, the
confident-person rule, the torso made person and the small-part clean-up on)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from recapture.body.keypoints import KEYPOINT_INDEX, keypoints_to_heatmaps, missing_mask
from recapture.body.part_maps import torso_mask
from recapture.body.retarget import pose_distance, torso_length
from recapture.hub import load_generator
from recapture.pipelines.photo import AUTO_LAYOUT_CHANGE, PhotoOptions, layout_method

sys.path.insert(0, str(Path(__file__).parent))
from test_layout_prior import mannequin_keypoints, mannequin_layout, moved_mannequin  # noqa: E402
from conftest import random_tiny_model  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
WRIST = KEYPOINT_INDEX["right_wrist"]


def _moved(keypoints: np.ndarray, joint: int, torsos: float) -> np.ndarray:
    out = keypoints.copy()
    out[joint, 0] -= torsos * torso_length(keypoints)
    return out


def test_pose_distance_is_the_mean_joint_displacement_in_torso_lengths() -> None:
    source = mannequin_keypoints()
    shown = int((~missing_mask(source)).sum())
    assert pose_distance(source, source) == 0.0
    assert pose_distance(source, _moved(source, WRIST, 1.0)) == pytest.approx(1.0 / shown)
    bigger = mannequin_keypoints(scale=2.0, shift=(5.0, 3.0))  # same pose, another size and place: moved
    assert pose_distance(bigger, _moved(bigger, WRIST, 1.0)) == pytest.approx(1.0 / shown)  # the scale is the torso
    dropped = source.copy()
    dropped[KEYPOINT_INDEX["left_ankle"]] = -1  # shown by one pose only: counts 1
    assert pose_distance(source, dropped) == pytest.approx(1.0 / shown)
    assert pose_distance(source, np.full((18, 2), -1.0)) == float("inf")
    with pytest.raises(ValueError, match="target must be"):
        pose_distance(source, source[:10])


class _Recapturer:
    def __init__(self, has_geometric: bool) -> None:
        self.has_geometric = has_geometric


def test_auto_layout_keeps_the_prior_for_a_still_pose_and_takes_the_network_for_a_change() -> None:
    source = mannequin_keypoints()
    shown = int((~missing_mask(source)).sum())
    small = _moved(source, WRIST, 0.5 * AUTO_LAYOUT_CHANGE * shown)  # half the threshold
    large = _moved(source, WRIST, 2.0 * AUTO_LAYOUT_CHANGE * shown)  # twice it
    auto, network = PhotoOptions(layout="auto"), _Recapturer(True)
    assert PhotoOptions().layout == "prior"  # the default (docs/models.md: hats and faces on real photos)
    assert layout_method(auto, network, source, source) == "warp"  # the own pose: the prior, as before
    assert layout_method(auto, network, source, small) == "warp"
    assert layout_method(auto, network, source, large) == "model"
    assert layout_method(auto, _Recapturer(False), source, large) == "warp"  # no geometric network at hand
    assert layout_method(PhotoOptions(layout="prior"), network, source, large) == "warp"
    assert layout_method(PhotoOptions(layout="network"), network, source, source) == "model"
    assert layout_method(PhotoOptions(layout="network", method="warp"), network, source, large) == "warp"
    with pytest.raises(ValueError, match="unknown layout source 'net'"):
        PhotoOptions(layout="net")


@pytest.fixture(scope="module")
def tiny_prior_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny correspondence generator whose geometric network (random weights) corrects the keypoint prior, with
    the eval-mode clean-ups on (flip averaging, person only above 0.95 confidence when the pose changes, the
    target's torso made person, parts under 4 pixels dropped)."""
    return random_tiny_model(tmp_path_factory.mktemp("prior-model"), "geometric", 0.2, geometric_prior=True,
                             layout_flip_average=True, layout_min_area=4, layout_person_confidence=0.95,
                             layout_confident_above=0.01, layout_torso_person=True)


def _pose_pair(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return moved_mannequin((32, 24), 0.5, 2.0, np.random.default_rng(seed))


def test_geometric_export_matches_the_torch_module(tiny_prior_model: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from recapture.pipelines.onnx_backend import export_geometric_onnx
    from recapture.pipelines.onnx_geometric import OnnxGeometric

    loaded = load_generator(tiny_prior_model)
    runtime = OnnxGeometric(export_geometric_onnx(loaded, tmp_path / "geometric.onnx").path)
    geometric = loaded.generator.geometric.eval()
    for seed in (1, 2, 3):
        labels, source, target = _pose_pair(seed)
        layout = torch.nn.functional.one_hot(torch.from_numpy(labels.astype(np.int64)), 20).permute(2, 0, 1)
        with torch.no_grad():
            expected = geometric(layout[None].float(), keypoints_to_heatmaps(source, (32, 24))[None],
                                 keypoints_to_heatmaps(target, (32, 24))[None], source[None], target[None])[0].numpy()
        got = runtime.logits(labels, source, target)
        assert got.shape == expected.shape == (20, 32, 24)
        assert np.array_equal(got.argmax(0), expected.argmax(0))
        kept = expected > -1e3  # the parts the clean-up dropped are -1e4 in both
        assert np.array_equal(kept, got > -1e3) and np.abs(got[kept] - expected[kept]).max() < 1e-4
    runtime.config = dataclasses.replace(runtime.config, layout_flip_average=False)
    assert np.abs(runtime.logits(labels, source, target) - got).max() > 1e-2  # the mirrored pass matters


def test_confident_person_rule_against_a_naive_reference(tiny_prior_model: Path) -> None:
    """With ``layout_person_confidence`` c, Ŝ_B is background exactly where the plain network's P(background) >=
    1 - c and its best part elsewhere, on the pairs whose pose changes by more than ``layout_confident_above``; a
    pair in its own pose (change 0) keeps the argmax. Out-of-range settings are config errors."""
    from recapture.config import ConfigError

    geometric = load_generator(tiny_prior_model).generator.geometric.eval()
    ruled = dataclasses.replace(geometric.config, layout_min_area=0, layout_torso_person=False)
    labels, source, moved = _pose_pair(5)
    targets = np.stack([source, moved])  # pair 0: its own pose; pair 1: moved
    layout = torch.nn.functional.one_hot(torch.from_numpy(np.stack([labels, labels]).astype(np.int64)), 20)
    inputs = (layout.permute(0, 3, 1, 2).float(), keypoints_to_heatmaps(np.stack([source, source]), (32, 24)),
              keypoints_to_heatmaps(targets, (32, 24)), np.stack([source, source]), targets)

    def run(config: object) -> torch.Tensor:
        geometric.config = config
        with torch.no_grad():
            return geometric(*inputs)

    plain = run(dataclasses.replace(ruled, layout_person_confidence=0.0))
    probabilities = plain.softmax(1)
    naive = torch.where(probabilities[:, 0] >= 1.0 - 0.95, 0, probabilities[:, 1:].argmax(1) + 1)
    found = run(ruled).argmax(1)
    assert torch.equal(found[1], naive[1]) and not torch.equal(naive[1], plain[1].argmax(0))  # the rule acted
    assert torch.equal(found[0], plain[0].argmax(0))  # own pose: below layout_confident_above
    assert torch.equal(run(dataclasses.replace(ruled, layout_confident_above=50.0)).argmax(1), plain.argmax(1))
    for bad in ({"layout_person_confidence": 1.0}, {"layout_person_confidence": -0.1},
                {"layout_confident_above": -1.0}):
        with pytest.raises(ConfigError, match="layout_person_confidence"):
            dataclasses.replace(ruled, **bad)


def test_torso_rule_against_a_naive_reference(tiny_prior_model: Path) -> None:
    """With ``layout_torso_person``, Ŝ_B inside the target's shoulders-hips quadrilateral is the plain network's best
    part (never background) and everywhere else the plain argmax (a mannequin, and a source layout of background
    only, where the plain network calls the torso background); the ONNX runtime agrees (test above)."""
    geometric = load_generator(tiny_prior_model).generator.geometric.eval()
    ruled = dataclasses.replace(geometric.config, layout_min_area=0, layout_person_confidence=0.0)
    labels, source, target = _pose_pair(6)
    torso = torch.from_numpy(torso_mask(target, (32, 24)))
    acted = []
    for given in (labels, np.zeros_like(labels)):
        layout = torch.nn.functional.one_hot(torch.from_numpy(given.astype(np.int64)), 20).permute(2, 0, 1)[None]
        inputs = (layout.float(), keypoints_to_heatmaps(source, (32, 24))[None],
                  keypoints_to_heatmaps(target, (32, 24))[None], source[None], target[None])
        geometric.config = dataclasses.replace(ruled, layout_torso_person=False)
        with torch.no_grad():
            plain = geometric(*inputs)[0]
            geometric.config = ruled
            found = geometric(*inputs)[0].argmax(0)
        assert torch.equal(found, torch.where(torso, plain[1:].argmax(0) + 1, plain.argmax(0)))
        acted.append(bool((plain.argmax(0)[torso] == 0).any()))
    assert torso.sum() > 10 and acted[1]  # the rule made background person on the empty layout


def test_onnx_recapturer_predicts_the_torch_networks_layout(tiny_prior_model: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxruntime")
    from recapture.pipelines.onnx_photo import OnnxCorrespondence, OnnxRecapturer, OnnxUnavailable, onnx_recapturer
    from recapture.pipelines.recapture import Recapturer, SourceInput

    monkeypatch.setenv("RECAPTURE_CACHE", str(tmp_path / "cache"))
    onnx_side = onnx_recapturer(tiny_prior_model)
    assert isinstance(onnx_side, OnnxRecapturer) and onnx_side.has_geometric
    assert len(list((tmp_path / "cache" / "onnx").glob("geometric-*.onnx"))) == 1  # made with the generator's
    torch_side = Recapturer.from_pretrained(tiny_prior_model)
    labels, source, target = _pose_pair(4)
    image = np.random.default_rng(4).integers(0, 256, (32, 24, 3), dtype=np.uint8)
    given = SourceInput(image=image, keypoints=source, layout=labels)
    found = [r.predict_layout(given, target, method="model").predicted_layout for r in (torch_side, onnx_side)]
    assert np.array_equal(found[0], found[1])
    prior = onnx_side.predict_layout(given, target, method="warp").predicted_layout
    assert not np.array_equal(found[1], prior)  # the network changed the prior's layout
    bare = OnnxRecapturer(OnnxCorrespondence(onnx_side.appearance.path))  # an ONNX file alone: no network
    assert not bare.has_geometric
    with pytest.raises(OnnxUnavailable, match="--layout prior"):
        bare.predict_layout(given, target)


def test_the_bundled_default_geometric_network_exports_exactly(tmp_path: Path) -> None:
    """The shipped network (spectral norm folded, InstanceNorm, 256x176, flip averaging, small parts dropped)."""
    pytest.importorskip("onnxruntime")
    from recapture.pipelines.onnx_backend import export_geometric_onnx
    from recapture.pipelines.onnx_geometric import OnnxGeometric

    loaded = load_generator("default")
    runtime = OnnxGeometric(export_geometric_onnx(loaded, tmp_path / "default.onnx").path)
    source = mannequin_keypoints(4.0)
    labels = mannequin_layout(source, (256, 176), 4.0)
    target = source.copy()
    target[KEYPOINT_INDEX["right_wrist"]] = source[KEYPOINT_INDEX["right_shoulder"]] + (-60.0, -20.0)  # hand up
    layout = torch.nn.functional.one_hot(torch.from_numpy(labels.astype(np.int64)), 20).permute(2, 0, 1)
    with torch.no_grad():
        expected = loaded.generator.geometric.eval()(
            layout[None].float(), keypoints_to_heatmaps(source, (256, 176))[None],
            keypoints_to_heatmaps(target, (256, 176))[None], source[None], target[None])[0].numpy()
    got = runtime.logits(labels, source, target)
    assert (got.argmax(0) == expected.argmax(0)).mean() > 0.9999
    assert not np.array_equal(got.argmax(0), labels)  # the raised hand moved the layout
