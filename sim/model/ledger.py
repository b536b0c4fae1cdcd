"""The power ledger: the one account of the site's draw, its limit, and the ladder that binds them.

Every change of IT power is known here. Training jobs start, stop, are suspended and resumed
through it; inference engines count their busy replicas, which it reads, and while the limit
can bind ("tight": the site at full load would exceed it) they also debit and credit its
headroom at every request start and end, and nothing starts without headroom for it.

**The ladder.** When the limit falls below the draw (at a change of the site's conditions:
ambient, curtailment, other load), the ledger, in order:

1. holds new work (nothing starts without headroom; requests wait in their queue, jobs at the
   head of theirs);
2. lowers the power cap of every GPU, one cap level for the site, to the highest level at which
   the running work fits; capped GPUs run slower (``sim.model.powercap``) and work in progress
   finishes later, from its remaining work at the new speed;
3. at the lowest caps, suspends running training jobs in the ``power_policy``'s order (they
   keep their GPUs and lose nothing but time; no new job starts while one is suspended);
4. last, suspends busy inference replicas (their requests pause with their remaining work).

Inference outranks training: power that work frees goes first to suspended replicas, then to
held requests, then to suspended jobs, then (once nothing is suspended) to raising the cap
level, and last to the training queue. At each change of the limit suspended replicas resume
as far as the headroom allows, and while nothing is suspended the cap level is set again for
the running work (never higher when the limit falls). Between changes the level stays.

**Integrals.** Facility power is IT × PUE + other load, both constant between breakpoints of
the site's timeline, so facility energy, cooling energy and cost are settled exactly at every
breakpoint, every demand interval and every change of caps, from the exact IT energy of the
pool meters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from sim.config.scenario import Scenario
from sim.model.billing import Billing, CurtailmentShed
from sim.model.clock import DECIDE, SITE, Clock, priority
from sim.model.pools import PoolState
from sim.model.power import PoolMeter
from sim.model.powercap import capped_speed
from sim.model.site import SiteTimeline, idle_floor_w
from sim.record import codes

if TYPE_CHECKING:
    from sim.model.inference import InferenceEngine, InferenceHub
    from sim.model.nodes import NodeBoard
    from sim.model.training import Job, TrainingScheduler
    from sim.record.recorder import Recorder

INF = math.inf
J_PER_MWH = 3.6e9
SITE_PRIORITY = priority(SITE)
DECIDE_PRIORITY = priority(DECIDE)
N_SOURCES = len(codes.LIMIT_SOURCES)


class PowerLedger:
    """The site's IT draw against its limit; sheds and restores work by the ladder."""

    def __init__(
        self,
        clock: Clock,
        scn: Scenario,
        pools: list[PoolState],
        meters: list[PoolMeter],
        timeline: SiteTimeline,
        recorder: Recorder,
        suspend_order: Callable[[Job], tuple[float, ...]],
    ) -> None:
        self.clock = clock
        self.meters = meters
        self.timeline = timeline
        self.recorder = recorder
        self.suspend_order = suspend_order
        self.start = scn.scenario.start
        self.horizon = scn.scenario.duration_s
        self.warmup = scn.scenario.warmup_s
        self.idle_w = [p.gpu.idle_w for p in pools]
        self.peak_w = [p.gpu.peak_w for p in pools]
        self.base_cap_w = [cfg.cap_w(p.gpu) for cfg, p in zip(scn.pools, pools, strict=True)]
        self.min_cap_w = [
            min(p.gpu.min_cap_w, base) for p, base in zip(pools, self.base_cap_w, strict=True)
        ]
        self.gpus = [p.gpus_total for p in pools]
        self.pool_speed = [p.speed for p in pools]
        self.floor_w = idle_floor_w(scn)
        self.level = 1.0
        self.cap_w = list(self.base_cap_w)
        self.extra_w = [0.0] * len(pools)
        self.speed_inference = [0.0] * len(pools)
        self.speed_training = [0.0] * len(pools)
        self._set_caps(1.0)
        for meter, extra in zip(meters, self.extra_w, strict=True):
            meter.set_busy_w(0.0, extra)
        self.engines: list[InferenceEngine] = []
        self.hub: InferenceHub | None = None
        self.scheduler: TrainingScheduler | None = None
        self.board: NodeBoard | None = None
        self.n_workloads = len(scn.workloads)

        # The limit and the headroom.
        self.k = 0
        self.cost_factor = self._cost_factor(0)
        """USD per J of IT energy in the present segment: PUE × price (0 without a price)."""
        self.budget_w = self._budget(0)
        self.last_budget_w = self.budget_w
        self.source = int(timeline.source[0])
        self.tight = False
        self.free_w = INF
        """While tight: the IT budget minus the IT draw (W), debited and credited at each change."""
        self.min_free_w = INF
        """Least ``free_w`` since the last settlement."""
        self.pending = False
        """Requests may be held, or work suspended: freed power should wake the admission."""
        self.jobs_held = False
        """A training job was held for power: freed inference power should wake the queue."""
        self._admit_due = False
        self.suspended_jobs: list[Job] = []
        self.suspended_replicas: list[tuple[InferenceEngine, int]] = []
        self.suspended_gpus = 0
        self.audit = False
        """Tests set this to check the headroom against the meters at every change."""

        # Exact integrals, settled at every breakpoint, demand interval and cap change.
        self.t = 0.0
        self.it_j = 0.0
        self.facility_j = 0.0
        self.cooling_j = 0.0
        self.other_j = 0.0
        self.cost_usd = 0.0
        self.busy_s = [0.0] * len(pools)
        self.throttled_s = 0.0
        self.suspended_s = 0.0
        self.curtailed_s = 0.0
        self.sample_headroom_w = INF
        """Least facility headroom (W) since the last sample."""
        # Per limit source: [binding s, shedding s, throttled GPU-s, suspended GPU-s,
        # requests held, jobs held].
        self.by_source = [[0.0] * 6 for _ in range(N_SOURCES)]
        # Per workload: IT energy of its busy GPUs (J) and its share of the cost (USD).
        self.wl_energy_j = [0.0] * self.n_workloads
        self.wl_cost = [0.0] * self.n_workloads
        self.wl_busy_w = [0.0] * self.n_workloads  # training: busy draw of running jobs
        self.wl_t = [0.0] * self.n_workloads
        self.engine_marks: dict[int, list[float]] = {}
        self.warmup_marks: tuple[list[float], list[float]] | None = None
        """Per-workload energy and cost at the end of the warm-up."""
        # Demand and billing.
        price = scn.facility.price
        self.billing = Billing(
            self.start,
            price.demand_interval_s if price is not None else 900.0,
            price.demand_charge_usd_per_kw_month if price is not None else 0.0,
        )
        self.shed = CurtailmentShed(timeline, self.warmup, self.horizon)

    # -- wiring ----------------------------------------------------------------------------
    def attach(
        self, engines: list[InferenceEngine], hub: InferenceHub, scheduler: TrainingScheduler
    ) -> None:
        """Connect the work the ledger admits and sheds; start walking the site's timeline."""
        self.engines = engines
        self.hub = hub
        self.scheduler = scheduler
        for engine in engines:
            engine.ledger = self
            self.engine_marks[engine.index] = [0.0] * len(engine.pools)
            engine.set_rates(0.0, self.speed_inference, self.extra_w)
        self.clock.call_at(0.0, SITE_PRIORITY, partial(self._on_site, 0))
        for t in self.shed.marks():
            self.clock.call_at(t, SITE_PRIORITY, partial(self._mark_energy, t))
        first = self.billing.next_boundary(0.0)
        if first < self.horizon:
            self.clock.call_at(first, SITE_PRIORITY, self._on_demand_interval)

    # -- caps ------------------------------------------------------------------------------
    def _cap_at(self, p: int, level: float) -> float:
        return min(max(self.min_cap_w[p], level * self.base_cap_w[p]), self.base_cap_w[p])

    def _set_caps(self, level: float) -> None:
        self.level = level
        for p in range(len(self.cap_w)):
            cap = self._cap_at(p, level)
            self.cap_w[p] = cap
            self.extra_w[p] = max(cap - self.idle_w[p], 0.0)
            share = cap / self.peak_w[p]
            self.speed_inference[p] = self.pool_speed[p] * capped_speed("inference", share)
            self.speed_training[p] = self.pool_speed[p] * capped_speed("training", share)

    def _draw_at(self, level: float, busy: list[int]) -> float:
        return self.floor_w + sum(
            b * (self._cap_at(p, level) - self.idle_w[p]) for p, b in enumerate(busy) if b
        )

    def _best_level(self, budget: float, busy: list[int]) -> float | None:
        """The highest cap level (0 to 1) at which ``busy`` GPUs fit ``budget``; None if none."""
        if self._draw_at(1.0, busy) <= budget:
            return 1.0
        if self._draw_at(0.0, busy) > budget:
            return None
        lo, hi = 0.0, 1.0
        for _ in range(50):
            mid = (lo + hi) / 2
            if self._draw_at(mid, busy) <= budget:
                lo = mid
            else:
                hi = mid
        return lo

    def _apply_level(self, t: float, level: float) -> None:
        if level == self.level:
            return
        self.settle(t)
        self._set_caps(level)
        for meter, extra in zip(self.meters, self.extra_w, strict=True):
            meter.set_busy_w(t, extra)
        for engine in self.engines:
            engine.set_rates(t, self.speed_inference, self.extra_w)
        assert self.scheduler is not None
        self.scheduler.set_speeds(t, self.speed_training)
        self._training_busy_w()
        detail = ", ".join(f"{c:.0f} W" for c in self.cap_w)
        self.recorder.event(t, codes.CAP_CHANGED, detail=f"level {level:.3f}: caps {detail}")

    def _training_busy_w(self) -> None:
        assert self.scheduler is not None
        busy = [0.0] * self.n_workloads
        for job in self.scheduler.running.values():
            assert job.placement is not None
            busy[job.workload] += job.gpus * self.cap_w[job.placement.pool.index]
        self.wl_busy_w = busy

    # -- the draw --------------------------------------------------------------------------
    def busy_gpus(self) -> list[int]:
        """GPUs busy now in each pool."""
        return [m.busy_now() for m in self.meters]

    def draw_w(self) -> float:
        """IT power now (W)."""
        return sum(m.power_now() for m in self.meters)

    def check(self) -> None:
        """With ``audit`` on: the headroom agrees with the meters and the draw is within budget."""
        if self.audit:
            self._check()

    def _check(self) -> None:
        if self.board is not None:
            if self.board.changing:
                return  # a node's work is being stopped: the account is settled after
            self.board.check()
        if self.tight and math.isfinite(self.budget_w):
            exact = self.budget_w - self.draw_w()
            assert abs(exact - self.free_w) <= 1e-6 * max(1.0, abs(exact)), (exact, self.free_w)
        assert self.draw_w() <= self.budget_w * (1 + 1e-9) + 1e-6, (self.draw_w(), self.budget_w)

    def admit(self, need_w: float) -> bool:
        """Whether a new training job drawing ``need_w`` more may start now (if so, debited).

        Not while anything is suspended: suspended work resumes before new work starts.
        """
        if not self.tight:
            return True
        if self.suspended_gpus or self.free_w < need_w:
            self.jobs_held = True
            return False
        self.free_w -= need_w
        if self.free_w < self.min_free_w:
            self.min_free_w = self.free_w
        return True

    def job_may_fit(self, job: Job) -> bool:
        """Whether a job could be admitted on its cheapest eligible pool (without placing it)."""
        if not self.tight:
            return True
        if self.suspended_gpus or self.free_w < job.gpus * min(
            self.extra_w[p.index] for p in job.demand.pools
        ):
            self.jobs_held = True
            return False
        return True

    def admit_request(self, need_w: float) -> bool:
        """Whether a held request drawing ``need_w`` more may start now (if so, debited).

        Inference outranks training: suspended training jobs do not hold requests back, only
        suspended replicas do.
        """
        if not self.tight:
            return True
        if self.suspended_replicas or self.free_w < need_w:
            self.pending = True
            return False
        self.free_w -= need_w
        if self.free_w < self.min_free_w:
            self.min_free_w = self.free_w
        return True

    def note_held(self, job: bool = False) -> None:
        """Count a request (or a job) held for power under the present limit."""
        if self.clock.now >= self.warmup:
            self.by_source[self.source][5 if job else 4] += 1

    def release(self, need_w: float) -> None:
        """A job drawing ``need_w`` stopped: credit it, and wake the admission.

        Only if anything but the training queue (which its scheduler serves itself when a job
        ends) waits for power.
        """
        if self.tight:
            self.free_w += need_w
            if self.pending:
                self.request_admit(self.clock.now)
        self.check()

    def request_admit(self, t: float) -> None:
        """Admit suspended and held work at ``t``, in the DECIDE phase (once per instant)."""
        if not self._admit_due:
            self._admit_due = True
            self.clock.call_at(t, DECIDE_PRIORITY, self._admit)

    # -- training jobs ---------------------------------------------------------------------
    def job_need_w(self, job: Job, pool: int) -> float:
        """The draw a job adds when it runs on ``pool`` at the present caps."""
        return job.gpus * self.extra_w[pool]

    def job_busy(self, t: float, job: Job, pool: int, gpus: int, allocated: int) -> None:
        """``gpus`` of a job become busy (negative: idle) and ``allocated`` are taken or given."""
        w = job.workload
        dt = t - self.wl_t[w]
        if dt > 0:
            e = self.wl_busy_w[w] * dt
            self.wl_energy_j[w] += e
            self.wl_cost[w] += e * self.cost_factor
            self.wl_t[w] = t
        self.wl_busy_w[w] += gpus * self.cap_w[pool]
        self.meters[pool].change(t, gpus, allocated)

    def node_power(self, t: float, pool: int, gpus: int, watts: float) -> None:
        """A node of ``pool`` went down (negative counts) or came up: the idle floor moves."""
        self.floor_w += watts
        self.gpus[pool] += gpus

    def rebalance(self, t: float) -> None:
        """After nodes changed: apply the ladder again for the present budget.

        The cap level does not rise here (only at a change of the limit): a node's work
        stopping is no reason to uncap the rest.
        """
        self.settle(t)
        self._rebalance(t, may_raise=False)

    def forget_job(self, job: Job) -> None:
        """A job suspended for power was killed: it no longer waits to resume."""
        self.settle(self.clock.now)
        self.suspended_jobs.remove(job)
        self.suspended_gpus -= job.gpus

    def forget_replica(self, engine: InferenceEngine, r: int) -> None:
        """A replica suspended for power went down: it no longer waits to resume."""
        self.settle(self.clock.now)
        self.suspended_replicas.remove((engine, r))
        self.suspended_gpus -= engine.gpus

    # -- site changes ----------------------------------------------------------------------
    def _on_site(self, k: int) -> None:
        t = self.clock.now
        tl = self.timeline
        if k > 0:
            self.settle(t)
        old_limit = float(tl.limit_w[k - 1]) if k > 0 else INF
        old_curtailed = bool(tl.curtailed[k - 1]) if k > 0 else False
        self.k = k
        self.cost_factor = self._cost_factor(k)
        self.source = int(tl.source[k])
        self.budget_w = self._budget(k)
        limit = float(tl.limit_w[k])
        curtailed = bool(tl.curtailed[k])
        if limit != old_limit:
            self.recorder.event(
                t,
                codes.LIMIT_CHANGED,
                detail=f"{limit / 1000:.1f} kW ({codes.LIMIT_SOURCES[self.source]})"
                if math.isfinite(limit)
                else "none",
            )
        if curtailed != old_curtailed:
            self.recorder.event(
                t,
                codes.CURTAILMENT_STARTED if curtailed else codes.CURTAILMENT_ENDED,
                detail=f"{tl.curtail_w[k] / 1000:.1f} kW" if curtailed else None,
            )
        self._rebalance(t)
        if k + 1 < len(tl.times):
            self.clock.call_at(float(tl.times[k + 1]), SITE_PRIORITY, partial(self._on_site, k + 1))

    def _budget(self, k: int) -> float:
        """The IT budget of segment ``k``: a milliwatt per megawatt below the exact one.

        So that rounding in the headroom's sums never carries the draw over the limit.
        """
        exact = float(self.timeline.it_budget_w[k])
        return exact - abs(exact) * 1e-9 if math.isfinite(exact) else INF

    def _cost_factor(self, k: int) -> float:
        price = float(self.timeline.price[k])
        return float(self.timeline.pue[k]) * price / J_PER_MWH if price == price else 0.0

    def _rebalance(self, t: float, may_raise: bool = True) -> None:
        """Apply the ladder for a new budget: shed or restore, then set the mode.

        Suspended replicas resume here as far as the budget allows; suspended jobs resume in
        the admission that follows at this instant, after held requests (inference first).
        While nothing is suspended, the cap level is the highest at which the running work
        fits; when the budget falls it does not rise (a dip in load at that instant would
        otherwise uncap the site just as its limit tightens).
        """
        budget = self.budget_w
        falling = budget < self.last_budget_w
        self.last_budget_w = budget
        was_tight = self.tight
        if self.board is not None:
            self.board.fit_power(t, budget, self.draw_w(), self.floor_w)
        self._resume_replicas(t)
        if self.suspended_gpus:
            self._suspend_until_fits(t)  # the budget may have fallen further
        else:
            level = self._best_level(budget, self.busy_gpus())
            if level is not None and (falling or not may_raise):
                level = min(level, self.level)
            self._apply_level(t, 0.0 if level is None else level)
            if level is None:
                self._suspend_until_fits(t)
        draw = self._set_mode()
        self._observe_headroom(budget - draw)
        if self.hub is not None:
            self.hub.wake()  # caps and resumptions move the engines' next events
        self.check()
        if (was_tight and not self.tight) or self.pending or self.suspended_gpus:
            self.request_admit(t)

    def _set_mode(self) -> float:
        """Set the mode and the headroom; return the draw now.

        Tight (every start is checked) while work is suspended or the site at full load would
        exceed the budget; loose otherwise.
        """
        draw = self.draw_w()
        most = self.floor_w + sum(g * self.extra_w[p] for p, g in enumerate(self.gpus) if g)
        self.tight = bool(self.suspended_gpus) or most > self.budget_w
        self.free_w = self.budget_w - draw if self.tight else INF
        return draw

    def _resume_replicas(self, t: float) -> None:
        """Resume suspended replicas while the budget allows (the last suspended first)."""
        budget = self.budget_w
        draw = self.draw_w()
        while self.suspended_replicas:
            engine, r = self.suspended_replicas[-1]
            need = engine.need_w[r]
            if draw + need > budget:
                return
            self.suspended_replicas.pop()
            self.settle(t)
            engine.resume(r, t)
            self.suspended_gpus -= engine.gpus
            draw += need
            self.recorder.event(
                t, codes.REPLICA_RESUMED, engine.index, engine.pool_of(r), r, engine.gpus
            )

    def _resume_jobs(self, t: float) -> None:
        """Resume suspended jobs while the budget allows (the last suspended first)."""
        assert self.scheduler is not None
        budget = self.budget_w
        draw = self.draw_w()
        while self.suspended_jobs:
            job = self.suspended_jobs[-1]
            assert job.placement is not None
            need = self.job_need_w(job, job.placement.pool.index)
            if draw + need > budget:
                return
            self.suspended_jobs.pop()
            self.settle(t)
            self.suspended_gpus -= job.gpus
            self.scheduler.resume(job, t)
            draw += need

    def _suspend_until_fits(self, t: float) -> None:
        """At the lowest caps: suspend training jobs, then inference replicas, until it fits."""
        assert self.scheduler is not None
        budget = self.budget_w
        draw = self.draw_w()
        if draw <= budget:
            return
        self.settle(t)
        for job in sorted(self.scheduler.running.values(), key=self.suspend_order):
            if draw <= budget:
                return
            assert job.placement is not None
            draw -= self.job_need_w(job, job.placement.pool.index)
            self.scheduler.interrupt(job, t, codes.LIMIT_SOURCES[self.source], keep=True)
            self.suspended_jobs.append(job)
            self.suspended_gpus += job.gpus
        changed = False
        for engine in reversed(self.engines):
            for r in engine.serving_replicas():
                if draw <= budget:
                    break
                draw -= engine.need_w[r]
                engine.suspend(r, t)
                changed = True
                self.suspended_replicas.append((engine, r))
                self.suspended_gpus += engine.gpus
                self.recorder.event(
                    t,
                    codes.REPLICA_SUSPENDED,
                    engine.index,
                    engine.pool_of(r),
                    r,
                    engine.gpus,
                    codes.LIMIT_SOURCES[self.source],
                )
        if changed and self.hub is not None:
            self.hub.wake()

    def _admit(self) -> None:
        """Give freed power out in rank order.

        Suspended replicas, held requests, suspended jobs, then (once nothing is suspended) the
        cap level back up, then the training queue.
        """
        self._admit_due = False
        t = self.clock.now
        assert self.scheduler is not None and self.hub is not None
        self.pending = False
        self.jobs_held = False
        was_suspended = bool(self.suspended_gpus)
        self._resume_replicas(t)
        self._refresh_free()
        for engine in self.engines:
            engine.start_held(t)
        if self.suspended_jobs:
            self._resume_jobs(t)
            self._refresh_free()
        if was_suspended and not self.suspended_gpus and self.level < 1.0:
            level = self._best_level(self.budget_w, self.busy_gpus())
            if level is not None and level > self.level:
                self._apply_level(t, level)
                self._refresh_free()
        if was_suspended and not self.suspended_gpus:
            self._set_mode()  # the last suspension cleared: the site may be loose again
            if not self.tight:
                for engine in self.engines:
                    engine.start_held(t)
        self.scheduler.decide_now()
        self.pending = self.pending or self.jobs_held or bool(self.suspended_gpus)
        self.hub.wake()
        self.check()

    def _refresh_free(self) -> None:
        if self.tight:
            self.free_w = self.budget_w - self.draw_w()

    def _observe_headroom(self, free_w: float) -> None:
        """Count an IT headroom seen now, as facility headroom (limit - facility power)."""
        headroom = free_w * float(self.timeline.pue[self.k])
        if headroom < self.sample_headroom_w:
            self.sample_headroom_w = headroom

    # -- integrals ---------------------------------------------------------------------------
    def _settle_workload(self, w: int, t: float) -> None:
        dt = t - self.wl_t[w]
        if dt > 0:
            e = self.wl_busy_w[w] * dt
            self.wl_energy_j[w] += e
            self.wl_cost[w] += e * self.cost_factor
        self.wl_t[w] = t

    def _settle_engines(self, t: float) -> None:
        factor = self.cost_factor
        for engine in self.engines:
            marks = self.engine_marks[engine.index]
            for slot, pool in enumerate(engine.pools):
                busy_s = engine.busy_gpu_s(slot, t)
                e = (busy_s - marks[slot]) * self.cap_w[pool]
                marks[slot] = busy_s
                self.wl_energy_j[engine.index] += e
                self.wl_cost[engine.index] += e * factor

    def settle(self, t: float) -> None:
        """Bring every integral up to ``t`` under the present conditions and caps.

        Settling again at the same instant adds nothing, so it only folds the headroom seen.
        """
        if t <= self.t:
            self._fold_headroom(float(self.timeline.pue[self.k]))
            return
        k = self.k
        tl = self.timeline
        dt = t - self.t
        totals = [m.totals_at(t) for m in self.meters]
        it_j = sum(x[0] for x in totals)
        d_it = it_j - self.it_j
        pue = float(tl.pue[k])
        other = float(tl.other_w[k])
        facility = d_it * pue + other * dt
        self.facility_j += facility
        self.cooling_j += d_it * (pue - 1.0)
        self.other_j += other * dt
        price = float(tl.price[k])
        if price == price:
            self.cost_usd += facility * price / J_PER_MWH
        throttled = 0.0
        for p, x in enumerate(totals):
            if self.cap_w[p] < self.base_cap_w[p]:
                throttled += max(x[1] - self.busy_s[p], 0.0)
            self.busy_s[p] = x[1]
        self.throttled_s += throttled
        suspended = self.suspended_gpus * dt
        self.suspended_s += suspended
        if tl.curtailed[k]:
            self.curtailed_s += dt
        if self.t >= self.warmup:
            row = self.by_source[self.source]
            row[0] += dt
            if self.level < 1.0 or self.suspended_gpus:
                row[1] += dt
            row[2] += throttled
            row[3] += suspended
        self._fold_headroom(pue)
        for w in range(self.n_workloads):
            self._settle_workload(w, t)
        self._settle_engines(t)
        self.t = t
        self.it_j = it_j

    def _fold_headroom(self, pue: float) -> None:
        """Count the least headroom the engines and admissions saw since the last fold."""
        if self.min_free_w < INF:
            self.sample_headroom_w = min(self.sample_headroom_w, self.min_free_w * pue)
            self.min_free_w = INF

    def _mark_energy(self, t: float) -> None:
        self.settle(t)
        self.shed.record(t, self.facility_j)

    def snapshot(self, t: float) -> tuple[float, ...]:
        """Cumulative figures at ``t``, settling first.

        (facility J, cooling J, other J, cost USD, throttled GPU-s, suspended GPU-s, curtailed s).
        """
        self.settle(t)
        return (
            self.facility_j,
            self.cooling_j,
            self.other_j,
            self.cost_usd,
            self.throttled_s,
            self.suspended_s,
            self.curtailed_s,
        )

    def sample_headroom(self, t: float) -> float:
        """Least facility headroom (W) since the previous sample, this instant included."""
        self.settle(t)
        self._observe_headroom(self.budget_w - self.draw_w())
        least, self.sample_headroom_w = self.sample_headroom_w, INF
        return least

    def gpus_capped(self) -> int:
        """Busy GPUs whose cap is below their pool's configured cap."""
        return sum(
            m.busy_now() for p, m in enumerate(self.meters) if self.cap_w[p] < self.base_cap_w[p]
        )

    # -- demand and billing ------------------------------------------------------------------
    def _on_demand_interval(self) -> None:
        t = self.clock.now
        self.settle(t)
        self.billing.close(t, self.facility_j, self.cost_usd)
        nxt = self.billing.next_boundary(t)
        if nxt < self.horizon:
            self.clock.call_at(nxt, SITE_PRIORITY, self._on_demand_interval)

    def mark_warmup(self, t: float) -> None:
        """At the end of the warm-up: per-workload figures count from here."""
        self.settle(t)
        self.warmup_marks = (list(self.wl_energy_j), list(self.wl_cost))

    def finish(self, t: float) -> None:
        """At the horizon: settle everything, close the last demand interval, record tables."""
        self.settle(t)
        self.billing.close(t, self.facility_j, self.cost_usd)
        rec = self.recorder
        for row in self.billing.rows():
            rec.billing(*row)
        shed = self.shed.total_j(self.facility_j)
        for source in range(1, N_SOURCES):
            binding, shedding, throttled, suspended, held_req, held_jobs = self.by_source[source]
            rec.limit_stats(
                source,
                binding / 3600.0,
                shedding / 3600.0,
                throttled / 3600.0,
                suspended / 3600.0,
                int(held_req),
                int(held_jobs),
                shed / J_PER_MWH if source == codes.LIMIT_CURTAILMENT else math.nan,
            )
        marks = self.warmup_marks or ([0.0] * self.n_workloads, [0.0] * self.n_workloads)
        for w in range(self.n_workloads):
            rec.workload_energy(
                w, (self.wl_energy_j[w] - marks[0][w]) / 3.6e6, self.wl_cost[w] - marks[1][w]
            )
