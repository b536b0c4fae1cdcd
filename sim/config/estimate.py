"""How big a run will be, from the scenario alone: requests, rows, peak memory, disk and time.

``estimate(scn)`` is pure arithmetic on the validated values (nothing of the model is built),
so it is safe on any input, a billion nodes included; ``size_problems`` compares it with this
machine (free memory, free disk) and with fixed limits, so that ``sim validate`` and
``sim run`` refuse what cannot fit before anything is allocated.

The model is linear: every figure is a sum of parts, each a count taken from the scenario
(nodes, replicas, expected requests, rows...) times a constant measured on the machine that
ran ``benchmarks/calibrate.py`` (``.venv/bin/python benchmarks/calibrate.py``; it runs
``sim run --quiet`` as child processes and reads their peak RSS with ``os.wait4``, their CPU
time and their run directory's ``manifest.json``). Expected counts use the arrival processes'
mean rates, so they are what the run averages, not what one seed draws.

A ``trace`` arrival's count is the rows of its file within the horizon, counted by
``sim.inputs.trace_counts`` and passed in (without it, 0). ``daily`` and ``mmpp`` use their
long-run mean rates (whole weeks; the stationary mix of states).

Accuracy: rows within a few per cent for Poisson and periodic arrivals over long horizons;
memory, disk and time within about 2x of a measured ``sim run`` on this machine for the
scenarios under ``benchmarks/`` and ``scenarios/`` (calibrate.py prints the ratios). Memory
does not grow with the horizon except through the queues: a queue that grows without bound
(arrivals faster than the replicas or the pools serve them, no ``max_queue``) is counted from
the mean rates; a distribution without a known mean (``empirical``) is assumed to keep up.
Time is CPU seconds of a whole ``sim run`` process; another machine may be 2x faster or
slower until calibrate.py is run there.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sim.config.arrivals import ArrivalBase, At, Periodic
from sim.config.catalogue import BUILTIN_GPU_TYPES
from sim.config.interconnect import link_of
from sim.config.scenario import (
    InferenceWorkload,
    LLMWorkload,
    Scenario,
    ServedWorkload,
    TrainingWorkload,
)
from sim.config.serving import serving_times
from sim.errors import Problem

# --- Facts of the code (not measured) -----------------------------------------------------

ROW_GROUP_ROWS = 262_144
"""Rows a Parquet table holds in memory before they are written (``sim.record.sink``)."""
PENDING_ROWS = 8192 + 8192
"""Requests an inference workload holds in its Python lists besides those in the system: one
chunk of arrivals drawn ahead (``sim.model.arrivals.LARGEST_CHUNK``) and the finished ones
gathered before they go to the recorder (``sim.model.inference.FLUSH_ROWS``)."""
SOJOURN_WINDOW = 10.0
"""Finished requests stay in memory behind the oldest unfinished one: about this many mean
service times' worth of arrivals (a guess that covers the tail of the usual distributions)."""
EVENTS_PER_JOB = 3.0
"""Event rows per training job: submitted, started, and completed (or rejected, or cut off)."""
EVENTS_FIXED = 3.0
"""Event rows of every run: started, ended, warm-up ended."""
COUNT_CAP = 1e30
"""Counts are capped here so that absurd inputs give large finite numbers, never inf or NaN."""

# --- Limits -------------------------------------------------------------------------------

MEMORY_SHARE = 0.8
"""A run may use at most this share of the memory available when it starts."""
DISK_SHARE = 0.9
"""A run may fill at most this share of the free space of its output folder's file system."""
MAX_POOL_NODES = 10_000_000
"""Nodes in one pool, whatever the machine (ten times the largest sites there are)."""
MAX_POOL_GPUS = 100_000_000
"""GPUs in one pool, whatever the machine."""
MAX_GPUS_PER_NODE = 1_000_000
"""GPUs in one node, whatever the machine (each free-GPU count has its own list)."""
MAX_REPLICAS = 10_000_000
"""Replicas of one inference workload, whatever the machine."""

