"""What turning the continuous codes (training.align) does to each member of some checkpoints.

    python bench/align.py models/pretrained/mnist.safetensors runs/timed-default3/checkpoint.safetensors

For every member still training at the end of each training or serving checkpoint (halving's
stopped members are left out; a seed met again with the same step and accuracy is the same
run): its codes as trained and as export would serve them, measured the same way
(training.evaluate's continuous_effects, G's own pictures, our MNIST classifier): each code's
rank correlation with slant, stroke thickness (attribute "width") and breadth, the two measures
of width, and its swings of the three; the codes that get a name; the crosstalk (per code the
smaller of its slant swing and its larger width swing, summed); whether one code tracks slant
and another width (|rho| >= 0.9 each, training.select.shows_slant_and_width); and the lowest
share of sweeps that keep the digit.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from models.checkpoint import load_population  # noqa: E402
from models.metadata import clear_effect  # noqa: E402
from training.align import Effects, aligned_codes, crosstalk  # noqa: E402
from training.classifier import load_classifier  # noqa: E402
from training.evaluate import continuous_effects  # noqa: E402
from training.select import shows_slant_and_width  # noqa: E402


def describe(effects: Effects) -> str:
    """Codes, names, crosstalk, the issue's test and the digit kept, as table cells."""
    codes = ", ".join(
        f"{e['slant_spearman']:+.2f} / {e['width_spearman']:+.2f} / {e['breadth_spearman']:+.2f} "
        f"({e['slant_swing']:+.1f} / {e['width_swing']:+.1f} / {e['breadth_swing']:+.1f})"
        for e in effects.values()
    )
    names = ", ".join(clear.name if (clear := clear_effect(e)) else "-" for e in effects.values())
    kept = min(e["identity_kept"] for e in effects.values())
    both = "yes" if shows_slant_and_width(effects) else "no"
    return f"{codes} | {names} | {crosstalk(effects):.1f} | {both} | {kept:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", type=Path, nargs="+", help="training (population) or serving checkpoints")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    classifier = load_classifier()
    print(f"command: python bench/align.py {' '.join(map(str, args.checkpoints))}")
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, one thread")
    print("\ncodes: per code, rank correlation with slant / thickness / breadth (their swings)")
    columns = "named | crosstalk | slant+width | kept"
    print(f"| member | accuracy | codes as trained | {columns} | as served | {columns} | turned |")
    print("| --- | ---: |" + " --- | --- | ---: | --- | ---: |" * 2 + " --- |")
    seen: set[tuple[object, ...]] = set()  # one seed trained alike in two populations is one run
    for path in args.checkpoints:
        for k, member in enumerate(load_population(path)):
            accuracy = member.meta.get("metrics", {}).get("categorical_accuracy")
            run = (member.meta.get("seed"), member.meta.get("step"), accuracy)
            if member.meta.get("dropped_at") is not None or (run[0] is not None and run in seen):
                continue
            seen.add(run)
            trained = continuous_effects(member.generator, member.latent, classifier)
            served = aligned_codes(member, classifier, trained)  # what export writes
            turned = "yes" if served is not member else "no"
            served_effects = served.meta["metrics"]["continuous"] if served is not member else trained
            shown = f"{accuracy:.4f}" if accuracy is not None else "nan"
            print(f"| {path}#{k} | {shown} | {describe(trained)} | {describe(served_effects)} | {turned} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
