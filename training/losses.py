"""InfoGAN losses as pure functions of logits and codes.

GAN terms are the non-saturating losses of Goodfellow et al. (2014); the information term is
the variational lower bound L_I of InfoGAN (https://arxiv.org/abs/1606.03657, eq. 4-5) with
constant entropy H(c) dropped: minimising it maximises a lower bound on I(c; G(z, c)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