# --- Constants measured by benchmarks/calibrate.py ----------------------------------------
# Measured with `.venv/bin/python benchmarks/calibrate.py` (about a minute; it prints the
# value it measures beside each one here, and the whole estimate against whole benchmark
# runs). Each comes from whole `sim run --quiet` child processes: peak RSS (`os.wait4`
# ru_maxrss), CPU time (user + system) and the run directory's manifest.json. A constant is
# what is left of the measured figure once the parts fitted before it are taken away, divided
# by the count it multiplies; disk per row is a table's file size over its rows. The run that
# gives each is named in [brackets] (a calibrate.py run key). Measured on Linux x86_64,
# 2 cores, Python 3.11, numpy 2, pyarrow, with other work on the machine (CPU figures vary by
# about 30 % from one calibration to the next).

MEM_BASE_BYTES = 179_000_000.0
"""Peak RSS of a run of an idle two-node site: the interpreter with numpy, pyarrow, pandas and
simpy imported, the Parquet writers and the summary [base]."""
MEM_PER_NODE_BYTES = 86.6
"""Per node: the pool's free-GPU, pinned, bucket and position lists [nodes: 2,000,000 nodes]."""
MEM_PER_NODE_GPU_BYTES = 52.8
"""Per GPU of a pool's node size (``gpus_per_node``), one list per free-GPU count
[node_gpus: 10 nodes of 1,000,000 GPUs]."""
MEM_PER_REPLICA_BYTES = 339.0
"""Per placed replica: its placement, engine entries and placement event
[replicas: 100,000 replicas on 250 nodes of 400 GPUs]."""
MEM_PER_PENDING_REQUEST_BYTES = 242.0
"""Per request held in an inference workload's lists or queue [backlog: benchmarks/mmc_1m.toml
with 4 replicas for 100,000 s, requests = "none": a queue growing to about 320,000]."""
MEM_PER_REQUEST_ROW_BYTES = 133.0
"""Per request row in the Parquet row group being filled, at most ``ROW_GROUP_ROWS`` rows
[requests: benchmarks/mmc_1m.toml, 1,000,000 requests]."""
MEM_PER_JOB_BYTES = 388.0
"""Per job row and its event rows in the row groups being filled, at most ``ROW_GROUP_ROWS``
jobs [training: benchmarks/training_month.toml for 10 days, about 156,000 jobs]."""
MEM_PER_QUEUED_JOB_BYTES = 184.0
"""Per training job waiting or running, beyond its rows [job_queue: 1-GPU jobs arriving 200 a
second on 80 GPUs for 3,000 s, a queue of about 600,000]."""
MEM_PER_SAMPLE_ROW_BYTES = 151.0
"""Per site or pool time-series row, read back whole for the summary [samples: the idle site
for 30 days sampled every 5 s, about 1,550,000 rows]."""

DISK_FIXED_BYTES = 42_600.0
"""Every run directory: the Parquet footers of every table, summary.json, manifest.json
[base]."""
DISK_PER_REQUEST_ROW_BYTES = 40.8
"""Per request row, compressed [requests]."""
DISK_PER_REQUEST_ROW_CALENDAR_BYTES = 50.6
"""Per request row of a scenario with ``start``, which adds timestamp columns
[calendar: benchmarks/mmc_1m.toml for 69,444 s with a start]."""
DISK_PER_REQUEST_ROW_LOCAL_BYTES = 59.9
"""Per request row of a scenario with ``start`` and ``timezone``, which adds local-time
columns too [local: the same with a timezone]."""
DISK_PER_JOB_ROW_BYTES = 35.9
"""Per job row [training]."""
DISK_PER_EVENT_ROW_BYTES = 7.35
"""Per event row [training]."""
DISK_PER_SAMPLE_ROW_BYTES = 45.9
"""Per time-series row of a busy site (an idle site's compress to a tenth of it) [training]."""

CPU_STARTUP_S = 0.704
"""CPU seconds of a run of an idle two-node site for an hour: imports, checks, writing the run
directory, the summary [base]."""
CPU_PER_NODE_S = 2.84e-07
"""Per node: building the pool, twice (the check and the run) [nodes]."""
CPU_PER_NODE_GPU_S = 7.07e-07
"""Per GPU of a pool's node size [node_gpus]."""
CPU_PER_REPLICA_S = 1.36e-05
"""Per replica: placing it (twice, among nodes of 400 GPUs), its engine entries, its event
[replicas]."""
CPU_PER_REQUEST_S = 1.29e-06
"""Per request simulated and counted, without a row [requests_none: benchmarks/mmc_1m.toml
with requests = "none"]."""
CPU_PER_LLM_REQUEST_S = 9.4e-06
"""Per request of a ``kind = "llm"`` workload (admission, prefill, decoding, completion),
without a row [llm: benchmarks/llm_day.toml for two hours; 9.4 µs over its whole day]."""
CPU_PER_REQUEST_ROW_S = 2.86e-07
"""Per request row written, on top of simulating the request [requests]."""
CPU_PER_JOB_S = 1.6e-05
"""Per training job, with its events, on a 2,000-node pool [training]."""
CPU_PER_SAMPLE_ROW_S = 3.83e-06
"""Per time-series row [samples]."""

