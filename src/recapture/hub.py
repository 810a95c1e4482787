"""Model files and the registry of bundled models, below training, pipelines and evaluation.

A *model file* is one safetensors file: tensors plus string metadata (``model_config`` as YAML for
generators; ``kind``; ``tensors_sha256``, a digest of every tensor's name, dtype, shape and bytes, checked
on load so a file with flipped bytes is refused instead of giving NaN images). Reading never executes
code. A *run directory* written by the trainer is read here too (its newest complete checkpoint's
``ema``/``generator`` weights and ``config.yaml``), so inference never imports :mod:`recapture.training`.

Bundled models (``assets/weights/NAME.safetensors``) are looked up by name in :data:`REGISTRY`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from typing import TYPE_CHECKING

import yaml
from safetensors import SafetensorError, safe_open

from recapture.config import ConfigError, ModelConfig, from_dict, load_config, to_dict
from recapture.fileio import SUMS_NAME, atomic_path, load_yaml, verify_sums
from recapture.lazy import LazyModule

if TYPE_CHECKING:
    from recapture.models.generator import RecaptureGenerator

torch = LazyModule("torch")  # the registry and paths are read by the torch-free ONNX photo path

SUFFIX = ".safetensors"
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_NAME = re.compile(r"^step_(\d{8})$")


class WeightsError(FileNotFoundError):
    """Weights cannot be found, are damaged, or do not fit the model they describe (one-line message)."""


@dataclass(frozen=True)
class BundledModel:
    """One entry of the registry of models shipped inside the package."""

    name: str
    kind: str  # "generator" | "parser"
    description: str


#: Every model the package may ship; an entry whose file is absent is simply not available.
REGISTRY: dict[str, BundledModel] = {m.name: m for m in (
    BundledModel("default", "generator", "256x176 output, LIP-20: real photos (edit, video, serve, evaluate)"),
    BundledModel("synthhumans", "generator", "128x64, LIP-20, trained on SynthHumans: the demo's synthetic tour"),
    BundledModel("parser-ccp", "parser", "LIP-20 human parser trained on CCP photos"),
)}


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


def bundled_models(kind: str | None = None) -> list[str]:
    """Registry names whose file is shipped (of one ``kind`` when given)."""
    return sorted(name for name, entry in REGISTRY.items()
                  if (kind is None or entry.kind == kind) and (bundled_dir() / f"{name}{SUFFIX}").is_file())


def bundled_path(name: str) -> Path:
    """File of bundled model ``name``; WeightsError naming the available ones otherwise."""
    path = bundled_dir() / f"{name}{SUFFIX}"
    if name not in REGISTRY or not path.is_file():
        raise WeightsError(f"no bundled model {name!r} (bundled: {', '.join(bundled_models()) or 'none'})")
    return path


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """Digest of names, dtypes, shapes and bytes of ``tensors`` (order independent)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        value = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


