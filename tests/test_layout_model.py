"""The geometric network over the prior, internal/output sizes, training stages, model-mode evaluation at
the model's output size, and Ŝ_B computed once per call."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from recapture.config import ConfigError, load_config
from recapture.data.dataset import PairDataset, collate_pairs
from recapture.data.formats import pair_name, read_pairs
from recapture.evaluation.generate import ModelEvaluationOptions, evaluate_model
from recapture.evaluation.options import EvaluationOptions
from recapture.hub import save_generator
from recapture.body.keypoint_warp import part_warp
from recapture.models.generator import RecaptureGenerator
from recapture.training.distributed import DistributedContext
from recapture.training.trainer import Trainer, TrainingError

ROOT = Path(__file__).resolve().parents[1]
CPU = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
PRIOR = ("model.geometric_prior=true", "model.internal_size=[16,12]", "model.num_down=2", "model.sat_level=1",
         "model.lgr_level=2")


def tiny(manifest: Path | str = "none", run_dir: Path | str = "runs/x", *overrides: str):
    return load_config(ROOT / "configs" / "tiny.yaml", [f"data.manifest={manifest}", f"train.run_dir={run_dir}",
                                                        *PRIOR, *overrides])


def test_config_sizes_and_stages_are_checked() -> None:
    config = tiny()
    assert config.model.output_size == (32, 24) and config.model.network_size == (16, 12)
    with pytest.raises(ConfigError, match="internal_size"):
        tiny("none", "r", "model.internal_size=[64,24]")
    with pytest.raises(ConfigError, match="train.stage"):
        tiny("none", "r", "train.stage=layout")
    with pytest.raises(ValueError, match="divisible"):
        RecaptureGenerator(tiny("none", "r", "model.internal_size=[18,12]").model)


def test_untrained_prior_network_starts_at_the_warp_and_learns_a_residual(tiny_manifest: Path) -> None:
    torch.manual_seed(0)
    model = RecaptureGenerator(tiny().model)
    batch = collate_pairs([PairDataset(tiny_manifest, "train")[i] for i in range(2)])
    args = (batch.source_layout, batch.source_pose, batch.target_pose, batch.source_keypoints, batch.target_keypoints)
    warped = model.geometric.warp(*args).layout
    logits = model.geometric(*args)
    assert logits.shape == warped.shape == batch.target_layout.shape
    assert (logits.argmax(1) == warped.argmax(1)).float().mean() > 0.6
    logits.logsumexp(1).mean().backward()
    assert model.geometric.head.parametrizations.weight.original.grad.abs().sum() > 0
    output = model(batch.source_image, batch.source_layout, batch.source_pose, batch.target_pose,
                   source_keypoints=batch.source_keypoints, target_keypoints=batch.target_keypoints)
    assert output.image.shape == batch.source_image.shape and torch.isfinite(output.image).all()


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], prefix: str) -> bool:
    return any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix))


@pytest.mark.parametrize("stage,trained,frozen", [("geometric", "geometric.", "appearance."),
                                                  ("appearance", "appearance.", "geometric.")])
def test_a_stage_trains_only_its_network(tiny_manifest: Path, tmp_path: Path, stage: str, trained: str,
                                         frozen: str) -> None:
    config = tiny(tiny_manifest, tmp_path / "run", f"train.stage={stage}", "train.batch_size=2",
                  "train.predicted_layout=0.5", "data.flip=false")
    trainer = Trainer(config, tmp_path / "run", CPU)
    before = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
    batch = collate_pairs([trainer.dataset[i] for i in range(2)])
    losses = trainer.train_step(batch)
    after = trainer.generator.state_dict()
    assert _changed(before, after, trained) and not _changed(before, after, frozen)
    assert losses.g_layout_cross_entropy > 0


def test_init_from_starts_from_another_runs_weights(tiny_manifest: Path, tmp_path: Path) -> None:
    first = tiny(tiny_manifest, tmp_path / "a", "train.stage=geometric", "train.steps=2", "train.batch_size=2")
    Trainer(first, tmp_path / "a", CPU).train()
    second = replace(first, train=replace(first.train, stage="appearance", init_from=str(tmp_path / "a")))
    trainer = Trainer(second, tmp_path / "b", CPU)
    trained = Trainer(first, tmp_path / "a", CPU)
    trained.resume(tmp_path / "a")
    for (name, a), b in zip(trainer.generator.state_dict().items(), trained.generator.state_dict().values()):
        assert torch.equal(a, b), name
    other = replace(second, model=replace(second.model, geometric_channels=8))
    with pytest.raises(TrainingError, match="init_from"):
        Trainer(other, tmp_path / "c", CPU)


@pytest.fixture()
def padded_manifest(tmp_path: Path) -> Path:
    """A DeepFashion-like tiny set: images stored 8 px wider each side, keypoints in that wider frame."""
    from conftest import build_tiny_dataset

    return build_tiny_dataset(tmp_path / "padded", count=4, pad=8)


@pytest.mark.slow  # FID's 2048x2048 eigendecomposition dominates: 4 s idle, ~45 s on a loaded machine
def test_evaluate_writes_every_pair_at_the_output_size_and_honours_the_offset(padded_manifest: Path,
                                                                            tmp_path: Path) -> None:
    dataset = PairDataset(padded_manifest, "train")
    sample = dataset[0]
    labels = sample.source_layout.argmax(0)
    for joint in (0, 4, 7):  # nose, wrists: inside their parts only if the offset was applied
        y, x = (int(v) for v in sample.source_keypoints[joint])
        assert labels[y, x] > 0
    config = tiny().model
    torch.manual_seed(0)
    model = save_generator(RecaptureGenerator(config).state_dict(), config, tmp_path / "m.safetensors", half=False)
    out = tmp_path / "generated"
    options = ModelEvaluationOptions(split="train", out_dir=out, edits=False, progress=False,
                                     metrics=EvaluationOptions(batch_size=3, use_cache=False, threads=1,
                                                               inception_weights=tmp_path / "absent.pth",
                                                               lpips_weights=tmp_path / "absent.pth"))
    report = evaluate_model(model, padded_manifest, options)
    pairs = read_pairs(padded_manifest.parent / "pairs.csv")
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(pair_name(a, b) for a, b in pairs)
    assert Image.open(out / written[0]).size == (24, 32) and report.count == len(pairs)
    bigger = replace(config, image_size=(64, 48), internal_size=(16, 12))
    other = save_generator(RecaptureGenerator(bigger).state_dict(), bigger, tmp_path / "b.safetensors", half=False)
    with pytest.raises(ValueError, match="outputs 64x48 .* manifest .* is 32x24"):
        evaluate_model(other, padded_manifest, options)


def test_the_geometric_network_runs_once_per_recapture(tiny_manifest: Path) -> None:
    from recapture.pipelines.recapture import Recapturer

    config = tiny().model
    recapturer = Recapturer(RecaptureGenerator(config), config)
    calls = []
    recapturer.generator.geometric.register_forward_hook(lambda *_: calls.append(1))
    sample = PairDataset(tiny_manifest, "train")[0]
    image = ((sample.source_image.permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()
    result = recapturer(image, sample.target_keypoints.numpy(), source_pose=sample.source_keypoints.numpy(),
                        source_layout=sample.source_layout.argmax(0).numpy().astype(np.uint8))
    assert len(calls) == 1 and result.image.shape == (32, 24, 3)
    still = recapturer.warp(result.source, result.source.keypoints)
    layout = torch.from_numpy(result.source.layout.astype(np.int64))[None]
    covered = (part_warp(layout, result.source.keypoints[None], result.source.keypoints[None]).segment[0] >= 0).numpy()
    assert still.shape == image.shape and covered.sum() >= 20  # the head: the tiny person has no shoulders
    assert np.array_equal(still[covered], result.source.image[covered])
