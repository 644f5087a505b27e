"""The InfoGAN losses against values computed by hand."""

import dataclasses
import math

import pytest
import torch

from models.latent import CategoricalCode, ContinuousCode, LatentBatch, LatentSpec
from training.evaluate import slant
from training.loop import TrainConfig
from training.losses import (
    LOG_STD_LIMIT,
    consistency_loss,
    discriminator_loss,
    generator_loss,
    information_loss,
    jitter,
    real_information_loss,
)

SPEC = LatentSpec(noise_dim=0, categorical=(CategoricalCode(3),), continuous=(ContinuousCode(),))


def codes(category: int, value: float) -> LatentBatch:
    return LatentBatch(torch.zeros(1, 0), torch.tensor([[category]]), torch.tensor([[value]]))


def q_output(logits: list[float], mean: float, log_std: float) -> torch.Tensor:
    return torch.tensor([[*logits, mean, log_std]])


@pytest.mark.parametrize(
    ("real", "fake", "expected"),
    [
        (0.0, 0.0, 2 * math.log(2)),  # D undecided: log 2 for each half
        (2.0, -1.0, math.log1p(math.exp(-2)) + math.log1p(math.exp(-1))),
        (-3.0, 4.0, math.log1p(math.exp(3)) + math.log1p(math.exp(4))),  # D fooled both ways
    ],
)
def test_discriminator_loss_is_binary_cross_entropy_on_logits(real, fake, expected):
    loss = discriminator_loss(torch.tensor([real]), torch.tensor([fake]))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_generator_loss_is_non_saturating():
    # -log sigmoid(l): large when D rejects the fake confidently, where log(1 - D) would be flat.
    loss = generator_loss(torch.tensor([-5.0, 0.0]))
    assert loss.item() == pytest.approx((math.log1p(math.exp(5)) + math.log(2)) / 2, rel=1e-6)


def test_categorical_term_is_cross_entropy_of_raw_logits():
    logits = [1.0, 2.0, 0.5]
    loss = information_loss(SPEC, q_output(logits, 0.0, 0.0), codes(1, 0.0))
    log_partition = math.log(sum(math.exp(v) for v in logits))
    assert loss.categorical.item() == pytest.approx(log_partition - 2.0, rel=1e-6)


def test_continuous_term_is_gaussian_negative_log_likelihood_with_learned_std():
    loss = information_loss(SPEC, q_output([0, 0, 0], 0.5, math.log(0.5)), codes(0, 1.5))
    # x = 1.5, mu = 0.5, sigma = 0.5: 0.5 * (1 / 0.5)^2 + log 0.5 + 0.5 log(2 pi)
    expected = 0.5 * 4.0 + math.log(0.5) + 0.5 * math.log(2 * math.pi)
    assert loss.continuous.item() == pytest.approx(expected, rel=1e-6)


def test_fixed_std_gives_half_squared_error():
    loss = information_loss(SPEC, q_output([0, 0, 0], 0.5, 3.0), codes(0, -1.5), learn_std=False)
    assert loss.continuous.item() == pytest.approx(0.5 * 2.0**2, rel=1e-6)


def test_learned_log_std_is_clamped():
    # A log-std of -50 would make the NLL explode to ~e^100; the clamp bounds it.
    loss = information_loss(SPEC, q_output([0, 0, 0], 0.0, -50.0), codes(0, 1.0))
    expected = 0.5 * math.exp(2 * LOG_STD_LIMIT) - LOG_STD_LIMIT + 0.5 * math.log(2 * math.pi)
    assert loss.continuous.item() == pytest.approx(expected, rel=1e-5)


def test_weighted_sum_uses_each_weight_for_its_own_term():
    loss = information_loss(SPEC, q_output([0, 0, 0], 0.0, 0.0), codes(0, 1.0))
    weighted = loss.weighted(lambda_cat=1.0, lambda_cont=0.1)
    assert weighted.item() == pytest.approx(loss.categorical.item() + 0.1 * loss.continuous.item(), rel=1e-6)


