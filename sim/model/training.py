"""Training jobs: gang-scheduled on one pool, started in the queue policy's order.

A job needs all its GPUs at once, within one pool: a job no larger than a node runs within one
node (its GPUs talk over the node's own links), a larger one on as few nodes as possible. The
scheduler decides once per instant, in the clock's ``DECIDE`` phase, after every job that ends
or arrives at that instant: it starts the head of the queue whenever the capacity object finds
room for it, and nothing overtakes the head, except under a backfilling policy (EASY).

EASY backfilling: when the head does not fit, it gets a reservation: in each of its eligible
pools, the earliest time enough GPUs will be free for it, going through the running jobs of
that pool in the order of their estimated ends (latest start + requested run time left, at
the speed they started at; past ends count as now), adding the GPUs each gives back; a head no
larger than a node needs them on one node (the first node to gather enough), a larger one
anywhere in the pool. The reservation is the pool where that time is earliest (the first
eligible one among equals). Then up to ``backfill_depth`` later jobs, in order, may start now
if they fit now and either run in another pool, or end by their estimate at or before the
reservation, or leave the head what it needs at the reservation (on the reserved node for a
small head, in the pool's count for a large one). Jobs run their true duration, so a job
running past its estimate can delay the head (as in any EASY scheduler); the head is never
delayed by a job started ahead of it when estimates hold. A head with no reservation (its
GPUs held by suspended jobs or down nodes) lets nothing start ahead of it.

Preemption (``scheduler.preempt``): when the head does not fit, it may take the GPUs of
running jobs of strictly lower priority (``Job.priority``, the workload's). In each eligible
pool the candidates are taken lowest priority first, then the most recently started (the least
work since a checkpoint to lose, and the least run time thrown away), then the highest id,
until the GPUs they hold plus the free ones are enough (on one node for a head no larger than a
node: the victims are then those holding GPUs on the first node to gather enough). The pool
needing the fewest victims wins (the first eligible one among equals). The head leaves the
queue first, then each victim is killed through ``interrupt`` (cause ``preempted``): it rolls
back to its last checkpoint and queues again, paying ``restart_cost`` when it starts again; a
preemption does not count against ``max_restarts``. Candidates are indexed per pool, with the
GPUs each priority holds, so a head that preemption cannot help costs no scan. Inference
replicas waiting for room use ``take_for`` (they outrank every job).

A job that can never fit is rejected at once with the reason. A job starts only when the
power ledger has headroom for it; otherwise it is held at the head of the queue (nothing is
backfilled past a head held for power). A running job knows its progress (work done, in
H100-SXM seconds) and its speed, so a new power cap moves its end and the ledger can suspend
and resume it; its completion is a timed callback voided by its token.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from sim.config.scenario import TrainingWorkload
from sim.model.arrivals import ArrivalStream, marks_of
from sim.model.clock import ARRIVE, DECIDE, FREE, Clock, priority
from sim.model.policies import JobQueue
from sim.model.pools import Capacity, Demand, Placement, PoolState
from sim.model.sampling import Draw
from sim.record import codes

if TYPE_CHECKING:
    from sim.model.ledger import PowerLedger
    from sim.record.recorder import Recorder

NAN = float("nan")
INF = float("inf")
PREEMPTED = "preempted"
"""The cause of an interruption by preemption (events, and a failed job's reason)."""
COMPUTE, CHECKPOINT, RESTART = range(3)
"""What a running job is doing: computing, writing a checkpoint, reloading after a restart."""


@dataclass(frozen=True, slots=True)
class JobPolicy:
    """A training workload's checkpoints and restarts, shared by its jobs."""

    checkpoint_every_s: float = INF
    """Progress (H100-SXM seconds) between checkpoints."""
    checkpoint_cost_s: float = 0.0
    restart_cost_s: float = 0.0
    max_restarts: int = 1 << 62

    @classmethod
    def of(cls, wl: TrainingWorkload) -> JobPolicy:
        """The policy of a workload's keys."""
        return cls(
            wl.checkpoint_every_s if wl.checkpoint_every_s is not None else INF,
            wl.checkpoint_cost_s,
            wl.restart_cost_s,
            wl.max_restarts if wl.max_restarts is not None else 1 << 62,
        )


NO_FAULTS = JobPolicy()


def _checkpoints_left(work_s: float, saved_s: float, policy: JobPolicy) -> int:
    """Checkpoints a job writes from the last one (at ``saved_s`` of progress) to its end.

    One each ``checkpoint_every`` of progress strictly before the end (none at the end).
    """
    every = policy.checkpoint_every_s
    if every == INF or work_s <= saved_s:
        return 0
    return max(math.ceil((work_s - saved_s) / every) - 1, 0)


class Job:
    """One training job and its progress."""

    __slots__ = (
        "checkpoint_s",
        "ckpt_s",
        "demand",
        "done_s",
        "end_s",
        "est_end_s",
        "gpus",
        "held",
        "id",
        "lost_s",
        "nodes_used",
        "p_free",
        "phase",
        "phase_left",
        "placement",
        "policy",
        "pool_index",
        "preemptions",
        "priority",
        "reason",
        "requested_s",
        "restart_s",
        "restarts",
        "run_s",
        "segment_start",
        "since_ckpt_s",
        "speed",
        "start_s",
        "status",
        "submit_s",
        "suspended_s",
        "suspended_since",
        "token",
        "work_s",
        "workload",
    )

    def __init__(
        self,
        ident: int,
        workload: int,
        p_free: int,
        demand: Demand,
        priority: int,
        work_s: float,
        submit_s: float,
        policy: JobPolicy,
        requested_s: float = NAN,
    ) -> None:
        self.id = ident
        self.policy = policy
        self.workload = workload
        self.p_free = p_free  # the clock priority of its completion (FREE, its workload's key)
        self.demand = demand
        self.gpus = demand.gpus
        self.priority = priority
        self.work_s = work_s  # run time on H100-SXM
        # The user's estimate of it (H100-SXM seconds): what sjf and backfill go by.
        self.requested_s = requested_s if requested_s == requested_s else work_s
        self.est_end_s = NAN  # while running under backfill: its estimated end
        self.done_s = 0.0  # work done so far, in H100-SXM seconds
        self.submit_s = submit_s
        self.start_s = NAN  # first start
        self.end_s = NAN
        self.segment_start = NAN  # start of the current run segment (at one speed)
        self.speed = 0.0  # while running: its GPUs' speed at their present cap
        self.run_s = 0.0
        self.suspended_s = 0.0
        self.suspended_since = NAN
        self.held = False  # counted once as held for power
        self.placement: Placement | None = None  # while running
        self.pool_index = -1  # where it last ran
        self.nodes_used = -1
        self.status = codes.JOB_UNFINISHED
        self.reason: str | None = None
        self.restarts = 0
        self.preemptions = 0  # of its restarts, those caused by preemption
        self.token = 0  # bumped when a run segment ends, voiding its scheduled end
        self.phase = COMPUTE
        self.phase_left = 0.0  # wall seconds left of a checkpoint or restart
        self.ckpt_s = 0.0  # progress saved by the last checkpoint
        self.since_ckpt_s = 0.0  # wall seconds computed since then (lost if it is killed)
        self.checkpoint_s = 0.0  # wall seconds spent writing checkpoints
        self.restart_s = 0.0  # wall seconds spent reloading after interruptions
        self.lost_s = 0.0  # wall seconds of run whose work was lost

    def share_done(self, done_s: float) -> float:
        """``done_s`` of work as a share of the job (a job of no work is done once completed)."""
        if self.work_s > 0:
            return min(done_s / self.work_s, 1.0)
        return 1.0 if self.status == codes.JOB_COMPLETED else 0.0


class TrainingScheduler:
    """Queues training jobs and starts them, once per instant, when the capacity finds room."""

    def __init__(
        self,
        clock: Clock,
        capacity: Capacity,
        ledger: PowerLedger,
        queue: JobQueue[Job],
        recorder: Recorder,
        backfill_depth: int = 100,
        preempt: bool = False,
    ) -> None:
        self.clock = clock
        self.capacity = capacity
        self.ledger = ledger
        self.queue = queue
        self.recorder = recorder
        self.running: dict[int, Job] = {}
        self.suspended: dict[int, Job] = {}
        self._next_id = 0
        self._decision_due = False
        self._decide_prio = priority(DECIDE)
        self.before_decide: Callable[[], None] | None = None
        """Called before jobs are placed: replicas waiting for room go first."""
        self.interrupted = 0
        """Interruptions that killed a job (restarts and failures)."""
        self.lost_gpu_s = 0.0
        self.checkpoint_gpu_s = 0.0
        self.restart_gpu_s = 0.0
        """Busy GPU-seconds lost to interruptions, writing checkpoints, reloading: so far."""
        self.backfill = bool(getattr(queue, "backfills", False))
        self.backfill_depth = backfill_depth
        self.ends: list[list[tuple[float, int]]] = [[] for _ in capacity.pools]
        """Under backfill: each pool's running jobs as (estimated end, id), sorted."""
        self.reservations: dict[int, float] | None = None
        """For tests: set to a dict to keep each head's first reservation, by job id."""
        self.preempt = preempt
        self.in_pool: list[dict[int, Job]] = [{} for _ in capacity.pools]
        """With preemption: each pool's running jobs, by id (the candidates)."""
        self.held_by: list[dict[int, int]] = [{} for _ in capacity.pools]
        """With preemption: per pool, the GPUs running jobs of each priority hold."""
        self.preempted = 0
        """Jobs killed by preemption so far."""

    def new_job(
        self,
        workload: int,
        p_free: int,
        demand: Demand,
        priority_: int,
        work_s: float,
        policy: JobPolicy = NO_FAULTS,
        requested_s: float = NAN,
    ) -> Job:
        """A job submitted now, with the next job id (``p_free``: its completion's priority).

        ``requested_s``: the user's estimate of ``work_s`` (NaN: ``work_s`` itself).
        """
        job = Job(
            self._next_id,
            workload,
            p_free,
            demand,
            priority_,
            work_s,
            self.clock.now,
            policy,
            requested_s,
        )
        self._next_id += 1
        return job

    def submit(self, job: Job) -> None:
        """Queue a job (the scheduler decides later this instant), or reject one that never fits."""
        reason = self.capacity.never_fits(job.demand)
        if reason is not None:
            job.status = codes.JOB_REJECTED
            job.reason = reason
            self.recorder.event(
                job.submit_s, codes.JOB_REJECTED_EVENT, job.workload, -1, job.id, job.gpus, reason
            )
            self._record(job)
            return
        self.recorder.event(job.submit_s, codes.JOB_SUBMITTED, job.workload, -1, job.id, job.gpus)
        self.queue.push(job)
        self._decide_later()

    def _decide_later(self) -> None:
        """Have the scheduler decide in this instant's DECIDE phase (once).

        When nothing else is queued for this instant, nothing else can happen in it before
        the decision, so the scheduler decides at once and spares a queue entry.
        """
        if self._decision_due:
            return
        clock = self.clock
        queue = clock._queue
        if not queue or queue[0][0] > clock._now:
            self._decide()
            return
        self._decision_due = True
        clock.call_at(clock.now, self._decide_prio, self._decide)

    def decide_now(self) -> None:
        """Start what fits now (the power ledger calls this when it frees power)."""
        if self.queue:
            self._decide()

    def _decide(self) -> None:
        """Start jobs from the head of the queue while they fit, in GPUs and in power."""
        self._decision_due = False
        if self.before_decide is not None:
            self.before_decide()
        queue, capacity, ledger = self.queue, self.capacity, self.ledger
        while True:
            job = queue.head()
            if job is None:
                return
            if ledger.tight and not ledger.job_may_fit(job):
                self._held(job)
                return
            placement = capacity.place(job.demand, job)
            if placement is None:
                if self.preempt:
                    started = self._preempt_for(job)
                    if started:
                        continue
                    if started is None:  # held for power: nothing goes past it
                        return
                if self.backfill:
                    self._backfill(job)
                return
            if ledger.tight and not ledger.admit(ledger.job_need_w(job, placement.pool.index)):
                capacity.release(placement)
                self._held(job)
                return
            queue.pop()
            self._start(job, placement)
            ledger.check()

    # -- preemption ------------------------------------------------------------------------
    def _track(self, job: Job, pool: int, sign: int) -> None:
        """Enter (+1) or take out (-1) a running job among its pool's preemption candidates."""
        held = self.held_by[pool]
        left = held.get(job.priority, 0) + sign * job.gpus
        if left:
            held[job.priority] = left
        else:
            del held[job.priority]
        if sign > 0:
            self.in_pool[pool][job.id] = job
        else:
            del self.in_pool[pool][job.id]

    def victims(self, pool: PoolState, gpus: int, below: float) -> list[Job] | None:
        """The running jobs of priority below ``below`` to kill for ``gpus`` GPUs in ``pool``.

        Lowest priority first, then the most recently started, then the highest id, until
        they (with the free GPUs) are enough: on one node for a gang no larger than a node
        (only the jobs on that node are returned). None if all of them are not enough; an
        empty list if the GPUs are free already.
        """
        held = self.held_by[pool.index]
        if pool.free_gpus + sum(g for p, g in held.items() if p < below) < gpus:
            return None  # the common case of a hopeless head: no scan
        candidates = sorted(
            (j for j in self.in_pool[pool.index].values() if j.priority < below),
            key=lambda j: (j.priority, -j.start_s, -j.id),
        )
        placeable = pool.placeable
        if gpus > pool.gpus_per_node:
            free = pool.free_gpus
            taken: list[Job] = []
            for job in candidates:
                if free >= gpus:
                    break
                assert job.placement is not None
                free += sum(c for n, c in job.placement.nodes if placeable[n])
                taken.append(job)
            return taken if free >= gpus else None
        if pool.free_gpus and any(pool.buckets[k] for k in range(gpus, pool.gpus_per_node + 1)):
            return []
        gathered: dict[int, int] = {}
        order: list[Job] = []
        for job in candidates:
            assert job.placement is not None
            order.append(job)
            for n, c in job.placement.nodes:
                if placeable[n]:
                    f = gathered[n] = gathered.get(n, pool.free[n]) + c
                    if f >= gpus:
                        return [
                            j
                            for j in order
                            if j.placement is not None and any(m == n for m, _ in j.placement.nodes)
                        ]
        return None

    def _preempt_for(self, head: Job) -> bool | None:
        """Kill lower-priority jobs so that the head starts now; True if it started.

        False if no pool has victims enough, or if the power the victims would free (with the
        headroom) would not admit the head: nobody is killed. None if, the victims killed, the
        ledger still held the head back (it is queued again and held).
        """
        best: tuple[int, PoolState, list[Job]] | None = None
        for pool in head.demand.pools:
            found = self.victims(pool, head.gpus, head.priority)
            if found is not None and (best is None or len(found) < best[0]):
                best = (len(found), pool, found)
        if best is None or not best[2]:
            return False
        _, pool, found = best
        ledger = self.ledger
        if ledger.tight:
            freed = sum(ledger.job_need_w(job, pool.index) for job in found)
            if ledger.suspended_gpus or ledger.free_w + freed < ledger.job_need_w(head, pool.index):
                return False
        now = self.clock.now
        self.queue.pop()  # first: a victim queued again must not take its place
        for job in found:
            self.interrupt(job, now, PREEMPTED, keep=False)
        self.preempted += len(found)
        placement = self.capacity.place_in(pool, head.gpus, head)
        assert placement is not None, "preemption freed too little"
        if ledger.tight and not ledger.admit(ledger.job_need_w(head, pool.index)):
            self.capacity.release(placement)
            self.queue.requeue(head)
            self._held(head)
            return None
        self._start(head, placement)
        ledger.check()
        return True

    def take_for(self, demand: Demand, owner: object) -> Placement | None:
        """Kill training jobs (any priority) to place an inference replica now, or None.

        The pool needing the fewest victims among ``demand``'s eligible pools; the victims as
        for a head (``victims``), killed with cause ``preempted``.
        """
        if not self.preempt:
            return None
        best: tuple[int, PoolState, list[Job]] | None = None
        for pool in demand.pools:
            found = self.victims(pool, demand.gpus, INF)
            if found is not None and (best is None or len(found) < best[0]):
                best = (len(found), pool, found)
        if best is None:
            return None
        _, pool, found = best
        now = self.clock.now
        for job in found:
            self.interrupt(job, now, PREEMPTED, keep=False)
        self.preempted += len(found)
        return self.capacity.place_in(pool, demand.gpus, owner)

    # -- EASY backfilling ----------------------------------------------------------------
    def _estimate(self, job: Job, now: float, speed: float) -> float:
        """When a job starting now at ``speed`` ends by its requested run time."""
        return now + job.phase_left + max(job.requested_s - job.done_s, 0.0) / speed

    def _index(self, job: Job, now: float) -> None:
        """Enter a job that starts running now in its pool's list of estimated ends."""
        assert job.placement is not None
        job.est_end_s = self._estimate(job, now, job.speed)
        bisect.insort(self.ends[job.placement.pool.index], (job.est_end_s, job.id))

    def _unindex(self, job: Job, pool: int) -> None:
        """Take a job that stops running out of its pool's list of estimated ends."""
        ends = self.ends[pool]
        i = bisect.bisect_left(ends, (job.est_end_s, job.id))
        if i < len(ends) and ends[i][1] == job.id:
            del ends[i]

    def _shadow(self, pool: PoolState, gpus: int, now: float) -> tuple[float, int, int] | None:
        """When ``gpus`` GPUs will be free in ``pool`` by the running jobs' estimated ends.

        (time, node, spare): for a gang no larger than a node, the first node to gather them
        and the GPUs it has beyond them; for a larger one, node -1 and the pool's spare GPUs.
        None if the running jobs never free enough (suspended jobs, down nodes).
        """
        running, placeable = self.running, pool.placeable
        if gpus > pool.gpus_per_node:
            free = pool.free_gpus
            for end, ident in self.ends[pool.index]:
                placement = running[ident].placement
                assert placement is not None
                free += sum(c for n, c in placement.nodes if placeable[n])
                if free >= gpus:
                    return max(end, now), -1, free - gpus
            return None
        gathered: dict[int, int] = {}
        for end, ident in self.ends[pool.index]:
            placement = running[ident].placement
            assert placement is not None
            for n, c in placement.nodes:
                if placeable[n]:
                    f = gathered[n] = gathered.get(n, pool.free[n]) + c
                    if f >= gpus:
                        return max(end, now), n, f - gpus
        return None

    def _backfill(self, head: Job) -> None:
        """Start later jobs that fit now and do not delay the head's reservation (EASY)."""
        now = self.clock.now
        best: tuple[float, PoolState, int, int] | None = None
        for pool in head.demand.pools:
            shadow = self._shadow(pool, head.gpus, now)
            if shadow is not None and (best is None or shadow[0] < best[0]):
                best = (shadow[0], pool, shadow[1], shadow[2])
        if best is None:
            return
        at, reserved, node, spare = best
        if self.reservations is not None:
            self.reservations.setdefault(head.id, at)
        queue, capacity, ledger = self.queue, self.capacity, self.ledger
        speeds = ledger.speed_training
        for job in queue.behind_head(self.backfill_depth):  # type: ignore[attr-defined]
            gpus = job.gpus
            for pool in job.demand.pools:
                if pool.free_gpus < gpus:
                    continue
                placement = capacity.place_in(pool, gpus, job)
                if placement is None:
                    continue
                if pool is reserved and self._estimate(job, now, speeds[pool.index]) > at:
                    # It would still run at the reservation: only on GPUs the head leaves.
                    taken = gpus if node < 0 else sum(c for n, c in placement.nodes if n == node)
                    if taken > spare:
                        capacity.release(placement)
                        continue
                    spare -= taken
                if ledger.tight and not ledger.admit(ledger.job_need_w(job, pool.index)):
                    capacity.release(placement)
                    break
                queue.remove(job)  # type: ignore[attr-defined]
                self._start(job, placement)
                ledger.check()
                break

    def _held(self, job: Job) -> None:
        """The head of the queue waits for power (counted once per job)."""
        if not job.held:
            job.held = True
            self.ledger.note_held(job=True)

    def _start(self, job: Job, placement: Placement) -> None:
        now = self.clock.now
        pool = placement.pool
        job.placement = placement
        job.pool_index = pool.index
        job.nodes_used = len(placement.nodes)
        if job.start_s != job.start_s:  # NaN: the first start
            job.start_s = now
        self.ledger.job_busy(now, job, pool.index, job.gpus, job.gpus)
        self.running[job.id] = job
        if self.preempt:
            self._track(job, pool.index, 1)
        self.recorder.event(
            now, codes.JOB_STARTED, job.workload, pool.index, job.id, job.gpus, placement.nodes
        )
        self._run_from(job, now)
        if self.backfill:
            self._index(job, now)

    def _run_from(self, job: Job, now: float) -> None:
        """Start a run segment at ``now`` at the pool's present speed; schedule the job's end.

        A segment lasts until the job ends or something changes it (a new cap, a suspension,
        an interruption): its checkpoints and its reload are computed, not events.
        """
        assert job.placement is not None
        job.segment_start = now
        speed = job.speed = self.ledger.speed_training[job.placement.pool.index]
        policy = job.policy
        if job.phase == COMPUTE and policy.checkpoint_every_s == INF:  # the common case
            left = job.work_s - job.done_s
            ends = now + (left if left > 0.0 else 0.0) / speed
        else:
            saved = job.done_s if job.phase == CHECKPOINT else job.ckpt_s
            ends = (
                now
                + (job.phase_left if job.phase != COMPUTE else 0.0)
                + max(job.work_s - job.done_s, 0.0) / speed
                + policy.checkpoint_cost_s * _checkpoints_left(job.work_s, saved, policy)
            )
        self.clock.call_at(ends, job.p_free, partial(self._segment_end, job, job.token))

    def _end_segment(self, job: Job, now: float) -> None:
        """Count the time and work of the current run segment and void its scheduled end."""
        dt = now - job.segment_start
        self._advance(job, dt)
        job.run_s += dt
        job.segment_start = now
        job.token += 1

    def _advance(self, job: Job, dt: float) -> None:
        """Move a running job's state on by ``dt`` seconds at its speed (not past its end).

        In order: what is left of a reload or a checkpoint being written, then computing to
        each checkpoint and writing it (whole cycles at once), then the part of the last one.
        """
        policy = job.policy
        every, cost, speed = policy.checkpoint_every_s, policy.checkpoint_cost_s, job.speed
        if job.phase != COMPUTE:
            left = job.phase_left
            if dt < left:
                job.phase_left = left - dt
                self._overhead(job, job.phase, dt)
                return
            dt -= left
            self._overhead(job, job.phase, left)
            if job.phase == CHECKPOINT:
                job.ckpt_s = job.done_s
                job.since_ckpt_s = 0.0
            job.phase = COMPUTE
            job.phase_left = 0.0
        work = job.work_s
        while True:
            due = job.ckpt_s + every
            target = due if due < work else work
            wall = (target - job.done_s) / speed
            if dt < wall:
                job.done_s = min(job.done_s + dt * speed, target)
                job.since_ckpt_s += dt
                return
            dt -= wall
            job.done_s = target
            job.since_ckpt_s += wall
            if target >= work:
                return
            if dt < cost:
                job.phase = CHECKPOINT
                job.phase_left = cost - dt
                self._overhead(job, CHECKPOINT, dt)
                return
            dt -= cost
            self._overhead(job, CHECKPOINT, cost)
            job.ckpt_s = job.done_s
            job.since_ckpt_s = 0.0
            cycles = min(
                int(dt // (every / speed + cost)), _checkpoints_left(work, job.ckpt_s, policy)
            )
            if cycles > 0:  # whole cycles of computing and writing
                dt -= cycles * (every / speed + cost)
                job.done_s = job.ckpt_s = job.ckpt_s + cycles * every
                self._overhead(job, CHECKPOINT, cycles * cost)

    def _overhead(self, job: Job, phase: int, dt: float) -> None:
        """Count ``dt`` seconds of writing a checkpoint or of reloading."""
        if phase == CHECKPOINT:
            job.checkpoint_s += dt
            self.checkpoint_gpu_s += dt * job.gpus
        else:
            job.restart_s += dt
            self.restart_gpu_s += dt * job.gpus

    def _segment_end(self, job: Job, token: int) -> None:
        """A run segment reached its scheduled end: the job's end."""
        if token != job.token:
            return  # the segment ended earlier (a new cap, a suspension, an interruption)
        now = self.clock.now
        if job.phase == COMPUTE and job.policy.checkpoint_every_s == INF:  # the common case
            job.run_s += now - job.segment_start
            job.token += 1
        else:
            self._end_segment(job, now)
        self._complete(job)

    def set_speeds(self, t: float, speed_by_pool: list[float]) -> None:
        """New power caps from ``t``: running jobs go on from their remaining work."""
        for job in self.running.values():
            assert job.placement is not None
            if speed_by_pool[job.placement.pool.index] != job.speed:
                self._end_segment(job, t)
                self._run_from(job, t)

    def interrupt(self, job: Job, t: float, cause: str, keep: bool) -> None:
        """Stop a running or suspended job at ``t``: the one path of every interruption.

        ``keep``: suspend it (a power shed: it keeps its GPUs, its progress and its memory, and
        resumes where it stopped). Otherwise it is killed (a failure, an outage, maintenance):
        its GPUs are given back, it loses the work since its last checkpoint, and it waits in
        the queue again, to pay ``restart_cost`` when it starts; past ``max_restarts`` it ends
        ``failed``.
        """
        placement = job.placement
        assert placement is not None
        pool = placement.pool.index
        running = job.id in self.running
        if running:
            self._end_segment(job, t)
            if self.backfill:
                self._unindex(job, pool)
            if self.preempt:
                self._track(job, pool, -1)
        if keep:
            assert running
            self.ledger.job_busy(t, job, pool, -job.gpus, 0)
            del self.running[job.id]
            self.suspended[job.id] = job
            job.suspended_since = t
            self.recorder.event(t, codes.JOB_SUSPENDED, job.workload, pool, job.id, job.gpus, cause)
            return
        ledger = self.ledger
        if running:
            ledger.job_busy(t, job, pool, -job.gpus, -job.gpus)
            del self.running[job.id]
        else:
            del self.suspended[job.id]
            job.suspended_s += t - job.suspended_since
            job.suspended_since = NAN
            ledger.forget_job(job)
            ledger.job_busy(t, job, pool, 0, -job.gpus)
        self.capacity.release(placement)
        job.placement = None
        job.lost_s += job.since_ckpt_s
        self.lost_gpu_s += job.since_ckpt_s * job.gpus
        job.since_ckpt_s = 0.0
        job.done_s = job.ckpt_s
        self.interrupted += 1
        self.recorder.event(t, codes.JOB_INTERRUPTED, job.workload, pool, job.id, job.gpus, cause)
        faults = job.restarts - job.preemptions  # preemptions do not count against the limit
        if cause != PREEMPTED and faults >= job.policy.max_restarts:
            job.end_s = t
            job.status = codes.JOB_FAILED
            job.reason = f"interrupted {faults + 1} times ({cause} last)"
            self._record(job)
        else:
            job.restarts += 1
            if cause == PREEMPTED:
                job.preemptions += 1
            cost = job.policy.restart_cost_s
            job.phase = RESTART if cost > 0 else COMPUTE
            job.phase_left = cost
            self.queue.requeue(job)
        if running and ledger.tight:
            ledger.release(ledger.job_need_w(job, pool))
        if not self._decision_due:  # never at once: the interrupter may not be done
            self._decision_due = True
            self.clock.call_at(self.clock.now, self._decide_prio, self._decide)

    def resume(self, job: Job, t: float) -> None:
        """Resume a suspended job where it stopped."""
        assert job.placement is not None
        pool = job.placement.pool.index
        del self.suspended[job.id]
        self.running[job.id] = job
        job.suspended_s += t - job.suspended_since
        job.suspended_since = NAN
        self.ledger.job_busy(t, job, pool, job.gpus, 0)
        self.recorder.event(t, codes.JOB_RESUMED, job.workload, pool, job.id, job.gpus)
        self._run_from(job, t)
        if self.backfill:
            self._index(job, t)
        if self.preempt:
            self._track(job, pool, 1)

    def _complete(self, job: Job) -> None:
        now = self.clock.now
        placement = job.placement
        assert placement is not None
        self._stop(job, placement, now)
        job.done_s = job.work_s
        job.end_s = now
        job.status = codes.JOB_COMPLETED
        self.recorder.event(
            now, codes.JOB_COMPLETED_EVENT, job.workload, placement.pool.index, job.id, job.gpus
        )
        self._record(job)
        if self.queue or self.before_decide is not None:
            self._decide_later()

    def _stop(self, job: Job, placement: Placement, now: float) -> None:
        """Release a running job's GPUs and power and account its run time."""
        self.capacity.release(placement)
        pool = placement.pool.index
        ledger = self.ledger
        ledger.job_busy(now, job, pool, -job.gpus, -job.gpus)
        job.placement = None
        del self.running[job.id]
        if self.backfill:
            self._unindex(job, pool)
        if self.preempt:
            self._track(job, pool, -1)
        if ledger.tight:
            ledger.release(ledger.job_need_w(job, pool))

    def finish(self, horizon_s: float) -> None:
        """At the horizon: running, suspended and queued jobs end ``unfinished``; record them."""
        for job in list(self.running.values()):
            self._end_segment(job, horizon_s)
            job.status = codes.JOB_UNFINISHED
            self._record(job)
        for job in list(self.suspended.values()):
            job.suspended_s += horizon_s - job.suspended_since
            self._record(job)
        for job in self.queue:
            self._record(job)

    def _record(self, job: Job) -> None:
        self.recorder.job(
            job.id,
            job.workload,
            job.gpus,
            job.priority,
            job.submit_s,
            job.start_s,
            job.end_s,
            job.run_s,
            job.work_s,
            job.share_done(job.done_s),
            job.status,
            job.restarts,
            job.suspended_s,
            job.lost_s * job.gpus,
            job.checkpoint_s * job.gpus,
            job.restart_s * job.gpus,
            job.pool_index,
            job.nodes_used,
            job.reason,
        )

    @property
    def queued(self) -> int:
        """Jobs waiting to start."""
        return len(self.queue)


class JobSource:
    """Submits one training workload's jobs at their arrival times (ARRIVE phase, its key).

    A job's GPUs, run time and requested run time come from its trace row's marks where the
    trace maps them; otherwise its GPUs are the workload's (fixed or drawn) and its run time is
    drawn, and its requested run time is its run time.
    """

    def __init__(
        self,
        clock: Clock,
        scheduler: TrainingScheduler,
        index: int,
        key: int,
        workload: TrainingWorkload,
        demand_of: Callable[[int], Demand],
        stream: ArrivalStream,
        work: Draw | None,
        horizon_s: float,
        gpus: Draw | int | None = None,
    ) -> None:
        self.clock = clock
        self.scheduler = scheduler
        self.index = index
        self.priority = workload.priority
        self.policy = JobPolicy.of(workload)
        self.demand_of = demand_of
        self.demands: dict[int, Demand] = {}
        self.stream = stream
        self.work = work
        self.gpus = gpus
        self.horizon = horizon_s
        self.prio = priority(ARRIVE, key)
        self.p_free = priority(FREE, key)
        self.times: list[float] = []
        self.works: list[float] = []
        self.sizes: list[int] = []
        self.requested: list[float] = []
        self.pos = 0
        self._arrive_cb = self._arrive
        self._schedule_next()

    def _next_chunk(self) -> None:
        """The next chunk of arrivals with each job's run time, GPUs and requested run time."""
        self.times = times = self.stream.next_chunk()
        self.pos = 0
        n = len(times)
        if not n:
            self.works, self.sizes, self.requested = [], [], []
            return
        marks = marks_of(self.stream)
        if "duration" in marks:
            works = marks["duration"]
        else:
            assert self.work is not None
            works = self.work(n)
        self.works = works.tolist()
        if "gpus" in marks:
            self.sizes = marks["gpus"].astype(np.int64).tolist()
        elif isinstance(self.gpus, int):
            self.sizes = [self.gpus] * n
        else:
            assert self.gpus is not None
            self.sizes = gpu_counts(self.gpus(n)).tolist()
        self.requested = marks["requested"].tolist() if "requested" in marks else self.works

    def _schedule_next(self) -> None:
        if self.pos == len(self.times):
            self._next_chunk()
            if not self.times:
                return
        t = self.times[self.pos]
        if t < self.horizon:
            self.clock.call_at(t, self.prio, self._arrive_cb)

    def _demand(self, gpus: int) -> Demand:
        demand = self.demands.get(gpus)
        if demand is None:
            demand = self.demands[gpus] = self.demand_of(gpus)
        return demand

    def _arrive(self) -> None:
        pos = self.pos
        work_s, gpus, requested_s = self.works[pos], self.sizes[pos], self.requested[pos]
        self.pos = pos + 1
        self._schedule_next()  # first, so a next arrival at this instant is on the queue
        scheduler = self.scheduler
        scheduler.submit(
            scheduler.new_job(
                self.index,
                self.p_free,
                self._demand(gpus),
                self.priority,
                work_s,
                self.policy,
                requested_s,
            )
        )


def gpu_counts(draws: np.ndarray) -> np.ndarray:
    """GPU counts from a distribution's draws.

    Rounded to the nearest integer (halves to even), at least 1.
    """
    counts: np.ndarray = np.maximum(np.rint(draws), 1.0).astype(np.int64)
    return counts
