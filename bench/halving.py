"""What `--halve-after E` would have kept, replayed on the logs of finished runs.

    python bench/halving.py runs/consistency/s11 ... runs/explorer/s18 --k 2 3 4 --after 2 3 4 5
    python bench/halving.py runs/gpu/fp32 --k 2 3 4 --after 1 2 3 --keep 1     # a population: every member
    python bench/halving.py runs/screen/fp32 --k 3 --after 2 --select codes --measure
    python bench/halving.py runs/screen/lrq runs/screen/qdeep --k 4 --after 2 --select flips --measure
    python bench/halving.py runs/screen/default --k 2 3 4 --after 1 2 3 --select flips --halve-by flips

Each argument is the folder of a lone run, of a population trained without halving (every
member counts as a run) or of several lone runs (one subfolder each), all of one recipe, trained
to the same length with an evaluation every epoch. A member of a population trains exactly as a
lone run of its seed (a test checks the weights), and the log's `information` at each evaluation
is the score `halve` reads (the same function on the same images), so for every K-subset of the
runs this replays the population run exactly: after epoch E keep the ceil(K/2) members with the
highest information (or `--keep` of them), at the end pick among the kept by `--select` as the
run would (information; `codes`: a slant code and a width code among the near-best, from the
log's last `continuous` record; `flips`: the same among the fewest jitter flips, from the log's
last evaluation). `--halve-by flips` cuts by the fewest jitter flips instead, read off the logs
(runs that log them at every evaluation), to see whether halving should. It prints the share of
subsets whose pick reaches the threshold in accuracy, the mean and worst accuracy picked, the
share of picks with a slant code and a width code, and the training cost in member-epochs
against K full runs. No labels go into a pick; accuracy only scores it.

The logs hold the codes as trained, so without `--measure` the pick reads those, as runs did
before they read the codes as served. `--measure` reads what each member's codes do from its
checkpoint instead (the same weights as the log's last evaluation; older logs lack breadth, the
second measure of width), turned as `infogan export` serves them (training.align): the pick reads
them as a run now does, and the slant-and-width share scores the codes the user gets. It also
reads the jitter flips there, which logs from before they were logged lack.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere
sys.path.insert(0, str(Path(__file__).parent))

from screen import Member, group_members  # noqa: E402

from models.checkpoint import load_population  # noqa: E402
from training.align import Effects, served_effects  # noqa: E402
from training.classifier import load_classifier  # noqa: E402
from training.data import load_dataset  # noqa: E402
from training.evaluate import continuous_effects  # noqa: E402
from training.loop import SELECTION_IMAGES  # noqa: E402
from training.select import (  # noqa: E402
    MemberScores,
    category_probabilities,
    choose,
    flip_copies,
    jitter_flips,
    shows_slant_and_width,
)


def measured_readings(group: Path, runs: dict[str, Member]) -> dict[str, tuple[Effects, float]]:
    """For each member of `group` that trained to the end, named as in `runs` (the members read
    off the logs, "<group>/s<seed>"): what its codes do as served (turned where the export turns
    them) and its jitter flips, measured on its run's checkpoint, which must hold the weights of
    the log's last evaluation."""
    classifier = load_classifier()
    images = load_dataset("mnist", "train").images[:SELECTION_IMAGES]
    copies = flip_copies(images)
    folders = [group] if (group / "log.jsonl").is_file() else sorted(group.iterdir())
    readings: dict[str, tuple[Effects, float]] = {}
    for run in folders:
        if not (run / "log.jsonl").is_file() or not (run / "checkpoint.safetensors").is_file():
            continue
        for member in load_population(run / "checkpoint.safetensors"):
            name = f"{group}/s{member.meta.get('seed')}"
            if member.meta.get("dropped_at") is not None or name in readings or name not in runs:
                continue
            logged = runs[name].evaluations[max(runs[name].evaluations)][0]
            if member.meta.get("metrics", {}).get("categorical_accuracy") != logged:
                raise SystemExit(f"{name}: the checkpoint in {run} is not at its log's last evaluation")
            trained = continuous_effects(member.generator, member.latent, classifier)
            p, p_jittered = (category_probabilities(member.discriminator, member.latent, x) for x in (images, copies))
            readings[name] = (served_effects(member, classifier, trained), jitter_flips(p, p_jittered))
    return readings


