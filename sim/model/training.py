"""Training jobs: gang-scheduled on one pool, started in the queue policy's strict order.

A job needs all its GPUs at once, within one pool: a job no larger than a node runs within one
node (its GPUs talk over the node's own links), a larger one on as few nodes as possible. The
scheduler decides once per instant, in the clock's ``DECIDE`` phase, after every job that ends
or arrives at that instant: it starts the head of the queue whenever the capacity object finds
room for it, and nothing overtakes the head. A job that can never fit is rejected at once with
the reason. A job starts only when the power ledger has headroom for it; otherwise it is held
at the head of the queue. A running job knows its progress (work done, in H100-SXM seconds)
and its speed, so a new power cap moves its end and the ledger can suspend and resume it; its
completion is a timed callback voided by its token.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from sim.config.scenario import TrainingWorkload
from sim.model.arrivals import ArrivalStream
from sim.model.clock import ARRIVE, DECIDE, FREE, Clock, priority
from sim.model.policies import JobQueue
from sim.model.pools import Capacity, Demand, Placement
from sim.model.sampling import Draw
from sim.record import codes

if TYPE_CHECKING:
    from sim.model.ledger import PowerLedger
    from sim.record.recorder import Recorder

NAN = float("nan")


class Job:
    """One training job and its progress."""

    __slots__ = (
        "demand",
        "done_s",
        "end_s",
        "gpus",
        "held",
        "id",
        "nodes_used",
        "p_free",
        "placement",
        "pool_index",
        "priority",
        "reason",
        "restarts",
        "run_s",
        "segment_start",
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
    ) -> None:
        self.id = ident
        self.workload = workload
        self.p_free = p_free  # the clock priority of its completion (FREE, its workload's key)
        self.demand = demand
        self.gpus = demand.gpus
        self.priority = priority
        self.work_s = work_s  # run time on H100-SXM
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
        self.token = 0  # bumped when the job is interrupted, voiding its completion event

    def progress_at(self, t: float) -> float:
        """Share of the work done at time ``t`` (0 to 1), counting the current run if any."""
        done = self.done_s
        if self.placement is not None and self.suspended_since != self.suspended_since:
            done += (t - self.segment_start) * self.speed
        return self.share_done(done)

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

    def new_job(
        self, workload: int, p_free: int, demand: Demand, priority_: int, work_s: float
    ) -> Job:
        """A job submitted now, with the next job id (``p_free``: its completion's priority)."""
        job = Job(self._next_id, workload, p_free, demand, priority_, work_s, self.clock.now)
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
        queue, capacity, ledger = self.queue, self.capacity, self.ledger
        while True:
            job = queue.head()
            if job is None:
                return
            if ledger.tight and not ledger.job_may_fit(job):
                self._held(job)
                return
            placement = capacity.place(job.demand)
            if placement is None:
                return
            if ledger.tight and not ledger.admit(ledger.job_need_w(job, placement.pool.index)):
                capacity.release(placement)
                self._held(job)
                return
            queue.pop()
            self._start(job, placement)
            ledger.check()

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
        self.recorder.event(
            now, codes.JOB_STARTED, job.workload, pool.index, job.id, job.gpus, placement.nodes
        )
        self._run_from(job, now)

    def _run_from(self, job: Job, now: float) -> None:
        """Start a run segment at ``now`` at the pool's present speed; schedule the end."""
        assert job.placement is not None
        job.segment_start = now
        job.speed = self.ledger.speed_training[job.placement.pool.index]
        remaining = max(job.work_s - job.done_s, 0.0) / job.speed
        self.clock.call_at(now + remaining, job.p_free, partial(self._complete, job, job.token))

    def _end_segment(self, job: Job, now: float) -> None:
        """Count the work of the current run segment and void its scheduled end."""
        job.done_s = min(job.done_s + (now - job.segment_start) * job.speed, job.work_s)
        job.run_s += now - job.segment_start
        job.segment_start = now
        job.token += 1

    def set_speeds(self, t: float, speed_by_pool: list[float]) -> None:
        """New power caps from ``t``: running jobs go on from their remaining work."""
        for job in self.running.values():
            assert job.placement is not None
            if speed_by_pool[job.placement.pool.index] != job.speed:
                self._end_segment(job, t)
                self._run_from(job, t)

    def suspend(self, job: Job, t: float, reason: str) -> None:
        """Suspend a running job for power: it keeps its GPUs and its progress."""
        assert job.placement is not None
        self._end_segment(job, t)
        pool = job.placement.pool.index
        self.ledger.job_busy(t, job, pool, -job.gpus, 0)
        del self.running[job.id]
        self.suspended[job.id] = job
        job.suspended_since = t
        self.recorder.event(t, codes.JOB_SUSPENDED, job.workload, pool, job.id, job.gpus, reason)

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

    def _complete(self, job: Job, token: int) -> None:
        if token != job.token:
            return  # the job was interrupted after this completion was scheduled
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
        if self.queue:
            self._decide_later()

    def _stop(self, job: Job, placement: Placement, now: float) -> None:
        """Release a running job's GPUs and power and account its run time."""
        self.capacity.release(placement)
        pool = placement.pool.index
        ledger = self.ledger
        ledger.job_busy(now, job, pool, -job.gpus, -job.gpus)
        job.run_s += now - job.segment_start
        job.placement = None
        del self.running[job.id]
        if ledger.tight:
            ledger.release(ledger.job_need_w(job, pool))

    def finish(self, horizon_s: float) -> None:
        """At the horizon: running, suspended and queued jobs end ``unfinished``; record them."""
        for job in list(self.running.values()):
            job.done_s = job.progress_at(horizon_s) * job.work_s
            job.run_s += horizon_s - job.segment_start
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
            job.pool_index,
            job.nodes_used,
            job.reason,
        )

    @property
    def queued(self) -> int:
        """Jobs waiting to start."""
        return len(self.queue)


class JobSource:
    """Submits one training workload's jobs at their arrival times (ARRIVE phase, its key)."""

    def __init__(
        self,
        clock: Clock,
        scheduler: TrainingScheduler,
        index: int,
        key: int,
        workload: TrainingWorkload,
        demand: Demand,
        stream: ArrivalStream,
        work: Draw,
        horizon_s: float,
    ) -> None:
        self.clock = clock
        self.scheduler = scheduler
        self.index = index
        self.priority = workload.priority
        self.demand = demand
        self.stream = stream
        self.work = work
        self.horizon = horizon_s
        self.prio = priority(ARRIVE, key)
        self.p_free = priority(FREE, key)
        self.times: list[float] = []
        self.works: list[float] = []
        self.pos = 0
        self._arrive_cb = self._arrive
        self._schedule_next()

    def _schedule_next(self) -> None:
        if self.pos == len(self.times):
            self.times = self.stream.next_chunk()
            self.works = self.work(len(self.times)).tolist() if self.times else []
            self.pos = 0
            if not self.times:
                return
        t = self.times[self.pos]
        if t < self.horizon:
            self.clock.call_at(t, self.prio, self._arrive_cb)

    def _arrive(self) -> None:
        work_s = self.works[self.pos]
        self.pos += 1
        self._schedule_next()  # first, so a next arrival at this instant is on the queue
        scheduler = self.scheduler
        scheduler.submit(
            scheduler.new_job(self.index, self.p_free, self.demand, self.priority, work_s)
        )
