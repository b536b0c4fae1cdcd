"""What the model records, streamed to the run directory while the run goes.

Events, jobs and samples are appended to one typed array per column (``array('d')`` for
floats, ``array('q')`` for integers and codes; text in lists) and handed to their Parquet
sink in batches. Requests come in blocks of NumPy columns from the inference engines and are
converted to Arrow record batches at once, with the derived columns computed vectorised; no
per-request dicts or tuples are ever made. Memory holds a row group per table at most.

Whatever the recording level of the requests (all rows, a sample, none), the recorder keeps
small exact aggregates of every request and job (counts, sums, log-bucket histograms) and
per-interval figures for each inference workload; the summary is computed from those.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sim.calendar import LocalCalendar
from sim.record import codes, histogram
from sim.record.intervals import interval_count
from sim.record.schemas import DICT, LOCAL_TIMESTAMP, TABLES, TIMESTAMP, schema
from sim.record.sink import ParquetSink

BATCH_ROWS = 65536
"""Rows of a column-buffered table gathered before they become an Arrow batch."""

INF = float("inf")
MEASURES = codes.MEASURES
"""The histograms kept per workload (``histograms.parquet``)."""


def _dict_array(codes_: Any, names: Sequence[str]) -> pa.Array:
    """A dictionary-encoded string array from integer codes (negative codes are null)."""
    idx = np.asarray(codes_, dtype=np.int32)
    indices = pa.array(idx, type=pa.int32(), mask=idx < 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(names), type=pa.string()))


def _float_array(values: Any) -> pa.Array:
    """float64 with NaN as null."""
    return pa.array(np.asarray(values, dtype=np.float64), type=pa.float64(), from_pandas=True)


def _int_array(values: Any, type_: pa.DataType, negative_is_null: bool = True) -> pa.Array:
    """Integers, with negative values as null unless the column may hold them."""
    arr = np.asarray(values, dtype=np.int64)
    return pa.array(arr, type=type_, mask=arr < 0 if negative_is_null else None)


def _nodes_text(detail: Any) -> str | None:
    """A text value as written: text as it is, a placement as 'node 3 x8, node 4 x8'.

    Events record a placement's [(node, count), ...] and leave the text to the writer.
    """
    if detail is None or isinstance(detail, str):
        return detail
    return ", ".join(f"node {n} x{c}" for n, c in detail)


class ColumnTable:
    """Typed append-only buffers for one table, written to its sink in batches.

    ``names`` maps each dictionary column to the strings its codes stand for. Derived columns
    (``Column.derived``) are left to ``to_batch``.
    """

    def __init__(
        self,
        name: str,
        sink: ParquetSink,
        names: Mapping[str, Sequence[str]],
        to_batch: Any,
    ) -> None:
        self.name = name
        self.sink = sink
        self.names = names
        self.to_batch = to_batch
        self.columns = [c for c in TABLES[name] if not c.derived]
        self.buffers: list[Any] = [self._buffer(c.type) for c in self.columns]
        self.rows = 0

    @staticmethod
    def _buffer(type_: pa.DataType) -> Any:
        if pa.types.is_floating(type_):
            return array("d")
        if pa.types.is_integer(type_) or type_ == DICT:
            return array("q")
        if pa.types.is_boolean(type_):
            return array("b")
        return []

    def append(self, values: Sequence[Any]) -> None:
        """Add one row, values in column order."""
        for buffer, value in zip(self.buffers, values, strict=True):
            buffer.append(value)
        self.rows += 1
        if self.rows >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        """Hand the buffered rows to the sink as one batch, and empty the buffers in place."""
        if not self.rows:
            return
        arrays: dict[str, Any] = {}
        for column, buffer in zip(self.columns, self.buffers, strict=True):
            if isinstance(buffer, array):
                values: Any = np.array(
                    buffer,
                    dtype={"d": np.float64, "b": np.bool_}.get(buffer.typecode, np.int64),
                )
            else:
                values = list(buffer)
            if column.type == DICT:
                arrays[column.name] = _dict_array(values, self.names[column.name])
            elif pa.types.is_floating(column.type):
                arrays[column.name] = _float_array(values)
            elif pa.types.is_integer(column.type):
                arrays[column.name] = _int_array(values, column.type, not column.signed)
            elif pa.types.is_boolean(column.type):
                arrays[column.name] = pa.array(values, type=pa.bool_())
            else:
                arrays[column.name] = values  # a list: text, converted by ``to_batch``
            del buffer[:]
        self.sink.write(self.to_batch(self.name, arrays))
        self.rows = 0

    def appenders(self) -> list[Any]:
        """Each column's bound ``append``, to record a row without a loop.

        Whoever appends through them adds 1 to ``rows`` and flushes at ``BATCH_ROWS``.
        """
        return [buffer.append for buffer in self.buffers]


@dataclass
class RequestTally:
    """Exact aggregates of one inference workload's requests arriving after the warm-up."""

    total: int = 0
    served: int = 0
    rejected: int = 0
    unfinished: int = 0
    failed: int = 0
    timed_out: int = 0
    recorded: int = 0
    sla_decided: int = 0
    sla_met: int = 0
    wait_count: int = 0
    wait_sum: float = 0.0
    waited: int = 0
    latency_count: int = 0
    latency_sum: float = 0.0
    latency_hist: np.ndarray = field(default_factory=histogram.empty)


