"""Continuous codes turned to line up with slant and width: a rotation folded into G and Q.

With a fixed std, InfoGAN's information term for the continuous codes is 1/2 |c - mu|^2, the same
in any rotated frame, so nothing in training prefers the axes the codes end up on: many runs
learn slant and width along diagonals, and then every slider both slants and thickens (README,
"Codes that each do one thing"). Turning the code space mends that without training. The served
model reads its codes u through an orthogonal R, c = R u, folded into G's first layer, and its Q
reports R^T of what it reads, so drawing, encoding and fitting stay consistent with each other.
"""

from __future__ import annotations

import dataclasses
from copy import deepcopy

import numpy as np
import torch

from models.checkpoint import Checkpoint
from models.metadata import SWINGS, clear_effect, has_numbers, q_predicts_std
from training.classifier import MnistClassifier
from training.evaluate import continuous_effects

Effects = dict[str, dict[str, float]]  # training.evaluate.continuous_effects: code name -> measurements


def code_rotation(slant_swings: np.ndarray, width_swings: np.ndarray) -> np.ndarray:
    """The orthogonal (n, n) R whose first column is the code direction that moves slant most
    against width and whose second column is the reverse, from each code's (n,) swings.

    A unit direction d moves slant by a_s . d and width by a_w . d (linear in the codes), so
    (a_s . d)^2 - (a_w . d)^2 = d^T (a_s a_s^T - a_w a_w^T) d, whose top and bottom eigenvectors
    are the two directions, orthogonal by construction. Each column's sign makes its attribute
    grow with the code; further codes take the remaining eigenvectors."""
    scores, vectors = np.linalg.eigh(np.outer(slant_swings, slant_swings) - np.outer(width_swings, width_swings))
    order = [len(scores) - 1, 0, *range(len(scores) - 2, 0, -1)]  # slant, width, then the rest
    rotation = vectors[:, order]
    for column, swings in ((0, slant_swings), (1, width_swings)):
        if swings @ rotation[:, column] < 0:
            rotation[:, column] *= -1
    return rotation


def rotate_codes(checkpoint: Checkpoint, rotation: torch.Tensor) -> Checkpoint:
    """The same model reading continuous codes u with c = R u: G(z, u) draws what G(z, R u) drew,
    and Q's means read R^T mu. Q's stds do not turn with it, so a Q that predicts them is refused."""
    if q_predicts_std(checkpoint.meta):
        raise ValueError("the codes of a Q that predicts a std per code cannot be rotated")
    n = len(checkpoint.latent.continuous)
    generator, discriminator = deepcopy(checkpoint.generator), deepcopy(checkpoint.discriminator)
    with torch.no_grad():
        first = generator.fc[0].weight  # (g_fc, input_dim); build_input puts the continuous codes last
        first[:, -n:] = first[:, -n:] @ rotation.to(first)
        last = discriminator.q_head[-1]  # rows: logits, then n means, then n log-stds (LatentSpec.split_q_output)
        means = slice(last.out_features - 2 * n, last.out_features - n)
        last.weight[means] = rotation.T.to(last.weight) @ last.weight[means]
        last.bias[means] = rotation.T.to(last.bias) @ last.bias[means]
    return dataclasses.replace(checkpoint, generator=generator, discriminator=discriminator)


def crosstalk(effects: Effects) -> float:
    """How far the codes move the attribute they are not mostly about: per code, the smaller of
    its slant and width swings (in real digits' standard deviations), summed."""
    return sum(min(abs(e[SWINGS["slant"]]), abs(e[SWINGS["width"]])) for e in effects.values())


def aligned_codes(checkpoint: Checkpoint, classifier: MnistClassifier) -> Checkpoint:
    """The checkpoint with its continuous codes turned towards slant and width and measured again,
    when the turn names as many of the two effects or more (models.metadata.clear_effect) and
    leaves less crosstalk; else the checkpoint as it was. Its metadata records R as
    `code_rotation` (training's codes are R u). Needs two or more codes measured with swings
    (training.evaluate) and a Q with a fixed std."""
    metrics = checkpoint.meta.get("metrics")
    effects = metrics.get("continuous") if isinstance(metrics, dict) else None
    names = [code.name or f"c{j + 1}" for j, code in enumerate(checkpoint.latent.continuous)]
    measured = isinstance(effects, dict) and all(has_numbers(effects.get(n), SWINGS.values()) for n in names)
    if len(names) < 2 or not measured or q_predicts_std(checkpoint.meta):
        return checkpoint
    rotation = code_rotation(*(np.array([effects[n][SWINGS[a]] for n in names]) for a in ("slant", "width")))
    turned = rotate_codes(checkpoint, torch.tensor(rotation, dtype=torch.float32))
    turned_effects = continuous_effects(turned.generator, turned.latent, classifier)

    def named(measured_effects: Effects) -> int:  # two slant codes name one effect, not two
        return len({clear[0] for e in measured_effects.values() if (clear := clear_effect(e))})

    if named(turned_effects) < named(effects) or crosstalk(turned_effects) >= crosstalk(effects):
        return checkpoint
    meta = {**checkpoint.meta, "metrics": {**metrics, "continuous": turned_effects}, "code_rotation": rotation.tolist()}
    return dataclasses.replace(turned, meta=meta)
