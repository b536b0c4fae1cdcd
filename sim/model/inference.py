"""Inference serving: one FIFO queue per workload, served by its replicas, as a window dispatcher.

Requests are plain records in column lists, never SimPy processes or Resources. Each engine
keeps one SimPy event scheduled at its next internal event (an arrival or a completion). When
it fires, the engine handles, in time order, every internal event up to the next event anything
else has scheduled (``env.peek()``), so nothing outside the engine can happen in between and
its state is exact whenever another process looks at it. Those internal events are timed
explicitly, not by ``env.now``.

A request goes to the lowest-numbered free replica, else waits in the queue (or is rejected if
``max_queue`` requests are already waiting). A completion at the same instant as an arrival is
handled first, so the arriving request can take the replica it frees. Its service time is its
drawn demand (on H100-SXM) divided by the speed of its replica's GPUs.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import TYPE_CHECKING

import numpy as np
import simpy

from sim.config.scenario import InferenceWorkload
from sim.model.arrivals import ArrivalStream
from sim.model.clock import call_at
from sim.model.pools import Placement
from sim.model.power import PoolMeter
from sim.model.sampling import Draw
from sim.record.codes import OK, REJECTED, UNFINISHED

if TYPE_CHECKING:
    from sim.record.recorder import Recorder

INF = float("inf")
FLUSH_ROWS = 131072
"""Finished requests are handed to the recorder in blocks of at least this many."""


class InferenceEngine:
    """The queue and replicas of one inference workload."""

    def __init__(
        self,
        env: simpy.Environment,
        index: int,
        workload: InferenceWorkload,
        replicas: list[Placement],
        meters: list[PoolMeter],
        arrivals: ArrivalStream,
        demand: Draw,
        recorder: Recorder,
        horizon_s: float,
    ) -> None:
        self.env = env
        self.index = index
        self.name = workload.name
        self.recorder = recorder
        self.horizon = horizon_s
        self.max_queue = workload.max_queue if workload.max_queue is not None else 1 << 62
        self.replicas = replicas
        self.gpus = workload.gpus_per_replica
        self.speed = [p.pool.speed for p in replicas]
        self.meter = [meters[p.pool.index] for p in replicas]
        self.replica_pool = np.array([p.pool.index for p in replicas] + [-1], dtype=np.int64)
        self._arrivals = arrivals
        self._demand = demand
        self.free: list[int] = list(range(len(replicas)))  # a heap: lowest number first
        self.completions: list[tuple[float, int]] = []  # a heap of (end time, replica)
        self.queue: deque[int] = deque()
        self.serving = [-1] * len(replicas)  # request index in service on each replica
        # Per-request columns for requests base, base+1, ...; flushed to the recorder in blocks.
        self.base = 0
        self.arrived = 0  # requests arrived so far (the next request's index)
        self.arrival: list[float] = []
        self.demand: list[float] = []
        self.start: list[float] = []
        self.end: list[float] = []
        self.replica: list[int] = []
        self.status: list[int] = []
        self._chunk: list[float] = []
        self._pos = 0
        self._refill()
        self._wake_at(min(self._chunk[0], INF))

    # -- what other processes may read -----------------------------------------------------
    @property
    def waiting(self) -> int:
        """Requests waiting for a replica."""
        return len(self.queue)

    @property
    def in_service(self) -> int:
        """Requests being served."""
        return len(self.replicas) - len(self.free)

    # -- the dispatcher ------------------------------------------------------------------
    def _refill(self) -> None:
        """Take the next chunk of arrivals and their demands; flush finished requests."""
        chunk = self._arrivals.next_chunk()
        if not chunk:
            self._chunk, self._pos = [INF], 0
            return
        n = len(chunk)
        self._chunk, self._pos = chunk, 0
        self.arrival.extend(chunk)
        self.demand.extend(self._demand(n).tolist())
        nan = float("nan")
        self.start.extend([nan] * n)
        self.end.extend([nan] * n)
        self.replica.extend([-1] * n)
        self.status.extend([UNFINISHED] * n)
        self._flush(final=False)

    def _wake_at(self, t: float) -> None:
        if t < self.horizon:
            call_at(self.env, t, self._run)

    def _run(self, _event: simpy.Event) -> None:
        """Handle every internal event up to the next external one, then sleep until the next."""
        peek = self.env.peek
        horizon = self.horizon
        completions, free, queue, serving = self.completions, self.free, self.queue, self.serving
        speed, meter, gpus = self.speed, self.meter, self.gpus
        arrival_chunk, pos, base = self._chunk, self._pos, self.base
        demand, start, end, replica, status = (
            self.demand,
            self.start,
            self.end,
            self.replica,
            self.status,
        )
        heappush, heappop = heapq.heappush, heapq.heappop
        max_queue = self.max_queue
        while True:
            ta = arrival_chunk[pos]
            tc = completions[0][0] if completions else INF
            t = ta if ta < tc else tc
            if t >= horizon or t > peek():
                break
            if ta < tc:  # an arrival (at a tie, the completion goes first and frees its replica)
                i = self.arrived
                self.arrived = i + 1
                if free:
                    r = heappop(free)
                    k = i - base
                    heappush(completions, (t + demand[k] / speed[r], r))
                    serving[r] = i
                    start[k] = t
                    replica[k] = r
                    meter[r].change(t, gpus)
                elif len(queue) < max_queue:
                    queue.append(i)
                else:
                    status[i - base] = REJECTED
                pos += 1
                if pos == len(arrival_chunk):
                    self._refill()
                    arrival_chunk, pos, base = self._chunk, 0, self.base
                    demand, start, end = self.demand, self.start, self.end
                    replica, status = self.replica, self.status
            else:  # a completion
                r = heappop(completions)[1]
                k = serving[r] - base
                end[k] = t
                status[k] = OK
                if queue:
                    i = queue.popleft()
                    k = i - base
                    heappush(completions, (t + demand[k] / speed[r], r))
                    serving[r] = i
                    start[k] = t
                    replica[k] = r
                else:
                    serving[r] = -1
                    heappush(free, r)
                    meter[r].change(t, -gpus)
        self._pos = pos
        self._wake_at(t)

    # -- recording -----------------------------------------------------------------------
    def _flush(self, final: bool) -> None:
        """Hand every finished request before the oldest unfinished one to the recorder."""
        cut = self.arrived
        if not final:
            if self.queue:
                cut = min(cut, self.queue[0])
            busy = [i for i in self.serving if i >= 0]
            if busy:
                cut = min(cut, min(busy))
            if cut - self.base < FLUSH_ROWS:
                return
        k = cut - self.base
        if k <= 0:
            return
        replica = np.array(self.replica[:k], dtype=np.int64)
        self.recorder.requests(
            self.index,
            arrival=np.array(self.arrival[:k]),
            start=np.array(self.start[:k]),
            end=np.array(self.end[:k]),
            replica=replica,
            pool=self.replica_pool[replica],
            status=np.array(self.status[:k], dtype=np.int64),
        )
        for column in (self.arrival, self.demand, self.start, self.end, self.replica, self.status):
            del column[:k]
        self.base = cut

    def finish(self) -> None:
        """At the horizon: requests still waiting or in service stay ``unfinished``; record all."""
        self._flush(final=True)
