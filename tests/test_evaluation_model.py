"""`recapture evaluate --model`, the SynthHumans scores and the ablation script, on tiny models and data."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from recapture.body.edits import LayoutEdits
from recapture.body.keypoints import KEYPOINT_INDEX
from recapture.body.parts import LIP20
from recapture.cli import app
from recapture.config import load_config
from recapture.data.dataset import PairDataset, collate_pairs
from recapture.data.formats import pair_name
from recapture.data.synthetic import EditRecord, SynthConfig, generate as write_synthhumans
from recapture.evaluation import EvaluationReport, EvaluationSettings, read_json, ssim, write_json
from recapture.evaluation.report import metric_fields
from recapture.evaluation.generate import (EDIT_SCORES, SPLIT_SCORES, ModelEvaluationOptions, edited_layouts,
                                           evaluate_model, generate, layout_edits, spread_indices)
from recapture.evaluation.synthetic import (ExtraScoreAccumulator, colour_coherence, layout_iou, region_ssim,
                                            symmetric_regions)
from recapture.models.generator import RecaptureGenerator
from recapture.hub import load_generator, save_generator

ROOT = Path(__file__).resolve().parents[1]
CORE_KEYS = ("ssim", "masked_ssim", "is", "masked_is", "fid", "kid", "inception_distance", "lpips", "l1", "psnr")
KEY_OF = {f.name: f.metadata["key"] for f in metric_fields()}


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 32x24 SynthHumans set: 5 people x 3 poses (1 test identity: 6 test pairs, 2 pairs per edit split)."""
    root = tmp_path_factory.mktemp("synth")
    return write_synthhumans(SynthConfig(root, people=5, poses=3, size=(32, 24), seed=0)).manifest


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random generator of the tiny config (32x24, LIP-20), exported as safetensors."""
    config = load_config(ROOT / "configs" / "tiny.yaml").model
    torch.manual_seed(0)
    generator = RecaptureGenerator(config)
    return save_generator(generator.state_dict(), config, tmp_path_factory.mktemp("model") / "tiny.safetensors",
                          {"step": "0"}, half=False)


def test_model_mode_writes_every_key_and_matches_folder_mode(synth: Path, model_file: Path, tmp_path: Path) -> None:
    out, first, second = tmp_path / "generated", tmp_path / "model.json", tmp_path / "folder.json"
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", "--model", str(model_file), "--data", str(synth), "--out", str(out),
                                 "--json", str(first), "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    data = json.loads(first.read_text())
    for key in (*CORE_KEYS, *(KEY_OF[name] for name in SPLIT_SCORES + EDIT_SCORES)):
        assert key in data, key
        assert data[key] is not None or key in data["unavailable"], key
    assert data["count"] == 6 and data["metric_counts"]["edit_figure_l1"] == 2
    for key in ("invisible_l1", "colour_coherence", "texture_fidelity", "edit_clothing_layout_iou"):
        assert data[key] is not None, (key, data["unavailable"].get(key))
    assert "target layout predicted" in data["settings"]["generated_by"]
    manifest = synth.parent
    pairs = (manifest / "pairs-test.csv").read_text().splitlines()[1:]
    assert sorted(p.name for p in out.glob("*.png")) == sorted(pair_name(*row.split(",")) for row in pairs)
    assert len(list((out / "edit_clothing").glob("*.png"))) == 2
    result = runner.invoke(app, ["evaluate", "--generated", str(out), "--real", str(manifest / "test"),
                                 "--pairs", str(manifest / "pairs-test.csv"),
                                 "--annotations", str(manifest / "annotations-test.csv"), "--json", str(second)])
    assert result.exit_code == 0, result.output
    folder = json.loads(second.read_text())
    for key in ("ssim", "masked_ssim", "l1", "psnr", "masked_l1"):
        assert folder[key] == pytest.approx(data[key], abs=1e-12), key


def test_limit_spreads_pairs_and_ground_truth_mode(synth: Path, model_file: Path) -> None:
    assert spread_indices(10, 4) == [0, 2, 5, 7]
    assert spread_indices(3, 5) == [0, 1, 2] and spread_indices(3, None) == [0, 1, 2]
    report = evaluate_model(model_file, synth, ModelEvaluationOptions(limit=3, target_layout="ground_truth",
                                                                      progress=False))
    assert report.count == 3 and "3 of 6 pairs" in str(report.settings.generated_by)
    assert report.edit_figure_layout_iou is None and "ground_truth" in report.unavailable["edit_figure_layout_iou"]
    assert report.edit_figure_l1 is not None


def test_generate_uses_the_given_layout_or_the_prediction(synth: Path, model_file: Path) -> None:
    generator = load_generator(model_file).generator
    dataset = PairDataset(synth, split="test")
    batch = collate_pairs([dataset[i] for i in range(3)])
    truth = batch.target_layout.argmax(dim=1)
    predicted = generate(generator, batch)
    assert torch.equal(predicted.used_labels, predicted.predicted_labels)
    given = generate(generator, batch, truth)
    assert torch.equal(given.used_labels, truth) and torch.equal(given.predicted_labels, predicted.predicted_labels)
    assert given.images.dtype == torch.uint8 and not torch.equal(given.images, predicted.images)


def test_edit_records_become_layout_edits(synth: Path) -> None:
    dataset = PairDataset(synth, split="edit_figure")
    batch = collate_pairs([dataset[i] for i in range(len(dataset))])
    labels = batch.target_layout.argmax(dim=1)
    edits = [LayoutEdits.from_figure("arms", 1.35), LayoutEdits.from_garments("pants", "skirt")]
    edited = edited_layouts(labels, edits, batch.target_keypoints, LIP20)
    for i, edit in enumerate(edits):
        expected = edit.apply(labels[i].numpy(), batch.target_keypoints[i].numpy(), LIP20)
        assert np.array_equal(edited[i].numpy(), expected)
    assert layout_edits(EditRecord("a", "b", part_group="legs", factor=0.85)) == LayoutEdits(figure=(("legs", 0.85),))
    assert layout_edits(EditRecord("a", "b", garment_from="none", garment_to="coat")).clothing == (("upper", "coat"),)


def test_datasets_without_synthhumans_extras_report_why(tiny_manifest: Path, tmp_path: Path) -> None:
    config = load_config(ROOT / "configs" / "tiny.yaml").model
    path = save_generator(RecaptureGenerator(config).state_dict(), config, tmp_path / "m.safetensors")
    report = evaluate_model(path, tiny_manifest, ModelEvaluationOptions(split="train", progress=False))
    assert report.invisible_l1 is None and "invisible" in report.unavailable["invisible_l1"]
    assert report.edit_clothing_l1 is None and "edit_clothing" in report.unavailable["edit_clothing_l1"]
    assert report.layout_iou is not None and report.texture_l1 is not None
    wrong = replace(config, image_size=(64, 32))
    other = save_generator(RecaptureGenerator(wrong).state_dict(), wrong, tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="64x32 lip20 images but manifest .* is 32x24"):
        evaluate_model(other, tiny_manifest, ModelEvaluationOptions(split="train", progress=False))


def _images(rng: np.random.Generator, batch: int = 2, size: tuple[int, int] = (24, 20)) -> torch.Tensor:
    return torch.from_numpy(rng.integers(0, 256, (batch, 3, *size), dtype=np.uint8))


def test_invisible_l1_counts_only_masked_pixels() -> None:
    rng = np.random.default_rng(0)
    real = _images(rng)
    mask = torch.zeros(2, 1, 24, 20, dtype=torch.uint8)
    mask[0, :, 3:9, 4:12] = 1
    labels = torch.zeros(2, 24, 20, dtype=torch.long)
    keypoints = np.full((2, 18, 2), -1.0)
    outside = real.clone()
    outside[:, :, mask[0, 0] == 0] = 255 - outside[:, :, mask[0, 0] == 0]
    acc = ExtraScoreAccumulator(LIP20)
    acc.update(outside, real, labels, keypoints, invisible=mask)
    scores = acc.compute(["invisible_l1"])
    assert scores.values["invisible_l1"] == 0.0 and scores.counts["invisible_l1"] == 1
    inside = real.clone().to(torch.int16)
    inside[0][:, mask[0, 0] == 1] = (inside[0][:, mask[0, 0] == 1] + 17).clamp(max=255)
    shift = (inside[0][:, mask[0, 0] == 1] - real[0][:, mask[0, 0] == 1].to(torch.int16)).double().mean() / 255
    acc = ExtraScoreAccumulator(LIP20)
    acc.update(inside.to(torch.uint8), real, labels, keypoints, invisible=mask)
    assert acc.compute(["invisible_l1"]).values["invisible_l1"] == pytest.approx(float(shift), abs=1e-12)
    empty = ExtraScoreAccumulator(LIP20)
    empty.update(real, real, labels, keypoints, invisible=torch.zeros_like(mask))
    assert "invisible" in empty.compute(["invisible_l1"]).unavailable["invisible_l1"]


def _symmetric_person() -> tuple[np.ndarray, np.ndarray]:
    """A front-view 40x30 layout: torso shirt, both arms in shirt sleeves, pants legs, shoes; its keypoints.
    The person's right side is on the image's left."""
    labels = np.zeros((40, 30), np.uint8)
    labels[8:20, 10:20] = LIP20.index("upper_clothes")
    labels[8:20, 5:9] = LIP20.index("upper_clothes")  # right sleeve
    labels[8:20, 21:25] = LIP20.index("upper_clothes")  # left sleeve
    labels[20:34, 10:14] = LIP20.index("pants")
    labels[20:34, 16:20] = LIP20.index("pants")
    labels[34:38, 9:14] = LIP20.index("right_shoe")
    labels[34:38, 16:21] = LIP20.index("left_shoe")
    keypoints = np.full((18, 2), -1.0)
    for name, yx in {"neck": (8, 15), "right_shoulder": (8, 7), "right_elbow": (14, 7), "right_wrist": (19, 7),
                     "left_shoulder": (8, 23), "left_elbow": (14, 23), "left_wrist": (19, 23),
                     "right_hip": (20, 12), "right_knee": (27, 12), "right_ankle": (33, 12),
                     "left_hip": (20, 18), "left_knee": (27, 18), "left_ankle": (33, 18)}.items():
        keypoints[KEYPOINT_INDEX[name]] = yx
    return labels, keypoints


def test_colour_coherence_is_zero_for_equal_sides_and_grows_with_one_side() -> None:
    labels, keypoints = _symmetric_person()
    regions = {name: (left, right) for name, left, right in symmetric_regions(labels, keypoints, LIP20)}
    assert set(regions) == {"shoe", "upper_clothes@arm", "pants@leg"}
    left, right = regions["upper_clothes@arm"]
    assert left[:, 21:25].sum() == left.sum() > 0 and right[:, 5:9].sum() == right.sum() > 0
    palette = np.asarray(LIP20.palette, np.uint8)
    one_colour_per_side_pair = np.minimum(labels, np.asarray(LIP20.flip_permutation)[labels])
    image = np.ascontiguousarray(palette[one_colour_per_side_pair].transpose(2, 0, 1))
    assert colour_coherence(image, list(symmetric_regions(labels, keypoints, LIP20))) == 0.0
    values = []
    for delta in (20, 60):
        changed = image.copy().astype(np.int16)
        changed[0][labels == LIP20.index("left_shoe")] += delta
        changed = changed.clip(0, 255).astype(np.uint8)
        values.append(colour_coherence(changed, list(symmetric_regions(labels, keypoints, LIP20))))
    assert 0 < values[0] < values[1]
    assert values[0] == pytest.approx(delta_of(image, 20, labels) / 3 / 255 / 3, abs=1e-12)


def delta_of(image: np.ndarray, delta: int, labels: np.ndarray) -> float:
    """The red-channel shift that ``+delta`` really makes on the left shoe (after clipping at 255)."""
    red = image[0][labels == LIP20.index("left_shoe")].astype(np.int16)
    return float(((red + delta).clip(0, 255) - red).mean())


def test_region_ssim_with_a_full_mask_is_ssim_and_layout_iou_matches_a_loop() -> None:
    rng = np.random.default_rng(1)
    generated, real = _images(rng, 3), _images(rng, 3)
    values, kept = region_ssim(generated, real, torch.ones(3, 1, 24, 20, dtype=torch.uint8))
    torch.testing.assert_close(values, ssim(generated, real), rtol=0, atol=1e-12)
    assert kept.all()
    border = torch.zeros(3, 1, 24, 20, dtype=torch.uint8)
    border[:, :, :5] = 1
    assert not region_ssim(generated, real, border)[1].any()
    predicted = torch.from_numpy(rng.integers(0, 5, (3, 12, 10)))
    truth = torch.from_numpy(rng.integers(0, 4, (3, 12, 10)))
    truth[2] = 0
    predicted[2] = 0
    ious, kept = layout_iou(predicted, truth, 20)
    for b in range(2):
        labels = [k for k in range(1, 20) if (predicted[b] == k).any() or (truth[b] == k).any()]
        expected = np.mean([((predicted[b] == k) & (truth[b] == k)).sum().item()
                            / ((predicted[b] == k) | (truth[b] == k)).sum().item() for k in labels])
        assert ious[b].item() == pytest.approx(expected, abs=1e-12)
    assert kept.tolist() == [True, True, False]


def test_report_round_trip_with_counts(tmp_path: Path) -> None:
    report = EvaluationReport(count=4, ssim=0.5, l1=0.1, psnr=20.0, invisible_l1=0.2, colour_coherence=0.03,
                              metric_counts={"invisible_l1": 3}, settings=EvaluationSettings(generated_by="m"),
                              unavailable={k: "r" for k in CORE_KEYS if k not in ("ssim", "l1", "psnr")})
    write_json(report, tmp_path / "r.json")
    assert read_json(tmp_path / "r.json") == report
    with pytest.raises(ValueError, match="unknown metrics"):
        EvaluationReport(count=1, ssim=0.5, l1=0.1, psnr=1.0, metric_counts={"nope": 1},
                         unavailable={k: "r" for k in CORE_KEYS if k not in ("ssim", "l1", "psnr")})


def _ablation_module():
    spec = importlib.util.spec_from_file_location("ablation", ROOT / "benchmarks" / "ablation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.mark.slow
def test_ablation_script_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ablation = _ablation_module()
    out = tmp_path / "results" / "ablation"
    runs = ablation.main(["--config", str(ROOT / "configs" / "tiny.yaml"), "--people", "5", "--poses", "3",
                          "--steps", "2", "--seeds", "0", "--variants", "basic,sat_lgr", "--limit", "4",
                          "--batch-size", "4", "--work", str(tmp_path / "work"), "--out", str(out), "--quiet",
                          "--set", "train.log_every=100"])
    assert [(r.variant, r.seed, r.report.count) for r in runs] == [("basic", 0, 4), ("sat_lgr", 0, 4)]
    assert not runs[0].model.sat_enabled and runs[1].model.lgr_enabled
    assert "estimated time left" in capsys.readouterr().out
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["steps"] == 2 and len(data["runs"]) == 2 and "--variants basic,sat_lgr" in data["command"]
    assert data["runs"][0]["report"]["invisible_l1"] is not None
    table = out.with_suffix(".md").read_text()
    assert "| Basic | 1 |" in table and "| Basic+SAT+LGR | 1 |" in table and "Colour coherence" in table
    reports = [replace(runs[0].report, ssim=v) for v in (0.5, 0.7)]
    two = [replace(runs[0], seed=s, report=r) for s, r in zip((0, 1), reports)]
    stat = ablation.summarise(two, "basic")["ssim"]
    assert stat.mean == pytest.approx(0.6) and stat.std == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert "0.6000 ± 0.1414" in ablation.to_markdown(two, [ablation.VARIANTS["basic"]], {
        **data, "wall_seconds": 1.0, "finished": 2})


def test_edits_that_the_label_set_cannot_express_are_reported(tmp_path: Path) -> None:
    manifest = write_synthhumans(SynthConfig(tmp_path / "m7", 5, 3, (32, 24), "market7", seed=3)).manifest
    config = replace(load_config(ROOT / "configs" / "tiny.yaml").model, label_set="market7")
    path = save_generator(RecaptureGenerator(config).state_dict(), config, tmp_path / "m7.safetensors")
    report = evaluate_model(path, manifest, ModelEvaluationOptions(progress=False))
    assert report.edit_clothing_l1 is None and "no coat part" in report.unavailable["edit_clothing_l1"]
    assert report.edit_figure_l1 is not None and report.texture_fidelity is not None
