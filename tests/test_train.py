"""The training loop: it learns, it resumes exactly, it runs distributed, its CLI refuses bad input."""

import dataclasses
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import training.loop as loop
from models.checkpoint import build_networks, load_checkpoint, load_population, read_metadata
from models.latent import LatentSpec
from models.networks import ArchConfig
from training.loop import RECIPES, TrainConfig, frozen, train
from training.train import main

ROOT = Path(__file__).resolve().parents[1]
SMALL = ArchConfig(g_fc=64, g_conv=32, d_conv=16, d_fc=64, q_fc=32)
SMALL_FLAGS = ["--g-fc", "64", "--g-conv", "32", "--d-conv", "16", "--d-fc", "64", "--q-fc", "32"]
# One thread and fp32 make CPU kernels bitwise reproducible between processes.
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def small_config(out_dir: Path, **changes) -> TrainConfig:
    config = TrainConfig(
        dataset="synthetic",
        out_dir=str(out_dir),
        steps=20,
        batch_size=32,
        precision="fp32",
        log_every=5,
        sample_every=10,
        checkpoint_every=10,
        latent=LatentSpec(noise_dim=16),
        arch=SMALL,
    )
    return dataclasses.replace(config, **changes)


def weights(path: Path) -> dict[str, torch.Tensor]:
    """Every member's weights (a lone run is a population of one), named by member."""
    return {
        f"{k}.{name}": value
        for k, member in enumerate(load_population(path))
        for net, module in (("g", member.generator), ("d", member.discriminator))
        for name, value in ((f"{net}.{key}", v) for key, v in module.state_dict().items())
    }


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    differing = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differing, f"weights differ: {differing[:5]}"


def loss_records(run: Path) -> list[dict]:
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [record for record in records if "loss_d" in record]


def run_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "training.train", *args]
    return subprocess.run(command, cwd=ROOT, env=SUBPROCESS_ENV, capture_output=True, text=True, **kwargs)


@torch.no_grad()
def code_recovery(checkpoint_path: Path) -> float:
    """How often Q's categorical argmax on G(z, c) equals the c that made the image."""
    checkpoint = load_checkpoint(checkpoint_path)
    codes = checkpoint.latent.sample(1000, torch.Generator().manual_seed(123))
    images = checkpoint.generator(checkpoint.latent.build_input(codes))
    logits, _, _ = checkpoint.latent.split_q_output(checkpoint.discriminator.encode(images))
    return (logits[0].argmax(dim=1) == codes.c_cat[:, 0]).float().mean().item()


def test_a_short_run_on_synthetic_data_teaches_q_to_recover_the_categorical_code(tmp_path):
    before = code_recovery(train(small_config(tmp_path / "untrained", steps=1)))
    after = code_recovery(train(small_config(tmp_path / "trained", steps=150, batch_size=64)))
    assert before < 0.3  # chance is 0.1 for 10 categories
    assert after > 0.8


def test_a_run_folder_holds_config_log_samples_and_a_checkpoint_with_metadata(tmp_path):
    path = train(small_config(tmp_path, steps=10, eval_every=5))
    assert TrainConfig.from_dict(json.loads((tmp_path / "config.json").read_text())) == small_config(
        tmp_path, steps=10, eval_every=5
    )
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss_d" in r] == [5, 10]
    assert [r["step"] for r in records if "categorical_accuracy" in r] == [5, 10]
    assert all(0 <= r["information"] <= 2.31 for r in records if "categorical_accuracy" in r)  # nats, log 10 at most
    assert all(0 <= r["jitter_flips"] <= 1 for r in records if "categorical_accuracy" in r)  # a share of images
    measured = {"slant_spearman", "width_spearman", "breadth_spearman", "identity_kept"}
    for evaluation in (r for r in records if "categorical_accuracy" in r):  # when the codes take their roles
        assert list(evaluation["continuous"]) == ["c1", "c2"]
        assert all(measured <= set(effects) for effects in evaluation["continuous"].values())
    assert (tmp_path / "samples" / "step_0000010.png").read_bytes().startswith(b"\x89PNG")
    meta = read_metadata(path)
    assert meta["step"] == 10
    assert meta["dataset"] == "synthetic"
    assert meta["q_predicts_std"] is False  # the default fixed-std continuous term
    assert 0 <= meta["metrics"]["categorical_accuracy"] <= 1
    assert sorted(int(label) for label in meta["category_labels"]) == list(range(10))


