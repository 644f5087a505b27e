"""Label-free selection: which member of a population learned the digit as its category.

A population trains several models that differ only in their seed; some learn the digit, others
merge two digits into categories split by style. Labels would tell them apart, but a user's data
may have none, so the criteria here read only Q's categorical head on real images:

- information: Q's mutual information between category and image, I(c; x) = H(E[p]) - E[H(p)]
  in nats over real images x (p = Q's category probabilities for one image). It is high when Q
  is certain about each image (low E[H(p)]) and uses every category equally (high H(E[p])). A
  model that splits one digit by style is less certain on the digits in between.
- agreement: how well a member's categories match the other members' on the same images (the
  best one-to-one matching, as for accuracy, averaged over the others). Members that learned the
  digit agree with each other; each merge is its own, so merged members agree less.
- codes: information first, then the continuous codes. Members that learned the digit score
  within a few thousandths of a nat of each other, far less than a merge costs, so among the
  members within NEAR_TIE of the best, one whose codes show the paper's figure (a code that
  tracks slant and another that tracks width, measured on G's own pictures) is preferred. A run
  reads the codes as its exported model serves them, turned (training.align).
- flips: as codes, but read by jitter flips, the share of real images whose category Q changes
  when the image is rotated and shifted a little (FLIP_JITTER, one fixed draw); fewest is best,
  ties within FLIPS_TIE. A member that splits a digit by slant flips it there, so this separates
  merges that information ties (docs/research.md, "Picking by jitter flips").
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import nn

from models.latent import LatentSpec
from models.metadata import CLEAR, tracking
from training.evaluate import category_logits, match_categories
from training.losses import category_information, jitter

# Information (nats) within which members count as equally good at the digit. Measured at 8
# epochs: members that learned the digit within 0.004 of each other, a 4/9 merge 0.035 below.
NEAR_TIE = 0.01
# The same for jitter flips (a share of images). Over 20 finished members of five screens, those at
# 0.97 or more flipped within 0.005 of each other in their screen; every one below 0.95 at least
# 0.009 more than its screen's fewest. A wider tie trades picks of the digit for the paper's figure.
FLIPS_TIE = 0.004
REASONS = {  # what each criterion prefers, as the run's report says it
    "information": "highest information",
    "agreement": "highest agreement with the others",
    "codes": f"highest information, or within {NEAR_TIE} nats of it with a slant code and a width code as served",
    "flips": f"fewest jitter flips, or within {FLIPS_TIE} of it with a slant code and a width code as served",
}
CRITERIA = tuple(REASONS)
READS_CODES = ("codes", "flips")  # the criteria that break near-ties by what the continuous codes do


@dataclass(frozen=True)
class MemberScores:
    information: float  # nats; at most log(categories)
    agreement: float | None  # None for a population of one
    jitter_flips: float | None = None  # a share of images; None where not read

    def as_metrics(self) -> dict[str, float | None]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 6)

        return {
            "information": rounded(self.information),
            "agreement": rounded(self.agreement),
            "jitter_flips": rounded(self.jitter_flips),
        }


def category_probabilities(
    discriminator: nn.Module, latent: LatentSpec, images: torch.Tensor, *, code: int = 0, batch_size: int = 1000
) -> torch.Tensor:
    """Q's probabilities of the categories of categorical code `code` for (N, C, H, W) images: (N, categories)."""
    return torch.softmax(category_logits(discriminator, latent, images, code=code, batch_size=batch_size), dim=1)


@dataclass(frozen=True)
class FlipJitter:
    """The jitter jitter_flips reads with (training.losses.JitterSize): the default recipe's, fixed
    here so that runs trained with another jitter are read alike."""

    jitter_degrees: float = 15.0
    jitter_pixels: float = 2.0
    jitter_shear: float = 0.0
    jitter_resample: str = "bilinear"


FLIP_JITTER = FlipJitter()


def flip_copies(images: torch.Tensor) -> torch.Tensor:
    """The jittered copies of `images` that jitter_flips compares them with: one draw, the same
    for every member and evaluation, from a generator of its own (training's draws are untouched)."""
    return jitter(images, torch.Generator().manual_seed(0), FLIP_JITTER)


