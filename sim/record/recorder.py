"""Columnar buffers the model records into, turned into Arrow tables at the end of a run.

Events, jobs and samples are appended to one typed array per column (``array('d')`` for
floats, ``array('q')`` for integers and codes; text in lists), eight bytes a value. Requests
come in blocks of NumPy columns from the inference engines and are converted to Arrow record
batches at once, with the derived columns (wait, latency, SLA) computed vectorised; no
per-request dicts or tuples are ever made.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from sim.record import codes
from sim.record.schemas import DICT, TABLES, TIMESTAMP, schema


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


SIGNED = frozenset({"priority"})
"""Integer columns where a negative value is a value, not a missing one."""


def _buffers(table: str) -> dict[str, Any]:
    """One append-only buffer per column of ``table``."""
    out: dict[str, Any] = {}
    for column in TABLES[table]:
        if pa.types.is_floating(column.type):
            out[column.name] = array("d")
        elif pa.types.is_integer(column.type) or column.type == DICT:
            out[column.name] = array("q")
        else:
            out[column.name] = []
    return out


def _values(buffer: Any) -> Any:
    """A buffer as a NumPy array (typed arrays without copying) or a list."""
    if isinstance(buffer, array):
        return np.frombuffer(buffer, dtype=np.float64 if buffer.typecode == "d" else np.int64)
    return buffer


class Recorder:
    """Collects everything a run records; ``tables()`` returns the output tables."""

    def __init__(
        self,
        *,
        workloads: Sequence[str],
        pools: Sequence[str],
        sla_s: Sequence[float | None],
        horizon_s: float,
        warmup_s: float,
        start: datetime | None = None,
    ) -> None:
        self.workloads = list(workloads)
        self.pools = list(pools)
        self.sla_s = list(sla_s)
        self.horizon_s = horizon_s
        self.warmup_s = warmup_s
        self.start = start
        self._events = _buffers("events")
        self._jobs = _buffers("jobs")
        self._site = _buffers("timeseries")
        self._pool = _buffers("pool_timeseries")
        self._request_batches: list[list[pa.RecordBatch]] = [[] for _ in self.workloads]

    # -- events -------------------------------------------------------------------------
    def event(
        self,
        t: float,
        code: int,
        workload: int = -1,
        pool: int = -1,
        ident: int = -1,
        gpus: int = -1,
        detail: str | None = None,
    ) -> None:
        """Record a state change (codes from ``sim.record.codes.EVENTS``; -1 means none)."""
        ev = self._events
        ev["time_s"].append(t)
        ev["event"].append(code)
        ev["workload"].append(workload)
        ev["pool"].append(pool)
        ev["id"].append(ident)
        ev["gpus"].append(gpus)
        ev["detail"].append(detail)

    # -- requests ------------------------------------------------------------------------
    def requests(
        self,
        workload: int,
        arrival: np.ndarray,
        start: np.ndarray,
        end: np.ndarray,
        replica: np.ndarray,
        pool: np.ndarray,
        status: np.ndarray,
    ) -> None:
        """Record a block of finished requests of one workload, in arrival order.

        ``start``/``end`` are NaN where never reached; ``replica``/``pool`` are -1 where never
        started; ``status`` holds codes from ``sim.record.codes.REQUEST_STATUS``.
        """
        n = len(arrival)
        wait = start - arrival
        latency = end - arrival
        sla = self.sla_s[workload]
        if sla is None:
            sla_met = pa.nulls(n, type=pa.bool_())
        else:
            with np.errstate(invalid="ignore"):
                met = latency <= sla
            undecided = (status == codes.UNFINISHED) & (self.horizon_s - arrival <= sla)
            sla_met = pa.array(met, type=pa.bool_(), mask=undecided)
        batch = pa.RecordBatch.from_pydict(
            {
                "request_id": pa.nulls(n, type=pa.int64()),
                "workload": _dict_array(np.full(n, workload), self.workloads),
                "arrival_s": _float_array(arrival),
                "start_s": _float_array(start),
                "end_s": _float_array(end),
                "wait_s": _float_array(wait),
                "latency_s": _float_array(latency),
                "service_s": _float_array(end - start),
                "status": _dict_array(status, codes.REQUEST_STATUS),
                "sla_met": sla_met,
                "replica": _int_array(replica, pa.int32()),
                "pool": _dict_array(pool, self.pools),
                "after_warmup": pa.array(arrival >= self.warmup_s, type=pa.bool_()),
            }
        )
        self._request_batches[workload].append(batch)

    # -- jobs ----------------------------------------------------------------------------
    def job(self, **values: Any) -> None:
        """Record a training job that reached its terminal status.

        Keys: the jobs columns but the derived ``wait_s`` and ``after_warmup``; workload, status
        and pool as codes.
        """
        jobs = self._jobs
        for name, value in values.items():
            jobs[name].append(value)

    # -- samples -------------------------------------------------------------------------
    def sample(self, site: dict[str, Any], pools: Sequence[dict[str, Any]]) -> None:
        """Record one time-series row for the site and one per pool."""
        for name, value in site.items():
            self._site[name].append(value)
        for row in pools:
            for name, value in row.items():
                self._pool[name].append(value)

    # -- output --------------------------------------------------------------------------
    def _finish(self, name: str, columns: dict[str, Any]) -> pa.Table:
        calendar = self.start is not None
        target = schema(name, calendar)
        arrays: list[pa.Array] = []
        for column in TABLES[name]:
            arrays.append(columns[column.name])
            if calendar and column.timestamp:
                arrays.append(self._timestamps(columns[column.name]))
        return pa.Table.from_arrays(arrays, schema=target)

    def _timestamps(self, seconds: Any) -> pa.Array:
        assert self.start is not None
        start_us = int(self.start.timestamp() * 1_000_000)
        values = np.asarray(seconds.to_numpy(zero_copy_only=False), dtype=np.float64)
        missing = np.isnan(values)
        micros = start_us + np.round(np.where(missing, 0.0, values) * 1e6).astype(np.int64)
        return pa.array(micros, type=TIMESTAMP, mask=missing)

    def _arrays(
        self, table: str, data: dict[str, Any], order: np.ndarray | None = None
    ) -> dict[str, Any]:
        """The recorded columns of ``table`` as Arrow arrays (rows in ``order`` if given)."""
        names = {
            "event": codes.EVENTS,
            "workload": self.workloads,
            "pool": self.pools,
            "status": codes.JOB_STATUS,
        }
        columns: dict[str, Any] = {}
        for column in TABLES[table]:
            values = _values(data[column.name])
            if len(values) == 0 and column.name in ("wait_s", "after_warmup"):
                continue  # derived, not recorded
            if order is not None:
                values = (
                    values[order] if isinstance(values, np.ndarray) else [values[i] for i in order]
                )
            if column.type == DICT:
                columns[column.name] = _dict_array(values, names[column.name])
            elif pa.types.is_floating(column.type):
                columns[column.name] = _float_array(values)
            elif pa.types.is_integer(column.type):
                columns[column.name] = _int_array(values, column.type, column.name not in SIGNED)
            else:
                columns[column.name] = pa.array(values, type=column.type)
        return columns

    def tables(self) -> dict[str, pa.Table]:
        """The output tables: events, requests, jobs, timeseries, pool_timeseries."""
        return {
            "events": self._finish("events", self._arrays("events", self._events)),
            "requests": self._requests_table(),
            "jobs": self._jobs_table(),
            "timeseries": self._finish("timeseries", self._arrays("timeseries", self._site)),
            "pool_timeseries": self._finish(
                "pool_timeseries", self._arrays("pool_timeseries", self._pool)
            ),
        }

    def _requests_table(self) -> pa.Table:
        batches = [b for per_workload in self._request_batches for b in per_workload]
        plain = schema("requests", calendar=False)
        table = pa.Table.from_batches(batches, schema=plain) if batches else plain.empty_table()
        columns: dict[str, Any] = {name: table.column(name) for name in table.column_names}
        columns["request_id"] = pa.array(np.arange(table.num_rows, dtype=np.int64))
        if not batches:
            columns["workload"] = _dict_array([], self.workloads)
            columns["status"] = _dict_array([], codes.REQUEST_STATUS)
            columns["pool"] = _dict_array([], self.pools)
        return self._finish("requests", columns)

    def _jobs_table(self) -> pa.Table:
        order = np.argsort(_values(self._jobs["job_id"]), kind="stable")
        columns = self._arrays("jobs", self._jobs, order)
        submit = _values(self._jobs["submit_s"])[order]
        start = _values(self._jobs["start_s"])[order]
        columns["wait_s"] = _float_array(start - submit)
        columns["after_warmup"] = pa.array(submit >= self.warmup_s, type=pa.bool_())
        return self._finish("jobs", columns)
