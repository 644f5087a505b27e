"""InfoGAN losses as pure functions of logits and codes.

GAN terms are the non-saturating losses of Goodfellow et al. (2014); the information term is
the variational lower bound L_I of InfoGAN (https://arxiv.org/abs/1606.03657, eq. 4-5) with
constant entropy H(c) dropped: minimising it maximises a lower bound on I(c; G(z, c)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from models.latent import LatentBatch, LatentSpec

LOG_STD_LIMIT = 5.0  # keeps a learned std in [e^-5, e^5] so one bad batch cannot blow up the NLL


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(x) - log(1 - D(G(z, c))), with D = sigmoid(logits)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating: -log D(G(z, c)), which has strong gradients early when D wins easily."""
    return F.softplus(-fake_logits).mean()


@dataclass(frozen=True)
class InformationLoss:
    """-E[log Q(c | x)] for generated x, split by kind of code so each can be logged."""

    categorical: torch.Tensor  # sum over categorical codes of the mean cross-entropy
    continuous: torch.Tensor  # sum over continuous codes of the mean negative log-likelihood

    def weighted(self, lambda_cat: float, lambda_cont: float) -> torch.Tensor:
        return lambda_cat * self.categorical + lambda_cont * self.continuous


def information_loss(
    latent: LatentSpec, q_out: torch.Tensor, codes: LatentBatch, *, learn_std: bool = True
) -> InformationLoss:
    """L_I terms for Q's output (B, q_output_dim) on images generated from `codes`.

    Categorical codes: cross-entropy of Q's logits (raw logits, not softmax: F.cross_entropy
    applies log-softmax itself). Continuous codes: Gaussian NLL with Q's mean and learned
    log-std, or with `learn_std=False` a fixed unit std, i.e. half the squared error.
    """
    logits, mean, log_std = latent.split_q_output(q_out.float())
    categorical = q_out.new_zeros((), dtype=torch.float32)
    for i, code_logits in enumerate(logits):
        categorical = categorical + F.cross_entropy(code_logits, codes.c_cat[:, i])

    error = codes.c_cont.float() - mean  # (B, n_cont)
    if learn_std:
        log_std = log_std.clamp(-LOG_STD_LIMIT, LOG_STD_LIMIT)
        nll = 0.5 * (error * torch.exp(-log_std)) ** 2 + log_std + 0.5 * math.log(2 * math.pi)
    else:
        nll = 0.5 * error**2
    continuous = nll.mean(dim=0).sum()
    return InformationLoss(categorical=categorical, continuous=continuous)


def consistency_loss(
    latent: LatentSpec, q_real: torch.Tensor, q_jittered: torch.Tensor, *, flipped_weight: float = 0.0
) -> torch.Tensor:
    """KL(p(c | x) || p(c | x')) for Q's categorical heads on real images x and jittered copies x'
    (rotated and shifted a little), summed over categorical codes, with p(c | x) held fixed.

    A digit stays the same digit when it leans a little more or sits a pixel aside; a category
    that splits one digit by its slant does not. The continuous head is left alone: slant is
    what one of its codes should capture. With `flipped_weight`, an image whose copy Q reads as
    another category of a code counts 1 + flipped_weight times in that code's term: a stronger
    pull only where two categories meet, leaving the digits Q already reads either way alone."""
    real_logits, _, _ = latent.split_q_output(q_real.float())
    jittered_logits, _, _ = latent.split_q_output(q_jittered.float())
    loss = q_real.new_zeros((), dtype=torch.float32)
    for target, guess in zip(real_logits, jittered_logits, strict=True):
        target_log_p = F.log_softmax(target, dim=1).detach()
        guess_log_p = F.log_softmax(guess, dim=1)
        if not flipped_weight:  # one sum over the batch, as before the option: such runs repeat bit for bit
            loss = loss + F.kl_div(guess_log_p, target_log_p, log_target=True, reduction="batchmean")
            continue
        per_image = F.kl_div(guess_log_p, target_log_p, log_target=True, reduction="none").sum(1)
        loss = loss + (per_image * (1 + flipped_weight * (target.argmax(1) != guess.argmax(1)))).mean()
    return loss


def category_information(probabilities: torch.Tensor) -> torch.Tensor:
    """I(c; x) = H(E[p]) - E[H(p)] in nats for (N, categories) probabilities over N images: high
    when Q is sure of each image and uses every category alike. Differentiable, so it is both
    the label-free selection criterion and a training term."""
    mean = probabilities.mean(0)  # (categories,)
    entropy_of_mean = -(mean * mean.clamp_min(1e-12).log()).sum()
    mean_entropy = -(probabilities * probabilities.clamp_min(1e-12).log()).sum(1).mean()
    return entropy_of_mean - mean_entropy


def real_information_loss(latent: LatentSpec, q_real: torch.Tensor) -> torch.Tensor:
    """-I(c; x) of Q's categorical heads on a batch of real images, summed over categorical codes.

    Minimising it maximises what the selection criterion reads (Hu et al. 2017, IMSAT, pair it
    with a consistency term): a category that merges two digits while two others split one by
    style leaves the categories unevenly used and Q less sure in between."""
    logits, _, _ = latent.split_q_output(q_real.float())
    return -sum((category_information(torch.softmax(code, dim=1)) for code in logits), q_real.new_zeros(()))


class JitterSize(Protocol):
    """How far `jitter` moves an image: a TrainConfig, or anything with these fields."""

    jitter_degrees: float
    jitter_pixels: float
    jitter_shear: float
    jitter_resample: str  # "bilinear" or "nearest"


def jitter(images: torch.Tensor, generator: torch.Generator, size: JitterSize) -> torch.Tensor:
    """Each (B, C, H, W) image in [-1, 1] rotated by up to `size.jitter_degrees`, slanted by up to
    `size.jitter_shear` (a horizontal shear, in training.evaluate.slant's unit: pixels per pixel of
    height) and shifted by up to `size.jitter_pixels` each way, at random from `generator` (a CPU
    generator, for exact resumes); background fills in. The shear is drawn only when asked for, so
    runs without it draw as before. Bilinear resampling blurs a stroke a little, so it also looks a
    little thicker; nearest keeps each pixel's value and the stroke's width, with jagged edges."""
    batch, _, height, width = images.shape
    angle = (torch.rand(batch, generator=generator) * 2 - 1) * math.radians(size.jitter_degrees)
    shift = (torch.rand(batch, 2, generator=generator) * 2 - 1) * size.jitter_pixels * 2 / torch.tensor([width, height])
    cos, sin = angle.cos(), angle.sin()
    linear = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)  # (B, 2, 2)
    if size.jitter_shear:
        shear = (torch.rand(batch, generator=generator) * 2 - 1) * size.jitter_shear * height / width
        one, zero = torch.ones(batch), torch.zeros(batch)
        linear = linear @ torch.stack([torch.stack([one, shear], 1), torch.stack([zero, one], 1)], 1)
    theta = torch.cat([linear, shift[:, :, None]], 2)  # (B, 2, 3)
    grid = F.affine_grid(theta.to(images.device, images.dtype), list(images.shape), align_corners=False)
    ink = images + 1  # background 0, so the corners that come in from outside are background
    shifted = F.grid_sample(ink, grid, size.jitter_resample, padding_mode="zeros", align_corners=False)
    return shifted - 1
