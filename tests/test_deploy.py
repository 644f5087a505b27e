"""docker-compose.yml and the Dockerfile, checked without Docker: what they name and run fits together.
(tests/test_service_process.py runs their explorer command.)"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from service_helpers import REPO, compose, dockerfile_command, venv_executable

EXPLORER = compose()["services"]["explorer"]
TRAIN = compose()["services"]["train"]


def train_steps() -> list[list[str]]:
    """The train service's shell command, split into its `&&`-chained commands."""
    program, flag, script = TRAIN["command"]
    assert (program, flag) == ("sh", "-c")
    return [shlex.split(step) for step in script.split("&&")]


def test_explorer_runs_the_image_command_on_port_8000() -> None:
    assert EXPLORER["command"] == dockerfile_command() == [
        "uvicorn", "backend.app:app", "--host", "0.0.0.0", "--port", "8000"
    ]  # fmt: skip
    assert EXPLORER["ports"] == ["8000:8000"]


def test_explorer_health_is_checked_on_healthz() -> None:
    assert EXPLORER["healthcheck"]["test"][0] == "CMD"
    assert "http://127.0.0.1:8000/healthz" in " ".join(EXPLORER["healthcheck"]["test"])


def test_explorer_serves_the_shipped_model_and_the_volume() -> None:
    folders = EXPLORER["environment"]["INFOGAN_CHECKPOINT_DIR"].split(":")
    assert folders == ["/app/models/pretrained", "/data/checkpoints"]
    assert "checkpoints:/data/checkpoints" in EXPLORER["volumes"]
    assert "checkpoints" in compose()["volumes"]


def test_train_runs_under_its_profile_on_an_nvidia_gpu() -> None:
    assert TRAIN["profiles"] == ["train"]
    (device,) = TRAIN["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "cu" in TRAIN["build"]["args"]["TORCH_INDEX"]  # a CUDA torch wheel, unlike the explorer's


def test_train_exports_into_the_volume_the_explorer_serves() -> None:
    train, evaluate, export = train_steps()
    assert train[:2] == ["infogan", "train"] and evaluate[:2] == ["infogan", "evaluate"]
    run = Path(train[train.index("--out") + 1])
    assert export[:2] == ["infogan", "export"]
    assert Path(evaluate[2]) == Path(export[2]) == run / "checkpoint.safetensors"
    target = Path(export[3])
    assert target.parent == Path("/data/checkpoints") and "checkpoints:/data/checkpoints" in TRAIN["volumes"]
    assert target.stem != "mnist"  # the shipped model keeps its name; the first folder would win


def test_the_train_command_parses(tmp_path: Path) -> None:
    train = train_steps()[0]
    out = train.index("--out") + 1
    train[out] = str(tmp_path / "run")  # nothing is written: --dry-run only prints the configuration
    result = subprocess.run(
        [venv_executable("infogan"), *train[1:], "--dry-run"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert '"dataset": "mnist"' in result.stdout


def test_the_image_installs_a_cpu_torch_on_python_3_11_slim() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in dockerfile
    assert "pip install torch==2.13.0 --index-url" in dockerfile and "pip install ." in dockerfile
    assert "models/pretrained" not in (REPO / ".dockerignore").read_text()  # the shipped model is baked in
