"""A parser head that fine-tunes the last Inception stages (``ParserHeadConfig.tuned``)."""

from __future__ import annotations

import pytest
import torch

from recapture.config import ConfigError
from recapture.models.parser import STAGES, ParserHead, ParserHeadConfig, input_stages, tuned_names

SMALL = dict(deep=8, middle=8, shallow=8, fine=8, context=8)


def _backbone():
    from recapture.models.inception import InceptionUnavailable, load_inception

    try:
        return load_inception()
    except InceptionUnavailable as err:
        pytest.skip(str(err))


def test_tuned_stages_must_be_a_run_ending_at_mixed_7() -> None:
    assert input_stages(ParserHeadConfig()) == STAGES and tuned_names(ParserHeadConfig()) == ()
    assert tuned_names(ParserHeadConfig(tuned="mixed_6, mixed_7")) == ("mixed_6", "mixed_7")
    assert input_stages(ParserHeadConfig(tuned="mixed_6,mixed_7")) == ("conv_4", "mixed_2", "mixed_5")
    assert input_stages(ParserHeadConfig(tuned="mixed_7")) == ("conv_4", "mixed_2", "mixed_6")
    for bad in ("mixed_7, mixed_6", "mixed_5, mixed_7", "mixed_6", "mixed_8", "tail"):
        with pytest.raises(ConfigError, match="head.tuned"):
            ParserHeadConfig(tuned=bad)


def test_tuned_head_starts_as_the_frozen_one_and_trains_only_its_own_copy() -> None:
    """Given a frozen head's weights, a tuned head predicts what it does (its copies start as the backbone's
    stages); one optimiser step changes its prediction and its copies but neither the shared backbone nor the
    BatchNorm statistics; given mixed_7 itself (the ONNX export's way), the copies are skipped."""
    backbone = _backbone()
    torch.manual_seed(0)
    image = torch.rand(2, 3, 160, 112)
    mask = torch.ones(2, 1, 160, 112)
    keypoints = torch.full((2, 18, 2), -1.0)
    frozen = ParserHead(ParserHeadConfig(**SMALL)).eval()
    tuned = ParserHead(ParserHeadConfig(**SMALL, tuned="mixed_6,mixed_7")).eval()
    missing, unexpected = tuned.load_state_dict(frozen.state_dict(), strict=False)
    assert not unexpected and missing and all(name.startswith("tail.") for name in missing)
    plain_stages = backbone.stages(image, STAGES)
    tuned_stages = backbone.stages(image, input_stages(tuned.config))
    with torch.no_grad():
        expected = frozen(plain_stages, mask, keypoints)
        assert torch.allclose(tuned(tuned_stages, mask, keypoints), expected, atol=1e-5)
    statistics = {n: p.clone() for n, p in tuned.tail.named_parameters() if n.endswith((".mean", ".var"))}
    trainable = [p for p in tuned.tail.parameters() if p.requires_grad]
    assert statistics and len(trainable) == sum(1 for _ in tuned.tail.parameters()) - len(statistics)
    optimizer = torch.optim.Adam(trainable, lr=1e-2)
    tuned(tuned_stages, mask, keypoints).square().mean().backward()
    optimizer.step()
    with torch.no_grad():
        assert (tuned(tuned_stages, mask, keypoints) - expected).abs().max() > 1e-4
        assert torch.equal(backbone.stages(image, STAGES)["mixed_7"], plain_stages["mixed_7"])
        assert torch.equal(tuned({**plain_stages}, mask, keypoints), frozen(plain_stages, mask, keypoints))
    assert all(torch.equal(p, statistics[n]) for n, p in tuned.tail.named_parameters() if n in statistics)


@pytest.mark.slow
def test_a_tuned_parser_file_runs_its_stages_in_torch_and_onnx(tmp_path) -> None:
    """A parser file with tuned stages (perturbed, so that running the backbone's own stages would differ) gives
    the same probabilities in the torch parser and its ONNX export; the copies are stored as float16."""
    import numpy as np

    from recapture.hub import read_model_file
    from recapture.pipelines.human_parsing import CcpParser
    from recapture.pipelines.onnx_parser import OnnxCcpParser, export_parser_onnx
    from recapture.training.parser import ParserTrainConfig, export_head

    pytest.importorskip("onnxruntime")
    _backbone()
    torch.manual_seed(1)
    head = ParserHead(ParserHeadConfig(**SMALL, tuned="mixed_7"))
    with torch.no_grad():
        for parameter in head.tail.parameters():
            if parameter.requires_grad:
                parameter.mul_(1.0 + torch.randn_like(parameter))
        head.fine[2].weight.mul_(300.0)  # peaked probabilities, which follow the features
    path = tmp_path / "tuned.safetensors"
    export_head(head.state_dict(), ParserTrainConfig(head=head.config), {}, path)
    tensors, _ = read_model_file(path)
    assert tensors["tail.stages.0.conv.weight"].dtype == torch.float16
    assert tensors["deep.0.0.weight"].dtype == torch.float32
    reference = CcpParser(path)
    runtime = OnnxCcpParser(path=export_parser_onnx(path, tmp_path / "tuned.onnx"))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (300, 200, 3)).astype(np.uint8)
    mask = np.zeros((300, 200), np.float32)
    mask[40:280, 60:140] = 1.0
    keypoints = np.full((18, 2), -1.0)
    keypoints[[0, 1, 2, 5, 8, 11]] = [[60, 100], [90, 100], [90, 80], [90, 120], [170, 88], [170, 112]]
    expected, got = (p.probabilities(image, keypoints, mask) for p in (reference, runtime))
    assert np.abs(got - expected).max() < 1e-3, np.abs(got - expected).max()
    frozen = ParserHead(ParserHeadConfig(**SMALL)).eval()
    frozen.load_state_dict({k: v for k, v in reference.head.state_dict().items() if not k.startswith("tail.")})
    reference.head = frozen
    change = np.abs(reference.probabilities(image, keypoints, mask) - expected).max()
    assert change > 0.02, change  # the tuned stages change the parse
