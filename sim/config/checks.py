"""Checks across sections of a validated scenario: references, names, memory fit, run time.

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
from sim.config.estimate import Estimate, biggest, estimate, format_seconds, scaling_keys
from sim.config.interconnect import link_of
from sim.config.models import LanguageModel
from sim.config.reliability import parse_target
from sim.config.scenario import LLMWorkload, Pool, Scenario, ServedWorkload, TrainingWorkload
from sim.config.serving import MEMORY_UTILISATION, serving_times
from sim.errors import Problem
from sim.registry import nearest


@dataclass
class CheckResult:
    """Problems (the scenario cannot run) and warnings (it runs, maybe not as intended)."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    references_resolve: bool = True
    """Whether every pool's GPU type and every workload's pool exist, as the model's own checks
    (``sim.model.placement.check_model``) need; other problems do not stop those checks."""


_Candidates = list[tuple[Pool, GpuType]]
"""The pools a workload may use, each with its GPU type."""


def _unknown(kind: str, name: str, known: list[str]) -> str:
    hint = nearest(name, known)
    msg = f"no {kind} named {name!r}"
    return f"{msg}; did you mean {hint!r}?" if hint else f"{msg}; known: {', '.join(known)}"


def check_scenario(scn: Scenario, size: Estimate | None = None) -> CheckResult:
    """Check the relations between the sections of ``scn``.

    Each check runs whenever what it needs is sound: a workload's memory is checked when its
    own pools and their GPU types exist, whatever else is wrong in the file. ``size`` is the
    run's estimate if the caller has it already.
    """
    result = CheckResult()
    problems = result.problems
    meta = scn.scenario
    if meta.warmup_s >= meta.duration_s:
        problems.append(
            Problem(
                "scenario.warmup",
                "must be shorter than scenario.duration",
                related=("scenario.duration",),
            )
        )
    if meta.timezone is not None and meta.start is None:
        problems.append(
            Problem(
                "scenario.timezone",
                "needs scenario.start: local times are of calendar times (set scenario.start, "
                "e.g. 2024-07-15T08:00:00Z, or remove scenario.timezone)",
                related=("scenario.start",),
            )
        )

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
            problems.append(
                Problem(
                    f"gpu_types.{gpu.name}.peak_w",
                    f"must not be below idle_w (peak_w {gpu.peak_w:g}, idle_w {gpu.idle_w:g})",
                    related=(f"gpu_types.{gpu.name}.idle_w",),
                )
            )

    catalogue = scn.gpu_catalogue()
    for pool in scn.pools:
        if pool.gpu_type not in catalogue:
            result.references_resolve = False
            problems.append(
                Problem(
                    f"pools.{pool.name}.gpu_type",
                    _unknown("GPU type", pool.gpu_type, sorted(catalogue))
                    + " (add it under [[gpu_types]])",
                )
            )
        elif pool.power_cap_w is not None:
            gpu = catalogue[pool.gpu_type]
            if not gpu.min_cap_w <= pool.power_cap_w <= gpu.peak_w:
                problems.append(
                    Problem(
                        f"pools.{pool.name}.power_cap_w",
                        f"must be between the {gpu.name}'s lowest cap, {gpu.min_cap_w:g} W, "
                        f"and its peak, {gpu.peak_w:g} W (got {pool.power_cap_w:g})",
                        related=(f"pools.{pool.name}.gpu_type",),
                    )
                )
    pool_names = [p.name for p in scn.pools]
    for workload in scn.workloads:
        if workload.pool is not None and workload.pool not in pool_names:
            result.references_resolve = False
            problems.append(
                Problem(
                    f"workloads.{workload.name}.pool", _unknown("pool", workload.pool, pool_names)
                )
            )

    _check_targets(scn, result)
    models = scn.model_catalogue()
    for workload in scn.workloads:
        if isinstance(workload, LLMWorkload) and workload.model not in models:
            problems.append(
                Problem(
                    f"workloads.{workload.name}.model",
                    _unknown("model", workload.model, sorted(models))
                    + " (add it under [[models]])",
                )
            )
            continue
        candidates = _candidates(scn, workload, catalogue)
        if candidates is None:
            continue
        if isinstance(workload, ServedWorkload):
            _check_replica_memory(workload, workload.replica_memory_gb(models), candidates, result)
            if isinstance(workload, LLMWorkload):
                _check_kv_room(workload, models[workload.model], candidates, result)
        else:
            _check_job_memory(workload, candidates, result)
    _check_size(scn, result, size if size is not None else estimate(scn))
    return result


