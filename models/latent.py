"""The latent-code spec: what a generator's input is made of, and how to build it.

InfoGAN (https://arxiv.org/abs/1606.03657, section 4) splits the generator input into
incompressible noise `z` and a structured code `c` made of categorical codes (one-hot) and
continuous codes. Every checkpoint stores its spec, so the service and the page build their
controls from it instead of assuming "10 categories, 2 sliders".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F

Prior = Literal["uniform", "normal"]
MAX_SEED = 2**31 - 1  # the largest seed of noise or training: what a JavaScript number holds exactly, and torch accepts


@dataclass(frozen=True)
class CategoricalCode:
    categories: int
    name: str | None = None

    def __post_init__(self) -> None:
        if self.categories < 2:
            raise ValueError(f"a categorical code needs at least 2 categories, got {self.categories}")


@dataclass(frozen=True)
class ContinuousCode:
    """A continuous code. `uniform` draws from `train_range` during training; `normal` draws
    from N(0, 1) and `train_range` only marks the typical region (one standard deviation)."""

    prior: Prior = "uniform"
    name: str | None = None
    train_range: tuple[float, float] = (-1.0, 1.0)

    def __post_init__(self) -> None:
        if self.prior not in ("uniform", "normal"):
            raise ValueError(f"prior must be 'uniform' or 'normal', got {self.prior!r}")
        low, high = self.train_range
        if not low < high:
            raise ValueError(f"train_range must be (low, high) with low < high, got {self.train_range}")


@dataclass(frozen=True)
class LatentBatch:
    """One batch of generator inputs, kept apart so losses can address each part by name."""

    z: torch.Tensor  # (B, noise_dim) incompressible noise
    c_cat: torch.Tensor  # (B, n_categorical) int64 category indices
    c_cont: torch.Tensor  # (B, n_continuous) float


@dataclass(frozen=True)
class LatentSpec:
    # Defaults are the paper's MNIST setting: 62 noise, one 10-way code, two Unif(-1, 1) codes.
    # Noise is Unif(-1, 1) as in the authors' code: on MNIST the categorical code then learns
    # the digit more than twice as fast as with N(0, 1) noise (docs/research.md, "Measured choices").
    noise_dim: int = 62
    noise_prior: Prior = "uniform"
    categorical: tuple[CategoricalCode, ...] = (CategoricalCode(10, "digit"),)
    continuous: tuple[ContinuousCode, ...] = field(default=(ContinuousCode(name="c1"), ContinuousCode(name="c2")))

    def __post_init__(self) -> None:
        if self.noise_dim < 0:
            raise ValueError(f"noise_dim must be >= 0, got {self.noise_dim}")
        if self.noise_prior not in ("uniform", "normal"):
            raise ValueError(f"noise_prior must be 'uniform' or 'normal', got {self.noise_prior!r}")

    @property
    def input_dim(self) -> int:
        """Width of the generator input: noise, one-hot categories, continuous values."""
        return self.noise_dim + sum(c.categories for c in self.categorical) + len(self.continuous)

    @property
    def q_output_dim(self) -> int:
        """Width of Q's output: logits per category, then a mean and a log-std per continuous code."""
        return sum(c.categories for c in self.categorical) + 2 * len(self.continuous)

    def sample(
        self, batch_size: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> LatentBatch:
        """Draw a training batch from the priors (all draws on CPU so seeds give the same
        values on every device)."""
        z = self._draw_noise(batch_size, generator)
        c_cat = (
            torch.stack(
                [torch.randint(c.categories, (batch_size,), generator=generator) for c in self.categorical], dim=1
            )
            if self.categorical
            else torch.zeros(batch_size, 0, dtype=torch.long)
        )
        columns = []
        for code in self.continuous:
            if code.prior == "uniform":
                low, high = code.train_range
                columns.append(torch.rand(batch_size, generator=generator) * (high - low) + low)
            else:
                columns.append(torch.randn(batch_size, generator=generator))
        c_cont = torch.stack(columns, dim=1) if columns else torch.zeros(batch_size, 0)
        return LatentBatch(z.to(device), c_cat.to(device), c_cont.to(device))

    def noise(self, seed: int, batch_size: int = 1) -> torch.Tensor:
        """The noise `z` for a seed: the same seed gives the same noise everywhere."""
        return self._draw_noise(batch_size, torch.Generator().manual_seed(seed))

    def _draw_noise(self, batch_size: int, generator: torch.Generator | None) -> torch.Tensor:
        if self.noise_prior == "uniform":  # Unif(-1, 1), as in the InfoGAN authors' code
            return torch.rand(batch_size, self.noise_dim, generator=generator) * 2 - 1
        return torch.randn(batch_size, self.noise_dim, generator=generator)

    def build_input(self, latent: LatentBatch) -> torch.Tensor:
        """Concatenate [z, one-hot(c_cat)..., c_cont] into the generator input (B, input_dim).

        Continuous values are taken as given, so values outside the training range (the paper's
        -2..2 traversals) pass through untouched."""
        batch = latent.z.shape[0]
        if latent.z.shape != (batch, self.noise_dim):
            raise ValueError(f"z must have shape ({batch}, {self.noise_dim}), got {tuple(latent.z.shape)}")
        if latent.c_cat.shape != (batch, len(self.categorical)):
            raise ValueError(
                f"c_cat must have shape ({batch}, {len(self.categorical)}), got {tuple(latent.c_cat.shape)}"
            )
        if latent.c_cont.shape != (batch, len(self.continuous)):
            raise ValueError(
                f"c_cont must have shape ({batch}, {len(self.continuous)}), got {tuple(latent.c_cont.shape)}"
            )
        one_hots = []
        for i, code in enumerate(self.categorical):
            index = latent.c_cat[:, i]
            if index.numel() and (index.min() < 0 or index.max() >= code.categories):
                raise ValueError(f"categorical code {i} takes indices 0..{code.categories - 1}")
            one_hots.append(F.one_hot(index, code.categories).to(latent.z.dtype))
        return torch.cat([latent.z, *one_hots, latent.c_cont.to(latent.z.dtype)], dim=1)

    def split_q_output(self, q_out: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Split Q's flat output (B, q_output_dim) into per-code logits, means and log-stds."""
        sizes = [c.categories for c in self.categorical]
        n_cont = len(self.continuous)
        *logits, mean, log_std = torch.split(q_out, [*sizes, n_cont, n_cont], dim=1)
        return list(logits), mean, log_std

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatentSpec:
        return cls(
            noise_dim=int(data["noise_dim"]),
            noise_prior=data.get("noise_prior", "uniform"),
            categorical=tuple(CategoricalCode(**c) for c in data["categorical"]),
            continuous=tuple(
                ContinuousCode(**{**c, "train_range": tuple(c.get("train_range", (-1.0, 1.0)))})
                for c in data["continuous"]
            ),
        )
