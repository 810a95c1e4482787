"""Pixel metrics as the pose-transfer literature computes them, batched in torch: SSIM, L1, PSNR,
and the literature's pose mask used by the masked metrics.

The metrics take 8-bit valued images: ``(B, C, H, W)`` tensors (uint8 or float holding 0..255) and
return one value per image, ``(B,)`` float64. They compute in float64 so that they agree with
scikit-image to ~1e-10 on CPU and GPU alike.

SSIM follows PG2 / PATN / GFLA (``skimage.metrics.structural_similarity(generated, real,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=-1,
data_range=generated.max() - generated.min())`` on 0..255 arrays):

* Gaussian weights, sigma 1.5, truncated at 3.5 sigma -> an 11x11 window (radius 5), normalised;
* population (not sample) covariances;
* ``C1 = (0.01 R)^2``, ``C2 = (0.03 R)^2`` with ``R`` the *generated* image's value range;
* the SSIM map is averaged over the pixels at least 5 px from the border (skimage crops the filter
  radius) and over the channels.
"""

from __future__ import annotations

import numpy as np
import torch

from recapture.body.keypoints import pose_mask

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
#: Value range used for a constant generated image, whose own range (0) would make SSIM 0/0.
FULL_RANGE = 255.0
#: Smallest mean squared error (images scaled to [0, 1]) in PSNR: identical images score 100 dB.
PSNR_MIN_MSE = 1e-10

#: Limbs of the Deformable-GAN / PATN / GFLA evaluation mask (``produce_ma_mask``), 1-based as there.
_MASK_LIMBS_1BASED = ((2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12),
                      (12, 13), (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18), (2, 17), (2, 18),
                      (9, 12), (12, 6), (9, 3), (17, 18))
MASK_LIMBS: tuple[tuple[int, int], ...] = tuple((a - 1, b - 1) for a, b in _MASK_LIMBS_1BASED)
MASK_LIMB_RADIUS = 4.0
MASK_CLOSING = 5


