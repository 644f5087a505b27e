"""docker-compose.yml for real: build the image, bring the stack up, train on the CPU with the `train`
profile's volumes and command, serve what it exported. Opt-in (`make compose-test`, which sets
RUN_COMPOSE_TEST=1): it needs a Docker engine with Compose v2 and takes minutes, so `make test` and CI
skip it. Build variables pass through from the environment (TORCH_INDEX, INFOGAN_BUILD_NETWORK);
the stack runs as its own compose project on a free loopback port, and its volumes are removed after."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from service_helpers import REPO, compose, free_port

pytestmark = pytest.mark.skipif(
    os.environ.get("RUN_COMPOSE_TEST") != "1", reason="opt-in: `make compose-test` (needs a Docker engine)"
)

PROJECT = "infogan-compose-test"  # never the user's own stack (infogan-explorer) or its volumes
CPU_TRAIN = REPO / "deploy" / "compose.cpu-train.yml"
PNG = b"\x89PNG\r\n\x1a\n"


def docker(*args: str, env: dict[str, str] | None = None, timeout: float = 600, check: bool = True) -> str:
    result = subprocess.run(
        ["docker", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def compose_cli(
    *args: str, env: dict[str, str], files: tuple[Path, ...] = (), timeout: float = 600, check: bool = True
) -> str:
    """`docker compose` on the repository's docker-compose.yml (plus override `files`) as PROJECT."""
    chosen = [arg for path in (REPO / "docker-compose.yml", *files) for arg in ("-f", str(path))]
    return docker("compose", "-p", PROJECT, *chosen, *args, env=env, timeout=timeout, check=check)


def engine_problem() -> str | None:
    """Why no Docker engine with Compose v2 answers here, or None."""
    try:
        docker("info", "--format", "{{.ServerVersion}}", timeout=30)
        version = docker("compose", "version", "--short", timeout=30).strip()
    except (OSError, AssertionError, subprocess.TimeoutExpired) as error:
        return f"no Docker engine with Compose v2: {error}"
    return None if version.lstrip("v").split(".")[0] == "2" else f"Compose v2 needed, found {version}"


def wait_for(url: str, names: list[str], timeout: float = 120) -> None:
    """Until /api/checkpoints lists exactly `names` (the explorer looks at its files every 2 s)."""
    deadline = time.monotonic() + timeout
    seen: object = None
    while time.monotonic() < deadline:
        try:
            seen = [entry["name"] for entry in httpx.get(f"{url}/api/checkpoints", timeout=5).json()]
            if seen == names:
                return
        except (httpx.TransportError, ValueError):
            pass
        time.sleep(1)
    raise AssertionError(f"/api/checkpoints never listed {names}; last answer: {seen}")


def generate(url: str, **fields: object) -> bytes:
    response = httpx.post(f"{url}/generate", json={"seed": 7, **fields}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png" and response.content.startswith(PNG)
    return response.content


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    problem = engine_problem()
    if problem:
        pytest.skip(problem)
    port = free_port()
    return {**os.environ, "INFOGAN_BIND": "127.0.0.1", "INFOGAN_PORT": str(port)}


@pytest.fixture(scope="module")
def url(env: dict[str, str]) -> Iterator[str]:
    """The stack of `docker compose up`, healthy, on a free loopback port."""
    compose_cli("build", "explorer", env=env, timeout=1800)
    try:
        try:
            compose_cli("up", "--detach", "--wait", "explorer", env=env, timeout=300)
        except AssertionError as error:
            logs = compose_cli("logs", "--no-color", "--tail", "50", env=env, timeout=60, check=False)
            raise AssertionError(f"{error}\nlogs:\n{logs}") from None
        yield f"http://127.0.0.1:{env['INFOGAN_PORT']}"
    finally:
        compose_cli("--profile", "train", "down", "--volumes", "--remove-orphans", env=env, timeout=300, check=False)


def test_the_stack_is_healthy_and_generates_a_png(url: str, env: dict[str, str]) -> None:
    (container,) = compose_cli("ps", "--quiet", "explorer", env=env).split()
    assert docker("inspect", "--format", "{{.State.Health.Status}}", container).strip() == "healthy"
    assert compose_cli("port", "explorer", "8000", env=env).strip() == f"127.0.0.1:{env['INFOGAN_PORT']}"
    assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
    generate(url)


def test_the_image_holds_one_copy_of_the_code_and_of_the_model(url: str, env: dict[str, str]) -> None:
    script = (
        "ls -A /app; find / -xdev -name '*.safetensors' | sort; "
        "cd / && python -c 'import backend.app, models, training; print(models.__file__, training.__file__)'"
    )
    out = compose_cli("exec", "-T", "explorer", "sh", "-c", script, env=env).split()
    assert out == [
        "README.md", "backend", "frontend", "models", "pyproject.toml", "training",  # .dockerignore's allow-list
        "/app/models/pretrained/mnist.safetensors",
        "/app/training/assets/mnist_classifier.safetensors",
        "/app/models/__init__.py", "/app/training/__init__.py",  # site-packages only links to /app
    ]  # fmt: skip


def cpu_train_command() -> str:
    """The `train` service's own command, made short and CPU-only: synthetic data, 20 small steps."""
    program, flag, script = compose()["services"]["train"]["command"]
    assert (program, flag) == ("sh", "-c")
    for old, new in [
        ("--dataset mnist", "--dataset synthetic"),
        ("--epochs 12", "--steps 20 --batch-size 32"),
        ("--device cuda", "--device cpu"),
    ]:
        assert old in script, f"the train command changed: {script}"
        script = script.replace(old, new)
    return script


def test_the_train_profile_run_and_export_appear_in_the_explorer_without_a_restart(
    url: str, env: dict[str, str]
) -> None:
    shipped = generate(url)
    train = ("--profile", "train", "run", "--rm", "train", "sh", "-c", cpu_train_command())
    compose_cli(*train, env=env, files=(CPU_TRAIN,), timeout=900)
    wait_for(url, ["mnist", "mnist-trained", "run:mnist"])  # the export, and the run's own checkpoint
    (run,) = httpx.get(f"{url}/api/runs").json()
    assert (run["name"], run["state"], run["step"]) == ("mnist", "finished", 20)
    trained = generate(url, checkpoint="mnist-trained")
    assert trained != shipped  # the same request, drawn by the new generator


def test_the_train_image_has_the_compiler_torch_compile_needs(env: dict[str, str], tmp_path: Path) -> None:
    """The `train` service's build (its args: WITH_COMPILER) with the CPU torch wheel, under a test tag:
    torch.compile then compiles on the CPU, which, like Triton on CUDA, needs a C compiler."""
    tag = f"{PROJECT}-train:cpu"
    override = tmp_path / "train-image.yml"
    override.write_text(json.dumps({"services": {"train": {"image": tag}}}))
    cpu_index = env.get("TORCH_INDEX", "https://download.pytorch.org/whl/cpu")
    try:
        build_env = {**env, "TORCH_CUDA_INDEX": cpu_index}
        compose_cli("--profile", "train", "build", "train", env=build_env, files=(override,), timeout=1800)
        run = "infogan train --dataset synthetic --steps 1 --batch-size 8 --device cpu --compile on --out /tmp/run"
        out = docker("run", "--rm", tag, "sh", "-c", f"{run} && ls /tmp/run", timeout=900)
        assert "checkpoint.safetensors" in out
    finally:
        docker("image", "rm", "--force", tag, check=False, timeout=120)
