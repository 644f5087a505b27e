"""Specification of training.align: continuous codes turned to line up with slant and width."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from drawn import LineGenerator
from torch import nn

from models import ArchConfig, Checkpoint, Discriminator, LatentBatch, LatentSpec, build_networks
from models.metadata import clear_effect
from training.align import aligned_codes, code_rotation, crosstalk, rotate_codes, served_effects
from training.classifier import ClassifierConfig, MnistClassifier
from training.evaluate import continuous_effects

LATENT = LatentSpec()
TINY = ArchConfig(g_fc=32, g_conv=16, d_conv=8, d_fc=32, q_fc=16)
EIGHTH_TURN = torch.tensor([[1.0, -1.0], [1.0, 1.0]]) / math.sqrt(2)


@pytest.fixture
def classifier() -> MnistClassifier:
    torch.manual_seed(0)
    return MnistClassifier(ClassifierConfig(conv1=4, conv2=8, features=16)).eval()


class DiagonalLineGenerator(nn.Module):
    """A stand-in whose codes reach slant and width along diagonals: it draws what LineGenerator
    draws for c = EIGHTH_TURN u, through a first layer that training.align can fold a turn into."""

    def __init__(self) -> None:
        super().__init__()
        first = nn.Linear(LATENT.input_dim, LATENT.input_dim, bias=False)
        with torch.no_grad():
            first.weight.copy_(torch.eye(LATENT.input_dim))
            first.weight[-2:, -2:] = EIGHTH_TURN
        self.fc = nn.Sequential(first)
        self.lines = LineGenerator()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lines(self.fc(x))


def diagonal_checkpoint(**meta: object) -> Checkpoint:
    discriminator = Discriminator(q_output_dim=LATENT.q_output_dim, arch=TINY).eval()
    return Checkpoint(LATENT, TINY, DiagonalLineGenerator(), discriminator, dict(meta))


def test_the_rotation_points_one_code_at_slant_and_the_other_at_width() -> None:
    # each code moves slant by 3 and width by +-2: slant lies along (1, 1), width along (1, -1)
    rotation = code_rotation(np.array([3.0, 3.0]), [np.array([2.0, -2.0])])

    np.testing.assert_allclose(rotation.T @ rotation, np.eye(2), atol=1e-12)  # orthogonal
    np.testing.assert_allclose(rotation[:, 0], np.array([1, 1]) / math.sqrt(2), atol=1e-12)
    np.testing.assert_allclose(rotation[:, 1], np.array([1, -1]) / math.sqrt(2), atol=1e-12)


def test_both_measures_of_width_pull_the_second_code() -> None:
    # slant along (1, 1); thickness alone would put width along (1, -1), breadth along (0, 1)
    slant, thickness, breadth = np.array([3.0, 3.0]), np.array([2.0, -2.0]), np.array([0.0, 2.0])
    rotation = code_rotation(slant, [thickness, breadth])

    np.testing.assert_allclose(rotation.T @ rotation, np.eye(2), atol=1e-12)
    assert abs(rotation[:, 1] @ breadth) > abs(code_rotation(slant, [thickness])[:, 1] @ breadth)
    assert rotation[:, 0] @ slant > 0 and rotation[:, 1] @ thickness > 0  # each grows with its code


def test_the_width_code_grows_the_measure_it_moves_most() -> None:
    # breadth moves far, against a little thickness: the second code is turned so that breadth grows
    slant, thickness, breadth = np.array([3.0, 3.0]), np.array([0.5, -0.5]), np.array([-2.0, 2.0])
    rotation = code_rotation(slant, [thickness, breadth])

    assert rotation[:, 1] @ breadth > abs(rotation[:, 1] @ thickness)


def test_turned_codes_draw_and_read_what_the_trained_codes_did() -> None:
    torch.manual_seed(0)
    generator, discriminator = build_networks(LATENT, TINY)
    checkpoint = Checkpoint(LATENT, TINY, generator.eval(), discriminator.eval(), {})
    codes = LATENT.sample(16, generator=torch.Generator().manual_seed(1))
    u = codes.c_cont

    turned = rotate_codes(checkpoint, EIGHTH_TURN)
    trained_codes = LatentBatch(codes.z, codes.c_cat, u @ EIGHTH_TURN.T)  # c = R u, row by row
    with torch.no_grad():
        drawn = turned.generator(LATENT.build_input(codes))
        torch.testing.assert_close(drawn, generator(LATENT.build_input(trained_codes)))
        logits, mean, log_std = LATENT.split_q_output(turned.discriminator.encode(drawn))
        trained_logits, trained_mean, trained_log_std = LATENT.split_q_output(discriminator.encode(drawn))
    torch.testing.assert_close(mean, trained_mean @ EIGHTH_TURN)  # u = R^T c, row by row
    torch.testing.assert_close(logits[0], trained_logits[0])
    torch.testing.assert_close(log_std, trained_log_std)


def test_codes_along_diagonals_are_turned_into_a_slant_code_and_a_width_code(classifier) -> None:
    checkpoint = diagonal_checkpoint(metrics={"categorical_accuracy": 0.9, "fid": 12.0})
    before = continuous_effects(checkpoint.generator, LATENT, classifier)

    aligned = aligned_codes(checkpoint, classifier)

    after = aligned.meta["metrics"]["continuous"]
    assert after == continuous_effects(aligned.generator, LATENT, classifier)  # measured on the turned networks
    assert [clear_effect(effect).name for effect in after.values()] == ["slant", "width"]
    assert after["c1"]["slant_spearman"] > 0.9 and after["c2"]["width_spearman"] > 0.9  # both grow with the code
    assert crosstalk(after) < 0.1 * crosstalk(before)
    np.testing.assert_allclose(np.array(aligned.meta["code_rotation"]), EIGHTH_TURN.T.numpy(), atol=0.05)
    assert aligned.meta["metrics"] == {"categorical_accuracy": 0.9, "continuous": after}  # FID was the old prior's
    assert aligned_codes(checkpoint, classifier, before).meta == aligned.meta  # measured already: the same turn


def test_turning_a_turned_file_records_the_whole_turn(classifier) -> None:
    checkpoint = diagonal_checkpoint()
    quarter_turn = EIGHTH_TURN @ EIGHTH_TURN
    turned_before = rotate_codes(checkpoint, quarter_turn)
    turned_before.meta["code_rotation"] = quarter_turn.tolist()  # as a first turn would have recorded it

    aligned = aligned_codes(turned_before, classifier)

    whole = np.array(aligned.meta["code_rotation"])  # training's codes c = R u, over both turns
    np.testing.assert_allclose(whole, EIGHTH_TURN.T.numpy(), atol=0.05)


def test_codes_that_are_already_clean_are_left_as_they_were(classifier) -> None:
    checkpoint = diagonal_checkpoint()
    with torch.no_grad():
        checkpoint.generator.fc[0].weight[-2:, -2:] = torch.eye(2)  # c1 is the slant, c2 the width

    assert aligned_codes(checkpoint, classifier) is checkpoint


def test_codes_are_read_as_served_turned_where_the_export_turns_them(classifier) -> None:
    diagonal, clean = diagonal_checkpoint(), diagonal_checkpoint()
    with torch.no_grad():
        clean.generator.fc[0].weight[-2:, -2:] = torch.eye(2)
    trained = {name: continuous_effects(c.generator, LATENT, classifier) for name, c in (("d", diagonal), ("c", clean))}

    served = served_effects(diagonal, classifier, trained["d"])

    assert served == aligned_codes(diagonal, classifier).meta["metrics"]["continuous"]
    assert [clear_effect(e).name for e in served.values()] == ["slant", "width"]
    assert served_effects(clean, classifier, trained["c"]) is trained["c"]  # not turned: the codes as they are


def test_a_q_that_predicts_a_std_per_code_keeps_its_codes(classifier) -> None:
    checkpoint = diagonal_checkpoint(q_predicts_std=True)

    assert aligned_codes(checkpoint, classifier) is checkpoint
    with pytest.raises(ValueError, match="predicts a std"):
        rotate_codes(checkpoint, EIGHTH_TURN)
