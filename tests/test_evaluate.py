"""Tests for training/evaluate.py: the metrics on hand-made cases and the CLI on tiny checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from drawn import LineGenerator, line_image
from safetensors import safe_open
from scipy.stats import spearmanr

from models import (
    ArchConfig,
    Checkpoint,
    Discriminator,
    LatentSpec,
    TrainingState,
    build_networks,
    read_metadata,
    save_checkpoint,
)
from training import evaluate as evaluate_module
from training.classifier import ClassifierConfig, MnistClassifier, save_classifier
from training.data import ImageDataset, load_dataset
from training.evaluate import (
    REAL_SPREAD,
    breadth,
    categorical_accuracy,
    continuous_effects,
    fid,
    frechet_distance,
    main,
    match_categories,
    sample_images,
    slant,
    stroke_width,
)

TINY_ARCH = ArchConfig(g_fc=32, g_conv=16, d_conv=8, d_fc=32, q_fc=16)
TINY_CLASSIFIER = ClassifierConfig(conv1=4, conv2=8, features=16)


@pytest.fixture
def classifier() -> MnistClassifier:
    torch.manual_seed(0)
    return MnistClassifier(TINY_CLASSIFIER).eval()


def coded_images(categories: list[int]) -> torch.Tensor:
    """Images carrying the category a fake Q head should predict in their first pixel."""
    images = torch.full((len(categories), 1, 28, 28), -1.0)
    images[:, 0, 0, 0] = torch.tensor(categories, dtype=torch.float32)
    return images


@pytest.fixture
def fake_q(monkeypatch: pytest.MonkeyPatch) -> Discriminator:
    """A tiny Discriminator whose Q head reads its answer from the image's first pixel."""
    latent = LatentSpec()
    discriminator = Discriminator(q_output_dim=latent.q_output_dim, arch=TINY_ARCH)

    def encode(images: torch.Tensor) -> torch.Tensor:
        q_out = torch.zeros(len(images), latent.q_output_dim)
        q_out[:, :10] = 5 * F.one_hot(images[:, 0, 0, 0].long(), 10)
        return q_out

    monkeypatch.setattr(discriminator, "encode", encode)
    return discriminator


# --- categorical accuracy --------------------------------------------------------------------


def test_categorical_accuracy_recovers_a_permutation(fake_q: Discriminator) -> None:
    digit_of = torch.randperm(10, generator=torch.Generator().manual_seed(3))  # category -> digit
    categories = [i % 10 for i in range(200)]
    data = ImageDataset(coded_images(categories), digit_of[categories])
    accuracy, mapping = categorical_accuracy(fake_q, LatentSpec(), data, batch_size=64)
    assert accuracy == 1.0
    assert mapping == digit_of.tolist()


def test_categorical_accuracy_counts_the_misassigned(fake_q: Discriminator) -> None:
    labels = [i % 10 for i in range(100)]
    # The first two images of every digit land in the next digit's category: 80 of 100 right.
    categories = [(d + 1) % 10 if i < 20 else d for i, d in enumerate(labels)]
    accuracy, mapping = categorical_accuracy(
        fake_q, LatentSpec(), ImageDataset(coded_images(categories), torch.tensor(labels))
    )
    assert accuracy == pytest.approx(0.8)
    assert mapping == list(range(10))


@pytest.mark.parametrize("training", [True, False])
def test_categorical_accuracy_restores_the_mode(fake_q: Discriminator, training: bool) -> None:
    fake_q.train(training)
    categorical_accuracy(fake_q, LatentSpec(), ImageDataset(coded_images([0, 1]), torch.tensor([0, 1])))
    assert all(module.training == training for module in fake_q.modules())


