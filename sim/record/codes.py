"""Integer codes the model records with, and the names they stand for in the outputs.

Pure Python, so the model can import it without loading pyarrow. The order of each tuple is
the code: ``REQUEST_STATUS[OK] == "ok"``.
"""

from __future__ import annotations

REQUEST_STATUS: tuple[str, ...] = ("ok", "rejected", "unfinished", "failed", "timeout")
"""Terminal statuses of a request: served; turned away by a full queue; still waiting or in
service at the end of the horizon; lost with its replica more than ``retries`` times; waited
longer than ``timeout``."""
OK, REJECTED, UNFINISHED, FAILED, TIMEOUT = range(5)

JOB_STATUS: tuple[str, ...] = ("completed", "rejected", "unfinished", "failed")
"""Terminal statuses of a training job: ran to the end; can never fit; still queued or running
at the end of the horizon; interrupted more than ``max_restarts`` times."""
JOB_COMPLETED, JOB_REJECTED, JOB_UNFINISHED, JOB_FAILED = range(4)

EVENTS: tuple[str, ...] = (
    "run_started",
    "replica_placed",
    "warmup_ended",
    "job_submitted",
    "job_rejected",
    "job_started",
    "job_completed",
    "run_ended",
    "limit_changed",
    "curtailment_started",
    "curtailment_ended",
    "cap_changed",
    "job_suspended",
    "job_resumed",
    "replica_suspended",
    "replica_resumed",
    "job_interrupted",
    "replica_down",
    "replica_up",
    "node_down",
    "node_up",
    "outage_started",
    "outage_ended",
    "replica_added",
    "replica_ready",
    "replica_removed",
)
"""Kinds of rows in ``events.parquet``."""
(
    RUN_STARTED,
    REPLICA_PLACED,
    WARMUP_ENDED,
    JOB_SUBMITTED,
    JOB_REJECTED_EVENT,
    JOB_STARTED,
    JOB_COMPLETED_EVENT,
    RUN_ENDED,
    LIMIT_CHANGED,
    CURTAILMENT_STARTED,
    CURTAILMENT_ENDED,
    CAP_CHANGED,
    JOB_SUSPENDED,
    JOB_RESUMED,
    REPLICA_SUSPENDED,
    REPLICA_RESUMED,
    JOB_INTERRUPTED,
    REPLICA_DOWN,
    REPLICA_UP,
    NODE_DOWN,
    NODE_UP,
    OUTAGE_STARTED,
    OUTAGE_ENDED,
    REPLICA_ADDED,
    REPLICA_READY,
    REPLICA_REMOVED,
) = range(len(EVENTS))

NODE_STATES: tuple[str, ...] = ("up", "failed", "maintenance", "no_power", "draining")
"""States of a node in ``nodes.parquet``: serving; failed (a node failure or an outage of its
pool); down for planned maintenance; powered off for want of power or cooling; up but taking
no new work before maintenance."""
NODE_UP_STATE, NODE_FAILED, NODE_MAINTENANCE, NODE_NO_POWER, NODE_DRAINING = range(5)

LIMIT_SOURCES: tuple[str, ...] = (
    "none",
    "grid",
    "curtailment",
    "cooling",
    "generator",
    "no_power",
)
"""What binds the facility's power: nothing, the grid connection, a curtailment, the cooling,
the generator during a grid outage, nothing at all (a grid outage with no backup left)."""
(
    LIMIT_NONE,
    LIMIT_GRID,
    LIMIT_CURTAILMENT,
    LIMIT_COOLING,
    LIMIT_GENERATOR,
    LIMIT_NO_POWER,
) = range(len(LIMIT_SOURCES))

MEASURES: tuple[str, ...] = ("latency", "job_wait", "ttft", "tpot")
"""The histograms kept per workload in ``histograms.parquet``: latency of served requests,
wait of started jobs, and TTFT and TPOT of served LLM requests."""
