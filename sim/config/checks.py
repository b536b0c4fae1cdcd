"""Checks across sections of a validated scenario: references, memory fit, replica placement.

Pydantic checks each value; these check how values fit together (a pool's GPU type exists, a
replica fits in its GPUs' memory, the replicas fit in the pools). All problems are collected,
each with its key path; warnings are things that will run but probably not as intended.
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
    """Problems (the scenario cannot run), warnings, and where each replica goes."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    replica_pools: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _unknown(kind: str, name: str, known: list[str]) -> str:
    hint = nearest(name, known)
    msg = f"no {kind} named {name!r}"
    return f"{msg}; did you mean {hint!r}?" if hint else f"{msg}; known: {', '.join(known)}"


def check_scenario(scn: Scenario) -> CheckResult:
    """Check the relations between the sections of ``scn`` and plan the replicas' pools."""
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

    free = {p.name: p.gpus for p in scn.pools}
    for workload in scn.workloads:
        if isinstance(workload, InferenceWorkload):
            _place_replicas(scn, workload, pool_gpus, free, result)
    for workload in scn.workloads:
        if isinstance(workload, TrainingWorkload):
            _check_training(scn, workload, pool_gpus, free, result)
    return result


def _candidate_pools(scn: Scenario, wl: InferenceWorkload | TrainingWorkload) -> list[Pool]:
    """The pool a workload names, or every pool in file order."""
    return [scn.pool_named(wl.pool)] if wl.pool else list(scn.pools)


def _place_replicas(
    scn: Scenario,
    wl: InferenceWorkload,
    pool_gpus: dict[str, GpuType],
    free: dict[str, int],
    result: CheckResult,
) -> None:
    """Assign each replica to the named pool or the first pool with room and enough memory."""
    key = f"workloads.{wl.name}"
    candidates = _candidate_pools(scn, wl)

    def holds(pool: Pool) -> bool:
        return pool_gpus[pool.name].memory_gb * wl.gpus_per_replica >= wl.model_memory_gb

    fitting = [p for p in candidates if holds(p)]
    if not fitting:
        if wl.pool:
            gpu = pool_gpus[wl.pool]
            msg = (
                f"a replica needs {wl.model_memory_gb:g} GB but its {wl.gpus_per_replica} × "
                f"{gpu.name} in pool {wl.pool!r} have {gpu.memory_gb * wl.gpus_per_replica:g} GB; "
                "raise gpus_per_replica or choose another pool"
            )
        else:
            best = max(scn.pools, key=lambda p: pool_gpus[p.name].memory_gb)
            gpu = pool_gpus[best.name]
            msg = (
                f"a replica needs {wl.model_memory_gb:g} GB but no pool has that in "
                f"{wl.gpus_per_replica} GPU(s) (the most is {gpu.memory_gb * wl.gpus_per_replica:g}"
                f" GB, {gpu.name} in pool {best.name!r}); raise gpus_per_replica"
            )
        result.problems.append(Problem(f"{key}.model_memory_gb", msg))
        return
    placed: list[str] = []
    for _ in range(wl.replicas):
        pool = next((p for p in fitting if free[p.name] >= wl.gpus_per_replica), None)
        if pool is None:
            break
        free[pool.name] -= wl.gpus_per_replica
        placed.append(pool.name)
    if len(placed) < wl.replicas:
        where = ", ".join(f"{p.name!r} ({free[p.name]} of {p.gpus} GPUs left)" for p in fitting)
        result.problems.append(
            Problem(
                f"{key}.replicas",
                f"only {len(placed)} of {wl.replicas} replicas × {wl.gpus_per_replica} GPU(s) fit "
                f"in the eligible pools after earlier workloads: {where}",
            )
        )
        return
    result.replica_pools[wl.name] = tuple(placed)


def _check_training(
    scn: Scenario,
    wl: TrainingWorkload,
    pool_gpus: dict[str, GpuType],
    free: dict[str, int],
    result: CheckResult,
) -> None:
    """Memory fit is an error; a job larger than every eligible pool is a warning."""
    key = f"workloads.{wl.name}"
    candidates = _candidate_pools(scn, wl)
    fitting = [p for p in candidates if pool_gpus[p.name].memory_gb >= wl.memory_gb_per_gpu]
    if not fitting:
        where = f"pool {wl.pool!r}" if wl.pool else "any pool"
        most = max(pool_gpus[p.name].memory_gb for p in candidates)
        result.problems.append(
            Problem(
                f"{key}.memory_gb_per_gpu",
                f"jobs need {wl.memory_gb_per_gpu:g} GB per GPU but the GPUs of {where} have at "
                f"most {most:g} GB",
            )
        )
        return
    room = max(free[p.name] for p in fitting)
    if wl.gpus > room:
        result.warnings.append(
            Problem(
                f"{key}.gpus",
                f"every job needs {wl.gpus} GPUs but the eligible pools offer at most {room} "
                "once inference replicas are placed: all its jobs will be rejected",
            )
        )
