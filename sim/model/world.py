"""The simulated site: builds the SimPy world from a validated scenario and runs it.

``simulate`` is a pure function of (scenario, inputs, seed): it records into the recorder it
is given and keeps no state in module globals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING

import simpy

from sim.config.scenario import InferenceWorkload, Scenario, TrainingWorkload
from sim.errors import ScenarioError
from sim.inputs import Inputs
from sim.model.arrivals import make_stream
from sim.model.clock import END_OF_INSTANT, call_at
from sim.model.inference import InferenceEngine
from sim.model.placement import build_pools, place_replicas
from sim.model.policies import QUEUE_POLICIES
from sim.model.pools import Capacity
from sim.model.power import FacilityPower, PoolMeter
from sim.model.rng import RandomStreams
from sim.model.sampling import make_sampler
from sim.model.training import TrainingScheduler, job_arrivals
from sim.record import codes

if TYPE_CHECKING:
    from sim.record.recorder import Recorder

Progress = Callable[[float], None]
"""Called with the simulated time as the run advances (about a hundred times per run)."""

J_PER_KWH = 3.6e6
NAN = float("nan")


class World:
    """Everything a run simulates, wired together."""

    def __init__(self, scn: Scenario, inputs: Inputs, recorder: Recorder, seed: int) -> None:
        self.scn = scn
        self.recorder = recorder
        self.horizon = scn.scenario.duration_s
        self.env = simpy.Environment()
        streams = RandomStreams(seed)
        self.pools = build_pools(scn)
        self.meters = [
            PoolMeter(cfg, state.gpu) for cfg, state in zip(scn.pools, self.pools, strict=True)
        ]
        self.facility = FacilityPower(scn.facility)
        self.capacity = Capacity(self.pools)
        self.scheduler = TrainingScheduler(
            self.env, self.capacity, self.meters, QUEUE_POLICIES[scn.scheduler.policy](), recorder
        )
        recorder.event(0.0, codes.RUN_STARTED)
        replicas, problems = place_replicas(scn, self.capacity)
        if problems:
            raise ScenarioError("scenario", problems)
        self.engines: list[InferenceEngine] = []
        for index, wl in enumerate(scn.workloads):
            if isinstance(wl, InferenceWorkload):
                for number, placement in enumerate(replicas[index]):
                    pool = placement.pool
                    self.meters[pool.index].change(0.0, 0, placement.gpus)
                    recorder.event(
                        0.0,
                        codes.REPLICA_PLACED,
                        index,
                        pool.index,
                        number,
                        placement.gpus,
                        placement.describe(),
                    )
                placements = replicas[index]
                self.engines.append(
                    InferenceEngine(
                        self.env,
                        index,
                        wl,
                        placements,
                        self.meters,
                        make_stream(wl.arrival, streams.stream("workload", wl.name, "arrival")),
                        make_sampler(
                            wl.service, streams.stream("workload", wl.name, "service"), inputs
                        ),
                        recorder,
                        self.horizon,
                    )
                )
        for index, wl in enumerate(scn.workloads):
            if isinstance(wl, TrainingWorkload):
                demand = self.capacity.demand(wl.gpus, wl.memory_gb_per_gpu, wl.pool)
                self.env.process(
                    job_arrivals(
                        self.env,
                        self.scheduler,
                        index,
                        wl,
                        demand,
                        make_stream(wl.arrival, streams.stream("workload", wl.name, "arrival")),
                        make_sampler(
                            wl.duration, streams.stream("workload", wl.name, "duration"), inputs
                        ),
                        self.horizon,
                    )
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
        """Record the site's and each pool's state at time ``t``."""
        pool_rows = []
        it_w = energy_j = busy_s = alloc_s = up_s = 0.0
        total = up = allocated = busy = 0
        for pool, meter in zip(self.pools, self.meters, strict=True):
            e, b, a, u = meter.totals_at(t)
            pool_rows.append(
                {
                    "time_s": t,
                    "pool": pool.index,
                    "gpus_total": pool.gpus_total,
                    "gpus_up": meter.up_gpus,
                    "gpus_allocated": meter.allocated,
                    "gpus_busy": meter.busy,
                    "it_power_kw": meter.power_w / 1000.0,
                    "it_energy_kwh": e / J_PER_KWH,
                    "gpu_busy_hours": b / 3600.0,
                    "gpu_allocated_hours": a / 3600.0,
                    "gpu_up_hours": u / 3600.0,
                }
            )
            it_w += meter.power_w
            energy_j += e
            busy_s += b
            alloc_s += a
            up_s += u
            total += pool.gpus_total
            up += meter.up_gpus
            allocated += meter.allocated
            busy += meter.busy
        site = {
            "time_s": t,
            "gpus_total": total,
            "gpus_up": up,
            "gpus_allocated": allocated,
            "gpus_busy": busy,
            "it_power_kw": it_w / 1000.0,
            "facility_power_kw": self.facility.facility_w(it_w) / 1000.0,
            "power_limit_kw": self.facility.limit_kw if self.facility.limit_kw is not None else NAN,
            "it_energy_kwh": energy_j / J_PER_KWH,
            "gpu_busy_hours": busy_s / 3600.0,
            "gpu_allocated_hours": alloc_s / 3600.0,
            "gpu_up_hours": up_s / 3600.0,
            "facility_energy_kwh": self.facility.facility_energy_j(energy_j) / J_PER_KWH,
            "requests_waiting": sum(e.waiting for e in self.engines),
            "requests_in_service": sum(e.in_service for e in self.engines),
            "jobs_queued": self.scheduler.queued,
            "jobs_running": len(self.scheduler.running),
        }
        self.recorder.sample(site, pool_rows)

    def at_end_of_instant(self, t: float, action: Callable[[], None]) -> None:
        """Call ``action`` at time ``t``, after everything else that happens at ``t``."""
        call_at(self.env, t, lambda _event: action(), END_OF_INSTANT)

    def _sample_from(self, times: Iterator[float]) -> None:
        """Take the samples at ``times``, one event at a time."""
        t = next(times, None)
        if t is None:
            return

        def take() -> None:
            self.sample(t)
            self._sample_from(times)

        self.at_end_of_instant(t, take)

    # -- running -------------------------------------------------------------------------
    def run(self, progress: Progress | None = None) -> None:
        """Simulate up to the horizon, then close every request and job and take a last sample."""
        env = self.env
        self._sample_from(self.sample_times())
        warmup = self.scn.scenario.warmup_s
        if warmup > 0:
            self.at_end_of_instant(warmup, lambda: self.recorder.event(warmup, codes.WARMUP_ENDED))
        if progress is not None:
            for k in range(1, 100):
                t = self.horizon * k / 100
                self.at_end_of_instant(t, partial(progress, t))
        env.run(until=self.horizon)
        for engine in self.engines:
            engine.finish()
        self.scheduler.finish(self.horizon)
        self.sample(self.horizon)
        self.recorder.event(self.horizon, codes.RUN_ENDED)
        if progress is not None:
            progress(self.horizon)


def simulate(
    scn: Scenario,
    inputs: Inputs,
    recorder: Recorder,
    seed: int,
    progress: Progress | None = None,
) -> None:
    """Run one simulation of ``scn`` with ``seed``, recording into ``recorder``."""
    World(scn, inputs, recorder, seed).run(progress)
