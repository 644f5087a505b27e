"""Specification of models.networks: shapes, output range, the Q head and its gradient path."""

from dataclasses import replace

import pytest
import torch
from torch import nn

from models.latent import LatentSpec
from models.networks import ArchConfig, Discriminator, Generator

SPEC = LatentSpec()
TINY = ArchConfig(name="tiny", g_fc=32, g_conv=16, d_conv=8, d_fc=32, q_fc=16)
# Colour images of another size, to show nothing assumes 1x28x28.
TINY_RGB = ArchConfig(name="tiny-rgb", image_channels=3, image_size=12, g_fc=32, g_conv=16, d_conv=8, d_fc=32, q_fc=16)

ARCHS = [
    pytest.param(ArchConfig(), id="paper-default"),
    pytest.param(TINY, id="tiny"),
    pytest.param(TINY_RGB, id="tiny-rgb-12px"),
    pytest.param(replace(TINY, q_layers=2), id="tiny-deeper-q"),
    pytest.param(replace(TINY, q_layers=0), id="tiny-linear-q"),
]


def networks(arch: ArchConfig) -> tuple[Generator, Discriminator]:
    torch.manual_seed(0)
    return Generator(input_dim=SPEC.input_dim, arch=arch), Discriminator(q_output_dim=SPEC.q_output_dim, arch=arch)


def latent_input(batch_size: int) -> torch.Tensor:
    return SPEC.build_input(SPEC.sample(batch_size, generator=torch.Generator().manual_seed(0)))


def images(arch: ArchConfig, batch_size: int) -> torch.Tensor:
    shape = (batch_size, arch.image_channels, arch.image_size, arch.image_size)
    return torch.rand(shape, generator=torch.Generator().manual_seed(1)) * 2 - 1


@pytest.mark.parametrize("arch", ARCHS)
def test_generator_maps_latent_input_to_images(arch: ArchConfig) -> None:
    generator, _ = networks(arch)

    out = generator(latent_input(4))

    assert out.shape == (4, arch.image_channels, arch.image_size, arch.image_size)


@pytest.mark.parametrize("arch", ARCHS)
def test_discriminator_returns_one_logit_and_q_parameters_per_image(arch: ArchConfig) -> None:
    _, discriminator = networks(arch)

    logits, q = discriminator(images(arch, 4))

    assert logits.shape == (4,)
    assert q.shape == (4, SPEC.q_output_dim)


@pytest.mark.parametrize("arch", ARCHS)
def test_encode_returns_q_parameters_per_image(arch: ArchConfig) -> None:
    _, discriminator = networks(arch)

    assert discriminator.encode(images(arch, 4)).shape == (4, SPEC.q_output_dim)


def test_generator_output_stays_within_minus_one_and_one() -> None:
    generator, _ = networks(TINY)
    generator.eval()

    # Large inputs drive the last layer into saturation, where a missing tanh would show.
    out = generator(latent_input(16) * 100)

    assert out.min() >= -1.0 and out.max() <= 1.0


def test_encode_equals_the_q_half_of_forward_in_eval_mode() -> None:
    _, discriminator = networks(TINY)
    discriminator.eval()
    x = images(TINY, 5)

    _, q = discriminator(x)

    torch.testing.assert_close(discriminator.encode(x), q)


def q_only_backward(discriminator: Discriminator, *, detach_q: bool) -> None:
    discriminator.train()
    discriminator.zero_grad(set_to_none=True)
    _, q = discriminator(images(TINY, 4), detach_q=detach_q)
    q.square().sum().backward()


def test_detach_q_stops_q_gradient_at_the_shared_body() -> None:
    _, discriminator = networks(TINY)

    q_only_backward(discriminator, detach_q=True)

    assert all(p.grad is None or not p.grad.any() for p in discriminator.body.parameters())
    # The Q head itself still learns.
    assert all(p.grad is not None and p.grad.any() for p in discriminator.q_head.parameters())


def test_without_detach_q_the_q_gradient_reaches_the_shared_body() -> None:
    _, discriminator = networks(TINY)

    q_only_backward(discriminator, detach_q=False)

    assert all(p.grad is not None and p.grad.any() for p in discriminator.body.parameters())


def test_a_grouped_pass_equals_separate_passes_batch_norm_statistics_included() -> None:
    """Training runs D once on real and fake stacked together; each batch must still be
    normalised by its own statistics, as two calls would, and the running statistics must end
    where the two calls in order leave them."""
    _, grouped = networks(TINY)
    _, separate = networks(TINY)
    real, fake = images(TINY, 8), images(TINY, 8).flip(0) * 0.5

    logits, q = grouped(torch.cat([real, fake]), groups=2)
    pairs = [separate(batch) for batch in (real, fake)]

    torch.testing.assert_close(logits, torch.cat([logit for logit, _ in pairs]))
    torch.testing.assert_close(q, torch.cat([q for _, q in pairs]))
    torch.testing.assert_close(grouped.state_dict(), separate.state_dict())
    # Normalising the stacked batch as one would give other outputs: the test can tell.
    ungrouped, _ = networks(TINY)[1](torch.cat([real, fake]))
    assert not torch.allclose(ungrouped, logits)


@pytest.mark.parametrize(
    "image_size",
    [
        30,  # even but not divisible by 4: the second up-convolution would not land on it
        27,  # odd
        2,  # smaller than one 4x4 step
    ],
)
def test_image_size_not_divisible_by_four_is_rejected(image_size: int) -> None:
    with pytest.raises(ValueError, match=f"image_size must be divisible by 4, got {image_size}"):
        ArchConfig(image_size=image_size)


@pytest.mark.parametrize("q_layers", [0, 1, 3])
def test_the_q_head_has_q_layers_hidden_layers_before_its_output_layer(q_layers: int) -> None:
    _, discriminator = networks(replace(TINY, q_layers=q_layers))

    linears = [layer for layer in discriminator.q_head if isinstance(layer, nn.Linear)]

    assert [layer.in_features for layer in linears] == [TINY.d_fc] + [TINY.q_fc] * q_layers
    assert linears[-1].out_features == SPEC.q_output_dim


def test_a_negative_number_of_q_layers_is_rejected() -> None:
    with pytest.raises(ValueError, match="q_layers must be >= 0, got -1"):
        ArchConfig(q_layers=-1)


def test_arch_config_round_trips_through_dict() -> None:
    assert ArchConfig.from_dict(TINY_RGB.to_dict()) == TINY_RGB
