"""Inference serving: one FIFO queue per workload; every workload woken by one shared alarm.

Requests are plain records in column lists, never SimPy processes or Resources. Each
``InferenceEngine`` (one per workload) holds its queue, its replicas' completions (a heap) and
its drawn arrivals. The ``InferenceHub`` keeps one heap of every engine's next internal event
and one clock alarm at its head. When the alarm fires, the hub reads the clock's next entry —
nothing the engines do adds to the clock's queue, so it stays the limit — and lets each engine
whose next event comes before it run its own tight loop up to that limit. Engines do not act on
each other, so each handles its events in (time, phase) order with nothing outside happening
in between, and every engine's state is exact whenever another subsystem looks at it. A
completion runs in the clock's ``FREE`` phase and an arrival in its ``ARRIVE`` phase: at a tie
the completion goes first and the newcomer can take the replica it frees.

A request goes to the lowest-numbered free replica, else waits in the queue (or is rejected if
``max_queue`` requests are already waiting). Its service time is its drawn demand (on
H100-SXM) divided by the speed of its replica's GPUs.

Busy GPU time is accounted at the start of service (the whole service time, corrected at any
instant by the part still to come), so a request costs a few list updates, not a meter update
at each end.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from heapq import heapify, heappop, heappush, heapreplace
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.config.scenario import ServedWorkload
from sim.model.arrivals import ArrivalStream
from sim.model.clock import ARRIVE, DECIDE, FREE, Clock, priority
from sim.model.pools import Placement
from sim.model.sampling import Draw
from sim.record.codes import FAILED, OK, REJECTED, TIMEOUT, UNFINISHED

if TYPE_CHECKING:
    from sim.model.ledger import PowerLedger
    from sim.record.recorder import Recorder

INF = float("inf")
DECIDE_PRIORITY = priority(DECIDE)
FLUSH_ROWS = 8192
"""Finished requests are handed to the recorder in blocks of at least this many."""


class InferenceEngine:
    """The queue, replicas and request columns of one inference workload."""

    def __init__(
        self,
        index: int,
        key: int,
        workload: ServedWorkload,
        replicas: list[Placement],
        arrivals: ArrivalStream,
        demand: Draw,
        recorder: Recorder,
        pools: Sequence[int] | None = None,
    ) -> None:
        self.index = index
        self.name = workload.name
        self.recorder = recorder
        self.p_free = priority(FREE, key)
        self.p_arrive = priority(ARRIVE, key)
        self.max_queue = workload.max_queue if workload.max_queue is not None else 1 << 62
        self.timeout = workload.timeout_s if workload.timeout_s is not None else INF
        self.retries = workload.retries
        self.replicas: list[Placement | None] = list(replicas)
        """Each replica's placement; None while it is down and waits for room."""
        self.up_s = 0.0
        self.up_t = 0.0
        """Replica-seconds up from 0 to ``up_t`` (``up_from_start``)."""
        self.down: set[int] = set()
        """Replicas that are down (their node failed or lost power) or moving."""
        self.retiring: set[int] = set()
        """Replicas finishing their request before they move off a draining node."""
        self.on_retired: Callable[[InferenceEngine, int, Placement, float], None] | None = None
        """Told when a retiring replica's request ends (the node board moves it)."""
        self.timed_out = 0
        self.failed = 0
        self.lost_gpu_s = 0.0
        """Busy GPU-seconds of service lost with requests whose replica went down."""
        self.gpus = workload.gpus_per_replica
        self.speed = [p.pool.speed for p in replicas]
        """Each replica's speed (relative to H100-SXM) at its GPUs' present power cap."""
        self.need_w = [0.0] * len(replicas)
        """The draw each replica adds while busy (W), set by the power ledger."""
        self.suspended: dict[int, float] = {}
        """Replicas suspended by the power ladder, and their request's remaining work."""
        self.ledger: PowerLedger | None = None
        pools = sorted(set(pools) if pools is not None else {p.pool.index for p in replicas})
        self.pools = pools
        """Indices of the pools this workload's replicas sit in."""
        self.slot = [pools.index(p.pool.index) for p in replicas]
        """For each replica, the position of its pool in ``pools``."""
        self.replica_pool = np.array([p.pool.index for p in replicas] + [-1], dtype=np.int64)
        self.moves: dict[int, tuple[list[float], list[int]]] = {}
        """For replicas that moved: the times from which they sat in each pool (from -inf)."""
        # Per pool slot: replicas busy, service seconds started, and the sum of their ends.
        self.busy = [0] * len(pools)
        self.started_s = [0.0] * len(pools)
        self.pending_end_s = [0.0] * len(pools)
        self._arrivals = arrivals
        self._demand = demand
        self.free: list[int] = list(range(len(replicas)))  # a heap: lowest number first
        self.queue: deque[int] = deque()
        self.serving = [-1] * len(replicas)  # request index in service on each replica
        self.rejected = 0
        # Per-request columns for requests base, base+1, ...; flushed to the recorder in blocks.
        self.base = 0
        self.arrived = 0  # requests arrived so far (the next request's index)
        self.ident: list[int] = []
        self.arrival: list[float] = []
        self.demand: list[float] = []
        self.start: list[float] = []
        self.end: list[float] = []
        self.replica: list[int] = []
        self.status: list[int] = []
        self.attempts: list[int] = []
        self.columns: tuple[list[Any], ...] = (
            self.ident,
            self.arrival,
            self.demand,
            self.start,
            self.end,
            self.replica,
            self.status,
            self.attempts,
        )
        """The per-request columns, in one tuple for the flush."""
        self.completions: list[tuple[float, int]] = []  # a heap of (end of service, replica)
        self.refill()

    # -- what other subsystems may read --------------------------------------------------
    @property
    def waiting(self) -> int:
        """Requests waiting for a replica."""
        return len(self.queue)

    @property
    def in_service(self) -> int:
        """Requests being served (suspended ones included)."""
        return len(self.completions) + len(self.suspended)

    def _count_up(self, t: float) -> None:
        """Integrate the replicas up to ``t``; call before any change of ``down``."""
        self.up_s += (len(self.replicas) - len(self.down)) * (t - self.up_t)
        self.up_t = t

    def up_from_start(self, t: float) -> float:
        """Replica-seconds up (placed and serving) from 0 to ``t``."""
        return self.up_s + (len(self.replicas) - len(self.down)) * (t - self.up_t)

    @property
    def busy_replicas(self) -> int:
        """Replicas holding requests (suspended ones included)."""
        return self.in_service

    @property
    def replicas_up(self) -> int:
        """Replicas placed and not down."""
        return len(self.replicas) - len(self.down)

    def busy_gpu_s(self, slot: int, t: float) -> float:
        """Busy GPU-seconds of this workload in pool slot ``slot`` from 0 to ``t``."""
        # Both sums are of non-negative terms; rounding (a request that starts at ``t`` gives
        # d - ((t + d) - t)) must not make either negative.
        ahead = max(self.pending_end_s[slot] - t * self.busy[slot], 0.0)
        return max(self.started_s[slot] - ahead, 0.0) * self.gpus

    @property
    def completed(self) -> int:
        """Requests served so far."""
        return (
            self.arrived
            - self.rejected
            - self.timed_out
            - self.failed
            - len(self.queue)
            - self.in_service
        )

    def next_event(self) -> tuple[float, int]:
        """Time and clock priority of the next internal event (time inf if none)."""
        ta = self.arrival[self.arrived - self.base]
        if self.completions and self.completions[0][0] <= ta:
            return self.completions[0][0], self.p_free
        return ta, self.p_arrive

    def pool_of(self, r: int) -> int:
        """The pool index of replica ``r``."""
        return int(self.replica_pool[r])

    # -- changes from outside: caps, suspensions, held work ------------------------------
    def set_rates(self, t: float, speed_by_pool: list[float], extra_by_pool: list[float]) -> None:
        """New power caps from ``t``.

        Requests in service end from their remaining work at the new speed, and each replica's
        extra draw when busy becomes its GPUs' new one.
        """
        pool = self.replica_pool
        speed = [speed_by_pool[pool[r]] for r in range(len(self.replicas))]
        self.need_w = [self.gpus * extra_by_pool[pool[r]] for r in range(len(self.replicas))]
        old = self.speed
        if speed == old:
            return
        moved = []
        for end, r in self.completions:
            if speed[r] != old[r] and end > t:
                new_end = t + (end - t) * old[r] / speed[r]
                s = self.slot[r]
                self.started_s[s] += new_end - end
                self.pending_end_s[s] += new_end - end
                end = new_end
            moved.append((end, r))
        heapify(moved)
        self.completions = moved
        self.speed = speed

    def serving_replicas(self) -> list[int]:
        """Replicas serving a request and not suspended, highest number first."""
        return sorted((r for _, r in self.completions), reverse=True)

    def suspend(self, r: int, t: float) -> None:
        """Pause replica ``r``'s request at ``t``, keeping its remaining work."""
        left = self._stop_service(r, t)
        if left is None:
            raise ValueError(f"replica {r} is not serving")
        self.suspended[r] = left

    def _stop_service(self, r: int, t: float) -> float | None:
        """Take replica ``r``'s request out of service at ``t``.

        Returns its work still to do, or None if the replica is not serving.
        """
        n = next((n for n, (_, rr) in enumerate(self.completions) if rr == r), -1)
        if n < 0:
            return None
        end = self.completions[n][0]
        self.completions[n] = self.completions[-1]
        self.completions.pop()
        heapify(self.completions)
        s = self.slot[r]
        self.started_s[s] -= end - t
        self.pending_end_s[s] -= end
        self.busy[s] -= 1
        if not self.busy[s]:
            self.pending_end_s[s] = 0.0
        return (end - t) * self.speed[r]

    def resume(self, r: int, t: float) -> None:
        """Resume a suspended replica's request from its remaining work."""
        d = self.suspended.pop(r) / self.speed[r]
        s = self.slot[r]
        self.busy[s] += 1
        self.started_s[s] += d
        self.pending_end_s[s] += t + d
        heappush(self.completions, (t + d, r))

    def start_held(self, t: float) -> None:
        """Start queued requests on free replicas while the ledger admits them (at ``t``)."""
        ledger = self.ledger
        queue, free = self.queue, self.free
        if self.timeout != INF:
            self.expire(t)
        while queue and free:
            r = free[0]
            if ledger is not None and not ledger.admit_request(self.need_w[r]):
                return
            heappop(free)
            k = queue.popleft() - self.base
            s = self.slot[r]
            self.busy[s] += 1
            d = self.demand[k] / self.speed[r]
            self.serving[r] = k + self.base
            self.start[k] = t
            self.replica[k] = r
            self.started_s[s] += d
            self.pending_end_s[s] += t + d
            heappush(self.completions, (t + d, r))

    # -- replicas going down, coming up, moving ----------------------------------------
    def take_down(self, r: int, t: float) -> None:
        """Replica ``r`` stops at ``t`` (its node failed or lost power, or it moves).

        A request in service on it (or paused by the power ladder) is queued again at the
        head, up to ``retries`` times, else ends ``failed``. The caller releases its GPUs.
        """
        if r in self.down:
            self.replicas[r] = None  # retired, waiting to move: the caller releases it now
            return
        self._count_up(t)
        self.down.add(r)
        self.retiring.discard(r)
        k = -1
        left = self._stop_service(r, t)
        if left is not None:
            k = self.serving[r]
        elif r in self.suspended:
            left = self.suspended.pop(r)
            assert self.ledger is not None
            self.ledger.forget_replica(self, r)
            k = self.serving[r]
        elif r in self.free:
            self.free.remove(r)
            heapify(self.free)
        self.serving[r] = -1
        self.replicas[r] = None
        if k >= 0:
            assert left is not None
            k -= self.base
            self.lost_gpu_s += max(self.demand[k] - left, 0.0) / self.speed[r] * self.gpus
            self._lost(k, t)

    def _lost(self, k: int, t: float) -> None:
        """The request in column ``k`` lost its replica at ``t``: retried, or failed."""
        if self.attempts[k] <= self.retries and t < self.arrival[k] + self.timeout:
            self.attempts[k] += 1
            i, queue, index = 0, self.queue, k + self.base
            while i < len(queue) and queue[i] < index:  # keep the queue in arrival order
                i += 1
            queue.insert(i, index)
            return
        self.end[k] = t
        if t >= self.arrival[k] + self.timeout:
            self.status[k] = TIMEOUT
            self.timed_out += 1
        else:
            self.status[k] = FAILED
            self.failed += 1

    def bring_up(
        self, r: int, placement: Placement, speed: float, extra_w: float, t: float
    ) -> None:
        """Replica ``r`` serves again, on ``placement``, at ``speed``.

        Busy, it draws ``extra_w`` more per GPU. The caller starts queued requests on it
        (``start_held``).
        """
        self.replicas[r] = placement
        pool = placement.pool.index
        times, pools = self.moves.setdefault(r, ([-INF], [int(self.replica_pool[r])]))
        times.append(t)
        pools.append(pool)
        self.replica_pool[r] = pool
        self.slot[r] = self.pools.index(pool)
        self.speed[r] = speed
        self.need_w[r] = self.gpus * extra_w
        self._count_up(t)
        self.down.discard(r)
        self._ready(r, t)

    def _ready(self, r: int, t: float) -> None:
        """Replica ``r``, just placed, takes requests from ``t``."""
        heappush(self.free, r)

    def add_slot(self, placement: Placement) -> int:
        """A new replica number, holding ``placement`` but down until ``bring_up`` (autoscaling).

        Every per-replica list grows by one (amortised O(1)); the hot loops are unchanged.
        """
        r = len(self.replicas)
        pool = placement.pool.index
        self.replicas.append(placement)
        self.down.add(r)
        self.speed.append(placement.pool.speed)
        self.need_w.append(0.0)
        self.slot.append(self.pools.index(pool))
        self.serving.append(-1)
        if r + 1 >= len(self.replica_pool):  # keep a spare -1 at the end (replica -1's pool)
            grown = np.full(2 * len(self.replica_pool), -1, dtype=np.int64)
            grown[:r] = self.replica_pool[:r]
            self.replica_pool = grown
        self.replica_pool[r] = pool
        self._grow(placement)
        return r

    def _grow(self, placement: Placement) -> None:
        """Grow the per-replica state subclasses keep (a new replica, down)."""

    def idle_replicas(self) -> list[int]:
        """Replicas up and holding no request, highest number first (a scan of the free ones)."""
        return sorted(self.free, reverse=True)

    def retire(self, r: int, t: float) -> bool:
        """Stop giving replica ``r`` new requests: True if it is idle and may move now.

        A busy one finishes its request first; then ``on_retired`` is told.
        """
        if r in self.down:
            return False
        if r in self.free:
            self.free.remove(r)
            heapify(self.free)
            self._count_up(t)
            self.down.add(r)
            self.replicas[r] = None
            return True
        self.retiring.add(r)
        return False

    def _retired(self, r: int, t: float) -> None:
        """A retiring replica's request ended at ``t``: it is down until it moves."""
        self.retiring.discard(r)
        self._count_up(t)
        self.down.add(r)
        self.serving[r] = -1
        placement = self.replicas[r]  # kept until it moves, so a node failing first finds it
        if self.on_retired is not None and placement is not None:
            self.on_retired(self, r, placement, t)

    def expire(self, t: float) -> None:
        """End ``timeout`` every request at the head of the queue that has waited too long."""
        queue, arrival, base, timeout = self.queue, self.arrival, self.base, self.timeout
        while queue and arrival[queue[0] - base] + timeout < t:
            k = queue.popleft() - base
            self.status[k] = TIMEOUT
            self.end[k] = arrival[k] + timeout
            self.timed_out += 1

    def ttft_signal(self, t: float) -> float:
        """The TTFT an autoscaler follows (llm workloads only)."""
        raise NotImplementedError("only llm workloads have a time to first token")

    def batch_from_start(self, t: float) -> tuple[float, float] | None:
        """Request-seconds held and busy replica-seconds from 0 to ``t``, for batching engines.

        None here: a replica of the plain queue serves one request at a time.
        """
        return None

    def mark_warmup(self, t: float) -> None:
        """The warm-up ends at ``t`` (the plain queue keeps nothing from before it)."""

    def finish(self, horizon: float) -> None:
        """At the horizon: record every request.

        Those still waiting or in service stay ``unfinished``, but those past their ``timeout``.
        """
        self.expire_all(horizon)
        self.flush(final=True)

    def expire_all(self, horizon: float) -> None:
        """At the horizon: every waiting request whose deadline passed ends ``timeout``."""
        if self.timeout == INF:
            return
        kept: deque[int] = deque()
        base = self.base
        for i in self.queue:
            k = i - base
            if self.arrival[k] + self.timeout < horizon:
                self.status[k] = TIMEOUT
                self.end[k] = self.arrival[k] + self.timeout
                self.timed_out += 1
            else:
                kept.append(i)
        self.queue.clear()
        self.queue.extend(kept)

    # -- arrivals and recording ----------------------------------------------------------
    def refill(self) -> None:
        """Take the next chunk of arrivals and their demands; flush finished requests.

        The arrival column always holds at least one arrival not yet handled (``inf`` once
        the process has no more).
        """
        chunk = self._arrivals.next_chunk()
        if not chunk:
            chunk = [INF]
        n = len(chunk)
        self.arrival.extend(chunk)
        self._draw(n)
        nan = float("nan")
        self.ident.extend([-1] * n)
        self.start.extend([nan] * n)
        self.end.extend([nan] * n)
        self.replica.extend([-1] * n)
        self.status.extend([UNFINISHED] * n)
        self.attempts.extend([1] * n)
        self.flush(final=False)

    def _draw(self, n: int) -> None:
        """Draw what the next ``n`` requests ask for: their service demands."""
        self.demand.extend(self._demand(n).tolist())

    def _extra_columns(self, k: int) -> dict[str, np.ndarray]:
        """Columns of the first ``k`` requests the recorder takes besides the common ones."""
        return {}

    def flush(self, final: bool) -> None:
        """Hand every finished request before the oldest unfinished one to the recorder."""
        done = self.arrived - self.base
        if not final:
            with contextlib.suppress(ValueError):  # none unfinished: all are done
                done = self.status.index(UNFINISHED, 0, done)
            if done < FLUSH_ROWS:
                return
        k = done
        if k <= 0:
            return
        replica = np.array(self.replica[:k], dtype=np.int64)
        start = np.array(self.start[:k])
        pool = self.replica_pool[replica]
        for r, (times, pools) in self.moves.items():
            moved = replica == r
            if moved.any():  # the pool it sat in when each request started
                at = np.searchsorted(np.array(times), start[moved], side="right") - 1
                pool[moved] = np.array(pools)[at]
        self.recorder.requests(
            self.index,
            ident=np.array(self.ident[:k], dtype=np.int64),
            arrival=np.array(self.arrival[:k]),
            start=start,
            end=np.array(self.end[:k]),
            replica=replica,
            pool=pool,
            status=np.array(self.status[:k], dtype=np.int64),
            attempts=np.array(self.attempts[:k], dtype=np.int64),
            complete_before=self.arrival[k] if not final and k < len(self.arrival) else INF,
            **self._extra_columns(k),
        )
        for column in self.columns:
            del column[:k]
        self.base += k

    def advance(self, limit_t: float, limit_p: int, next_id: int) -> tuple[float, int, int]:
        """Handle every internal event that comes before (``limit_t``, ``limit_p``).

        ``next_id`` is the next request id of the site; returns the next event's time and
        priority and the next request id. The hot path of the whole model: locals only.
        """
        arrival, demand, start, end_, replica, status, ident = (
            self.arrival,
            self.demand,
            self.start,
            self.end,
            self.replica,
            self.status,
            self.ident,
        )
        free, queue, serving, completions = self.free, self.queue, self.serving, self.completions
        speed, slot, busy, started_s, pending_end_s = (
            self.speed,
            self.slot,
            self.busy,
            self.started_s,
            self.pending_end_s,
        )
        p_free, p_arrive, max_queue = self.p_free, self.p_arrive, self.max_queue
        timeout, retiring = self.timeout, self.retiring
        arrived, base = self.arrived, self.base
        last = base + len(arrival)  # past the last arrival drawn so far
        while True:
            ta = arrival[arrived - base]
            if completions and completions[0][0] <= ta:
                t, p = completions[0][0], p_free
            else:
                t, p = ta, p_arrive
            if t > limit_t or (t == limit_t and p > limit_p):
                break
            if p == p_arrive:
                i = arrived
                arrived += 1
                if arrived == last:
                    self.arrived = arrived
                    self.refill()
                    base = self.base
                    last = base + len(arrival)
                k = i - base
                ident[k] = next_id
                next_id += 1
                if not free:
                    if len(queue) >= max_queue and timeout != INF:
                        self.expire(t)
                    if len(queue) < max_queue:
                        queue.append(i)
                    else:
                        status[k] = REJECTED
                        self.rejected += 1
                    continue
                r = heappop(free)
                s = slot[r]
                busy[s] += 1
            else:  # a completion
                r = heappop(completions)[1]
                k = serving[r] - base
                end_[k] = t
                status[k] = OK
                s = slot[r]
                pending_end_s[s] -= t
                if retiring and r in retiring:
                    busy[s] -= 1
                    if not busy[s]:
                        pending_end_s[s] = 0.0
                    self._retired(r, t)
                    limit_t, limit_p = t, DECIDE_PRIORITY  # it moves in this instant's DECIDE
                    continue
                if queue and timeout != INF and arrival[queue[0] - base] + timeout < t:
                    self.expire(t)
                if not queue:
                    serving[r] = -1
                    busy[s] -= 1
                    if not busy[s]:
                        pending_end_s[s] = 0.0  # exactly: no rounding left over
                    heappush(free, r)
                    continue
                i = queue.popleft()
                k = i - base
            # Request i (column k) starts service on replica r, in pool slot s, at t.
            d = demand[k] / speed[r]
            done = t + d
            serving[r] = i
            start[k] = t
            replica[k] = r
            started_s[s] += d
            pending_end_s[s] += done
            heappush(completions, (done, r))
        self.arrived = arrived
        return t, p, next_id

    def advance_tight(
        self, limit_t: float, limit_p: int, next_id: int, ledger: PowerLedger
    ) -> tuple[float, int, int]:
        """``advance`` while the power limit can bind.

        Every start is debited from the ledger's headroom (or held in the queue), every end
        credited.
        A separate loop so that ``advance``, which runs whenever the limit cannot bind, pays
        nothing for it. When an end frees power while work waits for power, the ledger's
        admission is scheduled at that instant and this loop stops before it.
        """
        arrival, demand, start, end_, replica, status, ident = (
            self.arrival,
            self.demand,
            self.start,
            self.end,
            self.replica,
            self.status,
            self.ident,
        )
        free, queue, serving, completions = self.free, self.queue, self.serving, self.completions
        speed, slot, busy, started_s, pending_end_s, need_w = (
            self.speed,
            self.slot,
            self.busy,
            self.started_s,
            self.pending_end_s,
            self.need_w,
        )
        p_free, p_arrive, max_queue = self.p_free, self.p_arrive, self.max_queue
        timeout, retiring = self.timeout, self.retiring
        arrived, base = self.arrived, self.base
        last = base + len(arrival)
        while True:
            ta = arrival[arrived - base]
            if completions and completions[0][0] <= ta:
                t, p = completions[0][0], p_free
            else:
                t, p = ta, p_arrive
            if t > limit_t or (t == limit_t and p > limit_p):
                break
            if p == p_arrive:
                i = arrived
                arrived += 1
                if arrived == last:
                    self.arrived = arrived
                    self.refill()
                    base = self.base
                    last = base + len(arrival)
                k = i - base
                ident[k] = next_id
                next_id += 1
                if queue or not free or not ledger.admit_request(need_w[free[0]]):
                    if free and not queue:
                        ledger.note_held()
                    if len(queue) >= max_queue and timeout != INF:
                        self.expire(t)
                    if len(queue) < max_queue:
                        queue.append(i)
                    else:
                        status[k] = REJECTED
                        self.rejected += 1
                    continue
                r = heappop(free)
                s = slot[r]
                busy[s] += 1
            else:  # a completion
                r = heappop(completions)[1]
                k = serving[r] - base
                end_[k] = t
                status[k] = OK
                s = slot[r]
                pending_end_s[s] -= t
                if retiring and r in retiring:
                    busy[s] -= 1
                    if not busy[s]:
                        pending_end_s[s] = 0.0
                    ledger.free_w += need_w[r]
                    if ledger.pending or ledger.jobs_held:
                        ledger.request_admit(t)
                    self._retired(r, t)
                    limit_t, limit_p = t, DECIDE_PRIORITY
                    continue
                if queue and timeout != INF and arrival[queue[0] - base] + timeout < t:
                    self.expire(t)
                if not queue or free:  # nothing waits, or what waits is held for power
                    serving[r] = -1
                    busy[s] -= 1
                    if not busy[s]:
                        pending_end_s[s] = 0.0
                    heappush(free, r)
                    ledger.free_w += need_w[r]
                    if ledger.pending or ledger.jobs_held:
                        ledger.request_admit(t)
                        limit_t, limit_p = t, DECIDE_PRIORITY
                    continue
                i = queue.popleft()
                k = i - base
            d = demand[k] / speed[r]
            done = t + d
            serving[r] = i
            start[k] = t
            replica[k] = r
            started_s[s] += d
            pending_end_s[s] += done
            heappush(completions, (done, r))
        self.arrived = arrived
        return t, p, next_id