SLOWDOWN_FLOOR_S = 10.0
"""τ of the bounded slowdown max(1, (end − submit) / max(run, τ)): short jobs do not dominate."""


@dataclass
class JobTally:
    """Exact aggregates of one training workload's jobs submitted after the warm-up."""

    submitted: int = 0
    started: int = 0
    completed: int = 0
    rejected: int = 0
    unfinished: int = 0
    failed: int = 0
    lost_gpu_s: float = 0.0
    restarts: int = 0
    wait_sum: float = 0.0
    gpu_s: float = 0.0
    slowdown_sum: float = 0.0
    wait_hist: np.ndarray = field(default_factory=histogram.empty)


@dataclass
class IntervalState:
    """One inference workload's time series: closed intervals waiting for their latencies."""

    arrived: int = 0
    completed: int = 0
    rejected: int = 0
    start_s: float = 0.0
    closed: deque[tuple[int, float, float, int, int, int, int, int]] = field(default_factory=deque)
    """(interval, start, end, arrivals, served, rejected, waiting, in service) per interval."""
    keys: list[np.ndarray] = field(default_factory=list)
    """Blocks of (interval × BUCKETS + bucket) of served requests, not yet emitted."""
    met: list[np.ndarray] = field(default_factory=list)
    """Blocks of the interval of each request that ended within its SLA."""
    ended: list[np.ndarray] = field(default_factory=list)
    """Blocks of the interval of each request that ended (served or rejected)."""
    complete_before: float = 0.0
    """Every request that ends before this time has been recorded."""


