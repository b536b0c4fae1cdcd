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
from typing import Any, NamedTuple

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


class Tokens(NamedTuple):
    """Per-request token figures of an llm workload's block of requests."""

    ttft: np.ndarray
    tpot: np.ndarray
    inputs: np.ndarray
    outputs: np.ndarray


Judged = tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray] | None]]
"""(met, decided, and per objective (decided, met) or None) of a block of requests."""


def _add_to(hist: np.ndarray, values: np.ndarray) -> None:
    """Count ``values`` (no NaN) into the histogram ``hist``."""
    if len(values):
        hist += np.bincount(histogram.bucket_of(values), minlength=histogram.BUCKETS)


def _take_percentiles(
    blocks: list[np.ndarray], first: int, last: int, qs: tuple[float, ...]
) -> list[tuple[float, ...]]:
    """Percentiles ``qs`` per interval ``first``..``last`` of (interval × BUCKETS + bucket) keys.

    Takes those intervals' keys out of ``blocks`` (keeping later ones); NaN where an interval
    has none.
    """
    keys = np.concatenate(blocks) if blocks else np.zeros(0, np.int64)
    done = keys // histogram.BUCKETS <= last
    blocks[:] = [keys[~done]]
    keys = np.sort(keys[done & (keys >= first * histogram.BUCKETS)], kind="stable")
    uniq, counts = np.unique(keys, return_counts=True)
    bounds = np.searchsorted(uniq // histogram.BUCKETS, np.arange(first, last + 2))
    rows = []
    for j in range(last - first + 1):
        lo, hi = bounds[j], bounds[j + 1]
        found = histogram.percentiles(uniq[lo:hi] % histogram.BUCKETS, counts[lo:hi], qs)
        rows.append(tuple(float("nan") if p is None else p for p in found))
    return rows


def _take_counts(blocks: list[np.ndarray], first: int, last: int) -> np.ndarray:
    """Counts per interval ``first``..``last`` of blocks of interval numbers.

    Takes those intervals out of ``blocks``, keeping later ones.
    """
    values = np.concatenate(blocks) if blocks else np.zeros(0, np.int64)
    blocks[:] = [values[values > last]]
    values = values[(values <= last) & (values >= first)]
    counts: np.ndarray = np.bincount(values - first, minlength=last - first + 1)
    return counts


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
    by_sla: list[int] = field(default_factory=lambda: [0] * 6)
    """(decided, met) for the latency, TTFT and TPOT objectives each alone."""
    ttft_count: int = 0
    ttft_sum: float = 0.0
    ttft_hist: np.ndarray = field(default_factory=histogram.empty)
    tpot_count: int = 0
    tpot_sum: float = 0.0
    tpot_hist: np.ndarray = field(default_factory=histogram.empty)
    input_tokens: int = 0
    output_tokens: int = 0
    batch: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Request-seconds held, busy replica-seconds and replica-seconds up after the warm-up
    (llm workloads)."""


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
    closed: deque[tuple[int, float, float, int, int, int, int, int, int, float, float]] = field(
        default_factory=deque
    )
    """(interval, start, end, arrivals, served, rejected, waiting, in service, busy replicas,
    request-seconds held, busy replica-seconds) per interval."""
    keys: list[np.ndarray] = field(default_factory=list)
    """Blocks of (interval × BUCKETS + bucket) of served requests' latencies, not yet emitted."""
    ttft_keys: list[np.ndarray] = field(default_factory=list)
    """The same of their TTFTs (llm workloads)."""
    tpot_keys: list[np.ndarray] = field(default_factory=list)
    """The same of their TPOTs (llm workloads)."""
    tokens: list[np.ndarray] = field(default_factory=list)
    """Blocks of (interval, output tokens) of served llm requests, two rows each."""
    llm: bool = False
    """Whether the workload is ``kind = "llm"`` (its token columns are filled)."""
    met_parts: tuple[list[np.ndarray], list[np.ndarray]] = field(default_factory=lambda: ([], []))
    """Blocks of the interval of each request that ended meeting the TTFT, the TPOT objective."""
    batch: tuple[float, float] = (0.0, 0.0)
    """Request-seconds held and busy replica-seconds from 0 at the last interval's end."""
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
        sla: Sequence[tuple[float | None, float | None, float | None] | None],
        horizon_s: float,
        warmup_s: float,
        sample_every_s: float,
        start: datetime | None = None,
        timezone: str | None = None,
        request_levels: Sequence[tuple[str, float]] = (),
        llm: Sequence[bool] = (),
        sample_rngs: Sequence[np.random.Generator | None] = (),
    ) -> None:
        self.workloads = list(workloads)
        self.pools = list(pools)
        self.sla = list(sla)
        """Per workload: (latency, TTFT, TPOT) objectives in seconds (None: not set), or None."""
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
        llm = list(llm) or [False] * len(self.workloads)
        self.intervals = [
            IntervalState(llm=is_llm) if is_inference else None
            for is_inference, is_llm in zip(inference, llm, strict=True)
        ]
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
        first: np.ndarray | None = None,
        input_tokens: np.ndarray | None = None,
        output_tokens: np.ndarray | None = None,
    ) -> None:
        """Record a block of finished requests of one workload, in arrival order.

        ``start``/``end`` are NaN where never reached; ``replica``/``pool`` are -1 where never
        started; ``status`` holds codes from ``sim.record.codes.REQUEST_STATUS``. Every request
        of the workload arriving before ``complete_before`` has now been recorded. LLM
        workloads add each request's ``first`` token time (NaN before it) and token counts.
        """
        self.requests_seen += len(arrival)
        n = len(arrival)
        if attempts is None:
            attempts = np.ones(n, dtype=np.int64)
        wait = start - arrival
        ok = status == codes.OK
        latency = np.where(ok, end - arrival, np.nan)
        service = np.where(ok, end - start, np.nan)
        rejected = status == codes.REJECTED
        lost = (status == codes.FAILED) | (status == codes.TIMEOUT)
        tokens: Tokens | None = None
        if first is not None and input_tokens is not None and output_tokens is not None:
            ttft = first - arrival
            with np.errstate(invalid="ignore", divide="ignore"):
                tpot = np.where(
                    ok & (output_tokens > 1), (end - first) / (output_tokens - 1), np.nan
                )
            tokens = Tokens(ttft, tpot, input_tokens, output_tokens)
        judged = self._judge(workload, arrival, latency, status, tokens)
        self._tally(workload, arrival, wait, latency, status, judged, tokens)
        self._interval_blocks(
            workload, arrival, end, latency, ok, rejected | lost, judged, complete_before, tokens
        )
        rows = self._rows_to_record(workload, n)
        if rows is None:
            return
        met, decided = (judged[0], judged[1]) if judged else (None, None)
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
            if tokens is not None:
                tokens = Tokens(*(a[rows] for a in tokens))
        n = len(arrival)
        self.request_tally[workload].recorded += n
        if met is None or decided is None:
            sla_met = pa.nulls(n, type=pa.bool_())
        else:
            sla_met = pa.array(met, type=pa.bool_(), mask=~decided)
        if tokens is None:
            token_columns = {
                "input_tokens": pa.nulls(n, type=pa.int32()),
                "output_tokens": pa.nulls(n, type=pa.int32()),
                "ttft_s": pa.nulls(n, type=pa.float64()),
                "tpot_s": pa.nulls(n, type=pa.float64()),
            }
        else:
            token_columns = {
                "input_tokens": _int_array(tokens.inputs, pa.int32()),
                "output_tokens": _int_array(tokens.outputs, pa.int32()),
                "ttft_s": _float_array(tokens.ttft),
                "tpot_s": _float_array(tokens.tpot),
            }
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
            **token_columns,
        }
        self.sinks["requests"].write(self._batch("requests", arrays))

    def _judge(
        self,
        workload: int,
        arrival: np.ndarray,
        latency: np.ndarray,
        status: np.ndarray,
        tokens: Tokens | None,
    ) -> Judged | None:
        """Which requests met the workload's SLA, and which are decided; None without one.

        A request meets the SLA when it meets every objective set: served within the latency,
        first token within the TTFT, and a TPOT within its limit (a one-token request has no
        TPOT and meets it). Rejected, failed and timed-out requests miss it. An unfinished one
        is decided (missed) only once it has missed an objective for sure: the latency or the
        TTFT passed by the horizon without it being met; otherwise its ``sla_met`` is null.
        Also returns (decided, met) for each objective alone, where an unfinished request that
        got its first token in time has met the TTFT objective.
        """
        limits = self.sla[workload]
        if limits is None:
            return None
        latency_s, ttft_s, tpot_s = limits
        unfinished = status == codes.UNFINISHED
        ok = status == codes.OK
        age = self.horizon_s - arrival
        n = len(arrival)
        met = np.ones(n, dtype=bool)
        missed = np.zeros(n, dtype=bool)  # unfinished requests that missed an objective
        parts: list[tuple[np.ndarray, np.ndarray] | None] = []
        with np.errstate(invalid="ignore"):
            if latency_s is not None:
                part = latency <= latency_s
                late = unfinished & (age > latency_s)
                parts.append((~unfinished | late, part))
                met &= part
                missed |= late
            else:
                parts.append(None)
            if ttft_s is not None and tokens is not None:
                ttft = tokens.ttft
                in_time = ttft <= ttft_s  # an unfinished request may have met it already
                part = (ok | unfinished) & in_time
                late = unfinished & ((ttft > ttft_s) | (np.isnan(ttft) & (age > ttft_s)))
                parts.append((~unfinished | late | (unfinished & in_time), part))
                met &= part
                missed |= late
            else:
                parts.append(None)
            if tpot_s is not None and tokens is not None:
                part = ok & ~(tokens.tpot > tpot_s)
                parts.append((~unfinished, part))
                met &= part
            else:
                parts.append(None)
        met &= ~unfinished
        return met, ~unfinished | missed, parts

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
        judged: Judged | None,
        tokens: Tokens | None,
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
        if judged is not None:
            met, decided, parts = judged
            tally.sla_decided += int((decided & counted).sum())
            tally.sla_met += int((met & decided & counted).sum())
            for j, part in enumerate(parts):
                if part is not None:
                    tally.by_sla[2 * j] += int((part[0] & counted).sum())
                    tally.by_sla[2 * j + 1] += int((part[0] & part[1] & counted).sum())
        waits = wait[counted & ~np.isnan(wait)]
        tally.wait_count += len(waits)
        tally.wait_sum += float(waits.sum())
        tally.waited += int((waits > 0).sum())
        lat = latency[served]
        tally.latency_count += len(lat)
        tally.latency_sum += float(lat.sum())
        _add_to(tally.latency_hist, lat)
        if tokens is None:
            return
        ttft = tokens.ttft[served]
        tally.ttft_count += len(ttft)
        tally.ttft_sum += float(ttft.sum())
        _add_to(tally.ttft_hist, ttft)
        tpot = tokens.tpot[served]
        tpot = tpot[~np.isnan(tpot)]
        tally.tpot_count += len(tpot)
        tally.tpot_sum += float(tpot.sum())
        _add_to(tally.tpot_hist, tpot)
        tally.input_tokens += int(tokens.inputs[served].sum())
        tally.output_tokens += int(tokens.outputs[served].sum())

    def batching(self, workload: int, request_s: float, busy_s: float, up_s: float) -> None:
        """An llm workload's request-, busy replica- and up replica-seconds after the warm-up."""
        self.request_tally[workload].batch = (request_s, busy_s, up_s)

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
        judged: Judged | None,
        complete_before: float,
        tokens: Tokens | None,
    ) -> None:
        """``rejected``: requests that ended unserved (rejected at arrival, failed, timed out)."""
        state = self.intervals[workload]
        assert state is not None
        ended_at = np.where(np.isnan(end), arrival, end)[ok | rejected]
        ended = self._interval_of(ended_at)
        state.ended.append(ended)
        served_j = self._interval_of(end[ok])
        state.keys.append(served_j * histogram.BUCKETS + histogram.bucket_of(latency[ok]))
        if judged is not None:
            state.met.append(self._interval_of(end[ok & judged[0]]))
            for blocks, part in zip(state.met_parts, judged[2][1:], strict=True):
                if part is not None:
                    blocks.append(self._interval_of(end[ok & part[1]]))
        if tokens is not None:
            state.ttft_keys.append(
                served_j * histogram.BUCKETS + histogram.bucket_of(tokens.ttft[ok])
            )
            tpot = tokens.tpot[ok]
            has = ~np.isnan(tpot)
            state.tpot_keys.append(
                served_j[has] * histogram.BUCKETS + histogram.bucket_of(tpot[has])
            )
            state.tokens.append(np.stack([served_j, tokens.outputs[ok].astype(np.int64)]))
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
        busy: int | None = None,
        batch: tuple[float, float] | None = None,
    ) -> None:
        """Close interval number ``interval`` of an inference workload at ``t``.

        The counters are totals since the start; the state is the workload's at ``t``
        (``busy``: replicas holding requests, by default ``in_service``; ``batch``: an llm
        workload's request-seconds held and busy replica-seconds from 0 to ``t``).
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
                in_service if busy is None else busy,
                *(
                    (batch[0] - state.batch[0], batch[1] - state.batch[1])
                    if batch is not None
                    else (0.0, 0.0)
                ),
            )
        )
        if batch is not None:
            state.batch = batch
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
        first = state.closed[0][0]
        latency = _take_percentiles(state.keys, first, last, (50, 95, 99))
        ttft = _take_percentiles(state.ttft_keys, first, last, (50, 99))
        tpot = _take_percentiles(state.tpot_keys, first, last, (50, 99))
        size = last - first + 1
        met_n = _take_counts(state.met, first, last)
        ended_n = _take_counts(state.ended, first, last)
        met_ttft, met_tpot = (_take_counts(b, first, last) for b in state.met_parts)
        llm = state.llm
        tokens_n = np.zeros(size, np.int64)
        if state.tokens:
            tokens = np.concatenate(state.tokens, axis=1)
            state.tokens = [tokens[:, tokens[0] > last]]
            tokens = tokens[:, (tokens[0] <= last) & (tokens[0] >= first)]
            tokens_n = np.bincount(tokens[0] - first, weights=tokens[1], minlength=size)
        limits = self.sla[workload]
        has_sla = limits is not None
        has_ttft = limits is not None and limits[1] is not None
        has_tpot = limits is not None and limits[2] is not None
        nan = float("nan")
        while state.closed and state.closed[0][0] <= last:
            j, t0, t1, arrivals, served, rejected, waiting, in_service, busy, held_s, busy_s = (
                state.closed.popleft()
            )
            at = j - first
            n_ended = int(ended_n[at])
            attainment = float(met_n[at]) / n_ended if has_sla and n_ended else nan
            llm_figures: tuple[float, float, float, float] = (nan, nan, nan, nan)
            if llm:
                llm_figures = (
                    float(tokens_n[at]) / (t1 - t0) if t1 > t0 else nan,
                    float(met_ttft[at]) / n_ended if has_ttft and n_ended else nan,
                    float(met_tpot[at]) / n_ended if has_tpot and n_ended else nan,
                    held_s / busy_s if busy_s > 0 else nan,
                )
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
                    busy,
                    *latency[at],
                    attainment,
                    *ttft[at],
                    *tpot[at],
                    int(tokens_n[at]) if llm else -1,
                    *llm_figures,
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
                    *r.by_sla,
                    r.wait_count,
                    r.wait_sum,
                    r.waited,
                    r.latency_count,
                    r.latency_sum,
                    r.ttft_count,
                    r.ttft_sum,
                    r.tpot_count,
                    r.tpot_sum,
                    r.input_tokens,
                    r.output_tokens,
                    *r.batch,
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
            measures = (r.latency_hist, j.wait_hist, r.ttft_hist, r.tpot_hist)
            for measure, counts in enumerate(measures):
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