def replay(
    runs: list[Member],
    k: int,
    after: int | None,
    keep: int | None,
    select: str,
    threshold: float,
    halve_by: str = "information",
) -> dict:
    """Over every k-subset: after epoch `after` (None: never) keep the `keep` most informative, or
    with `halve_by` "flips" the `keep` with the fewest jitter flips then (None: halve), pick among
    the kept at the last epoch by `select` (training.select.choose); the
    share of picks reaching `threshold`, their mean and worst accuracy, the share with a slant
    code and a width code (None where some run's codes are not known), the cost."""
    last = max(runs[0].evaluations)
    keep = k - k // 2 if keep is None else min(keep, k)  # halve drops the lower half, rounded down
    picked = []
    for subset in itertools.combinations(range(len(runs)), k):
        if not after:
            kept = subset
        elif halve_by == "flips":
            kept = sorted(subset, key=lambda i: runs[i].jitter_flips[after])[:keep]
        else:
            kept = sorted(subset, key=lambda i: runs[i].evaluations[after][1], reverse=True)[:keep]
        scores = [MemberScores(runs[i].evaluations[last][1], None, runs[i].jitter_flips.get(last)) for i in kept]
        picked.append(kept[choose(scores, select, [runs[i].codes for i in kept])])  # codes read by codes and flips
    accuracies = [runs[i].evaluations[last][0] for i in picked]
    known = all(run.codes is not None for run in runs)
    return {
        "share": sum(accuracy >= threshold for accuracy in accuracies) / len(accuracies),
        "mean": statistics.mean(accuracies),
        "worst": min(accuracies),
        "slant_and_width": statistics.mean(shows_slant_and_width(runs[i].codes) for i in picked) if known else None,
        "cost": (after * k + (last - after) * keep) / (last * k) if after else 1.0,
        "subsets": len(accuracies),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (a log.jsonl each) or folders of them")
    parser.add_argument("--k", type=int, nargs="+", default=[2, 3, 4], help="population sizes to replay")
    parser.add_argument("--after", type=int, nargs="+", default=[2, 3, 4], help="epochs after which to cut")
    parser.add_argument("--keep", type=int, help="members kept after the cut (default: the upper half)")
    parser.add_argument(  # agreement needs each member's categories of real images, which no log holds
        "--select",
        choices=("information", "codes", "flips"),
        default="information",  # older logs lack the flips; runs pick by flips
        help="how the last pick is made",
    )
    parser.add_argument(
        "--halve-by",
        choices=("information", "flips"),
        default="information",
        help="what the cut reads (runs read information)",
    )
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--measure", action="store_true", help="codes from the checkpoints, read as served")
    args = parser.parse_args(argv)
    if args.keep is not None and args.keep < 1:
        parser.error(f"--keep must be at least 1, got {args.keep}")
    named = {f"{path}/{name}": member for path in args.runs for name, member in group_members(path).items()}
    last = {name: max(run.evaluations) for name, run in named.items()}
    if len(set(last.values())) > 1 or max(args.after) >= min(last.values()):
        ends = ", ".join(f"{name} {epoch}" for name, epoch in last.items())
        parser.error(f"every run must be evaluated to the same last epoch, after every --after epoch; got {ends}")
    if args.measure:  # replaces the logged readings; a member halving stopped has none either way
        measured = {name: read for path in args.runs for name, read in measured_readings(path, named).items()}
        for name, run in named.items():
            run.codes = measured[name][0] if name in measured else None
            if name in measured:
                run.jitter_flips[last[name]] = measured[name][1]
    if args.select in ("codes", "flips") and any(run.codes is None for run in named.values()):
        parser.error(
            f"--select {args.select} needs every run's continuous codes (its log's last, or with --measure its "
            "checkpoint)"
        )
    if args.select == "flips" and any(last[name] not in run.jitter_flips for name, run in named.items()):
        parser.error("--select flips needs every run's jitter flips at its last evaluation (logged, or --measure)")
    if args.halve_by == "flips" and any(e not in run.jitter_flips for run in named.values() for e in args.after):
        parser.error("--halve-by flips needs every run's jitter flips logged at every --after epoch")
    runs = list(named.values())
    finals = ", ".join(f"{name} {run.evaluations[last[name]][0]:.3f}" for name, run in named.items())
    print(f"command: python bench/halving.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"final accuracy of the {len(runs)} runs: {finals}")
    cut = "halve after" if args.keep is None else f"keep {args.keep} after"
    cut += " (by flips)" if args.halve_by == "flips" else ""
    columns = f"pick >= {args.threshold} | mean picked | worst | slant and width codes | subsets"
    print(f"| K | {cut} | cost (of K full runs) | {columns} |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for k in args.k:
        for after in [None, *args.after]:
            row = replay(runs, k, after, args.keep, args.select, args.threshold, args.halve_by)
            figure = "-" if row["slant_and_width"] is None else f"{row['slant_and_width']:.2f}"
            print(
                f"| {k} | {f'epoch {after}' if after else 'never'} | {row['cost']:.2f} | {row['share']:.2f} | "
                f"{row['mean']:.4f} | {row['worst']:.4f} | {figure} | {row['subsets']} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
