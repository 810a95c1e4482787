"""Inference preparation: a trained network turned into plain weights for fast, gradient-free use.

:func:`prepare_for_inference` folds every reparametrisation into an ordinary ``weight`` tensor:

* ``torch.nn.utils.parametrize`` parametrisations (``parametrizations.spectral_norm``, the one
  :mod:`recapture.models.blocks` uses, ``parametrizations.weight_norm``, orthogonal, ...): the
  parametrised value is computed once and stored as the parameter (``leave_parametrized=True``);
* the legacy hook-based ``torch.nn.utils.spectral_norm`` / ``weight_norm``.

Spectral norm's power iteration runs only in training mode, so the module is put in eval mode
*before* folding: the folded weight is exactly the weight an eval-mode forward would have used, and
the output is unchanged (up to float rounding). Each forward then skips ``W / σ(W)`` per layer (the
issue measured 6-9 % of the generator's time). Afterwards no parameter requires a gradient.

Folding is one-way: a prepared module cannot be trained further (its ``u``/``v`` vectors are gone).

The *thread policy* (:func:`apply_thread_policy`, docs/performance.md) picks torch's intra-op threads
once per command: ``--threads N``, else ``RECAPTURE_THREADS``, else the cores actually free,
``min(affinity, max(1, round(cpu_count - load1)))``. Two threads on a busy 2-core machine ran 50-100x
slower than one (threads spin waiting for a core another process holds).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from recapture.lazy import LazyModule

if TYPE_CHECKING:
    from torch import nn

# Imported on use: the thread policy also serves the torch-free ONNX photo path (resolve_threads).
torch = LazyModule("torch")
parametrize = LazyModule("torch.nn.utils.parametrize")

#: One side thread for NumPy work of the photo path beside the main thread (the parser's superpixels and flip
#: averaging, the full-resolution prior grid), used when the thread policy gives two threads or more. NumPy (and
#: scikit-image's SLIC) release the GIL in their array work, so the two threads run on two cores; the results are
#: those of running in turn.
BESIDE = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recapture-beside")


def _fold_parametrizations(module: nn.Module) -> int:
    """Fold ``torch.nn.utils.parametrize`` parametrisations of ``module`` itself; returns how many."""
    if not parametrize.is_parametrized(module):
        return 0
    names = list(module.parametrizations.keys())  # type: ignore[union-attr]
    # parametrize injects a class per module; a deepcopy shares it with its original, and removing the
    # parametrisation edits that class, so fold through a private copy of it (the original keeps working).
    injected = type(module)
    module.__class__ = type(injected.__name__, injected.__bases__, dict(injected.__dict__))
    for name in names:
        parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return len(names)


def _fold_legacy_hooks(module: nn.Module) -> int:
    """Fold the hook-based ``spectral_norm`` / ``weight_norm`` of ``module`` itself; returns how many."""
    from torch.nn.utils.spectral_norm import SpectralNorm
    from torch.nn.utils.weight_norm import WeightNorm

    folded = 0
    for hook in list(module._forward_pre_hooks.values()):
        if isinstance(hook, SpectralNorm):
            torch.nn.utils.remove_spectral_norm(module, hook.name)
            folded += 1
        elif isinstance(hook, WeightNorm):
            torch.nn.utils.remove_weight_norm(module, hook.name)
            folded += 1
    return folded


def fold_reparametrizations(module: nn.Module) -> int:
    """Replace every reparametrised weight under ``module`` by a plain parameter holding its current
    (eval-mode) value. Call on a module in eval mode. Returns the number of tensors folded."""
    folded = 0
    with torch.no_grad():
        for child in list(module.modules()):
            folded += _fold_parametrizations(child) + _fold_legacy_hooks(child)
    return folded


def is_folded(module: nn.Module) -> bool:
    """True when no submodule carries a parametrisation or a legacy spectral/weight-norm hook."""
    from torch.nn.utils.spectral_norm import SpectralNorm
    from torch.nn.utils.weight_norm import WeightNorm

    for child in module.modules():
        if parametrize.is_parametrized(child):
            return False
        if any(isinstance(h, (SpectralNorm, WeightNorm)) for h in child._forward_pre_hooks.values()):
            return False
    return True


def prepare_for_inference(module: nn.Module, channels_last: bool = False) -> nn.Module:
    """Eval mode, reparametrisations folded into plain weights, ``requires_grad`` off; in place.

    ``channels_last`` converts 4-D weights to the NHWC memory format (off by default: on this
    project's CPU benchmark it did not help the instance-normed generator, see docs/performance.md).
    Returns ``module`` for chaining.
    """
    module.eval()
    fold_reparametrizations(module)
    module.requires_grad_(False)
    if channels_last:
        module.to(memory_format=torch.channels_last)
    return module


#: Environment variable overriding the thread count (like ``--threads``).
THREADS_ENV = "RECAPTURE_THREADS"


@dataclass(frozen=True)
class ThreadPolicy:
    """The thread count chosen for this process and why."""

    threads: int
    source: str  # "--threads" | "RECAPTURE_THREADS" | "free cores"
    affinity: int  # cores this process may run on
    load: float | None  # 1-minute load average (None where unreadable)


def load_average(path: str | Path = "/proc/loadavg") -> float | None:
    """The 1-minute load average, or None where it cannot be read."""
    try:
        return float(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def free_cores(affinity: int, cpu_count: int, load: float | None) -> int:
    """``min(affinity, max(1, round(cpu_count - load)))``; ``affinity`` when the load is unknown."""
    if load is None:
        return max(1, affinity)
    return min(max(1, affinity), max(1, round(cpu_count - load)))


def _affinity() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def resolve_threads(requested: int | None = None) -> ThreadPolicy:
    """Threads for this process: ``requested`` (> 0), else ``$RECAPTURE_THREADS``, else the free cores.

    ValueError (one line) for a count below 1 or a non-integer environment value.
    """
    affinity, load = _affinity(), load_average()
    if requested is not None:
        if requested < 1:
            raise ValueError(f"--threads must be >= 1, got {requested}")
        return ThreadPolicy(requested, "--threads", affinity, load)
    text = os.environ.get(THREADS_ENV, "").strip()
    if text:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise ValueError(f"{THREADS_ENV} must be a whole number >= 1, got {text!r}")
        return ThreadPolicy(value, THREADS_ENV, affinity, load)
    return ThreadPolicy(free_cores(affinity, os.cpu_count() or affinity, load), "free cores", affinity, load)


def apply_thread_policy(requested: int | None = None) -> ThreadPolicy:
    """Resolve the policy and set torch's intra-op threads (call once, at a command's start)."""
    policy = resolve_threads(requested)
    torch.set_num_threads(policy.threads)
    return policy
