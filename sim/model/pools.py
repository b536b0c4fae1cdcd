"""GPU pools and the capacity object the scheduler asks before it starts anything.

Each pool keeps its nodes in buckets by free-GPU count, so finding room for a gang of GPUs
costs O(GPUs per node + nodes touched), never a scan of every node. Placement is best fit: a
gang no larger than a node goes, whole, to the fullest node that can hold it (or waits: its
GPUs talk over the node's own links); a larger gang takes whole free nodes first, then the
node that best fits the rest, so it spans as few nodes as possible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sim.config.catalogue import GpuType
from sim.config.scenario import Pool


class PoolState:
    """The nodes of one pool and which of their GPUs are free."""

    def __init__(self, index: int, cfg: Pool, gpu: GpuType) -> None:
        self.index = index
        self.name = cfg.name
        self.gpu = gpu
        self.speed = gpu.speed
        self.nodes = cfg.nodes
        self.gpus_per_node = cfg.gpus_per_node
        self.gpus_total = cfg.gpus
        self.free_gpus = cfg.gpus
        self.pinned_gpus = 0
        self.pinned_node = [0] * cfg.nodes
        self._most_unpinned: int | None = cfg.gpus_per_node
        per = cfg.gpus_per_node
        self.free = [per] * cfg.nodes
        self.buckets: list[list[int]] = [[] for _ in range(per + 1)]
        self.buckets[per] = list(range(cfg.nodes - 1, -1, -1))  # node 0 is taken first
        self.pos = [cfg.nodes - 1 - n for n in range(cfg.nodes)]
        self.placeable = [True] * cfg.nodes
        """Whether work may be placed on each node (not down, not draining)."""
        self.spare = [0] * cfg.nodes
        """Free GPUs of nodes that are not placeable (kept out of the buckets)."""
        self.occupants: list[dict[Placement, None]] = [{} for _ in range(cfg.nodes)]
        """The placements (replicas and jobs) holding GPUs on each node, in placement order."""

    @property
    def most_unpinned(self) -> int:
        """The most GPUs any node has that no static replica holds (found once after pins)."""
        if self._most_unpinned is None:
            self._most_unpinned = self.gpus_per_node - min(self.pinned_node)
        return self._most_unpinned

    @property
    def allocated_gpus(self) -> int:
        """GPUs held by replicas and jobs."""
        return self.gpus_total - self.free_gpus

    def _set_free(self, node: int, new: int) -> None:
        bucket = self.buckets[self.free[node]]
        i = self.pos[node]
        moved = bucket[-1]
        bucket[i] = moved
        self.pos[moved] = i
        bucket.pop()
        target = self.buckets[new]
        self.pos[node] = len(target)
        target.append(node)
        self.free[node] = new

    def allocate(self, gpus: int) -> list[tuple[int, int]] | None:
        """Take ``gpus`` GPUs, best fit: [(node, count), ...], or None if there is no room.

        A gang no larger than a node takes one node or nothing.
        """
        if gpus > self.free_gpus:
            return None
        per = self.gpus_per_node
        buckets = self.buckets
        if gpus <= per:
            for k in range(gpus, per + 1):
                if buckets[k]:
                    node = buckets[k][-1]
                    self._set_free(node, k - gpus)
                    self.free_gpus -= gpus
                    return [(node, gpus)]
            return None
        taken: list[tuple[int, int]] = []
        need = gpus
        while need:
            if need >= per and buckets[per]:
                k = take = per
            else:
                k = next((k for k in range(min(need, per), per + 1) if buckets[k]), 0)
                if k:
                    take = need
                else:
                    k = next(k for k in range(min(need, per) - 1, 0, -1) if buckets[k])
                    take = k
            node = buckets[k][-1]
            self._set_free(node, k - take)
            taken.append((node, take))
            need -= take
        self.free_gpus -= gpus
        return taken

    def pin(self, nodes: list[tuple[int, int]]) -> None:
        """Mark GPUs taken by ``allocate`` as held for the whole run (a static replica)."""
        for node, count in nodes:
            self.pinned_node[node] += count
            self.pinned_gpus += count
        self._most_unpinned = None

    def release(self, nodes: list[tuple[int, int]]) -> None:
        """Give back GPUs taken by ``allocate``."""
        for node, count in nodes:
            if self.placeable[node]:
                self._set_free(node, self.free[node] + count)
                self.free_gpus += count
            else:
                self.spare[node] += count

    def withdraw(self, node: int) -> None:
        """Place nothing more on ``node`` (it is going down or draining)."""
        if self.placeable[node]:
            self.placeable[node] = False
            self.spare[node] = self.free[node]
            self.free_gpus -= self.free[node]
            self._set_free(node, 0)

    def restore(self, node: int) -> None:
        """Let work be placed on ``node`` again."""
        if not self.placeable[node]:
            self.placeable[node] = True
            self._set_free(node, self.spare[node])
            self.free_gpus += self.spare[node]
            self.spare[node] = 0


@dataclass(frozen=True, slots=True)
class Demand:
    """What a replica or job needs: a number of GPUs in one of the eligible pools (in order)."""

    gpus: int
    pools: tuple[PoolState, ...]


@dataclass(slots=True, eq=False)
class Placement:
    """Where a replica or job runs: its pool and the GPUs it holds on each node.

    Compared by identity, so a node can list the placements on it.
    """

    pool: PoolState
    nodes: list[tuple[int, int]]
    gpus: int
    owner: object = None
    """The job, or the (engine, replica) pair, that holds it."""


class Capacity:
    """The one place that says whether work can start, and where.

    It checks GPUs and memory now; power and cooling headroom join here later.
    """

    def __init__(self, pools: list[PoolState], track: bool = False) -> None:
        self.pools = pools
        self.track = track
        """Keep each node's list of placements (``PoolState.occupants``): needed when nodes can
        go down, skipped otherwise (it costs every start and end of a job)."""
        self._never: dict[Demand, str | None] = {}
        self.on_vacated: Callable[[PoolState, int], None] | None = None
        """Told when the last placement leaves a node that takes no new work (draining)."""

    def demand(self, gpus: int, memory_gb_per_gpu: float, pool: str | None) -> Demand:
        """The demand of work needing ``gpus`` GPUs with this memory each (in ``pool`` if given)."""
        eligible = tuple(
            p
            for p in self.pools
            if (pool is None or p.name == pool) and p.gpu.memory_gb >= memory_gb_per_gpu
        )
        return Demand(gpus, eligible)

    def place(self, demand: Demand, owner: object = None) -> Placement | None:
        """Take room for ``demand`` in the first eligible pool that has it, or return None."""
        gpus = demand.gpus
        for pool in demand.pools:
            if pool.free_gpus >= gpus:
                placement = self.place_in(pool, gpus, owner)
                if placement is not None:
                    return placement
        return None

    def place_in(self, pool: PoolState, gpus: int, owner: object = None) -> Placement | None:
        """Take room for ``gpus`` GPUs in ``pool``, or return None."""
        nodes = pool.allocate(gpus)
        if nodes is None:
            return None
        placement = Placement(pool, nodes, gpus, owner)
        if self.track:
            occupants = pool.occupants
            for node, _ in nodes:
                occupants[node][placement] = None
        return placement

    def pin(self, placement: Placement) -> None:
        """Mark a placement as held for the whole run (a static inference replica)."""
        self._never.clear()
        placement.pool.pin(placement.nodes)

    def release(self, placement: Placement) -> None:
        """Give back a placement's GPUs."""
        pool = placement.pool
        pool.release(placement.nodes)
        if not self.track:
            return
        occupants = pool.occupants
        for node, _ in placement.nodes:
            del occupants[node][placement]
        if self.on_vacated is not None:
            for node, _ in placement.nodes:
                if not occupants[node] and not pool.placeable[node]:
                    self.on_vacated(pool, node)

    def never_fits(self, demand: Demand) -> str | None:
        """Why ``demand`` can never be placed, or None if it could be once room frees up.

        Only static replicas are pinned, all before the run starts, so the answer is kept.
        """
        if demand in self._never:
            return self._never[demand]
        reason = self._never_fits(demand)
        self._never[demand] = reason
        return reason

    def _never_fits(self, demand: Demand) -> str | None:
        if not demand.pools:
            return "no eligible pool: memory or pool constraint"
        gpus = demand.gpus
        if any(
            (p.most_unpinned if gpus <= p.gpus_per_node else p.gpus_total - p.pinned_gpus) >= gpus
            for p in demand.pools
        ):
            return None
        most = max(p.gpus_total - p.pinned_gpus for p in demand.pools)
        where = ", ".join(
            f"{p.name}: {p.gpus_total} GPUs, {p.pinned_gpus} held by inference replicas, at most "
            f"{p.most_unpinned} free in one node"
            for p in demand.pools
        )
        return (
            f"needs {gpus} GPUs (within one node if it fits in one); the most an eligible pool "
            f"can offer is {most} ({where})"
        )