TIGHT_REQUEST_FACTOR = (1.1, 2.5)
"""CPU per request while the power limit can bind, × that of a request when it cannot: one
inference workload, several (they then take turns in time order). Measured with farm-bench:
``/tmp`` variants of the heatwave (1 and 2 services) and the site-week at 3.6 MW (20 services,
×2.4); not calibrated by ``benchmarks/calibrate.py``."""

CALIBRATED = (
    "MEM_BASE_BYTES",
    "MEM_PER_NODE_BYTES",
    "MEM_PER_NODE_GPU_BYTES",
    "MEM_PER_REPLICA_BYTES",
    "MEM_PER_PENDING_REQUEST_BYTES",
    "MEM_PER_REQUEST_ROW_BYTES",
    "MEM_PER_JOB_BYTES",
    "MEM_PER_QUEUED_JOB_BYTES",
    "MEM_PER_SAMPLE_ROW_BYTES",
    "DISK_FIXED_BYTES",
    "DISK_PER_REQUEST_ROW_BYTES",
    "DISK_PER_REQUEST_ROW_CALENDAR_BYTES",
    "DISK_PER_REQUEST_ROW_LOCAL_BYTES",
    "DISK_PER_JOB_ROW_BYTES",
    "DISK_PER_EVENT_ROW_BYTES",
    "DISK_PER_SAMPLE_ROW_BYTES",
    "CPU_STARTUP_S",
    "CPU_PER_NODE_S",
    "CPU_PER_NODE_GPU_S",
    "CPU_PER_REPLICA_S",
    "CPU_PER_REQUEST_S",
    "CPU_PER_LLM_REQUEST_S",
    "CPU_PER_REQUEST_ROW_S",
    "CPU_PER_JOB_S",
    "CPU_PER_SAMPLE_ROW_S",
)
"""The names of the measured constants, which ``estimate`` may be given other values of."""

REQUEST_ROWS_HINT = (
    'set [output] requests = "none", or "sample" with a sample_rate such as 0.01, '
    "or shorten scenario.duration"
)


@dataclass(frozen=True)
class Part:
    """One term of an estimate: ``count`` units of something, ``per`` bytes or seconds each.

    ``key`` is the scenario key that sets the count (empty for fixed costs), ``what`` says
    what is counted (a plural noun phrase), ``constant`` names the per-unit constant, and
    ``hint`` what to change to make the part smaller.
    """

    key: str
    what: str
    count: float
    constant: str
    per: float
    hint: str = ""

    @property
    def amount(self) -> float:
        """Bytes or seconds: count × per."""
        return self.count * self.per


@dataclass(frozen=True)
class Estimate:
    """The expected size of a run of a scenario, and the parts its figures are sums of.

    Counts are expectations over the horizon (warm-up included), from the mean rates.
    """

    requests: dict[str, float] = field(hash=False)
    """Expected requests of each inference workload, by name."""
    request_rows: float
    """Rows written to requests.parquet (every request, a sampled share, or none)."""
    jobs: float
    """Expected training jobs (rows of jobs.parquet)."""
    events: float
    """Rows of events.parquet: about 3 per job, one per replica, and a few more."""
    samples: float
    """Rows of timeseries, pool_timeseries and workload_timeseries."""
    memory: tuple[Part, ...]
    """The parts of the peak memory (bytes)."""
    disk: tuple[Part, ...]
    """The parts of the run directory's size (bytes)."""
    time: tuple[Part, ...]
    """The parts of the CPU time of ``sim run`` (seconds)."""

    @property
    def requests_total(self) -> float:
        """Expected requests of every inference workload."""
        return sum(self.requests.values())

    @property
    def memory_bytes(self) -> float:
        """Peak resident memory of ``sim run`` (bytes)."""
        return sum(p.amount for p in self.memory)

    @property
    def disk_bytes(self) -> float:
        """Size of the run directory (bytes)."""
        return sum(p.amount for p in self.disk)

    @property
    def cpu_s(self) -> float:
        """CPU seconds of ``sim run`` on the machine the constants were measured on."""
        return sum(p.amount for p in self.time)

    def line(self) -> str:
        """One line for people: ``estimate: 1,000,000 requests (1,000,000 rows), 0 jobs; ...``."""
        return (
            f"estimate: {format_count(self.requests_total)} requests "
            f"({format_count(self.request_rows)} rows), {format_count(self.jobs)} jobs; "
            f"peak memory ~{format_bytes(self.memory_bytes)}, "
            f"disk ~{format_bytes(self.disk_bytes)}, "
            f"~{format_seconds(self.cpu_s)} on this machine"
        )


