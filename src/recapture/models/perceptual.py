"""Perceptual loss of paper eq. (16): L1 between VGG-19 ``conv1_2`` feature maps.

The feature extractor is the first three modules of torchvision's VGG-19 ``features`` (conv1_1,
relu1_1, conv1_2), built with torchvision's own layer layout and loaded from a local file — never
downloaded. Weights come from ``LossConfig.vgg_weights`` (a safetensors file or a torch state dict,
read with ``weights_only=True``; keys ``features.0.*``/``features.2.*`` as in torchvision, or ``0.*``/
``2.*``), or else torchvision's cache file ``<torch.hub.get_dir()>/checkpoints/vgg19-dcbb9e9d.pth``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models.vgg import cfgs, make_layers

from recapture.config import LossConfig

TORCHVISION_FILE = "vgg19-dcbb9e9d.pth"
_CONV1_2 = 3  # modules kept from vgg19.features: conv1_1, relu1_1, conv1_2
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class PerceptualWeightsError(FileNotFoundError):
    """VGG-19 weights are needed but could not be found or read; the message says where to put them."""


def torchvision_cache_path() -> Path:
    """Where torchvision keeps its VGG-19 ImageNet weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILE


def _read_state(path: Path) -> dict[str, Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any reader failure becomes one clear message naming the file
        raise PerceptualWeightsError(f"{path}: cannot read VGG-19 weights ({err})") from err
    if not isinstance(state, dict):
        raise PerceptualWeightsError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


def _conv1_2_state(state: dict[str, Tensor], path: Path) -> dict[str, Tensor]:
    """Pick ``0.weight/0.bias/2.weight/2.bias`` out of a VGG-19 (features) state dict."""
    picked = {}
    for key in ("0.weight", "0.bias", "2.weight", "2.bias"):
        for candidate in ("features." + key, key):
            if candidate in state:
                picked[key] = state[candidate]
                break
        else:
            raise PerceptualWeightsError(f"{path}: no 'features.{key}' (VGG-19 conv1_1/conv1_2) in the file")
    return picked


class VGG19Conv12(nn.Module):
    """Frozen VGG-19 up to ``conv1_2``: images ``(B, 3, H, W)`` in [-1, 1] -> ``(B, 64, H, W)``."""

    mean: Tensor
    std: Tensor

    def __init__(self, weights: str | Path) -> None:
        super().__init__()
        path = Path(weights)
        self.features = make_layers(cfgs["E"][:2])[:_CONV1_2]  # torchvision's first VGG-19 block
        try:
            self.features.load_state_dict(_conv1_2_state(_read_state(path), path))
        except RuntimeError as err:  # wrong shapes
            raise PerceptualWeightsError(f"{path}: not VGG-19 conv1_1/conv1_2 weights ({err})") from err
        self.features.requires_grad_(False)
        self.features.eval()
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> VGG19Conv12:
        """Stays in eval mode (a fixed feature extractor)."""
        return super().train(False)

    def forward(self, image: Tensor) -> Tensor:
        return self.features(((image + 1.0) / 2.0 - self.mean) / self.std)


class PerceptualLoss(nn.Module):
    """``mean |ν(Ĥ_B) - ν(H_B)|`` with ν the VGG-19 ``conv1_2`` feature map."""

    def __init__(self, weights: str | Path) -> None:
        super().__init__()
        self.vgg = VGG19Conv12(weights)

    def forward(self, image: Tensor, target_image: Tensor) -> Tensor:
        with torch.no_grad():
            target = self.vgg(target_image)
        return (self.vgg(image) - target).abs().mean()


def find_vgg_weights(config: LossConfig) -> Path | None:
    """``config.vgg_weights`` if set (it must exist), else torchvision's cache file if present, else None."""
    if config.vgg_weights:
        path = Path(config.vgg_weights).expanduser()
        if not path.is_file():
            raise PerceptualWeightsError(f"loss.vgg_weights: file not found: {path}")
        return path
    cached = torchvision_cache_path()
    return cached if cached.is_file() else None


def build_perceptual_loss(config: LossConfig) -> PerceptualLoss | None:
    """The perceptual loss, or None when ``perceptual_weight`` is 0; a clear error when weights are missing."""
    if config.perceptual_weight == 0:
        return None
    path = find_vgg_weights(config)
    if path is None:
        raise PerceptualWeightsError(
            f"the perceptual loss (loss.perceptual_weight={config.perceptual_weight}) needs ImageNet VGG-19 "
            f"weights and nothing is downloaded: put torchvision's {TORCHVISION_FILE} at {torchvision_cache_path()}, "
            "or set loss.vgg_weights to a local .pth/.safetensors VGG-19 state dict, "
            "or set loss.perceptual_weight=0")
    return PerceptualLoss(path)
