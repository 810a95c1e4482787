"""Objectives of paper §3.5, eqs. (8)-(18).

Discriminator, eq. (17):  ``L_D = λ1 L^S_D + λ2 L^H_D``  with ``L^H_D = L_D(D2) + L_D(D3)``.
Generator, eq. (18):      ``L_G = λ1 L^S_G + λ2 L^H_G + λ3 (L1 + w_p Lp) + λ4 Ls``.

Eq. (18) as printed has ``λ2 L^H_D`` — the discriminator's term, which does not depend on the
generator in a useful way; it is read as the generator's adversarial term ``L^H_G`` (eq. 14), the only
reading consistent with eq. (17)/(14). ``w_p`` is ``LossConfig.perceptual_weight`` (1 in the paper).
All terms are means (per pixel / per patch) rather than the sums of the printed norms.

Adversarial forms (``LossConfig.gan_mode``), with ``d`` the patch logits:

* ``nonsaturating`` (default): D as eq. (9), ``softplus(-d_real) + softplus(d_fake)``; G minimises
  ``-log D(fake) = softplus(-d_fake)``, the usual non-saturating form of eq. (10).
* ``saturating``: eq. (10) literally, G minimises ``log(1 - D(fake)) = -softplus(d_fake)``.
* ``hinge``: D ``relu(1 - d_real) + relu(1 + d_fake)``, G ``-d_fake``.
* ``lsgan``: D ``(d_real - 1)² + d_fake²``, G ``(d_fake - 1)²``.

Fake layouts shown to D1 are the straight-through one-hot of the predicted logits (one-hot values, as
real layouts are; gradients of the softmax), conditioned on the target pose.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recapture.config import LossConfig
from recapture.models.discriminators import PatchLogits
from recapture.models.generator import GeneratorOutput
from recapture.models.layout_ops import straight_through_one_hot, to_one_hot
from recapture.models.perceptual import PerceptualLoss

GAN_MODES = ("nonsaturating", "saturating", "hinge", "lsgan")


def _check_mode(mode: str) -> None:
    if mode not in GAN_MODES:
        raise ValueError(f"loss.gan_mode must be one of {', '.join(GAN_MODES)}, got {mode!r}")


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, mode: str) -> Tensor:
    """``L_D`` of eq. (9) for patch logits (mean over patches)."""
    _check_mode(mode)
    if mode == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    if mode == "lsgan":
        return (real_logits - 1.0).pow(2).mean() + fake_logits.pow(2).mean()
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_adversarial_loss(fake_logits: Tensor, mode: str) -> Tensor:
    """``L_G`` of eq. (10) (or its non-saturating / hinge / least-squares variant)."""
    _check_mode(mode)
    if mode == "saturating":
        return -F.softplus(fake_logits).mean()
    if mode == "hinge":
        return -fake_logits.mean()
    if mode == "lsgan":
        return (fake_logits - 1.0).pow(2).mean()
    return F.softplus(-fake_logits).mean()


def layout_cross_entropy(layout_logits: Tensor, target_layout_labels: Tensor) -> Tensor:
    """``Ls`` of eq. (8): per-pixel cross entropy of ``(B, N, H, W)`` logits vs ``(B, H, W)`` labels."""
    num_parts = layout_logits.shape[1]
    if target_layout_labels.numel() and (int(target_layout_labels.min()) < 0
                                         or int(target_layout_labels.max()) >= num_parts):
        raise ValueError(f"target_layout_labels must lie in [0, {num_parts})")
    return F.cross_entropy(layout_logits, target_layout_labels.long())


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Temporarily stop ``module``'s parameters from requiring grad (graphs built inside ignore them)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


@dataclass(frozen=True)
class DiscriminatorLosses:
    """Terms of eq. (17); ``total`` is what the discriminator step minimises."""

    layout: Tensor  # L^S_D (D1), eq. (11)
    pose: Tensor  # L_D(D2, Ĥ_B, H_B, K_B)
    identity: Tensor  # L_D(D3, Ĥ_B, H_B, H_A)
    total: Tensor  # λ1 L^S_D + λ2 (pose + identity)


@dataclass(frozen=True)
class GeneratorLosses:
    """Terms of eq. (18); ``total`` is what the generator step minimises."""

    layout_adversarial: Tensor  # L^S_G (D1), eq. (12)
    pose_adversarial: Tensor  # L_G(D2, Ĥ_B, K_B)
    identity_adversarial: Tensor  # L_G(D3, Ĥ_B, H_A)
    reconstruction: Tensor  # L1, eq. (15)
    perceptual: Tensor  # Lp, eq. (16) (0 when perceptual_weight is 0)
    layout_cross_entropy: Tensor  # Ls, eq. (8)
    total: Tensor


def _unwrapped(module: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    inner = getattr(module, "module", None)
    return inner if isinstance(inner, nn.Module) else module


def discriminator_objective(discriminators: nn.Module, output: GeneratorOutput, source_image: Tensor,
                            target_image: Tensor, target_layout_labels: Tensor, target_pose: Tensor,
                            config: LossConfig) -> DiscriminatorLosses:
    """Eq. (17). Generator outputs are detached: only the discriminators receive gradients.

    ``discriminators``: a :class:`Discriminators` (or a DDP wrapper of one; real and fake go through
    one forward call as a ``2B`` batch). source_image/target_image ``(B, 3, H, W)`` in [-1, 1],
    target_layout_labels ``(B, H, W)`` integer, target_pose ``(B, 18, H, W)``.
    """
    batch = target_image.shape[0]
    real_layout = to_one_hot(target_layout_labels, output.layout_logits.shape[1])
    fake_layout = straight_through_one_hot(output.layout_logits.detach())
    logits: PatchLogits = discriminators(torch.cat([real_layout, fake_layout]),
                                         torch.cat([target_image, output.image.detach()]),
                                         torch.cat([target_pose, target_pose]),
                                         torch.cat([source_image, source_image]))
    mode = config.gan_mode
    layout, pose, identity = (discriminator_loss(judged[:batch], judged[batch:], mode)
                              for judged in (logits.layout, logits.pose, logits.identity))
    total = config.lambda_layout_adv * layout + config.lambda_image_adv * (pose + identity)
    return DiscriminatorLosses(layout=layout, pose=pose, identity=identity, total=total)


def generator_objective(discriminators: nn.Module, perceptual: PerceptualLoss | None, output: GeneratorOutput,
                        source_image: Tensor, target_image: Tensor, target_layout_labels: Tensor,
                        target_pose: Tensor, config: LossConfig) -> GeneratorLosses:
    """Eq. (18). The discriminators (unwrapped from DDP if wrapped: no gradient sync is needed) are
    frozen while the graph is built, so backpropagating ``total`` leaves their gradients untouched.
    ``perceptual`` may be None only when ``perceptual_weight`` is 0 (see
    :func:`recapture.models.perceptual.build_perceptual_loss`)."""
    mode = config.gan_mode
    judge = _unwrapped(discriminators)
    with frozen(judge):
        logits: PatchLogits = judge(straight_through_one_hot(output.layout_logits), output.image, target_pose,
                                    source_image)
    layout_adversarial = generator_adversarial_loss(logits.layout, mode)
    pose_adversarial = generator_adversarial_loss(logits.pose, mode)
    identity_adversarial = generator_adversarial_loss(logits.identity, mode)
    reconstruction = (output.image - target_image).abs().mean()
    if config.perceptual_weight != 0:
        if perceptual is None:
            raise ValueError(f"loss.perceptual_weight={config.perceptual_weight} but no perceptual loss was "
                             "given; build one with build_perceptual_loss(config)")
        perceptual_term = perceptual(output.image, target_image)
    else:
        perceptual_term = torch.zeros((), device=output.image.device)
    cross_entropy = layout_cross_entropy(output.layout_logits, target_layout_labels)
    total = (config.lambda_layout_adv * layout_adversarial
             + config.lambda_image_adv * (pose_adversarial + identity_adversarial)
             + config.lambda_reconstruction * (reconstruction + config.perceptual_weight * perceptual_term)
             + config.lambda_layout_ce * cross_entropy)
    return GeneratorLosses(layout_adversarial=layout_adversarial, pose_adversarial=pose_adversarial,
                           identity_adversarial=identity_adversarial, reconstruction=reconstruction,
                           perceptual=perceptual_term, layout_cross_entropy=cross_entropy, total=total)