def test_terms_sum_over_codes_and_average_over_the_batch():
    spec = LatentSpec(
        noise_dim=0, categorical=(CategoricalCode(2), CategoricalCode(2)), continuous=(ContinuousCode(),) * 2
    )
    q_out = torch.zeros(4, spec.q_output_dim)  # uniform logits, mean 0, std 1
    batch = LatentBatch(torch.zeros(4, 0), torch.zeros(4, 2, dtype=torch.long), torch.ones(4, 2))
    loss = information_loss(spec, q_out, batch)
    assert loss.categorical.item() == pytest.approx(2 * math.log(2), rel=1e-6)
    assert loss.continuous.item() == pytest.approx(2 * (0.5 + 0.5 * math.log(2 * math.pi)), rel=1e-6)


# --- consistency on jittered real images ---------------------------------------------------------


def a_bar() -> torch.Tensor:
    images = -torch.ones(8, 1, 28, 28)
    images[:, :, 10:18, 12:16] = 1.0  # an upright bar, 4 pixels wide
    return images


def test_jitter_moves_ink_a_little_and_keeps_the_background() -> None:
    images = a_bar()
    same = jitter(images, torch.Generator().manual_seed(0), TrainConfig(jitter_degrees=0.0, jitter_pixels=0.0))
    assert torch.allclose(same, images, atol=1e-5)
    moved = jitter(images, torch.Generator().manual_seed(0), TrainConfig())
    assert moved.shape == images.shape and moved.min() >= -1 - 1e-6 and moved.max() <= 1 + 1e-6
    assert (moved[:, :, :4] == -1).all()  # far from the bar, background stays background
    assert not torch.allclose(moved, images, atol=0.1)  # but the bar moved
    again = jitter(images, torch.Generator().manual_seed(0), TrainConfig())
    assert torch.equal(moved, again)  # a function of the generator's state: resumes stay exact


def test_a_shear_slants_an_upright_stroke_either_way_up_to_its_size() -> None:
    images = a_bar()
    images[:, :, 6:22] = images[:, :, 10:11]  # a taller bar, so a slant shows
    sheared = jitter(
        images, torch.Generator().manual_seed(0), TrainConfig(jitter_degrees=0.0, jitter_pixels=0.0, jitter_shear=0.5)
    )
    slants = slant(sheared)  # pixels per pixel of height, the shear's own unit
    assert slant(images).abs().max() < 1e-6
    assert slants.min() < -0.1 and slants.max() > 0.1  # leaning either way
    assert slants.abs().max() <= 0.5 + 0.02  # never past the size asked for
    ink_per_row = ((sheared + 1) / 2).sum(-1)[:, 0, 8:20]  # (B, rows): a shear moves each row sideways
    assert torch.allclose(ink_per_row, torch.full_like(ink_per_row, 4.0), atol=0.05)


def test_a_shear_is_drawn_after_the_rotation_and_shift() -> None:
    """So a run without a shear draws exactly as before the option existed, and one with it
    rotates and shifts its copies as that run would."""
    images = a_bar()
    plain = TrainConfig(jitter_degrees=0.0, jitter_pixels=2.0)
    shifted = jitter(images, torch.Generator().manual_seed(0), plain)
    sheared = jitter(images, torch.Generator().manual_seed(0), dataclasses.replace(plain, jitter_shear=0.5))
    row = torch.arange(28.0)
    height = [((x + 1).sum((1, 3)) * row).sum(-1) / (x + 1).sum((1, 2, 3)) for x in (shifted, sheared)]
    assert torch.allclose(height[0], height[1], atol=0.01)  # a horizontal shear keeps each row's height: the same shift


