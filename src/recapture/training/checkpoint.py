"""Atomic checkpoints: weights in safetensors, optimizer/step/RNG/config state in a file that loads
without executing code (``torch.load(weights_only=True)``).

Layout of a run directory::

    RUN/config.yaml
    RUN/checkpoints/step_00000100/{generator,discriminators[,ema]}.safetensors, state.pt, SHA256SUMS
    RUN/events.out.tfevents...

A checkpoint directory is written under a temporary name, every file fsynced, its ``SHA256SUMS``
written, then renamed into place, so a process killed while saving leaves the previous checkpoints
intact and no partial one visible. Loading verifies the sums: resuming a run takes the newest checkpoint
that verifies and names the ones it skipped. A full disk (or any write error) while saving removes the
temporary folder and raises one line naming the step, the folder and the last complete checkpoint.
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from recapture.fileio import disk_full, fsync_path, write_sums
from recapture.hub import CHECKPOINT_DIR, checkpoint_problem, list_checkpoints, newest_checkpoint


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
    skipped: tuple[str, ...] = field(default=())  # newer checkpoints passed over, one line each (why)


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


def _last_complete(run_dir: str | Path) -> str:
    found, _ = newest_checkpoint(run_dir)
    return f"step {int(found.name.split('_')[1])} ({found})" if found is not None else "none"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_leftovers(root: Path) -> None:
    """Delete ``.tmp-step_*`` folders of processes that died while saving (killed, or out of disk)."""
    for folder in root.glob(".tmp-step_*-*"):
        pid = folder.name.rsplit("-", 1)[1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _write_files(tmp: Path, files: dict[str, dict[str, torch.Tensor]], state: dict[str, Any]) -> None:
    for name, tensors in files.items():
        save_file(_contiguous(tensors), str(tmp / name))
    torch.save(state, tmp / "state.pt")
    write_sums(tmp)
    for child in tmp.iterdir():
        fsync_path(child)
    fsync_path(tmp)


def save_checkpoint(run_dir: str | Path, step: int, generator: dict[str, torch.Tensor],
                    discriminators: dict[str, torch.Tensor], state: dict[str, Any],
                    ema: dict[str, torch.Tensor] | None = None, keep_last: int = 3) -> Path:
    """Write ``step_XXXXXXXX`` atomically and prune all but the newest ``keep_last`` checkpoints.

    CheckpointError (one line: step, folder, last complete checkpoint) when the disk is full or the
    folder cannot be written; the temporary folder is removed and earlier checkpoints are untouched.
    """
    root = Path(run_dir) / CHECKPOINT_DIR
    final = root / f"step_{step:08d}"
    tmp = root / f".tmp-step_{step:08d}-{os.getpid()}"
    files = {"generator.safetensors": generator, "discriminators.safetensors": discriminators}
    if ema is not None:
        files["ema.safetensors"] = ema
    try:
        root.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(root)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        _write_files(tmp, files, {**state, "step": step})
    except (OSError, SafetensorError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        reason = getattr(err, "strerror", None) or " ".join(str(err).split())
        what = "disk full" if disk_full(err) else f"cannot write ({reason})"
        raise CheckpointError(f"{what} while writing checkpoint step {step} to {root}; the last complete "
                              f"checkpoint is {_last_complete(run_dir)}") from None
    old = root / f".old-step_{step:08d}-{os.getpid()}"
    if final.exists():
        os.replace(final, old)  # an atomic rename: a kill now leaves this step under .old-*, never half-deleted
    os.replace(tmp, final)
    fsync_path(root)
    shutil.rmtree(old, ignore_errors=True)
    for old in list_checkpoints(run_dir)[:-max(1, keep_last)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _read(path: Path, skipped: tuple[str, ...] = ()) -> Checkpoint:
    reason = checkpoint_problem(path)
    if reason is not None:
        raise CheckpointError(f"damaged checkpoint {path}: {reason}")
    try:
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
        generator = load_file(str(path / "generator.safetensors"))
        discriminators = load_file(str(path / "discriminators.safetensors"))
        ema = load_file(str(path / "ema.safetensors")) if (path / "ema.safetensors").exists() else None
    except (OSError, RuntimeError, ValueError, KeyError) as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {str(err).splitlines()[0] if str(err) else err!r}") \
            from None
    return Checkpoint(path=path, step=int(state["step"]), generator=generator,
                      discriminators=discriminators, ema=ema, state=state, skipped=skipped)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint directory (verified against its SHA256SUMS), or the newest checkpoint of a run
    directory that verifies and reads; ``skipped`` names each newer one passed over and why."""
    path = Path(path)
    if not ((path / CHECKPOINT_DIR).is_dir() or not (path / "state.pt").exists()):
        return _read(path)
    found = list_checkpoints(path)
    if not found:
        raise CheckpointError(f"no complete checkpoint under {path} (expected {path}/{CHECKPOINT_DIR}/step_*/state.pt)")
    skipped: list[str] = []
    for checkpoint in reversed(found):
        try:
            return _read(checkpoint, tuple(skipped))
        except CheckpointError as err:
            skipped.append(f"skipped {err}")
    raise CheckpointError(f"no checkpoint under {path} verifies: {'; '.join(skipped)}")
