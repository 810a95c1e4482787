"""Building blocks shared by the generators and discriminators: spectral-normed convolutions and
linear layers, normalisation, residual blocks, down/up sampling stages, and the per-level widths.

Spectral norm (``torch.nn.utils.parametrizations.spectral_norm``) wraps every convolution and linear
layer built here when ``spectral_norm=True`` (the paper applies it to all layers of G and D).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from recapture.config import ModelConfig

NORMS = ("instance", "batch", "none")


def _wrap(layer: nn.Module, sn: bool) -> nn.Module:
    return _spectral_norm(layer) if sn else layer


def conv2d(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
           sn: bool = True, bias: bool = True) -> nn.Module:
    """``Conv2d`` with 'same'-style padding ``(k - 1) // 2`` (odd k) or ``1`` (k = 4), optionally
    spectral-normed."""
    padding = 1 if kernel_size == 4 else (kernel_size - 1) // 2
    layer = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
    return _wrap(layer, sn)


def conv1d(in_channels: int, out_channels: int, sn: bool = True, bias: bool = True) -> nn.Module:
    """Kernel-1 ``Conv1d`` (a shared per-node linear map over ``(B, C, N)``), optionally spectral-normed."""
    return _wrap(nn.Conv1d(in_channels, out_channels, 1, bias=bias), sn)


def linear(in_features: int, out_features: int, sn: bool = True, bias: bool = True) -> nn.Module:
    """``Linear``, optionally spectral-normed."""
    return _wrap(nn.Linear(in_features, out_features, bias=bias), sn)


def norm2d(kind: str, channels: int) -> nn.Module:
    """``instance`` (affine), ``batch`` or ``none`` (identity) normalisation."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"model.norm must be one of {', '.join(NORMS)}, got {kind!r}")


def activation() -> nn.Module:
    """The non-linearity used everywhere (LeakyReLU 0.2)."""
    return nn.LeakyReLU(0.2)


class ConvNormAct(nn.Sequential):
    """conv -> norm -> LeakyReLU; ``(B, in, H, W) -> (B, out, H / stride, W / stride)``.

    The conv has no bias when a normalisation follows (it would be cancelled and get no gradient).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 sn: bool = True, norm: str = "instance") -> None:
        super().__init__(conv2d(in_channels, out_channels, kernel_size, stride, sn, bias=norm == "none"),
                         norm2d(norm, out_channels), activation())


class ResBlock(nn.Module):
    """Residual block ``x + norm(conv(act(norm(conv(x)))))``, shape-preserving."""

    def __init__(self, channels: int, sn: bool = True, norm: str = "instance") -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvNormAct(channels, channels, 3, 1, sn, norm),
            conv2d(channels, channels, 3, 1, sn, bias=norm == "none"),
            norm2d(norm, channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class PyramidEncoder(nn.Module):
    """3x3 stem at level 0, then one 4x4 stride-2 stage per level.

    ``(B, in, H, W) -> [(B, widths[k], H / 2**k, W / 2**k) for k in 0..len(widths) - 1]``.
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...], sn: bool = True, norm: str = "instance") -> None:
        super().__init__()
        self.stem = ConvNormAct(in_channels, widths[0], 3, 1, sn, norm)
        self.stages = nn.ModuleList(ConvNormAct(widths[k], widths[k + 1], 4, 2, sn, norm)
                                    for k in range(len(widths) - 1))

    def forward(self, x: Tensor) -> list[Tensor]:
        features = [self.stem(x)]
        for stage in self.stages:
            features.append(stage(features[-1]))
        return features


class Merge(nn.Module):
    """Optionally upsample ``x`` x2 (nearest), concatenate ``extra`` (a skip or a target signal),
    3x3 conv -> norm -> act to ``out_channels``, then ``blocks`` residual blocks.

    ``(B, in, h, w), (B, extra, H, W) -> (B, out, H, W)`` with ``(H, W) = (2h, 2w)`` or ``(h, w)``.
    """

    def __init__(self, in_channels: int, extra_channels: int, out_channels: int, blocks: int = 0,
                 upsample: bool = True, sn: bool = True, norm: str = "instance") -> None:
        super().__init__()
        self.upsample = nn.Upsample(scale_factor=2.0, mode="nearest") if upsample else nn.Identity()
        self.fuse = ConvNormAct(in_channels + extra_channels, out_channels, 3, 1, sn, norm)
        self.blocks = nn.Sequential(*[ResBlock(out_channels, sn, norm) for _ in range(blocks)])

    def forward(self, x: Tensor, extra: Tensor) -> Tensor:
        return self.blocks(self.fuse(torch.cat([self.upsample(x), extra], dim=1)))


def level_widths(base: int, maximum: int, num_down: int) -> tuple[int, ...]:
    """Channels per level ``0..num_down``: ``min(base * 2**k, maximum)``."""
    return tuple(min(base * 2 ** k, maximum) for k in range(num_down + 1))


def level_size(image_size: tuple[int, int], level: int) -> tuple[int, int]:
    """``(H / 2**level, W / 2**level)``."""
    return image_size[0] >> level, image_size[1] >> level


def validate_model_config(config: ModelConfig) -> None:
    """Raise ValueError naming the ``model.*`` field when sizes/levels are inconsistent."""
    height, width = config.network_size
    factor = 2 ** config.num_down
    if config.num_down < 1:
        raise ValueError(f"model.num_down must be >= 1, got {config.num_down}")
    if height % factor or width % factor:
        name = "internal_size" if config.internal_size is not None else "image_size"
        raise ValueError(f"model.{name} {config.network_size} must be divisible by 2**model.num_down = {factor}")
    for name in ("sat_level", "lgr_level"):
        level = getattr(config, name)
        if not 0 <= level <= config.num_down:
            raise ValueError(f"model.{name} must lie in [0, model.num_down={config.num_down}], got {level}")
    for name in ("base_channels", "max_channels", "layout_channels", "geometric_channels", "sat_dim",
                 "lgr_dim", "discriminator_channels", "discriminator_layers"):
        if getattr(config, name) < 1:
            raise ValueError(f"model.{name} must be >= 1, got {getattr(config, name)}")
    for name in ("num_blocks", "decoder_blocks", "lgr_steps"):
        if getattr(config, name) < 0:
            raise ValueError(f"model.{name} must be >= 0, got {getattr(config, name)}")
    if config.norm not in NORMS:
        raise ValueError(f"model.norm must be one of {', '.join(NORMS)}, got {config.norm!r}")
