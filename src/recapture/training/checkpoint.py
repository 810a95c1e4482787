"""Atomic checkpoints: weights in safetensors, optimizer/step/RNG/config state in a file that loads
without executing code (``torch.load(weights_only=True)``).

Layout of a run directory::

    RUN/config.yaml
    RUN/checkpoints/step_00000100/{generator,discriminators[,ema]}.safetensors, state.pt
    RUN/events.out.tfevents...

A checkpoint directory is written under a temporary name, every file fsynced, then renamed into place,
so a process killed while saving leaves the previous checkpoints intact and no partial one visible.
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from recapture.hub import CHECKPOINT_DIR, list_checkpoints

class CheckpointError(RuntimeError):
    """A checkpoint is missing, partial or inconsistent."""


@dataclass(frozen=True)
class Checkpoint:
    """Weights and state read back from one checkpoint directory."""

    path: Path
    step: int
    generator: dict[str, torch.Tensor]
    discriminators: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor] | None
    state: dict[str, Any]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as plain tensors/lists (safe for ``weights_only`` loading)."""
    np_state = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "python": list(internal),
        "python_version": version,
        "python_gauss": float("nan") if gauss_next is None else float(gauss_next),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_has_gauss": int(np_state[3]),
        "numpy_gauss": float(np_state[4]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    gauss = float(state["python_gauss"])
    random.setstate((int(state["python_version"]), tuple(int(v) for v in state["python"]),
                     None if gauss != gauss else gauss))
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), int(state["numpy_pos"]),
                         int(state["numpy_has_gauss"]), float(state["numpy_gauss"])))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}


def save_checkpoint(run_dir: str | Path, step: int, generator: dict[str, torch.Tensor],
                    discriminators: dict[str, torch.Tensor], state: dict[str, Any],
                    ema: dict[str, torch.Tensor] | None = None, keep_last: int = 3) -> Path:
    """Write ``step_XXXXXXXX`` atomically and prune all but the newest ``keep_last`` checkpoints."""
    root = Path(run_dir) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:08d}"
    tmp = root / f".tmp-step_{step:08d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    files = {"generator.safetensors": generator, "discriminators.safetensors": discriminators}
    if ema is not None:
        files["ema.safetensors"] = ema
    for name, tensors in files.items():
        save_file(_contiguous(tensors), str(tmp / name))
    torch.save({**state, "step": step}, tmp / "state.pt")
    for child in tmp.iterdir():
        _fsync(child)
    _fsync(tmp)
    old = root / f".old-step_{step:08d}-{os.getpid()}"
    if final.exists():
        os.replace(final, old)  # an atomic rename: a kill now leaves this step under .old-*, never half-deleted
    os.replace(tmp, final)
    _fsync(root)
    shutil.rmtree(old, ignore_errors=True)
    for old in list_checkpoints(run_dir)[:-max(1, keep_last)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint directory, or the newest one of a run directory."""
    path = Path(path)
    if (path / CHECKPOINT_DIR).is_dir() or not (path / "state.pt").exists():
        found = list_checkpoints(path)
        if not found:
            raise CheckpointError(f"no complete checkpoint under {path} (expected {path}/{CHECKPOINT_DIR}/step_*/state.pt)")
        path = found[-1]
    try:
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
        generator = load_file(str(path / "generator.safetensors"))
        discriminators = load_file(str(path / "discriminators.safetensors"))
        ema = load_file(str(path / "ema.safetensors")) if (path / "ema.safetensors").exists() else None
    except (OSError, RuntimeError, ValueError) as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from err
    return Checkpoint(path=path, step=int(state["step"]), generator=generator,
                      discriminators=discriminators, ema=ema, state=state)
