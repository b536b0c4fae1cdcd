"""Preemption (``scheduler.preempt``): hand-computed cases, arithmetic in the docstrings.

A higher-priority head kills running training jobs of lower priority through the one
interruption path (cause ``preempted``): they roll back to their last checkpoint, queue again
and pay ``restart_cost`` when they start again.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import sim
from sim.runner import RunResult

SCENARIO = """
[scenario]
name = "preempt"
duration = "10h"
[scheduler]
policy = "{policy}"
preempt = {preempt}
[[pools]]
name = "hall"
gpu_type = "H100-SXM"
nodes = {nodes}
gpus_per_node = 8
[[workloads]]
name = "low"
kind = "training"
priority = 0
checkpoint_every = "1h"
restart_cost = "10m"
max_restarts = 0
arrival = {{ process = "trace", path = "low.csv", time_column = "t", offset = "{low_at}s", \
columns = {{ gpus = "g", duration = "d" }} }}
[[workloads]]
name = "high"
kind = "training"
priority = 1
arrival = {{ process = "trace", path = "high.csv", time_column = "t", offset = "{high_at}s", \
columns = {{ gpus = "g", duration = "d" }} }}
"""


def run(
    tmp_path: Path,
    low: str,
    high: str,
    preempt: bool = True,
    policy: str = "priority",
    nodes: int = 1,
) -> RunResult:
    """Run the ``t,g,d`` rows of the low- and high-priority workloads (at their times ``t``:
    each trace is offset by its first time)."""
    (tmp_path / "low.csv").write_text("t,g,d\n" + low)
    (tmp_path / "high.csv").write_text("t,g,d\n" + high)
    path = tmp_path / "s.toml"
    text = SCENARIO.format(
        policy=policy,
        preempt=str(preempt).lower(),
        nodes=nodes,
        low_at=float(low.split(",")[0]),
        high_at=float(high.split(",")[0]),
    )
    path.write_text(text)
    return sim.run(path)


def jobs_of(result: RunResult) -> pd.DataFrame:
    """The jobs by workload name (one job each in these cases)."""
    return result.frame("jobs").set_index("workload")


@pytest.mark.parametrize("policy", ["priority", "fifo", "backfill"])
def test_a_preempted_job_resumes_from_its_checkpoint(tmp_path: Path, policy: str) -> None:
    """One node of 8 H100s. A (priority 0, 8 GPUs, 4 h of work, a checkpoint every hour,
    restart 10 min) starts at 0 and checkpoints at 1 h and 2 h. B (priority 1, 8 GPUs, 1 h)
    arrives at 2.5 h = 9000 s: A is killed (cause ``preempted``), losing the 0.5 h since its
    2 h checkpoint: 1800 s x 8 = 14400 GPU-s. B runs 9000 to 12600. A starts again at 12600,
    reloads for 600 s and computes the 2 h left: it ends at 12600 + 600 + 7200 = 20400.
    Its run time is 9000 + 600 + 7200 = 16800 s; restart GPU time 600 x 8 = 4800.
    ``max_restarts = 0``: a preemption is not a failure, so A still completes.
    The same under every policy: under fifo and backfill A, queued again, is the head in
    submission order but B has already left the queue and started."""
    result = run(tmp_path, "0,8,14400\n", "9000,8,3600\n", policy=policy)
    jobs = jobs_of(result)
    a, b = jobs.loc["low"], jobs.loc["high"]
    assert (b["start_s"], b["end_s"]) == (9000.0, 12600.0)
    assert a["status"] == "completed"
    assert (a["start_s"], a["end_s"]) == (0.0, 20400.0)
    assert a["lost_gpu_s"] == 14400.0
    assert a["run_s"] == 16800.0
    assert a["restart_gpu_s"] == 4800.0
    assert a["restarts"] == 1
    events = result.frame("events")
    hit = events[events["event"] == "job_interrupted"]
    assert hit["detail"].tolist() == ["preempted"]
    assert hit["time_s"].tolist() == [9000.0]
    assert hit["workload"].astype(str).tolist() == ["low"]


def test_without_preempt_the_head_waits(tmp_path: Path) -> None:
    """The same jobs without ``preempt``: B waits for A's end at 4 h = 14400 s and ends at
    18000; A loses nothing."""
    jobs = jobs_of(run(tmp_path, "0,8,14400\n", "9000,8,3600\n", preempt=False))
    assert (jobs.loc["high", "start_s"], jobs.loc["high", "end_s"]) == (14400.0, 18000.0)
    assert jobs.loc["low", "end_s"] == 14400.0
    assert jobs.loc["low", "lost_gpu_s"] == 0.0


def test_only_strictly_lower_priorities_are_preempted(tmp_path: Path) -> None:
    """One node of 8. A low job (8 GPUs, 100 s) runs 0 to 100 and is gone. High job H0 (8
    GPUs, 4 h) starts at 200; H1 (8 GPUs, 1 h) at 9000 may not preempt H0 (equal priority),
    nor find the finished low job: it waits for H0's end at 200 + 14400 = 14600."""
    jobs = run(tmp_path, "0,8,100\n", "200,8,14400\n9000,8,3600\n").frame("jobs")
    jobs = jobs.sort_values("job_id")
    assert jobs["start_s"].tolist() == [0.0, 200.0, 14600.0]
    assert jobs["lost_gpu_s"].tolist() == [0.0, 0.0, 0.0]


