"""Checks across sections of a validated scenario: references, names, memory fit, size.

Pydantic checks each value; these check how values fit together (a pool's GPU type exists, a
replica's model fits in its GPUs' memory somewhere it may go). Whether the replicas fit in the
pools is the model's capacity object's question (``sim.model.placement``). All problems are
collected, each with its key path; warnings are things that will run but probably not as
intended.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sim.config.catalogue import GpuType
from sim.config.scenario import InferenceWorkload, Pool, Scenario, TrainingWorkload
from sim.errors import Problem
from sim.registry import nearest


@dataclass
class CheckResult:
    """Problems (the scenario cannot run) and warnings (it runs, maybe not as intended)."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def _unknown(kind: str, name: str, known: list[str]) -> str:
    hint = nearest(name, known)
    msg = f"no {kind} named {name!r}"
    return f"{msg}; did you mean {hint!r}?" if hint else f"{msg}; known: {', '.join(known)}"


def check_scenario(scn: Scenario) -> CheckResult:
    """Check the relations between the sections of ``scn``."""
    result = CheckResult()
    problems = result.problems
    meta = scn.scenario
    if meta.warmup_s >= meta.duration_s:
        problems.append(Problem("scenario.warmup", "must be shorter than scenario.duration"))

    for section, names in (
        ("gpu_types", [g.name for g in scn.gpu_types]),
        ("pools", [p.name for p in scn.pools]),
        ("workloads", [w.name for w in scn.workloads]),
    ):
        for name, count in Counter(names).items():
            if count > 1:
                problems.append(Problem(f"{section}.{name}", f"the name is used {count} times"))

    for gpu in scn.gpu_types:
        if gpu.peak_w < gpu.idle_w:
            problems.append(Problem(f"gpu_types.{gpu.name}.peak_w", "must not be below idle_w"))

    catalogue = scn.gpu_catalogue()
    pool_gpus: dict[str, GpuType] = {}
    for pool in scn.pools:
        if pool.gpu_type in catalogue:
            pool_gpus[pool.name] = catalogue[pool.gpu_type]
        else:
            problems.append(
                Problem(
                    f"pools.{pool.name}.gpu_type",
                    _unknown("GPU type", pool.gpu_type, sorted(catalogue))
                    + " (add it under [[gpu_types]])",
                )
            )
    pool_names = [p.name for p in scn.pools]
    for workload in scn.workloads:
        if workload.pool is not None and workload.pool not in pool_names:
            problems.append(
                Problem(
                    f"workloads.{workload.name}.pool", _unknown("pool", workload.pool, pool_names)
                )
            )
    if problems:
        return result

    for workload in scn.workloads:
        if isinstance(workload, InferenceWorkload):
            _check_replica_memory(scn, workload, pool_gpus, result)
        else:
            _check_job_memory(scn, workload, pool_gpus, result)
    _check_size(scn, result)
    return result


def _candidate_pools(scn: Scenario, wl: InferenceWorkload | TrainingWorkload) -> list[Pool]:
    """The pool a workload names, or every pool in file order."""
    return [scn.pool_named(wl.pool)] if wl.pool else list(scn.pools)


def _check_replica_memory(
    scn: Scenario, wl: InferenceWorkload, pool_gpus: dict[str, GpuType], result: CheckResult
) -> None:
    """A replica's model must fit in its GPUs' memory in at least one candidate pool."""
    gpus = wl.gpus_per_replica
    if any(
        pool_gpus[p.name].memory_gb * gpus >= wl.model_memory_gb for p in _candidate_pools(scn, wl)
    ):
        return
    if wl.pool:
        gpu = pool_gpus[wl.pool]
        msg = (
            f"a replica needs {wl.model_memory_gb:g} GB but its {gpus} × {gpu.name} in pool "
            f"{wl.pool!r} have {gpu.memory_gb * gpus:g} GB; raise gpus_per_replica or choose "
            "another pool"
        )
    else:
        best = max(scn.pools, key=lambda p: pool_gpus[p.name].memory_gb)
        gpu = pool_gpus[best.name]
        msg = (
            f"a replica needs {wl.model_memory_gb:g} GB but no pool has that in {gpus} GPU(s) "
            f"(the most is {gpu.memory_gb * gpus:g} GB, {gpu.name} in pool {best.name!r}); "
            "raise gpus_per_replica"
        )
    result.problems.append(Problem(f"workloads.{wl.name}.model_memory_gb", msg))


def _check_job_memory(
    scn: Scenario, wl: TrainingWorkload, pool_gpus: dict[str, GpuType], result: CheckResult
) -> None:
    """Some candidate pool must have GPUs with the memory a job needs."""
    candidates = _candidate_pools(scn, wl)
    if any(pool_gpus[p.name].memory_gb >= wl.memory_gb_per_gpu for p in candidates):
        return
    where = f"pool {wl.pool!r}" if wl.pool else "any pool"
    most = max(pool_gpus[p.name].memory_gb for p in candidates)
    result.problems.append(
        Problem(
            f"workloads.{wl.name}.memory_gb_per_gpu",
            f"jobs need {wl.memory_gb_per_gpu:g} GB per GPU but the GPUs of {where} have at most "
            f"{most:g} GB",
        )
    )


MANY_ROWS = 50_000_000
"""Expected rows above which a run is worth a warning: it will take minutes and gigabytes."""


def _check_size(scn: Scenario, result: CheckResult) -> None:
    """Warn about runs that will record very many requests, jobs or samples."""
    meta = scn.scenario
    samples = meta.duration_s / meta.sample_every_s * max(len(scn.pools), 1)
    if samples > MANY_ROWS:
        result.warnings.append(
            Problem(
                "scenario.sample_every",
                f"about {samples:,.0f} time-series rows (duration / sample_every × pools): "
                "this run will be slow and large",
            )
        )
    for wl in scn.workloads:
        rate = wl.arrival.mean_rate_hz()
        expected = rate * meta.duration_s if rate is not None else 0.0
        if expected > MANY_ROWS:
            result.warnings.append(
                Problem(
                    f"workloads.{wl.name}.arrival",
                    f"about {expected:,.0f} arrivals in the horizon (at roughly 500,000 a second "
                    f"and 120 bytes each): this run will take a while and need memory",
                )
            )
