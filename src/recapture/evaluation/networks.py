"""Pretrained networks behind IS and LPIPS, loaded from local files only (nothing downloads).

FID, KID and ``inception_distance`` use the bundled Inception of :mod:`recapture.models.inception`
(always available offline). The two metrics below need files the user provides:

* IS: torch-fidelity's ``inception-v3-compat`` (the TensorFlow 2015-12-05 graph of the FID/IS
  reference code, ported; TF1-compatible bilinear resize to 299x299), for its bias-free logits (the
  bundled network has no classifier). Its weights file is ``weights-inception-2015-12-05-6726825d.pth``,
  by default in ``<torch hub dir>/checkpoints``, or ``--inception-weights``.
* LPIPS: version 0.1 with the AlexNet backbone (``net='alex'``, the setting of GFLA / NTED / PIDM).
  The backbone is torchvision's ``alexnet-owt-7be5be79.pth`` (same default folder); the linear
  layers are the 6 kB ``alex.pth`` that torchmetrics ships inside its package.

Files are read with ``torch.load(weights_only=True)``: no code in a weights file ever runs.
A missing file raises :class:`WeightsUnavailable` whose message names the file and where to put it.
The metrics take plain callables (``(B, 3, H, W)`` uint8 -> logits), so tests inject tiny networks.
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import torch
import torch.nn as nn

INCEPTION_WEIGHTS_NAME = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                         + INCEPTION_WEIGHTS_NAME)
ALEXNET_WEIGHTS_NAME = "alexnet-owt-7be5be79.pth"
ALEXNET_WEIGHTS_URL = "https://download.pytorch.org/models/" + ALEXNET_WEIGHTS_NAME
#: AlexNet ``features`` index ranges ending at relu1..relu5, the layers LPIPS compares.
_ALEX_SLICES = ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12))
_ALEX_CHANNELS = (64, 192, 384, 256, 256)


class WeightsUnavailable(RuntimeError):
    """A metric's pretrained weights are not on this machine; the message says what to put where."""


