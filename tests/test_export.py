"""Specification of training.export: a training checkpoint becomes a small serving one."""

import dataclasses
from pathlib import Path

import pytest
import torch

from models.checkpoint import (
    Checkpoint,
    CheckpointError,
    TrainingState,
    build_networks,
    load_checkpoint,
    save_checkpoint,
)
from models.latent import LatentSpec
from models.networks import ArchConfig
from training.export import export, main, named_codes

SPEC = LatentSpec()
TINY = ArchConfig(name="tiny", g_fc=32, g_conv=16, d_conv=8, d_fc=32, q_fc=16)
META = {
    "dataset": "mnist",
    "step": 42,
    "metrics": {"categorical_accuracy": 0.9},
    "category_labels": {"digit": ["zero", "one"]},
}


@pytest.fixture
def training_checkpoint(tmp_path: Path) -> Path:
    """A training checkpoint after one Adam step on each network, optimizer states included."""
    torch.manual_seed(0)
    generator, discriminator = build_networks(SPEC, TINY)
    optimizers = {
        "g": torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999)),
        "d": torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999)),
    }
    x = SPEC.build_input(SPEC.sample(8, generator=torch.Generator().manual_seed(0)))
    logits, q = discriminator(generator(x))
    (logits.mean() + q.square().mean()).backward()
    for optimizer in optimizers.values():
        optimizer.step()
    training = TrainingState(optimizers={name: optimizer.state_dict() for name, optimizer in optimizers.items()})
    checkpoint = Checkpoint(SPEC, TINY, generator.eval(), discriminator.eval(), dict(META), training)
    return save_checkpoint(tmp_path / "run" / "checkpoint.safetensors", checkpoint)


@pytest.fixture
def exported(training_checkpoint: Path, tmp_path: Path) -> Path:
    """Exported with its codes as trained: the tests below are about the file, not the codes."""
    return export(training_checkpoint, tmp_path / "serve" / "model.safetensors", align=False)


def test_export_writes_the_target_and_returns_its_path(training_checkpoint: Path, tmp_path: Path) -> None:
    target = tmp_path / "serve" / "model.safetensors"

    assert export(training_checkpoint, target) == target
    assert target.is_file()


def test_exported_checkpoint_has_no_training_state(exported: Path) -> None:
    with pytest.raises(CheckpointError, match="holds no training state"):
        load_checkpoint(exported, with_training_state=True)


def test_export_stores_float16_by_default(exported: Path) -> None:
    assert load_checkpoint(exported).stored_dtype == torch.float16


def test_export_keeps_metadata(exported: Path) -> None:
    loaded = load_checkpoint(exported)

    assert loaded.meta == META
    assert loaded.latent == SPEC
    assert loaded.arch == TINY


def test_exported_file_is_smaller_than_the_training_checkpoint(training_checkpoint: Path, exported: Path) -> None:
    assert exported.stat().st_size < training_checkpoint.stat().st_size


def test_exported_generator_draws_what_the_trained_one_drew(training_checkpoint: Path, exported: Path) -> None:
    x = SPEC.build_input(SPEC.sample(4, generator=torch.Generator().manual_seed(1)))

    with torch.no_grad():
        expected = load_checkpoint(training_checkpoint).generator(x)
        got = load_checkpoint(exported).generator(x)

    torch.testing.assert_close(got, expected, atol=1e-2, rtol=0)


def test_exported_codes_are_turned_consistently_or_kept_as_trained(training_checkpoint: Path, tmp_path: Path) -> None:
    assert main([str(training_checkpoint), str(tmp_path / "kept.safetensors"), "--keep-codes", "--dtype", "fp32"]) == 0
    assert main([str(training_checkpoint), str(tmp_path / "default.safetensors"), "--dtype", "fp32"]) == 0
    trained, kept, default = (
        load_checkpoint(p)
        for p in (training_checkpoint, tmp_path / "kept.safetensors", tmp_path / "default.safetensors")
    )
    assert "code_rotation" not in kept.meta
    rotation = torch.tensor(default.meta.get("code_rotation", torch.eye(2).tolist()))  # training's codes: c = R u
    u = SPEC.sample(4, generator=torch.Generator().manual_seed(1))
    c = dataclasses.replace(u, c_cont=u.c_cont @ rotation.T)

    with torch.no_grad():
        expected = trained.generator(SPEC.build_input(c))
        torch.testing.assert_close(kept.generator(SPEC.build_input(c)), expected)
        torch.testing.assert_close(default.generator(SPEC.build_input(u)), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("flag", "dtype"),
    [
        ([], torch.float16),  # the default: half the size, enough for 8-bit pictures
        (["--dtype", "fp16"], torch.float16),
        (["--dtype", "bf16"], torch.bfloat16),
        (["--dtype", "fp32"], torch.float32),  # optimizer state dropped, weights unchanged
    ],
)
def test_main_stores_the_requested_dtype(
    training_checkpoint: Path, tmp_path: Path, flag: list[str], dtype: torch.dtype
) -> None:
    target = tmp_path / "model.safetensors"

    assert main([str(training_checkpoint), str(target), *flag]) == 0

    assert load_checkpoint(target).stored_dtype == dtype