def _check_targets(scn: Scenario, result: CheckResult) -> None:
    """Outage and maintenance targets name existing pools, and no more nodes than they have."""
    pools = {p.name: p for p in scn.pools}
    cooling = scn.facility.cooling
    for i, o in enumerate(scn.outages):
        rated = cooling is not None and cooling.capacity_mw is not None
        if o.target == "cooling" and o.capacity_left > 0 and not rated:
            result.problems.append(
                Problem(
                    f"outages.{i}.capacity_left",
                    "a share of the cooling capacity needs a rated capacity: set "
                    "facility.cooling.capacity_mw, or capacity_left = 0 (all cooling lost)",
                    related=("facility.cooling.capacity_mw",),
                )
            )
    entries = [("outages", i, o.target) for i, o in enumerate(scn.outages)]
    entries += [("maintenance", i, m.target) for i, m in enumerate(scn.maintenance)]
    for section, i, target in entries:
        _kind, name, count = parse_target(target)
        if name is None:
            continue
        key = f"{section}.{i}.target"
        if name not in pools:
            result.problems.append(Problem(key, _unknown("pool", name, list(pools))))
        elif count is not None and count > pools[name].nodes:
            result.problems.append(
                Problem(
                    key,
                    f"takes {count} nodes but pool {name!r} has {pools[name].nodes}",
                    related=(f"pools.{name}.nodes",),
                )
            )


def _candidates(
    scn: Scenario, wl: ServedWorkload | TrainingWorkload, catalogue: dict[str, GpuType]
) -> _Candidates | None:
    """The pools a workload may use (the one it names, else all); None unless all resolve."""
    pools = [p for p in scn.pools if wl.pool is None or p.name == wl.pool]
    if not pools or any(p.gpu_type not in catalogue for p in pools):
        return None
    return [(p, catalogue[p.gpu_type]) for p in pools]


def _memory_keys(wl: ServedWorkload | TrainingWorkload, candidates: _Candidates) -> tuple[str, ...]:
    """The keys besides a workload's memory that decide whether it fits."""
    keys = [f"workloads.{wl.name}.pool"]
    for pool, gpu in candidates:
        keys += [f"pools.{pool.name}.gpu_type", f"gpu_types.{gpu.name}.memory_gb"]
    return tuple(dict.fromkeys(keys))


def _check_replica_memory(
    wl: ServedWorkload, need_gb: float, candidates: _Candidates, result: CheckResult
) -> None:
    """A replica's model must fit in its GPUs' memory in at least one candidate pool."""
    gpus = wl.gpus_per_replica
    if any(gpu.memory_gb * gpus >= need_gb for _, gpu in candidates):
        return
    best, gpu = max(candidates, key=lambda c: c[1].memory_gb)
    needs = f"a replica needs {need_gb:.4g} GB"
    key = f"workloads.{wl.name}.model_memory_gb"
    if isinstance(wl, LLMWorkload):
        needs = (
            f"{wl.model} in {wl.precision} needs {need_gb:.4g} GB (its weights, "
            f"{need_gb * MEMORY_UTILISATION:.4g} GB, may fill {MEMORY_UTILISATION:.0%} of the "
            "memory; the rest is activations and the KV cache)"
        )
        key = f"workloads.{wl.name}.model"
    fixes = "raise gpus_per_replica" + (
        ', use precision = "fp8"' if isinstance(wl, LLMWorkload) and wl.precision != "fp8" else ""
    )
    if wl.pool:
        msg = (
            f"{needs} but its {gpus} × {gpu.name} in pool "
            f"{wl.pool!r} have {gpu.memory_gb * gpus:g} GB; {fixes} or choose another pool"
        )
    else:
        msg = (
            f"{needs} but no pool has that in {gpus} GPU(s) "
            f"(the most is {gpu.memory_gb * gpus:g} GB, {gpu.name} in pool {best.name!r}); "
            f"{fixes}"
        )
    related = (f"workloads.{wl.name}.gpus_per_replica", *_memory_keys(wl, candidates))
    result.problems.append(Problem(key, msg, related=related))


