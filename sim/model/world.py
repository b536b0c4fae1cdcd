"""The simulated site: builds the world from a validated scenario and runs it on one clock.

``simulate`` is a pure function of (scenario, inputs, seed): it records into the recorder it
is given and keeps no state in module globals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING

from sim.config.interconnect import link_of
from sim.config.scenario import (
    InferenceWorkload,
    LLMWorkload,
    Scenario,
    ServedWorkload,
    TrainingWorkload,
)
from sim.config.serving import ServingTimes, serving_times
from sim.errors import ScenarioError
from sim.inputs import Inputs
from sim.model.arrivals import ArrivalStream, StreamContext, make_stream
from sim.model.autoscale import Autoscaler
from sim.model.clock import OBSERVE, Clock, name_ranks, priority
from sim.model.inference import InferenceEngine, InferenceHub
from sim.model.ledger import PowerLedger
from sim.model.llm import LLMEngine, TokenDraw, token_draw, trace_tokens
from sim.model.nodes import NodeBoard
from sim.model.outages import draw_windows
from sim.model.placement import build_pools, place_replicas, replica_demand
from sim.model.policies import POWER_POLICIES, QUEUE_POLICIES
from sim.model.pools import Capacity, Placement
from sim.model.power import PoolMeter
from sim.model.rng import RandomStreams
from sim.model.sampling import make_sampler
from sim.model.site import SiteTimeline, build_timeline
from sim.model.training import JobSource, TrainingScheduler
from sim.record import codes
from sim.record.intervals import interval_count

if TYPE_CHECKING:
    from sim.record.recorder import Recorder

Progress = Callable[[float], None]
"""Called with the simulated time as the run advances (about a hundred times per run)."""

J_PER_KWH = 3.6e6
NAN = float("nan")
OBSERVE_PRIORITY = priority(OBSERVE)


def _finite(x: float) -> float:
    """``x``, or NaN (written as null) where it is infinite: no limit, no capacity."""
    return x if math.isfinite(x) else NAN


class World:
    """Everything a run simulates, wired together on one clock."""

    def __init__(
        self,
        scn: Scenario,
        inputs: Inputs,
        recorder: Recorder,
        seed: int,
        timeline: SiteTimeline | None = None,
        audit: bool = False,
    ) -> None:
        self.scn = scn
        self.recorder = recorder
        self.horizon = scn.scenario.duration_s
        self.clock = Clock()
        self.streams = RandomStreams(seed)
        self.inputs = inputs
        self.arrival_context = StreamContext(
            inputs, scn.scenario.start, scn.scenario.timezone, self.horizon
        )
        self.pools = build_pools(scn)
        self.meters = [
            PoolMeter(cfg, state.gpu) for cfg, state in zip(scn.pools, self.pools, strict=True)
        ]
        self.windows = draw_windows(scn, self.streams, inputs)
        self.timeline = (
            timeline if timeline is not None else build_timeline(scn, inputs, self.windows)
        )
        self.ledger = PowerLedger(
            self.clock,
            scn,
            self.pools,
            self.meters,
            self.timeline,
            recorder,
            POWER_POLICIES[scn.scheduler.power_policy],
        )
        self.ledger.audit = audit
        self.reliability = bool(scn.outages or scn.maintenance or any(p.fails for p in scn.pools))
        """Whether nodes can go down (failures, outages, maintenance)."""
        self.capacity = Capacity(self.pools, track=self.reliability)
        self.scheduler = TrainingScheduler(
            self.clock,
            self.capacity,
            self.ledger,
            QUEUE_POLICIES[scn.scheduler.policy](),
            recorder,
            scn.scheduler.backfill_depth,
            scn.scheduler.preempt,
        )
        self.keys = name_ranks([w.name for w in scn.workloads])
        self.intervals = interval_count(scn.scenario.sample_every_s, self.horizon)
        recorder.event(0.0, codes.RUN_STARTED)
        replicas, problems = place_replicas(scn, self.capacity)
        if problems:
            raise ScenarioError("scenario", problems)
        # In the order of the workloads' names, so that nothing (not the order of the events
        # of the placements, not the order of floating-point sums) follows the file's order.
        by_name = sorted(range(len(scn.workloads)), key=lambda i: self.keys[i])
        self.demands = {
            i: replica_demand(wl, self.capacity, scn.model_catalogue())
            for i, wl in enumerate(scn.workloads)
            if isinstance(wl, ServedWorkload)
        }
        workloads = [(i, scn.workloads[i]) for i in by_name]
        self.engines = [
            self._engine(index, wl, replicas[index])
            for index, wl in workloads
            if isinstance(wl, ServedWorkload)
        ]
        self.hub = InferenceHub(self.clock, self.engines, self.horizon, self.ledger)
        self.sources = [
            self._job_source(index, wl)
            for index, wl in workloads
            if isinstance(wl, TrainingWorkload)
        ]
        self.ledger.attach(self.engines, self.hub, self.scheduler)
        self.autoscalers = [
            Autoscaler(
                self.clock,
                engine,
                self.keys[engine.index],
                spec,
                self.demands[engine.index],
                self.capacity,
                self.meters,
                self.ledger,
                self.scheduler,
                self.hub,
                recorder,
                self.horizon,
            )
            for engine in self.engines
            if (spec := scn.workloads[engine.index].autoscale) is not None  # type: ignore[union-attr]
        ]
        self.board = NodeBoard(
            self.clock,
            scn,
            self.pools,
            self.meters,
            self.capacity,
            recorder,
            self.streams,
            inputs,
            self.windows,
        )
        if self.reliability:
            self.ledger.board = self.board
            self.board.attach(
                self.ledger,
                self.scheduler,
                self.hub,
                self.engines,
                {e.index: self.demands[e.index] for e in self.engines},
            )

    def _engine(
        self, index: int, wl: ServedWorkload, placements: list[Placement]
    ) -> InferenceEngine:
        """The engine of one inference workload, its replicas placed and metered."""
        for number, placement in enumerate(placements):
            pool = placement.pool.index
            self.meters[pool].change(0.0, 0, placement.gpus)
            self.recorder.event(
                0.0,
                codes.REPLICA_PLACED,
                index,
                pool,
                number,
                placement.gpus,
                placement.nodes,
            )
        stream = make_stream(
            wl.arrival, self.streams.stream("workload", wl.name, "arrival"), self.arrival_context
        )
        pools = [p.index for p in self.demands[index].pools]
        engine: InferenceEngine
        if isinstance(wl, InferenceWorkload):
            engine = InferenceEngine(
                index,
                self.keys[index],
                wl,
                placements,
                stream,
                make_sampler(
                    wl.service, self.streams.stream("workload", wl.name, "service"), self.inputs
                ),
                self.recorder,
                pools=pools,
            )
        else:
            assert isinstance(wl, LLMWorkload)
            engine = LLMEngine(
                index,
                self.keys[index],
                wl,
                placements,
                stream,
                (
                    self._tokens(wl, "input_tokens", stream),
                    self._tokens(wl, "output_tokens", stream),
                ),
                self._serving_times(wl, pools),
                self.recorder,
                pools=pools,
            )
        for slot, pool in enumerate(engine.pools):
            self.meters[pool].add_source(engine, slot)
        return engine

    def _tokens(self, wl: LLMWorkload, key: str, stream: ArrivalStream) -> TokenDraw:
        """The token counts of an LLM workload's requests: from its trace, else drawn."""
        spec = getattr(wl, key)
        if spec is None:
            return trace_tokens(stream, key)
        return token_draw(
            make_sampler(spec, self.streams.stream("workload", wl.name, key), self.inputs)
        )

    def _serving_times(self, wl: LLMWorkload, pools: list[int]) -> dict[int, ServingTimes]:
        """An LLM workload's serving times on each pool it may use."""
        model = self.scn.model_catalogue()[wl.model]
        times = {}
        for p in pools:
            pool = self.scn.pools[p]
            gpu = self.scn.pool_gpu(pool)
            link = link_of(pool.link_name(gpu))
            times[p] = serving_times(model, wl.precision, gpu, wl.gpus_per_replica, link)
        return times

    def _job_source(self, index: int, wl: TrainingWorkload) -> JobSource:
        """The job submissions of one training workload."""
        gpus = wl.gpus
        return JobSource(
            self.clock,
            self.scheduler,
            index,
            self.keys[index],
            wl,
            partial(self.capacity.demand, memory_gb_per_gpu=wl.memory_gb_per_gpu, pool=wl.pool),
            make_stream(
                wl.arrival,
                self.streams.stream("workload", wl.name, "arrival"),
                self.arrival_context,
            ),
            None
            if wl.duration is None
            else make_sampler(
                wl.duration, self.streams.stream("workload", wl.name, "duration"), self.inputs
            ),
            self.horizon,
            gpus
            if gpus is None or isinstance(gpus, int)
            else make_sampler(gpus, self.streams.stream("workload", wl.name, "gpus"), self.inputs),
        )

    # -- sampling ------------------------------------------------------------------------
    def sample_times(self) -> Iterator[float]:
        """Every ``sample_every`` from 0, plus the warm-up boundary, before the horizon."""
        meta = self.scn.scenario
        step, warmup = meta.sample_every_s, meta.warmup_s
        k = 0
        warmup_pending = warmup > 0
        while True:
            t = k * step
            if warmup_pending and warmup <= t:
                warmup_pending = False
                if warmup < t and warmup < self.horizon:
                    yield warmup
            if t >= self.horizon:
                return
            yield t
            k += 1

    def sample(self, t: float) -> None:
        """Record the site's, each pool's and each inference workload's state at time ``t``."""
        pool_rows = []
        it_w = energy_j = busy_s = alloc_s = up_s = 0.0
        total = up = allocated = busy = 0
        for pool, meter in zip(self.pools, self.meters, strict=True):
            e, b, a, u = meter.totals_at(t)
            busy_now = meter.busy_now()
            power_w = meter.power_now()
            pool_rows.append(
                (
                    pool.gpus_total,
                    meter.up_gpus,
                    meter.allocated,
                    busy_now,
                    power_w / 1000.0,
                    e / J_PER_KWH,
                    b / 3600.0,
                    a / 3600.0,
                    u / 3600.0,
                )
            )
            it_w += power_w
            energy_j += e
            busy_s += b
            alloc_s += a
            up_s += u
            total += pool.gpus_total
            up += meter.up_gpus
            allocated += meter.allocated
            busy += busy_now
        ledger, tl = self.ledger, self.timeline
        k = ledger.k
        facility_j, cooling_j, other_j, cost, throttled_s, suspended_s, curtailed_s = (
            ledger.snapshot(t)
        )
        headroom_w = ledger.sample_headroom(t)
        pue = float(tl.pue[k])
        other_w = float(tl.other_w[k])
        price = float(tl.price[k])
        site = (
            total,
            up,
            allocated,
            busy,
            it_w / 1000.0,
            (it_w * pue + other_w) / 1000.0,
            _finite(float(tl.limit_w[k])) / 1000.0,
            int(tl.source[k]),
            _finite(headroom_w) / 1000.0,
            it_w * (pue - 1.0) / 1000.0,
            other_w / 1000.0,
            _finite(float(tl.cooling_w[k])) / 1000.0,
            float(tl.ambient_c[k]),
            pue,
            price,
            bool(tl.curtailed[k]),
            ledger.level,
            ledger.gpus_capped(),
            len(self.scheduler.suspended),
            len(ledger.suspended_replicas),
            energy_j / J_PER_KWH,
            busy_s / 3600.0,
            alloc_s / 3600.0,
            up_s / 3600.0,
            facility_j / J_PER_KWH,
            cooling_j / J_PER_KWH,
            other_j / J_PER_KWH,
            cost if self.scn.facility.price is not None else NAN,
            throttled_s / 3600.0,
            suspended_s / 3600.0,
            curtailed_s / 3600.0,
            sum(e.waiting for e in self.engines),
            sum(e.in_service for e in self.engines),
            self.scheduler.queued,
            len(self.scheduler.running),
            self.board.nodes_down,
            (self.scheduler.lost_gpu_s + sum(e.lost_gpu_s for e in self.engines)) / 3600.0,
            self.scheduler.checkpoint_gpu_s / 3600.0,
            self.scheduler.restart_gpu_s / 3600.0,
        )
        self.recorder.sample(t, site, pool_rows)

    def sample_workloads(self, t: float, interval: int) -> None:
        """Record each inference workload's counters and state at the end of an interval."""
        for e in self.engines:
            self.recorder.workload_sample(
                t,
                interval,
                e.index,
                e.arrived,
                e.completed,
                e.rejected,
                e.waiting,
                e.in_service,
                e.busy_replicas,
                e.batch_from_start(t),
            )

    def _observe_at(self, t: float, action: Callable[[], None]) -> None:
        """Call ``action`` at time ``t``, after everything else that happens at ``t``."""
        self.clock.call_at(t, OBSERVE_PRIORITY, action)

    def _sample_from(self, times: Iterator[float]) -> None:
        """Take the samples at ``times``, one entry at a time."""
        t = next(times, None)
        if t is None:
            return

        def take() -> None:
            self.sample(t)
            self._sample_from(times)

        self._observe_at(t, take)

    def _workload_samples_from(self, k: int) -> None:
        """Close each inference workload's interval ``k`` at its end (the last at the horizon)."""
        if k + 1 >= self.intervals or not self.engines:
            return
        t = (k + 1) * self.scn.scenario.sample_every_s

        def take() -> None:
            self.sample_workloads(t, k)
            self._workload_samples_from(k + 1)

        self._observe_at(t, take)

    # -- running -------------------------------------------------------------------------
    def run(self, progress: Progress | None = None) -> None:
        """Simulate up to the horizon, then close every request and job and take a last sample."""
        self._sample_from(self.sample_times())
        self._workload_samples_from(0)
        warmup = self.scn.scenario.warmup_s
        if warmup > 0:

            def warmup_ends() -> None:
                self.recorder.event(warmup, codes.WARMUP_ENDED)
                self.ledger.mark_warmup(warmup)
                self.hub.mark_warmup(warmup)

            self._observe_at(warmup, warmup_ends)
        if progress is not None:
            for k in range(1, 100):
                t = self.horizon * k / 100
                self._observe_at(t, partial(progress, t))
        self.clock.run_until(self.horizon)
        self.hub.finish()
        self.scheduler.finish(self.horizon)
        self.board.finish(self.horizon)
        self.sample(self.horizon)
        self.ledger.finish(self.horizon)
        if self.engines:
            self.sample_workloads(self.horizon, self.intervals - 1)
        self.recorder.event(self.horizon, codes.RUN_ENDED)
        if progress is not None:
            progress(self.horizon)


def simulate(
    scn: Scenario,
    inputs: Inputs,
    recorder: Recorder,
    seed: int,
    progress: Progress | None = None,
    audit: bool = False,
) -> None:
    """Run one simulation of ``scn`` with ``seed``, recording into ``recorder``.

    ``audit`` checks, at every change of power while the limit can bind, that the ledger's
    headroom agrees with the meters and the draw is within the limit (slow; for tests).
    """
    World(scn, inputs, recorder, seed, audit=audit).run(progress)