def biggest(parts: tuple[Part, ...]) -> Part | None:
    """The largest part that a scenario key sets (None if only fixed costs)."""
    keyed = [p for p in parts if p.key]
    return max(keyed, key=lambda p: p.amount) if keyed else None


# --- Formatting ---------------------------------------------------------------------------


def format_count(n: float) -> str:
    """A count with thousands separators (``1,000,000``), or ``1.2e+18`` when huge."""
    return f"{n:,.0f}" if n < 1e15 else f"{n:.1e}"


def format_bytes(n: float) -> str:
    """Bytes in binary units: ``950 B``, ``1.5 GiB``, ``210 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            break
        n /= 1024
    if unit == "EiB" and n >= 1024:
        return f"{n:.1e} EiB"
    return f"{n:.1f} {unit}" if n < 10 and unit != "B" else f"{n:.0f} {unit}"


def format_seconds(s: float) -> str:
    """A rough duration: ``3 s``, ``12 min``, ``2.5 h``, ``40 days``, ``3e+05 years``."""
    if s < 90:
        return f"{max(s, 1):.0f} s"
    if s < 90 * 60:
        return f"{s / 60:.0f} min"
    if s < 48 * 3600:
        return f"{s / 3600:.1f} h"
    if s < 2 * 365 * 86400:
        return f"{s / 86400:.0f} days"
    return f"{s / (365 * 86400):.2g} years"


# --- The estimate -------------------------------------------------------------------------


def _cap(n: float) -> float:
    return n if n < COUNT_CAP else COUNT_CAP


def arrivals(arrival: ArrivalBase, horizon_s: float) -> float:
    """Expected arrivals of a process in [0, horizon)."""
    if isinstance(arrival, At):
        return float(sum(1 for t in arrival.times_s if t < horizon_s))
    if isinstance(arrival, Periodic):
        if arrival.offset_s >= horizon_s:
            return 0.0
        count = (horizon_s - arrival.offset_s) / arrival.interval_s
        return _cap(math.ceil(count)) if count < COUNT_CAP else COUNT_CAP
    rate = arrival.mean_rate_hz()
    return _cap(rate * horizon_s) if rate is not None else 0.0


def _counts(
    workloads: Sequence[ServedWorkload | TrainingWorkload],
    horizon_s: float,
    known: Mapping[str, float],
) -> dict[str, float]:
    """Expected arrivals of each workload: counted where known (traces), else from its process."""
    return {
        w.name: _cap(known[w.name]) if w.name in known else arrivals(w.arrival, horizon_s)
        for w in workloads
    }


def _pools_of(scn: Scenario, pool: str | None) -> list[tuple[int, int, float]]:
    """(nodes, GPUs, speed) of the pools a workload may use (all if its pool is unknown)."""
    catalogue = scn.gpu_catalogue()
    chosen = [p for p in scn.pools if p.name == pool] or list(scn.pools)
    return [
        (p.nodes, p.gpus, catalogue[p.gpu_type].speed if p.gpu_type in catalogue else 1.0)
        for p in chosen
    ]


def _service_s(scn: Scenario, wl: ServedWorkload) -> float | None:
    """Mean time a request holds one of a replica's places on H100-SXM, where known.

    For an LLM workload a replica holds ``max_batch`` requests at once, so this is a full
    batch's time to prefill and decode one mean request, divided by ``max_batch``.
    """
    if isinstance(wl, InferenceWorkload):
        return wl.service.expected_s()
    if not isinstance(wl, LLMWorkload):
        return None
    model = scn.model_catalogue().get(wl.model)
    means = [d.expected_s() if d is not None else None for d in (wl.input_tokens, wl.output_tokens)]
    if model is None or means[0] is None or means[1] is None:
        return None
    times = serving_times(
        model, wl.precision, BUILTIN_GPU_TYPES["H100-SXM"], wl.gpus_per_replica, link_of("nvlink")
    )
    batch = wl.max_batch
    return float(times.prefill_s(means[0] * batch) + means[1] * times.step_s(batch)) / batch


def _output_key(wl: ServedWorkload) -> str:
    """The key of a workload's recording level."""
    return f"workloads.{wl.name}.output.requests" if wl.output is not None else "output.requests"


