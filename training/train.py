"""`infogan train`: parse and validate the command line, then call training.loop.train.

infogan train --dataset mnist --epochs 8 --out runs/mnist      # or: python -m training.train
infogan train --out runs/mnist --resume --epochs 12            # continue, or run longer
torchrun --nproc_per_node 2 -m training.train --out runs/ddp   # same options, DistributedDataParallel
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
from pathlib import Path

import torch

from models.checkpoint import CheckpointError
from models.latent import CategoricalCode, ContinuousCode, LatentSpec
from models.networks import PRECISIONS, ArchConfig
from training.classifier import ClassifierError
from training.data import DATASETS, DataError
from training.loop import (
    COMPILE_SETTINGS,
    GRAPH_SETTINGS,
    RECIPES,
    TrainConfig,
    auto_population,
    train,
)
from training.options import (
    DefaultsHelpFormatter,
    below_one,
    device_name,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    resolve_device,
    seed_value,
)
from training.select import CRITERIA

LATENT_FLAGS = ("--noise-dim", "--noise-prior", "--categorical", "--continuous", "--continuous-prior")  # build codes
AUTO = "auto"  # --population auto: chosen by device (training.loop.auto_population)
ARCH_WIDTHS = {  # ArchConfig's widths and what they are the width of
    "g_fc": "generator's first fully connected layer",
    "g_conv": "generator's 7x7 feature map (the up-convolution halves it)",
    "d_conv": "discriminator's first convolution (the second doubles it)",
    "d_fc": "discriminator's fully connected layer",
    "q_fc": "Q head's hidden layers",
}
ARCH_FIELDS = (*ARCH_WIDTHS, "q_layers")  # the ArchConfig fields a flag sets


def build_parser() -> argparse.ArgumentParser:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="infogan train", description="Train InfoGAN.", formatter_class=DefaultsHelpFormatter
    )
    add = parser.add_argument
    add("--dataset", choices=DATASETS, default=defaults.dataset, help="training images; synthetic is for tests")
    add("--out", dest="out_dir", default=defaults.out_dir, help="run folder")
    add("--epochs", type=positive_int, default=defaults.epochs, help="passes over the training images")
    add("--steps", type=positive_int, default=None, help="total steps; overrides --epochs")
    add("--batch-size", type=positive_int, default=defaults.batch_size, help="images per step, per process")
    add("--lr-g", type=positive_float, default=defaults.lr_g, help="Adam learning rate of G")
    add("--lr-d", type=positive_float, default=defaults.lr_d, help="Adam learning rate of D (and of Q's head)")
    add("--lr-q", type=positive_float, default=None, help="Adam learning rate of Q's head, if not D's")
    add("--beta1", type=below_one, default=defaults.beta1, help="Adam's first-moment decay")
    add("--beta2", type=below_one, default=defaults.beta2, help="Adam's second-moment decay")
    add(
        "--lr-decay-epochs",
        metavar="N",
        type=non_negative_int,
        default=defaults.lr_decay_epochs,
        help="both learning rates fall linearly over the last N epochs of the run (0: constant rates)",
    )
    recipes = "; ".join(
        f"{name}: " + ", ".join(f"{_flag(k)} {v}" for k, v in values.items()) for name, values in RECIPES.items()
    )
    add(
        "--recipe", choices=RECIPES, default=defaults.recipe, help=f"named option values ({recipes}); options given win"
    )
    add("--lambda-cat", type=non_negative_float, default=defaults.lambda_cat, help="weight of L_I's categorical term")
    add("--lambda-cont", type=non_negative_float, default=defaults.lambda_cont, help="weight of L_I's continuous term")
    add("--learn-std", action="store_true", help="Q predicts a std per continuous code (else a fixed unit std)")
    add(
        "--consistency",
        type=non_negative_float,
        default=defaults.consistency,
        help="weight of a term asking Q's categories to stay put when a real image is rotated or shifted a little",
    )
    add(
        "--early-consistency",
        type=non_negative_float,
        default=None,
        help="a different consistency weight for the first --early-epochs epochs",
    )
    add("--early-epochs", type=non_negative_int, default=0, help="epochs that use --early-consistency")
    add(
        "--consistency-head-only",
        dest="consistency_trains_body",
        action="store_false",
        help="the consistency term trains only Q's head, not D's body",
    )
    add(
        "--flipped-consistency",
        type=non_negative_float,
        default=defaults.flipped_consistency,
        metavar="WEIGHT",
        help="the consistency term counts an image 1 + WEIGHT times where the jitter changes Q's category",
    )
    add(
        "--jitter-degrees",
        type=non_negative_float,
        default=defaults.jitter_degrees,
        help="the consistency term rotates real images by up to this many degrees",
    )
    add(
        "--jitter-pixels",
        type=non_negative_float,
        default=defaults.jitter_pixels,
        help="the consistency term shifts real images by up to this many pixels each way",
    )
    add(
        "--jitter-shear",
        type=non_negative_float,
        default=defaults.jitter_shear,
        help="the consistency term slants real images by a shear of up to this many pixels per pixel of height",
    )
    add(
        "--jitter-resample",
        choices=("bilinear", "nearest"),
        default=defaults.jitter_resample,
        help="how the consistency term resamples its rotated copies: bilinear blurs a stroke a little, "
        "nearest keeps its width",
    )
    add(
        "--real-information",
        type=non_negative_float,
        default=defaults.real_information,
        metavar="WEIGHT",
        help="also maximise Q's mutual information between category and real image (IMSAT's term), this weight",
    )
    add(
        "--info-head-only", dest="info_trains_body", action="store_false", help="L_I trains only Q's head, not D's body"
    )
    add("--seed", type=seed_value, default=defaults.seed, help="initial weights, data order and every random draw")
    add(
        "--population",
        type=population_size,
        default=AUTO,
        help="members trained side by side, seeds SEED, SEED+1, ...; the best by a label-free criterion is "
        "exported; auto: 16 halved after epoch 2 on a GPU, 4 halved after epoch 2 on a CPU, 1 under torchrun",
    )
    add(
        "--halve-after",
        type=positive_int,
        default=None,
        metavar="EPOCHS",
        help="after this many epochs only the half of the population with the most informative Q trains on",
    )
    add("--select", choices=CRITERIA, default=defaults.select, help="label-free criterion that picks the member")
    add(
        "--keep-codes",
        dest="align_codes",
        action="store_false",
        help="export the chosen member's continuous codes as trained, not turned to slant and width",
    )
    add(
        "--device",
        type=device_name,
        default=defaults.device,
        help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps",
    )
    add(
        "--precision",
        choices=PRECISIONS,
        default=defaults.precision,
        help="auto: bf16 autocast where native (faster, learns the digit less often)",
    )
    add(
        "--compile",
        choices=COMPILE_SETTINGS,
        default=defaults.compile,
        help="torch.compile; auto: off (measured no faster on a CPU or an H200)",
    )
    add(
        "--cuda-graphs",
        choices=GRAPH_SETTINGS,
        default=defaults.cuda_graphs,
        help="replay each member's step as a CUDA graph; auto: on a CUDA device in one process without --compile or "
        "--lr-decay-epochs",
    )
    add(
        "--graph-streams",
        type=positive_int,
        default=defaults.graph_streams,
        help="CUDA streams a population's graphs replay on (members' small kernels overlap)",
    )
    add("--minutes", type=positive_float, default=None, help="stop after this much training time")
    add("--noise-dim", type=non_negative_int, default=defaults.latent.noise_dim, help="size of the noise z")
    add("--noise-prior", choices=("uniform", "normal"), default=defaults.latent.noise_prior, help="the noise's prior")
    add("--categorical", type=positive_int, nargs="*", default=[10], help="categories per categorical code")
    add("--continuous", type=non_negative_int, default=2, help="number of continuous codes")
    add("--continuous-prior", choices=("uniform", "normal"), default="uniform", help="the continuous codes' prior")
    for name in ARCH_WIDTHS:
        flag, width = f"--{name.replace('_', '-')}", getattr(defaults.arch, name)
        add(flag, type=positive_int, default=width, help=f"width of the {ARCH_WIDTHS[name]}")
    add("--q-layers", type=non_negative_int, default=defaults.arch.q_layers, help="hidden layers in Q's head")
    add("--log-every", type=positive_int, default=defaults.log_every, help="steps between loss records")
    add("--sample-every", type=positive_int, default=defaults.sample_every, help="steps between sample grids")
    add("--checkpoint-every", type=positive_int, default=defaults.checkpoint_every, help="steps between checkpoints")
    add("--eval-every", type=positive_int, default=None, help="steps between test accuracies (default: an epoch)")
    add(
        "--tensorboard",
        action="store_true",
        help="also write the figures and sample grids as TensorBoard event files in OUT/tensorboard "
        "(needs the optional extra: pip install -e '.[tensorboard]')",
    )
    add("--resume", action="store_true", help="continue from OUT/checkpoint.safetensors")
    add("--dry-run", action="store_true", help="print the resolved config as JSON and exit")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    names = {10: "digit"}  # only a paper-style single 10-way code gets a human name
    categorical = tuple(
        CategoricalCode(n, names.get(n) if len(args.categorical) == 1 else None) for n in args.categorical
    )
    continuous = tuple(ContinuousCode(prior=args.continuous_prior, name=f"c{i + 1}") for i in range(args.continuous))
    arch = ArchConfig(**{n: getattr(args, n) for n in ARCH_FIELDS})  # both data sets are 1x28x28
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"latent", "arch"}
    values = {name: getattr(args, name) for name in fields}
    if args.population == AUTO:
        device = resolve_device("auto") if args.device == "auto" else torch.device(args.device)  # present or not
        values["population"], halve_after = auto_population(device, int(os.environ.get("WORLD_SIZE", "1")))
        if args.halve_after is None:
            values["halve_after"] = halve_after
    return TrainConfig(
        **values,
        latent=LatentSpec(
            noise_dim=args.noise_dim, noise_prior=args.noise_prior, categorical=categorical, continuous=continuous
        ),
        arch=arch,
    )


def population_size(text: str) -> int | str:
    if text == AUTO:
        return text
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer or {AUTO}, got {text}")
    return int(text)


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """The arguments, with the chosen recipe's values as the defaults of the options it sets. A
    recipe's weight on flipped images lapses with the consistency term it weights, so that
    `--consistency 0` alone turns the term off; given with the term off, it is refused."""
    recipe = parser.parse_known_args(argv)[0].recipe
    parser.set_defaults(**RECIPES[recipe])
    args = parser.parse_args(argv)
    if not (args.consistency or args.early_consistency) and not _flag_given(_flag("flipped_consistency"), argv):
        args.flipped_consistency = 0.0
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv  # parse and the resume check both read which flags were given
    parser = build_parser()
    args = parse(parser, argv)
    try:
        config = config_from_args(args)
    except ValueError as error:  # e.g. a one-way categorical code
        parser.error(str(error))
    if args.tensorboard and importlib.util.find_spec("tensorboard") is None:
        parser.error("--tensorboard needs the tensorboard package: pip install -e '.[tensorboard]'")
    if args.resume:
        config = _resumed_config(parser, config, argv)
    if args.dry_run:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    try:
        path = train(config, resume=args.resume)
    except (CheckpointError, ClassifierError, DataError, ValueError) as error:
        print(f"infogan train: error: {error}", file=sys.stderr)
        return 2
    print(f"checkpoint: {path}")
    return 0


def _resumed_config(parser: argparse.ArgumentParser, config: TrainConfig, argv: list[str]) -> TrainConfig:
    """A resumed run keeps its stored config; only its length (and the decay at its end) and
    bookkeeping may change."""
    stored = Path(config.out_dir) / "config.json"
    if not stored.is_file():
        parser.error(f"--resume: {stored} not found; is {config.out_dir!r} a run folder?")
    saved = TrainConfig.from_dict(json.loads(stored.read_text()))
    changeable = (
        "epochs",
        "steps",
        "lr_decay_epochs",
        "minutes",
        "log_every",
        "sample_every",
        "checkpoint_every",
        "eval_every",
    )
    changeable += ("device", "compile", "cuda_graphs", "graph_streams", "select", "align_codes", "tensorboard")
    fields = [
        f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("out_dir", "latent", "arch", *changeable)
    ]
    kept = [(name, getattr(config, name), getattr(saved, name)) for name in fields]
    kept += [(name, getattr(config.arch, name), getattr(saved.arch, name)) for name in ARCH_FIELDS]
    differences = [
        f"{_flag(name)} {value} differs from its {ours}"
        for name, value, ours in kept
        if value != ours and _flag_given(_flag(name), argv)
    ]
    latent_flags = [flag for flag in LATENT_FLAGS if _flag_given(flag, argv)]
    if latent_flags and config.latent != saved.latent:  # the codes are built from several flags together
        differences.append(f"{' '.join(latent_flags)} give other codes or noise than its own")
    if differences:
        parser.error(
            f"--resume keeps the run's stored configuration: {'; '.join(differences)} (only the length and its decay, "
            "bookkeeping, device, compile, graphs and how the model is chosen and exported may change)"
        )
    updates = {n: getattr(config, n) for n in changeable if _flag_given(_flag(n), argv)}
    # the folder resumed is the one named, wherever the run was started: a copied or moved run folder
    # must not write into the place it came from
    return dataclasses.replace(saved, out_dir=config.out_dir, **updates)


# The flags not named after the config field they set
FLAGS = {
    "consistency_trains_body": "--consistency-head-only",
    "info_trains_body": "--info-head-only",
    "align_codes": "--keep-codes",
}


def _flag(field: str) -> str:
    """The command-line flag that sets a TrainConfig field, as a message to the user names it."""
    return FLAGS.get(field, f"--{field.replace('_', '-')}")


def _flag_given(flag: str, argv: list[str]) -> bool:
    return any(arg == flag or arg.startswith(f"{flag}=") for arg in argv)


if __name__ == "__main__":
    sys.exit(main())