class InferenceHub:
    """Every inference engine, moved by one clock alarm and one heap of their next events.

    The heap holds ``(time, priority, engine)`` for each engine's next internal event.
    """

    def __init__(
        self,
        clock: Clock,
        engines: Sequence[InferenceEngine],
        horizon_s: float,
        ledger: PowerLedger | None = None,
    ) -> None:
        self.clock = clock
        self.ledger = ledger
        self.engines = list(engines)
        self.horizon = horizon_s
        self.next_id = 0
        self.in_order = False
        """Run the engines in time order even while the limit cannot bind: set while replicas
        retire from draining nodes (each retirement schedules a move at its instant)."""
        self.heap = [(*e.next_event(), i) for i, e in enumerate(self.engines)]
        heapify(self.heap)
        self.alarm = clock.alarm(self._run, 0)
        self.reschedule()

    def wake(self) -> None:
        """Re-read every engine's next event and reset the alarm (its earlier setting is void).

        For whatever changes an engine from outside: a replica lost or added.
        """
        self.heap = [(*e.next_event(), i) for i, e in enumerate(self.engines)]
        heapify(self.heap)
        self.reschedule()

    def reschedule(self) -> None:
        """Set the alarm at the earliest engine's next event (or cancel it)."""
        heap = self.heap
        if heap and heap[0][0] < self.horizon:
            t, prio = heap[0][0], heap[0][1]
            alarm = self.alarm
            if alarm.time != t or alarm.priority != prio:
                alarm.set(t, prio)
        else:
            self.alarm.cancel()

    def _run(self) -> None:
        """Let every engine whose next event comes before the clock's next entry run to it."""
        ledger = self.ledger
        if ledger is not None and ledger.tight:
            self._run_in_order(ledger)
            return
        if self.in_order:
            self._run_in_order(None)
            return
        limit_t, limit_p = self.clock.head()
        if limit_t >= self.horizon:
            limit_t, limit_p = self.horizon, -1
        heap, engines = self.heap, self.engines
        next_id = self.next_id
        while heap:
            t, p, e = heap[0]
            if t > limit_t or (t == limit_t and p > limit_p):
                break
            t, p, next_id = engines[e].advance(limit_t, limit_p, next_id)
            heapreplace(heap, (t, p, e))
        self.next_id = next_id
        self.reschedule()

    def _run_in_order(self, ledger: PowerLedger | None) -> None:
        """Run the engines in time order, each only up to the next event of another.

        Or up to the clock's next entry, read again after each turn. While the limit can bind
        (``ledger`` given) they share its headroom; while replicas retire from draining nodes,
        a retirement schedules a move at its instant, which no engine may have run past.
        """
        heap, engines, clock = self.heap, self.engines, self.clock
        next_id = self.next_id
        while heap:
            limit_t, limit_p = clock.head()  # an engine may have scheduled an admission
            if limit_t >= self.horizon:
                limit_t, limit_p = self.horizon, -1
            t, p, e = heap[0]
            if t > limit_t or (t == limit_t and p > limit_p):
                break
            if len(heap) > 1:
                other = heap[1] if len(heap) == 2 or heap[1] < heap[2] else heap[2]
                if other[0] < limit_t or (other[0] == limit_t and other[1] < limit_p):
                    limit_t, limit_p = other[0], other[1]
            engine = engines[e]
            if ledger is not None:
                t, p, next_id = engine.advance_tight(limit_t, limit_p, next_id, ledger)
                heapreplace(heap, (t, p, e))
                ledger.check()
            else:
                t, p, next_id = engine.advance(limit_t, limit_p, next_id)
                heapreplace(heap, (t, p, e))
        self.next_id = next_id
        self.reschedule()

    def finish(self) -> None:
        """At the horizon: record every request.

        Those still waiting or in service stay ``unfinished``, but those past their ``timeout``.
        """
        for engine in self.engines:
            engine.finish(self.horizon)

    def mark_warmup(self, t: float) -> None:
        """The warm-up ends at ``t``: engines start the integrals the summary reads."""
        for engine in self.engines:
            engine.mark_warmup(t)
