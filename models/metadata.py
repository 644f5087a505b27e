"""The checkpoint's metadata keys, named once (docs/design.md, "Checkpoints").

The metadata is the JSON object in a checkpoint's safetensors header. Training writes it, the
evaluator adds metrics and category labels to it, export keeps it, and the service reads it:
this typed contract is what all four agree on. `format`, `latent`, `arch`, `optimizers` and a
population's `members` are the file format's own (models/checkpoint.py); every other key is listed here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple, TypedDict

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
    dropped_at: int  # of a population member halving stopped: the step of its weights (--halve-after)
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
# over sweeps to +-2, rank correlations of the code's value with each attribute, "<attribute>_spearman",
# and how far it moves it, "<attribute>_swing", in standard deviations of real digits). A digit
# gets wider in two ways, both in the paper's width figure: thicker strokes (attribute "width",
# the ink mass) and a broader shape ("breadth", the ink's spread with the slant taken out). A
# code that clearly does either is a width code. Metrics from before breadth was measured name
# width by the ink alone.
MEASURES = {"slant": ("slant",), "width": ("width", "breadth")}  # effect -> the attributes that measure it
ATTRIBUTES = {"slant": "slant", "width": "thickness", "breadth": "breadth"}  # attribute -> what people call it
CLEAR = 0.9  # |rho| that names an effect
DOMINANT = 2.0  # how many times as far as each attribute of the other effect the named one must move
UNCLEAR = 0.5  # without swings (metrics from before they were measured): |rho| the others must stay below


class Effect(NamedTuple):
    name: str  # "slant" or "width"
    rho: float  # the rank correlation with the attribute that showed it
    attribute: str  # which one: "slant", "width" (stroke thickness) or "breadth"


def has_numbers(measured: Any, keys: Any) -> bool:
    """Whether `measured` is a dict with a number under every one of `keys`."""
    return isinstance(measured, dict) and all(isinstance(measured.get(k), int | float) for k in keys)


def _measured(measured: dict[str, Any], attributes: Iterable[str]) -> list[str]:
    """Those of `attributes` that `measured` has a rank correlation for."""
    return [a for a in attributes if has_numbers(measured, (f"{a}_spearman",))]


def rank_correlations(measured: dict[str, Any]) -> str:
    """A code's measured rank correlations for a person: "slant +1.00, thickness -0.16, breadth +0.02"."""
    return ", ".join(f"{ATTRIBUTES[a]} {measured[f'{a}_spearman']:+.2f}" for a in _measured(measured, ATTRIBUTES))


def tracking(measured: dict[str, Any], effect: str) -> float:
    """How closely a code tracks `effect`: the largest |rho| over the attributes measured for it."""
    return max((abs(measured[f"{a}_spearman"]) for a in _measured(measured, MEASURES[effect])), default=0.0)


def clear_effect(measured: Any) -> Effect | None:
    """The effect a code clearly drives: |rho| >= CLEAR with one of its attributes, whose swing
    is at least DOMINANT times that of every attribute of the other effect (or, where swings were
    not measured, the others' |rho| < UNCLEAR). None when mixed or unmeasured."""
    if not has_numbers(measured, ("slant_spearman", "width_spearman")):
        return None

    def rho(attribute: str) -> float:
        return float(measured[f"{attribute}_spearman"])

    def swing(attribute: str) -> float:
        return abs(float(measured[f"{attribute}_swing"]))

    for effect in MEASURES:
        own = _measured(measured, MEASURES[effect])
        others = [a for other in MEASURES if other != effect for a in _measured(measured, MEASURES[other])]
        swings = has_numbers(measured, [f"{a}_swing" for a in own + others])
        # the attribute the code moves farthest first (as training.align turns it to grow), else the steadiest
        for attribute in sorted(own, key=lambda a: -(swing(a) if swings else abs(rho(a)))):
            if swings:
                alone = all(swing(attribute) >= DOMINANT * swing(o) for o in others)
            else:
                alone = all(abs(rho(o)) < UNCLEAR for o in others)
            if abs(rho(attribute)) >= CLEAR and alone:
                return Effect(effect, rho(attribute), attribute)
    return None