def jitter_flips(probabilities: torch.Tensor, jittered_probabilities: torch.Tensor) -> float:
    """The share of images whose most probable category differs between (N, categories)
    probabilities of the images and of their jittered copies."""
    return float((probabilities.argmax(1) != jittered_probabilities.argmax(1)).float().mean())


def information(probabilities: torch.Tensor) -> float:
    """I(c; x) = H(E[p]) - E[H(p)] in nats for (N, categories) probabilities."""
    return float(category_information(probabilities))


def pairwise_agreement(assignments: list[torch.Tensor], categories: int) -> torch.Tensor:
    """(M, M): for two members' (N,) category assignments of the same images, the share of
    images they put in matching categories, under the best one-to-one matching of categories."""
    shares = torch.eye(len(assignments))
    for i, mine in enumerate(assignments):
        for j in range(i + 1, len(assignments)):
            shares[i, j] = shares[j, i] = match_categories(mine, assignments[j], categories)[0]
    return shares


def agreement(assignments: list[torch.Tensor], categories: int) -> list[float]:
    """For each member's (N,) category assignment, its mean agreement with every other member's."""
    if len(assignments) < 2:
        raise ValueError("agreement needs at least two members")
    shares = pairwise_agreement(assignments, categories)
    return ((shares.sum(1) - 1) / (len(assignments) - 1)).tolist()


def score_members(
    discriminators: list[nn.Module],
    latent: LatentSpec,
    images: torch.Tensor,
    copies: torch.Tensor | None = None,
    *,
    code: int = 0,
) -> list[MemberScores]:
    """Every reading for every member, on the same real images (no labels); jitter flips against
    `copies`, the images' jittered copies (flip_copies), where given."""
    probabilities = [category_probabilities(d, latent, images, code=code) for d in discriminators]
    flips: list[float | None] = [None] * len(discriminators)
    if copies is not None:
        flips = [
            jitter_flips(p, category_probabilities(d, latent, copies, code=code))
            for d, p in zip(discriminators, probabilities, strict=True)
        ]
    agreements: list[float | None] = [None]
    if len(discriminators) > 1:
        agreements = agreement([p.argmax(1) for p in probabilities], latent.categorical[code].categories)
    return [MemberScores(information(p), a, f) for p, a, f in zip(probabilities, agreements, flips, strict=True)]


def shows_slant_and_width(effects: dict[str, dict[str, float]]) -> bool:
    """Whether one continuous code tracks slant and another width (|rho| >= CLEAR each; width by
    stroke thickness or by breadth, models.metadata.MEASURES), from the rank correlations of
    training.evaluate.continuous_effects: pixel moments, no labels."""
    return any(
        tracking(a, "slant") >= CLEAR and tracking(b, "width") >= CLEAR
        for a, b in itertools.permutations(effects.values(), 2)
    )


def choose(scores: list[MemberScores], criterion: str, effects: list[dict[str, dict[str, float]]] | None = None) -> int:
    """The member `criterion` picks: the highest information or agreement, or for "codes" and
    "flips" the best among the near-best members that show slant and width (`effects`, one per
    member; without them, or when no near-best member shows both, the best).

    Agreement needs three members to say anything: between two it is one number, the same for
    both. Smaller populations are chosen by information, as are members whose flips were not read."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(CRITERIA)}; got {criterion!r}")
    if criterion == "agreement" and len(scores) >= 3:
        return max(range(len(scores)), key=lambda k: scores[k].agreement)
    near = near_best(scores, criterion)
    if criterion in READS_CODES and effects is not None:
        return next((k for k in near if shows_slant_and_width(effects[k])), near[0])
    return near[0]


def near_best(scores: list[MemberScores], criterion: str = "codes") -> list[int]:
    """The members whose codes `criterion` reads, the best first: within FLIPS_TIE of the fewest
    jitter flips for "flips" (where every member's were read), else within NEAR_TIE nats of the
    highest information."""
    if criterion == "flips" and all(s.jitter_flips is not None for s in scores):
        readings, tie = [-s.jitter_flips for s in scores], FLIPS_TIE
    else:
        readings, tie = [s.information for s in scores], NEAR_TIE
    ranked = sorted(range(len(scores)), key=readings.__getitem__, reverse=True)
    edge = readings[ranked[0]] - tie - 1e-6  # a reading exactly at the tie counts in, whatever the float rounding
    return [k for k in ranked if readings[k] >= edge]
