"""Fixtures of the fault-injection suite (docs/reliability.md): a tiny model file, a foreign one, random bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from recapture.config import load_config
from recapture.hub import save_generator
from recapture.models.generator import RecaptureGenerator

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid 32x24 model file (random weights)."""
    config = load_config(CONFIGS / "tiny.yaml").model
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    return save_generator(RecaptureGenerator(config).state_dict(), config, path, {"trained_on": "nothing"})


@pytest.fixture(scope="session")
def bad_model_files(tmp_path_factory: pytest.TempPathFactory, tiny_model_file: Path) -> dict[str, Path]:
    """Model files that must each be refused with "not a Recapture model: PATH (reason)"."""
    root = tmp_path_factory.mktemp("bad-models")
    rng = np.random.default_rng(0)
    files = {"random-bytes": root / "random.safetensors", "empty": root / "empty.safetensors",
             "foreign": root / "foreign.safetensors", "truncated": root / "truncated.safetensors",
             "flipped": root / "flipped.safetensors", "other-architecture": root / "other.safetensors"}
    files["random-bytes"].write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    files["empty"].write_bytes(b"")
    save_file({"fc.weight": torch.ones(3, 3)}, str(files["foreign"]), metadata={"format": "pt"})
    data = tiny_model_file.read_bytes()
    files["truncated"].write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    flipped[-100] ^= 0xFF
    files["flipped"].write_bytes(bytes(flipped))
    other = load_config(CONFIGS / "tiny.yaml", ["model.base_channels=4", "model.max_channels=16"]).model
    save_generator(RecaptureGenerator(load_config(CONFIGS / "tiny.yaml").model).state_dict(), other,
                   files["other-architecture"])
    return files
