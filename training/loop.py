"""The InfoGAN training loop: `train(config)` trains as a TrainConfig says.

The command line (training/train.py) parses and validates, then calls `train`; so do the tests
and benchmarks. Under torchrun every process runs `train` and DistributedDataParallel keeps the
replicas equal. A run folder holds `config.json`, `log.jsonl` (losses and metrics), `samples/` (PNG grids,
one row per category) and `checkpoint.safetensors` (the latest training checkpoint, replaced
atomically). `--resume` continues from that checkpoint and ends with the same weights as an
uninterrupted run of the same length.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from models.checkpoint import (
    Checkpoint,
    TrainingState,
    build_networks,
    load_population,
    save_checkpoint,
    save_population,
)
from models.latent import LatentBatch, LatentSpec
from models.metadata import CheckpointMeta, category_labels, rank_correlations
from models.networks import ArchConfig, Discriminator, Generator, compute_dtype, evaluating
from models.sample import render_grid, traversal_codes
from training.align import served_effects
from training.classifier import MnistClassifier, load_classifier
from training.data import load_dataset
from training.evaluate import CLASSIFIER_IMAGE, categorical_accuracy, continuous_effects
from training.export import serving_checkpoint
from training.graphs import GraphedStep
from training.losses import (
    InformationLoss,
    consistency_loss,
    discriminator_loss,
    generator_loss,
    information_loss,
    jitter,
    real_information_loss,
)
from training.options import resolve_device
from training.select import (
    CRITERIA,
    READS_CODES,
    REASONS,
    category_probabilities,
    choose,
    flip_copies,
    information,
    jitter_flips,
    near_best,
    score_members,
)

CHECKPOINT_NAME = "checkpoint.safetensors"  # the latest training checkpoint, every member
MODEL_NAME = "model.safetensors"  # the chosen member as a serving checkpoint (fp16), written at the end
BOARD_SCALARS = {
    "loss_d",
    "loss_g",
    "info_cat",
    "info_cont",
    "images_per_s",
    "categorical_accuracy",
    "information",
    "jitter_flips",
}
SELECTION_IMAGES = 10_000  # real training images the label-free criteria read
SELECTION_METRICS = ("information", "agreement", "jitter_flips", "continuous")  # logged for every member at the end
COMPILE_SETTINGS = ("auto", "on", "off")
GRAPH_SETTINGS = ("auto", "on", "off")


# Named recipes: the option values each sets; options given on the command line win. "paper" is
# Chen et al. (2016) as the authors' code ran it; "explorer", the default, adds the categorical
# consistency term (docs/research.md, "A better recipe": over 8 seeds at 8 epochs, mean accuracy 0.955
# against the paper's 0.883 over 7), in which the images whose jittered copy Q reads as another
# category count 5 times ("Where the jitter flips the category": over seeds 16-25, 0.969 against 0.935).
RECIPES: dict[str, dict[str, Any]] = {
    "paper": {"consistency": 0.0, "flipped_consistency": 0.0},
    "explorer": {"consistency": 1.0, "flipped_consistency": 4.0},
}
DEFAULT_RECIPE = "explorer"


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "mnist"
    out_dir: str = "runs/mnist"
    epochs: int = 8  # the shipped model's length; accuracy plateaus after about 5 on MNIST
    steps: int | None = None  # overrides epochs when set; a step is one D update and one G update
    batch_size: int = 128  # per process
    lr_g: float = 1e-3  # the paper's rates: G learns faster than D
    lr_d: float = 2e-4
    lr_q: float | None = None  # Q head's own rate; None: D's, as in the paper, where Q is a part of D
    beta1: float = 0.5  # DCGAN's Adam momentum, also the paper's
    beta2: float = 0.999
    # epochs at the run's end over which both rates fall linearly towards zero (pix2pix's schedule); 0: constant
    lr_decay_epochs: int = 0
    lambda_cat: float = 1.0  # paper: 1 for discrete codes
    lambda_cont: float = 1.0  # with a fixed std this is half the squared error, already small
    learn_std: bool = False  # fixed unit std, as the authors' code; True: Q also predicts a std
    info_trains_body: bool = True  # L_I also updates D's shared body, not only the Q head
    recipe: str = DEFAULT_RECIPE  # the named recipe whose values the options started from (RECIPES)
    consistency: float = RECIPES[DEFAULT_RECIPE]["consistency"]  # Q's categorical consistency on jittered reals
    early_consistency: float | None = None  # the consistency weight of the first early_epochs epochs, if different
    early_epochs: int = 0
    # extra consistency weight on the images whose jittered copy Q reads as another category (training.losses)
    flipped_consistency: float = RECIPES[DEFAULT_RECIPE]["flipped_consistency"]
    consistency_trains_body: bool = True  # the consistency term also updates D's shared body, not only Q's head
    jitter_degrees: float = 15.0  # the consistency term's copies: rotated by up to this much
    jitter_pixels: float = 2.0  # and shifted by up to this much each way
    jitter_shear: float = 0.0  # and slanted by up to this much (pixels per pixel of height)
    jitter_resample: str = "bilinear"  # how the copies are resampled: "bilinear" (blurs a little) or "nearest"
    real_information: float = 0.0  # weight of Q's I(c; x) on real images, maximised (training.losses)
    seed: int = 0  # member k of a population has seed + k
    population: int = 1  # members trained side by side in this process, differing only in their seed
    halve_after: int | None = None  # epochs; then only the better half of the population trains on
    # The label-free criterion that picks the member to export (training.select): `flips` picks the
    # member whose category a small jitter changes least, breaking near-ties towards the paper's
    # figure (docs/research.md, "Picking by jitter flips")
    select: str = "flips"
    # the exported model's continuous codes turned to slant and width where that is cleaner (training.align)
    align_codes: bool = True
    device: str = "auto"  # auto: cuda, then mps, then cpu
    # fp32: in bf16 the same seeds learned the digit less often and one collapsed (docs/research.md, "fp32
    # against bf16"); "auto" is bf16 autocast where native (models.networks.compute_dtype), "bf16"
    precision: str = "fp32"
    compile: str = "auto"  # torch.compile the networks: "on", "off"; auto: off (no gain on our CPU or an H200)
    cuda_graphs: str = "auto"  # each member's step replayed as a CUDA graph: "on", "off"; auto: where possible
    graph_streams: int = 8  # CUDA streams a population's graphs replay on, so members' small kernels overlap
    minutes: float | None = None  # stop after this much training time (evaluation and saving not counted)
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 1000
    eval_every: int | None = None  # categorical accuracy on the test split; default once per epoch
    tensorboard: bool = False  # also write TensorBoard event files to OUT/tensorboard (the optional extra)
    latent: LatentSpec = field(default_factory=LatentSpec)
    arch: ArchConfig = field(default_factory=ArchConfig)

    def __post_init__(self) -> None:
        if (self.early_consistency is None) != (self.early_epochs == 0):
            raise ValueError(
                "early consistency needs both a weight and a number of epochs (--early-consistency W "
                f"--early-epochs N), got weight {self.early_consistency} for {self.early_epochs} epochs"
            )
        if self.flipped_consistency and not (self.consistency or self.early_consistency):
            raise ValueError(
                f"--flipped-consistency {self.flipped_consistency} weights the consistency term, which is off (a "
                "consistency of 0 and no --early-consistency)"
            )
        if self.lr_decay_epochs < 0:
            raise ValueError(f"--lr-decay-epochs must be >= 0, got {self.lr_decay_epochs}")
        if self.graph_streams < 1:
            raise ValueError(f"graph_streams must be at least 1, got {self.graph_streams}")
        if self.halve_after is not None and self.population < 2:
            raise ValueError(f"halving needs a population of at least 2 (--population K), got {self.population}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        # configs from before recipes had names ran the paper's; from before the flipped weight, none
        data = {"recipe": "paper", "flipped_consistency": 0.0, **data}
        return cls(
            **{**data, "latent": LatentSpec.from_dict(data["latent"]), "arch": ArchConfig.from_dict(data["arch"])}
        )


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def train(config: TrainConfig, *, resume: bool = False) -> Path:
    """Train InfoGAN as configured; returns the path of the final training checkpoint."""
    ddp = _init_distributed(config.device)
    try:
        return _train(config, ddp, resume=resume)
    finally:
        if ddp.world_size > 1:
            dist.destroy_process_group()


@dataclass
class Member:
    """One model of a population: its seed, networks, optimisers, the views the step runs them
    through (compiled, DDP-wrapped), its latest losses and evaluation, and the step at which
    halving stopped its training, if it did (it keeps its weights and its place in the file)."""

    seed: int
    generator: Generator
    discriminator: Discriminator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    g_model: nn.Module
    d_model: nn.Module
    d_frozen: nn.Module  # D for G's step: no DDP wrapper, its weights' gradients are never needed
    evaluation: CheckpointMeta = field(default_factory=CheckpointMeta)
    losses: StepLosses | None = None
    dropped_at: int | None = None
    stream: torch.cuda.Stream | None = None  # in a graphed population: the CUDA stream it is captured and replayed on
    graphed: GraphedStep[StepBatch, StepLosses] | None = None  # the step as a CUDA graph, captured at first use
    graphed_weight: float = 0.0  # the consistency weight it was captured with

    def step(self, batch: StepBatch, config: TrainConfig, autocast_dtype: torch.dtype, graphs: bool) -> None:
        """One training step on `batch`, replayed from a CUDA graph with `graphs` (captured again
        when the consistency weight changes, which changes the step's arithmetic)."""
        if not graphs:
            self.losses = train_step(self, batch, config, autocast_dtype)
            return
        if self.graphed is None or self.graphed_weight != batch.consistency:
            self.graphed = None  # the old graph's memory goes before the new one is captured
            networks, optimizers = (self.generator, self.discriminator), (self.opt_g, self.opt_d)
            step = partial(train_step, self, config=config, autocast_dtype=autocast_dtype)
            self.graphed = GraphedStep(step, batch, networks, optimizers, stream=self.stream)
            self.graphed_weight = batch.consistency
        self.losses = self.graphed(batch)

    def checkpoint(self, config: TrainConfig) -> Checkpoint:
        optimizers = {"g": self.opt_g.state_dict(), "d": self.opt_d.state_dict()}
        meta: CheckpointMeta = {**self.evaluation, "seed": self.seed}
        if self.dropped_at is not None:
            meta["dropped_at"] = self.dropped_at
        return Checkpoint(
            config.latent, config.arch, self.generator, self.discriminator, meta, TrainingState(optimizers)
        )


@dataclass(frozen=True)
class StepBatch:
    """One member's inputs to one training step, on the device but for the noise `codes.z`, which
    G reads inside `g_input` and the losses never read, so it is neither moved nor copied."""

    real: torch.Tensor  # (B, C, H, W) real images in [-1, 1]
    g_input: torch.Tensor  # (B, input_dim): G's input for the fakes, built from `codes`
    codes: LatentBatch  # the codes the information term asks Q to recover
    jittered: torch.Tensor | None  # rotated and shifted copies of `real`, for the consistency term
    consistency: float  # that term's weight; 0 turns it off

    def tensors(self) -> list[torch.Tensor]:
        jittered = [self.jittered] if self.jittered is not None else []
        return [self.real, self.g_input, self.codes.c_cat, self.codes.c_cont, *jittered]


@dataclass
class StepLosses:
    loss_d: torch.Tensor
    loss_g: torch.Tensor
    info: InformationLoss  # G's step's

    def as_floats(self) -> dict[str, float]:
        """The losses as numbers: a device synchronisation, so only every log_every steps."""
        return {
            "loss_d": self.loss_d.item(),
            "loss_g": self.loss_g.item(),
            "info_cat": self.info.categorical.item(),
            "info_cont": self.info.continuous.item(),
        }


def _train(config: TrainConfig, ddp: Distributed, *, resume: bool) -> Path:
    if config.population < 1:
        raise ValueError(f"population must be at least 1, got {config.population}")
    if config.select not in CRITERIA:
        raise ValueError(f"select must be one of {', '.join(CRITERIA)}; got {config.select!r}")
    device = resolve_device(config.device, ddp.local_rank)
    autocast_dtype = compute_dtype(config.precision, device)
    out_dir = Path(config.out_dir)
    checkpoint_path = out_dir / CHECKPOINT_NAME
    latent = config.latent

    # Data: the whole training set on the device, so a batch is one index lookup; one copy for
    # every member of a population
    data = load_dataset(config.dataset, "train")
    images = data.images.to(device)
    test = load_dataset(config.dataset, "test") if ddp.is_main else None
    selection_copies = flip_copies(images[:SELECTION_IMAGES]) if ddp.is_main else None
    # what the continuous codes do, measured on G's pictures by our MNIST classifier where it applies
    measures_codes = ddp.is_main and tuple(images.shape[1:]) == CLASSIFIER_IMAGE
    classifier = load_classifier().to(device) if measures_codes else None
    steps_per_epoch = len(data) // (config.batch_size * ddp.world_size)
    if steps_per_epoch == 0:
        raise ValueError(f"batch size {config.batch_size} x {ddp.world_size} processes exceeds the data set")
    total_steps = config.steps if config.steps is not None else config.epochs * steps_per_epoch
    decay_steps = config.lr_decay_epochs * steps_per_epoch
    if decay_steps > total_steps:
        raise ValueError(
            f"--lr-decay-epochs {config.lr_decay_epochs} ({decay_steps} steps) is longer than the run "
            f"({total_steps} steps)"
        )
    eval_every = config.eval_every or steps_per_epoch

    # Networks, optimisers and the views the step runs them through, one set per member
    members = [build_member(config, config.seed, device, ddp)]
    check_population_fits(config.population, members[0], device)
    members += [build_member(config, config.seed + k, device, ddp) for k in range(1, config.population)]
    graphs = use_cuda_graphs(config, device, ddp)
    streams = [torch.cuda.Stream(device) for _ in range(config.graph_streams)] if graphs and len(members) > 1 else []
    for k, member in enumerate(members if streams else []):
        member.stream = streams[k % len(streams)]

    # Resume: weights, optimiser states, step, clock and latest evaluations from the checkpoint
    step, trained_before = 0, 0.0
    if resume:
        stored = load_population(checkpoint_path, device=device, with_training_state=True)
        seeds = [state.meta.get("seed", config.seed + k) for k, state in enumerate(stored)]
        if seeds != [member.seed for member in members]:
            raise ValueError(
                f"{checkpoint_path} holds members with seeds {seeds}, but the run's config.json asks for "
                f"{[member.seed for member in members]}: was the folder reused for another run?"
            )
        for member, state in zip(members, stored, strict=True):
            member.generator.load_state_dict(state.generator.state_dict())
            member.discriminator.load_state_dict(state.discriminator.state_dict())
            for name, optimizer in (("g", member.opt_g), ("d", member.opt_d)):
                optimizer.load_state_dict(state.training.optimizers[name])
                for group in optimizer.param_groups:  # whether Adam can be captured is this run's choice
                    group["capturable"] = graphs
            member.evaluation = {k: state.meta[k] for k in ("metrics", "category_labels") if k in state.meta}
            member.dropped_at = state.meta.get("dropped_at")
        step = int(stored[0].meta["step"])
        trained_before = float(stored[0].meta.get("train_seconds", 0.0))

    if ddp.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    log = RunLog(
        out_dir / "log.jsonl", enabled=ddp.is_main, tensorboard=out_dir / "tensorboard" if config.tensorboard else None
    )
    fixed_codes = traversal_codes(latent, seeds=list(range(10)))
    progress = tqdm(total=total_steps, initial=step, disable=not ddp.is_main, dynamic_ncols=True, unit="step")
    clock = TrainingClock(device, trained_before)
    started_step = step
    bookkeeping = (config.log_every, eval_every, config.sample_every, config.checkpoint_every)
    orders: dict[int, torch.Tensor] = {}  # each member's order of the current epoch
    out_of_time = False
    shown: dict[str, str] = {}  # the progress bar's latest losses and accuracy (of the first member training)

    # Loop: every member takes one D step and one G step on its own batch; bookkeeping every so
    # many steps
    while step < total_steps and not out_of_time:
        epoch, index = divmod(step, steps_per_epoch)
        if config.halve_after is not None and step == config.halve_after * steps_per_epoch:
            dropped = halve(members, latent, images, step)  # every process: the same weights, the same choice
            log.write({"step": step, "dropped_members": dropped})
            if ddp.is_main:
                progress.write(f"step {step}: halving stops members {dropped} (lowest information)", file=sys.stderr)
        weight = consistency_weight(config, epoch)
        rate_scale = learning_rate_scale(step, total_steps, decay_steps)
        training = [(k, members[k]) for k in still_training(members)]
        for stream in streams:
            stream.wait_stream(torch.cuda.current_stream(device))
        for k, member in training:
            with torch.cuda.stream(member.stream) if member.stream else nullcontext():
                if k not in orders or index == 0:
                    orders[k] = epoch_order(len(data), seed=member.seed, epoch=epoch).to(device)
                real = real_batch(images, orders[k], index, config.batch_size, ddp)
                batch = step_batch(real, batch_rng(member.seed, ddp.rank, step), weight, config)
                set_learning_rates(member, config, rate_scale)  # also after a resume, from the schedule
                member.step(batch, config, autocast_dtype, graphs)
        for stream in streams:
            torch.cuda.current_stream(device).wait_stream(stream)
        step += 1
        progress.update(1)
        if config.minutes is not None and step % config.log_every == 0:
            out_of_time = _agree(clock.seconds() >= config.minutes * 60, ddp, device)
        done = step == total_steps or out_of_time
        if ddp.world_size > 1 and (step % config.checkpoint_every == 0 or done):
            for member in members:
                average_buffers(member.generator, member.discriminator)

        # Bookkeeping, on the main process only (losses are fetched every log_every steps so the
        # device is not synchronised every step), off the training clock
        if not ddp.is_main or not (done or any(step % n == 0 for n in bookkeeping)):
            continue
        with clock.paused():
            seconds = clock.seconds()
            record = {"step": step, "total_steps": total_steps, "epoch": step / steps_per_epoch, "train_s": seconds}
            for k, member in training:
                tag = {"member": k} if len(members) > 1 else {}
                if step % config.log_every == 0 or done:
                    images_seen = (step - started_step) * config.batch_size * ddp.world_size  # this member's
                    rate = images_seen / max(seconds - trained_before, 1e-9)
                    losses = member.losses.as_floats()
                    log.write({**record, **tag, **losses, "images_per_s": rate})
                    if k == training[0][0]:
                        shown.update({name: f"{value:.3f}" for name, value in losses.items()})
                if step % eval_every == 0 or done:
                    accuracy, mapping = categorical_accuracy(member.discriminator, latent, test)
                    metrics: dict[str, Any] = {"categorical_accuracy": accuracy}
                    if classifier is not None:  # when the codes take their roles, and named in live checkpoints
                        metrics["continuous"] = continuous_effects(member.generator, latent, classifier)
                    member.evaluation = {"metrics": metrics, "category_labels": category_labels(mapping)}
                    # the label-free readings beside the labelled accuracy: do they predict early?
                    probabilities = category_probabilities(member.discriminator, latent, images[:SELECTION_IMAGES])
                    jittered = category_probabilities(member.discriminator, latent, selection_copies)
                    label_free = {
                        "information": information(probabilities),
                        "jitter_flips": jitter_flips(probabilities, jittered),
                    }
                    log.write({**record, **tag, **metrics, **label_free})
                    who = f"member {k} " if len(members) > 1 else ""
                    progress.write(
                        f"step {step} ({seconds:.0f} s of training): {who}categorical accuracy {accuracy:.4f}",
                        file=sys.stderr,
                    )
                    if k == training[0][0]:
                        shown["acc"] = f"{accuracy:.3f}"
                if step % config.sample_every == 0 or done:
                    name = f"step_{step:07d}.png" if len(members) == 1 else f"step_{step:07d}_member{k}.png"
                    picture = write_sample_grid(member.generator, latent, fixed_codes, out_dir / "samples" / name)
                    log.image(picture, step, k if len(members) > 1 else None)
            progress.set_postfix(shown, refresh=False)
            meta: CheckpointMeta = {**run_metadata(config, step), "train_seconds": seconds}
            if step % config.checkpoint_every == 0 or done:
                save_population(checkpoint_path, [member.checkpoint(config) for member in members], meta)
            if done:  # after the save above, so a failing selection loses no training
                chosen = select_member(members, latent, images, selection_copies, config, classifier)
                meta["chosen_member"] = chosen
                save_population(checkpoint_path, [member.checkpoint(config) for member in members], meta)
                model = members[chosen].checkpoint(config)
                model.meta = {**meta, **model.meta}
                served = serving_checkpoint(model, classifier=classifier if config.align_codes else None)
                save_checkpoint(out_dir / MODEL_NAME, served, dtype=torch.float16)
                for k, member in enumerate(members):  # what the choice read, member by member
                    tag = {"member": k} if len(members) > 1 else {}
                    metrics = member.evaluation["metrics"]
                    read = SELECTION_METRICS if member.dropped_at is None else ("information",)  # halving read that
                    log.write(
                        {
                            **record,
                            **tag,
                            **{key: metrics.get(key) if key in read else None for key in SELECTION_METRICS},
                        }
                    )
                rotation = served.meta.get("code_rotation")
                log.write({**record, "chosen_member": chosen, "criterion": config.select, "code_rotation": rotation})
                progress.write(selection_report(members, chosen, config.select, out_dir / MODEL_NAME))
                if rotation is not None:
                    progress.write(turn_report(served))
    progress.close()
    log.close()
    return checkpoint_path


def still_training(members: list[Member]) -> list[int]:
    """The indices of the members that halving has not stopped."""
    return [k for k, member in enumerate(members) if member.dropped_at is None]


def halve(members: list[Member], latent: LatentSpec, images: torch.Tensor, step: int) -> list[int]:
    """Stop training the half of the members still training whose Q is least informative on real
    training images (H(E[p]) - E[H(p)]); returns their indices. Information this early does not
    rank the members that learned the digit, but it puts the ones that merged two digits last
    (docs/research.md, "Successive halving")."""
    training = still_training(members)
    scores = {
        k: information(category_probabilities(members[k].discriminator, latent, images[:SELECTION_IMAGES]))
        for k in training
    }
    dropped = sorted(sorted(training, key=scores.__getitem__)[: len(training) // 2])
    for k in dropped:
        members[k].dropped_at = step
        members[k].graphed = None  # its graph's memory
        members[k].evaluation.setdefault("metrics", {})["information"] = round(scores[k], 6)  # for the report
    return dropped


def select_member(
    members: list[Member],
    latent: LatentSpec,
    images: torch.Tensor,
    copies: torch.Tensor,
    config: TrainConfig,
    classifier: MnistClassifier | None,
) -> int:
    """Score the members still training (halving may have stopped some) without labels on real
    training images, record the scores in their metrics, and return the index of the member
    `config.select` picks. What their codes do comes from the evaluation of this last step; for
    "codes" and "flips", the near-best members' codes are read as the export would serve them (turned)."""
    candidates = still_training(members)
    discriminators = [members[k].discriminator for k in candidates]
    scores = score_members(discriminators, latent, images[:SELECTION_IMAGES], copies)
    for k, score in zip(candidates, scores, strict=True):
        members[k].evaluation["metrics"] = {**members[k].evaluation.get("metrics", {}), **score.as_metrics()}
    effects = [members[k].evaluation["metrics"].get("continuous") for k in candidates]
    if not all(effects):
        return candidates[choose(scores, config.select)]
    if config.select in READS_CODES and config.align_codes and classifier is not None and len(candidates) > 1:
        for i in near_best(scores, config.select):  # a few seconds each, and only the near-best
            effects[i] = served_effects(members[candidates[i]].checkpoint(config), classifier, effects[i])
    return candidates[choose(scores, config.select, effects)]


def selection_report(members: list[Member], chosen: int, criterion: str, exported: Path) -> str:
    """What the run ends with: every member's label-free scores, its accuracy where the data has
    labels, what its continuous codes do, and which member was exported and why."""
    header = f"{'member':>6} {'seed':>6} {'information':>11} {'agreement':>9} {'flips':>6} {'accuracy':>8}"
    lines = [f"{header}  continuous codes"]
    for k, member in enumerate(members):
        metrics = member.evaluation["metrics"]
        agreement, flips = (
            f"{metrics[key]:.4f}" if metrics.get(key) is not None else "-" for key in ("agreement", "jitter_flips")
        )
        codes = code_effects(metrics.get("continuous", {}))
        mark = "  <- chosen" if k == chosen else ""
        if member.dropped_at is not None:
            mark = f"  (halving stopped it at step {member.dropped_at})"
        lines.append(
            f"{k:>6} {member.seed:>6} {metrics['information']:>11.4f} {agreement:>9} {flips:>6} "
            f"{metrics.get('categorical_accuracy', float('nan')):>8.4f}  {codes}{mark}"
        )
    lines.append(f"chose member {chosen} ({REASONS[criterion]}, no labels used); serving checkpoint: {exported}")
    return "\n".join(lines)


def code_effects(effects: dict[str, dict[str, float]]) -> str:
    """Each continuous code's rank correlations with slant and with width's two measures,
    thickness and breadth (where measured), on one line."""
    return "  ".join(f"{name}: {rank_correlations(e)}" for name, e in effects.items())


def turn_report(served: Checkpoint) -> str:
    """What turning the exported model's codes did (training.align): each served code's effects."""
    codes = code_effects(served.meta["metrics"]["continuous"])
    return f"turned its continuous codes to line up with slant and width (training.align): {codes}"


def build_member(config: TrainConfig, seed: int, device: torch.device, ddp: Distributed) -> Member:
    """A fresh member: seeded so that it starts with the same weights as a lone run of `seed`
    (and on every process), in training mode, with its optimisers and step views."""
    torch.manual_seed(seed)
    generator, discriminator = build_networks(config.latent, config.arch)
    generator.to(device).train()
    discriminator.to(device).train()
    fused = device.type in ("cuda", "cpu")  # one kernel for the whole update: 1.12x a CPU step
    adam = partial(torch.optim.Adam, betas=(config.beta1, config.beta2), fused=fused)
    if use_cuda_graphs(config, device, ddp):
        adam = partial(adam, capturable=True)  # its step count stays on the device, where a graph can count
    opt_g = adam(generator.parameters(), config.lr_g)
    opt_d = adam(discriminator_groups(discriminator, config), config.lr_d)

    maybe_compile = torch.compile if use_compile(config.compile) else lambda module: module
    # G's step runs D with D's weights frozen: their gradients would be thrown away, so skipping
    # them saves a twelfth of the FLOPs of a step, and (under DDP) a gradient all-reduce
    d_frozen = maybe_compile(discriminator)
    g_model, d_model = maybe_compile(generator), d_frozen
    if ddp.world_size > 1:
        device_ids = [device.index] if device.type == "cuda" else None
        g_model = maybe_compile(DistributedDataParallel(generator, device_ids=device_ids))
        d_model = maybe_compile(DistributedDataParallel(discriminator, device_ids=device_ids))
    return Member(seed, generator, discriminator, opt_g, opt_d, g_model, d_model, d_frozen)


def consistency_weight(config: TrainConfig, epoch: int) -> float:
    """The consistency term's weight in `epoch` (from 0): early_consistency for the first
    early_epochs epochs where it is set, else consistency. The continuous codes take their roles
    in the first two epochs, the categories keep moving later (docs/research.md, "A schedule")."""
    if config.early_consistency is not None and epoch < config.early_epochs:
        return config.early_consistency
    return config.consistency


def learning_rate_scale(step: int, total_steps: int, decay_steps: int) -> float:
    """What the learning rates are multiplied by in `step` (from 0): 1 until the last `decay_steps`
    steps, then falling linearly, to 1 / decay_steps in the last step, so that every step still learns."""
    if decay_steps == 0:
        return 1.0
    return min(1.0, (total_steps - step) / decay_steps)


def discriminator_rates(config: TrainConfig) -> list[float]:
    """The base rate of each of D's optimiser groups: D's, then Q's head's where `lr_q` sets one."""
    return [config.lr_d] if config.lr_q is None else [config.lr_d, config.lr_q]


def discriminator_groups(discriminator: Discriminator, config: TrainConfig) -> list[dict[str, Any]]:
    """D's parameters as Adam's groups, at `discriminator_rates`: Q's head apart only with `lr_q` set,
    so that without it the optimiser's state stays as in checkpoints from before the option."""
    if config.lr_q is None:
        params = [list(discriminator.parameters())]
    else:
        head = list(discriminator.q_head.parameters())
        params = [[p for p in discriminator.parameters() if all(p is not h for h in head)], head]
    return [{"params": group, "lr": rate} for group, rate in zip(params, discriminator_rates(config), strict=True)]


def set_learning_rates(member: Member, config: TrainConfig, scale: float) -> None:
    for optimizer, rates in ((member.opt_g, [config.lr_g]), (member.opt_d, discriminator_rates(config))):
        for group, rate in zip(optimizer.param_groups, rates, strict=True):
            group["lr"] = rate * scale


def step_batch(real: torch.Tensor, draws: torch.Generator, weight: float, config: TrainConfig) -> StepBatch:
    """A step's inputs for a member's batch of real images: codes from `draws`, and jittered
    copies of the images when the consistency term is on (`weight` > 0). G's input is built on
    the CPU, where checking the category indices costs no wait for the device."""
    codes = config.latent.sample(config.batch_size, draws)
    g_input = config.latent.build_input(codes).to(real.device)
    codes = LatentBatch(codes.z, codes.c_cat.to(real.device), codes.c_cont.to(real.device))
    jittered = jitter(real, draws, config) if weight else None
    return StepBatch(real, g_input, codes, jittered, weight)


def train_step(member: Member, batch: StepBatch, config: TrainConfig, autocast_dtype: torch.dtype) -> StepLosses:
    """One D step and one G step of `member` on `batch`: real images, the codes of its fakes and,
    when that term is on, the jittered copies of the real images."""
    latent, device_type, use_autocast = config.latent, batch.real.device.type, autocast_dtype != torch.float32
    real, codes, consistency = batch.real, batch.codes, batch.consistency > 0
    with torch.autocast(device_type, dtype=autocast_dtype, enabled=use_autocast):
        fake = member.g_model(batch.g_input)

        # (1) Update D and Q: maximize log D(x) + log(1 - D(G(z, c))) + lambda * L_I(G, Q)
        # real and fake in one pass (batch norms still see them apart): bigger, faster matmuls
        batches = [real, fake.detach()] + ([batch.jittered] if consistency else [])
        logits, q_all = member.d_model(
            torch.cat(batches),
            detach_q=not config.info_trains_body,
            detach_last_q=consistency and not config.consistency_trains_body,
            groups=len(batches),
        )
        (real_logits, fake_logits, *_), (q_real, q_fake, *q_jittered) = (
            logits.chunk(len(batches)),
            q_all.chunk(len(batches)),
        )
        info_d = information_loss(latent, q_fake, codes, learn_std=config.learn_std)
        loss_d = discriminator_loss(real_logits.float(), fake_logits.float())
        if consistency:
            kl = consistency_loss(latent, q_real, q_jittered[0], flipped_weight=config.flipped_consistency)
            loss_d = loss_d + batch.consistency * kl
        if config.real_information:
            loss_d = loss_d + config.real_information * real_information_loss(latent, q_real)
    member.opt_d.zero_grad(set_to_none=True)
    (loss_d + info_d.weighted(config.lambda_cat, config.lambda_cont)).backward()
    member.opt_d.step()

    with torch.autocast(device_type, dtype=autocast_dtype, enabled=use_autocast):
        # (2) Update G: maximize log D(G(z, c)) + lambda * L_I(G, Q), the information term
        # pushing G to make its codes recoverable from the image
        with frozen(member.discriminator):
            fake_logits, q_fake = member.d_frozen(fake)
        info_g = information_loss(latent, q_fake, codes, learn_std=config.learn_std)
        loss_g = generator_loss(fake_logits.float())
    member.opt_g.zero_grad(set_to_none=True)
    (loss_g + info_g.weighted(config.lambda_cat, config.lambda_cont)).backward()
    member.opt_g.step()
    # detached: a loss that kept this step's autograd graph alive would keep its gradient
    # accumulators too, on the stream that made them, into the next capture's warm-up
    info = InformationLoss(info_g.categorical.detach(), info_g.continuous.detach())
    return StepLosses(loss_d.detach(), loss_g.detach(), info)


def check_population_fits(population: int, first: Member, device: torch.device) -> None:
    """Refuse a population whose weights and optimiser states alone exceed the device's free
    memory, once its first member is built: a clear message instead of an out-of-memory kill."""
    parameters = sum(p.numel() for net in (first.generator, first.discriminator) for p in net.parameters())
    needed = (population - 1) * parameters * 4 * 4  # fp32 weights, gradients, two Adam moments
    free = free_memory(device)
    if free is not None and needed > free:
        raise ValueError(
            f"population {population} needs at least {needed / 2**30:.1f} GiB more for weights and optimiser "
            f"states ({parameters / 1e6:.1f} M parameters a member), {device} has {free / 2**30:.1f} GiB free"
        )


def free_memory(device: torch.device) -> int | None:
    """Bytes that `device` can still give, where that can be known: CUDA's free memory, or on a
    Linux CPU MemAvailable (free memory plus the page cache the kernel can reclaim)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    meminfo = Path("/proc/meminfo")
    if device.type == "cpu" and meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # reported in kB
    return None


@contextmanager
def frozen(module: torch.nn.Module) -> Iterator[None]:
    """Run `module` without recording gradients for its weights; gradients still flow through it."""
    module.requires_grad_(False)
    try:
        yield
    finally:
        module.requires_grad_(True)


class TrainingClock:
    """Seconds of training, bookkeeping excluded, carried over from the runs this one resumes.

    On CUDA the device is synchronised when the clock is read or paused (every log_every steps),
    so queued work counts where it was queued."""

    def __init__(self, device: torch.device, seconds_before: float = 0.0) -> None:
        self.device, self.seconds_before = device, seconds_before
        self.started, self.paused_for = time.perf_counter(), 0.0

    def seconds(self) -> float:
        self._sync()
        return self.seconds_before + time.perf_counter() - self.started - self.paused_for

    @contextmanager
    def paused(self) -> Iterator[None]:
        self._sync()
        pause = time.perf_counter()
        try:
            yield
        finally:
            self.paused_for += time.perf_counter() - pause

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def auto_population(device: torch.device, world_size: int) -> tuple[int, int | None]:
    """`--population auto`: how many members to train on this device, and after how many epochs
    to halve them. On one GPU a member's step is bound by the host, so 16 members cost little
    more than one, and halving after epoch 2 picked 0.981 in 115 s on an H200 (docs/research.md, "The default
    on a GPU, in fp32"). On a CPU every member costs its own time: four, the less informative two
    stopped after epoch 2, which costs 2.5 full runs; in replays of both fp32 sets the pick reached
    0.95 in 97% of subsets, where three halved (2.25 runs) missed it in 6% on the CPU's members
    (docs/research.md, "Four halved, not three"). Under torchrun the processes share one member."""
    if world_size > 1:
        return 1, None
    if device.type == "cuda":
        return 16, 2
    return 4, 2


def use_compile(setting: str) -> bool:
    """Whether to torch.compile the networks: only when asked. It was measured no faster on both
    devices we had: on our CPU 599 against 675 images/s after 12-34 s of compiling, on an H200
    72 against 77 member-steps/s after about 29 s (docs/research.md, "On a GPU, before CUDA graphs")."""
    if setting not in COMPILE_SETTINGS:
        raise ValueError(f"compile must be one of {', '.join(COMPILE_SETTINGS)}; got {setting!r}")
    return setting == "on"


def use_cuda_graphs(config: TrainConfig, device: torch.device, ddp: Distributed) -> bool:
    """Whether each member's step is captured as a CUDA graph: `auto` wherever it can be, that is
    on a CUDA device, in one process (DDP's gradient hooks are not captured), without
    torch.compile (which would capture its own) and with constant learning rates (a graph keeps the
    rate it was captured with)."""
    if config.cuda_graphs not in GRAPH_SETTINGS:
        raise ValueError(f"cuda_graphs must be one of {', '.join(GRAPH_SETTINGS)}; got {config.cuda_graphs!r}")
    possible = device.type == "cuda" and ddp.world_size == 1 and not use_compile(config.compile)
    possible = possible and not config.lr_decay_epochs
    if config.cuda_graphs == "on" and not possible:
        raise ValueError(
            f"CUDA graphs (--cuda-graphs on) need a CUDA device, one process, --compile off and no --lr-decay-epochs; "
            f"this run has device {device}, {ddp.world_size} process(es), --compile {config.compile} and "
            f"--lr-decay-epochs {config.lr_decay_epochs}"
        )
    return config.cuda_graphs != "off" and possible


def _agree(flag: bool, ddp: Distributed, device: torch.device) -> bool:
    """True on every process when it is true on any, so all stop at the same step."""
    if ddp.world_size == 1:
        return flag
    value = torch.tensor(float(flag), device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def average_buffers(*modules: torch.nn.Module) -> None:
    """Average BatchNorm running statistics over the replicas. DDP keeps the parameters equal,
    but each process updates its own running statistics on its own shard after the last
    broadcast; averaging makes every replica (and the checkpoint) the same model."""
    for module in modules:
        for buffer in module.buffers():
            if buffer.is_floating_point():
                dist.all_reduce(buffer)
                buffer /= dist.get_world_size()


def run_metadata(config: TrainConfig, step: int) -> CheckpointMeta:
    image = {"channels": config.arch.image_channels, "height": config.arch.image_size, "width": config.arch.image_size}
    return {
        "dataset": config.dataset,
        "image": image,
        "step": step,
        "train_config": config.to_dict(),
        "q_predicts_std": config.learn_std,
    }


def batch_rng(seed: int, rank: int, step: int) -> torch.Generator:
    """The generator for one step's noise and codes: a function of (seed, rank, step) alone, so
    a resumed run draws exactly what the uninterrupted run would have, with no state to save."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + rank) * 1_000_000_007 + step) % 2**63)


def epoch_order(size: int, *, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of an epoch, a function of (seed, epoch) alone so that every process
    agrees on it and a resumed run needs no saved sampler state."""
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def real_batch(
    images: torch.Tensor, order: torch.Tensor, index: int, batch_size: int, ddp: Distributed
) -> torch.Tensor:
    """This process's share of the epoch's `index`-th batch: the processes take consecutive
    slices of the epoch's order, so together they see each image once per epoch."""
    start = (index * ddp.world_size + ddp.rank) * batch_size
    return images[order[start : start + batch_size]]


def write_sample_grid(generator: torch.nn.Module, latent: LatentSpec, codes: LatentBatch, path: Path) -> bytes:
    """A progress grid from fixed codes (a row per category), so grids of different steps compare;
    written whole (a reader such as the explorer never sees half a file). Returns the PNG."""
    rows = latent.categorical[0].categories if latent.categorical else 1
    with evaluating(generator):  # running BatchNorm statistics, restored to training mode after
        picture = render_grid(generator, latent, codes, rows=rows, scale=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(picture)
    partial.replace(path)
    return picture


class RunLog:
    """Appends one JSON object per line; flushed at once so a killed run keeps its history. With
    `tensorboard` (a folder), the figures and sample grids also go to TensorBoard event files."""

    def __init__(self, path: Path, *, enabled: bool, tensorboard: Path | None = None) -> None:
        self.path = path
        self.enabled = enabled
        self.board = None
        if enabled and tensorboard is not None:
            from torch.utils.tensorboard import SummaryWriter  # the optional extra: imported only when asked for

            self.board = SummaryWriter(str(tensorboard), flush_secs=10)

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as handle:
            handle.write(json.dumps({"time": time.time(), **record}) + "\n")
        if self.board is not None:
            prefix = f"member{record['member']}/" if "member" in record else ""
            for key in BOARD_SCALARS.intersection(record):
                self.board.add_scalar(prefix + key, record[key], record["step"])

    def image(self, png: bytes, step: int, member: int | None = None) -> None:
        """A sample grid, for TensorBoard's Images tab."""
        if self.board is not None:
            pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"))  # (H, W)
            self.board.add_image("samples" if member is None else f"member{member}/samples", pixels[None], step)

    def close(self) -> None:
        if self.board is not None:
            self.board.close()


def _init_distributed(device: str) -> Distributed:
    """Join the process group that torchrun describes in the environment, if any."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_nccl = device in ("auto", "cuda") and torch.cuda.is_available()
    if use_nccl:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if use_nccl else "gloo")
    return Distributed(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank)
