"""The ``--device`` option, checked once: a name torch knows and a device this machine has."""

from __future__ import annotations

import torch

__all__ = ["DeviceError", "available_devices", "check_device"]


class DeviceError(ValueError):
    """A device name that is unknown here; the message lists the valid ones."""


def available_devices(allow_auto: bool = False) -> list[str]:
    """Device names valid on this machine: ``cpu``, then ``cuda`` and ``cuda:N`` per GPU, ``mps``."""
    names = (["auto"] if allow_auto else []) + ["cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        names.append("mps")
    return names


def check_device(name: str, allow_auto: bool = False) -> str:
    """``name`` unchanged if it names a device present here (``auto`` with ``allow_auto``), else
    :class:`DeviceError` listing the valid names."""
    valid = available_devices(allow_auto)
    text = str(name).strip().lower()
    if text in valid:
        return text
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise DeviceError(f"unknown device {name!r}; valid here: {', '.join(valid)}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {name!r}: CUDA is not available on this machine; valid here: {', '.join(valid)}")
    raise DeviceError(f"device {name!r} is not present on this machine; valid here: {', '.join(valid)}")