def test_main_reports_the_written_file(
    training_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "model.safetensors"

    main([str(training_checkpoint), str(target)])

    assert f"wrote {target}" in capsys.readouterr().out


def test_main_on_a_missing_source_exits_2_naming_it_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "absent.safetensors"

    code = main([str(missing), str(tmp_path / "model.safetensors")])

    err = capsys.readouterr().err
    assert code == 2
    assert str(missing) in err
    assert "Traceback" not in err
    assert not (tmp_path / "model.safetensors").exists()


def test_main_rejects_an_unknown_dtype(
    training_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        main([str(training_checkpoint), str(tmp_path / "model.safetensors"), "--dtype", "int8"])

    assert raised.value.code == 2
    assert "--dtype" in capsys.readouterr().err


def effects(
    slant: float,
    width: float,
    swings: tuple[float, float] | None = None,
    *,
    breadth: float | None = None,
    breadth_swing: float | None = None,
) -> dict[str, float]:
    """Measured effects: rank correlations with slant and width (stroke thickness), and, where
    given, their swings and breadth's rank correlation and swing."""
    measured = {"slant_spearman": slant, "width_spearman": width, "identity_kept": 0.9}
    if swings is not None:
        measured |= {"slant_swing": swings[0], "width_swing": swings[1]}
    if breadth is not None:
        measured |= {"breadth_spearman": breadth}
    if breadth_swing is not None:
        measured |= {"breadth_swing": breadth_swing}
    return measured


def measured(continuous: dict[str, dict[str, float]]) -> Checkpoint:
    generator, discriminator = build_networks(SPEC, TINY)
    return Checkpoint(SPEC, TINY, generator, discriminator, {"metrics": {"continuous": continuous}})


@pytest.mark.parametrize(
    ("continuous", "names"),
    [
        ({"c1": effects(-0.97, 0.1), "c2": effects(0.2, -0.95)}, ("slant", "width")),  # the paper's figure
        ({"c1": effects(0.3, 0.97), "c2": effects(0.99, 0.2)}, ("width", "slant")),
        ({"c1": effects(0.99, 0.97), "c2": effects(0.1, 0.2)}, ("c1", "c2")),  # both at once: mixed, no name
        ({"c1": effects(0.92, 0.1), "c2": effects(-0.98, 0.3)}, ("c1", "slant")),  # two slants: the clearer
        ({"c1": effects(0.6, 0.4), "c2": effects(0.1, 0.85)}, ("c1", "c2")),  # nothing clear enough
        # With swings, how far decides: both codes rank both attributes, but each moves one far more
        ({"c1": effects(-0.93, 1.0, (-1.5, 5.6)), "c2": effects(-1.0, -0.83, (-5.8, -2.0))}, ("width", "slant")),
        ({"c1": effects(0.98, -1.0, (2.6, -4.3)), "c2": effects(0.99, 0.2, (4.0, 2.5))}, ("c1", "c2")),  # < 2x
        ({"c1": effects(0.7, 0.3, (6.0, 0.1)), "c2": effects(0.1, 0.2, (0.1, 0.1))}, ("c1", "c2")),  # rho too low
        # Breadth is width too: a digit that turns broad with strokes thickened only a little
        (
            {
                "c1": effects(1.0, 0.2, (5.2, 0.4), breadth=-0.5, breadth_swing=-0.6),
                "c2": effects(0.3, 0.66, (0.5, 1.5), breadth=0.99, breadth_swing=3.3),
            },
            ("slant", "width"),
        ),
        # thickness ranks steadily but moves too little beside slant; breadth moves far enough
        (
            {
                "c1": effects(0.2, 0.97, (0.8, 1.0), breadth=0.92, breadth_swing=2.0),
                "c2": effects(0.99, 0.1, (5.0, 0.2), breadth=0.1, breadth_swing=0.2),
            },
            ("width", "slant"),
        ),
        # thickness moves farther but not steadily enough (rho < 0.9); breadth names it
        (
            {
                "c1": effects(0.2, 0.85, (0.5, 3.0), breadth=0.93, breadth_swing=2.0),
                "c2": effects(0.99, 0.1, (5.0, 0.2), breadth=0.1, breadth_swing=0.2),
            },
            ("width", "slant"),
        ),
        # without swings, breadth names width when slant and thickness stay unclear
        ({"c1": effects(0.2, 0.3, breadth=0.95), "c2": effects(0.3, 0.4, breadth=0.6)}, ("width", "c2")),
        # ... and a slant code must move breadth less than half as far as slant
        (
            {
                "c1": effects(0.95, 0.2, (3.0, 0.4), breadth=0.9, breadth_swing=2.0),
                "c2": effects(0.1, 0.2, (0.1, 0.1), breadth=0.1, breadth_swing=0.1),
            },
            ("c1", "c2"),
        ),
    ],
)
def test_continuous_codes_are_named_by_their_clear_measured_effect(continuous, names) -> None:
    named = named_codes(measured(continuous))
    assert tuple(code.name for code in named.latent.continuous) == names
    assert named.meta["metrics"]["continuous"] == {
        new: continuous[old] for old, new in zip(("c1", "c2"), names, strict=True)
    }


def test_a_checkpoint_without_measurements_keeps_its_code_names() -> None:
    checkpoint = measured({})
    assert named_codes(checkpoint) is checkpoint