@pytest.mark.parametrize("population", [1, 2])
def test_resume_after_sigkill_ends_with_the_same_weights_as_an_uninterrupted_run(tmp_path, population):
    interrupted, uninterrupted = tmp_path / "interrupted", tmp_path / "uninterrupted"
    common = ["--dataset", "synthetic", "--batch-size", "32", "--precision", "fp32", "--noise-dim", "16", *SMALL_FLAGS]
    common += ["--checkpoint-every", "5", "--eval-every", "1000", "--sample-every", "1000"]
    common += ["--population", str(population)]

    # A run far too long to finish, killed without warning once it has checkpointed.
    process = subprocess.Popen(
        [sys.executable, "-m", "training.train", *common, "--steps", "100000", "--out", str(interrupted)],
        cwd=ROOT,
        env=SUBPROCESS_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoint = interrupted / "checkpoint.safetensors"
    deadline = time.monotonic() + 120
    while not (checkpoint.exists() and read_metadata(checkpoint)["step"] >= 10):
        assert process.poll() is None and time.monotonic() < deadline, "the run never checkpointed"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = read_metadata(checkpoint)["step"]
    assert killed_at < 100000

    total = str(killed_at + 12)  # resume and go past the kill, across checkpoints
    resumed = run_cli("--resume", "--out", str(interrupted), "--steps", total, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    straight = run_cli(*common, "--steps", total, "--out", str(uninterrupted), timeout=300)
    assert straight.returncode == 0, straight.stderr

    assert read_metadata(checkpoint)["step"] == int(total)
    assert_same_weights(weights(checkpoint), weights(uninterrupted / "checkpoint.safetensors"))


def test_two_cpu_processes_under_torchrun_keep_identical_replicas(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command += [str(ROOT / "tests" / "ddp_worker.py"), str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert_same_weights(rank0, rank1)
    initial = torch.load(tmp_path / "initial.pt", weights_only=True)
    assert any(not torch.equal(initial[k], rank0[k]) for k in initial), "training changed nothing"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "0"], "--batch-size: must be a positive integer"),
        (["--epochs", "-3"], "--epochs: must be a positive integer"),
        (["--steps", "ten"], "--steps: invalid"),
        (["--dataset", "cifar"], "--dataset: invalid choice: 'cifar'"),
        (["--precision", "fp8"], "--precision: invalid choice"),
        (["--device", "gpu"], "--device: not a device: 'gpu'"),
        (["--lr-g", "nan"], "--lr-g: must be a positive number"),
        (["--beta1", "1"], "--beta1: must be a number in [0, 1), got 1"),
        (["--seed", "-1"], "--seed: must be an integer in 0..2147483647, got -1"),
        (["--lambda-cont", "-1"], "--lambda-cont: must be a finite number >= 0"),
        (["--jitter-degrees", "-5"], "--jitter-degrees: must be a finite number >= 0"),
        (["--jitter-shear", "-0.5"], "--jitter-shear: must be a finite number >= 0"),
        (["--categorical", "1"], "at least 2 categories"),  # a one-way "code" carries no information
        (["--early-epochs", "3"], "early consistency needs both a weight and a number of epochs"),
        (["--recipe", "paper", "--flipped-consistency", "2"], "--flipped-consistency 2.0 weights the consistency"),
        (["--resume", "--out", "/nonexistent/run"], "is '/nonexistent/run' a run folder?"),
        (["--dataset", "synthetic", "--batch-size", "100000", "--steps", "1"], "exceeds the data set"),
        (["--lr-decay-epochs", "-1"], "--lr-decay-epochs: must be >= 0, got -1"),
        (["--q-layers", "-1"], "--q-layers: must be >= 0, got -1"),
        (["--dataset", "synthetic", "--steps", "10", "--lr-decay-epochs", "1"], "is longer than the run (10 steps)"),
    ],
)
def test_cli_rejects_bad_arguments_with_a_message_and_exit_code_2(args, message, tmp_path):
    result = run_cli(*args, *([] if "--out" in args else ["--out", str(tmp_path)]), timeout=120)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_dry_run_prints_the_resolved_config_and_trains_nothing(tmp_path, capsys):
    flags = ["--dataset", "synthetic", "--epochs", "3", "--jitter-pixels", "1", "--q-layers", "2"]
    argv = [*flags, "--out", str(tmp_path / "run")]
    assert main(["--dry-run", *argv]) == 0
    config = TrainConfig.from_dict(json.loads(capsys.readouterr().out))
    assert (config.dataset, config.epochs, config.jitter_pixels, config.latent) == ("synthetic", 3, 1.0, LatentSpec())
    assert config.arch.q_layers == 2
    assert not (tmp_path / "run").exists()