@pytest.mark.parametrize(
    ("predicted", "labels", "categories", "accuracy", "mapping"),
    [
        ([1, 0, 1, 0], [0, 1, 0, 1], 2, 1.0, [1, 0]),  # swapped names, perfect clusters
        ([0, 0, 0, 0], [0, 1, 0, 1], 2, 0.5, [0, 1]),  # one cluster for everything
        ([2, 0, 2, 0], [0, 1, 0, 1], 3, 1.0, [1, -1, 0]),  # a spare category maps to no digit
        ([0, 1, 2, 2], [0, 1, 2, 3], 3, 0.75, [0, 1, 2]),  # a digit no category wins
    ],
)
def test_match_categories(predicted, labels, categories, accuracy, mapping) -> None:
    got_accuracy, got_mapping = match_categories(torch.tensor(predicted), torch.tensor(labels), categories)
    assert got_accuracy == pytest.approx(accuracy)
    assert got_mapping == mapping


# --- image attributes ------------------------------------------------------------------------


@pytest.mark.parametrize("shear", [-0.4, -0.2, 0.0, 0.2, 0.4])
def test_slant_measures_the_shear(shear: float) -> None:
    measured = float(slant(line_image(shear, 3).unsqueeze(0)))
    assert measured == pytest.approx(shear, abs=0.02)  # positive leans right, like italics


def test_slant_of_a_blank_image_is_zero() -> None:
    assert slant(torch.full((1, 1, 28, 28), -1.0)).tolist() == [0.0]


def test_stroke_width_grows_with_the_stroke() -> None:
    images = torch.stack([line_image(0.3, width) for width in (1, 2, 3, 5)])  # (4, 1, 28, 28)
    widths = stroke_width(images)
    assert widths.shape == (4,)
    assert torch.all(widths[1:] > widths[:-1])


# --- FID -------------------------------------------------------------------------------------


def test_frechet_distance_of_a_mean_shift_is_its_squared_length() -> None:
    a = np.random.default_rng(0).normal(size=(500, 8))
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-9)
    assert frechet_distance(a, a + 0.5) == pytest.approx(8 * 0.25)
    assert frechet_distance(a, a + 1.0) == pytest.approx(8 * 1.0)


def test_frechet_distance_matches_the_sqrtm_formula() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 6)), rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + 0.3
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    cross = scipy.linalg.sqrtm(cov_a @ cov_b).real
    expected = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(cov_a + cov_b - 2 * cross)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_survives_singular_covariances() -> None:
    a = np.random.default_rng(2).normal(size=(5, 16))  # fewer samples than features
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-9)
    assert math.isfinite(frechet_distance(a, a[::-1] * 2))


def test_fid_is_zero_for_the_same_images_and_grows_with_a_shift(classifier: MnistClassifier) -> None:
    real = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert fid(classifier, real, real) == pytest.approx(0, abs=1e-6)
    assert 0 < fid(classifier, real, real + 0.2) < fid(classifier, real, real + 1.0)


# --- continuous codes and sampling -----------------------------------------------------------


def test_the_rank_correlation_of_a_sweep_is_spearmans_rho_line_by_line() -> None:
    rng = np.random.default_rng(0)
    values = np.array([-2, -1.5, -1, -0.5, 0.5, 1, 1.5, 2])
    lines = np.round(rng.random((50, 8)), 1)  # with ties
    lines[:3] = 0.5  # lines along which nothing changes count as 0
    expected = np.mean([spearmanr(values, line).statistic if np.ptp(line) > 0 else 0.0 for line in lines])
    assert evaluate_module._mean_spearman(values, lines) == pytest.approx(expected, abs=1e-12)


def test_continuous_effects_of_a_random_generator_are_bounded(classifier: MnistClassifier) -> None:
    torch.manual_seed(0)
    generator, _ = build_networks(LatentSpec(), TINY_ARCH)
    effects = continuous_effects(generator.train(), LatentSpec(), classifier, seeds=(0, 1))
    assert generator.training  # the caller's mode is restored
    assert set(effects) == {"c1", "c2"}
    for effect in effects.values():
        rhos = {"slant_spearman", "width_spearman", "breadth_spearman"}
        assert set(effect) == rhos | {"slant_swing", "width_swing", "breadth_swing", "identity_kept"}
        assert all(math.isfinite(value) for value in effect.values())
        assert all(-1 <= effect[key] <= 1 for key in rhos)
        assert 0 <= effect["identity_kept"] <= 1


