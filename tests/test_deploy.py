"""docker-compose.yml and the Dockerfile, checked without Docker: what they name and run fits together.
(tests/test_service_process.py runs their explorer command; tests/test_compose.py, opt-in, builds the
image and runs the stack with a real Docker engine.)"""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import yaml
from service_helpers import REPO, compose, dockerfile_command, venv_executable

EXPLORER = compose()["services"]["explorer"]
TRAIN = compose()["services"]["train"]
DOCKERFILE = (REPO / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def unset(value: str) -> str:
    """`value` as compose interpolates it when none of its variables is set: `${NAME:-default}` -> default."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def dockerfile_arg(name: str) -> str:
    (default,) = re.findall(rf"^ARG {name}=(\S+)$", DOCKERFILE, flags=re.MULTILINE)
    return default


def train_steps() -> list[list[str]]:
    """The train service's shell command, split into its `&&`-chained commands."""
    program, flag, script = TRAIN["command"]
    assert (program, flag) == ("sh", "-c")
    return [shlex.split(step) for step in script.split("&&")]


def test_explorer_runs_the_image_command_on_port_8000() -> None:
    assert EXPLORER["command"] == dockerfile_command() == [
        "uvicorn", "backend.app:app", "--host", "0.0.0.0", "--port", "8000"
    ]  # fmt: skip
    (published,) = EXPLORER["ports"]
    assert published.endswith(":8000") and unset(published) == "127.0.0.1:8000:8000"  # loopback unless asked


def test_explorer_health_is_checked_on_healthz() -> None:
    assert EXPLORER["healthcheck"]["test"][0] == "CMD"
    assert "http://127.0.0.1:8000/healthz" in " ".join(EXPLORER["healthcheck"]["test"])


def test_explorer_serves_the_shipped_model_and_the_volume() -> None:
    folders = EXPLORER["environment"]["INFOGAN_CHECKPOINT_DIR"].split(":")
    assert folders == ["/app/models/pretrained", "/data/checkpoints"]
    assert "checkpoints:/data/checkpoints" in EXPLORER["volumes"]
    assert "checkpoints" in compose()["volumes"]


def test_explorer_watches_the_volume_the_train_service_writes_its_runs_to() -> None:
    assert "runs:/data/runs" in EXPLORER["volumes"] and "runs:/data/runs" in TRAIN["volumes"]
    assert EXPLORER["environment"]["INFOGAN_RUNS_DIR"] == "/data/runs"
    assert "--out /data/runs/" in TRAIN["command"][-1]


def test_train_runs_under_its_profile_on_an_nvidia_gpu() -> None:
    assert TRAIN["profiles"] == ["train"]
    (device,) = TRAIN["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "/whl/cu" in unset(TRAIN["build"]["args"]["TORCH_INDEX"])  # a CUDA torch wheel, unlike the explorer's


def test_the_images_take_their_torch_index_from_the_environment() -> None:
    explorer, train = EXPLORER["build"]["args"]["TORCH_INDEX"], TRAIN["build"]["args"]["TORCH_INDEX"]
    assert explorer.startswith("${TORCH_INDEX:-") and train.startswith("${TORCH_CUDA_INDEX:-")
    assert unset(explorer) == dockerfile_arg("TORCH_INDEX") == "https://download.pytorch.org/whl/cpu"
    assert unset(EXPLORER["build"]["network"]) == unset(TRAIN["build"]["network"]) == "default"


def test_the_train_image_can_compile() -> None:
    """`--compile on` works in the train image: torch.compile builds C at run time, so it has gcc."""
    assert "--compile" not in TRAIN["command"][2]  # the default, auto
    assert TRAIN["build"]["args"]["WITH_COMPILER"] == "1" and dockerfile_arg("WITH_COMPILER") == "0"
    assert 'if [ "$WITH_COMPILER" = 1 ]' in DOCKERFILE and "gcc g++" in DOCKERFILE


def test_train_exports_into_the_volume_the_explorer_serves() -> None:
    train, export, evaluate = train_steps()
    assert train[:2] == ["infogan", "train"] and evaluate[:2] == ["infogan", "evaluate"]
    run = Path(train[train.index("--out") + 1])
    assert export[:2] == ["infogan", "export"]
    assert Path(export[2]) == run / "checkpoint.safetensors"  # the member the run chose (a GPU trains 16)
    target = Path(export[3])
    assert Path(evaluate[2]) == target  # metrics go into the served file
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
    assert DOCKERFILE.startswith("#") and "FROM python:3.11-slim" in DOCKERFILE
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in DOCKERFILE
    (torch,) = [dependency for dependency in PYPROJECT["project"]["dependencies"] if dependency.startswith("torch")]
    assert f"pip install {torch} --index-url" in DOCKERFILE  # the version pyproject.toml pins


def test_dependencies_install_before_the_sources_arrive() -> None:
    """A layer keyed on pyproject.toml alone installs the dependencies; editing anything else reuses it."""
    order = ["pip install torch", "COPY pyproject.toml ./", "pip install -r", "COPY . .", "--editable ."]
    positions = [DOCKERFILE.index(step) for step in order]
    assert positions == sorted(positions)
    assert DOCKERFILE.count("COPY ") == 2 and DOCKERFILE.count("pip install") == 3


def test_the_build_context_is_an_allow_list() -> None:
    """Only the packages, the page and what `pip install --editable .` reads reach the image."""
    lines = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    packages = {pattern.rstrip("*") for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert allowed == packages | {"frontend", "pyproject.toml", PYPROJECT["project"]["readme"]}
    assert "models/pretrained" not in (REPO / ".dockerignore").read_text()  # the shipped model is baked in


class ComposeOverrideLoader(yaml.SafeLoader):
    """Reads compose's `!reset` tag (an override that removes a value) as the string "!reset"."""


ComposeOverrideLoader.add_constructor("!reset", lambda loader, node: "!reset")


def test_the_cpu_train_override_only_swaps_the_image_and_drops_the_gpu() -> None:
    override = yaml.load((REPO / "deploy" / "compose.cpu-train.yml").read_text(), Loader=ComposeOverrideLoader)
    assert override == {"services": {"train": {"build": "!reset", "deploy": "!reset", "image": EXPLORER["image"]}}}
