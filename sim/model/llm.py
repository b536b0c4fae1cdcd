"""LLM serving with continuous batching: each replica a processor-sharing server of tokens.

A replica holds up to ``max_batch`` requests at once, and only as many as its KV memory takes:
each admitted request reserves the KV cache of all its tokens (prompt and output) until it
ends, so weights plus every admitted request's tokens always fit (``sim.config.serving``).
A replica alternates between two kinds of work, prefill first (as vLLM's default scheduler):

- **Prefill.** Requests admitted while the replica is not prefilling start a prefill at once,
  all together, taking ``prefill_s(their prompt tokens)``; decoding pauses meanwhile. At its
  end each gets its first token (TTFT) and joins the decoding batch. Requests admitted during
  a prefill wait for the next one, which starts as soon as it ends.
- **Decode.** With ``n`` requests decoding, each step takes ``step_s(n)`` and gives every one
  of them a token. So a replica is a processor-sharing server: a virtual clock ``V`` counts the
  tokens each decoding request has received, advancing at ``1 / step_s(n)`` per second, and a
  request joining at ``V0`` with ``m`` tokens to go ends when ``V`` reaches ``V0 + m``. A heap
  per replica keeps those ends, so an admission or a completion costs O(log n), and there are
  events only at admissions, first tokens and completions, never per decoding step.

Requests wait in one FIFO queue per workload. The head goes to the replica with the most free
KV memory among those with a free place (ties to the lowest number); if it does not fit there
it fits nowhere now, and it waits (nothing overtakes it). A request larger than a whole
replica's KV memory is rejected at arrival. With ``max_batch = 1`` every replica serves one
request at a time for ``prefill_s(input) + (output - 1) × step_s(1)``, and the workload is the
plain queue of ``sim.model.inference``.

A replica draws its GPUs' busy power while it holds any request. Power caps slow prefill and
decoding alike (times divided by the capped share of the pool's speed); the power ladder
suspends whole replicas; a replica that goes down loses every request it holds (each queued
again up to ``retries`` times); a retiring replica takes no new requests and moves once its
last one ends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from heapq import heapify, heappop, heappush
from typing import TYPE_CHECKING

import numpy as np

from sim.config.scenario import LLMWorkload
from sim.config.serving import ServingTimes
from sim.model.arrivals import ArrivalStream, marks_of
from sim.model.inference import DECIDE_PRIORITY, INF, InferenceEngine
from sim.model.pools import Placement
from sim.model.sampling import Draw
from sim.record.codes import OK, REJECTED

if TYPE_CHECKING:
    from sim.model.ledger import PowerLedger
    from sim.record.recorder import Recorder

IDLE, PREFILL, DECODE, PAUSED, DOWN = range(5)
"""What a replica is doing."""
NO_POWER, NO_ROOM, ADMITTED = range(3)
"""What became of an attempt to admit a request."""
REBUILD_FACTOR = 4
"""The dispatch heap is rebuilt when it holds this many entries per replica (stale ones)."""

TokenDraw = Callable[[int], np.ndarray]
"""Draws the token counts of the next ``n`` requests (whole numbers >= 1)."""


class _Timing:
    """One pool's serving times for a workload, as the engine's hot path uses them."""

    __slots__ = ("kv_tokens", "prefill", "step")

    def __init__(self, times: ServingTimes, max_batch: int) -> None:
        self.step = times.step_table(max_batch)
        """Decode step time (s) by the number of requests decoding (index 0 unused)."""
        self.kv_tokens = max(int(times.kv_capacity_tokens), 0)
        """Tokens of KV cache a replica holds."""
        cache: dict[int, float] = {}

        def prefill(tokens: int) -> float:
            t = cache.get(tokens)
            if t is None:
                t = cache[tokens] = float(times.prefill_s(tokens))
            return t

        self.prefill = prefill
        """Prefill time (s) by prompt tokens, memoised (token counts repeat)."""


class LLMEngine(InferenceEngine):
    """The queue, batching replicas and request columns of one ``kind = "llm"`` workload."""

    def __init__(
        self,
        index: int,
        key: int,
        workload: LLMWorkload,
        replicas: list[Placement],
        arrivals: ArrivalStream,
        tokens: tuple[TokenDraw, TokenDraw],
        times: Mapping[int, ServingTimes],
        recorder: Recorder,
        pools: Sequence[int] | None = None,
    ) -> None:
        self.max_batch = workload.max_batch
        self._tokens = tokens
        self.first: list[float] = []
        """Time of each request's first token (NaN before it)."""
        self.in_tok: list[int] = []
        self.out_tok: list[int] = []
        self.timing = {p: _Timing(t, workload.max_batch) for p, t in times.items()}
        super().__init__(index, key, workload, replicas, arrivals, _no_demand, recorder, pools)
        self.columns = (*self.columns, self.first, self.in_tok, self.out_tok)
        n = len(replicas)
        self.base_speed = [p.pool.speed for p in replicas]
        """Each replica's pool speed uncapped: caps slow it by ``speed / base_speed``."""
        self.factor = [1.0] * n
        self.tm = [self.timing[p.pool.index] for p in replicas]
        self.held = [0] * n
        """Requests each replica holds (prefilling, waiting for a prefill or decoding)."""
        self.kv_free = [t.kv_tokens for t in self.tm]
        self.mode = [IDLE] * n
        self.v = [0.0] * n
        """Each replica's virtual clock: tokens given to each decoding request so far."""
        self.vt = [0.0] * n
        """When each replica's virtual clock was last brought up to date."""
        self.pf_end = [INF] * n
        self.pf_start = [-INF] * n
        """When each replica's running prefill started: admissions at that instant join it."""
        self.pause_t = [0.0] * n
        """When each paused replica was paused."""
        self.paused_s = 0.0
        """Request-seconds held by replicas while paused (left out of the mean batch)."""
        self.pf_left = [0.0] * n
        """A paused replica's prefill time still to go, at full speed."""
        self.pf: list[list[int]] = [[] for _ in range(n)]
        """Requests in each replica's running prefill."""
        self.pending: list[list[int]] = [[] for _ in range(n)]
        """Requests admitted during a prefill, waiting for the next one."""
        self.dq: list[list[tuple[float, int]]] = [[] for _ in range(n)]
        """Each replica's decoding requests: (virtual time it ends, request), a heap."""
        self.gen = [0] * n
        self.events: list[tuple[float, int, int]] = []
        """(time, replica, generation) of each replica's next event; stale ones skipped."""
        self.stamp = [0] * n
        self.offers: list[tuple[int, int, int]] = [(-self.kv_free[r], r, 0) for r in range(n)]
        """(-free KV tokens, replica, stamp) of replicas with a free place; stale ones skipped."""
        heapify(self.offers)
        self.busy_offers: list[tuple[int, int, int]] = []
        """The same, of the replicas that hold requests (busy): they admit with no more power."""
        self.largest = max(self.kv_free, default=0)
        """The KV tokens of the largest replica: a request needing more is rejected."""
        self.holding = 0
        """Requests held by all replicas."""
        self.busy_n = 0
        """Replicas holding requests (not paused)."""
        self.busy_acc = [0.0] * len(self.pools)
        self.busy_t = [0.0] * len(self.pools)
        self.held_s = 0.0
        """Seconds held by replicas of the requests that left them (ended or lost)."""
        self.batch_mark = (0.0, 0.0)
        """``batch_from_start`` at the warm-up."""
        self.up_mark = 0.0
        """``up_from_start`` at the warm-up."""
        self.ttft_sum = 0.0
        self.ttft_n = 0
        """TTFTs of the first tokens since the autoscaler last read them (``ttft_signal``)."""
        self.at_horizon: tuple[float, float] | None = None
        """``batch_from_start`` at the horizon, once the run is finished."""
        self.free = []  # the base engine's free list is unused

    # -- columns ------------------------------------------------------------------------
    def _draw(self, n: int) -> None:
        inputs, outputs = self._tokens
        self.in_tok.extend(inputs(n).tolist())
        self.out_tok.extend(outputs(n).tolist())
        self.demand.extend([0.0] * n)
        self.first.extend([float("nan")] * n)

    def _extra_columns(self, k: int) -> dict[str, np.ndarray]:
        return {
            "first": np.array(self.first[:k]),
            "input_tokens": np.array(self.in_tok[:k], dtype=np.int64),
            "output_tokens": np.array(self.out_tok[:k], dtype=np.int64),
        }

    # -- what other subsystems read -----------------------------------------------------
    @property
    def in_service(self) -> int:
        """Requests held by replicas (paused ones included)."""
        return self.holding

    @property
    def busy_replicas(self) -> int:
        """Replicas holding requests (paused ones included)."""
        return self.busy_n + len(self.suspended)

    def busy_gpu_s(self, slot: int, t: float) -> float:
        """Busy GPU-seconds of this workload in pool slot ``slot`` from 0 to ``t``."""
        return (self.busy_acc[slot] + self.busy[slot] * (t - self.busy_t[slot])) * self.gpus

    def batch_totals(self, t: float) -> tuple[float, float, float]:
        """Request-seconds held, busy replica-seconds, replica-seconds up: warm-up to ``t``."""
        held, busy = self.batch_from_start(t)
        return (
            held - self.batch_mark[0],
            busy - self.batch_mark[1],
            self.up_from_start(t) - self.up_mark,
        )

    def batch_from_start(self, t: float) -> tuple[float, float]:
        """Request-seconds held and busy replica-seconds from 0 to ``t`` (pauses left out)."""
        if self.at_horizon is not None:  # the columns are flushed: the figures at the horizon
            return self.at_horizon
        held = self.held_s - self.paused_s
        for r in self.suspended:
            held -= self.held[r] * (t - self.pause_t[r])
        base, start = self.base, self.start
        for r in range(len(self.held)):
            for i in (*self.pf[r], *self.pending[r], *(i for _, i in self.dq[r])):
                held += t - start[i - base]
        busy = sum(self.busy_gpu_s(slot, t) for slot in range(len(self.pools))) / self.gpus
        return held, busy

    def ttft_signal(self, t: float) -> float:
        """The TTFT an autoscaler follows at ``t``; starts the next period's mean.

        The larger of the mean TTFT of the first tokens since the last call and the wait of
        the oldest request still waiting; 0 with neither.
        """
        mean = self.ttft_sum / self.ttft_n if self.ttft_n else 0.0
        self.ttft_sum, self.ttft_n = 0.0, 0
        oldest = t - self.arrival[self.queue[0] - self.base] if self.queue else 0.0
        return max(mean, oldest)

    def mark_warmup(self, t: float) -> None:
        """Start the batch integrals of the summary at the warm-up ``t``."""
        self.batch_mark = self.batch_from_start(t)
        self.up_mark = self.up_from_start(t)

    def finish(self, horizon: float) -> None:
        """At the horizon: record every request, and the batch integrals."""
        totals = self.batch_totals(horizon)  # before the flush empties the columns
        self.at_horizon = self.batch_from_start(horizon)
        super().finish(horizon)
        self.recorder.batching(self.index, *totals)

    def next_event(self) -> tuple[float, int]:
        """Time and clock priority of the next internal event (time inf if none)."""
        ta = self.arrival[self.arrived - self.base]
        te = self._next_replica_event()
        if te <= ta:
            return te, self.p_free
        return ta, self.p_arrive

    def serving_replicas(self) -> list[int]:
        """Replicas holding requests and not paused, highest number first."""
        mode = self.mode
        return [r for r in range(len(mode) - 1, -1, -1) if mode[r] in (PREFILL, DECODE)]

    # -- the replica's state ------------------------------------------------------------
    def _set_busy(self, r: int, t: float, delta: int) -> None:
        """Replica ``r`` becomes busy (+1) or idle (-1) at ``t``."""
        s = self.slot[r]
        self.busy_acc[s] += self.busy[s] * (t - self.busy_t[s])
        self.busy_t[s] = t
        self.busy[s] += delta
        self.busy_n += delta

    def _offer(self, r: int) -> None:
        """Replica ``r``'s free KV or places changed: void its offer, and offer it again."""
        self.stamp[r] += 1
        if (
            self.held[r] < self.max_batch
            and self.mode[r] <= DECODE
            and r not in self.retiring
            and r not in self.down
        ):
            entry = (-self.kv_free[r], r, self.stamp[r])
            heappush(self.offers, entry)
            if self.held[r]:
                heappush(self.busy_offers, entry)
            if len(self.offers) + len(self.busy_offers) > REBUILD_FACTOR * len(self.held) + 64:
                self.offers = self._valid(self.offers)
                self.busy_offers = self._valid(self.busy_offers)

    def _valid(self, offers: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
        """The entries of ``offers`` not voided since, as a heap."""
        stamp = self.stamp
        kept = [o for o in offers if o[2] == stamp[o[1]]]
        heapify(kept)
        return kept

    def _best(self) -> int:
        """The replica with the most free KV memory and a free place; -1 if none."""
        offers, stamp = self.offers, self.stamp
        while offers:
            _, r, st = offers[0]
            if st == stamp[r]:
                return r
            heappop(offers)
        return -1

    def _advance_v(self, r: int, t: float) -> None:
        """Bring replica ``r``'s virtual clock up to ``t`` (it is decoding)."""
        n = len(self.dq[r])
        if n:
            self.v[r] += (t - self.vt[r]) * self.factor[r] / self.tm[r].step[n]
        self.vt[r] = t

    def _plan(self, r: int) -> None:
        """Schedule replica ``r``'s next event from its state (voiding the earlier one)."""
        self.gen[r] += 1
        mode = self.mode[r]
        if mode == PREFILL:
            heappush(self.events, (self.pf_end[r], r, self.gen[r]))
        elif mode == DECODE:
            dq = self.dq[r]
            left = dq[0][0] - self.v[r]
            te = self.vt[r] + max(left, 0.0) * self.tm[r].step[len(dq)] / self.factor[r]
            heappush(self.events, (te, r, self.gen[r]))

    def _next_replica_event(self) -> float:
        events, gen = self.events, self.gen
        while events:
            t, r, g = events[0]
            if g == gen[r]:
                return t
            heappop(events)
        return INF

    def _start_prefill(self, r: int, t: float, batch: list[int]) -> None:
        base, in_tok = self.base, self.in_tok
        tokens = 0
        for i in batch:
            tokens += in_tok[i - base]
        self.pf[r] = batch
        self.pf_start[r] = t
        self.pf_end[r] = t + self.tm[r].prefill(tokens) / self.factor[r]
        self.mode[r] = PREFILL

    def _admit(self, i: int, r: int, t: float) -> None:
        """Request ``i`` joins replica ``r`` at ``t`` (the caller has checked it fits)."""
        k = i - self.base
        self.start[k] = t
        self.replica[k] = r
        self.kv_free[r] -= self.in_tok[k] + self.out_tok[k]
        self.holding += 1
        self.held[r] += 1
        mode = self.mode[r]
        if mode == PREFILL and self.pf_start[r] == t:  # admitted together: prefilled together
            self._start_prefill(r, t, [*self.pf[r], i])
            self._plan(r)
        elif mode == PREFILL:
            self.pending[r].append(i)
        else:
            if mode == IDLE:
                self._set_busy(r, t, 1)
            else:
                self._advance_v(r, t)
            self._start_prefill(r, t, [i])
            self._plan(r)
        self._offer(r)

    def _end(self, i: int, r: int, t: float) -> None:
        """Request ``i`` is served by replica ``r`` at ``t``."""
        k = i - self.base
        self.end[k] = t
        self.status[k] = OK
        self.kv_free[r] += self.in_tok[k] + self.out_tok[k]
        self.held_s += t - self.start[k]
        self.holding -= 1
        self.held[r] -= 1

    def _after(self, r: int, t: float, ended: bool) -> bool:
        """Set replica ``r``'s mode after its work changed at ``t``; True if it became idle.

        ``ended``: requests left it (its free KV and places changed).
        """
        if self.pending[r]:
            batch, self.pending[r] = self.pending[r], []
            self._start_prefill(r, t, batch)
        elif self.dq[r]:
            self.mode[r] = DECODE
            self.vt[r] = t
        else:
            self.mode[r] = IDLE
            self.v[r] = 0.0
            self.vt[r] = t
            self._set_busy(r, t, -1)
            self._plan(r)
            self._offer(r)
            return True
        self._plan(r)
        if ended:
            self._offer(r)
        return False

    def _replica_event(self, r: int, t: float) -> bool:
        """Replica ``r``'s prefill or decoding completion at ``t``; True if it became idle."""
        base, dq = self.base, self.dq[r]
        ended = True
        if self.mode[r] == PREFILL:
            first, out_tok, arrival = self.first, self.out_tok, self.arrival
            v = self.v[r]
            ended = False
            self.ttft_n += len(self.pf[r])
            for i in self.pf[r]:
                k = i - base
                first[k] = t
                self.ttft_sum += t - arrival[k]
                if out_tok[k] > 1:
                    heappush(dq, (v + (out_tok[k] - 1), i))
                else:
                    self._end(i, r, t)
                    ended = True
            self.pf[r] = []
            self.pf_end[r] = INF
            self.vt[r] = t
        else:
            v = self.v[r] = dq[0][0]
            self.vt[r] = t
            while dq and dq[0][0] <= v:
                self._end(heappop(dq)[1], r, t)
        return self._after(r, t, ended)

    # -- the event loop -----------------------------------------------------------------
    def advance(self, limit_t: float, limit_p: int, next_id: int) -> tuple[float, int, int]:
        """Handle every internal event that comes before (``limit_t``, ``limit_p``)."""
        return self._loop(limit_t, limit_p, next_id, None)

    def advance_tight(
        self, limit_t: float, limit_p: int, next_id: int, ledger: PowerLedger
    ) -> tuple[float, int, int]:
        """``advance`` while the power limit can bind.

        An idle replica starts only with headroom for its draw; one going idle gives it back.
        """
        return self._loop(limit_t, limit_p, next_id, ledger)

    def _loop(
        self, limit_t: float, limit_p: int, next_id: int, ledger: PowerLedger | None
    ) -> tuple[float, int, int]:
        arrival, status, ident = self.arrival, self.status, self.ident
        in_tok, out_tok = self.in_tok, self.out_tok
        queue, events, gen = self.queue, self.events, self.gen
        p_free, p_arrive, max_queue = self.p_free, self.p_arrive, self.max_queue
        timeout, retiring, largest = self.timeout, self.retiring, self.largest
        arrived, base = self.arrived, self.base
        last = base + len(arrival)
        while True:
            ta = arrival[arrived - base]
            while events and events[0][2] != gen[events[0][1]]:
                heappop(events)
            if events and events[0][0] <= ta:
                t, p = events[0][0], p_free
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
                if in_tok[k] + out_tok[k] > largest:
                    status[k] = REJECTED
                    self.rejected += 1
                    continue
                if not queue:
                    admitted = self._try_admit(i, t, ledger)
                    if admitted == ADMITTED:
                        continue
                    if admitted == NO_POWER and ledger is not None:
                        ledger.note_held()
                if len(queue) >= max_queue and timeout != INF:
                    self.expire(t)
                if len(queue) < max_queue:
                    queue.append(i)
                else:
                    status[k] = REJECTED
                    self.rejected += 1
                continue
            r = heappop(events)[1]
            idle = self._replica_event(r, t)
            if retiring and r in retiring and not self.held[r]:
                self._retire_now(r, t, ledger)
                limit_t, limit_p = t, DECIDE_PRIORITY
                continue
            if idle and ledger is not None:
                ledger.free_w += self.need_w[r]
                if ledger.pending or ledger.jobs_held:
                    ledger.request_admit(t)
                    limit_t, limit_p = t, DECIDE_PRIORITY
            if queue:
                self.arrived = arrived
                self._dispatch(t, ledger)
        self.arrived = arrived
        return t, p, next_id

    def _try_admit(self, i: int, t: float, ledger: PowerLedger | None) -> int:
        """Admit request ``i`` to the best replica if it fits there now (and power allows).

        ``ADMITTED``; ``NO_ROOM``; ``NO_POWER``: it fits an idle replica the ledger holds back.
        """
        r = self._best()
        if r < 0:
            return NO_ROOM
        k = i - self.base
        if self.kv_free[r] < self.in_tok[k] + self.out_tok[k]:
            return NO_ROOM
        if self.held[r] == 0 and ledger is not None and not ledger.admit_request(self.need_w[r]):
            r = self._busy_with_room(i)
            if r < 0:
                return NO_POWER
        self._admit(i, r, t)
        return ADMITTED

    def _busy_with_room(self, i: int) -> int:
        """The busy replica with the most free KV memory, if request ``i`` fits there; else -1.

        Only while the power limit holds an idle replica back: a busy one needs no more power.
        """
        k = i - self.base
        offers, stamp = self.busy_offers, self.stamp
        while offers:
            _, r, st = offers[0]
            if st == stamp[r]:
                return r if self.kv_free[r] >= self.in_tok[k] + self.out_tok[k] else -1
            heappop(offers)
        return -1

    def _dispatch(self, t: float, ledger: PowerLedger | None) -> None:
        """Admit queued requests in order while the head fits somewhere."""
        queue = self.queue
        if self.timeout != INF:
            self.expire(t)
        while queue and self._try_admit(queue[0], t, ledger) == ADMITTED:
            queue.popleft()

    def start_held(self, t: float) -> None:
        """Admit queued requests while they fit and the ledger admits them (at ``t``)."""
        ledger = self.ledger if self.ledger is not None and self.ledger.tight else None
        self._dispatch(t, ledger)

    # -- changes from outside -----------------------------------------------------------
    def set_rates(self, t: float, speed_by_pool: list[float], extra_by_pool: list[float]) -> None:
        """New power caps from ``t``: prefills and decoding go on at the new speed."""
        pool = self.replica_pool
        n = len(self.replicas)
        self.need_w = [self.gpus * extra_by_pool[pool[r]] for r in range(n)]
        for r in range(n):
            speed = speed_by_pool[pool[r]]
            factor = speed / self.base_speed[r]
            if factor == self.factor[r]:
                continue
            mode = self.mode[r]
            if mode == PREFILL:
                self.pf_end[r] = t + (self.pf_end[r] - t) * self.factor[r] / factor
            elif mode == DECODE:
                self._advance_v(r, t)
            self.factor[r] = factor
            self.speed[r] = speed
            if mode in (PREFILL, DECODE):
                self._plan(r)

    def suspend(self, r: int, t: float) -> None:
        """Pause replica ``r`` at ``t`` (the power ladder), keeping all its requests."""
        mode = self.mode[r]
        if mode == PREFILL:
            self.pf_left[r] = (self.pf_end[r] - t) * self.factor[r]
        elif mode == DECODE:
            self._advance_v(r, t)
        else:
            raise ValueError(f"replica {r} is not serving")
        self.suspended[r] = float(mode)
        self.pause_t[r] = t
        self.mode[r] = PAUSED
        self._set_busy(r, t, -1)
        self._plan(r)
        self._offer(r)

    def resume(self, r: int, t: float) -> None:
        """Resume a paused replica where it stopped."""
        mode = int(self.suspended.pop(r))
        self.paused_s += self.held[r] * (t - self.pause_t[r])
        self.mode[r] = mode
        if mode == PREFILL:
            self.pf_end[r] = t + self.pf_left[r] / self.factor[r]
        self.vt[r] = t
        self._set_busy(r, t, 1)
        self._plan(r)
        self._offer(r)

    def take_down(self, r: int, t: float) -> None:
        """Replica ``r`` stops at ``t``: every request it holds is queued again or fails."""
        if r in self.down:
            self.replicas[r] = None
            return
        self._count_up(t)
        self.down.add(r)
        self.retiring.discard(r)
        mode = self.mode[r]
        if mode == PAUSED:
            del self.suspended[r]
            self.paused_s += self.held[r] * (t - self.pause_t[r])
            assert self.ledger is not None
            self.ledger.forget_replica(self, r)
        elif mode in (PREFILL, DECODE):
            self._set_busy(r, t, -1)
        lost = sorted([*self.pf[r], *self.pending[r], *(i for _, i in self.dq[r])])
        base, start = self.base, self.start
        held = max(len(lost), 1)
        for i in lost:
            k = i - base
            self.lost_gpu_s += (t - start[k]) * self.gpus / held
            self.held_s += t - start[k]
            self.holding -= 1
            self.first[k] = float("nan")
            self._lost(k, t)
        self._clear(r, DOWN)
        self.replicas[r] = None

    def _clear(self, r: int, mode: int) -> None:
        """Replica ``r`` holds nothing and is in ``mode`` (down, or idle on a new placement)."""
        self.held[r] = 0
        self.kv_free[r] = self.tm[r].kv_tokens
        self.pf[r], self.pending[r], self.dq[r] = [], [], []
        self.pf_end[r] = INF
        self.v[r] = 0.0
        self.mode[r] = mode
        self.serving[r] = -1
        self._plan(r)
        self._offer(r)

    def _ready(self, r: int, t: float) -> None:
        """Replica ``r``, just placed (maybe in another pool), takes requests from ``t``."""
        placement = self.replicas[r]
        assert placement is not None
        self.tm[r] = self.timing[placement.pool.index]
        self.largest = max(self.largest, self.tm[r].kv_tokens)
        self.base_speed[r] = placement.pool.speed
        self.factor[r] = self.speed[r] / self.base_speed[r]
        self.vt[r] = t
        self._clear(r, IDLE)

    def _grow(self, placement: Placement) -> None:
        """A new replica, down until ``bring_up``: its batching state."""
        self.base_speed.append(placement.pool.speed)
        self.factor.append(1.0)
        tm = self.timing[placement.pool.index]
        self.tm.append(tm)
        self.held.append(0)
        self.kv_free.append(0)
        self.mode.append(DOWN)
        self.v.append(0.0)
        self.vt.append(0.0)
        self.pf_end.append(INF)
        self.pf_start.append(-INF)
        self.pause_t.append(0.0)
        self.pf_left.append(0.0)
        self.pf.append([])
        self.pending.append([])
        self.dq.append([])
        self.gen.append(0)
        self.stamp.append(0)

    def idle_replicas(self) -> list[int]:
        """Replicas up and holding no request, highest number first (a scan of the replicas)."""
        mode, down = self.mode, self.down
        return [r for r in range(len(mode) - 1, -1, -1) if mode[r] == IDLE and r not in down]

    def retire(self, r: int, t: float) -> bool:
        """Stop giving replica ``r`` new requests: True if it is idle and may move now."""
        if r in self.down:
            return False
        if self.held[r] == 0 and self.mode[r] == IDLE:
            self._count_up(t)
            self.down.add(r)
            self.replicas[r] = None
            self._clear(r, DOWN)
            return True
        self.retiring.add(r)
        self._offer(r)
        return False

    def _retire_now(self, r: int, t: float, ledger: PowerLedger | None) -> None:
        """A retiring replica's last request ended at ``t`` (it is idle): it moves."""
        if ledger is not None:
            ledger.free_w += self.need_w[r]
            if ledger.pending or ledger.jobs_held:
                ledger.request_admit(t)
        self.mode[r] = DOWN
        self._offer(r)
        self._retired(r, t)


def _no_demand(n: int) -> np.ndarray:
    """LLM requests have token counts, not service demands."""
    return np.zeros(n)


def token_draw(draw: Draw) -> TokenDraw:
    """Token counts from a distribution's draws: rounded to whole tokens, at least 1."""

    def tokens(n: int) -> np.ndarray:
        out: np.ndarray = np.maximum(np.rint(draw(n)), 1).astype(np.int64)
        return out

    return tokens


def trace_tokens(stream: ArrivalStream, key: str) -> TokenDraw:
    """Token counts from the ``key`` column of a trace, row by row with its arrivals."""

    def tokens(n: int) -> np.ndarray:
        values = marks_of(stream).get(key)
        if values is not None and len(values) == 0:  # the stream is over: n is its sentinel
            return np.ones(n, dtype=np.int64)
        if values is None or len(values) != n:
            raise ValueError(f"the arrival stream gives no {key} for its last {n} arrivals")
        out: np.ndarray = np.maximum(np.asarray(values), 1).astype(np.int64)
        return out

    return tokens
