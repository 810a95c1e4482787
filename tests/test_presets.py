"""Each dataset preset states the paper's settings (§4.1, Table 4, §4.3); this table is the paper's."""

from __future__ import annotations

from pathlib import Path

import pytest

from recapture.body.parts import get_label_set
from recapture.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

#: (preset, field, value the paper gives, where). Levels are the paper's layers minus one.
PAPER = [
    ("deepfashion", "parts", 20, "§4.1"),
    ("deepfashion", "image_size", (256, 176), "§4.1 (DeepFashion crop)"),
    ("deepfashion", "lambdas", (1.0, 5.0, 2.0, 50.0), "§4.1"),
    ("deepfashion", "batch_size", 4, "§4.1"),
    ("deepfashion", "adam", (2e-4, (0.5, 0.999)), "§4.1"),
    ("deepfashion", "sat_layer", 3, "Table 4"),
    ("deepfashion", "lgr_layer", 5, "Table 4 base r = 5 (r + 1 needs a 5.5-px-wide level; see the preset)"),
    ("deepfashion", "lgr_steps", 2, "Table 4"),
    ("deepfashion", "spectral_norm", True, "§4.1"),
    ("market", "parts", 7, "§4.1"),
    ("market", "image_size", (128, 64), "§4.1"),
    ("market", "lambdas", (1.0, 5.0, 10.0, 50.0), "§4.1"),
    ("market", "batch_size", 20, "§4.1"),
    ("market", "adam", (2e-4, (0.5, 0.999)), "§4.1"),
    ("market", "sat_layer", 4, "Table 4"),
    ("market", "lgr_layer", 6, "§4.3: r + 1 = 6 best for Market-1501"),
    ("market", "lgr_steps", 2, "Table 4"),
    ("market", "spectral_norm", True, "§4.1"),
]


def value(preset: str, name: str) -> object:
    config = load_config(CONFIGS / f"{preset}.yaml")
    model, loss, train = config.model, config.loss, config.train
    return {
        "parts": get_label_set(model.label_set).num_parts,
        "image_size": tuple(model.image_size),
        "lambdas": (loss.lambda_layout_adv, loss.lambda_image_adv, loss.lambda_reconstruction, loss.lambda_layout_ce),
        "batch_size": train.batch_size,
        "adam": (train.lr, tuple(train.betas)),
        "sat_layer": model.sat_level + 1,
        "lgr_layer": model.lgr_level + 1,
        "lgr_steps": model.lgr_steps,
        "spectral_norm": model.spectral_norm,
    }[name]


@pytest.mark.parametrize("preset,name,expected,where", PAPER)
def test_preset_states_the_paper(preset: str, name: str, expected: object, where: str) -> None:
    assert value(preset, name) == expected, f"{preset}.yaml {name} disagrees with the paper ({where})"


@pytest.mark.parametrize("preset", ["deepfashion", "market"])
def test_preset_says_where_the_paper_is_silent(preset: str) -> None:
    text = (CONFIGS / f"{preset}.yaml").read_text()
    assert "paper silent" in text and "§4.1" in text and "Table 4" in text
