"""Deferred imports of torch for modules on the ONNX Runtime photo path (``recapture edit --backend
onnxruntime`` must never import torch: 2.4 s and 650 MB of a cold run; docs/performance.md).

``torch = LazyModule("torch")`` at module level keeps ``torch.from_numpy(...)`` in method bodies as they are:
the real module is imported on the first attribute access, i.e. when a torch model actually runs.
:func:`no_grad` replaces the ``@torch.no_grad()`` decorator, which would import torch at class definition.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Any, Callable, TypeVar

Function = TypeVar("Function", bound=Callable[..., Any])


class LazyModule:
    """A stand-in for module ``name``, imported on first attribute access."""

    def __init__(self, name: str) -> None:
        self._name = name

    def _module(self) -> ModuleType:
        return importlib.import_module(self._name)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._module(), attribute)


def no_grad(function: Function) -> Function:
    """``torch.no_grad()`` around every call of ``function``, torch imported at the first call."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.no_grad():
            return function(*args, **kwargs)

    return call  # type: ignore[return-value]
