"""Specification of models.latent: sampling, building generator inputs, splitting Q's output."""

import json

import pytest
import torch

from models.latent import CategoricalCode, ContinuousCode, LatentBatch, LatentSpec

# noise 3, a 4-way and a 3-way categorical code, two continuous codes: small enough to write
# the expected generator input out by hand.
SMALL = LatentSpec(
    noise_dim=3,
    categorical=(CategoricalCode(4, "a"), CategoricalCode(3, "b")),
    continuous=(ContinuousCode(name="x"), ContinuousCode(name="y")),
)

MIXED = LatentSpec(
    noise_dim=16,
    categorical=(CategoricalCode(10, "digit"), CategoricalCode(3)),
    continuous=(
        ContinuousCode(prior="uniform", name="slant", train_range=(-1.0, 1.0)),
        ContinuousCode(prior="normal", name="width"),
        ContinuousCode(prior="uniform", train_range=(0.5, 3.0)),
    ),
)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- sampling ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(LatentSpec(), id="paper-default"),  # 62 noise, one 10-way, two uniform
        pytest.param(MIXED, id="two-categorical-three-continuous"),
        pytest.param(LatentSpec(noise_dim=5, categorical=(), continuous=()), id="noise-only"),
    ],
)
def test_sample_has_one_column_per_code(spec: LatentSpec) -> None:
    batch = spec.sample(7, generator=seeded(0))

    assert batch.z.shape == (7, spec.noise_dim)
    assert batch.c_cat.shape == (7, len(spec.categorical))
    assert batch.c_cont.shape == (7, len(spec.continuous))


def test_sample_dtypes_are_float_noise_int64_categories_float_continuous() -> None:
    batch = MIXED.sample(4, generator=seeded(0))

    assert batch.z.dtype == torch.float32
    assert batch.c_cat.dtype == torch.int64
    assert batch.c_cont.dtype == torch.float32


def test_sampled_category_indices_cover_exactly_their_range() -> None:
    batch = MIXED.sample(2000, generator=seeded(1))

    for i, code in enumerate(MIXED.categorical):
        assert set(batch.c_cat[:, i].tolist()) == set(range(code.categories))


def test_uniform_codes_are_drawn_from_their_train_range() -> None:
    batch = MIXED.sample(5000, generator=seeded(2))

    for i, code in enumerate(MIXED.continuous):
        if code.prior != "uniform":
            continue
        low, high = code.train_range
        column = batch.c_cont[:, i]
        assert column.min() >= low and column.max() <= high
        # The whole range is used, not a corner of it.
        assert column.min() < low + 0.05 * (high - low)
        assert column.max() > high - 0.05 * (high - low)


def test_normal_prior_has_zero_mean_and_unit_std() -> None:
    spec = LatentSpec(noise_dim=0, categorical=(), continuous=(ContinuousCode(prior="normal"),))

    column = spec.sample(50_000, generator=seeded(3)).c_cont[:, 0]

    assert abs(column.mean().item()) < 0.03
    assert column.std().item() == pytest.approx(1.0, abs=0.03)


def test_same_generator_seed_gives_identical_batches() -> None:
    first = MIXED.sample(16, generator=seeded(42))
    second = MIXED.sample(16, generator=seeded(42))

    assert torch.equal(first.z, second.z)
    assert torch.equal(first.c_cat, second.c_cat)
    assert torch.equal(first.c_cont, second.c_cont)


def test_different_generator_seeds_give_different_batches() -> None:
    first = MIXED.sample(16, generator=seeded(1))
    second = MIXED.sample(16, generator=seeded(2))

    assert not torch.equal(first.z, second.z)
    assert not torch.equal(first.c_cont, second.c_cont)


# --- noise ------------------------------------------------------------------------------------


