"""Autoscaling of a served workload's replicas, sharing GPUs with training.

Every ``interval`` (a clock entry in the ``DECIDE`` phase, under the workload's key, so the
engines have handled everything before it and their counts are exact) the autoscaler reads
the requests its engine holds and has waiting, and wants ``ceil((held + waiting) / target)``
replicas, within ``min_replicas`` and ``max_replicas``. The count it compares with is every
replica not removed: serving, loading, or down and waiting for room after a failure.

- **Up.** It places each missing replica at once (``Capacity.place``; with
  ``scheduler.preempt`` and no room, ``TrainingScheduler.take_for`` kills training jobs for
  it: inference outranks training), stopping at the first that finds no room (it tries again
  at the next interval). A replica removed earlier is placed again under its old number (the
  lowest first); otherwise the engine grows by one (``InferenceEngine.add_slot``). The replica
  holds its GPUs loading its model for ``load_time`` and serves from then (``bring_up``).
  Event ``replica_added`` (detail: its nodes) at the placement, ``replica_ready`` when it serves.
- **Down.** When even the most wanted by the decisions of the last ``down_window`` (the
  latest included) is below the count: one idle replica per interval (the highest-numbered
  one that is up and holds no request; none if all are busy), never below ``min_replicas``: it
  is retired, its GPUs are given back and the training queue decides at once. Event
  ``replica_removed``.

A loading replica whose node goes down is handled by the node board like any replica: it waits
for room and, placed again, serves at once (its model load is not paid again).
"""

from __future__ import annotations

import math
from collections import deque
from functools import partial
from heapq import heappop, heappush
from typing import TYPE_CHECKING

from sim.config.scenario import Autoscale
from sim.model.clock import DECIDE, Clock, priority
from sim.model.pools import Capacity, Demand, Placement
from sim.model.power import PoolMeter
from sim.record import codes

if TYPE_CHECKING:
    from sim.model.inference import InferenceEngine, InferenceHub
    from sim.model.ledger import PowerLedger
    from sim.model.training import TrainingScheduler
    from sim.record.recorder import Recorder