def test_the_newest_lowest_job_is_chosen_on_the_node_that_frees_enough(tmp_path: Path) -> None:
    """Two nodes of 8. Low jobs: L0 (4 GPUs) at 0, L1 (4 GPUs) at 10, L2 (4 GPUs) at 20, all
    1 h long: L0 and L1 share node 0 (best fit), L2 starts node 1. The high job (4 GPUs) at
    100 fits on node 1 (4 free): no preemption. A second high job (8 GPUs) at 200 needs a whole
    node: candidates newest first are L2 (node 1, which also holds the first high job: 4 + 0
    free there is not 8), then L1 (node 0: 4 freed), then L0 (node 0: 8): the victims are the
    jobs on node 0, L1 and L0, not L2 (nor the first high job, of equal priority)."""
    low = "0,4,3600\n10,4,3600\n20,4,3600\n"
    high = "100,4,3600\n200,8,3600\n"
    result = run(tmp_path, low, high, nodes=2)
    events = result.frame("events")
    hit = events[events["event"] == "job_interrupted"].sort_values("id")
    assert hit["id"].tolist() == [0, 1]
    assert hit["time_s"].tolist() == [200.0, 200.0]
    jobs = result.frame("jobs").set_index("job_id")
    assert jobs.loc[2, "lost_gpu_s"] == 0.0
    assert jobs.loc[4, "start_s"] == 200.0


def test_the_most_recently_started_is_preempted_first(tmp_path: Path) -> None:
    """Two nodes of 8. L0 (8 GPUs) starts at 0 on node 0, L1 (8 GPUs) at 10 on node 1; both
    run 1 h. The high job (8 GPUs) at 100 needs a node: the newest, L1, is killed (it loses 90
    s x 8 = 720 GPU-s, no checkpoint yet); L0 runs on to 3600. L1 starts again at 3600 (the
    high job ends at 3700, but node 0 is free first) and reloads for 600 s: it ends at
    3600 + 600 + 3600 = 7800."""
    result = run(tmp_path, "0,8,3600\n10,8,3600\n", "100,8,3600\n", nodes=2)
    jobs = result.frame("jobs").set_index("job_id").sort_index()
    assert jobs["lost_gpu_s"].tolist() == [0.0, 720.0, 0.0]
    assert jobs["end_s"].tolist() == [3600.0, 7800.0, 3700.0]


def test_no_victim_is_killed_when_the_power_freed_would_not_admit_the_head(
    tmp_path: Path,
) -> None:
    """Two pools: "cheap" (8 RTX A4000, 130 W busy over idle) runs a priority-2 job on all 8
    GPUs; "dear" (8 H100, 630 W over idle) runs the low job (4 GPUs, priority 0). The head
    (priority 1, 8 GPUs, either pool) arrives at 1 h with 2,000 W of headroom (PUE 1): enough
    for 8 busy A4000s (1,040 W: the ledger's "may fit" test passes), but its only victims are
    in the dear pool, where killing the low job frees 4 × 630 = 2,520 W and 8 busy H100s need
    5,040 > 2,000 + 2,520. So nobody is killed and the head waits. (The low job used to be
    killed, lose its hour since the last checkpoint and queue again, with the head held.)"""
    (tmp_path / "top.csv").write_text("t,g,d\n0,8,36000\n")
    (tmp_path / "low.csv").write_text("t,g,d\n0,4,18000\n")
    (tmp_path / "high.csv").write_text("t,g,d\n0,8,3600\n")
    idle_w = 8 * 10 + 8 * 70  # A4000 and H100 idle
    grid_w = idle_w + 8 * 130 + 4 * 630 + 2000
    jobs = ""
    for name, priority, pool, path, offset in (
        ("top", 2, '"cheap"', "top.csv", 0),
        ("low", 0, '"dear"', "low.csv", 0),
        ("high", 1, None, "high.csv", 3600),
    ):
        jobs += (
            f'[[workloads]]\nname = "{name}"\nkind = "training"\npriority = {priority}\n'
            + (f"pool = {pool}\n" if pool else "")
            + 'checkpoint_every = "1h"\n'
            + f'arrival = {{ process = "trace", path = "{path}", time_column = "t", '
            + f'offset = "{offset}s", columns = {{ gpus = "g", duration = "d" }} }}\n'
        )
    text = (
        '[scenario]\nname = "preempt-power"\nduration = "10h"\n'
        f"[facility]\npue = 1.0\ngrid_mw = {grid_w / 1e6}\n"
        '[scheduler]\npolicy = "priority"\npreempt = true\n'
        '[[pools]]\nname = "cheap"\ngpu_type = "RTX-A4000"\nnodes = 1\ngpus_per_node = 8\n'
        '[[pools]]\nname = "dear"\ngpu_type = "H100-SXM"\nnodes = 1\ngpus_per_node = 8\n' + jobs
    )
    path = tmp_path / "s.toml"
    path.write_text(text)
    result = sim.run(path)
    ev = result.frame("events")
    assert not (ev["event"].astype(str) == "job_interrupted").any()
    done = jobs_of(result)
    assert done.loc["low", "status"] == "completed" and done.loc["low", "restarts"] == 0