def test_noise_for_a_seed_is_deterministic_whatever_the_global_rng() -> None:
    spec = LatentSpec()

    torch.manual_seed(0)
    first = spec.noise(7, batch_size=3)
    torch.manual_seed(1)
    second = spec.noise(7, batch_size=3)

    assert first.shape == (3, spec.noise_dim)
    assert torch.equal(first, second)


def test_noise_differs_between_seeds() -> None:
    spec = LatentSpec()

    assert not torch.equal(spec.noise(7), spec.noise(8))


# --- build_input ------------------------------------------------------------------------------


def test_build_input_places_noise_then_one_hots_then_continuous_values() -> None:
    latent = LatentBatch(
        z=torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]),
        c_cat=torch.tensor([[2, 0], [3, 1]]),
        c_cont=torch.tensor([[0.25, -0.5], [1.0, 0.0]]),
    )

    built = SMALL.build_input(latent)

    expected = torch.tensor(
        [
            # z              | code a (4)        | code b (3)    | x     y
            [0.1, 0.2, 0.3, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.25, -0.5],
            [0.4, 0.5, 0.6, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.00, 0.0],
        ]
    )
    assert torch.equal(built, expected)


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(LatentSpec(), id="paper-default"),  # 62 + 10 + 2 = 74
        pytest.param(MIXED, id="two-categorical-three-continuous"),  # 16 + 13 + 3 = 32
        pytest.param(LatentSpec(noise_dim=5, categorical=(), continuous=()), id="noise-only"),  # 5
    ],
)
def test_build_input_width_equals_input_dim(spec: LatentSpec) -> None:
    built = spec.build_input(spec.sample(4, generator=seeded(0)))

    assert built.shape == (4, spec.input_dim)


def test_input_dim_counts_noise_categories_and_continuous_codes() -> None:
    assert LatentSpec().input_dim == 62 + 10 + 2
    assert MIXED.input_dim == 16 + (10 + 3) + 3


def test_build_input_passes_values_outside_the_train_range_through_unchanged() -> None:
    # The paper traverses continuous codes over -2..2 although training drew them from -1..1.
    latent = LatentBatch(
        z=torch.zeros(3, 3),
        c_cat=torch.zeros(3, 2, dtype=torch.long),
        c_cont=torch.tensor([[2.0, -2.0], [-2.0, 2.0], [5.5, -7.25]]),
    )

    built = SMALL.build_input(latent)

    assert torch.equal(built[:, -2:], latent.c_cont)


@pytest.mark.parametrize(
    ("c_cat", "message"),
    [
        (torch.tensor([[4, 0]]), "categorical code 0 takes indices 0..3"),  # one past the last of 4
        (torch.tensor([[0, 3]]), "categorical code 1 takes indices 0..2"),  # one past the last of 3
        (torch.tensor([[-1, 0]]), "categorical code 0 takes indices 0..3"),  # negative index
    ],
)
def test_build_input_rejects_out_of_range_category_index(c_cat: torch.Tensor, message: str) -> None:
    latent = LatentBatch(z=torch.zeros(1, 3), c_cat=c_cat, c_cont=torch.zeros(1, 2))

    with pytest.raises(ValueError, match=message):
        SMALL.build_input(latent)


