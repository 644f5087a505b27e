"""CUDA graphs: a step replayed from a graph trains as the eager step does, the steps a capture
warms up with leave no trace, and graphs are refused where they cannot run."""

import pytest
import torch
from test_train import assert_same_weights, run_cli, small_config, weights

from models.checkpoint import read_metadata
from training import loop
from training.graphs import undone


def member_state(member: loop.Member) -> dict[str, torch.Tensor]:
    """Weights, batch-norm statistics and both optimisers' moments and step counts."""
    state = {f"g.{k}": v for k, v in member.generator.state_dict().items()}
    state |= {f"d.{k}": v for k, v in member.discriminator.state_dict().items()}
    for name, opt in (("opt_g", member.opt_g), ("opt_d", member.opt_d)):
        for i, moments in opt.state_dict()["state"].items():
            state |= {f"{name}.{i}.{key}": value for key, value in moments.items()}
    return state


def test_steps_taken_inside_undone_leave_no_trace_even_on_a_fresh_optimiser():
    config = small_config("unused", consistency=1.0)
    cpu, one_process = torch.device("cpu"), loop.Distributed()
    images = loop.load_dataset("synthetic", "train").images[:64]

    def step(member: loop.Member, index: int) -> None:
        draws = loop.batch_rng(member.seed, 0, index)
        member.step(
            loop.step_batch(images[:32] if index % 2 else images[32:], draws, 1.0, config),
            config,
            torch.float32,
            graphs=False,
        )

    warmed, straight = (loop.build_member(config, 3, cpu, one_process) for _ in range(2))
    with undone([warmed.generator, warmed.discriminator], [warmed.opt_g, warmed.opt_d]):  # Adam has no state yet
        for index in range(2):
            step(warmed, 100 + index)
    assert warmed.opt_d.state  # created inside, so a graph captured next would not create it again
    for member in (warmed, straight):
        step(member, 0)
    with undone([warmed.generator, warmed.discriminator], [warmed.opt_g, warmed.opt_d]):  # Adam has moments now
        step(warmed, 200)
    for member in (warmed, straight):
        step(member, 1)
    assert_same_weights(member_state(warmed), member_state(straight))


def test_graphs_are_refused_where_they_cannot_run(tmp_path):
    result = run_cli("--dataset", "synthetic", "--device", "cpu", "--cuda-graphs", "on", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "CUDA graphs (--cuda-graphs on) need a CUDA device" in result.stderr and "device cpu" in result.stderr
    assert "--graph-streams: must be a positive integer" in run_cli("--graph-streams", "0").stderr


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")


@CUDA
@pytest.mark.parametrize("precision", [torch.float32, torch.bfloat16])
def test_a_step_replayed_from_a_graph_updates_a_member_as_the_eager_step_does(monkeypatch, precision):
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    config = small_config("unused", device="cuda", cuda_graphs="on")
    cuda = torch.device("cuda")
    graphed, eager = (loop.build_member(config, 3, cuda, loop.Distributed()) for _ in range(2))
    images = loop.load_dataset("synthetic", "train").images[:64].to(cuda)
    for index, weight in enumerate((0.0, 0.0, 1.0, 1.0)):  # the weight changes: a second capture
        real = images[:32] if index % 2 else images[32:]
        batch = loop.step_batch(real, loop.batch_rng(3, 0, index), weight, config)
        graphed.step(batch, config, precision, graphs=True)
        eager.step(batch, config, precision, graphs=False)
        a, b = member_state(graphed), member_state(eager)
        worst = max(a, key=lambda k: float((a[k].float() - b[k].float()).abs().max()))
        assert torch.allclose(a[worst].float(), b[worst].float(), atol=1e-5), f"step {index}: {worst} differs"


@CUDA
@pytest.mark.parametrize("streams", [1, 2])
def test_a_population_replayed_from_graphs_trains_as_the_eager_steps_do(tmp_path, monkeypatch, streams):
    """Two members on one stream or two, across a change of the consistency weight (a second capture).
    Eager GPU runs need not repeat themselves bit for bit, and a GAN amplifies a last-bit
    difference, so the eager population trains twice: graphs may differ from eager no more than
    eager differs from itself (or than 1% of the weights, when eager repeats itself)."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    settings = dict(device="cuda", steps=12, batch_size=256, population=2, early_consistency=0.0, early_epochs=1)
    runs = {
        name: weights(train_run(tmp_path / name, cuda_graphs=graphs, graph_streams=streams, **settings))
        for name, graphs in (("eager", "off"), ("eager-again", "off"), ("graphed", "on"))
    }
    total = sum(v.numel() for v in runs["eager"].values())

    def moved(a, b):  # Adam may turn a last-bit difference into a step of up to lr
        return sum(int(((a[k].float() - b[k].float()).abs() > 1e-4).sum()) for k in a)

    control, graphed = moved(runs["eager"], runs["eager-again"]), moved(runs["eager"], runs["graphed"])
    assert graphed <= max(0.01 * total, 2 * control), f"{graphed} of {total} weights moved (eager twice: {control})"


@CUDA
def test_a_checkpoint_without_graphs_resumes_with_them(tmp_path):
    """Adam's settings come back from the checkpoint; a graphed run must make it capturable again."""
    train_run(tmp_path, device="cuda", cuda_graphs="off", steps=3)
    path = loop.train(small_config(tmp_path, device="cuda", cuda_graphs="on", steps=6), resume=True)
    assert read_metadata(path)["step"] == 6


def train_run(out, **changes):
    return loop.train(small_config(out, **changes))
