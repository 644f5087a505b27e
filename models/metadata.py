"""The checkpoint's metadata keys, named once (docs/design.md, "Checkpoints").

The metadata is the JSON object in a checkpoint's safetensors header. Training writes it, the
evaluator adds metrics and category labels to it, export keeps it, and the service reads it:
this typed contract is what all four agree on. `format`, `latent`, `arch` and `optimizers` are
the file format's own (models/checkpoint.py); every other key is listed here.
"""

from __future__ import annotations

from typing import Any, TypedDict

UNMATCHED = "?"  # the label of a category that no digit was matched to (more categories than digits)


class ImageShape(TypedDict):
    channels: int
    height: int
    width: int


class CheckpointMeta(TypedDict, total=False):
    """Every key is optional: a checkpoint says what it knows, readers fall back where it is silent."""

    dataset: str  # the training data set: "mnist", "synthetic"
    image: ImageShape  # what the generator draws
    step: int  # training steps taken
    seed: int  # the model's own seed (member k of a population: train_config.seed + k)
    train_seconds: float  # the training clock, bookkeeping excluded, carried across resumes
    train_config: dict[str, Any]  # training.loop.TrainConfig as a dict: how the model was trained
    q_predicts_std: bool  # Q's head predicts a std per continuous code (else a fixed unit std)
    metrics: dict[str, Any]  # training.evaluate's figures: categorical_accuracy, continuous, fid, ...
    category_labels: list[str]  # category -> the digit it learned, UNMATCHED for none
    chosen_member: int  # of a finished population: the member the label-free criterion picked
    code_rotation: list[list[float]]  # served continuous codes u were turned: training's codes are R u (training.align)


def q_predicts_std(meta: CheckpointMeta) -> bool:
    """Whether Q's head gives a std per continuous code; checkpoints from before the key existed
    say it only in their training config."""
    if "q_predicts_std" in meta:
        return bool(meta["q_predicts_std"])
    return bool(meta.get("train_config", {}).get("learn_std", False))


def category_labels(mapping: list[int]) -> list[str]:
    """The labels for `mapping[category] = digit` (-1 where no digit matched): the one place
    that decides what a category is called."""
    return [str(digit) if digit >= 0 else UNMATCHED for digit in mapping]


# What a continuous code measurably does, from metrics["continuous"][name] (training/evaluate.py:
# over sweeps to +-2, rank correlations of the code's value with slant and with stroke width, and
# how far it moves each, in standard deviations of real digits).
EFFECTS = {"slant": "slant_spearman", "width": "width_spearman"}
SWINGS = {"slant": "slant_swing", "width": "width_swing"}
CLEAR = 0.9  # |rho| that names an effect
DOMINANT = 2.0  # how many times as far as the other attribute the named one must move
UNCLEAR = 0.5  # without swings (metrics from before they were measured): |rho| the other must stay below


def has_numbers(measured: Any, keys: Any) -> bool:
    """Whether `measured` is a dict with a number under every one of `keys`."""
    return isinstance(measured, dict) and all(isinstance(measured.get(k), int | float) for k in keys)


def clear_effect(measured: Any) -> tuple[str, float] | None:
    """("slant" or "width", its rank correlation) when a code clearly drives that one attribute:
    |rho| >= 0.9 with it, and a swing at least DOMINANT times the other attribute's (or, where
    swings were not measured, |rho| < 0.5 with the other). None when mixed or unmeasured."""
    if not has_numbers(measured, EFFECTS.values()):
        return None
    swings = has_numbers(measured, SWINGS.values())
    for effect, key in EFFECTS.items():
        others = [other for other in EFFECTS if other != effect]
        if swings:
            alone = all(abs(measured[SWINGS[effect]]) >= DOMINANT * abs(measured[SWINGS[o]]) for o in others)
        else:
            alone = all(abs(measured[EFFECTS[o]]) < UNCLEAR for o in others)
        if abs(measured[key]) >= CLEAR and alone:
            return effect, float(measured[key])
    return None
