"""Nodes with state: failures and repairs, outages and maintenance of nodes, power-offs.

A node is up, or down for one or more reasons at once (failed, an outage of its pool,
maintenance, no power); it is up again when every reason has cleared. A node that goes down
interrupts what runs on it, found through the placements it lists (never a scan): training jobs
are killed through the scheduler's one interruption path (they lose the work since their last
checkpoint and queue again), inference replicas go down (their request in service is retried or
fails) and wait for room, which they get before any training job (inference outranks training).
A down node draws nothing.

Node failures are per pool: each up node's time to failure is drawn from the pool's
``mtbf`` (exponential) or ``time_to_failure`` distribution when it comes up, and its repair
time from ``repair`` when it fails. A node that was down for another reason starts a fresh time
to failure when it returns (exact for exponential failures; for others, the node is taken as
good as new).

Maintenance with ``drain`` first stops placing work on its nodes; each goes down once the work
on it has ended (replicas finish their request in service and move) or at ``drain_timeout``,
and stays down for ``duration``.

When the site's IT budget falls below the idle draw of its powered nodes (no power in a grid
outage, a generator too small, a cooling outage), the power ladder asks for nodes to be powered
off: nodes holding no inference replica first (training yields first), later pools before
earlier ones, higher-numbered nodes first; they power on again, the last first, as the budget
allows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from sim.config.scenario import Scenario
from sim.inputs import Inputs
from sim.model.clock import DECIDE, SITE, Clock, priority
from sim.model.outages import Window
from sim.model.pools import Capacity, Demand, Placement, PoolState
from sim.model.power import PoolMeter
from sim.model.rng import RandomStreams
from sim.model.sampling import Draw, make_sampler
from sim.model.training import Job, TrainingScheduler
from sim.record import codes

if TYPE_CHECKING:
    from sim.model.inference import InferenceEngine, InferenceHub
    from sim.model.ledger import PowerLedger
    from sim.record.recorder import Recorder

FAILED, OUTAGE, MAINTENANCE, NO_POWER, DRAINING = 1, 2, 4, 8, 16
"""Reasons a node is down (bits), and draining (not a reason to be down)."""
SITE_PRIORITY = priority(SITE)
DECIDE_PRIORITY = priority(DECIDE)
NAN = math.nan


@dataclass
class WindowStats:
    """What an outage or maintenance window hit."""

    window: Window
    gpus_hit: int = 0
    jobs_hit: int = 0
    replicas_hit: int = 0
    end_s: float = NAN
    """When it ended: the last node back up (maintenance), or the scheduled end."""
    pending: set[tuple[int, int]] = field(default_factory=set)
    """Maintenance: nodes not yet back up."""
    taken: set[int] = field(default_factory=set)
    """Maintenance: nodes whose downtime has begun."""


class NodeBoard:
    """Every node's state, and the failures, repairs, outages and maintenance that change it."""

    def __init__(
        self,
        clock: Clock,
        scn: Scenario,
        pools: list[PoolState],
        meters: list[PoolMeter],
        capacity: Capacity,
        recorder: Recorder,
        streams: RandomStreams,
        inputs: Inputs,
        windows: list[Window],
    ) -> None:
        self.clock = clock
        self.pools = pools
        self.meters = meters
        self.capacity = capacity
        self.recorder = recorder
        self.horizon = scn.scenario.duration_s
        self.node_w = [
            cfg.gpus_per_node * p.gpu.idle_w + cfg.node_overhead_w
            for cfg, p in zip(scn.pools, pools, strict=True)
        ]
        """Idle draw of one node of each pool (W)."""
        self.mask = [[0] * p.nodes for p in pools]
        self.draining = [[False] * p.nodes for p in pools]
        self.state = [[codes.NODE_UP_STATE] * p.nodes for p in pools]
        self.since = [[0.0] * p.nodes for p in pools]
        self.causes: list[list[dict[int, list[str]]]] = [
            [{} for _ in range(p.nodes)] for p in pools
        ]
        """Per node and reason: the causes holding it (several windows may overlap); the node is
        down while any reason has one."""
        self.shown_cause: list[list[str | None]] = [[None] * p.nodes for p in pools]
        self.closed: dict[tuple[int, int], tuple[int, str | None, float, float]] = {}
        """Per node, its last closed interval (state, cause, start, end), held back until the
        next one closes: a state shown for no time (down and up at one instant) is dropped, and
        the intervals on either side of it, being in the same state, are merged into one."""
        self.fail_token = [[0] * p.nodes for p in pools]
        self.powered_off: list[tuple[int, int]] = []
        """Nodes powered off for want of power, in the order they went."""
        self.ttf: list[Draw | None] = []
        self.repair: list[Draw | None] = []
        for cfg in scn.pools:
            ttf_spec = cfg.time_to_failure
            if ttf_spec is None and cfg.mtbf_s is not None:
                from sim.config.distributions import Exponential

                ttf_spec = Exponential.model_validate({"dist": "exponential", "mean": cfg.mtbf_s})
            if ttf_spec is None or cfg.repair is None:
                self.ttf.append(None)
                self.repair.append(None)
                continue
            self.ttf.append(
                make_sampler(ttf_spec, streams.stream("pool", cfg.name, "failure"), inputs)
            )
            self.repair.append(
                make_sampler(cfg.repair, streams.stream("pool", cfg.name, "repair"), inputs)
            )
        self.failures = 0
        self.nodes_down = 0
        self.repair_s: list[float] = []
        self.failed_since: dict[tuple[int, int], float] = {}
        self.windows = [WindowStats(w) for w in windows]
        self.active: list[WindowStats] = []
        """Grid and cooling windows under way (what power-offs are charged to)."""
        self.waiting: list[tuple[InferenceEngine, int]] = []
        """Replicas down, waiting for room."""
        self.demand: dict[int, Demand] = {}
        """Each inference engine's replica demand, by workload index."""
        self.ledger: PowerLedger | None = None
        self.scheduler: TrainingScheduler | None = None
        self.hub: InferenceHub | None = None
        self._vacated_due: set[tuple[int, int]] = set()
        self.changing = False
        """True while a node's work is being stopped (the audit waits for the end)."""
        self.drains: dict[tuple[int, int], WindowStats] = {}
        """The maintenance window each draining node drains for."""

    # -- wiring ---------------------------------------------------------------------------
    def attach(
        self,
        ledger: PowerLedger,
        scheduler: TrainingScheduler,
        hub: InferenceHub,
        engines: list[InferenceEngine],
        demands: dict[int, Demand],
    ) -> None:
        """Connect the work nodes carry; schedule the first failures and every window."""
        self.ledger = ledger
        self.scheduler = scheduler
        self.hub = hub
        self.demand = demands
        for engine in engines:
            for r, placement in enumerate(engine.replicas):
                if placement is not None:
                    placement.owner = (engine, r)
            engine.on_retired = self._on_retired
        scheduler.before_decide = self.place_waiting
        self.capacity.on_vacated = self._on_vacated
        for p, pool in enumerate(self.pools):
            for n in range(pool.nodes):
                self._schedule_failure(p, n, 0.0)
        for stats in self.windows:
            w = stats.window
            self.clock.call_at(w.start_s, SITE_PRIORITY, partial(self._window_start, stats))

    # -- states and intervals -------------------------------------------------------------
    def _display(self, p: int, n: int) -> tuple[int, str | None]:
        """The state a node shows, and its cause."""
        mask = self.mask[p][n]
        causes = self.causes[p][n]
        for bit, state in (
            (FAILED, codes.NODE_FAILED),
            (OUTAGE, codes.NODE_FAILED),
            (MAINTENANCE, codes.NODE_MAINTENANCE),
            (NO_POWER, codes.NODE_NO_POWER),
        ):
            if mask & bit:
                return state, causes[bit][-1]
        if self.draining[p][n]:
            return codes.NODE_DRAINING, causes[DRAINING][-1]
        return codes.NODE_UP_STATE, None

    def _show(self, p: int, n: int, t: float) -> None:
        """Record the node's interval that ends now if its shown state changes."""
        new, cause = self._display(p, n)
        if new == self.state[p][n] and cause == self.shown_cause[p][n]:
            return
        if t > self.since[p][n]:
            self._close(p, n, t)
        self.state[p][n] = new
        self.shown_cause[p][n] = cause
        self.since[p][n] = t

    def _close(self, p: int, n: int, t: float) -> None:
        """Close the node's shown interval at ``t`` (NaN: the end of the run)."""
        state, cause, since = self.state[p][n], self.shown_cause[p][n], self.since[p][n]
        last = self.closed.pop((p, n), None)
        if last is not None and last[:2] == (state, cause) and last[3] == since:
            since = last[2]
        elif last is not None:
            self.recorder.node_interval(p, n, last[0], last[2], last[3], last[1])
        if math.isnan(t):
            self.recorder.node_interval(p, n, state, since, t, cause)
        else:
            self.closed[(p, n)] = (state, cause, since, t)

    def check(self) -> None:
        """(Audit) nothing is placed on a node that is down, and its GPUs count as not up.

        Not while a node is going down or coming up (its work is stopped one piece at a time).
        """
        if self.changing:
            return
        for p, pool in enumerate(self.pools):
            down = 0
            for n in range(pool.nodes):
                if self.mask[p][n]:
                    down += 1
                    assert not pool.occupants[n], (pool.name, n, "work on a node that is down")
                    assert not pool.placeable[n], (pool.name, n)
            assert self.meters[p].up_gpus == (pool.nodes - down) * pool.gpus_per_node

    def up(self, p: int, n: int) -> bool:
        """Whether node ``n`` of pool ``p`` is up."""
        return not self.mask[p][n]

    # -- going down and coming up ---------------------------------------------------------
    def _down(self, p: int, n: int, bit: int, t: float, cause: str) -> tuple[int, int]:
        """Add a reason for the node to be down; if it was up, stop its work and its power.

        Returns (jobs, replicas) interrupted. The node must already be withdrawn from
        placement (so nothing killed here is placed back on it in this instant).
        """
        was = self.mask[p][n]
        self.mask[p][n] |= bit
        self.causes[p][n].setdefault(bit, []).append(cause)
        self._show(p, n, t)
        if was:
            return 0, 0
        pool = self.pools[p]
        pool.withdraw(n)
        self.nodes_down += 1
        self.fail_token[p][n] += 1
        jobs = replicas = 0
        assert self.scheduler is not None
        self.changing = True
        for placement in list(pool.occupants[n]):
            owner = placement.owner
            if isinstance(owner, Job):
                self.scheduler.interrupt(owner, t, cause, keep=False)
                jobs += 1
            elif isinstance(owner, tuple):
                self._replica_down(owner[0], owner[1], t, cause)
                replicas += 1
        per = pool.gpus_per_node
        self.meters[p].power_nodes(t, -per, -self.node_w[p])
        assert self.ledger is not None
        self.ledger.node_power(t, p, -per, -self.node_w[p])
        self.changing = False
        self.recorder.event(t, codes.NODE_DOWN, -1, p, n, per, cause)
        return jobs, replicas

    def _up(self, p: int, n: int, bit: int, t: float, cause: str | None = None) -> None:
        """Clear one cause of a reason for the node to be down.

        ``cause`` is the window's (None: the only one). Once no reason is left, the node serves
        again (or, if it drains, goes on draining).
        """
        causes = self.causes[p][n].get(bit)
        if not causes:
            return
        causes.remove(cause if cause is not None else causes[-1])
        if not causes:
            del self.causes[p][n][bit]
            self.mask[p][n] &= ~bit
        self._show(p, n, t)
        if self.mask[p][n]:
            return
        pool = self.pools[p]
        if not self.draining[p][n]:
            pool.restore(n)
        elif not pool.occupants[n]:
            self._on_vacated(pool, n)  # still draining and empty: down for its maintenance
        self.nodes_down -= 1
        per = pool.gpus_per_node
        self.meters[p].power_nodes(t, per, self.node_w[p])
        assert self.ledger is not None
        self.ledger.node_power(t, p, per, self.node_w[p])
        self.recorder.event(t, codes.NODE_UP, -1, p, n, per)
        self._schedule_failure(p, n, t)

    def _replica_down(self, engine: InferenceEngine, r: int, t: float, cause: str) -> None:
        placement = engine.replicas[r]
        engine.take_down(r, t)
        if placement is not None:
            self._release_replica(engine, r, placement, t)
        engine.start_held(t)  # its request, queued again, may find another replica free
        self.recorder.event(
            t,
            codes.REPLICA_DOWN,
            engine.index,
            placement.pool.index if placement else -1,
            r,
            engine.gpus,
            cause,
        )

    def _release_replica(
        self, engine: InferenceEngine, r: int, placement: Placement, t: float
    ) -> None:
        self.meters[placement.pool.index].change(t, 0, -placement.gpus)
        self.waiting.append((engine, r))
        self.capacity.release(placement)

    def place_waiting(self) -> None:
        """Place replicas that wait for room, in the order they went down (before any job).

        With ``scheduler.preempt`` a replica that finds no room kills training jobs for it.
        """
        if not self.waiting:
            return
        t = self.clock.now
        ledger = self.ledger
        assert ledger is not None
        still: list[tuple[InferenceEngine, int]] = []
        placed = False
        for engine, r in self.waiting:
            placement = self.capacity.place(self.demand[engine.index], (engine, r))
            if placement is None and self.scheduler is not None:
                placement = self.scheduler.take_for(self.demand[engine.index], (engine, r))
            if placement is None:
                still.append((engine, r))
                continue
            p = placement.pool.index
            self.meters[p].change(t, 0, placement.gpus)
            engine.bring_up(r, placement, ledger.speed_inference[p], ledger.extra_w[p], t)
            self.recorder.event(
                t, codes.REPLICA_UP, engine.index, p, r, placement.gpus, placement.nodes
            )
            engine.start_held(t)
            placed = True
        self.waiting = still
        if placed:
            ledger.check()
            assert self.hub is not None
            self.hub.wake()

    def _settle(self, t: float) -> None:
        """After nodes changed: rebalance power, place waiting replicas, let jobs start."""
        assert self.ledger is not None and self.scheduler is not None
        self.ledger.rebalance(t)
        self.place_waiting()
        self.scheduler.decide_now()

    # -- failures and repairs -------------------------------------------------------------
    def _schedule_failure(self, p: int, n: int, t: float) -> None:
        draw = self.ttf[p]
        if draw is None:
            return
        at = t + float(draw(1)[0])
        if at < self.horizon:
            token = self.fail_token[p][n]
            self.clock.call_at(at, SITE_PRIORITY, partial(self._fail, p, n, token))

    def _fail(self, p: int, n: int, token: int) -> None:
        if token != self.fail_token[p][n] or self.mask[p][n]:
            return
        t = self.clock.now
        self.failures += 1
        self._down(p, n, FAILED, t, "failure")
        repair = self.repair[p]
        assert repair is not None
        back = t + float(repair(1)[0])
        self.failed_since[(p, n)] = t
        self.clock.call_at(back, SITE_PRIORITY, partial(self._repaired, p, n))
        self._settle(t)

    def _repaired(self, p: int, n: int) -> None:
        t = self.clock.now
        self.repair_s.append(t - self.failed_since.pop((p, n)))
        self._up(p, n, FAILED, t)
        self._settle(t)

    # -- outage and maintenance windows ---------------------------------------------------
    def _window_start(self, stats: WindowStats) -> None:
        w = stats.window
        t = self.clock.now
        self.recorder.event(t, codes.OUTAGE_STARTED, -1, w.pool, -1, 0, f"{w.cause} ({w.target})")
        if w.kind in ("grid", "cooling"):
            self.active.append(stats)
            if w.end_s < self.horizon:
                self.clock.call_at(w.end_s, SITE_PRIORITY, partial(self._window_end, stats))
            return
        pool = self.pools[w.pool]
        m = w.maintenance
        if m is None or not m.drain:
            bit = OUTAGE if m is None else MAINTENANCE
            for n in w.nodes:
                pool.withdraw(n)
            for n in w.nodes:
                if not self.mask[w.pool][n]:
                    stats.gpus_hit += pool.gpus_per_node
                jobs, replicas = self._down(w.pool, n, bit, t, w.cause)
                stats.jobs_hit += jobs
                stats.replicas_hit += replicas
                if m is not None:
                    stats.pending.add((w.pool, n))
                    self.clock.call_at(
                        t + m.duration_s, SITE_PRIORITY, partial(self._node_back, stats, n, bit)
                    )
            if m is None and w.end_s < self.horizon:
                self.clock.call_at(w.end_s, SITE_PRIORITY, partial(self._window_end, stats))
            self._settle(t)
            return
        # Maintenance with drain: no new work; replicas move as their request ends; each node
        # goes down once empty, or at the drain timeout.
        for n in w.nodes:
            pool.withdraw(n)
            self.draining[w.pool][n] = True
            self.drains[(w.pool, n)] = stats
            self.causes[w.pool][n][DRAINING] = [w.cause]
            stats.pending.add((w.pool, n))
            self._show(w.pool, n, t)
        for n in w.nodes:
            for placement in list(pool.occupants[n]):
                owner = placement.owner
                if isinstance(owner, tuple):
                    engine, r = owner
                    if engine.retire(r, t):
                        self._replica_moves(engine, r, placement, t)
            if not pool.occupants[n]:
                self._drained(stats, n)
        self._update_order()
        self.clock.call_at(
            t + m.drain_timeout_s, SITE_PRIORITY, partial(self._drain_timeout, stats)
        )
        self._settle(t)
        assert self.hub is not None
        self.hub.wake()

    def _on_retired(self, engine: InferenceEngine, r: int, placement: Placement, t: float) -> None:
        """A replica on a draining node finished its request (inside its engine's loop)."""
        self.clock.call_at(t, DECIDE_PRIORITY, partial(self._moved_off, engine, r, placement))

    def _moved_off(self, engine: InferenceEngine, r: int, placement: Placement) -> None:
        if engine.replicas[r] is not placement:
            return  # its node went down first, in this instant: it was released then
        engine.replicas[r] = None
        self._replica_moves(engine, r, placement, self.clock.now)
        self.place_waiting()
        self._update_order()

    def _update_order(self) -> None:
        """Have the engines run in time order while any replica retires from a draining node."""
        assert self.hub is not None
        self.hub.in_order = any(e.retiring for e in self.hub.engines)

    def _replica_moves(
        self, engine: InferenceEngine, r: int, placement: Placement, t: float
    ) -> None:
        """A replica leaves a draining node (its request ended): it waits for room elsewhere."""
        self._release_replica(engine, r, placement, t)
        p, n = placement.pool.index, placement.nodes[0][0]
        stats = self.drains.get((p, n))
        if stats is not None:
            stats.replicas_hit += 1
        cause = stats.window.cause if stats is not None else "maintenance"
        self.recorder.event(t, codes.REPLICA_DOWN, engine.index, p, r, engine.gpus, cause)

    def _on_vacated(self, pool: PoolState, n: int) -> None:
        """The last work left a node that takes none: if it drains, take it down now."""
        p = pool.index
        stats = self.drains.get((p, n))
        if stats is None or not self.draining[p][n] or (p, n) in self._vacated_due:
            return
        self._vacated_due.add((p, n))
        self.clock.call_at(self.clock.now, SITE_PRIORITY, partial(self._drained_now, stats, n))

    def _drained_now(self, stats: WindowStats, n: int) -> None:
        p = stats.window.pool
        self._vacated_due.discard((p, n))
        if n not in stats.taken:
            self._drained(stats, n)
            self._settle(self.clock.now)

    def _drained(self, stats: WindowStats, n: int) -> None:
        """Take a drained node down for its maintenance."""
        w = stats.window
        m = w.maintenance
        assert m is not None
        t = self.clock.now
        stats.taken.add(n)
        if not self.mask[w.pool][n]:
            stats.gpus_hit += self.pools[w.pool].gpus_per_node
        self.draining[w.pool][n] = False
        self.drains.pop((w.pool, n), None)
        self.causes[w.pool][n].pop(DRAINING, None)
        jobs, replicas = self._down(w.pool, n, MAINTENANCE, t, w.cause)
        stats.jobs_hit += jobs
        stats.replicas_hit += replicas
        self.clock.call_at(
            t + m.duration_s, SITE_PRIORITY, partial(self._node_back, stats, n, MAINTENANCE)
        )

    def _drain_timeout(self, stats: WindowStats) -> None:
        w = stats.window
        t = self.clock.now
        changed = False
        for n in w.nodes:
            if n not in stats.taken:
                self._drained(stats, n)
                changed = True
        if changed:
            self._settle(t)

    def _node_back(self, stats: WindowStats, n: int, bit: int) -> None:
        w = stats.window
        t = self.clock.now
        self._up(w.pool, n, bit, t, w.cause)
        stats.pending.discard((w.pool, n))
        if not stats.pending:
            self._close_window(stats, t)
        self._settle(t)

    def _window_end(self, stats: WindowStats) -> None:
        w = stats.window
        t = self.clock.now
        if stats in self.active:
            self.active.remove(stats)
            self._close_window(stats, t)
            return  # the site's timeline restores the power, and the ledger the nodes
        for n in w.nodes:
            self._up(w.pool, n, OUTAGE, t, w.cause)
        self._close_window(stats, t)
        self._settle(t)

    def _close_window(self, stats: WindowStats, t: float) -> None:
        stats.end_s = t
        w = stats.window
        self.recorder.event(t, codes.OUTAGE_ENDED, -1, w.pool, -1, 0, f"{w.cause} ({w.target})")

    # -- power -------------------------------------------------------------------------------
    def fit_power(self, t: float, budget_w: float, draw_w: float, floor_w: float) -> bool:
        """Power nodes off until the idle draw fits ``budget_w``, or back on while the draw does.

        True if any node changed (the ledger reads the meters again).
        """
        changed = False
        if floor_w > budget_w:
            chosen = []
            for p, n in self._off_order():
                if floor_w <= budget_w:
                    break
                chosen.append((p, n))
                floor_w -= self.node_w[p]
            cause = self._power_cause()
            for p, n in chosen:
                self.pools[p].withdraw(n)
            for p, n in chosen:
                jobs, replicas = self._down(p, n, NO_POWER, t, cause)
                self.powered_off.append((p, n))
                if self.active:
                    stats = self.active[0]
                    stats.gpus_hit += self.pools[p].gpus_per_node
                    stats.jobs_hit += jobs
                    stats.replicas_hit += replicas
                changed = True
            if changed:  # replicas it stopped look for room in this instant's decision
                self.clock.call_at(t, DECIDE_PRIORITY, self._place_and_decide)
            return changed
        while self.powered_off:
            p, n = self.powered_off[-1]
            if draw_w + self.node_w[p] > budget_w:
                break
            self.powered_off.pop()
            if self.mask[p][n] == NO_POWER:
                draw_w += self.node_w[p]
            self._up(p, n, NO_POWER, t)
            changed = True
        if changed:  # replicas and jobs find the nodes back in this instant's decision
            self.clock.call_at(t, DECIDE_PRIORITY, self._place_and_decide)
        return changed

    def _place_and_decide(self) -> None:
        assert self.scheduler is not None
        self.place_waiting()
        self.scheduler.decide_now()

    def _power_cause(self) -> str:
        if self.active:
            w = self.active[0].window
            return f"{w.cause} ({w.target})"
        assert self.ledger is not None
        return codes.LIMIT_SOURCES[self.ledger.source]

    def _off_order(self) -> Iterator[tuple[int, int]]:
        """Up nodes in the order they are powered off.

        Empty ones, then those holding training only, then those holding replicas; within
        each, later pools and higher numbers first.
        """
        training: list[tuple[int, int]] = []
        serving: list[tuple[int, int]] = []
        for p in range(len(self.pools) - 1, -1, -1):
            pool = self.pools[p]
            for n in range(pool.nodes - 1, -1, -1):
                if self.mask[p][n]:
                    continue
                occupants = pool.occupants[n]
                if not occupants:
                    yield p, n
                elif any(isinstance(pl.owner, tuple) for pl in occupants):
                    serving.append((p, n))
                else:
                    training.append((p, n))
        yield from training
        yield from serving

    # -- the end ----------------------------------------------------------------------------
    def finish(self, horizon: float) -> None:
        """Close every node's interval and record the windows."""
        for p, pool in enumerate(self.pools):
            for n in range(pool.nodes):
                self._close(p, n, NAN)
        for stats in self.windows:
            w = stats.window
            self.recorder.outage(
                w.cause,
                w.target,
                w.start_s,
                stats.end_s,
                w.pool,
                stats.gpus_hit,
                stats.jobs_hit,
                stats.replicas_hit,
            )

    @property
    def mttr_s(self) -> float:
        """Mean time to repair of the repairs completed (NaN if none)."""
        return sum(self.repair_s) / len(self.repair_s) if self.repair_s else NAN