def test_a_recipe_sets_its_values_and_options_given_win(capsys):
    for argv, expected in [
        (["--recipe", "paper"], ("paper", 0.0, 0.0)),
        (["--recipe", "explorer"], ("explorer", 1.0, 4.0)),
        (["--recipe", "explorer", "--consistency", "0.5"], ("explorer", 0.5, 4.0)),
        (["--consistency", "0.5", "--recipe", "paper"], ("paper", 0.5, 0.0)),  # wherever the option stands
        (["--consistency", "0.5", "--flipped-consistency", "2"], ("explorer", 0.5, 2.0)),
        (["--consistency", "0"], ("explorer", 0.0, 0.0)),  # the flipped weight lapses with the term it weights
    ]:
        assert main(["--dry-run", *argv]) == 0
        config = TrainConfig.from_dict(json.loads(capsys.readouterr().out))
        assert (config.recipe, config.consistency, config.flipped_consistency) == expected
    default = TrainConfig()
    assert all(getattr(default, name) == value for name, value in RECIPES[default.recipe].items())  # a recipe


def test_a_resumed_run_keeps_its_recipe(tmp_path, capsys):
    (tmp_path / "config.json").write_text(
        json.dumps({**TrainConfig(out_dir=str(tmp_path)).to_dict(), "recipe": "paper"})
    )
    with pytest.raises(SystemExit) as exit_:
        main(["--resume", "--dry-run", "--out", str(tmp_path), "--recipe", "explorer"])
    assert exit_.value.code == 2 and "--recipe explorer differs from its paper" in capsys.readouterr().err
    legacy = TrainConfig(out_dir=str(tmp_path)).to_dict()
    del legacy["recipe"], legacy["flipped_consistency"]  # a run folder from before either option
    older = TrainConfig.from_dict(legacy)
    assert (older.recipe, older.flipped_consistency) == ("paper", 0.0)