def checkpoint_dir() -> Path:
    """Where torch keeps downloaded weights: ``<torch.hub.get_dir()>/checkpoints`` ($TORCH_HOME aware)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def resolve_weights(explicit: str | Path | None, file_name: str, url: str, option: str) -> Path:
    """The weights file to use: ``explicit`` if given, else ``checkpoint_dir() / file_name``.

    Raises:
        WeightsUnavailable: the file does not exist (message: the path, the option, the source URL).
    """
    path = Path(explicit) if explicit is not None else checkpoint_dir() / file_name
    if path.is_file():
        return path
    where = "given" if explicit is not None else "default"
    raise WeightsUnavailable(f"{file_name} not found at the {where} path {path}; download {url} "
                             f"(nothing downloads at run time) into {checkpoint_dir()} or pass {option} PATH")


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A tensor dictionary from ``path`` via ``torch.load(weights_only=True)``; ValueError naming the file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"cannot read weights file {path}: {exc}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"weights file {path} is not a dictionary of tensors")
    return state


class TorchFidelityInception(nn.Module):
    """torch-fidelity's ``inception-v3-compat`` returning the bias-free logits (IS)."""

    def __init__(self, state_dict: dict[str, torch.Tensor]) -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        # torch-fidelity only reads weights through torch.load(weights_only=False); hand it a buffer
        # serialised here from tensors already loaded safely, so no foreign pickle is ever executed.
        buffer = io.BytesIO()
        torch.save(state_dict, buffer)
        buffer.seek(0)
        try:
            self.net = FeatureExtractorInceptionV3("inception-v3-compat", ["logits_unbiased"],
                                                   feature_extractor_weights_path=buffer)
        except RuntimeError as exc:
            raise ValueError(f"not torch-fidelity Inception weights: {str(exc)[:300]}") from None

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` uint8 -> logits ``(B, 1008)`` float32."""
        (logits,) = self.net(images)
        return logits.float()


def load_is_inception(weights: str | Path | None = None,
                      device: torch.device | str = "cpu") -> TorchFidelityInception:
    """torch-fidelity's Inception (IS logits) from ``weights`` (default: the torch hub checkpoint folder)."""
    path = resolve_weights(weights, INCEPTION_WEIGHTS_NAME, INCEPTION_WEIGHTS_URL, "--inception-weights")
    try:
        model = TorchFidelityInception(load_state_dict(path))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return model.to(device).eval()


def _alexnet_features() -> nn.Sequential:
    """torchvision's ``alexnet().features`` layer for layer (indices match its weight keys)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


class AlexLPIPS(nn.Module):
    """LPIPS v0.1, AlexNet backbone, linear calibration: ``forward(generated, real) -> (B,)`` distances.

    Inputs are ``(B, 3, H, W)`` floats in [-1, 1] at their own resolution (no resize), as GFLA feeds them.
    """

    def __init__(self) -> None:
        super().__init__()
        features = _alexnet_features()
        self.stages = nn.ModuleList(nn.Sequential(*features[a:b]) for a, b in _ALEX_SLICES)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in _ALEX_CHANNELS)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.requires_grad_(False)

    def load_backbone(self, state: dict[str, torch.Tensor]) -> None:
        """Load torchvision AlexNet weights (keys ``features.<i>.weight|bias``; classifier keys ignored)."""
        for s, (a, b) in enumerate(_ALEX_SLICES):
            for i in range(a, b):
                module = self.stages[s][i - a]
                if not isinstance(module, nn.Conv2d):
                    continue
                for param in ("weight", "bias"):
                    key, target = f"features.{i}.{param}", getattr(module, param)
                    if key not in state or state[key].shape != target.shape:
                        raise ValueError(f"AlexNet weights lack {key} of shape {tuple(target.shape)}")
                    target.copy_(state[key])

    def load_linear(self, state: dict[str, torch.Tensor]) -> None:
        """Load LPIPS calibration weights (keys ``lin<k>.model.1.weight``, as in the LPIPS release)."""
        for k, lin in enumerate(self.lins):
            key = f"lin{k}.model.1.weight"
            if key not in state or state[key].shape != lin.weight.shape:
                raise ValueError(f"LPIPS weights lack {key} of shape {tuple(lin.weight.shape)}")
            lin.weight.copy_(state[key])

    @torch.no_grad()
    def forward(self, generated: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """``(B,)`` LPIPS distance of each pair."""
        x = (generated - self.shift) / self.scale
        y = (real - self.shift) / self.scale
        total = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        for stage, lin in zip(self.stages, self.lins):
            x, y = stage(x), stage(y)
            nx = x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            ny = y / (y.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((nx - ny) ** 2).mean(dim=(1, 2, 3))
        return total


def lpips_linear_weights_path() -> Path:
    """The ``alex.pth`` LPIPS calibration file inside the installed torchmetrics package."""
    spec = importlib.util.find_spec("torchmetrics")
    if spec is None or spec.origin is None:
        raise WeightsUnavailable("torchmetrics is not installed; it provides the LPIPS linear weights "
                                 "(functional/image/lpips_models/alex.pth)")
    path = Path(spec.origin).parent / "functional" / "image" / "lpips_models" / "alex.pth"
    if not path.is_file():
        raise WeightsUnavailable(f"LPIPS linear weights not found at {path} (torchmetrics layout changed?)")
    return path


def load_lpips(backbone_weights: str | Path | None = None, device: torch.device | str = "cpu") -> AlexLPIPS:
    """LPIPS (AlexNet) with the backbone from ``backbone_weights`` (default: torch hub checkpoint folder)."""
    backbone = resolve_weights(backbone_weights, ALEXNET_WEIGHTS_NAME, ALEXNET_WEIGHTS_URL, "--lpips-weights")
    linear = lpips_linear_weights_path()
    model = AlexLPIPS()
    for path, load in ((backbone, model.load_backbone), (linear, model.load_linear)):
        try:
            load(load_state_dict(path))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return model.to(device).eval()
