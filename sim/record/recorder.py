"""Columnar buffers the model records into, turned into Arrow tables at the end of a run.

Rare records (events, jobs, samples) are appended to one Python list per column. Requests come
in blocks of NumPy columns from the inference engines and are converted to Arrow record
batches at once, with the derived columns (wait, latency, SLA) computed vectorised; no
per-request dicts or tuples are ever made.
"""

from __future__ import annotations

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


def _int_array(values: Any, type_: pa.DataType) -> pa.Array:
    """Integers with negative values as null."""
    arr = np.asarray(values, dtype=np.int64)
    return pa.array(arr, type=type_, mask=arr < 0)


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
        self._events: dict[str, list[Any]] = {c.name: [] for c in TABLES["events"]}
        self._jobs: dict[str, list[Any]] = {c.name: [] for c in TABLES["jobs"]}
        self._site: dict[str, list[Any]] = {c.name: [] for c in TABLES["timeseries"]}
        self._pool: dict[str, list[Any]] = {c.name: [] for c in TABLES["pool_timeseries"]}
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

    def tables(self) -> dict[str, pa.Table]:
        """The output tables: events, requests, jobs, timeseries, pool_timeseries."""
        ev = self._events
        events = self._finish(
            "events",
            {
                "time_s": _float_array(ev["time_s"]),
                "event": _dict_array(ev["event"], codes.EVENTS),
                "workload": _dict_array(ev["workload"], self.workloads),
                "pool": _dict_array(ev["pool"], self.pools),
                "id": _int_array(ev["id"], pa.int64()),
                "gpus": _int_array(ev["gpus"], pa.int32()),
                "detail": pa.array(ev["detail"], type=pa.string()),
            },
        )
        return {
            "events": events,
            "requests": self._requests_table(),
            "jobs": self._jobs_table(),
            "timeseries": self._series_table("timeseries", self._site),
            "pool_timeseries": self._series_table("pool_timeseries", self._pool),
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
        jobs = self._jobs
        order = np.argsort(np.asarray(jobs["job_id"], dtype=np.int64), kind="stable")

        def col(name: str) -> np.ndarray:
            return np.asarray(jobs[name], dtype=np.float64 if name.endswith("_s") else None)[order]

        submit, start = col("submit_s"), col("start_s")
        return self._finish(
            "jobs",
            {
                "job_id": pa.array(np.asarray(jobs["job_id"], dtype=np.int64)[order]),
                "workload": _dict_array(col("workload"), self.workloads),
                "gpus": pa.array(np.asarray(jobs["gpus"], dtype=np.int32)[order]),
                "priority": pa.array(np.asarray(jobs["priority"], dtype=np.int32)[order]),
                "submit_s": _float_array(submit),
                "start_s": _float_array(start),
                "end_s": _float_array(col("end_s")),
                "wait_s": _float_array(start - submit),
                "run_s": _float_array(col("run_s")),
                "work_s": _float_array(col("work_s")),
                "progress": _float_array(np.asarray(jobs["progress"], dtype=np.float64)[order]),
                "status": _dict_array(col("status"), codes.JOB_STATUS),
                "restarts": pa.array(np.asarray(jobs["restarts"], dtype=np.int32)[order]),
                "pool": _dict_array(col("pool"), self.pools),
                "nodes": _int_array(col("nodes"), pa.int32()),
                "reason": pa.array([jobs["reason"][i] for i in order], type=pa.string()),
                "after_warmup": pa.array(submit >= self.warmup_s, type=pa.bool_()),
            },
        )

    def _series_table(self, name: str, data: dict[str, list[Any]]) -> pa.Table:
        columns: dict[str, pa.Array] = {}
        for column in TABLES[name]:
            values = data[column.name]
            if column.type == DICT:
                columns[column.name] = _dict_array(values, self.pools)
            elif pa.types.is_floating(column.type):
                columns[column.name] = pa.array(values, type=column.type, from_pandas=True)
            else:
                columns[column.name] = pa.array(values, type=column.type)
        return self._finish(name, columns)
