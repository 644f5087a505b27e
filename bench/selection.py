"""Does a label-free criterion pick the member that learned the digit? Figures over many members.

    python bench/selection.py runs/screen/s11 runs/screen/s12 ... [--k 2 3 4] [--threshold 0.95] [--flips-tie 0.002]

Each argument is a run folder (a lone run or a population: every member counts). For every
member: categorical accuracy on the 10,000 MNIST test images (labels, for validation only), the
label-free readings of training/select.py on the first 10,000 training images (information,
agreement, jitter flips), what its continuous codes do (as trained, not turned), and its accuracy
at each evaluation in the log (does early predict late?). Then the rank correlation of each
reading with accuracy, and "keep the best of K by the criterion" (training.select.choose) over
every K-subset of the members: how often the pick reaches the threshold, the mean and worst
accuracy picked, and how often it has a slant code and a width code, against a random pick (the
subset's mean); for flips also blind to the codes, and with other ties (`--flips-tie`).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from pathlib import Path

import torch
from scipy.stats import spearmanr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere
sys.path.insert(0, str(Path(__file__).parent))

from seeds import read_log  # noqa: E402
from serve import print_header  # noqa: E402

import training.select as select  # noqa: E402
from models.checkpoint import load_population  # noqa: E402
from models.metadata import rank_correlations  # noqa: E402
from training.classifier import load_classifier  # noqa: E402
from training.data import load_dataset  # noqa: E402
from training.evaluate import categorical_accuracy, continuous_effects  # noqa: E402
from training.loop import CHECKPOINT_NAME, SELECTION_IMAGES  # noqa: E402
from training.select import (  # noqa: E402
    CRITERIA,
    FLIPS_TIE,
    MemberScores,
    category_probabilities,
    choose,
    flip_copies,
    information,
    jitter_flips,
    pairwise_agreement,
    shows_slant_and_width,
)


def best_of_k(
    rows: list[dict], pair_agreement: torch.Tensor, criterion: str, k: int, threshold: float, *, codes: bool = True
) -> dict:
    """Over every k-subset of the members: the member training.select.choose picks by `criterion`
    (agreement within the subset; without `codes`, blind to what the codes do), as the share
    reaching `threshold` in accuracy, the mean and worst accuracy picked, and the share of picks
    with a slant code and a width code."""
    picked = []
    for subset in itertools.combinations(range(len(rows)), k):
        within = pair_agreement[list(subset)][:, list(subset)]
        scores = [
            MemberScores(rows[i]["information"], float((within[j].sum() - 1) / (k - 1)), rows[i]["jitter_flips"])
            for j, i in enumerate(subset)
        ]
        effects = [rows[i]["effects"] for i in subset] if codes else None
        picked.append(rows[subset[choose(scores, criterion, effects)]])
    accuracies = [row["accuracy"] for row in picked]
    return {
        "share": sum(a >= threshold for a in accuracies) / len(picked),
        "mean": statistics.mean(accuracies),
        "worst": min(accuracies),
        "figure": sum(shows_slant_and_width(row["effects"]) for row in picked) / len(picked),
        "subsets": len(picked),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders, each with a checkpoint.safetensors")
    parser.add_argument("--k", type=int, nargs="+", default=[2, 3, 4], help="population sizes to simulate")
    parser.add_argument("--threshold", type=float, default=0.95, help="the accuracy a pick must reach")
    parser.add_argument(
        "--flips-tie", type=float, nargs="*", default=[], help=f"other ties to replay flips by (run: {FLIPS_TIE})"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    print_header()
    test, train = load_dataset("mnist", "test"), load_dataset("mnist", "train")
    real = train.images[:SELECTION_IMAGES]
    copies = flip_copies(real)
    classifier = load_classifier()
    rows = []
    for run in args.runs:
        log = read_log(run / "log.jsonl")
        for k, member in enumerate(load_population(run / CHECKPOINT_NAME)):
            accuracy, _ = categorical_accuracy(member.discriminator, member.latent, test)
            probabilities = category_probabilities(member.discriminator, member.latent, real)
            jittered = category_probabilities(member.discriminator, member.latent, copies)
            effects = continuous_effects(member.generator, member.latent, classifier)
            evaluations = [r for r in log if "categorical_accuracy" in r and r.get("member", 0) == k]
            early = [r["categorical_accuracy"] for r in evaluations]
            early_information = [r["information"] for r in evaluations if "information" in r]
            rows.append(
                {
                    "name": f"{run.parent.name}/{run.name}/{k}",
                    "seed": member.meta["seed"] if "seed" in member.meta else member.meta["train_config"]["seed"],
                    "categories": member.latent.categorical[0].categories,
                    "step": member.meta["step"],
                    "accuracy": accuracy,
                    "information": information(probabilities),
                    "jitter_flips": jitter_flips(probabilities, jittered),
                    "assignment": probabilities.argmax(1),
                    "effects": effects,
                    "early": early,
                    "early_information": early_information,
                }
            )

    pair = pairwise_agreement([row["assignment"] for row in rows], rows[0]["categories"])
    for i, row in enumerate(rows):
        row["agreement"] = float((pair[i].sum() - 1) / max(len(rows) - 1, 1))

    print()
    header = "| member | seed | steps | accuracy by evaluation | final accuracy | information | agreement | flips |"
    header += " codes: rank correlations, kept |"
    print(header + "\n| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        codes = "; ".join(
            f"{n} {rank_correlations(e)}, kept {e['identity_kept']:.2f}" for n, e in row["effects"].items()
        )
        early = " ".join(f"{a:.3f}" for a in row["early"])
        print(
            f"| {row['name']} | {row['seed']} | {row['step']} | {early} | {row['accuracy']:.4f} | "
            f"{row['information']:.4f} | {row['agreement']:.4f} | {row['jitter_flips']:.4f} | {codes} |"
        )

    accuracies = [row["accuracy"] for row in rows]
    print()
    print(
        f"{len(rows)} members: accuracy mean {statistics.mean(accuracies):.4f}, min {min(accuracies):.4f}, "
        f"max {max(accuracies):.4f}; {sum(a >= args.threshold for a in accuracies)} reach {args.threshold}"
    )
    for criterion in ("information", "agreement", "jitter_flips"):
        rho = spearmanr([row[criterion] for row in rows], accuracies).statistic
        print(f"Spearman rank correlation of {criterion} with accuracy: {rho:+.3f}")
    evaluations = min(len(row["early"]) for row in rows)
    for e in range(evaluations - 1):
        rho = spearmanr([row["early"][e] for row in rows], accuracies).statistic
        print(f"Spearman rank correlation of accuracy at evaluation {e + 1} with the final one: {rho:+.3f}")
    logged = [row for row in rows if len(row["early_information"]) == evaluations]  # logs from before have none
    for e in range(evaluations - 1 if len(logged) > 2 else 0):
        rho = spearmanr([row["early_information"][e] for row in logged], [row["accuracy"] for row in logged]).statistic
        print(
            f"Spearman rank correlation of information at evaluation {e + 1} with the final accuracy: {rho:+.3f} "
            f"({len(logged)} members)"
        )

    print()
    columns = f"share >= {args.threshold} | mean accuracy picked | worst picked | slant and width codes"
    print(f"| K | pick by | subsets | {columns} |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for k in args.k:
        if k > len(rows):
            continue
        subsets = list(itertools.combinations(range(len(rows)), k))
        random_pick = statistics.mean(statistics.mean(accuracies[i] for i in subset) for subset in subsets)
        random_figure = statistics.mean(
            statistics.mean(shows_slant_and_width(rows[i]["effects"]) for i in subset) for subset in subsets
        )
        picks = {criterion: best_of_k(rows, pair, criterion, k, args.threshold) for criterion in CRITERIA}
        picks["fewest flips, codes unread"] = best_of_k(rows, pair, "flips", k, args.threshold, codes=False)
        for tie in args.flips_tie:
            select.FLIPS_TIE = tie  # read by training.select.near_best
            try:
                picks[f"flips, ties within {tie}"] = best_of_k(rows, pair, "flips", k, args.threshold)
            finally:
                select.FLIPS_TIE = FLIPS_TIE
        for criterion, result in picks.items():
            if criterion == "agreement" and k < 3:
                continue  # between two members agreement is one number: information decides
            print(
                f"| {k} | {criterion} | {result['subsets']} | {result['share']:.3f} | {result['mean']:.4f} | "
                f"{result['worst']:.4f} | {result['figure']:.3f} |"
            )
        print(f"| {k} | random (mean of the subset) | | | {random_pick:.4f} | | {random_figure:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
