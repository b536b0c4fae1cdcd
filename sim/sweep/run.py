"""Running a planned sweep: resume what is done, run the rest, write the sweep's tables.

A run is done when its directory holds a complete run (``manifest.json``) of the same
scenario, overrides and seed: it is not redone. A directory holding a different run (the
scenario file changed since) is replaced only with ``overwrite``. The sweep's folder is locked
while a sweep writes to it, so two invocations never write one run at once.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.errors import UserError
from sim.record.writer import MANIFEST, different_run, read_identity, write_atomically
from sim.sweep.execute import Outcome, run_tasks
from sim.sweep.plan import Plan, Task
from sim.sweep.tables import CI_TABLE, SUMMARY_TABLE, ci_frame, summary_frame, write_table

SWEEP_JSON = "sweep.json"
LOCK = ".sweep.lock"


@dataclass
class Status:
    """Where each run of a plan stands before the sweep runs."""

    done: list[Task] = field(default_factory=list)
    todo: list[Task] = field(default_factory=list)
    different: list[tuple[Task, str]] = field(default_factory=list)
    """Runs whose folder holds another run, with why."""


def status(plan: Plan) -> Status:
    """Which runs are done, which are to run, and which folders hold a different run."""
    result = Status()
    for task in plan.tasks:
        held = read_identity(Path(task.run_dir))
        if held is None:
            result.todo.append(task)
        elif held == task.identity:
            result.done.append(task)
        else:
            result.different.append((task, different_run(held, task.identity)))
    return result


@dataclass(frozen=True)
class Report:
    """What a sweep did."""

    runs: int
    skipped: int
    """Runs already done by an earlier invocation."""
    ran: int
    failed: dict[str, str]
    """Failed runs (folder relative to the sweep's) and their errors."""
    strays: list[str]
    """Run folders under the sweep's folder that are not runs of this sweep."""
    summary_path: Path
    ci_path: Path


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold the sweep folder's lock; a UserError if another sweep holds it."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    try:
        handle = (root / LOCK).open("a")
    except OSError as exc:
        raise UserError(f"{root}: cannot write to the sweep folder ({exc.strerror})") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UserError(
                f"{root}: another sweep is writing to this folder; wait for it to finish"
            ) from None
        yield


def _strays(plan: Plan) -> list[str]:
    planned = {Path(task.run_dir) for task in plan.tasks}
    found = {path.parent for path in plan.root.rglob(MANIFEST)}
    return sorted(p.relative_to(plan.root).as_posix() for p in found - planned)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_atomically(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))


def describe(plan: Plan) -> dict[str, Any]:
    """``sweep.json``: the sweep file's content, the scenario, the axes and every run."""
    return {
        "sweep": plan.spec.model_dump(mode="json", by_alias=True),
        "sweep_file": plan.source,
        "scenario_file": str(plan.scenario_path),
        "axes": list(plan.axes),
        "runs": [
            {
                "run": task.relative,
                "point": task.point,
                "values": dict(task.values),
                "seed": task.seed,
                "overrides": list(task.overrides),
            }
            for task in plan.tasks
        ],
    }


def run_sweep(
    plan: Plan,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], Callable[[Outcome], None]] | None = None,
) -> Report:
    """Run every run of ``plan`` not done yet, then write the sweep's two summary tables.

    ``summary.parquet`` and ``summary_ci.parquet`` go in the sweep's folder.
    ``workers`` processes (default: the CPU count) run locally, or the runs go to the Dask
    scheduler at ``scheduler``. ``progress(total, done)`` gives a callback called as each run
    finishes. Raises UserError before running anything if a run folder holds a different run
    and not ``overwrite``, or if another sweep is writing to the same folder.
    """
    try:
        plan.root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{plan.root}: cannot create the sweep folder ({exc.strerror})") from None
    errors: dict[int, str] = {}
    with _locked(plan.root):
        where = status(plan)
        if where.different and not overwrite:
            shown = [f"{task.relative}: {why}" for task, why in where.different[:5]]
            more = len(where.different) - len(shown)
            raise UserError(
                f"{plan.root}: {len(where.different)} run folder(s) hold a different run (did "
                "the scenario or the sweep file change?); pass --overwrite to replace them:\n  "
                + "\n  ".join(shown)
                + (f"\n  ... and {more} more" if more else "")
            )
        todo = sorted(where.todo + [t for t, _ in where.different], key=lambda t: t.index)
        workers = workers or _cpus()
        _check_size(plan, todo, None if scheduler else workers)
        try:
            _write_json(plan.root / SWEEP_JSON, describe(plan))
        except OSError as exc:
            raise UserError(f"{plan.root}: cannot write {SWEEP_JSON} ({exc.strerror})") from None
        tick = progress(len(plan.tasks), len(where.done)) if progress else None

        def done(outcome: Outcome) -> None:
            if outcome.error is not None:
                errors[outcome.index] = outcome.error
            if tick is not None:
                tick(outcome)

        run_tasks(todo, workers, scheduler, plan.name, done)
        summary_path = plan.root / SUMMARY_TABLE
        ci_path = plan.root / CI_TABLE
        try:
            summary = summary_frame(plan, errors)
            write_table(summary, summary_path)
            write_table(ci_frame(summary, plan.axes), ci_path)
        except (OSError, ValueError) as exc:
            raise UserError(f"{plan.root}: cannot write the sweep's summary ({exc})") from None
    return Report(
        runs=len(plan.tasks),
        skipped=len(where.done),
        ran=len(todo),
        failed={plan.tasks[i].relative: e for i, e in sorted(errors.items())},
        strays=_strays(plan),
        summary_path=summary_path,
        ci_path=ci_path,
    )


def _cpus() -> int:
    """The CPUs this process may run on (its affinity, which container limits often set)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _check_size(plan: Plan, todo: list[Task], workers: int | None) -> None:
    """Refuse a sweep too big for this machine (a UserError naming the fix).

    Local workers together may need at most the memory a single run may; the runs still to do
    may fill at most the share of the sweep folder's free disk that a single run may.
    """
    from sim.config.estimate import (
        DISK_SHARE,
        MEMORY_SHARE,
        available_memory_bytes,
        format_bytes,
        free_disk_bytes,
    )

    if not todo:
        return
    available = available_memory_bytes()
    if workers is not None and available is not None:
        each = max(t.memory_bytes for t in todo)
        fit = int(MEMORY_SHARE * available // each) if each > 0 else workers
        if min(workers, len(todo)) > max(fit, 1):
            raise UserError(
                f"{plan.source}: {min(workers, len(todo))} workers each running a run of up to "
                f"~{format_bytes(each)} need more memory than this machine has "
                f"({format_bytes(available)} available, sim takes at most {MEMORY_SHARE:.0%}); "
                f"use --workers {max(fit, 1)}"
            )
    free = free_disk_bytes(plan.root)
    need = sum(t.disk_bytes for t in todo)
    if free is not None and need > DISK_SHARE * free[1]:
        raise UserError(
            f"{plan.source}: the {len(todo)} runs to do need ~{format_bytes(need)} of disk; "
            f"{free[0]} has {format_bytes(free[1])} free and sim fills at most "
            f"{DISK_SHARE:.0%} of it"
        )