def test_a_resume_may_change_how_the_model_is_exported_but_no_training_flag(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps(TrainConfig(out_dir=str(tmp_path)).to_dict()))
    assert main(["--resume", "--dry-run", "--out", str(tmp_path), "--keep-codes"]) == 0
    assert json.loads(capsys.readouterr().out)["align_codes"] is False
    with pytest.raises(SystemExit) as exit_:  # a flag not named after its field is checked too
        main(["--resume", "--dry-run", "--out", str(tmp_path), "--consistency-head-only"])
    assert exit_.value.code == 2 and "--consistency-head-only False differs from its True" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--q-layers", "2"], "--q-layers 2 differs from its 1"),
        (["--d-fc", "512"], "--d-fc 512 differs from its 1024"),
        (["--noise-dim", "16"], "--noise-dim give other codes or noise than its own"),
        (["--categorical", "10", "--continuous", "3"], "--categorical --continuous give other codes or noise"),
    ],
)
def test_a_resume_refuses_another_architecture_or_other_codes(tmp_path, capsys, flags, message):
    (tmp_path / "config.json").write_text(json.dumps(TrainConfig(out_dir=str(tmp_path)).to_dict()))
    assert main(["--resume", "--dry-run", "--out", str(tmp_path), "--q-layers", "1", "--categorical", "10"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["--resume", "--dry-run", "--out", str(tmp_path), *flags])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_tensorboard_gets_the_figures_and_the_sample_grids(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(small_config(tmp_path, tensorboard=True))
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert {"loss_d", "loss_g", "info_cat", "info_cont", "categorical_accuracy"} <= set(events.Tags()["scalars"])
    assert [event.step for event in events.Scalars("loss_d")] == [5, 10, 15, 20]  # as in log.jsonl
    assert [event.step for event in events.Images("samples")] == [10, 20]
    assert not (tmp_path / "samples" / ".step_0000010.png.partial").exists()  # grids are written whole


def test_tensorboard_without_its_package_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SystemExit) as exit_:
        main(["--dry-run", "--tensorboard", "--out", str(tmp_path)])
    assert exit_.value.code == 2 and "pip install -e '.[tensorboard]'" in capsys.readouterr().err


def test_a_run_folder_copied_elsewhere_resumes_there_and_leaves_the_original_alone(tmp_path):
    original, copy = tmp_path / "original", tmp_path / "copy"
    train(small_config(original, steps=10))
    shutil.copytree(original, copy)
    before = {path.name: path.read_bytes() for path in original.iterdir() if path.is_file()}

    assert main(["--resume", "--out", str(copy), "--steps", "14"]) == 0
    assert read_metadata(copy / "checkpoint.safetensors")["step"] == 14
    assert json.loads((copy / "config.json").read_text())["out_dir"] == str(copy)
    assert {path.name: path.read_bytes() for path in original.iterdir() if path.is_file()} == before


def test_a_time_limit_stops_training_and_its_clock_carries_over_a_resume(tmp_path):
    first = read_metadata(train(small_config(tmp_path, steps=100_000, minutes=0.01, log_every=2)))
    assert 0 < first["step"] < 100_000 and first["step"] % 2 == 0  # the limit is checked as losses are logged
    assert 0.6 <= first["train_seconds"] < 60
    assert 0 <= first["metrics"]["categorical_accuracy"] <= 1  # a stopped run is evaluated and saved

    resumed = small_config(tmp_path, steps=100_000, minutes=0.02, log_every=2)
    second = read_metadata(train(resumed, resume=True))
    assert second["step"] > first["step"] and second["train_seconds"] >= 1.2  # 0.6 s more, not 1.2 s more
    clock = [r["train_s"] for r in loss_records(tmp_path)]
    assert clock == sorted(clock) and clock[-1] == second["train_seconds"]


def test_evaluation_is_not_counted_as_training_time(tmp_path, monkeypatch):
    def slow_accuracy(*args, **kwargs):
        time.sleep(0.3)
        return evaluate(*args, **kwargs)

    evaluate = loop.categorical_accuracy
    monkeypatch.setattr(loop, "categorical_accuracy", slow_accuracy)
    started = time.perf_counter()
    meta = read_metadata(train(small_config(tmp_path, steps=6, eval_every=2)))
    assert meta["train_seconds"] < time.perf_counter() - started - 0.9  # three evaluations slept 0.9 s


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # torch's own
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf:UserWarning")  # dynamo's
def test_compiling_the_networks_changes_the_speed_not_the_training(tmp_path):
    eager = weights(train(small_config(tmp_path / "eager", steps=4, compile="off")))
    compiled = weights(train(small_config(tmp_path / "compiled", steps=4, compile="on")))
    assert eager.keys() == compiled.keys()
    # Fused kernels differ from eager ones in the last bits, and Adam turns a near-zero gradient
    # into a step of up to the learning rate whichever its sign: a few weights may differ by up to
    # lr (1e-3; seen: 0.16% of them by more than 1e-4), a wrong compiled graph would move most.
    moved = sum(int(((eager[k].float() - compiled[k].float()).abs() > 1e-4).sum()) for k in eager)
    assert moved <= 0.01 * sum(v.numel() for v in eager.values())
    losses = [loss_records(tmp_path / run)[-1] for run in ("eager", "compiled")]
    assert losses[0]["loss_d"] == pytest.approx(losses[1]["loss_d"], rel=1e-4)
    assert losses[0]["loss_g"] == pytest.approx(losses[1]["loss_g"], rel=1e-4)


def test_the_generator_step_passes_gradients_through_a_frozen_discriminator_without_its_own():
    """G's step needs dL/dG through D, not D's weight gradients (D's optimizer has stepped)."""
    torch.manual_seed(0)
    latent = LatentSpec(noise_dim=16)
    generator, discriminator = build_networks(latent, SMALL)
    codes = latent.sample(4, generator=torch.Generator().manual_seed(0))

    with frozen(discriminator):
        logits, q = discriminator(generator(latent.build_input(codes)))
    (logits.sum() + q.sum()).backward()

    assert all(p.grad is not None and p.grad.any() for p in generator.parameters())
    assert all(p.grad is None for p in discriminator.parameters())
    assert all(p.requires_grad for p in discriminator.parameters())  # D trains again in its own step


def test_the_consistency_term_changes_training_deterministically(tmp_path):
    plain = weights(train(small_config(tmp_path / "plain", steps=4, consistency=0.0, flipped_consistency=0.0)))
    first = weights(train(small_config(tmp_path / "first", steps=4, consistency=1.0)))
    again = weights(train(small_config(tmp_path / "again", steps=4, consistency=1.0)))
    smaller = weights(train(small_config(tmp_path / "smaller", steps=4, jitter_degrees=7.5, jitter_pixels=1.0)))
    nearest = weights(train(small_config(tmp_path / "nearest", steps=4, jitter_resample="nearest")))
    sheared = weights(train(small_config(tmp_path / "sheared", steps=4, jitter_shear=0.5)))
    unweighted = weights(train(small_config(tmp_path / "unweighted", steps=4, flipped_consistency=0.0)))
    assert_same_weights(first, again)  # jitter draws come from the step's generator, as the codes do
    for other in (plain, smaller, nearest, sheared, unweighted):  # the term, its jitter, resampling, weighting reach D
        assert any(not torch.equal(other[k], first[k]) for k in plain if ".d." in f".{k}")


def test_a_head_only_consistency_term_leaves_ds_body_as_no_term_would(tmp_path):
    """One step, so G's update (which reads D) has not yet spread the difference: D's body weights
    are those of a run without the term, Q's head's are not."""
    runs = {
        name: weights(train(small_config(tmp_path / name, steps=1, **options)))
        for name, options in [
            ("none", {"consistency": 0.0, "flipped_consistency": 0.0}),
            ("head", {"consistency": 1.0, "consistency_trains_body": False}),
            ("body", {"consistency": 1.0}),
        ]
    }
    trained = [k for k in runs["none"] if "running_" not in k and "num_batches" not in k]  # not BN statistics
    body, head = [k for k in trained if ".body." in k], [k for k in trained if ".q_head." in k]
    assert body and head
    assert all(torch.equal(runs["none"][k], runs["head"][k]) for k in body)
    assert any(not torch.equal(runs["none"][k], runs["head"][k]) for k in head)
    assert any(not torch.equal(runs["none"][k], runs["body"][k]) for k in body)


def test_an_early_consistency_weight_holds_for_its_epochs_then_gives_way(tmp_path):
    schedule = {"batch_size": 512, "consistency": 0.0, "early_consistency": 1.0, "early_epochs": 1}
    constant = {"batch_size": 512, "consistency": 1.0}  # 2048 synthetic images: an epoch is 4 steps
    for steps, same in [(4, True), (6, False)]:
        scheduled = weights(train(small_config(tmp_path / f"scheduled{steps}", steps=steps, **schedule)))
        weight_one = weights(train(small_config(tmp_path / f"constant{steps}", steps=steps, **constant)))
        assert all(torch.equal(scheduled[k], weight_one[k]) for k in scheduled) == same


def test_the_learning_rates_fall_linearly_over_the_last_epochs_and_a_resume_may_add_or_drop_the_decay(tmp_path):
    assert [loop.learning_rate_scale(step, 8, 4) for step in range(8)] == [1, 1, 1, 1, 1, 0.75, 0.5, 0.25]
    assert loop.learning_rate_scale(7, 8, 0) == 1  # no decay: constant rates

    def final_rates(run: Path) -> tuple[float, float]:
        (member,) = load_population(run / "checkpoint.safetensors", with_training_state=True)
        return tuple(member.training.optimizers[name]["param_groups"][0]["lr"] for name in ("g", "d"))

    decayed = small_config(tmp_path / "decayed", steps=8, batch_size=512, lr_decay_epochs=1)  # an epoch is 4 steps
    train(decayed)
    assert final_rates(tmp_path / "decayed") == (decayed.lr_g / 4, decayed.lr_d / 4)
    # four constant steps, resumed to eight with the decay added, train as the decayed run did:
    # the rates of steps 5-8 come from the schedule of the resumed run
    train(small_config(tmp_path / "added", steps=4, batch_size=512))
    train(dataclasses.replace(decayed, out_dir=str(tmp_path / "added")), resume=True)
    assert_same_weights(*(weights(tmp_path / run / "checkpoint.safetensors") for run in ("decayed", "added")))
    # resumed longer without the decay, the rates come from the new schedule, not the checkpoint
    train(dataclasses.replace(decayed, steps=12, lr_decay_epochs=0), resume=True)
    assert final_rates(tmp_path / "decayed") == (decayed.lr_g, decayed.lr_d)


def test_q_heads_own_rate_trains_the_head_at_that_rate_and_decays_with_the_others(tmp_path):
    base = small_config(tmp_path / "base", steps=8, batch_size=512, lr_decay_epochs=1)  # an epoch is 4 steps
    runs = {
        name: weights(train(dataclasses.replace(base, out_dir=str(tmp_path / name), lr_q=rate)))
        for name, rate in [("base", None), ("same", base.lr_d), ("faster", 5 * base.lr_d)]
    }
    assert_same_weights(runs["base"], runs["same"])  # Q's head apart at D's rate is the one-group run
    head = [k for k in runs["base"] if ".q_head." in k and "running_" not in k and "num_batches" not in k]
    assert head and any(not torch.equal(runs["base"][k], runs["faster"][k]) for k in head)
    (member,) = load_population(tmp_path / "faster" / "checkpoint.safetensors", with_training_state=True)
    d_rates = [group["lr"] for group in member.training.optimizers["d"]["param_groups"]]
    assert d_rates == [base.lr_d / 4, 5 * base.lr_d / 4]  # the last step's: a quarter of each
