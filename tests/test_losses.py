"""Objectives (paper eqs. 8-18): GAN forms, totals, alternating steps, perceptual loss weights."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torchvision.models.vgg import cfgs, make_layers

from recapture.config import LossConfig, load_config
from recapture.models.discriminators import Discriminators
from recapture.models.generator import RecaptureGenerator
from recapture.models.layout_ops import blob_labels
from recapture.models.losses import (
    GAN_MODES,
    discriminator_loss,
    discriminator_objective,
    generator_adversarial_loss,
    generator_objective,
    layout_cross_entropy,
)
from recapture.models.perceptual import PerceptualWeightsError, build_perceptual_loss
from test_models import make_inputs, single_thread, tiny_config  # noqa: F401  (autouse fixture)

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def test_gan_forms_at_known_logits() -> None:
    zero, two = torch.zeros(3), torch.full((3,), 2.0)
    assert math.isclose(discriminator_loss(zero, zero, "nonsaturating").item(), 2 * math.log(2), rel_tol=1e-6)
    assert math.isclose(discriminator_loss(two, -two, "hinge").item(), 0.0)
    assert math.isclose(discriminator_loss(zero, zero, "hinge").item(), 2.0)
    assert math.isclose(discriminator_loss(two, zero, "lsgan").item(), 1.0)
    assert math.isclose(generator_adversarial_loss(zero, "nonsaturating").item(), math.log(2), rel_tol=1e-6)
    assert math.isclose(generator_adversarial_loss(zero, "saturating").item(), -math.log(2), rel_tol=1e-6)
    assert math.isclose(generator_adversarial_loss(two, "hinge").item(), -2.0)
    assert math.isclose(generator_adversarial_loss(two, "lsgan").item(), 1.0)
    with pytest.raises(ValueError, match="loss.gan_mode"):
        discriminator_loss(zero, zero, "wgan")


def test_layout_cross_entropy_matches_definition() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 4, 3, generator=generator)
    labels = torch.randint(0, 5, (2, 4, 3), generator=generator)
    expected = -torch.log_softmax(logits, 1).gather(1, labels[:, None]).mean()
    assert torch.allclose(layout_cross_entropy(logits, labels), expected)
    with pytest.raises(ValueError, match="target_layout_labels"):
        layout_cross_entropy(logits, labels + 5)


def _setup(seed: int = 0):
    config = load_config(CONFIGS / "tiny.yaml")
    torch.manual_seed(seed)
    model, discriminators = RecaptureGenerator(config.model), Discriminators(config.model)
    inputs = make_inputs(config.model, seed=seed)
    generator = torch.Generator().manual_seed(seed + 1)
    batch = {"target_image": torch.rand(2, 3, *config.model.image_size, generator=generator) * 2 - 1,
             "target_layout_labels": blob_labels(2, model.num_parts, config.model.image_size, generator)}
    return config, model, discriminators, inputs, batch


def _objectives(config, model, discriminators, inputs, batch, loss_config: LossConfig | None = None):
    loss_config = loss_config or config.loss
    output = model(**inputs)
    common = dict(output=output, source_image=inputs["source_image"], target_image=batch["target_image"],
                  target_layout_labels=batch["target_layout_labels"], target_pose=inputs["target_pose"],
                  config=loss_config)
    return discriminator_objective(discriminators, **common), generator_objective(discriminators, None, **common)


@pytest.mark.parametrize("mode", GAN_MODES)
def test_totals_are_the_weighted_sums_of_eqs_17_and_18(mode: str) -> None:
    config, model, discriminators, inputs, batch = _setup()
    loss = dataclasses.replace(config.loss, gan_mode=mode, lambda_layout_adv=0.5, lambda_image_adv=3.0,
                               lambda_reconstruction=7.0, lambda_layout_ce=11.0)
    d, g = _objectives(config, model, discriminators, inputs, batch, loss)
    assert torch.allclose(d.total, 0.5 * d.layout + 3.0 * (d.pose + d.identity))
    expected = (0.5 * g.layout_adversarial + 3.0 * (g.pose_adversarial + g.identity_adversarial)
                + 7.0 * g.reconstruction + 11.0 * g.layout_cross_entropy)
    assert torch.allclose(g.total, expected)
    assert g.perceptual.item() == 0.0
    for value in [getattr(losses, f.name) for losses in (d, g) for f in dataclasses.fields(losses)]:
        assert value.dim() == 0 and torch.isfinite(value)


def _snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _same(module: torch.nn.Module, snapshot: list[torch.Tensor]) -> bool:
    return all(torch.equal(p, s) for p, s in zip(module.parameters(), snapshot))


def test_generator_step_leaves_discriminators_unchanged_and_vice_versa() -> None:
    config, model, discriminators, inputs, batch = _setup(1)
    g_optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    d_optimizer = torch.optim.Adam(discriminators.parameters(), lr=1e-3)

    d_before, g_before = _snapshot(discriminators), _snapshot(model)
    d_losses, g_losses = _objectives(config, model, discriminators, inputs, batch)
    d_optimizer.zero_grad()
    d_losses.total.backward()
    assert all(p.grad is None for p in model.parameters())
    d_optimizer.step()
    assert _same(model, g_before) and not _same(discriminators, d_before)

    d_before = _snapshot(discriminators)
    discriminators.zero_grad(set_to_none=True)
    g_optimizer.zero_grad()
    g_losses.total.backward()
    assert all(p.grad is None for p in discriminators.parameters())
    assert all(p.requires_grad for p in discriminators.parameters())
    g_optimizer.step()
    assert _same(discriminators, d_before) and not _same(model, g_before)


def test_missing_vgg_weights_with_nonzero_weight_is_a_clear_error(tmp_path: Path) -> None:
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        with pytest.raises(PerceptualWeightsError, match="vgg19-dcbb9e9d.pth") as error:
            build_perceptual_loss(LossConfig(perceptual_weight=1.0))
        assert str(tmp_path / "hub" / "checkpoints") in str(error.value)
        assert build_perceptual_loss(LossConfig(perceptual_weight=0.0)) is None
    finally:
        torch.hub.set_dir(previous)
    with pytest.raises(PerceptualWeightsError, match="loss.vgg_weights"):
        build_perceptual_loss(LossConfig(vgg_weights=str(tmp_path / "absent.safetensors")))


def test_generator_objective_needs_the_perceptual_loss_when_weighted() -> None:
    config, model, discriminators, inputs, batch = _setup()
    with pytest.raises(ValueError, match="build_perceptual_loss"):
        weighted = dataclasses.replace(config.loss, perceptual_weight=1.0)
        _objectives(config, model, discriminators, inputs, batch, weighted)


def test_vgg_weights_from_a_local_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    features = make_layers(cfgs["E"])
    path = tmp_path / "vgg19.safetensors"
    save_file({f"features.{k}": v.contiguous() for k, v in features.state_dict().items()}, str(path))
    perceptual = build_perceptual_loss(LossConfig(vgg_weights=str(path)))
    assert perceptual is not None
    assert torch.equal(perceptual.vgg.features[2].weight, features[2].weight)
    assert all(not p.requires_grad for p in perceptual.parameters())
    generator = torch.Generator().manual_seed(0)
    image = (torch.rand(1, 3, 16, 12, generator=generator) * 2 - 1).requires_grad_(True)
    target = torch.rand(1, 3, 16, 12, generator=generator) * 2 - 1
    loss = perceptual(image, target)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0 and image.grad.abs().sum() > 0
    assert perceptual(target, target).item() == 0.0

    pth = tmp_path / "vgg19.pth"
    torch.save({"0.weight": features[0].weight.detach(), "0.bias": features[0].bias.detach()}, pth)
    with pytest.raises(PerceptualWeightsError, match="features.2.weight"):
        build_perceptual_loss(LossConfig(vgg_weights=str(pth)))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(PerceptualWeightsError, match="cannot read"):
        build_perceptual_loss(LossConfig(vgg_weights=str(tmp_path / "junk.pth")))
