"""Specification of training.cli: the `infogan` console script dispatches to its commands."""

import json

import pytest

import training.cli as cli
from training.cli import main


@pytest.mark.parametrize(
    "argv",
    [
        [],  # no command at all
        ["frobnicate"],  # a command that does not exist
        ["--dry-run", "train"],  # the command must come first
    ],
)
def test_main_without_a_known_command_exits_2_with_usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(argv)

    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith("usage: infogan {train,evaluate,export}")
    assert captured.out == ""


def test_train_dry_run_prints_the_resolved_config_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--dry-run", "--dataset", "synthetic"])

    config = json.loads(capsys.readouterr().out)
    assert code == 0
    assert config["dataset"] == "synthetic"
    assert config["latent"]["noise_dim"] == 62


@pytest.mark.parametrize("command", ["train", "evaluate", "export"])
def test_main_passes_the_remaining_arguments_to_the_command(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[list[str]] = []

    def fake(argv: list[str]) -> int:
        received.append(argv)
        return 7

    monkeypatch.setitem(cli.COMMANDS, command, fake)

    assert main([command, "a", "--b"]) == 7
    assert received == [["a", "--b"]]


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_usage_and_exits_0(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([flag]) == 0
    assert capsys.readouterr().out.startswith("usage: infogan {train,evaluate,export}")
