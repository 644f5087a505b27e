"""Specification of backend.settings: INFOGAN_* environment variables with sane defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError
from service_helpers import REPO

from backend.settings import Settings


def test_defaults_serve_the_repository_models_on_the_best_device() -> None:
    settings = Settings.from_env({})
    assert settings.checkpoint_dir == (REPO / "models" / "pretrained",)
    assert settings.device == "auto" and settings.max_batch > 1 and settings.value_cap >= 2


def test_values_come_from_infogan_variables() -> None:
    folders = os.pathsep.join(["/a", "/b"])
    env = {"INFOGAN_CHECKPOINT_DIR": folders, "INFOGAN_MAX_BATCH": "1", "INFOGAN_VALUE_CAP": "2.5", "OTHER": "x"}
    settings = Settings.from_env(env)
    assert settings.checkpoint_dir == (Path("/a"), Path("/b"))
    assert settings.max_batch == 1 and settings.value_cap == 2.5


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("INFOGAN_MAX_BATCH", "0"),  # a batch holds at least one row
        ("INFOGAN_QUEUE_LIMIT", "many"),  # not a number
        ("INFOGAN_MAX_WAIT_MS", "-1"),  # no waiting into the past
    ],
)
def test_a_bad_value_fails_start_up_naming_the_setting(variable: str, value: str) -> None:
    with pytest.raises(ValidationError) as error:
        Settings.from_env({variable: value})
    assert variable.removeprefix("INFOGAN_").lower() in str(error.value)


def test_the_readme_documents_every_setting() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"INFOGAN_{name.upper()}" not in readme]
    assert not missing
