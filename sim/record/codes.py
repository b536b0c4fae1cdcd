"""Integer codes the model records with, and the names they stand for in the outputs.

Pure Python, so the model can import it without loading pyarrow. The order of each tuple is
the code: ``REQUEST_STATUS[OK] == "ok"``.
"""

from __future__ import annotations

REQUEST_STATUS: tuple[str, ...] = ("ok", "rejected", "unfinished")
"""Terminal statuses of a request: served; turned away by a full queue; still waiting or in
service at the end of the horizon."""
OK, REJECTED, UNFINISHED = range(3)

JOB_STATUS: tuple[str, ...] = ("completed", "rejected", "unfinished")
"""Terminal statuses of a training job: ran to the end; can never fit; still queued or running
at the end of the horizon."""
JOB_COMPLETED, JOB_REJECTED, JOB_UNFINISHED = range(3)

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
) = range(len(EVENTS))

LIMIT_SOURCES: tuple[str, ...] = ("none", "grid", "curtailment", "cooling")
"""What binds the facility's power: nothing, the grid connection, a curtailment, the cooling."""
LIMIT_NONE, LIMIT_GRID, LIMIT_CURTAILMENT, LIMIT_COOLING = range(4)
