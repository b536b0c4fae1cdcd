"""Running a sweep's tasks: on a local process pool, or on a Dask distributed cluster.

Both call ``run_task`` once per run, in a worker process that lives for many runs (so a data
file is read once per worker, see ``sim.inputs``). A run's outcome is its run directory, whose
manifest is written last: a sweep that is interrupted or killed loses no finished run, and the
next invocation redoes only runs without a matching manifest. A failing run is an outcome with
its error, never an exception that stops the others.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sim.errors import UserError
from sim.sweep.plan import Task


@dataclass(frozen=True)
class Outcome:
    """How one run ended: ``error`` is None when its run directory is complete."""

    index: int
    error: str | None
    wall_time_s: float


def run_task(task: Task) -> Outcome:
    """Make one run of a sweep into its run directory (in a worker); never raises for a run.

    The scenario file is read again here; if it no longer gives the scenario the sweep checked
    (it was edited since), the run fails rather than run something never checked.
    """
    from sim import runner
    from sim.record.writer import run_identity

    began = time.perf_counter()
    try:
        prepared = runner.prepare(task.scenario_path, task.overrides, out_dir=task.run_dir)
        dump = prepared.scenario.model_dump(mode="json", by_alias=True)
        if run_identity(dump, task.seed) != task.identity:
            raise UserError(
                f"{task.scenario_path}: changed since the sweep checked it; run the sweep again"
            )
        runner.run(prepared, seed=task.seed, out=task.run_dir, overwrite=True)
    except UserError as error:
        return Outcome(task.index, error.render(), time.perf_counter() - began)
    except Exception as error:  # a run's failure is recorded, the sweep goes on
        message = f"{type(error).__name__}: {error}"
        return Outcome(task.index, message, time.perf_counter() - began)
    return Outcome(task.index, None, time.perf_counter() - began)


def _die_with_parent(parent: int) -> None:
    """Worker initializer: ignore Ctrl-C and, on Linux, die with the parent process ``parent``.

    The parent stops the pool on Ctrl-C; dying with it means a killed sweep leaves no orphan
    still writing a run directory.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)


POOL_ATTEMPTS = 2
"""How many times a run may be in progress when a worker process dies before it is failed."""


def run_local(tasks: Sequence[Task], workers: int) -> Iterator[Outcome]:
    """Run ``tasks`` on a pool of ``workers`` fresh processes; yield outcomes as they finish.

    A worker that dies (killed, out of memory) breaks the pool; the unfinished runs start
    again in a new pool. Runs go to the workers in order, so the runs that were in progress
    are among the first ``workers`` unfinished ones: each of those is counted as tried, and a
    run tried ``POOL_ATTEMPTS`` times is failed, so one bad run never fails the rest.
    """
    remaining = {task.index: task for task in sorted(tasks, key=lambda t: t.index)}
    attempts = dict.fromkeys(remaining, 0)
    while remaining:
        broke: list[bool] = []
        for outcome in _pool_round(list(remaining.values()), workers, broke):
            del remaining[outcome.index]
            yield outcome
        if not broke:
            continue
        for index in list(remaining)[:workers]:
            attempts[index] += 1
            if attempts[index] >= POOL_ATTEMPTS:
                del remaining[index]
                message = "the worker process died during this run (killed, or out of memory)"
                yield Outcome(index, message, 0.0)


def _pool_round(tasks: Sequence[Task], workers: int, broke: list[bool]) -> Iterator[Outcome]:
    """One pool over ``tasks`` (in order); if a worker dies, append to ``broke`` and stop."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(tasks)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_die_with_parent,
        initargs=(os.getpid(),),
    )
    try:
        pending = {pool.submit(run_task, task) for task in tasks}
        while pending and not broke:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                if isinstance(future.exception(), BrokenProcessPool):
                    broke.append(True)
                else:
                    yield future.result()
    except BaseException:  # Ctrl-C, or the caller gave up: stop the runs in progress too
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            with contextlib.suppress(Exception):
                process.terminate()
        raise
    pool.shutdown(wait=True, cancel_futures=True)


def run_dask(tasks: Sequence[Task], address: str, name: str) -> Iterator[Outcome]:
    """Submit ``tasks`` to the Dask distributed scheduler at ``address``; yield outcomes.

    Workers need this version of sim installed, and the scenario, its data files and the output
    folder at the same paths (shared storage).
    """
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise UserError(
            "--scheduler needs Dask distributed: pip install 'sim[dask]' (make install does)"
        ) from None
    if not tasks:
        return
    try:
        client = Client(address, timeout="20s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise UserError(
            f"--scheduler {address}: cannot connect to a Dask scheduler there ({exc}); "
            "expected an address such as tcp://10.0.0.5:8786"
        ) from None
    futures: dict[Any, Task] = {}
    try:
        futures = {
            client.submit(
                run_task, task, key=f"sim-{name}-{task.index}-{os.getpid()}", pure=False
            ): task
            for task in tasks
        }
        for future in as_completed(futures):
            task = futures[future]
            try:
                yield future.result()
            except Exception as exc:  # a worker lost mid-run: the run failed, the sweep goes on
                yield Outcome(task.index, f"{type(exc).__name__}: {exc}", 0.0)
    except BaseException:  # Ctrl-C: take back the runs not started (those running finish)
        with contextlib.suppress(Exception):
            client.cancel(list(futures))
        raise
    finally:
        client.close()


def run_tasks(
    tasks: Sequence[Task],
    workers: int,
    scheduler: str | None,
    name: str,
    on_done: Callable[[Outcome], None],
) -> None:
    """Run every task locally or on ``scheduler``, calling ``on_done`` as each finishes."""
    outcomes = run_dask(tasks, scheduler, name) if scheduler else run_local(tasks, workers)
    for outcome in outcomes:
        on_done(outcome)
