"""Fine-tuning of the default's geometric network on real layouts (recapture.training.layout_real)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from recapture.data.ccp_pairs import CcpPhotos, training_ids
from recapture.hub import bundled_path, load_generator, read_model_file
from recapture.training.layout_real import (LayoutSettings, export_default, load_geometric, load_settings,
                                            person_loss, pooled_miou, save_best, train)


def test_pooled_miou_equals_a_per_class_count() -> None:
    rng = np.random.default_rng(0)
    true, made = rng.integers(0, 5, 400), rng.integers(0, 6, 400)
    true[true == 3] = 4  # class 3 absent from the truth: not averaged, even though it is predicted
    confusion = np.bincount(true * 6 + made, minlength=36).reshape(6, 6)
    expected = [np.sum((true == c) & (made == c)) / np.sum((true == c) | (made == c)) for c in (0, 1, 2, 4)]
    assert pooled_miou(confusion) == pytest.approx(float(np.mean(expected)))


def test_person_loss_is_the_binary_cross_entropy_of_one_minus_the_background_probability() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 4, 3, generator=generator) * 3
    labels = torch.randint(0, 5, (2, 4, 3), generator=generator)
    person = 1.0 - logits.softmax(1)[:, 0]
    truth = (labels > 0).float()
    naive = -(truth * person.log() + (1 - truth) * (1 - person).log()).mean()
    assert person_loss(logits, labels).item() == pytest.approx(naive.item(), rel=1e-5)
    assert person_loss(logits, labels).item() > person_loss(logits, torch.where(person > 0.5, 1, 0)).item()
    weighted = -(3.0 * truth * person.log() + (1 - truth) * (1 - person).log()).mean()
    assert person_loss(logits, labels, 3.0).item() == pytest.approx(weighted.item(), rel=1e-5)


def test_unchanged_weights_export_the_bundled_default(tmp_path: Path) -> None:
    network, _ = load_geometric("default")
    save_best(network, tmp_path / "best.safetensors", {"step": 0})
    export_default(tmp_path / "best.safetensors", str(tmp_path / "out.safetensors"))
    bundled, _ = read_model_file(bundled_path("default"))
    written, metadata = read_model_file(tmp_path / "out.safetensors")
    assert set(bundled) == set(written) and metadata["geometric_step"] == "0"
    assert all(torch.equal(bundled[k].float(), written[k].float()) for k in bundled)
    cut = dict(list(network.state_dict().items())[:-1])
    save_file(cut, str(tmp_path / "cut.safetensors"))
    with pytest.raises(ValueError, match="does not fit"):
        export_default(tmp_path / "cut.safetensors", str(tmp_path / "bad.safetensors"))
    assert not (tmp_path / "bad.safetensors").exists()


def _photos() -> CcpPhotos:
    from recapture.data.synthetic.articulation import sample_articulation
    from recapture.data.synthetic.people import sample_identity
    from recapture.data.synthetic.render import render_person, sample_background

    rng = np.random.default_rng(5)
    shots = [render_person(sample_identity(3, k), sample_articulation(rng, 0.0), sample_background(rng, "plain"),
                           (256, 176)) for k in range(3)]
    train_ids, valid_ids = training_ids()
    return CcpPhotos(images=np.stack([r.image for r in shots]), labels=np.stack([r.layout for r in shots]),
                     keypoints=np.stack([r.keypoints.astype(float) for r in shots]),
                     ids=np.array([train_ids[0], train_ids[1], valid_ids[0]]))


def test_training_keeps_the_best_resumes_and_exports(tmp_path: Path) -> None:
    _photos().save(tmp_path / "photos.npz")
    settings = LayoutSettings(photos=str(tmp_path / "photos.npz"), parsed="", steps=2, batch_size=2, lr=1e-3,
                              validate_every=1, validation_pairs=2, workers=0, synthetic_fraction=0.5,
                              person_weight=0.5)
    lines: list[str] = []
    run = tmp_path / "run"
    run.mkdir()
    train(run, settings, lines.append)
    assert lines[0].startswith("validation step 0 (default)") and "keypoint prior alone" in lines[1]
    assert (run / "checkpoints").is_dir() and (run / "best.safetensors").exists()
    with safe_open(str(run / "best.safetensors"), framework="pt") as handle:
        assert handle.metadata()["step"] in ("0", "1", "2")
    train(run, LayoutSettings(**{**settings.__dict__, "steps": 3}), lines.append)
    assert "resumed at step 2" in lines and lines[-1].startswith("validation step 3")
    export_default(run / "best.safetensors", str(tmp_path / "joined.safetensors"))
    load_generator(tmp_path / "joined.safetensors")  # loads as a generator
    joined, _ = read_model_file(tmp_path / "joined.safetensors")
    bundled, _ = read_model_file(bundled_path("default"))
    kept = load_file(str(run / "best.safetensors"))
    assert all(torch.equal(joined[k].float(), bundled[k].float()) for k in bundled if k.startswith("appearance."))
    assert all(torch.equal(joined[f"geometric.{k}"].float(), v.float()) for k, v in kept.items())


def test_layout_settings_load_and_reject_unknown_keys(tmp_path: Path) -> None:
    from recapture.config import ConfigError

    settings = load_settings(str(Path(__file__).resolve().parents[1] / "configs" / "layout-real.yaml"), steps=5)
    assert settings.steps == 5 and settings.mix().synthetic > 0 and settings.init == "default"
    silhouette = load_settings(str(Path(__file__).resolve().parents[1] / "configs" / "layout-real-silhouette.yaml"))
    assert silhouette.person_weight == 1.0 and settings.person_weight == 0.0
    missed = load_settings(str(Path(__file__).resolve().parents[1] / "configs" / "layout-real-miss.yaml"))
    assert missed.person_miss_weight == 4.0 and silhouette.person_miss_weight == 1.0
    bad = tmp_path / "bad.yaml"
    bad.write_text("synthetic_fractoin: 0.3\n")
    with pytest.raises(ConfigError, match="synthetic_fractoin"):
        load_settings(str(bad))