def test_continuous_effects_find_the_code_that_drives_each_attribute(classifier: MnistClassifier) -> None:
    effects = continuous_effects(LineGenerator(), LatentSpec(), classifier, seeds=(0,))
    assert effects["c1"]["slant_spearman"] == pytest.approx(1.0)
    assert effects["c2"]["width_spearman"] == pytest.approx(1.0)
    # how far: c1 leans the line by 0.8 pixel per pixel of height over the sweep, c2 thickens it
    assert effects["c1"]["slant_swing"] == pytest.approx(0.8 / REAL_SPREAD["slant"], rel=0.1)
    assert abs(effects["c1"]["width_swing"]) < 0.1 * effects["c1"]["slant_swing"]
    assert effects["c2"]["width_swing"] > 1 and effects["c2"]["slant_swing"] == pytest.approx(0, abs=0.05)


def test_a_swing_is_measured_in_real_digits_spread() -> None:
    digits = load_dataset("mnist", "test").images
    assert float(slant(digits).std()) == pytest.approx(REAL_SPREAD["slant"], rel=1e-3)
    assert float(stroke_width(digits).std()) == pytest.approx(REAL_SPREAD["width"], rel=1e-3)
    assert float(breadth(digits).std()) == pytest.approx(REAL_SPREAD["breadth"], rel=1e-3)


def test_breadth_reads_how_broad_a_digit_is_and_not_how_it_leans_or_how_thick_it_is() -> None:
    upright, leaning, thick = line_image(0, 3), line_image(0.4, 3), line_image(0, 5)
    ring = torch.zeros(1, 28, 28)  # a broad ring and a narrow one, strokes of the same thickness
    rows, cols = torch.meshgrid(torch.arange(28.0) - 13.5, torch.arange(28.0) - 13.5, indexing="ij")
    broad = (((cols / 9) ** 2 + (rows / 9) ** 2).sqrt() - 1).abs() < 0.12
    narrow = (((cols / 4) ** 2 + (rows / 9) ** 2).sqrt() - 1).abs() < 0.12
    images = torch.stack([upright, leaning, thick, ring + broad * 2 - 1, ring + narrow * 2 - 1])

    upright_b, leaning_b, thick_b, broad_b, narrow_b = breadth(images).tolist()
    assert leaning_b == pytest.approx(upright_b, rel=0.05)  # the shear is taken out
    assert broad_b > 2 * narrow_b > 2 * thick_b  # a broad digit is broad; a thick stroke barely


def test_sample_images_is_reproducible() -> None:
    torch.manual_seed(0)
    generator, _ = build_networks(LatentSpec(), TINY_ARCH)
    first = sample_images(generator, LatentSpec(), 5, seed=4, batch_size=2)
    assert first.shape == (5, 1, 28, 28)
    assert torch.allclose(first, sample_images(generator, LatentSpec(), 5, seed=4), atol=1e-6)  # any batching


# --- CLI -------------------------------------------------------------------------------------


@pytest.fixture
def classifier_file(tmp_path, classifier: MnistClassifier):
    return save_classifier(classifier, tmp_path / "classifier.safetensors")


def tiny_checkpoint(path, *, dtype: torch.dtype | None = None, with_training_state: bool = False):
    torch.manual_seed(0)
    latent = LatentSpec()
    generator, discriminator = build_networks(latent, TINY_ARCH)
    training = None
    if with_training_state:
        optimizer = torch.optim.Adam(generator.parameters())
        generator(latent.build_input(latent.sample(4))).mean().backward()
        optimizer.step()
        training = TrainingState(optimizers={"generator": optimizer.state_dict()})
    checkpoint = Checkpoint(latent, TINY_ARCH, generator, discriminator, {"dataset": "synthetic", "step": 3}, training)
    return save_checkpoint(path, checkpoint, dtype=dtype)


