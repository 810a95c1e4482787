"""SAT (paper eqs. 1-2): naive reference equality, part isolation, attention maps, cost."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from recapture.models.layout_ops import blob_labels
from recapture.models.sat import SemanticAttentiveTransfer, dense_part_attention, part_attention

from test_models import single_thread  # noqa: F401  (autouse fixture)


def naive_sat(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, source_labels: torch.Tensor,
              target_labels: torch.Tensor) -> torch.Tensor:
    """Eqs. (1)-(2) one target pixel at a time."""
    batch, channels, height, width = value.shape
    out = torch.zeros(batch, channels, height, width, dtype=value.dtype)
    for b in range(batch):
        for y in range(height):
            for x in range(width):
                same = source_labels[b] == target_labels[b, y, x]
                if not same.any():
                    continue
                scores = torch.einsum("d,dn->n", query[b, :, y, x], key[b][:, same])
                weights = torch.exp(scores - scores.max())
                weights = weights / weights.sum()
                out[b, :, y, x] = value[b][:, same] @ weights
    return out


def _case(seed: int, size: tuple[int, int] = (6, 5), parts: int = 5, dim: int = 4, channels: int = 3):
    generator = torch.Generator().manual_seed(seed)
    query = torch.randn(2, dim, *size, generator=generator)
    key = torch.randn(2, dim, *size, generator=generator)
    value = torch.randn(2, channels, *size, generator=generator)
    source = torch.randint(0, parts - 1, (2, *size), generator=generator)  # part parts-1 never in the source
    target = torch.randint(0, parts, (2, *size), generator=generator)
    target[:, 0, 0] = parts - 1
    return query, key, value, source, target


@pytest.mark.parametrize("seed", range(4))
def test_part_attention_matches_naive_reference(seed: int) -> None:
    query, key, value, source, target = _case(seed)
    expected = naive_sat(query, key, value, source, target)
    assert torch.allclose(part_attention(query, key, value, source, target), expected, atol=1e-5)
    assert torch.allclose(dense_part_attention(query, key, value, source, target), expected, atol=1e-5)


def test_target_part_absent_from_source_gives_zeros() -> None:
    query, key, value, source, target = _case(0)
    out = part_attention(query, key, value, source, target)
    absent = target == 4
    assert absent.any()
    assert torch.all(out.permute(0, 2, 3, 1)[absent] == 0)
    assert torch.all(out.permute(0, 2, 3, 1)[~absent].abs().sum(-1) > 0)


def test_all_background_source_has_no_nan_and_gradients_are_finite() -> None:
    query, key, value, _, target = _case(1)
    for tensor in (query, key, value):
        tensor.requires_grad_(True)
    source = torch.zeros_like(target)
    out = part_attention(query, key, value, source, target)
    out.square().sum().backward()
    assert torch.isfinite(out).all()
    assert torch.all(out.permute(0, 2, 3, 1)[target != 0] == 0)
    assert all(torch.isfinite(t.grad).all() for t in (query, key, value))


def test_gradients_match_dense_form() -> None:
    inputs = _case(2)
    grads = []
    for attend in (part_attention, dense_part_attention):
        query, key, value = (t.clone().requires_grad_(True) for t in inputs[:3])
        (attend(query, key, value, *inputs[3:]) * torch.linspace(-1, 1, 30).view(1, 1, 6, 5)).sum().backward()
        grads.append((query.grad, key.grad, value.grad))
    for sparse, dense in zip(*grads):
        assert torch.allclose(sparse, dense, atol=1e-5)


def test_other_part_source_pixel_does_not_affect_output() -> None:
    torch.manual_seed(0)
    sat = SemanticAttentiveTransfer(6, 6, 4, sn=False)
    decoder, encoder = torch.randn(1, 6, 8, 7), torch.randn(1, 6, 8, 7)
    source = blob_labels(1, 4, (8, 7), torch.Generator().manual_seed(3))
    target = blob_labels(1, 4, (8, 7), torch.Generator().manual_seed(4))
    j = (2, 3)
    part = int(target[0, j[0], j[1]])
    other = torch.nonzero(source[0] != part)[0]
    same = torch.nonzero(source[0] == part)[0]
    with torch.no_grad():
        base = sat(decoder, encoder, source, target)[0, :, j[0], j[1]]
        perturbed = encoder.clone()
        perturbed[0, :, other[0], other[1]] += 10.0
        assert torch.equal(sat(decoder, perturbed, source, target)[0, :, j[0], j[1]], base)
        perturbed = encoder.clone()
        perturbed[0, :, same[0], same[1]] += 10.0
        assert not torch.allclose(sat(decoder, perturbed, source, target)[0, :, j[0], j[1]], base)


def test_attention_map_sums_to_one_on_its_part_and_reproduces_output() -> None:
    torch.manual_seed(1)
    sat = SemanticAttentiveTransfer(5, 6, 4, sn=False)
    decoder, encoder = torch.randn(2, 5, 8, 7), torch.randn(2, 6, 8, 7)
    source = blob_labels(2, 4, (8, 7), torch.Generator().manual_seed(5))
    target = blob_labels(2, 4, (8, 7), torch.Generator().manual_seed(6))
    source[1] = 0
    target[1, 4, 4] = 2  # a part absent from the second source
    with torch.no_grad():
        out = sat(decoder, encoder, source, target)
        weights = sat.attention_map(decoder, encoder, source, target, (4, 4))
    part = target[0, 4, 4]
    assert torch.allclose(weights[0][source[0] == part].sum(), torch.tensor(1.0), atol=1e-6)
    assert torch.all(weights[0][source[0] != part] == 0)
    assert torch.all(weights[1] == 0)
    assert torch.allclose(torch.einsum("hw,chw->c", weights[0], encoder[0]), out[0, :, 4, 4], atol=1e-5)


def test_attention_map_rejects_pixel_outside() -> None:
    sat = SemanticAttentiveTransfer(2, 2, 2, sn=False)
    feature, labels = torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="outside"):
        sat.attention_map(feature, feature, labels, labels, (4, 0))


def test_cost_grows_with_part_sizes_not_with_squared_pixels() -> None:
    size, dim, channels = (16, 12), 8, 6
    generator = torch.Generator().manual_seed(7)
    query, key = torch.randn(2, 1, dim, *size, generator=generator)
    value = torch.randn(1, channels, *size, generator=generator)
    source = blob_labels(1, 10, size, generator)
    target = blob_labels(1, 10, size, generator)
    pairs = sum(int((source == c).sum()) * int((target == c).sum()) for c in range(10))
    with FlopCounterMode(display=False) as counter:
        part_attention(query, key, value, source, target)
    assert counter.get_total_flops() == 2 * pairs * (dim + channels)
    assert 2 * pairs * (dim + channels) < 0.3 * 2 * (size[0] * size[1]) ** 2 * (dim + channels)


def test_rejects_float_labels() -> None:
    query, key, value, source, target = _case(0)
    with pytest.raises(ValueError, match="source_labels"):
        part_attention(query, key, value, source.float(), target)