class Autoscaler:
    """Adds and removes one engine's replicas on a fixed interval."""

    def __init__(
        self,
        clock: Clock,
        engine: InferenceEngine,
        key: int,
        spec: Autoscale,
        demand: Demand,
        capacity: Capacity,
        meters: list[PoolMeter],
        ledger: PowerLedger,
        scheduler: TrainingScheduler,
        hub: InferenceHub,
        recorder: Recorder,
        horizon_s: float,
    ) -> None:
        self.clock = clock
        self.engine = engine
        self.spec = spec
        self.demand = demand
        self.capacity = capacity
        self.meters = meters
        self.ledger = ledger
        self.scheduler = scheduler
        self.hub = hub
        self.recorder = recorder
        self.horizon = horizon_s
        self.prio = priority(DECIDE, key)
        self.removed: list[int] = []
        """Numbers of removed replicas, a heap: placed again lowest first."""
        self.loading: dict[int, Placement] = {}
        """Replicas loading their model, and where."""
        self.added = 0
        self.dropped = 0
        """Replicas added and removed so far."""
        self.recent: deque[int] = deque(maxlen=int(spec.down_window_s // spec.interval_s) + 1)
        """The counts wanted by the decisions within ``down_window``, the latest last."""
        self._tick_cb = self._tick
        self._schedule(spec.interval_s)

    @property
    def count(self) -> int:
        """Replicas not removed: serving, loading, or down and waiting for room."""
        return len(self.engine.replicas) - len(self.removed)

    def wanted(self, t: float) -> int:
        """The replicas the load asks for at ``t``, within the bounds.

        ``queue``: ceil((held + waiting) / target). ``ttft``: ceil(count × observed / target),
        the observed TTFT being the larger of the mean TTFT of the first tokens since the last
        decision and the wait of the oldest request still waiting (its TTFT is at least that):
        the replicas scale in proportion to how far the TTFT is from its target.
        """
        spec, engine = self.spec, self.engine
        if spec.metric == "ttft":
            want = math.ceil(self.count * engine.ttft_signal(t) / spec.target)
        else:
            want = math.ceil((engine.in_service + engine.waiting) / spec.target)
        return min(max(want, spec.min_replicas), spec.max_replicas)

    def _schedule(self, t: float) -> None:
        if t < self.horizon:
            self.clock.call_at(t, self.prio, self._tick_cb)

    def _tick(self) -> None:
        """One decision: scale up to the wanted count, or down by one idle replica."""
        t = self.clock.now
        self._schedule(t + self.spec.interval_s)
        want, have = self.wanted(t), self.count
        recent = self.recent
        recent.append(want)
        if want > have:
            for _ in range(want - have):
                if not self._add(t):
                    break
        elif (max(recent) if len(recent) > 1 else want) < have:
            self._remove(t)

    def _add(self, t: float) -> bool:
        """Place one more replica, loading from ``t``; False if there is no room for it."""
        engine = self.engine
        r = self.removed[0] if self.removed else len(engine.replicas)
        owner = (engine, r)
        placement = self.capacity.place(self.demand, owner)
        if placement is None:
            placement = self.scheduler.take_for(self.demand, owner)
            if placement is None:
                return False
        if self.removed:
            heappop(self.removed)
            engine.replicas[r] = placement
        else:
            engine.add_slot(placement)
        p = placement.pool.index
        self.meters[p].change(t, 0, placement.gpus)
        self.loading[r] = placement
        self.added += 1
        self.recorder.event(
            t, codes.REPLICA_ADDED, engine.index, p, r, placement.gpus, placement.nodes
        )
        ready = partial(self._ready, r, placement)
        self.clock.call_at(t + self.spec.load_time_s, self.prio, ready)
        return True

    def _ready(self, r: int, placement: Placement) -> None:
        """Replica ``r`` has loaded its model on ``placement``: it serves.

        Unless it left that placement meanwhile: its node went down (the node board placed it
        again, or will), or it was removed (and maybe added again, with a timer of its own).
        If a node of the placement is being drained, the replica is removed instead: it would
        hold up the maintenance; the next decision places it elsewhere.
        """
        if self.loading.get(r) is not placement:
            return
        del self.loading[r]
        engine = self.engine
        if engine.replicas[r] is not placement:
            return
        t = self.clock.now
        pool = placement.pool
        if not all(pool.placeable[n] for n, _ in placement.nodes):
            engine.replicas[r] = None  # never served: down since it was added
            self._give_back(r, placement, t)
            return
        p = placement.pool.index
        ledger = self.ledger
        engine.bring_up(r, placement, ledger.speed_inference[p], ledger.extra_w[p], t)
        self.recorder.event(t, codes.REPLICA_READY, engine.index, p, r, placement.gpus)
        engine.start_held(t)
        ledger.check()
        self.hub.wake()

    def _remove(self, t: float) -> None:
        """Retire the highest-numbered idle replica, if any, and give its GPUs back.

        Never one of the first ``min_replicas`` (their GPUs are pinned: the scheduler counts
        them as held for the whole run), and never below ``min_replicas`` serving.
        """
        engine = self.engine
        if self.count - len(self.loading) <= self.spec.min_replicas:
            return
        idle = [r for r in engine.idle_replicas() if r >= self.spec.min_replicas]
        if not idle:
            return
        r = idle[0]
        placement = engine.replicas[r]
        assert placement is not None
        retired = engine.retire(r, t)
        assert retired, "an idle replica retires at once"
        self._give_back(r, placement, t)

    def _give_back(self, r: int, placement: Placement, t: float) -> None:
        """Replica ``r`` is removed: its GPUs go back and the training queue decides."""
        engine = self.engine
        p = placement.pool.index
        self.meters[p].change(t, 0, -placement.gpus)
        self.capacity.release(placement)
        heappush(self.removed, r)
        self.dropped += 1
        self.recorder.event(t, codes.REPLICA_REMOVED, engine.index, p, r, placement.gpus)
        self.hub.wake()
        self.scheduler.decide_now()
