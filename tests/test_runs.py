"""Specification of the runs API (docs/design.md, "REST API"): training run folders as the
service reads them, from their files only, while `infogan train` writes them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from service_helpers import REPO, free_port, uvicorn_process, venv_executable, write_checkpoint

from backend.runs import describe_run, find_runs, read_log

OLD = time.time() - 3600  # an hour ago: a log this old belongs to no running run


def run_folder(root: Path, name: str, records: list[dict], *, checkpoint: bool = False, mtime: float = OLD) -> Path:
    folder = root / name
    (folder / "samples").mkdir(parents=True)
    (folder / "log.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    if checkpoint:
        (folder / "checkpoint.safetensors").write_bytes(b"stand-in")
    os.utime(folder / "log.jsonl", (mtime, mtime))
    return folder


def losses(step: int, **extra) -> dict:
    return {"time": OLD + step, "step": step, "total_steps": 100, "train_s": step / 10, "loss_d": 1.2,
            "loss_g": 0.9, "info_cat": 0.1, "info_cont": 0.05, "images_per_s": 640.0, **extra}  # fmt: skip


def test_a_run_is_finished_running_stopped_or_failed_by_its_files(tmp_path: Path) -> None:
    end = {"time": OLD + 101, "step": 100, "train_s": 10.0, "chosen_member": 0, "criterion": "information"}
    run_folder(tmp_path, "done", [losses(50), losses(100), end], checkpoint=True)
    run_folder(tmp_path, "live", [losses(50)], checkpoint=True, mtime=time.time())
    run_folder(tmp_path, "killed", [losses(50)], checkpoint=True)
    run_folder(tmp_path, "broken", [losses(50)])
    states = {name: describe_run(name, folder).state for name, folder in find_runs(tmp_path).items()}
    assert states == {"broken": "failed", "done": "finished", "killed": "stopped", "live": "running"}


def test_a_run_entry_has_the_latest_figures_and_each_members(tmp_path: Path) -> None:
    records = [
        losses(10, member=0),
        losses(10, member=1, loss_d=2.0),
        {
            "time": OLD + 11,
            "step": 10,
            "member": 0,
            "categorical_accuracy": 0.8,
            "information": 2.1,
            "jitter_flips": 0.02,
        },
        {
            "time": OLD + 11,
            "step": 10,
            "member": 1,
            "categorical_accuracy": 0.6,
            "information": 2.0,
            "jitter_flips": 0.05,
        },
    ]
    folder = run_folder(tmp_path, "group/population", records)
    run = describe_run("group/population", folder)
    assert (run.step, run.total_steps, run.train_seconds, run.images_per_s) == (10, 100, 1.0, 640.0)
    assert run.losses == {"loss_d": 1.2, "loss_g": 0.9, "info_cat": 0.1, "info_cont": 0.05}  # member 0's
    assert run.categorical_accuracy == 0.8
    assert [
        (m.member, m.losses["loss_d"], m.categorical_accuracy, m.information, m.jitter_flips) for m in run.members
    ] == [
        (0, 1.2, 0.8, 2.1, 0.02),
        (1, 2.0, 0.6, 2.0, 0.05),
    ]


def test_a_member_halving_stopped_is_marked_and_the_run_shows_the_first_still_training(tmp_path: Path) -> None:
    records = [
        {"time": OLD + 11, "step": 10, "member": 0, "categorical_accuracy": 0.6, "information": 2.0},
        {"time": OLD + 11, "step": 10, "member": 1, "categorical_accuracy": 0.8, "information": 2.1},
        {"time": OLD + 12, "step": 10, "dropped_members": [0]},
        losses(20, member=1, loss_d=0.7),
        {"time": OLD + 21, "step": 20, "member": 1, "categorical_accuracy": 0.9, "information": 2.2},
    ]
    run = describe_run("halved", run_folder(tmp_path, "halved", records))
    assert [(m.member, m.stopped_at) for m in run.members] == [(0, 10), (1, None)]
    assert (run.categorical_accuracy, run.losses["loss_d"]) == (0.9, 0.7)  # member 1's, not the stopped 0's


def test_a_log_line_being_written_is_left_out_until_it_is_whole(tmp_path: Path) -> None:
    folder = run_folder(tmp_path, "run", [losses(10)])
    with (folder / "log.jsonl").open("a") as log:
        log.write('{"time": 1, "step": 20, "loss_')
    assert [record["step"] for record in read_log(folder)] == [10]
    with (folder / "log.jsonl").open("a") as log:
        log.write('d": 1.0}\n')
    assert [record["step"] for record in read_log(folder)] == [10, 20]


def test_runs_are_found_below_the_folder_and_links_are_not_followed(tmp_path: Path) -> None:
    run_folder(tmp_path, "a", [losses(1)])
    run_folder(tmp_path, "screens/s1", [losses(1)])
    (tmp_path / "elsewhere").symlink_to(tmp_path / "a")
    (tmp_path / "empty").mkdir()
    assert list(find_runs(tmp_path)) == ["a", "screens/s1"]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    """A real uvicorn over a runs folder, and a real `infogan train` writing a run into it."""
    root = tmp_path_factory.mktemp("live")
    checkpoints, runs = root / "checkpoints", root / "runs"
    checkpoints.mkdir()
    runs.mkdir()
    write_checkpoint(checkpoints / "mnist.safetensors")
    port = free_port()
    command = [venv_executable("uvicorn"), "backend.app:app", "--host", "127.0.0.1", "--port", str(port)]
    env = {"INFOGAN_CHECKPOINT_DIR": str(checkpoints), "INFOGAN_RUNS_DIR": str(runs)}
    with uvicorn_process([*command, "--no-access-log"], env, port, root / "uvicorn.log") as url:
        yield url, runs


def test_a_training_run_is_watched_while_it_trains(live) -> None:
    url, runs = live
    flags = ["--dataset", "synthetic", "--steps", "300", "--batch-size", "16", "--noise-dim", "8", "--population", "1"]
    flags += ["--g-fc", "32", "--g-conv", "16", "--d-conv", "8", "--d-fc", "32", "--q-fc", "16"]
    flags += ["--log-every", "10", "--sample-every", "100", "--eval-every", "100", "--checkpoint-every", "100"]
    train = subprocess.Popen(
        [sys.executable, "-m", "training.train", *flags, "--out", str(runs / "live")],
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        seen_steps, samples = [], set()
        deadline = time.monotonic() + 300
        while train.poll() is None and time.monotonic() < deadline:
            entries = {entry["name"]: entry for entry in httpx.get(f"{url}/api/runs").json()}
            if "live" in entries:
                seen_steps.append(entries["live"]["step"])
                assert entries["live"]["state"] in ("running", "finished")
                sample = httpx.get(f"{url}/api/runs/live/samples/latest")
                if sample.status_code == 200:
                    samples.add(sample.headers["x-sample"])
            time.sleep(0.2)
        assert train.wait(timeout=60) == 0
    finally:
        train.kill()
    assert len(set(seen_steps)) >= 3 and seen_steps == sorted(seen_steps)  # the step advanced as we watched
    assert len(samples) >= 2  # the newest sample grid changed
    (final,) = [entry for entry in httpx.get(f"{url}/api/runs").json() if entry["name"] == "live"]
    assert final["state"] == "finished" and final["step"] == final["total_steps"] == 300
    log = httpx.get(f"{url}/api/runs/live/log", params={"after": 250}).json()
    assert log and all(record["step"] > 250 for record in log) and log[-1]["chosen_member"] == 0


@pytest.mark.parametrize("path", ["../runs", "..%2f..%2fetc", "%2e%2e", "/etc/passwd", "nope"])
def test_run_names_are_looked_up_never_joined_into_a_path(live, path: str) -> None:
    url, _ = live
    for what in ("log", "samples/latest"):
        assert httpx.get(f"{url}/api/runs/{path}/{what}").status_code == 404