def test_nearest_resampling_moves_a_stroke_without_blurring_it() -> None:
    images = a_bar()
    shift_only = {"jitter_degrees": 0.0, "jitter_pixels": 2.0}
    bilinear = jitter(images, torch.Generator().manual_seed(0), TrainConfig(**shift_only))
    nearest = jitter(images, torch.Generator().manual_seed(0), TrainConfig(**shift_only, jitter_resample="nearest"))
    assert not torch.equal(nearest, images)  # moved
    assert set(nearest.unique().tolist()) <= {-1.0, 1.0}  # every pixel still ink or background
    ink_per_row = (nearest[:, :, 12] > 0).sum(-1)  # a row through the bar's middle
    assert (ink_per_row == 4).all()  # the stroke is as wide as before
    grey = (bilinear > -0.99) & (bilinear < 0.99)
    assert grey.any()  # a sub-pixel shift, bilinear: grey edges, a softer and wider-looking stroke


def test_consistency_is_zero_for_agreeing_q_and_trains_only_the_jittered_side() -> None:
    spec = LatentSpec(noise_dim=4, categorical=(CategoricalCode(3),), continuous=(ContinuousCode(),))
    q_real = torch.tensor([[2.0, 0.0, -1.0, 0.5, 0.1]], requires_grad=True)
    same = q_real.detach().clone().requires_grad_(True)
    assert consistency_loss(spec, q_real, same).item() == pytest.approx(0.0, abs=1e-7)

    other = torch.tensor([[-1.0, 2.0, 0.0, 0.5, 0.1]], requires_grad=True)  # another category, same continuous
    loss = consistency_loss(spec, q_real, other)
    loss.backward()
    assert loss.item() > 0.5
    assert q_real.grad is None  # the real image's reading is the target
    assert other.grad[0, 3:].abs().sum() == 0  # the continuous head is left alone


def test_a_flipped_weight_counts_only_the_images_whose_copy_q_reads_as_another_category() -> None:
    spec = LatentSpec(noise_dim=4, categorical=(CategoricalCode(3),), continuous=(ContinuousCode(),))
    q_real = torch.tensor([[2.0, 0.0, -1.0, 0.5, 0.1], [2.0, 0.0, -1.0, 0.5, 0.1]])
    q_jittered = torch.tensor([[1.0, 0.5, -1.0, 0.5, 0.1], [0.0, 1.0, -1.0, 0.5, 0.1]])  # the second flips to 1
    kept, flipped = (consistency_loss(spec, q_real[i : i + 1], q_jittered[i : i + 1]) for i in (0, 1))
    assert consistency_loss(spec, q_real, q_jittered).item() == pytest.approx((kept + flipped).item() / 2)
    weighted = consistency_loss(spec, q_real, q_jittered, flipped_weight=4.0)
    assert weighted.item() == pytest.approx((kept + 5 * flipped).item() / 2)


def test_real_information_rewards_sure_and_balanced_categories_and_leaves_the_continuous_head() -> None:
    """Three images (SPEC: 3 categories, then a continuous mean and log-std)."""

    def q(logits: list[list[float]]) -> torch.Tensor:
        return torch.tensor([row + [0.3, 0.0] for row in logits], requires_grad=True)

    sure_and_balanced = q([[9.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, 9.0]])
    merged = q([[2.0, 0.0, 0.0], [2.0, 0.5, 0.0], [0.0, 0.0, 2.0]])  # two images lean to one category
    unsure = q([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    losses = [real_information_loss(SPEC, x) for x in (sure_and_balanced, merged, unsure)]
    assert losses[0].item() == pytest.approx(-math.log(3), abs=0.01)  # I(c; x) at most log 3
    assert losses[0] < losses[1] and losses[0] < losses[2]

    optimizer = torch.optim.SGD([merged], lr=1.0)
    for _ in range(300):  # minimising it pulls the two images apart, one category each
        optimizer.zero_grad()
        real_information_loss(SPEC, merged).backward()
        optimizer.step()
    assert merged[:, :3].argmax(1).tolist() == [0, 1, 2]
    assert real_information_loss(SPEC, merged).item() < -1.0
    assert merged.grad[:, 3:].abs().sum() == 0 and merged[:, 3].tolist() == pytest.approx([0.3] * 3)
