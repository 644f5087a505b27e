"""Generator, discriminator and the Q head: the InfoGAN MNIST architecture.

Architecture from the paper's appendix (https://arxiv.org/abs/1606.03657, table 1). Q shares
the discriminator's convolutional body and adds a small head, so estimating I(c; G(z, c)) costs
almost nothing on top of the GAN.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class ArchConfig:
    name: str = "infogan-mnist"
    image_channels: int = 1
    image_size: int = 28  # two stride-2 up-convolutions, so it must be divisible by 4
    g_fc: int = 1024  # generator's first fully connected layer
    g_conv: int = 128  # channels of the 7x7 feature map; the up-conv halves it
    d_conv: int = 64  # discriminator's first conv; the second doubles it
    d_fc: int = 1024  # discriminator's fully connected layer, the shared body's output
    q_fc: int = 128  # Q head's hidden layers
    q_layers: int = 1  # hidden layers in the Q head; the paper has one, 0 makes Q linear in D's features
    leaky_slope: float = 0.1  # the paper's leaky ReLU slope

    def __post_init__(self) -> None:
        if self.image_size % 4:
            raise ValueError(f"image_size must be divisible by 4, got {self.image_size}")
        if self.q_layers < 0:
            raise ValueError(f"q_layers must be >= 0, got {self.q_layers}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchConfig:
        return cls(**data)


class Generator(nn.Module):
    """G(z, c): FC 1024-BN-ReLU, FC 7x7x128-BN-ReLU, up-conv 64-BN-ReLU, up-conv to image, tanh."""

    def __init__(self, *, input_dim: int, arch: ArchConfig) -> None:
        super().__init__()
        self.arch = arch
        side = arch.image_size // 4
        self.fc = nn.Sequential(
            nn.Linear(input_dim, arch.g_fc, bias=False),
            nn.BatchNorm1d(arch.g_fc),
            nn.ReLU(),
            nn.Linear(arch.g_fc, arch.g_conv * side * side, bias=False),
            nn.BatchNorm1d(arch.g_conv * side * side),
            nn.ReLU(),
            nn.Unflatten(1, (arch.g_conv, side, side)),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(arch.g_conv, arch.g_conv // 2, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(arch.g_conv // 2),
            nn.ReLU(),
            nn.ConvTranspose2d(arch.g_conv // 2, arch.image_channels, 4, stride=2, padding=1),
            nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.fc(x))  # (B, input_dim) -> (B, C, H, W) in [-1, 1]

    def for_inference(self) -> nn.Sequential:
        """The same function in eval mode with each batch norm folded into the layer before it.

        Eval-mode batch norm is an affine map, so folding it saves its passes over memory, and a
        copy cast to bf16 keeps the statistics' precision that a bf16 BatchNorm would lose."""
        copy = deepcopy(self).eval()
        return fold_batch_norm([*copy.fc, *copy.deconv])


class Discriminator(nn.Module):
    """D and Q in one module: a shared body, a real/fake head and the Q head.

    `forward` returns both heads because every training step needs both on the same images;
    `encode` runs the body and Q only, which is what serving needs.
    """

    def __init__(self, *, q_output_dim: int, arch: ArchConfig) -> None:
        super().__init__()
        self.arch = arch
        side = arch.image_size // 4
        slope = arch.leaky_slope
        self.body = nn.Sequential(
            nn.Conv2d(arch.image_channels, arch.d_conv, 4, stride=2, padding=1),
            nn.LeakyReLU(slope),
            nn.Conv2d(arch.d_conv, arch.d_conv * 2, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(arch.d_conv * 2),
            nn.LeakyReLU(slope),
            nn.Flatten(),
            nn.Linear(arch.d_conv * 2 * side * side, arch.d_fc, bias=False),
            nn.BatchNorm1d(arch.d_fc),
            nn.LeakyReLU(slope),
        )
        self.d_head = nn.Linear(arch.d_fc, 1)
        hidden, width = [], arch.d_fc
        for _ in range(arch.q_layers):
            hidden += [nn.Linear(width, arch.q_fc, bias=False), nn.BatchNorm1d(arch.q_fc), nn.LeakyReLU(slope)]
            width = arch.q_fc
        self.q_head = nn.Sequential(*hidden, nn.Linear(width, q_output_dim))

    def forward(
        self, images: torch.Tensor, *, detach_q: bool = False, detach_last_q: bool = False, groups: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (real/fake logits (B,), Q parameters (B, q_output_dim)).

        `detach_q` stops Q's gradient at the shared body, for the ablation where the information
        term trains the Q head only; `detach_last_q` stops it for the last of `groups` batches
        only (the consistency term's jittered images, when that term trains the head only).
        `groups` > 1 takes that many equal batches stacked into one (real and fake images, say):
        one pass with bigger matmuls, while every batch norm still normalises each batch by its
        own statistics, so outputs and running statistics are those of separate calls in order."""
        features = run_grouped(self.body, images, groups)  # (B, d_fc)
        q_input = features.detach() if detach_q else features
        if detach_last_q:
            last = len(images) // groups
            q_input = torch.cat([q_input[:-last], q_input[-last:].detach()])
        return self.d_head(features).squeeze(1), run_grouped(self.q_head, q_input, groups)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Q's parameters for images in [-1, 1]: (B, q_output_dim)."""
        return self.q_head(self.body(images))


def run_grouped(layers: nn.Sequential, x: torch.Tensor, groups: int) -> torch.Tensor:
    """`layers` on `groups` batches stacked along dimension 0, each batch norm applied batch by batch."""
    if groups == 1:
        return layers(x)
    for layer in layers:
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            x = torch.cat([layer(batch) for batch in x.chunk(groups)])
        else:
            x = layer(x)
    return x


def fold_batch_norm(layers: list[nn.Module]) -> nn.Sequential:
    """Eval-mode `layers` run in order, with every batch norm that follows a linear or
    (transposed) convolution merged into that layer's weights (a new module)."""
    folded: list[nn.Module] = []
    for layer in layers:
        previous = folded[-1] if folded else None
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and isinstance(previous, nn.Linear):
            folded[-1] = fuse_linear_bn_eval(previous, layer)
        elif isinstance(layer, nn.modules.batchnorm._BatchNorm) and isinstance(previous, nn.modules.conv._ConvNd):
            fuse = partial(fuse_conv_bn_eval, transpose=isinstance(previous, nn.modules.conv._ConvTransposeNd))
            folded[-1] = fuse(previous, layer)
        else:
            folded.append(layer)
    return nn.Sequential(*folded)


def compute_dtype(precision: str, device: torch.device) -> torch.dtype:
    """float32 or bfloat16 for a precision name. `auto` picks bf16 where the hardware computes it
    natively: CUDA devices that support it and CPUs with AVX-512 bf16 or AMX."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "auto":
        if device.type == "cuda":
            native = torch.cuda.is_bf16_supported()
        else:
            native = device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        return torch.bfloat16 if native else torch.float32
    return torch.bfloat16 if precision == "bf16" else torch.float32


@contextmanager
def evaluating(*modules: nn.Module) -> Iterator[None]:
    """no_grad and eval mode, then each submodule's previous mode back: training computes metrics
    and sample grids mid-run, where batch norm must neither use batch statistics nor update its
    running ones, and must train on afterwards."""
    modes = [(module, module.training) for root in modules for module in root.modules()]
    try:
        with torch.no_grad():
            for root in modules:
                root.eval()
            yield
    finally:
        for module, training in modes:
            module.training = training
