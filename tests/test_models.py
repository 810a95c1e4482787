"""Generators and discriminators: shapes per preset, gradients, spectral norm, switches, input checks."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils.parametrize import is_parametrized

from recapture.body.keypoints import NUM_KEYPOINTS
from recapture.body.parts import get_label_set
from recapture.config import ModelConfig, load_config
from recapture.models.blocks import validate_model_config
from recapture.models.discriminators import Discriminators
from recapture.models.generator import RecaptureGenerator
from recapture.models.layout_ops import blob_labels, straight_through_one_hot, to_one_hot

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """One intra-op thread: these tiny ops are far faster without thread hand-offs on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(**changes: object) -> ModelConfig:
    return dataclasses.replace(load_config(CONFIGS / "tiny.yaml").model, **changes)


def make_inputs(config: ModelConfig, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    parts = get_label_set(config.label_set).num_parts
    size = config.image_size
    return {
        "source_image": torch.rand(batch, 3, *size, generator=generator) * 2 - 1,
        "source_layout": to_one_hot(blob_labels(batch, parts, size, generator), parts),
        "source_pose": (torch.rand(batch, NUM_KEYPOINTS, *size, generator=generator) > 0.95).float(),
        "target_pose": (torch.rand(batch, NUM_KEYPOINTS, *size, generator=generator) > 0.95).float(),
    }


def test_tiny_shapes_and_output_range() -> None:
    config = tiny_config()
    model = RecaptureGenerator(config)
    output = model(**make_inputs(config))
    parts = get_label_set(config.label_set).num_parts
    assert output.image.shape == (2, 3, *config.image_size)
    assert output.layout_logits.shape == output.target_layout.shape == (2, parts, *config.image_size)
    assert output.image.abs().max() <= 1
    assert torch.equal(output.target_layout, to_one_hot(output.predicted_labels(), parts))


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["deepfashion", "market"])
def test_preset_shapes(preset: str) -> None:
    config = load_config(CONFIGS / f"{preset}.yaml").model
    torch.manual_seed(0)
    model, discriminators = RecaptureGenerator(config).eval(), Discriminators(config).eval()
    inputs = make_inputs(config, batch=1)
    with torch.no_grad():
        output = model(**inputs)
        logits = discriminators(output.target_layout, output.image, inputs["target_pose"], inputs["source_image"])
    assert output.image.shape == (1, 3, *config.image_size)
    assert output.layout_logits.shape[1] == get_label_set(config.label_set).num_parts
    for patch in (logits.layout, logits.pose, logits.identity):
        assert patch.shape[:2] == (1, 1) and min(patch.shape[2:]) >= 2


def test_gradients_reach_every_parameter() -> None:
    config = tiny_config()
    torch.manual_seed(0)
    model, discriminators = RecaptureGenerator(config), Discriminators(config)
    inputs = make_inputs(config)
    output = model(**inputs)
    logits = discriminators(straight_through_one_hot(output.layout_logits), output.image, inputs["target_pose"],
                            inputs["source_image"])
    loss = output.image.square().mean() + output.layout_logits.square().mean()
    (loss + logits.layout.mean() + logits.pose.mean() + logits.identity.mean()).backward()
    for module in (model, discriminators):
        for name, parameter in module.named_parameters():
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_image_gradient_reaches_geometric_net_only_without_teacher_forcing() -> None:
    config = tiny_config()
    model = RecaptureGenerator(config)
    inputs = make_inputs(config)
    head = next(p for n, p in model.geometric.named_parameters() if n.startswith("head"))
    model(**inputs).image.mean().backward()
    assert head.grad is not None and head.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)
    target_layout = to_one_hot(blob_labels(2, model.num_parts, config.image_size), model.num_parts)
    model(**inputs, target_layout=target_layout).image.mean().backward()
    assert head.grad is None


def _layers(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]


@pytest.mark.parametrize("enabled", [True, False])
def test_spectral_norm_on_every_conv_and_linear(enabled: bool) -> None:
    config = tiny_config(spectral_norm=enabled)
    for module in (RecaptureGenerator(config), Discriminators(config)):
        layers = _layers(module)
        assert len(layers) > 10
        for layer in layers:
            assert is_parametrized(layer, "weight") is enabled
            if enabled:
                assert type(layer.parametrizations.weight[0]).__name__ == "_SpectralNorm"


