"""Placing inference replicas at the start, and the checks that need the real pools.

Replicas are placed workload by workload in the order of their names (never the order of the
file), each on the workload's pool or the first pool (in file order) with room and enough
memory, through the same capacity object the training scheduler
uses, so the check and the run can never disagree. A replica that fits in one node is kept
within one node (its GPUs talk over the node's own links).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sim.config.models import LanguageModel
from sim.config.scenario import Scenario, ServedWorkload, TrainingWorkload
from sim.errors import Problem
from sim.model.policies import POWER_POLICIES, QUEUE_POLICIES
from sim.model.pools import Capacity, Demand, Placement, PoolState


def build_pools(scn: Scenario) -> list[PoolState]:
    """The pools of a scenario (whose GPU types must exist), all GPUs free."""
    catalogue = scn.gpu_catalogue()
    return [PoolState(i, p, catalogue[p.gpu_type]) for i, p in enumerate(scn.pools)]


def replica_demand(
    wl: ServedWorkload, capacity: Capacity, models: Mapping[str, LanguageModel]
) -> Demand:
    """What a replica of ``wl`` needs: its GPUs in a pool it may use whose memory holds it."""
    eligible = capacity.demand(wl.gpus_per_replica, 0.0, wl.pool).pools
    need_gb = wl.replica_memory_gb(models)
    fits = tuple(p for p in eligible if p.gpu.memory_gb * wl.gpus_per_replica >= need_gb)
    return Demand(wl.gpus_per_replica, fits)


def place_replicas(
    scn: Scenario, capacity: Capacity
) -> tuple[dict[int, list[Placement]], list[Problem]]:
    """Place and pin every inference replica; return them by workload index, and the problems.

    Of an autoscaled workload only the first ``min_replicas`` are pinned (the others may go).

    Workloads are placed in the order of their names, so the order of ``[[workloads]]`` in the
    file does not matter.
    """
    placed: dict[int, list[Placement]] = {}
    models = scn.model_catalogue()
    problems: list[Problem] = []
    order = sorted(range(len(scn.workloads)), key=lambda i: scn.workloads[i].name)
    for index in order:
        wl = scn.workloads[index]
        if not isinstance(wl, ServedWorkload):
            continue
        gpus = wl.gpus_per_replica
        demand = replica_demand(wl, capacity, models)
        pools = demand.pools
        mine: list[Placement] = []
        for _ in range(wl.replicas):
            placement = capacity.place(demand)
            if placement is None:
                break
            if wl.autoscale is None or len(mine) < wl.autoscale.min_replicas:
                capacity.pin(placement)  # autoscaled: only the replicas always kept
            mine.append(placement)
        placed[index] = mine
        if pools and len(mine) < wl.replicas:
            where = ", ".join(
                f"{p.name!r}: {p.free_gpus} of {p.gpus_total} GPUs free, at most "
                f"{max(p.free)} in one node"
                for p in pools
            )
            problems.append(
                Problem(
                    f"workloads.{wl.name}.replicas",
                    f"only {len(mine)} of {wl.replicas} replicas of {gpus} GPU(s) fit (a replica "
                    f"that fits in a node stays within one) after the workloads placed before it "
                    f"(in name order); {where}",
                )
            )
    return placed, problems


@dataclass
class ModelCheck:
    """What the model finds wrong with a scenario before running it."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def check_model(scn: Scenario) -> ModelCheck:
    """Check the scheduler policies, place the replicas, and warn of jobs that can never fit.

    ``scn`` must have passed ``sim.config.check_scenario`` (its references resolve).
    """
    result = ModelCheck()
    if scn.scheduler.policy not in QUEUE_POLICIES:
        result.problems.append(
            Problem("scheduler.policy", QUEUE_POLICIES.unknown(scn.scheduler.policy))
        )
    if scn.scheduler.power_policy not in POWER_POLICIES:
        result.problems.append(
            Problem("scheduler.power_policy", POWER_POLICIES.unknown(scn.scheduler.power_policy))
        )
    capacity = Capacity(build_pools(scn))
    _, problems = place_replicas(scn, capacity)
    result.problems.extend(problems)
    for wl in scn.workloads:
        if isinstance(wl, TrainingWorkload):
            # Jobs of varying size: whether one GPU fits (larger ones are rejected one by one).
            gpus = wl.fixed_gpus or 1
            reason = capacity.never_fits(capacity.demand(gpus, wl.memory_gb_per_gpu, wl.pool))
            if reason is not None:
                result.warnings.append(
                    Problem(
                        f"workloads.{wl.name}.gpus",
                        f"every job will be rejected ({reason})",
                    )
                )
    return result