def write_model_file(tensors: dict[str, torch.Tensor], out: str | Path, metadata: dict[str, str]) -> Path:
    """Write ``tensors`` atomically (temp file, fsync, rename) with ``metadata`` and their digest."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    info = {**metadata, "tensors_sha256": tensors_sha256(tensors)}
    from safetensors.torch import save_file

    with atomic_path(out) as tmp:
        try:
            save_file(tensors, str(tmp), metadata=info)
        except SafetensorError as err:  # safetensors wraps I/O errors (a full disk) in its own type
            raise OSError(f"cannot write {out}: {' '.join(str(err).split())}") from None
    return out


def read_model_file(path: str | Path, verify: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a model file; WeightsError "not a Recapture model: PATH (reason)"."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise WeightsError(f"not a Recapture model: {path} ({reason})") from None
    expected = metadata.get("tensors_sha256")
    if verify and expected and tensors_sha256(tensors) != expected:
        raise WeightsError(f"not a Recapture model: {path} (checksum mismatch: the file is damaged)")
    return tensors, metadata


def read_model_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a model file without its tensors and without torch (the ONNX photo path reads it);
    WeightsError as :func:`read_model_file`."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="np") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise WeightsError(f"not a Recapture model: {path} ({reason})") from None


def save_generator(weights: dict[str, torch.Tensor], config: ModelConfig, out: str | Path,
                   metadata: dict[str, str] | None = None, half: bool = True) -> Path:
    """Write generator weights to one model file with ``config`` (YAML) in its metadata.

    ``half`` stores float tensors as float16 (they are cast back to float32 on load).
    """
    if half:
        weights = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    info = {"kind": "generator", "model_config": yaml.safe_dump(to_dict(config), sort_keys=False), **(metadata or {})}
    return write_model_file(weights, out, info)


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoint directories of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and CHECKPOINT_NAME.match(p.name) and (p / "state.pt").is_file()]
    return sorted(found, key=lambda p: int(CHECKPOINT_NAME.match(p.name).group(1)))  # type: ignore[union-attr]


def checkpoint_problem(checkpoint: str | Path) -> str | None:
    """Why a checkpoint directory cannot be trusted, or None when its ``SHA256SUMS`` verify (a checkpoint
    written before checksums existed has none and is accepted unverified)."""
    reason = verify_sums(checkpoint)
    return None if reason == f"no {SUMS_NAME}" else reason


def newest_checkpoint(run_dir: str | Path) -> tuple[Path | None, tuple[str, ...]]:
    """The newest checkpoint of a run whose files verify, and a line per newer one skipped (with why)."""
    skipped: list[str] = []
    for checkpoint in reversed(list_checkpoints(run_dir)):
        reason = checkpoint_problem(checkpoint)
        if reason is None:
            return checkpoint, tuple(skipped)
        skipped.append(f"skipped damaged checkpoint {checkpoint} ({reason})")
    return None, tuple(skipped)


def read_generator_file(path: str | Path) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, str]]:
    """Config, tensors and metadata of an exported generator file; WeightsError naming the file otherwise."""
    path = Path(path)
    weights, metadata = read_model_file(path)
    if "model_config" not in metadata:
        raise WeightsError(f"not a Recapture model: {path} (no model_config in its metadata; "
                           "export a run with `recapture export`)")
    try:
        config = from_dict(ModelConfig, load_yaml(metadata["model_config"]))
    except (ConfigError, yaml.YAMLError, TypeError, AttributeError) as err:
        reason = " ".join(str(err).split())[:300]
        raise WeightsError(f"not a Recapture model: {path} (bad model_config: {reason})") from None
    return config, weights, metadata


def _from_run(path: Path, use_ema: bool = True) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, str]]:
    """Newest checkpoint of a run directory (or a checkpoint directory itself), EMA weights preferred."""
    if (path / "state.pt").is_file():
        checkpoint, skipped = path, ()
        reason = checkpoint_problem(path)
        if reason is not None:
            raise WeightsError(f"not a Recapture model: {path} ({reason})")
    else:
        checkpoint, skipped = newest_checkpoint(path)
    if checkpoint is None:
        damaged = f"; {'; '.join(skipped)}" if skipped else ""
        raise WeightsError(f"no complete checkpoint under {path} (expected {path}/{CHECKPOINT_DIR}/step_*/state.pt)"
                           f"{damaged}")
    run = checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINT_DIR else path
    if not (run / "config.yaml").is_file():
        raise WeightsError(f"{run}: no config.yaml beside the checkpoints")
    config = load_config(run / "config.yaml").model
    name = "ema.safetensors" if use_ema and (checkpoint / "ema.safetensors").is_file() else "generator.safetensors"
    weights, _ = read_model_file(checkpoint / name)
    match = CHECKPOINT_NAME.match(checkpoint.name)
    step = str(int(match.group(1))) if match else "?"
    info = {"step": step, "run": str(run), "weights": name.split(".")[0]}
    return config, weights, {**info, "skipped_checkpoints": "; ".join(skipped)} if skipped else info


def load_generator(name_or_path: str | Path, device: str | torch.device = "cpu") -> LoadedGenerator:
    """Load a bundled generator by name, an exported model file, or a run / checkpoint directory."""
    path = Path(name_or_path)
    if not path.exists() and str(name_or_path) in REGISTRY:
        path = bundled_path(str(name_or_path))
    if path.is_file():
        config, weights, metadata = read_generator_file(path)
    elif path.is_dir():
        config, weights, metadata = _from_run(path)
    else:
        raise WeightsError(f"no weights at {name_or_path!r}: not a file, run directory, or bundled model "
                           f"(bundled: {', '.join(bundled_models('generator')) or 'none'})")
    from recapture.models.generator import RecaptureGenerator
    from recapture.models.inference import prepare_for_inference

    generator = RecaptureGenerator(config)
    weights = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
    try:
        missing, unexpected = generator.load_state_dict(weights, strict=False)
    except RuntimeError as err:
        raise WeightsError(f"not a Recapture model: {path} (tensor shapes do not fit its config: "
                           f"{str(err).splitlines()[-1].strip()})") from None
    if missing or unexpected:
        raise WeightsError(f"not a Recapture model: {path} (weights do not fit the model config: missing "
                           f"{missing[:3]}, unexpected {unexpected[:3]})")
    prepare_for_inference(generator.to(device))  # eval, spectral norm folded into plain weights, no grad
    return LoadedGenerator(generator=generator, config=config, source=str(path), metadata=metadata)


def export_generator(run: str | Path, out: str | Path, metadata: dict[str, str] | None = None,
                     use_ema: bool = True, half: bool = True) -> Path:
    """Write a run's newest generator (EMA when present and ``use_ema``) to the model file ``out``."""
    config, weights, info = _from_run(Path(run), use_ema)
    return save_generator(weights, config, out, {**info, **(metadata or {})}, half=half)


def describe(loaded: LoadedGenerator) -> str:
    """One JSON line naming the weights and what they were trained on (for pages and logs)."""
    keys = ("trained_on", "command", "wall_time", "metrics", "step")
    return json.dumps({"weights": loaded.source, **{k: loaded.metadata[k] for k in keys if k in loaded.metadata}})
