"""LGR (paper §3.4): adjacency, masked pooling, propagation, shapes, gradients."""

from __future__ import annotations

import pytest
import torch

from recapture.body.parts import get_label_set
from recapture.models.layout_ops import blob_labels, to_one_hot
from recapture.models.lgr import LayoutGraphReasoning, masked_average

from test_models import single_thread  # noqa: F401  (autouse fixture)


def _inputs(label_set: str = "market7", size: tuple[int, int] = (8, 6), seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    parts = get_label_set(label_set).num_parts
    feature = torch.randn(2, 10, *size, generator=generator)
    layout = to_one_hot(blob_labels(2, parts, size, generator), parts)
    return feature, layout


def test_adjacency_is_the_symmetric_normalised_skeleton() -> None:
    for name in ("market7", "lip20"):
        lgr = LayoutGraphReasoning(name, 4, 4, 1, 4)
        assert torch.allclose(lgr.adjacency, lgr.adjacency.T)
        assert torch.equal(lgr.adjacency, get_label_set(name).normalized_adjacency())
        assert lgr.adjacency.shape == (lgr.num_parts, lgr.num_parts)


def test_masked_average_matches_loop_and_empty_part_is_zero() -> None:
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(2, 3, 20, generator=generator)
    labels = torch.randint(0, 3, (2, 20), generator=generator)
    masks = torch.nn.functional.one_hot(labels, 4).transpose(1, 2).float()  # part 3 always empty
    result = masked_average(features, masks)
    for b in range(2):
        for c in range(3):
            assert torch.allclose(result[b, c], features[b][:, labels[b] == c].mean(dim=1), atol=1e-6)
    assert torch.all(result[:, 3] == 0)


def test_output_shape_and_no_nan_with_all_background_layout() -> None:
    feature, layout = _inputs()
    lgr = LayoutGraphReasoning("market7", 10, 8, 2, 5)
    assert lgr(feature, layout).shape == (2, 5, 8, 6)
    background = torch.zeros_like(layout)
    background[:, 0] = 1
    assert torch.isfinite(lgr(feature, background)).all()


def test_propagation_steps_change_the_output_and_use_the_adjacency() -> None:
    feature, layout = _inputs(seed=2)
    torch.manual_seed(0)
    without = LayoutGraphReasoning("market7", 10, 8, 0, 5, sn=False)
    torch.manual_seed(0)
    with_steps = LayoutGraphReasoning("market7", 10, 8, 2, 5, sn=False)
    missing = with_steps.load_state_dict(without.state_dict(), strict=False).missing_keys
    assert missing and all(key.startswith("propagate.") for key in missing)
    with torch.no_grad():
        base = without(feature, layout)
        propagated = with_steps(feature, layout)
        assert not torch.allclose(base, propagated)
        for module, changes in ((without, False), (with_steps, True)):
            reference = module(feature, layout)
            module.adjacency.copy_(torch.eye(module.num_parts))
            assert torch.allclose(module(feature, layout), reference) is not changes


def test_gradients_reach_every_parameter() -> None:
    feature, layout = _inputs("lip20", seed=3)
    feature.requires_grad_(True)
    lgr = LayoutGraphReasoning("lip20", 10, 8, 2, 5)
    lgr(feature, layout).square().mean().backward()
    for name, parameter in lgr.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert feature.grad.abs().sum() > 0


def test_rejects_wrong_layout_shape() -> None:
    feature, layout = _inputs()
    lgr = LayoutGraphReasoning("market7", 10, 8, 1, 5)
    with pytest.raises(ValueError, match="LGR: layout"):
        lgr(feature, layout[:, :, :4])