def _check_kv_room(
    wl: LLMWorkload, model: LanguageModel, candidates: _Candidates, result: CheckResult
) -> None:
    """Warn when a replica's KV cache cannot hold one request of the mean size.

    The run goes on: requests larger than a replica's KV cache are rejected, smaller ones
    served a few at a time.
    """
    means = [d.expected_s() if d is not None else None for d in (wl.input_tokens, wl.output_tokens)]
    if means[0] is None or means[1] is None:
        return
    tokens = means[0] + means[1]
    for pool, gpu in candidates:
        if gpu.memory_gb * wl.gpus_per_replica < wl.replica_memory_gb({model.name: model}):
            continue
        link = link_of(pool.link_name(gpu))
        room = serving_times(model, wl.precision, gpu, wl.gpus_per_replica, link).kv_capacity_tokens
        if room < tokens:
            result.warnings.append(
                Problem(
                    f"workloads.{wl.name}.gpus_per_replica",
                    f"a replica of {wl.model} on {wl.gpus_per_replica} × {gpu.name} (pool "
                    f"{pool.name!r}) has KV memory for {max(room, 0):,} tokens, less than a mean "
                    f"request's {tokens:,.0f}: most requests will be rejected",
                    related=(
                        f"workloads.{wl.name}.input_tokens",
                        f"workloads.{wl.name}.output_tokens",
                    ),
                )
            )
            return


def _check_job_memory(wl: TrainingWorkload, candidates: _Candidates, result: CheckResult) -> None:
    """Some candidate pool must have GPUs with the memory a job needs."""
    if any(gpu.memory_gb >= wl.memory_gb_per_gpu for _, gpu in candidates):
        return
    where = f"pool {wl.pool!r}" if wl.pool else "any pool"
    most = max(gpu.memory_gb for _, gpu in candidates)
    result.problems.append(
        Problem(
            f"workloads.{wl.name}.memory_gb_per_gpu",
            f"jobs need {wl.memory_gb_per_gpu:g} GB per GPU but the GPUs of {where} have at most "
            f"{most:g} GB",
            related=_memory_keys(wl, candidates),
        )
    )


LONG_RUN_S = 3600.0
"""Estimated CPU time above which a run is worth a warning (it runs, but for a long while)."""


def _check_size(scn: Scenario, result: CheckResult, est: Estimate) -> None:
    """Warn about runs that will take over an hour, naming what takes the time.

    The estimate (``sim.config.estimate``) uses constants measured by benchmarks/calibrate.py;
    runs that cannot fit the machine's memory or disk are refused before these checks, by
    ``sim.runner.prepare``.
    """
    part = biggest(est.time)
    if est.cpu_s <= LONG_RUN_S or part is None:
        return
    share = "most" if part.amount >= est.cpu_s / 2 else format_seconds(part.amount)
    result.warnings.append(
        Problem(
            part.key,
            f"this run will take about {format_seconds(est.cpu_s)} on this machine ({share} of "
            f"it for {part.what}); {part.hint}",
            related=scaling_keys(scn, part.key),
        )
    )