@pytest.mark.parametrize(
    ("z", "c_cat", "c_cont", "message"),
    [
        # noise one column short
        (torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 2), r"z must have shape \(2, 3\)"),
        # one categorical column for a spec with two codes
        (torch.zeros(2, 3), torch.zeros(2, 1, dtype=torch.long), torch.zeros(2, 2), r"c_cat must have shape \(2, 2\)"),
        # categories for a different batch size than z
        (torch.zeros(2, 3), torch.zeros(3, 2, dtype=torch.long), torch.zeros(2, 2), r"c_cat must have shape \(2, 2\)"),
        # three continuous values for a spec with two codes
        (torch.zeros(2, 3), torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 3), r"c_cont must have shape \(2, 2\)"),
        # continuous values as a flat vector instead of (B, n)
        (torch.zeros(2, 3), torch.zeros(2, 2, dtype=torch.long), torch.zeros(4), r"c_cont must have shape \(2, 2\)"),
    ],
)
def test_build_input_rejects_wrong_shapes_naming_the_part(
    z: torch.Tensor, c_cat: torch.Tensor, c_cont: torch.Tensor, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SMALL.build_input(LatentBatch(z=z, c_cat=c_cat, c_cont=c_cont))


# --- split_q_output ---------------------------------------------------------------------------


def test_q_output_dim_counts_logits_and_a_mean_and_log_std_per_continuous_code() -> None:
    assert LatentSpec().q_output_dim == 10 + 2 * 2
    assert MIXED.q_output_dim == (10 + 3) + 2 * 3


def test_split_q_output_gives_logits_per_code_then_means_then_log_stds() -> None:
    q_out = torch.arange(2 * MIXED.q_output_dim, dtype=torch.float32).reshape(2, MIXED.q_output_dim)

    logits, mean, log_std = MIXED.split_q_output(q_out)

    assert [tuple(part.shape) for part in logits] == [(2, 10), (2, 3)]
    assert torch.equal(logits[0], q_out[:, 0:10])
    assert torch.equal(logits[1], q_out[:, 10:13])
    assert torch.equal(mean, q_out[:, 13:16])
    assert torch.equal(log_std, q_out[:, 16:19])


# --- serialisation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(LatentSpec(), id="paper-default"),
        pytest.param(MIXED, id="two-categorical-three-continuous-with-normal-prior"),
        pytest.param(LatentSpec(noise_dim=5, categorical=(), continuous=()), id="noise-only"),
    ],
)
def test_to_dict_from_dict_round_trips_through_json(spec: LatentSpec) -> None:
    # Checkpoints store the spec as JSON, so tuples come back as lists.
    data = json.loads(json.dumps(spec.to_dict()))

    assert LatentSpec.from_dict(data) == spec


def test_from_dict_defaults_missing_names_and_train_range() -> None:
    data = {"noise_dim": 4, "categorical": [{"categories": 5}], "continuous": [{"prior": "normal"}]}

    spec = LatentSpec.from_dict(data)

    assert spec == LatentSpec(
        noise_dim=4, categorical=(CategoricalCode(5),), continuous=(ContinuousCode(prior="normal"),)
    )


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: CategoricalCode(1), "at least 2 categories, got 1"),  # a single category carries no information
        (lambda: CategoricalCode(0), "at least 2 categories, got 0"),
        (lambda: ContinuousCode(prior="laplace"), "prior must be 'uniform' or 'normal', got 'laplace'"),
        (lambda: ContinuousCode(train_range=(1.0, -1.0)), "low < high"),  # inverted range
        (lambda: ContinuousCode(train_range=(0.5, 0.5)), "low < high"),  # empty range
        (lambda: LatentSpec(noise_dim=-1), "noise_dim must be >= 0, got -1"),
    ],
)
def test_invalid_specs_raise_value_error(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_from_dict_rejects_an_invalid_prior() -> None:
    data = {"noise_dim": 4, "categorical": [], "continuous": [{"prior": "cauchy"}]}

    with pytest.raises(ValueError, match="prior must be"):
        LatentSpec.from_dict(data)


def test_uniform_noise_prior_draws_z_from_minus_1_to_1() -> None:
    spec = LatentSpec(noise_prior="uniform")

    z = spec.sample(4096, torch.Generator().manual_seed(0)).z

    assert z.min() >= -1 and z.max() <= 1
    assert z.std().item() == pytest.approx(1 / 3**0.5, abs=0.02)  # Unif(-1, 1), not N(0, 1)
    assert torch.equal(spec.noise(5), LatentSpec(noise_prior="uniform").noise(5))


def test_an_unknown_noise_prior_is_rejected() -> None:
    with pytest.raises(ValueError, match="noise_prior"):
        LatentSpec(noise_prior="cauchy")
