"""Training runs as the service sees them: the run folders under INFOGAN_RUNS_DIR, read while
`infogan train` writes them.

A run folder holds `config.json`, `log.jsonl`, `samples/*.png` and `checkpoint.safetensors`
(training/loop.py). Its state comes from those files alone, never from a process id, so it is
the same whichever machine or container trains: "finished" when the log's last record is the
run's end (the member it chose), "running" while the log keeps growing, and once it has gone
quiet "stopped" when a checkpoint is there to resume from, else "failed". Files are read as they
are: a log line still being written is skipped until it is whole, and a folder that changes
while it is read answers what it had.

Runs are named by their path below the runs folder (`mnist`, `screens/s11`) and requests look a
name up among the listed ones: no name is ever joined into a path.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

from backend.schemas import MemberInfo, RunInfo

LOSSES = ("loss_d", "loss_g", "info_cat", "info_cont")
QUIET_S = 120.0  # a log silent this long, and at least 3 of its own intervals, belongs to no running run
MAX_DEPTH = 3  # runs/group/name/...: how deep run folders are looked for
MAX_RECORDS = 1000  # log records per answer of /api/runs/{name}/log


def find_runs(root: Path) -> dict[str, Path]:
    """Run folders (those with a log.jsonl) below `root`, by name; symbolic links are not followed."""
    runs: dict[str, Path] = {}
    pending = [(root, 0)]
    while pending:
        folder, depth = pending.pop()
        try:
            children = sorted(child for child in folder.iterdir() if child.is_dir() and not child.is_symlink())
        except OSError:  # gone, or not readable: nothing to list
            continue
        for child in children:
            if (child / "log.jsonl").is_file():
                runs[child.relative_to(root).as_posix()] = child
            elif depth + 1 < MAX_DEPTH:
                pending.append((child, depth + 1))
    return dict(sorted(runs.items()))


def read_log(folder: Path) -> list[dict[str, Any]]:
    """The whole records of a run's log; a last line still being written, or any line that is not
    a JSON object, is left out."""
    try:
        text = (folder / "log.jsonl").read_text()
    except OSError:
        return []
    records = []
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # being written
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
    return records


def records_after(folder: Path, step: int) -> list[dict[str, Any]]:
    """The log's records after `step`, at most MAX_RECORDS (ask again from the last one's step)."""
    return [record for record in read_log(folder) if record["step"] > step][:MAX_RECORDS]


def samples(folder: Path) -> list[Path]:
    """The sample grids, oldest first (their names hold the step)."""
    return sorted((folder / "samples").glob("step_*.png"))


def latest_sample(folder: Path) -> tuple[str, bytes] | None:
    """(file name, PNG bytes) of the newest sample grid, or None."""
    for path in reversed(samples(folder)):
        try:
            return path.name, path.read_bytes()
        except OSError:  # removed since it was listed: the one before will do
            continue
    return None


def describe_run(name: str, folder: Path, now: float | None = None) -> RunInfo:
    """A run's entry in /api/runs; its losses and accuracy are, in a population, those of the
    first member still training (halving may have stopped member 0)."""
    records = read_log(folder)
    now = time.time() if now is None else now
    last = records[-1] if records else {}
    members = sorted({r["member"] for r in records if isinstance(r.get("member"), int)})
    stopped = _stopped(records)
    headline = next((k for k in members if k not in stopped), 0)
    first_member = [r for r in records if r.get("member", 0) == headline]
    losses, evaluation = _latest(first_member, "loss_d"), _latest(first_member, "categorical_accuracy")
    return RunInfo(
        name=name,
        state=_state(folder, records, now),
        step=last.get("step", 0),
        total_steps=_latest(records, "total_steps").get("total_steps") or _planned_steps(folder, last),
        train_seconds=_latest(records, "train_s").get("train_s"),
        images_per_s=losses.get("images_per_s"),
        losses=_losses(losses),
        categorical_accuracy=evaluation.get("categorical_accuracy"),
        chosen_member=last.get("chosen_member"),
        sample=next((path.name for path in reversed(samples(folder))), None),
        members=[_member(k, records, stopped.get(k)) for k in members],
        updated=last.get("time"),
    )


def _planned_steps(folder: Path, last: dict[str, Any]) -> int | None:
    """Total steps of a log from before records carried them: from the config and the epoch."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if isinstance(config.get("steps"), int):
        return config["steps"]
    if last.get("epoch") and isinstance(config.get("epochs"), int):
        return round(last["step"] / last["epoch"] * config["epochs"])
    return None


def _state(
    folder: Path, records: list[dict[str, Any]], now: float
) -> Literal["running", "finished", "stopped", "failed"]:
    if records and "chosen_member" in records[-1]:
        return "finished"
    times = [r["time"] for r in records if isinstance(r.get("time"), int | float)]
    interval = (times[-1] - times[-2]) if len(times) >= 2 else 0.0
    try:
        written = (folder / "log.jsonl").stat().st_mtime
    except OSError:
        written = 0.0
    if now - written < max(QUIET_S, 3 * interval):
        return "running"
    return "stopped" if (folder / "checkpoint.safetensors").is_file() else "failed"


def _stopped(records: list[dict[str, Any]]) -> dict[int, int]:
    """The step at which halving (`--halve-after`) stopped each member it stopped."""
    return {k: r["step"] for r in records for k in r.get("dropped_members", ())}


def _member(k: int, records: list[dict[str, Any]], stopped_at: int | None) -> MemberInfo:
    own = [r for r in records if r.get("member") == k]
    evaluation = _latest(own, "categorical_accuracy")
    return MemberInfo(
        member=k,
        losses=_losses(_latest(own, "loss_d")),
        categorical_accuracy=evaluation.get("categorical_accuracy"),
        information=evaluation.get("information"),
        jitter_flips=evaluation.get("jitter_flips"),
        stopped_at=stopped_at,
    )


def _latest(records: list[dict[str, Any]], field: str) -> dict[str, Any]:
    """The last record that has `field`, or {}."""
    return next((record for record in reversed(records) if field in record), {})


def _losses(record: dict[str, Any]) -> dict[str, float]:
    return {key: record[key] for key in LOSSES if key in record}
