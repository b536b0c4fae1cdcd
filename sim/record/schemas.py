"""Every output table's columns in one place: name, Arrow type, unit and meaning.

Columns carry their unit and description as Arrow field metadata, so they travel inside the
Parquet files. Timestamp columns (UTC, microseconds) are added beside the time columns when
the scenario has a calendar ``start``, and local wall-clock columns beside those when it also
has a ``timezone``.

Each schema also carries pandas metadata (the ``b"pandas"`` key that pyarrow's ``to_pandas``
honours, written here by hand: pandas is not imported), so a plain ``pd.read_parquet`` gives
the same dtypes in every run, whether a column happens to hold nulls or not: nullable
integers (``Int32``, ``Int64``), ``boolean``, ``float64``, ``datetime64[us, UTC]`` and naive
``datetime64[us]``, categoricals for dictionary-encoded text and pandas' default string dtype
for other text (``PANDAS_DTYPES``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

SCHEMA_VERSION = 4
"""Bumped when a column is renamed or removed, or its meaning changes."""

DICT = pa.dictionary(pa.int32(), pa.string())
"""Dictionary-encoded string: for columns with few distinct values."""
TIMESTAMP = pa.timestamp("us", tz="UTC")
LOCAL_TIMESTAMP = pa.timestamp("us")
"""Local wall-clock time: timezone-naive, what BI tools show as it is."""


@dataclass(frozen=True)
class Column:
    """One column of an output table."""

    name: str
    type: pa.DataType
    unit: str
    doc: str
    timestamp: str | None = None
    """The name of the timestamp column added beside this one when the scenario has a start."""
    derived: bool = False
    """Computed from other columns when written, not recorded."""
    signed: bool = False
    """An integer column where a negative value is a value (elsewhere negative means null)."""

    @property
    def local(self) -> str | None:
        """The name of the local-time column beside the timestamp, with a timezone.

        ``arrival_ts`` gives ``arrival_local``, ``timestamp`` gives ``timestamp_local``.
        """
        if self.timestamp is None:
            return None
        return self.timestamp.removesuffix("_ts") + "_local"

    def field(self) -> pa.Field:
        """The Arrow field, with unit and description as metadata."""
        return pa.field(self.name, self.type, metadata={"unit": self.unit, "description": self.doc})


def _ts_field(column: Column) -> pa.Field:
    assert column.timestamp is not None
    return pa.field(
        column.timestamp,
        TIMESTAMP,
        metadata={"unit": "UTC", "description": f"calendar time of {column.name}"},
    )


def _local_field(column: Column, timezone: str) -> pa.Field:
    assert column.local is not None
    return pa.field(
        column.local,
        LOCAL_TIMESTAMP,
        metadata={
            "unit": "local",
            "description": f"local wall-clock time of {column.name} in {timezone} "
            f"(no offset; {column.timestamp} is the same instant in UTC)",
            "timezone": timezone,
        },
    )


EVENTS = (
    Column("time_s", pa.float64(), "s", "time since the scenario start", "timestamp"),
    Column("event", DICT, "", "what happened (see the README's list of events)"),
    Column("workload", DICT, "", "the workload concerned, if any"),
    Column("pool", DICT, "", "the pool concerned, if any"),
    Column(
        "id",
        pa.int64(),
        "",
        "the job_id, the replica number within its workload, or the node number within its pool",
    ),
    Column("gpus", pa.int32(), "GPU", "GPUs concerned"),
    Column(
        "detail",
        pa.string(),
        "",
        "free text: nodes used (node 3 x8, node 4 x8), why a job was rejected, or a cause",
    ),
)

REQUESTS = (
    Column(
        "request_id", pa.int64(), "", "unique within the run; within a workload, in arrival order"
    ),
    Column("workload", DICT, "", "inference workload"),
    Column("arrival_s", pa.float64(), "s", "arrival time", "arrival_ts"),
    Column("start_s", pa.float64(), "s", "start of service; null if never started", "start_ts"),
    Column(
        "end_s",
        pa.float64(),
        "s",
        "end of service, or when it failed or timed out; null if rejected or unfinished",
        "end_ts",
    ),
    Column("wait_s", pa.float64(), "s", "start_s - arrival_s; null if never started"),
    Column("latency_s", pa.float64(), "s", "end_s - arrival_s; null if not served"),
    Column("service_s", pa.float64(), "s", "end_s - start_s; null if not served"),
    Column(
        "status",
        DICT,
        "",
        "ok, rejected (queue full), unfinished (at the horizon), failed (lost with its replica "
        "more than retries times) or timeout (waited longer than the workload's timeout)",
    ),
    Column("attempts", pa.int32(), "", "times it was queued: 1, plus one per retry"),
    Column(
        "sla_met",
        pa.bool_(),
        "",
        "served within the SLA latency; false if late, rejected, failed, timed out, or "
        "unfinished past the SLA; "
        "null if the workload has no SLA or the request was unfinished but could still have met it",
    ),
    Column("replica", pa.int32(), "", "replica number within the workload; null if never started"),
    Column(
        "pool",
        DICT,
        "",
        "pool its replica sat in when it started (replicas move when their node goes down); "
        "null if never started",
    ),
    Column("after_warmup", pa.bool_(), "", "arrived at or after the warm-up (counted in summary)"),
    Column("input_tokens", pa.int32(), "", "prompt tokens (llm workloads; null otherwise)"),
    Column("output_tokens", pa.int32(), "", "output tokens (llm workloads; null otherwise)"),
    Column(
        "ttft_s",
        pa.float64(),
        "s",
        "time to first token: first token - arrival_s (llm workloads); null before it",
    ),
    Column(
        "tpot_s",
        pa.float64(),
        "s",
        "time per output token after the first: (end_s - first token) / (output_tokens - 1), "
        "served llm requests of 2 tokens or more; null otherwise",
    ),
)

JOBS = (
    Column("job_id", pa.int64(), "", "unique within the run, in submission order"),
    Column("workload", DICT, "", "training workload"),
    Column("gpus", pa.int32(), "GPU", "GPUs the job holds while running"),
    Column("priority", pa.int32(), "", "the workload's priority", signed=True),
    Column("submit_s", pa.float64(), "s", "submission time", "submit_ts"),
    Column("start_s", pa.float64(), "s", "start time; null if never started", "start_ts"),
    Column("end_s", pa.float64(), "s", "completion (or failure) time; null otherwise", "end_ts"),
    Column("wait_s", pa.float64(), "s", "start_s - submit_s; null if never started", derived=True),
    Column(
        "run_s",
        pa.float64(),
        "s",
        "time its GPUs were busy: computing, checkpointing, reloading (to the horizon if "
        "unfinished)",
    ),
    Column("work_s", pa.float64(), "s", "the job's run time on H100-SXM (its drawn duration)"),
    Column("progress", pa.float64(), "", "share of the work done, 0 to 1"),
    Column(
        "status",
        DICT,
        "",
        "completed, rejected (can never fit), unfinished (at the horizon) or failed "
        "(interrupted more than max_restarts times)",
    ),
    Column("restarts", pa.int32(), "", "times it was interrupted and queued again"),
    Column("suspended_s", pa.float64(), "s", "time spent suspended by the power ladder"),
    Column(
        "lost_gpu_s",
        pa.float64(),
        "GPU·s",
        "busy GPU time whose work was lost to interruptions (since the last checkpoint)",
    ),
    Column("checkpoint_gpu_s", pa.float64(), "GPU·s", "busy GPU time writing checkpoints"),
    Column("restart_gpu_s", pa.float64(), "GPU·s", "busy GPU time reloading after restarts"),
    Column("pool", DICT, "", "pool it ran on; null if never started"),
    Column("nodes", pa.int32(), "", "nodes its GPUs spanned; null if never started"),
    Column("reason", pa.string(), "", "why it was rejected or failed; null otherwise"),
    Column(
        "after_warmup",
        pa.bool_(),
        "",
        "submitted at or after the warm-up (counted in summary)",
        derived=True,
    ),
)

_GPU_COUNTS = (
    Column("gpus_total", pa.int32(), "GPU", "GPUs installed"),
    Column(
        "gpus_up",
        pa.int32(),
        "GPU",
        "GPUs of nodes that are up (not failed, in maintenance or powered off)",
    ),
    Column("gpus_allocated", pa.int32(), "GPU", "GPUs held by replicas and jobs"),
    Column("gpus_busy", pa.int32(), "GPU", "GPUs computing: serving a request or running a job"),
)
_CUMULATIVE = (
    Column("it_energy_kwh", pa.float64(), "kWh", "IT energy since the start (exact integral)"),
    Column("gpu_busy_hours", pa.float64(), "GPU·h", "integral of gpus_busy since the start"),
    Column(
        "gpu_allocated_hours", pa.float64(), "GPU·h", "integral of gpus_allocated since the start"
    ),
    Column("gpu_up_hours", pa.float64(), "GPU·h", "integral of gpus_up since the start"),
)

TIMESERIES = (
    Column("time_s", pa.float64(), "s", "sample time", "timestamp"),
    *_GPU_COUNTS,
    Column("it_power_kw", pa.float64(), "kW", "IT power: GPUs and node overhead"),
    Column("facility_power_kw", pa.float64(), "kW", "IT + cooling (IT × (PUE - 1)) + other load"),
    Column(
        "power_limit_kw",
        pa.float64(),
        "kW",
        "the binding limit on facility power (least of grid, curtailment, cooling); null if none",
    ),
    Column(
        "limit_source",
        DICT,
        "",
        "which limit binds: none, grid, curtailment, cooling, generator or no_power",
    ),
    Column(
        "headroom_min_kw",
        pa.float64(),
        "kW",
        "least power_limit_kw - facility_power_kw "
        "since the previous sample (this instant included); null without a limit",
    ),
    Column("cooling_power_kw", pa.float64(), "kW", "cooling power: IT × (PUE - 1)"),
    Column("other_load_kw", pa.float64(), "kW", "load besides IT and cooling"),
    Column(
        "cooling_capacity_kw",
        pa.float64(),
        "kW",
        "IT heat the cooling can reject at the present ambient; null if unlimited",
    ),
    Column("ambient_c", pa.float64(), "°C", "outdoor temperature"),
    Column("pue", pa.float64(), "", "PUE at the present ambient"),
    Column("price_usd_per_mwh", pa.float64(), "USD/MWh", "electricity price; null without a price"),
    Column("curtailed", pa.bool_(), "", "whether a curtailment is active"),
    Column(
        "cap_level",
        pa.float64(),
        "",
        "the power ladder's cap level: 1 uncapped, 0 every GPU at its lowest cap",
    ),
    Column("gpus_capped", pa.int32(), "GPU", "busy GPUs running below their pool's cap"),
    Column("jobs_suspended", pa.int32(), "", "training jobs suspended for power"),
    Column("replicas_suspended", pa.int32(), "", "inference replicas suspended for power"),
    *_CUMULATIVE,
    Column("facility_energy_kwh", pa.float64(), "kWh", "facility energy since the start"),
    Column("cooling_energy_kwh", pa.float64(), "kWh", "cooling energy since the start"),
    Column("other_energy_kwh", pa.float64(), "kWh", "other load's energy since the start"),
    Column(
        "energy_cost_usd",
        pa.float64(),
        "USD",
        "cost of the facility energy since the start (∫ power × price); null without a price",
    ),
    Column(
        "throttled_gpu_hours",
        pa.float64(),
        "GPU·h",
        "busy GPU-hours run below the pool's cap by the ladder, since the start",
    ),
    Column(
        "suspended_gpu_hours",
        pa.float64(),
        "GPU·h",
        "GPU-hours of suspended jobs and replicas, since the start",
    ),
    Column("curtailment_hours", pa.float64(), "h", "hours under a curtailment since the start"),
    Column("requests_waiting", pa.int64(), "", "requests queued, all inference workloads"),
    Column("requests_in_service", pa.int64(), "", "requests being served"),
    Column("jobs_queued", pa.int64(), "", "training jobs waiting to start"),
    Column("jobs_running", pa.int64(), "", "training jobs running"),
    Column("nodes_down", pa.int32(), "", "nodes failed, in maintenance or powered off"),
    Column(
        "lost_gpu_hours",
        pa.float64(),
        "GPU·h",
        "busy GPU-hours whose work interruptions threw away (training since the last "
        "checkpoint, requests in service), since the start",
    ),
    Column(
        "checkpoint_gpu_hours",
        pa.float64(),
        "GPU·h",
        "busy GPU-hours writing checkpoints since the start (counted when the job's run "
        "segment ends: at its end, a new cap, a suspension or an interruption)",
    ),
    Column(
        "restart_gpu_hours",
        pa.float64(),
        "GPU·h",
        "busy GPU-hours reloading after restarts since the start (counted when the run "
        "segment ends)",
    ),
)

POOL_TIMESERIES = (
    Column("time_s", pa.float64(), "s", "sample time", "timestamp"),
    Column("pool", DICT, "", "the pool"),
    *_GPU_COUNTS,
    Column("it_power_kw", pa.float64(), "kW", "IT power of the pool"),
    *_CUMULATIVE,
)

WORKLOAD_TIMESERIES = (
    Column("time_s", pa.float64(), "s", "start of the interval", "timestamp"),
    Column("end_s", pa.float64(), "s", "end of the interval (sample_every later, or the horizon)"),
    Column("workload", DICT, "", "the inference workload"),
    Column("arrivals", pa.int64(), "", "requests that arrived in the interval"),
    Column("served", pa.int64(), "", "requests whose service ended in the interval"),
    Column("rejected", pa.int64(), "", "requests rejected (queue full) in the interval"),
    Column("waiting", pa.int64(), "", "requests waiting at the end of the interval"),
    Column("in_service", pa.int64(), "", "requests in service at the end of the interval"),
    Column("busy_replicas", pa.int64(), "", "replicas serving at the end of the interval"),
    Column("latency_p50_s", pa.float64(), "s", "median latency of requests served in the interval"),
    Column("latency_p95_s", pa.float64(), "s", "95th percentile latency, served in the interval"),
    Column("latency_p99_s", pa.float64(), "s", "99th percentile latency, served in the interval"),
    Column(
        "sla_attainment",
        pa.float64(),
        "",
        "share of requests that ended in the interval (served or rejected) within the SLA; "
        "null without an SLA or with none ended",
    ),
    Column("ttft_p50_s", pa.float64(), "s", "median TTFT of llm requests served in the interval"),
    Column("ttft_p99_s", pa.float64(), "s", "99th percentile TTFT, served in the interval"),
    Column("tpot_p50_s", pa.float64(), "s", "median TPOT of llm requests served in the interval"),
    Column("tpot_p99_s", pa.float64(), "s", "99th percentile TPOT, served in the interval"),
    Column(
        "output_tokens",
        pa.int64(),
        "",
        "output tokens of llm requests served in the interval (null for other kinds)",
    ),
    Column(
        "tokens_per_s",
        pa.float64(),
        "1/s",
        "output_tokens / the interval's length (null for other kinds)",
    ),
    Column(
        "sla_ttft_attainment",
        pa.float64(),
        "",
        "as sla_attainment, for the TTFT objective alone (llm workloads with one; else null)",
    ),
    Column(
        "sla_tpot_attainment",
        pa.float64(),
        "",
        "as sla_attainment, for the TPOT objective alone (llm workloads with one; else null)",
    ),
    Column(
        "mean_batch",
        pa.float64(),
        "",
        "requests a busy replica held in the interval, time-averaged (llm; null if none busy)",
    ),
)

WORKLOAD_STATS = (
    Column("workload", DICT, "", "the workload"),
    Column("requests_total", pa.int64(), "", "requests that arrived after the warm-up"),
    Column("requests_served", pa.int64(), "", "of which served (status ok)"),
    Column("requests_rejected", pa.int64(), "", "of which rejected"),
    Column("requests_unfinished", pa.int64(), "", "of which unfinished at the horizon"),
    Column("requests_failed", pa.int64(), "", "of which failed (lost with their replica)"),
    Column("requests_timed_out", pa.int64(), "", "of which timed out waiting"),
    Column(
        "requests_recorded",
        pa.int64(),
        "",
        "rows written to requests.parquet (warm-up included; all, a sample or none)",
    ),
    Column("sla_decided", pa.int64(), "", "requests whose sla_met is true or false"),
    Column("sla_met", pa.int64(), "", "requests whose sla_met is true"),
    *(
        Column(f"sla_{part}_{what}", pa.int64(), "", f"{meaning} the {name} objective alone")
        for part, name in (("latency", "latency"), ("ttft", "TTFT"), ("tpot", "TPOT"))
        for what, meaning in (
            ("decided", "requests decided on"),
            ("met", "requests that met"),
        )
    ),
    Column("wait_count", pa.int64(), "", "requests that started service"),
    Column("wait_sum_s", pa.float64(), "s", "sum of their waits"),
    Column("waited_count", pa.int64(), "", "requests that waited more than 0"),
    Column("latency_count", pa.int64(), "", "requests served"),
    Column("latency_sum_s", pa.float64(), "s", "sum of their latencies"),
    Column("ttft_count", pa.int64(), "", "llm requests served (with a TTFT)"),
    Column("ttft_sum_s", pa.float64(), "s", "sum of their TTFTs"),
    Column("tpot_count", pa.int64(), "", "llm requests served with 2 output tokens or more"),
    Column("tpot_sum_s", pa.float64(), "s", "sum of their TPOTs"),
    Column("input_tokens", pa.int64(), "", "prompt tokens of the llm requests served"),
    Column("output_tokens", pa.int64(), "", "output tokens of the llm requests served"),
    Column(
        "batch_request_s",
        pa.float64(),
        "s",
        "llm: integral of the requests its replicas hold, after the warm-up",
    ),
    Column(
        "batch_busy_s",
        pa.float64(),
        "s",
        "llm: integral of its replicas holding requests; batch_request_s / batch_busy_s is "
        "the mean batch",
    ),
    Column(
        "replica_up_s",
        pa.float64(),
        "s",
        "llm: integral of its replicas up (placed and serving), after the warm-up",
    ),
    Column("jobs_submitted", pa.int64(), "", "jobs submitted after the warm-up"),
    Column("jobs_started", pa.int64(), "", "of which started"),
    Column("jobs_completed", pa.int64(), "", "of which completed"),
    Column("jobs_rejected", pa.int64(), "", "of which rejected"),
    Column("jobs_unfinished", pa.int64(), "", "of which unfinished at the horizon"),
    Column("jobs_failed", pa.int64(), "", "of which failed (past max_restarts)"),
    Column("job_lost_gpu_s", pa.float64(), "GPU·s", "sum of their lost_gpu_s"),
    Column("job_restarts", pa.int64(), "", "sum of their restarts"),
    Column("job_wait_sum_s", pa.float64(), "s", "sum of the started jobs' waits"),
    Column("job_gpu_s", pa.float64(), "GPU·s", "sum of run_s × gpus"),
    Column(
        "job_slowdown_sum",
        pa.float64(),
        "",
        "sum over completed jobs of the bounded slowdown max(1, (end_s − submit_s) / "
        "max(run_s, 10 s))",
    ),
    Column(
        "it_energy_kwh",
        pa.float64(),
        "kWh",
        "energy of the workload's busy GPUs (at their caps) after the warm-up",
    ),
    Column(
        "energy_cost_usd",
        pa.float64(),
        "USD",
        "its share of the energy cost: it_energy × PUE × price, after the warm-up; null "
        "without a price",
    ),
)

BILLING = (
    Column("month", pa.string(), "", "billing month: YYYY-MM, or month-N without a start"),
    Column("start_s", pa.float64(), "s", "start of the month (may be before the run)", "start_ts"),
    Column("simulated_s", pa.float64(), "s", "seconds of the month the run covers"),
    Column(
        "peak_demand_kw",
        pa.float64(),
        "kW",
        "highest facility power averaged over a demand interval",
    ),
    Column("peak_at_s", pa.float64(), "s", "start of that interval", "peak_at_ts"),
    Column("facility_energy_mwh", pa.float64(), "MWh", "facility energy in the month"),
    Column("energy_cost_usd", pa.float64(), "USD", "its cost; null without a price"),
    Column(
        "demand_charge_usd",
        pa.float64(),
        "USD",
        "peak_demand_kw × the demand charge, prorated by the share of the month simulated",
    ),
)

LIMITS = (
    Column(
        "source",
        DICT,
        "",
        "the limit: grid, curtailment, cooling, generator (grid outage) or no_power",
    ),
    Column("binding_hours", pa.float64(), "h", "hours it was the binding limit (after warm-up)"),
    Column(
        "shedding_hours",
        pa.float64(),
        "h",
        "of which hours the ladder capped or suspended work under it",
    ),
    Column("throttled_gpu_hours", pa.float64(), "GPU·h", "busy GPU-hours run capped under it"),
    Column("suspended_gpu_hours", pa.float64(), "GPU·h", "GPU-hours suspended under it"),
    Column(
        "requests_held",
        pa.int64(),
        "",
        "requests that found a replica free but no power headroom, under it",
    ),
    Column("jobs_held", pa.int64(), "", "jobs that found GPUs but no power headroom, under it"),
    Column(
        "energy_shed_mwh",
        pa.float64(),
        "MWh",
        "curtailment only: facility energy below the previous-window baseline",
    ),
)

HISTOGRAMS = (
    Column("workload", DICT, "", "the workload"),
    Column(
        "measure",
        DICT,
        "",
        "latency, ttft or tpot (served requests) or job_wait (started jobs)",
    ),
    Column("bucket", pa.int32(), "", "log bucket number (0: below 1 µs)"),
    Column("lower_s", pa.float64(), "s", "lower edge of the bucket"),
    Column("upper_s", pa.float64(), "s", "upper edge of the bucket"),
    Column("count", pa.int64(), "", "values in the bucket (after the warm-up)"),
)

NODES = (
    Column("pool", DICT, "", "the node's pool"),
    Column("node", pa.int32(), "", "node number within the pool"),
    Column("state", DICT, "", "up, failed, maintenance, no_power or draining (before maintenance)"),
    Column("start_s", pa.float64(), "s", "start of the interval", "start_ts"),
    Column(
        "end_s",
        pa.float64(),
        "s",
        "end of the interval; null if it lasts to the horizon",
        "end_ts",
    ),
    Column(
        "cause",
        pa.string(),
        "",
        "failure, the outages.N or maintenance.N entry (with its target), or the limit that "
        "powered it off; null when up",
    ),
)

OUTAGES = (
    Column("cause", pa.string(), "", "the scenario entry: outages.N or maintenance.N"),
    Column("target", pa.string(), "", "grid, cooling, pool:<name> or nodes:<pool>:<count>"),
    Column("start_s", pa.float64(), "s", "start", "start_ts"),
    Column(
        "end_s",
        pa.float64(),
        "s",
        "end (maintenance: the last node back up); null if it lasts to the horizon",
        "end_ts",
    ),
    Column("pool", DICT, "", "the pool of a node target; null for grid and cooling"),
    Column("gpus_hit", pa.int64(), "GPU", "GPUs it took down (or powered off)"),
    Column("jobs_hit", pa.int64(), "", "training jobs it interrupted"),
    Column("replicas_hit", pa.int64(), "", "inference replicas it took down"),
)

TABLES: dict[str, tuple[Column, ...]] = {
    "events": EVENTS,
    "requests": REQUESTS,
    "jobs": JOBS,
    "timeseries": TIMESERIES,
    "pool_timeseries": POOL_TIMESERIES,
    "workload_timeseries": WORKLOAD_TIMESERIES,
    "workload_stats": WORKLOAD_STATS,
    "histograms": HISTOGRAMS,
    "billing": BILLING,
    "limits": LIMITS,
    "nodes": NODES,
    "outages": OUTAGES,
}
"""Every Parquet file of a run directory (``<name>.parquet``) and its columns."""

TABLE_DOCS: dict[str, str] = {
    "events": "One row per state change, in the order things happened.",
    "requests": "One row per inference request: all of them, a sample or none, as "
    "`[output] requests` says. Rows come in blocks of one workload, each in arrival order.",
    "jobs": "One row per training job, in the order jobs reach their final status "
    "(unfinished ones at the horizon).",
    "timeseries": "The site, one row per sample: every `sample_every` from 0, plus one at the "
    "warm-up boundary and one at the horizon. Counts and powers are instantaneous; the "
    "`*_kwh` and `*_hours` columns are exact integrals from the start to the sample time.",
    "pool_timeseries": "Each pool, one row per pool per sample (the samples of `timeseries`).",
    "workload_timeseries": "Each inference workload, one row per `sample_every` interval "
    "`(time_s, end_s]`: counts of events in the interval, states at its end. Every request "
    "counts, whatever the recording level.",
    "workload_stats": "One row per workload: the exact aggregates the summary is computed "
    "from, over requests and jobs arriving at or after the warm-up, whatever the recording "
    "level.",
    "histograms": "Log-bucket histograms per workload and measure (buckets grow by 2 % from "
    "1 µs to 10⁹ s), after the warm-up: the summary's percentiles, within 1 %.",
    "billing": "One row per billing month (calendar months in UTC with a `start`, else 30-day "
    "periods); the whole run is billed, warm-up included.",
    "limits": "One row per limit source: what it held back after the warm-up.",
    "nodes": "One row per interval of a node in one state.",
    "outages": "One row per outage or maintenance window.",
}
"""What one row of each table is, for ``docs/outputs.md`` (``sim.record.docs``)."""


PANDAS_DTYPES: dict[pa.DataType, str] = {
    pa.int32(): "Int32",
    pa.int64(): "Int64",
    pa.bool_(): "boolean",
    pa.float64(): "float64",
    pa.string(): "str",
    DICT: "category",
    TIMESTAMP: "datetime64[us, UTC]",
    LOCAL_TIMESTAMP: "datetime64[us]",
}
"""The pandas dtype each Arrow type of the outputs reads as (``pd.read_parquet``, pandas 3;
text is ``object`` in pandas 2)."""

_PANDAS_TYPES: dict[pa.DataType, tuple[str, str, dict[str, Any] | None]] = {
    pa.int32(): ("int32", "Int32", None),
    pa.int64(): ("int64", "Int64", None),
    pa.bool_(): ("bool", "boolean", None),
    pa.float64(): ("float64", "float64", None),
    pa.string(): ("unicode", "str", None),
    # pandas writes the category codes' dtype and the number of categories; neither is read
    # back, and the categories are only known per file, so the index type stands for both.
    DICT: ("categorical", "int32", {"ordered": False}),
    TIMESTAMP: ("datetimetz", "datetime64[us]", {"timezone": "UTC"}),
    LOCAL_TIMESTAMP: ("datetime", "datetime64[us]", None),
}
"""Per Arrow type: pandas metadata's ``pandas_type``, ``numpy_type`` and ``metadata``, as
``pa.Schema.from_pandas`` writes them for a column of the ``PANDAS_DTYPES`` dtype."""


def pandas_metadata(fields: list[pa.Field]) -> bytes:
    """The ``b"pandas"`` schema metadata for these fields, as pyarrow writes it from pandas.

    ``numpy_type`` names pandas' nullable dtypes (``Int64``, ``boolean``), so ``to_pandas``
    reads integers and booleans as those whether a column holds nulls or not.
    """
    columns = []
    for f in fields:
        pandas_type, numpy_type, metadata = _PANDAS_TYPES[f.type]
        columns.append(
            {
                "name": f.name,
                "field_name": f.name,
                "pandas_type": pandas_type,
                "numpy_type": numpy_type,
                "metadata": metadata,
            }
        )
    meta = {
        "index_columns": [],
        "column_indexes": [],
        "columns": columns,
        "attributes": {},
        "creator": {"library": "sim"},
    }
    return json.dumps(meta, separators=(", ", ": ")).encode()


def schema(table: str, calendar: bool, timezone: str | None = None) -> pa.Schema:
    """The Arrow schema of an output table.

    With ``calendar``, a UTC timestamp column follows each time column that has one; with a
    ``timezone`` too, a local wall-clock column follows each timestamp.
    """
    fields: list[pa.Field] = []
    for column in TABLES[table]:
        fields.append(column.field())
        if calendar and column.timestamp:
            fields.append(_ts_field(column))
            if timezone is not None:
                fields.append(_local_field(column, timezone))
    metadata = {
        b"sim_schema_version": str(SCHEMA_VERSION).encode(),
        b"pandas": pandas_metadata(fields),
    }
    return pa.schema(fields, metadata=metadata)