class Recorder:
    """Collects everything a run records, streaming each table to ``out_dir``."""

    def __init__(
        self,
        *,
        out_dir: Path,
        workloads: Sequence[str],
        inference: Sequence[bool],
        pools: Sequence[str],
        sla_s: Sequence[float | None],
        horizon_s: float,
        warmup_s: float,
        sample_every_s: float,
        start: datetime | None = None,
        timezone: str | None = None,
        request_levels: Sequence[tuple[str, float]] = (),
        sample_rngs: Sequence[np.random.Generator | None] = (),
    ) -> None:
        self.workloads = list(workloads)
        self.pools = list(pools)
        self.sla_s = list(sla_s)
        self.horizon_s = horizon_s
        self.warmup_s = warmup_s
        self.step_s = sample_every_s
        self.intervals_total = interval_count(sample_every_s, horizon_s)
        self.start = start
        self.timezone = timezone if start is not None else None
        """IANA zone of the ``*_local`` columns (only with a calendar ``start``)."""
        self.calendar = (
            LocalCalendar(start, timezone, horizon_s)
            if start is not None and timezone is not None
            else None
        )
        self.levels = list(request_levels) or [("all", 1.0)] * len(self.workloads)
        self.rngs = list(sample_rngs) or [None] * len(self.workloads)
        calendar = start is not None
        self.sinks = {
            name: ParquetSink(out_dir, name, schema(name, calendar, self.timezone))
            for name in TABLES
        }
        names = {
            "workload": self.workloads,
            "pool": self.pools,
            "limit_source": codes.LIMIT_SOURCES,
            "source": codes.LIMIT_SOURCES,
        }
        self.events = ColumnTable(
            "events", self.sinks["events"], {**names, "event": codes.EVENTS}, self._batch
        )
        self.jobs = ColumnTable(
            "jobs",
            self.sinks["jobs"],
            {**names, "status": codes.JOB_STATUS},
            self._jobs_batch,
        )
        self.site = ColumnTable("timeseries", self.sinks["timeseries"], names, self._batch)
        self.pool_series = ColumnTable(
            "pool_timeseries", self.sinks["pool_timeseries"], names, self._batch
        )
        self.workload_series = ColumnTable(
            "workload_timeseries", self.sinks["workload_timeseries"], names, self._batch
        )
        self.billing_rows = ColumnTable("billing", self.sinks["billing"], names, self._batch)
        self.limit_rows = ColumnTable("limits", self.sinks["limits"], names, self._batch)
        self.node_rows = ColumnTable(
            "nodes", self.sinks["nodes"], {**names, "state": codes.NODE_STATES}, self._batch
        )
        self.outage_rows = ColumnTable("outages", self.sinks["outages"], names, self._batch)
        self.energy = [(0.0, math.nan)] * len(self.workloads)
        """Per workload: (IT energy kWh, cost USD) after the warm-up."""
        self._event_columns = self.events.appenders()
        self._job_columns = self.jobs.appenders()
        self.request_tally = [RequestTally() for _ in self.workloads]
        self.job_tally = [JobTally() for _ in self.workloads]
        self.intervals = [IntervalState() if is_inference else None for is_inference in inference]
        self.requests_seen = 0
        """Requests recorded so far, whatever the level (rows written or not)."""

    # -- events -------------------------------------------------------------------------
    def event(
        self,
        t: float,
        code: int,
        workload: int = -1,
        pool: int = -1,
        ident: int = -1,
        gpus: int = -1,
        detail: str | list[tuple[int, int]] | None = None,
    ) -> None:
        """Record a state change (codes from ``sim.record.codes.EVENTS``; -1 means none).

        ``detail`` is text, or a placement's [(node, count), ...] (formatted when written).
        """
        a = self._event_columns
        a[0](t)
        a[1](code)
        a[2](workload)
        a[3](pool)
        a[4](ident)
        a[5](gpus)
        a[6](detail)
        events = self.events
        events.rows += 1
        if events.rows >= BATCH_ROWS:
            events.flush()

    # -- requests ------------------------------------------------------------------------
    def requests(
        self,
        workload: int,
        *,
        ident: np.ndarray,
        arrival: np.ndarray,
        start: np.ndarray,
        end: np.ndarray,
        replica: np.ndarray,
        pool: np.ndarray,
        status: np.ndarray,
        attempts: np.ndarray | None = None,
        complete_before: float = INF,
    ) -> None:
        """Record a block of finished requests of one workload, in arrival order.

        ``start``/``end`` are NaN where never reached; ``replica``/``pool`` are -1 where never
        started; ``status`` holds codes from ``sim.record.codes.REQUEST_STATUS``. Every request
        of the workload arriving before ``complete_before`` has now been recorded.
        """
        self.requests_seen += len(arrival)
        if attempts is None:
            attempts = np.ones(len(arrival), dtype=np.int64)
        wait = start - arrival
        ok = status == codes.OK
        latency = np.where(ok, end - arrival, np.nan)
        service = np.where(ok, end - start, np.nan)
        sla = self.sla_s[workload]
        rejected = status == codes.REJECTED
        unfinished = status == codes.UNFINISHED
        lost = (status == codes.FAILED) | (status == codes.TIMEOUT)
        if sla is None:
            met = decided = None
        else:
            with np.errstate(invalid="ignore"):
                met = latency <= sla
            decided = ~(unfinished & (self.horizon_s - arrival <= sla))
        self._tally(workload, arrival, wait, latency, status, met, decided)
        self._interval_blocks(
            workload, arrival, end, latency, ok, rejected | lost, met, complete_before
        )
        rows = self._rows_to_record(workload, len(arrival))
        if rows is None:
            return
        if rows is not True:
            ident, arrival, start, end, wait, latency, service = (
                a[rows] for a in (ident, arrival, start, end, wait, latency, service)
            )
            replica, pool, status, attempts = (
                replica[rows],
                pool[rows],
                status[rows],
                attempts[rows],
            )
            if met is not None and decided is not None:
                met, decided = met[rows], decided[rows]
        n = len(arrival)
        self.request_tally[workload].recorded += n
        if met is None or decided is None:
            sla_met = pa.nulls(n, type=pa.bool_())
        else:
            sla_met = pa.array(met, type=pa.bool_(), mask=~decided)
        arrays = {
            "request_id": _int_array(ident, pa.int64()),
            "workload": _dict_array(np.full(n, workload), self.workloads),
            "arrival_s": _float_array(arrival),
            "start_s": _float_array(start),
            "end_s": _float_array(end),
            "wait_s": _float_array(wait),
            "latency_s": _float_array(latency),
            "service_s": _float_array(service),
            "status": _dict_array(status, codes.REQUEST_STATUS),
            "attempts": _int_array(attempts, pa.int32()),
            "sla_met": sla_met,
            "replica": _int_array(replica, pa.int32()),
            "pool": _dict_array(pool, self.pools),
            "after_warmup": pa.array(arrival >= self.warmup_s, type=pa.bool_()),
        }
        self.sinks["requests"].write(self._batch("requests", arrays))

    def _rows_to_record(self, workload: int, n: int) -> np.ndarray | bool | None:
        """Which rows of a block to write: True for all, a mask, or None for none."""
        level, rate = self.levels[workload]
        if level == "all":
            return True
        if level == "none":
            return None
        rng = self.rngs[workload]
        assert rng is not None, "a sampled workload needs its random stream"
        mask: np.ndarray = rng.random(n) < rate
        return mask

    def _tally(
        self,
        workload: int,
        arrival: np.ndarray,
        wait: np.ndarray,
        latency: np.ndarray,
        status: np.ndarray,
        met: np.ndarray | None,
        decided: np.ndarray | None,
    ) -> None:
        tally = self.request_tally[workload]
        counted = arrival >= self.warmup_s
        tally.total += int(counted.sum())
        by_status = np.bincount(status[counted], minlength=len(codes.REQUEST_STATUS))
        tally.served += int(by_status[codes.OK])
        tally.rejected += int(by_status[codes.REJECTED])
        tally.unfinished += int(by_status[codes.UNFINISHED])
        tally.failed += int(by_status[codes.FAILED])
        tally.timed_out += int(by_status[codes.TIMEOUT])
        served = (status == codes.OK) & counted
        if met is not None and decided is not None:
            tally.sla_decided += int((decided & counted).sum())
            tally.sla_met += int((met & decided & counted).sum())
        waits = wait[counted & ~np.isnan(wait)]
        tally.wait_count += len(waits)
        tally.wait_sum += float(waits.sum())
        tally.waited += int((waits > 0).sum())
        lat = latency[served]
        tally.latency_count += len(lat)
        tally.latency_sum += float(lat.sum())
        if len(lat):
            tally.latency_hist += np.bincount(histogram.bucket_of(lat), minlength=histogram.BUCKETS)

    # -- the per-workload time series ------------------------------------------------------
    def _interval_of(self, t: np.ndarray) -> np.ndarray:
        """The interval (k × step, (k + 1) × step] that holds each time (0 holds time 0).

        Boundaries are the products ``k × step`` the model closes intervals at, so a time
        that equals one falls where the model puts it, whatever the rounding of ``t / step``.
        """
        step = self.step_s
        j = np.ceil(t / step).astype(np.int64) - 1
        j += (j + 1) * step < t
        j -= (j >= 0) & (j * step >= t)
        return np.clip(j, 0, self.intervals_total - 1)

    def _interval_blocks(
        self,
        workload: int,
        arrival: np.ndarray,
        end: np.ndarray,
        latency: np.ndarray,
        ok: np.ndarray,
        rejected: np.ndarray,
        met: np.ndarray | None,
        complete_before: float,
    ) -> None:
        """``rejected``: requests that ended unserved (rejected at arrival, failed, timed out)."""
        state = self.intervals[workload]
        assert state is not None
        ended_at = np.where(np.isnan(end), arrival, end)[ok | rejected]
        ended = self._interval_of(ended_at)
        state.ended.append(ended)
        served_j = self._interval_of(end[ok])
        state.keys.append(served_j * histogram.BUCKETS + histogram.bucket_of(latency[ok]))
        if met is not None:
            state.met.append(self._interval_of(end[ok & met]))
        state.complete_before = complete_before
        self._emit_intervals(workload, final=False)

    def workload_sample(
        self,
        t: float,
        interval: int,
        workload: int,
        arrived: int,
        completed: int,
        rejected: int,
        waiting: int,
        in_service: int,
    ) -> None:
        """Close interval number ``interval`` of an inference workload at ``t``.

        The counters are totals since the start; the state is the workload's at ``t``.
        """
        state = self.intervals[workload]
        assert state is not None
        state.closed.append(
            (
                interval,
                state.start_s,
                t,
                arrived - state.arrived,
                completed - state.completed,
                rejected - state.rejected,
                waiting,
                in_service,
            )
        )
        state.arrived, state.completed, state.rejected, state.start_s = (
            arrived,
            completed,
            rejected,
            t,
        )
        self._emit_intervals(workload, final=False)

    def _emit_intervals(self, workload: int, final: bool) -> None:
        """Write the rows of closed intervals whose requests have all been recorded."""
        state = self.intervals[workload]
        assert state is not None
        if not state.closed:
            return
        if final:
            last = state.closed[-1][0]
        else:
            last = -1
            for j, _, end, *_ in state.closed:
                if end < state.complete_before:
                    last = j
                else:
                    break
            if last < 0:
                return
        keys = np.concatenate(state.keys) if state.keys else np.zeros(0, np.int64)
        met = np.concatenate(state.met) if state.met else np.zeros(0, np.int64)
        ended = np.concatenate(state.ended) if state.ended else np.zeros(0, np.int64)
        first = state.closed[0][0]
        done = keys // histogram.BUCKETS <= last
        state.keys = [keys[~done]]
        state.met = [met[met > last]]
        state.ended = [ended[ended > last]]
        keys = keys[done & (keys >= first * histogram.BUCKETS)]
        met = met[(met <= last) & (met >= first)]
        ended = ended[(ended <= last) & (ended >= first)]
        size = last - first + 1
        met_n = np.bincount(met - first, minlength=size)
        ended_n = np.bincount(ended - first, minlength=size)
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        uniq, counts = np.unique(keys, return_counts=True)
        interval = uniq // histogram.BUCKETS
        bounds = np.searchsorted(interval, np.arange(first, last + 2))
        has_sla = self.sla_s[workload] is not None
        while state.closed and state.closed[0][0] <= last:
            j, t0, t1, arrivals, served, rejected, waiting, in_service = state.closed.popleft()
            lo, hi = bounds[j - first], bounds[j - first + 1]
            p50, p95, p99 = histogram.percentiles(
                uniq[lo:hi] % histogram.BUCKETS, counts[lo:hi], (50, 95, 99)
            )
            n_ended = int(ended_n[j - first])
            attainment = float(met_n[j - first]) / n_ended if has_sla and n_ended else float("nan")
            self.workload_series.append(
                (
                    t0,
                    t1,
                    workload,
                    arrivals,
                    served,
                    rejected,
                    waiting,
                    in_service,
                    in_service,
                    float("nan") if p50 is None else p50,
                    float("nan") if p95 is None else p95,
                    float("nan") if p99 is None else p99,
                    attainment,
                )
            )

    # -- jobs ----------------------------------------------------------------------------
    def job(
        self,
        job_id: int,
        workload: int,
        gpus: int,
        priority: int,
        submit_s: float,
        start_s: float,
        end_s: float,
        run_s: float,
        work_s: float,
        progress: float,
        status: int,
        restarts: int,
        suspended_s: float,
        lost_gpu_s: float,
        checkpoint_gpu_s: float,
        restart_gpu_s: float,
        pool: int,
        nodes: int,
        reason: str | None,
    ) -> None:
        """Record a training job that reached its terminal status (codes for workload, status)."""
        a = self._job_columns
        a[0](job_id)
        a[1](workload)
        a[2](gpus)
        a[3](priority)
        a[4](submit_s)
        a[5](start_s)
        a[6](end_s)
        a[7](run_s)
        a[8](work_s)
        a[9](progress)
        a[10](status)
        a[11](restarts)
        a[12](suspended_s)
        a[13](lost_gpu_s)
        a[14](checkpoint_gpu_s)
        a[15](restart_gpu_s)
        a[16](pool)
        a[17](nodes)
        a[18](reason)
        jobs = self.jobs
        jobs.rows += 1
        if jobs.rows >= BATCH_ROWS:
            jobs.flush()
        if submit_s < self.warmup_s:
            return
        tally = self.job_tally[workload]
        tally.submitted += 1
        if status == codes.JOB_COMPLETED:
            tally.completed += 1
        elif status == codes.JOB_REJECTED:
            tally.rejected += 1
        elif status == codes.JOB_FAILED:
            tally.failed += 1
        else:
            tally.unfinished += 1
        tally.lost_gpu_s += lost_gpu_s
        tally.restarts += restarts
        if start_s == start_s:  # started (not NaN)
            wait = start_s - submit_s
            tally.started += 1
            tally.wait_sum += wait
            tally.wait_hist[histogram.bucket_of_one(wait)] += 1
        tally.gpu_s += run_s * gpus
        if status == codes.JOB_COMPLETED:
            tally.slowdown_sum += max(1.0, (end_s - submit_s) / max(run_s, SLOWDOWN_FLOOR_S))

    # -- samples -------------------------------------------------------------------------
    def sample(self, t: float, site: Sequence[Any], pools: Sequence[Sequence[Any]]) -> None:
        """Record one time-series row for the site and one per pool (values in column order)."""
        self.site.append((t, *site))
        for index, row in enumerate(pools):
            self.pool_series.append((t, index, *row))

    def billing(
        self,
        month: str,
        start_s: float,
        simulated_s: float,
        peak_kw: float,
        peak_at_s: float,
        energy_mwh: float,
        cost_usd: float,
        demand_charge_usd: float,
    ) -> None:
        """Record one billing month."""
        self.billing_rows.append(
            (
                month,
                start_s,
                simulated_s,
                peak_kw,
                peak_at_s,
                energy_mwh,
                cost_usd,
                demand_charge_usd,
            )
        )

    def limit_stats(self, source: int, *values: float) -> None:
        """Record what one limit source (a ``codes.LIMIT_SOURCES`` code) held back."""
        self.limit_rows.append((source, *values))

    def node_interval(
        self, pool: int, node: int, state: int, start_s: float, end_s: float, cause: str | None
    ) -> None:
        """Record one interval of a node in one state (``codes.NODE_STATES``; end NaN: open)."""
        self.node_rows.append((pool, node, state, start_s, end_s, cause))

    def outage(
        self,
        cause: str,
        target: str,
        start_s: float,
        end_s: float,
        pool: int,
        gpus_hit: int,
        jobs_hit: int,
        replicas_hit: int,
    ) -> None:
        """Record one outage or maintenance window (end NaN: it lasts to the horizon)."""
        self.outage_rows.append(
            (cause, target, start_s, end_s, pool, gpus_hit, jobs_hit, replicas_hit)
        )

    def workload_energy(self, workload: int, it_kwh: float, cost_usd: float) -> None:
        """Record a workload's attributable energy and cost after the warm-up."""
        self.energy[workload] = (it_kwh, cost_usd)

    # -- output --------------------------------------------------------------------------
    def _batch(self, name: str, arrays: dict[str, Any]) -> pa.RecordBatch:
        """A batch of ``name`` from its column arrays, with timestamp (and local) columns."""
        calendar = self.start is not None
        out: list[pa.Array] = []
        for column in TABLES[name]:
            values = arrays[column.name]
            if isinstance(values, list):
                values = pa.array([_nodes_text(v) for v in values], type=column.type)
            out.append(values)
            if calendar and column.timestamp:
                out.extend(self._timestamps(values))
        return pa.RecordBatch.from_arrays(out, schema=self.sinks[name].schema)

    def _jobs_batch(self, name: str, arrays: dict[str, Any]) -> pa.RecordBatch:
        submit = arrays["submit_s"].to_numpy(zero_copy_only=False)
        start = arrays["start_s"].to_numpy(zero_copy_only=False)
        arrays["wait_s"] = _float_array(start - submit)
        arrays["after_warmup"] = pa.array(submit >= self.warmup_s, type=pa.bool_())
        return self._batch(name, arrays)

    def _timestamps(self, seconds: pa.Array) -> list[pa.Array]:
        """The UTC timestamps of a time column, and their local wall-clock times if zoned."""
        assert self.start is not None
        start_us = int(self.start.timestamp() * 1_000_000)
        values = np.asarray(seconds.to_numpy(zero_copy_only=False), dtype=np.float64)
        missing = np.isnan(values)
        micros = start_us + np.round(np.where(missing, 0.0, values) * 1e6).astype(np.int64)
        utc = pa.array(micros, type=TIMESTAMP, mask=missing)
        if self.calendar is None:
            return [utc]
        local = self.calendar.local_epoch_us(micros)  # missing ones stand at the start
        return [utc, pa.array(local, type=LOCAL_TIMESTAMP, mask=missing)]

    def _aggregate_tables(self) -> None:
        """Write workload_stats and histograms: the exact aggregates the summary reads."""
        stats = ColumnTable(
            "workload_stats",
            self.sinks["workload_stats"],
            {"workload": self.workloads},
            self._batch,
        )
        hist = ColumnTable(
            "histograms",
            self.sinks["histograms"],
            {"workload": self.workloads, "measure": MEASURES},
            self._batch,
        )
        for w in range(len(self.workloads)):
            r, j = self.request_tally[w], self.job_tally[w]
            stats.append(
                (
                    w,
                    r.total,
                    r.served,
                    r.rejected,
                    r.unfinished,
                    r.failed,
                    r.timed_out,
                    r.recorded,
                    r.sla_decided,
                    r.sla_met,
                    r.wait_count,
                    r.wait_sum,
                    r.waited,
                    r.latency_count,
                    r.latency_sum,
                    j.submitted,
                    j.started,
                    j.completed,
                    j.rejected,
                    j.unfinished,
                    j.failed,
                    j.lost_gpu_s,
                    j.restarts,
                    j.wait_sum,
                    j.gpu_s,
                    j.slowdown_sum,
                    *self.energy[w],
                )
            )
            for measure, counts in enumerate((r.latency_hist, j.wait_hist)):
                buckets = np.flatnonzero(counts)
                lower = histogram.lower_edges(buckets)
                upper = histogram.upper_edges(buckets)
                for b, lo, hi in zip(buckets.tolist(), lower.tolist(), upper.tolist(), strict=True):
                    hist.append((w, measure, b, lo, hi, int(counts[b])))
        stats.flush()
        hist.flush()

    def close(self) -> dict[str, int]:
        """Write everything still buffered and close every file; return rows per table.

        The files keep their temporary names until ``commit``.
        """
        for w, state in enumerate(self.intervals):
            if state is not None:
                self._emit_intervals(w, final=True)
        for table in (
            self.events,
            self.jobs,
            self.site,
            self.pool_series,
            self.workload_series,
            self.billing_rows,
            self.limit_rows,
            self.node_rows,
            self.outage_rows,
        ):
            table.flush()
        self._aggregate_tables()
        for sink in self.sinks.values():
            sink.close()
        return {name: sink.rows for name, sink in self.sinks.items()}

    def commit(self) -> list[Path]:
        """Rename every closed file into place; return their paths."""
        for sink in self.sinks.values():
            sink.commit()
        return [sink.path for sink in self.sinks.values()]

    def abort(self) -> None:
        """Remove every file written so far (after a failed run)."""
        for sink in self.sinks.values():
            sink.abort()