class _Parts:
    """Parts of one figure, priced with the constants when the estimate is made."""

    def __init__(self, constants: Mapping[str, float]) -> None:
        self.constants = constants
        self.parts: list[Part] = []

    def add(self, key: str, what: str, count: float, constant: str, hint: str = "") -> None:
        self.parts.append(
            Part(key, what, count, constant, self.constants[constant], hint or f"reduce {key}")
        )


def estimate(
    scn: Scenario,
    constants: Mapping[str, float] | None = None,
    counts: Mapping[str, float] | None = None,
) -> Estimate:
    """The expected requests, rows, peak memory, disk and time of running ``scn``.

    Pure arithmetic on the scenario's values (nothing is allocated per node or request), so
    it is safe on absurd input; references need not resolve. ``constants`` replaces measured
    constants by name (see ``CALIBRATED``), for ``benchmarks/calibrate.py``. ``counts`` gives
    the arrivals in the horizon of workloads whose process cannot say (``trace``: the rows of
    its file, ``sim.inputs.trace_counts``), by workload name.
    """
    known = counts or {}
    c = {name: float(globals()[name]) for name in CALIBRATED}
    c.update(constants or {})
    memory, disk, time = _Parts(c), _Parts(c), _Parts(c)
    meta = scn.scenario
    horizon = meta.duration_s
    steps = _cap(horizon / meta.sample_every_s)
    memory.add("", "the process and its libraries", 1, "MEM_BASE_BYTES")
    disk.add("", "the files of every run", 1, "DISK_FIXED_BYTES")
    time.add("", "start-up", 1, "CPU_STARTUP_S")

    for pool in scn.pools:
        key = f"pools.{pool.name}.nodes"
        nodes = f"{format_count(pool.nodes)} nodes"
        memory.add(key, nodes, pool.nodes, "MEM_PER_NODE_BYTES")
        time.add(key, nodes, pool.nodes, "CPU_PER_NODE_S")
        key = f"pools.{pool.name}.gpus_per_node"
        size = f"nodes of {format_count(pool.gpus_per_node)} GPUs"
        memory.add(key, size, pool.gpus_per_node + 1, "MEM_PER_NODE_GPU_BYTES")
        time.add(key, size, pool.gpus_per_node + 1, "CPU_PER_NODE_GPU_S")

    requests: dict[str, float] = {}
    rows: dict[str, float] = {}
    placed_total = replica_gpus = 0.0
    inference = [w for w in scn.workloads if isinstance(w, ServedWorkload)]
    request_counts = _counts(inference, horizon, known)
    for wl in scn.workloads:
        if not isinstance(wl, ServedWorkload):
            continue
        n = request_counts[wl.name]
        requests[wl.name] = n
        rows[wl.name] = n * scn.request_output(wl).level[1]
        pools = _pools_of(scn, wl.pool)
        placed = float(min(wl.replicas, sum(g for _, g, _ in pools) // wl.gpus_per_replica))
        placed_total += placed
        replica_gpus += placed * wl.gpus_per_replica
        _, _, speed = pools[0]
        key = f"workloads.{wl.name}.replicas"
        replicas = f"{format_count(placed)} replicas"
        memory.add(key, replicas, placed, "MEM_PER_REPLICA_BYTES")
        time.add(key, replicas, placed, "CPU_PER_REPLICA_S")
        key = f"workloads.{wl.name}.arrival"
        hint = f"lower the rate of {key} or shorten scenario.duration"
        per_request = (
            "CPU_PER_LLM_REQUEST_S" if isinstance(wl, LLMWorkload) else "CPU_PER_REQUEST_S"
        )
        time.add(key, f"{format_count(n)} requests", n, per_request, hint)
        # Requests held in memory at once: the window behind the oldest unfinished one, and
        # a queue that grows for ever when the replicas cannot keep up.
        rate = n / horizon
        mean = _service_s(scn, wl)
        # An LLM request stays a whole batch's time: max_batch × its share of a replica.
        sojourn = mean * wl.max_batch if mean and isinstance(wl, LLMWorkload) else mean
        window = min(
            n, PENDING_ROWS + (rate * sojourn / speed * SOJOURN_WINDOW if sojourn else 0.0)
        )
        held = f"~{format_count(window)} requests held at once"
        memory.add(key, held, window, "MEM_PER_PENDING_REQUEST_BYTES", hint)
        if mean and rate:
            backlog = min(n, max(0.0, rate - placed * speed / mean) * horizon)
            if wl.max_queue is not None:
                backlog = min(backlog, wl.max_queue)
            if backlog >= 1:
                memory.add(
                    f"workloads.{wl.name}.max_queue",
                    f"~{format_count(backlog)} waiting requests (they arrive faster than "
                    f"{replicas} serve them)",
                    backlog,
                    "MEM_PER_PENDING_REQUEST_BYTES",
                    f"set workloads.{wl.name}.max_queue, add replicas or lower the rate",
                )

    limit_key = _binding_limit(scn)
    if limit_key is not None and requests:
        n = sum(requests.values())
        factor = TIGHT_REQUEST_FACTOR[0 if len(requests) == 1 else 1]
        time.add(
            limit_key,
            f"{format_count(n)} requests while the power limit can bind (checked one by one)",
            n * (factor - 1.0),
            "CPU_PER_REQUEST_S",
            f"loosen {limit_key} if the site need not be limited",
        )

    request_rows = sum(rows.values())
    if request_rows > 0:
        recorded = [w for w in scn.workloads if isinstance(w, ServedWorkload) and rows[w.name]]
        top = max(recorded, key=lambda w: rows[w.name])
        keys = {_output_key(w) for w in recorded}
        key = "output.requests" if keys == {"output.requests"} else _output_key(top)
        what = f"{format_count(request_rows)} request rows"
        in_flight = min(request_rows, ROW_GROUP_ROWS)
        memory.add(key, f"a row group of {what}", in_flight, "MEM_PER_REQUEST_ROW_BYTES")
        per_row = "DISK_PER_REQUEST_ROW_BYTES"
        if meta.start is not None:
            per_row = "DISK_PER_REQUEST_ROW_CALENDAR_BYTES"
            if meta.timezone is not None:
                per_row = "DISK_PER_REQUEST_ROW_LOCAL_BYTES"
        disk.add(key, what, request_rows, per_row, REQUEST_ROWS_HINT)
        time.add(key, what, request_rows, "CPU_PER_REQUEST_ROW_S", REQUEST_ROWS_HINT)

    # Training: jobs, the row groups they fill, and the jobs waiting or running.
    training = [w for w in scn.workloads if isinstance(w, TrainingWorkload)]
    job_counts = _counts(training, horizon, known)
    jobs = sum(job_counts.values())
    events = _cap(EVENTS_PER_JOB * jobs + placed_total + EVENTS_FIXED)
    if training:
        top_job = max(training, key=lambda w: job_counts[w.name])
        key = f"workloads.{top_job.name}.arrival"
        hint = f"lower the rate of {key} or shorten scenario.duration"
        free_gpus = max(sum(p.gpus for p in scn.pools) - replica_gpus, 1.0)
        offered = in_system = 0.0  # GPUs the jobs would keep busy; jobs running
        for wl in training:
            mean = wl.mean_duration_s()
            if mean is None:
                continue
            speed = max(s for _, _, s in _pools_of(scn, wl.pool))
            rate = job_counts[wl.name] / horizon
            gpus = wl.mean_gpus()
            offered += rate * gpus * mean / speed
            in_system += min(rate * mean / speed, free_gpus / gpus, job_counts[wl.name])
        unserved = 1.0 - free_gpus / offered if offered > free_gpus else 0.0
        queued = jobs * unserved + in_system
        what = f"{format_count(jobs)} jobs"
        memory.add(key, f"row groups of {what}", min(jobs, ROW_GROUP_ROWS), "MEM_PER_JOB_BYTES")
        if queued >= 1:
            waiting = f"~{format_count(queued)} jobs waiting or running"
            if unserved:
                hint = f"{hint}; jobs arrive faster than the pools run them"
            memory.add(key, waiting, queued, "MEM_PER_QUEUED_JOB_BYTES", hint)
        disk.add(key, f"{what} and {format_count(events)} events", jobs, "DISK_PER_JOB_ROW_BYTES")
        time.add(key, what, jobs, "CPU_PER_JOB_S", hint)
    disk.add("", "event rows", events, "DISK_PER_EVENT_ROW_BYTES")

    # Time series: a site row and a row per pool at every sample, a row per inference
    # workload and interval; the site and pool rows are read back whole for the summary.
    site_rows = _cap((steps + 1) * (1 + len(scn.pools)))
    samples = _cap(site_rows + len(requests) * steps)
    key = "scenario.sample_every"
    hint = "raise scenario.sample_every or shorten scenario.duration"
    series = f"{format_count(samples)} time-series rows"
    read_back = f"{format_count(site_rows)} time-series rows read back for the summary"
    memory.add(key, read_back, site_rows, "MEM_PER_SAMPLE_ROW_BYTES", hint)
    disk.add(key, series, samples, "DISK_PER_SAMPLE_ROW_BYTES", hint)
    time.add(key, series, samples, "CPU_PER_SAMPLE_ROW_S", hint)

    return Estimate(
        requests=requests,
        request_rows=request_rows,
        jobs=jobs,
        events=events,
        samples=samples,
        memory=tuple(memory.parts),
        disk=tuple(disk.parts),
        time=tuple(time.parts),
    )


def _binding_limit(scn: Scenario) -> str | None:
    """The key of a facility limit the site at full load may exceed, else None.

    A rough static check: the highest PUE, the design-point cooling less 20 % for heat.
    """
    facility = scn.facility
    catalogue = scn.gpu_catalogue()
    full_w = 0.0
    for pool in scn.pools:
        gpu = catalogue.get(pool.gpu_type)
        if gpu is not None:
            full_w += pool.nodes * pool.node_overhead_w + pool.gpus * pool.cap_w(gpu)
    cooling = facility.cooling
    pue = max(cooling.pue.value) if cooling is not None else facility.pue
    other = facility.other_load_mw * 1e6 if isinstance(facility.other_load_mw, float) else 0.0
    limits: list[tuple[float, str]] = []
    if facility.grid_mw is not None:
        limits.append((facility.grid_mw * 1e6, "facility.grid_mw"))
    for i, c in enumerate(facility.curtailments):
        limits.append((c.limit_mw * 1e6, f"facility.curtailments.{i}.limit_mw"))
    price = facility.price
    if price is not None and price.curtail_to_mw is not None:
        limits.append((price.curtail_to_mw * 1e6, "facility.price.curtail_to_mw"))
    for limit, key in sorted(limits):
        if full_w * pue + other > limit:
            return key
    if cooling is not None and cooling.capacity_mw and full_w > 0.8 * cooling.capacity_mw * 1e6:
        return "facility.cooling.capacity_mw"
    return None


# --- This machine -------------------------------------------------------------------------

NO_LIMIT = 1 << 60
"""A cgroup memory limit at or above this means none."""


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory_bytes() -> int | None:
    """Memory a new process may use now: MemAvailable, within the cgroup's limit if any.

    Reads /proc/meminfo (else ``os.sysconf``) and the cgroup v2 or v1 memory limit; None if
    nothing can be read.
    """
    available: int | None = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        available = None
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            available = None
    for limit_path, usage_path in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        limit, usage = _read_int(limit_path), _read_int(usage_path)
        if limit is not None and limit < NO_LIMIT:
            room = max(limit - (usage or 0), 0)
            available = room if available is None else min(available, room)
            break
    return available


def free_disk_bytes(path: Path) -> tuple[Path, int] | None:
    """The nearest existing folder at or above ``path``, and the free bytes of its file system.

    None if neither can be found.
    """
    folder = path.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return folder, shutil.disk_usage(folder).free
    except OSError:
        return None


# --- Refusals -----------------------------------------------------------------------------


def limit_problems(scn: Scenario) -> list[Problem]:
    """Sizes refused whatever the machine: too many nodes, GPUs or replicas."""
    problems: list[Problem] = []
    for pool in scn.pools:
        base = f"pools.{pool.name}"
        if pool.nodes > MAX_POOL_NODES:
            problems.append(
                Problem(
                    f"{base}.nodes",
                    f"{format_count(pool.nodes)} nodes are more than sim takes in one pool "
                    f"(at most {MAX_POOL_NODES:,}, whatever the machine)",
                )
            )
        if pool.gpus_per_node > MAX_GPUS_PER_NODE:
            problems.append(
                Problem(
                    f"{base}.gpus_per_node",
                    f"{format_count(pool.gpus_per_node)} GPUs per node are more than sim "
                    f"takes (at most {MAX_GPUS_PER_NODE:,}, whatever the machine)",
                )
            )
        elif pool.nodes <= MAX_POOL_NODES and pool.gpus > MAX_POOL_GPUS:
            problems.append(
                Problem(
                    f"{base}.nodes",
                    f"{format_count(pool.gpus)} GPUs ({format_count(pool.nodes)} nodes × "
                    f"{pool.gpus_per_node}) are more than sim takes in one pool (at most "
                    f"{MAX_POOL_GPUS:,}, whatever the machine)",
                    related=(f"{base}.gpus_per_node",),
                )
            )
    for wl in scn.workloads:
        if isinstance(wl, ServedWorkload) and wl.replicas > MAX_REPLICAS:
            problems.append(
                Problem(
                    f"workloads.{wl.name}.replicas",
                    f"{format_count(wl.replicas)} replicas are more than sim takes in one "
                    f"workload (at most {MAX_REPLICAS:,}, whatever the machine)",
                )
            )
    return problems


ARRIVAL_FIELDS = (
    "rate_per_s",
    "rate_per_h",
    "rate_per_d",
    "interval",
    "times",
    "hourly",
    "weekdays",
    "rates_per_s",
    "mean_sojourn",
    "path",
    "speedup",
    "loop",
)
"""The keys of an arrival process that set how many arrivals there are."""


def scaling_keys(scn: Scenario, key: str) -> tuple[str, ...]:
    """Keys besides ``key`` that scale the part it sets, for a problem's ``related``.

    The horizon and the arrival rates (and for a growing queue the replicas and service
    times); none for nodes and replicas. A ``--set`` of any of them is blamed for the problem.
    """
    if not key or key.startswith("pools.") or key.endswith(".replicas"):
        return ()
    keys = ["scenario.duration"]
    if key != "scenario.sample_every":
        for wl in scn.workloads:
            keys += [f"workloads.{wl.name}.arrival.{f}" for f in ARRIVAL_FIELDS]
            if key == f"workloads.{wl.name}.max_queue":
                keys += [f"workloads.{wl.name}.replicas", f"workloads.{wl.name}.service"]
        if key.endswith("output.requests"):
            keys += ["output.sample_rate", *(f"workloads.{w.name}.output" for w in scn.workloads)]
    return tuple(k for k in keys if k != key)


def size_problems(scn: Scenario, est: Estimate, out_dir: Path | None = None) -> list[Problem]:
    """What of ``est`` cannot fit this machine, or any.

    Checks the available memory, the free disk of the output folder's file system (when
    ``out_dir`` is given) and the fixed limits (``limit_problems``). Each problem names the key
    of the biggest part to change, with the estimate.
    """
    problems: list[Problem] = []
    available = available_memory_bytes()
    need = est.memory_bytes
    part = biggest(est.memory)
    if available is not None and part is not None and need > MEMORY_SHARE * available:
        whole = format_bytes(need)
        if part.amount >= 0.9 * need:
            what = f"{part.what} need about {whole} of memory to simulate"
        else:
            what = (
                f"the run needs about {whole} of memory to simulate, "
                f"{format_bytes(part.amount)} of it for {part.what}"
            )
        problems.append(
            Problem(
                part.key,
                f"{what}; this machine has {format_bytes(available)} available and sim takes "
                f"at most {MEMORY_SHARE:.0%} of it ({part.hint})",
                related=scaling_keys(scn, part.key),
            )
        )
    named = {p.key for p in problems}
    problems += [p for p in limit_problems(scn) if p.key not in named]
    if out_dir is not None:
        free = free_disk_bytes(out_dir)
        part = biggest(est.disk)
        if free is not None and part is not None and est.disk_bytes > DISK_SHARE * free[1]:
            folder, space = free
            problems.append(
                Problem(
                    part.key,
                    f"{part.what} need about {format_bytes(est.disk_bytes)} of disk in all; "
                    f"{folder} has {format_bytes(space)} free and sim fills at most "
                    f"{DISK_SHARE:.0%} of it ({part.hint})",
                    related=scaling_keys(scn, part.key),
                )
            )
    return problems
