"""Continuous codes turned to line up with slant and width: a rotation folded into G and Q.

With a fixed std, InfoGAN's information term for the continuous codes is 1/2 |c - mu|^2, the same
in any rotated frame, so nothing in training prefers the axes the codes end up on: many runs
learn slant and width along diagonals, and then every slider both slants and thickens (docs/research.md,
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
from models.metadata import MEASURES, clear_effect, q_predicts_std
from training.classifier import MnistClassifier
from training.evaluate import continuous_effects

Effects = dict[str, dict[str, float]]  # training.evaluate.continuous_effects: code name -> measurements


def code_rotation(slant_swings: np.ndarray, width_swings: list[np.ndarray]) -> np.ndarray:
    """The orthogonal (2, 2) R whose first column is the direction of two codes that moves slant
    most against width and whose second column is the reverse, from each code's swings (2,) of
    slant and of each attribute that measures width (stroke thickness, breadth; at least one).

    A unit direction d moves slant by a_s . d and a width attribute by a_w . d (linear in the
    codes), so (a_s . d)^2 - sum_w (a_w . d)^2 = d^T (a_s a_s^T - sum_w a_w a_w^T) d, whose top
    and bottom eigenvectors are the two directions, orthogonal by construction. Each column's
    sign makes its attribute grow with the code (for width, the attribute it moves most, which
    is the one models.metadata.clear_effect names it by)."""
    width = sum(np.outer(a, a) for a in width_swings)
    _, vectors = np.linalg.eigh(np.outer(slant_swings, slant_swings) - width)
    rotation = vectors[:, ::-1].copy()  # eigh sorts ascending: slant's direction first, width's second
    widest = max(width_swings, key=lambda a: abs(a @ rotation[:, 1]))
    for column, swings in ((0, slant_swings), (1, widest)):
        if swings @ rotation[:, column] < 0:
            rotation[:, column] *= -1
    return rotation


def rotate_codes(checkpoint: Checkpoint, rotation: torch.Tensor) -> Checkpoint:
    """The same networks reading continuous codes u with c = R u: G(z, u) draws what G(z, R u)
    drew, and Q's means read R^T mu. Q's stds do not turn with it, so a Q that predicts them is
    refused; optimiser states, which belong to the unturned weights, are dropped."""
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
    return dataclasses.replace(checkpoint, generator=generator, discriminator=discriminator, training=None)


def _largest_swing(measured: dict[str, float], effect: str) -> float:
    """The largest |swing| over the measured attributes of `effect` (models.metadata.MEASURES)."""
    return max((abs(measured[f"{a}_swing"]) for a in MEASURES[effect] if f"{a}_swing" in measured), default=0.0)


def crosstalk(effects: Effects) -> float:
    """How far the codes move the effect they are not mostly about: per code, the smaller of its
    slant swing and its largest width swing (in real digits' standard deviations), summed."""
    return sum(min(_largest_swing(e, "slant"), _largest_swing(e, "width")) for e in effects.values())


def named(effects: Effects) -> int:
    """How many of slant and width the codes name (models.metadata.clear_effect); two slant codes name one."""
    return len({clear.name for e in effects.values() if (clear := clear_effect(e))})


def aligned_codes(checkpoint: Checkpoint, classifier: MnistClassifier, before: Effects | None = None) -> Checkpoint:
    """The checkpoint with its two continuous codes turned towards slant and width, when the turn
    names as many of the two effects or more and leaves less crosstalk, both measured on the
    networks as they are (training.evaluate); else the checkpoint as it was.

    The turned file records R as `code_rotation` (training's codes are R u; turning a turned
    file composes them) and drops FID figures, which were measured with the unturned prior.
    Only two codes of one prior and range are turned, and only under a Q with a fixed std.
    `before`, where the caller has it, is training.evaluate.continuous_effects of these same
    networks, so they are not measured twice."""
    codes = checkpoint.latent.continuous
    alike = len({(code.prior, tuple(code.train_range)) for code in codes}) == 1
    if len(codes) != 2 or not alike or q_predicts_std(checkpoint.meta):
        return checkpoint
    if before is None:
        before = continuous_effects(checkpoint.generator, checkpoint.latent, classifier)
    swings = {a: np.array([e[f"{a}_swing"] for e in before.values()]) for a in ("slant", *MEASURES["width"])}
    rotation = code_rotation(swings["slant"], [swings[a] for a in MEASURES["width"]])
    if not np.isfinite(rotation).all():
        return checkpoint
    turned = rotate_codes(checkpoint, torch.tensor(rotation, dtype=torch.float32))
    after = continuous_effects(turned.generator, turned.latent, classifier)
    if not (named(after) >= named(before) and crosstalk(after) < crosstalk(before)):  # NaN keeps the codes
        return checkpoint
    metrics = {k: v for k, v in checkpoint.meta.get("metrics", {}).items() if not k.startswith("fid")}
    earlier = np.array(checkpoint.meta.get("code_rotation", np.eye(2)))
    meta = {
        **checkpoint.meta,
        "metrics": {**metrics, "continuous": after},
        "code_rotation": (earlier @ rotation).tolist(),
    }
    return dataclasses.replace(turned, meta=meta)


def served_effects(checkpoint: Checkpoint, classifier: MnistClassifier, trained: Effects) -> Effects:
    """What the codes do as `infogan export` serves them: turned where aligned_codes turns them,
    else `trained`, the measurements of the codes as they are. Choosing a member by its codes
    reads these, since diagonal codes can pass a test of rank correlations without showing the
    figure once turned (docs/research.md, "A stronger information term for the category")."""
    served = aligned_codes(checkpoint, classifier, trained)
    return served.meta["metrics"]["continuous"] if served is not checkpoint else trained