def gaussian_window(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE,
                    dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> torch.Tensor:
    """Normalised 1-D Gaussian taps ``(2r + 1,)`` with ``r = int(truncate * sigma + 0.5)`` (scipy.ndimage's)."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    taps = torch.exp(-0.5 * (x / sigma) ** 2)
    return taps / taps.sum()


def _check_pair(generated: torch.Tensor, real: torch.Tensor) -> None:
    if generated.dim() != 4 or generated.shape != real.shape:
        raise ValueError(f"expected two (B, C, H, W) tensors of one shape, got {tuple(generated.shape)} "
                         f"and {tuple(real.shape)}")


def _band(size: int, taps: torch.Tensor) -> torch.Tensor:
    """``(size - k + 1, size)`` matrix whose rows apply the ``k`` taps at every valid position."""
    k = taps.numel()
    rows = torch.arange(size - k + 1, device=taps.device)
    band = torch.zeros(size - k + 1, size, dtype=taps.dtype, device=taps.device)
    for i in range(k):
        band[rows, rows + i] = taps[i]
    return band


def _filter_valid(maps: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of every channel of ``(B, K, H, W)``, keeping only the valid interior.

    Two banded matrix products (``A_h @ X @ A_w^T``): on CPU float64 this is ~3x faster than a
    grouped convolution, and it is exact to rounding.
    """
    return _band(maps.shape[-2], taps) @ maps @ _band(maps.shape[-1], taps).T


def image_range(images: torch.Tensor) -> torch.Tensor:
    """``(B,)`` max - min of each image over all its pixels and channels; ``FULL_RANGE`` where 0."""
    flat = images.reshape(images.shape[0], -1).to(torch.float64)
    spread = flat.amax(dim=1) - flat.amin(dim=1)
    return torch.where(spread > 0, spread, torch.full_like(spread, FULL_RANGE))


def ssim(generated: torch.Tensor, real: torch.Tensor, data_range: torch.Tensor | None = None,
         sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Mean SSIM of each pair, the literature's settings (see the module docstring).

    Args:
        generated: ``(B, C, H, W)`` 0..255 values; its per-image range is the default ``data_range``.
        real: ``(B, C, H, W)`` 0..255 values.
        data_range: ``(B,)`` value range ``R`` of each pair (default: :func:`image_range` of ``generated``).
        sigma: Gaussian sigma; the window is ``2 * int(3.5 * sigma + 0.5) + 1`` pixels wide.

    Returns:
        ``(B,)`` float64 SSIM in [-1, 1].
    """
    return ssim_map(generated, real, data_range, sigma).mean(dim=(1, 2, 3))


def ssim_map(generated: torch.Tensor, real: torch.Tensor, data_range: torch.Tensor | None = None,
             sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """The SSIM map whose mean is :func:`ssim`: ``(B, C, H - 2r, W - 2r)`` float64, where ``r`` is the window
    radius (5); entry ``[..., i, j]`` is the SSIM of the window centred on image pixel ``(i + r, j + r)``."""
    _check_pair(generated, real)
    x = generated.to(torch.float64)
    y = real.to(torch.float64)
    taps = gaussian_window(sigma, device=x.device)
    if min(x.shape[-2:]) < taps.numel():
        raise ValueError(f"images of size {tuple(x.shape[-2:])} are smaller than the {taps.numel()}-px SSIM window")
    if data_range is None:
        data_range = image_range(x)
    r = data_range.to(device=x.device, dtype=torch.float64).view(-1, 1, 1, 1)
    c1 = (SSIM_K1 * r) ** 2
    c2 = (SSIM_K2 * r) ** 2
    channels = x.shape[1]
    moments = _filter_valid(torch.cat([x, y, x * x, y * y, x * y], dim=1), taps)
    mu_x, mu_y, xx, yy, xy = moments.split(channels, dim=1)
    var_x = xx - mu_x * mu_x
    var_y = yy - mu_y * mu_y
    cov = xy - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    denominator = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return numerator / denominator


def l1_distance(generated: torch.Tensor, real: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``(B,)`` mean absolute difference on the [0, 1] scale (``|g - r| / 255``).

    With ``mask`` (``(B, 1, H, W)`` of zeros and ones) the mean runs over the masked pixels only; an
    empty mask gives 0 (callers skip those pairs).
    """
    _check_pair(generated, real)
    diff = (generated.to(torch.float64) - real.to(torch.float64)).abs() / 255.0
    if mask is None:
        return diff.mean(dim=(1, 2, 3))
    weights = mask.to(torch.float64).expand_as(diff)
    return (diff * weights).sum(dim=(1, 2, 3)) / weights.sum(dim=(1, 2, 3)).clamp_min(1.0)


def psnr(generated: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """``(B,)`` peak signal-to-noise ratio in dB, peak 255, MSE floored at :data:`PSNR_MIN_MSE` (100 dB)."""
    _check_pair(generated, real)
    diff = (generated.to(torch.float64) - real.to(torch.float64)) / 255.0
    mse = (diff * diff).mean(dim=(1, 2, 3)).clamp_min(PSNR_MIN_MSE)
    return -10.0 * torch.log10(mse)


def literature_pose_mask(keypoints: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """``(H, W)`` float 0/1 evaluation mask of ``(18, 2)`` keypoints: radius-4 limbs and joints, 5x5 closing."""
    return pose_mask(keypoints, size, limb_radius=MASK_LIMB_RADIUS, closing=MASK_CLOSING, limbs=MASK_LIMBS)


def to_uint8(images: torch.Tensor, name: str) -> torch.Tensor:
    """``(B, 3, H, W)`` uint8 from uint8 or from floats in [0, 1] (rounded); ValueError otherwise."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"{name} must be (B, 3, H, W), got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images
    if not images.is_floating_point():
        raise ValueError(f"{name} must be uint8 or float in [0, 1], got {images.dtype}")
    low, high = float(images.min()), float(images.max())
    if low < -1e-6 or high > 1 + 1e-6:
        raise ValueError(f"{name} float values must lie in [0, 1], got [{low:.3f}, {high:.3f}]")
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)
