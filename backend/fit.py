"""`POST /encode?fit=true`: the noise, and refined continuous codes, with which G redraws an image.

Q reads the codes but not the noise, and the noise holds much of a drawing's style (size,
stroke, the shape of a loop), so G's picture of Q's codes with some seed's noise often looks
little like the drawing. The fit searches the noise by gradient steps through G on the pixel
error: one forward pass over SCREEN noise draws from the prior keeps the KEEP closest, then
Adam moves those (and the continuous codes, from Q's reading) for STEPS steps, inside the
prior's bounds. The work is bounded: SCREEN + 2 x KEEP x STEPS generator rows, on one thread.

The errors are measured on the pictures the service serves (its folded, cast generator), so
`POST /generate` with the returned noise and codes draws exactly the fitted picture.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from backend.inference import ServedGenerator, torch_threads
from backend.schemas import FitResult
from models import LatentBatch, LatentSpec
from models.render import to_uint8

SCREEN, KEEP, STEPS, LEARNING_RATE = 64, 2, 30, 0.1
CODE_BOUND = 2.0  # continuous codes stay within the paper's traversal range
NORMAL_BOUND = 3.0  # a normal prior's noise stays within 3 standard deviations


class Fit:
    """One fit of noise and continuous codes to `image` (1, C, H, W) in [-1, 1], the categories
    fixed. It runs a piece at a time on the inference thread (`screen`, then `step` STEPS times,
    then `result`), so the generator batches of other requests run between its steps."""

    def __init__(
        self,
        generator: nn.Module,
        spec: LatentSpec,
        image: torch.Tensor,
        categorical: list[int],
        continuous: list[float],
    ) -> None:
        self.generator, self.spec, self.categorical = generator, spec, categorical
        device = next(generator.parameters()).device
        self.bound = 1.0 if spec.noise_prior == "uniform" else NORMAL_BOUND
        self.image = image.to(device)
        self.c_cat = torch.tensor([categorical], device=device).repeat(SCREEN, 1)
        self.z = spec.noise(0, SCREEN).clamp(-self.bound, self.bound).to(device)  # a fixed screen: one fit per image
        self.codes = torch.tensor([continuous], device=device).repeat(SCREEN, 1)
        self.continuous = continuous

    def screen(self) -> None:
        """Keeps the KEEP noise draws whose pictures come closest."""
        with torch.no_grad(), torch_threads(1):
            closest = self._errors().topk(KEEP, largest=False).indices
        self.z = self.z[closest].clone().requires_grad_(True)
        self.codes = self.codes[closest].clone().requires_grad_(True)
        self.optimizer = torch.optim.Adam([self.z, self.codes], lr=LEARNING_RATE)

    def step(self) -> None:
        with torch_threads(1):
            loss = self._errors().sum()
            self.z.grad, self.codes.grad = torch.autograd.grad(loss, [self.z, self.codes])  # not G's weights
            self.optimizer.step()
            with torch.no_grad():
                self.z.clamp_(-self.bound, self.bound)
                self.codes.clamp_(-CODE_BOUND, CODE_BOUND)

    def result(self, served: ServedGenerator, *, seed: int = 0) -> FitResult:
        """The closest candidate, and the pixel errors of the served pictures before and after:
        "before" is G's picture of Q's codes with `seed`'s noise."""
        with torch.no_grad(), torch_threads(1):
            best = int(self._errors().argmin())
        noise, codes = self.z[best : best + 1].detach().cpu(), self.codes[best : best + 1].detach().cpu()
        categorical = torch.tensor([self.categorical])
        start = LatentBatch(self.spec.noise(seed), categorical, torch.tensor([self.continuous]))
        fitted = LatentBatch(noise, categorical, codes)
        before, after = served.pixels(torch.cat([self.spec.build_input(start), self.spec.build_input(fitted)]))
        target = to_uint8(self.image)[0]
        return FitResult(
            noise=noise[0].tolist(),
            categorical=self.categorical,
            continuous=codes[0].tolist(),
            steps=STEPS,
            pixel_error_before=_mean_error(before, target),
            pixel_error_after=_mean_error(after, target),
        )

    def _errors(self) -> torch.Tensor:
        """(candidates,) mean squared pixel error of each candidate's picture."""
        inputs = self.spec.build_input(LatentBatch(self.z, self.c_cat[: len(self.z)], self.codes))
        return (self.generator(inputs).float() - self.image).pow(2).mean((1, 2, 3))


def _mean_error(picture: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute difference in grey levels (0..255)."""
    return round(float(np.abs(picture.astype(np.float32) - target.astype(np.float32)).mean()), 3)
