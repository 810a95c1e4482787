"""Generator weights: export a trained run to one safetensors file (config in its metadata), load
bundled weights by name or any exported file / run directory by path. Nothing executes code on load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file

from recapture.config import ExperimentConfig, ModelConfig, from_dict, load_config, to_dict
from recapture.models.generator import RecaptureGenerator
from recapture.training.checkpoint import CheckpointError, load_checkpoint

BUNDLED_SUFFIX = ".safetensors"


class WeightsError(FileNotFoundError):
    """Weights cannot be found or do not fit the model they describe."""


@dataclass(frozen=True)
class LoadedGenerator:
    """A generator ready for inference and what is known about how it was made."""

    generator: RecaptureGenerator
    config: ModelConfig
    source: str
    metadata: dict[str, str]


def bundled_dir() -> Path:
    """Folder of the weights shipped inside the package."""
    return Path(str(resources.files("recapture") / "assets" / "weights"))


def bundled_models() -> list[str]:
    """Names accepted by :func:`load_generator` besides paths."""
    folder = bundled_dir()
    return sorted(p.name[: -len(BUNDLED_SUFFIX)] for p in folder.glob(f"*{BUNDLED_SUFFIX}")) if folder.is_dir() else []


def save_generator(weights: dict[str, torch.Tensor], config: ModelConfig, out: str | Path,
                   metadata: dict[str, str] | None = None, half: bool = True) -> Path:
    """Write generator weights to one safetensors file with ``config`` (YAML) in its metadata.

    ``half`` stores float tensors as float16 (they are cast back to float32 on load).
    """
    if half:
        weights = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    info = {"model_config": yaml.safe_dump(to_dict(config), sort_keys=False), **(metadata or {})}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(out), metadata=info)
    return out


def export_generator(run: str | Path, out: str | Path, metadata: dict[str, str] | None = None,
                     use_ema: bool = True, half: bool = True) -> Path:
    """Write a run's newest generator (EMA when present) to ``out`` (see :func:`save_generator`)."""
    checkpoint = load_checkpoint(Path(run))
    config = from_dict(ExperimentConfig, checkpoint.state["config"])
    use_ema = use_ema and checkpoint.ema is not None
    weights = checkpoint.ema if use_ema else checkpoint.generator
    info = {"step": str(checkpoint.step), "weights": "ema" if use_ema else "generator", **(metadata or {})}
    return save_generator(weights, config.model, out, info, half=half)


def _from_file(path: Path) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
        weights = {k: handle.get_tensor(k) for k in handle.keys()}
    if "model_config" not in metadata:
        raise WeightsError(f"{path} has no model_config in its metadata (export it with export_generator)")
    config = from_dict(ModelConfig, yaml.safe_load(metadata["model_config"]))
    return config, weights, metadata


def _from_run(path: Path) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, str]]:
    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError as err:
        raise WeightsError(str(err)) from err
    config_file = path / "config.yaml" if (path / "config.yaml").is_file() else None
    config = (load_config(config_file) if config_file else from_dict(ExperimentConfig, checkpoint.state["config"])).model
    weights = checkpoint.ema if checkpoint.ema is not None else checkpoint.generator
    return config, weights, {"step": str(checkpoint.step), "run": str(path)}


def load_generator(name_or_path: str | Path, device: str | torch.device = "cpu") -> LoadedGenerator:
    """Load bundled weights by name (see :func:`bundled_models`), an exported ``.safetensors`` file, or a
    run directory / checkpoint directory (EMA weights preferred)."""
    path = Path(name_or_path)
    if not path.exists() and str(name_or_path) in bundled_models():
        path = bundled_dir() / f"{name_or_path}{BUNDLED_SUFFIX}"
    if path.is_file():
        config, weights, metadata = _from_file(path)
    elif path.is_dir():
        config, weights, metadata = _from_run(path)
    else:
        raise WeightsError(f"no weights at {name_or_path!r}: not a file, run directory, or bundled model "
                           f"(bundled: {', '.join(bundled_models()) or 'none'})")
    generator = RecaptureGenerator(config)
    weights = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
    missing, unexpected = generator.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise WeightsError(f"{path}: weights do not fit the model config (missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]})")
    generator.to(device).eval().requires_grad_(False)
    return LoadedGenerator(generator=generator, config=config, source=str(path), metadata=metadata)


def describe(loaded: LoadedGenerator) -> str:
    """One JSON line naming the weights and what they were trained on (for pages and logs)."""
    keys = ("trained_on", "command", "wall_time", "metrics", "step")
    return json.dumps({"weights": loaded.source, **{k: loaded.metadata[k] for k in keys if k in loaded.metadata}})