def test_all_background_source_layout_gives_finite_outputs_and_gradients() -> None:
    config = tiny_config()
    model = RecaptureGenerator(config)
    inputs = make_inputs(config)
    inputs["source_layout"] = torch.zeros_like(inputs["source_layout"])
    inputs["source_layout"][:, 0] = 1
    output = model(**inputs)
    output.image.mean().backward()
    assert torch.isfinite(output.image).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_target_layout_is_used_and_integer_labels_equal_one_hot() -> None:
    config = tiny_config()
    model = RecaptureGenerator(config).eval()
    inputs = make_inputs(config)
    labels = blob_labels(2, model.num_parts, config.image_size, torch.Generator().manual_seed(9))
    with torch.no_grad():
        from_labels = model(**inputs, target_layout=labels)
        from_one_hot = model(**inputs, target_layout=to_one_hot(labels, model.num_parts))
        edited = labels.clone()
        edited[:, :, :12] = 3
        from_edit = model(**inputs, target_layout=edited)
    assert torch.equal(from_labels.target_layout, to_one_hot(labels, model.num_parts))
    assert torch.allclose(from_labels.image, from_one_hot.image)
    assert not torch.allclose(from_labels.image, from_edit.image)


@pytest.mark.parametrize("sat, lgr", [(False, False), (True, False), (False, True)])
def test_ablation_switches(sat: bool, lgr: bool) -> None:
    config = tiny_config(sat_enabled=sat, lgr_enabled=lgr)
    model = RecaptureGenerator(config)
    assert (model.appearance.sat is not None) is sat and (model.appearance.lgr is not None) is lgr
    assert model(**make_inputs(config)).image.shape == (2, 3, *config.image_size)
    if not sat:
        with pytest.raises(ValueError, match="sat_enabled"):
            model.sat_attention(**make_inputs(config), pixel=(0, 0))


def test_sat_attention_of_a_target_pixel() -> None:
    config = tiny_config()
    model = RecaptureGenerator(config).eval()
    inputs = make_inputs(config)
    target = to_one_hot(blob_labels(2, model.num_parts, config.image_size, torch.Generator().manual_seed(4)),
                        model.num_parts)
    with torch.no_grad():
        attention = model.sat_attention(**inputs, pixel=(17, 9), target_layout=target)
    level = config.sat_level
    assert attention.level == level and attention.pixel == (17 >> level, 9 >> level)
    size = (config.image_size[0] >> level, config.image_size[1] >> level)
    assert attention.weights.shape == (2, *size)
    source_labels = nn.functional.interpolate(inputs["source_layout"], size=size, mode="area").argmax(1)
    target_labels = nn.functional.interpolate(target, size=size, mode="area").argmax(1)
    for b in range(2):
        part = target_labels[b, attention.pixel[0], attention.pixel[1]]
        in_part = source_labels[b] == part
        expected = 1.0 if in_part.any() else 0.0
        assert torch.allclose(attention.weights[b].sum(), torch.tensor(expected), atol=1e-5)
        assert torch.all(attention.weights[b][~in_part] == 0)


def test_bad_inputs_name_the_argument() -> None:
    config = tiny_config()
    model = RecaptureGenerator(config)
    inputs = make_inputs(config)
    with pytest.raises(ValueError, match="target_pose"):
        model(**{**inputs, "target_pose": inputs["target_pose"][:, :17]})
    with pytest.raises(ValueError, match="source_layout"):
        model(**{**inputs, "source_layout": inputs["source_layout"][:, :7]})
    with pytest.raises(ValueError, match="labels must lie"):
        model(**inputs, target_layout=torch.full((2, *config.image_size), 99))
    with pytest.raises(ValueError, match="divisible"):
        model(**{k: v[..., :30, :] for k, v in inputs.items()})


@pytest.mark.parametrize("changes, field", [({"sat_level": 3}, "sat_level"), ({"image_size": (30, 24)}, "image_size"),
                                            ({"norm": "group"}, "norm"), ({"lgr_steps": -1}, "lgr_steps")])
def test_invalid_model_config_is_rejected(changes: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"model.{field}"):
        validate_model_config(tiny_config(**changes))