def generator_dtype(path) -> torch.dtype:
    with safe_open(str(path), framework="pt") as handle:
        return handle.get_tensor("generator.fc.0.weight").dtype


@pytest.mark.parametrize(
    ("dtype", "with_training_state"),
    [
        (None, False),  # a float32 serving checkpoint
        (torch.float16, False),  # a float16 serving checkpoint stays float16
        (None, True),  # a training checkpoint stays resumable
    ],
)
def test_cli_writes_metrics_into_the_checkpoint(tmp_path, classifier_file, capsys, dtype, with_training_state) -> None:
    path = tiny_checkpoint(tmp_path / "tiny.safetensors", dtype=dtype, with_training_state=with_training_state)
    argv = [str(path), "--dataset", "synthetic", "--fid-samples", "64", "--classifier", str(classifier_file)]
    assert main(argv) == 0
    meta = read_metadata(path)
    metrics = meta["metrics"]
    assert 0 <= metrics["categorical_accuracy"] <= 1
    assert sorted(metrics["category_to_digit"]) == list(range(10))
    assert meta["category_labels"] == [str(digit) for digit in metrics["category_to_digit"]]
    assert set(metrics["continuous"]) == {"c1", "c2"}
    assert metrics["fid"] >= 0 and metrics["fid_samples"] == 64
    assert meta["step"] == 3
    assert generator_dtype(path) == (dtype or torch.float32)
    assert ("optimizers" in meta) == with_training_state
    assert "categorical accuracy" in capsys.readouterr().out


def test_cli_no_write_leaves_the_file_alone(tmp_path, classifier_file) -> None:
    path = tiny_checkpoint(tmp_path / "tiny.safetensors")
    before = path.read_bytes()
    # No --dataset: the checkpoint's own data set ("synthetic") is used.
    assert main([str(path), "--no-write", "--fid-samples", "8", "--classifier", str(classifier_file)]) == 0
    assert path.read_bytes() == before


def test_cli_keeps_a_checkpoint_that_changed_during_evaluation(tmp_path, classifier_file, monkeypatch, capsys) -> None:
    path = tiny_checkpoint(tmp_path / "tiny.safetensors")
    real_evaluate = evaluate_module.evaluate

    def evaluate_while_a_run_saves(*args, **kwargs):
        metrics = real_evaluate(*args, **kwargs)
        tiny_checkpoint(path, dtype=torch.float16)  # a training run writes its next checkpoint
        return metrics

    monkeypatch.setattr(evaluate_module, "evaluate", evaluate_while_a_run_saves)
    assert main([str(path), "--fid-samples", "8", "--classifier", str(classifier_file)]) == 2
    assert "changed while being evaluated" in capsys.readouterr().err
    assert "metrics" not in read_metadata(path) and generator_dtype(path) == torch.float16  # the newer file


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such checkpoint file"),  # missing
        (b"\x00garbage", "corrupt"),  # not safetensors at all
    ],
)
def test_cli_rejects_a_bad_checkpoint(tmp_path, classifier_file, capsys, content, message) -> None:
    path = tmp_path / "bad.safetensors"
    if content is not None:
        path.write_bytes(content)
    assert main([str(path), "--dataset", "synthetic", "--classifier", str(classifier_file)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_rejects_a_missing_classifier(tmp_path, capsys) -> None:
    path = tiny_checkpoint(tmp_path / "tiny.safetensors")
    missing = tmp_path / "none.safetensors"
    assert main([str(path), "--dataset", "synthetic", "--classifier", str(missing)]) == 2
    assert "python -m training.classifier" in capsys.readouterr().err


@pytest.mark.parametrize("device", ["bogus", "cuda:0"])
def test_cli_rejects_a_device_it_cannot_use(tmp_path, capsys, device) -> None:
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    path = tiny_checkpoint(tmp_path / "tiny.safetensors")
    with pytest.raises(SystemExit) as exit_:
        main([str(path), "--device", device])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert ("not a device: 'bogus'" if device == "bogus" else "CUDA is not available") in err
