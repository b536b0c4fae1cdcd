"""Scheduling policies ``sjf`` and ``backfill`` (EASY): hand-computed cases, arithmetic in the
docstrings, and a hypothesis invariant: a job started ahead of the head never delays it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sim
from sim.config import validate_scenario
from sim.inputs import read_inputs
from sim.model.world import World

SCENARIO = """
[scenario]
name = "sched"
duration = "{duration}"
[scheduler]
policy = "{policy}"
[[pools]]
name = "hall"
gpu_type = "H100-SXM"
nodes = {nodes}
gpus_per_node = 8
[[workloads]]
name = "jobs"
kind = "training"
arrival = {{ process = "trace", path = "jobs.csv", time_column = "t", columns = {{ {columns} }} }}
"""


def run(
    tmp_path: Path, rows: str, policy: str, requested: bool = False, nodes: int = 1
) -> pd.DataFrame:
    """Run the jobs of ``rows`` (``t,g,d[,r]`` lines) under ``policy``; jobs by id."""
    header = "t,g,d,r" if requested else "t,g,d"
    (tmp_path / "jobs.csv").write_text(header + "\n" + rows)
    columns = 'gpus = "g", duration = "d"' + (', requested = "r"' if requested else "")
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO.format(duration="1h", policy=policy, nodes=nodes, columns=columns))
    jobs = sim.run(path).frame("jobs")
    return jobs.sort_values("job_id").set_index("job_id")


EASY = "0,4,100\n1,8,50\n2,4,90\n"


def test_easy_backfill_starts_a_small_job_early_without_delaying_the_head(tmp_path: Path) -> None:
    """One node of 8 GPUs. Job 0 (4 GPUs, 100 s) starts at 0. Job 1 (8 GPUs, 50 s) arrives at
    1 and cannot fit: its reservation is 100, when job 0 gives back its 4 GPUs. Job 2 (4 GPUs,
    90 s) arrives at 2, fits in the 4 free GPUs and ends by 2 + 90 = 92 <= 100: it starts at 2
    and ends at 92. Job 1 starts at its reservation, 100, and ends at 150.
    Waits: 0, 99, 0."""
    jobs = run(tmp_path, EASY, "backfill")
    assert jobs["start_s"].tolist() == [0.0, 100.0, 2.0]
    assert jobs["end_s"].tolist() == [100.0, 150.0, 92.0]
    assert jobs["wait_s"].tolist() == [0.0, 99.0, 0.0]


def test_the_same_jobs_under_strict_fifo_wait_for_the_head(tmp_path: Path) -> None:
    """The same three jobs under fifo: job 2 waits behind job 1, which starts at 100 and ends
    at 150; job 2 starts at 150 (wait 148) and ends at 240."""
    jobs = run(tmp_path, EASY, "fifo")
    assert jobs["start_s"].tolist() == [0.0, 100.0, 150.0]
    assert jobs["end_s"].tolist() == [100.0, 150.0, 240.0]
    assert jobs["wait_s"].tolist() == [0.0, 99.0, 148.0]


def test_a_job_that_would_delay_the_head_does_not_start(tmp_path: Path) -> None:
    """As the EASY case but job 2 runs 120 s: it would end at 122 > 100, the head's
    reservation, still holding 4 of the node's 8 GPUs, all of which the head needs (none
    spare). It waits: job 1 runs 100 to 150, job 2 150 to 270."""
    jobs = run(tmp_path, "0,4,100\n1,8,50\n2,4,120\n", "backfill")
    assert jobs["start_s"].tolist() == [0.0, 100.0, 150.0]
    assert jobs["end_s"].tolist() == [100.0, 150.0, 270.0]


def test_a_long_job_may_use_the_gpus_the_head_leaves(tmp_path: Path) -> None:
    """One node of 8. Job 0 (4 GPUs, 100 s) at 0; job 1 (6 GPUs, 50 s) at 1 waits: at its
    reservation, 100, the node has 8 free, 2 more than it needs. Job 2 (2 GPUs, 500 s) at 2
    runs past 100 but takes only those 2 spare GPUs: it starts at 2 (ends 502). Job 3 (2 GPUs,
    500 s), also at 2, considered in the same decision, fits now (2 free) but the spare GPUs
    are gone: it waits. At 100 job 1 starts on the 6 free GPUs (ends 150); at 150 job 3 starts
    (ends 650)."""
    rows = "0,4,100\n1,6,50\n2,2,500\n2,2,500\n"
    jobs = run(tmp_path, rows, "backfill")
    assert jobs["start_s"].tolist() == [0.0, 100.0, 2.0, 150.0]
    assert jobs["end_s"].tolist() == [100.0, 150.0, 502.0, 650.0]


def test_backfill_goes_by_the_requested_run_time(tmp_path: Path) -> None:
    """The EASY case, job 2 requesting 200 s though it runs 90: by its estimate it would end
    at 202 > 100, so it waits (150 to 240) as under fifo. With the other jobs' requests their
    durations, all else is as in the EASY case."""
    jobs = run(tmp_path, "0,4,100,100\n1,8,50,50\n2,4,90,200\n", "backfill", requested=True)
    assert jobs["start_s"].tolist() == [0.0, 100.0, 150.0]


def test_sjf_starts_the_shortest_request_first_oldest_among_equals(tmp_path: Path) -> None:
    """One node of 8; every job takes all 8 GPUs. Job 0 (100 s) runs 0 to 100. Waiting at 100:
    job 1 (300 s), job 2 (100 s), job 3 (200 s), job 4 (100 s). Shortest first, ties by
    submission: job 2 100-200, job 4 200-300, job 3 300-500, job 1 500-800."""
    rows = "0,8,100\n1,8,300\n2,8,100\n3,8,200\n4,8,100\n"
    jobs = run(tmp_path, rows, "sjf")
    assert jobs["start_s"].tolist() == [0.0, 500.0, 100.0, 300.0, 200.0]
    assert jobs["end_s"].tolist() == [100.0, 800.0, 200.0, 500.0, 300.0]


# -- the invariant ------------------------------------------------------------------------------
class Rows:
    """A recorder that keeps the job rows and ignores everything else."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Any, ...]] = []

    def job(self, *args: Any) -> None:
        self.jobs.append(args)

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


@st.composite
def job_traces(draw: st.DrawFn) -> tuple[str, list[tuple[int, int]]]:
    """A trace of 2-14 jobs on 1-2 pools of 1-3 nodes of 2, 4 or 8 GPUs; some jobs larger
    than a node; requested run times at or above the true ones."""
    pools = [
        (draw(st.integers(1, 3)), draw(st.sampled_from([2, 4, 8])))
        for _ in range(draw(st.integers(1, 2)))
    ]
    most = max(n * g for n, g in pools)
    lines = []
    for _ in range(draw(st.integers(2, 14))):
        t = draw(st.integers(0, 60))
        g = draw(st.integers(1, most))
        d = draw(st.integers(1, 120))
        r = d + draw(st.sampled_from([0, 0, 0, draw(st.integers(1, 100))]))
        lines.append(f"{t},{g},{d},{r}\n")
    return "".join(lines), pools


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(trace=job_traces())
def test_backfill_never_delays_a_head_past_its_first_reservation(
    tmp_path: Path, trace: tuple[str, list[tuple[int, int]]]
) -> None:
    """With estimates at or above the true run times and nothing failing, every job that
    waited as the head starts no later than the reservation it got when it first blocked;
    and the GPUs running jobs hold never exceed a pool's."""
    rows, pools = trace
    (tmp_path / "jobs.csv").write_text("t,g,d,r\n" + rows)
    raw: dict[str, Any] = {
        "scenario": {"name": "inv", "duration": "2h"},
        "scheduler": {"policy": "backfill"},
        "pools": [
            {"name": f"p{i}", "gpu_type": gpu, "nodes": n, "gpus_per_node": g}
            for i, ((n, g), gpu) in enumerate(zip(pools, ["H100-SXM", "A100-80GB"], strict=False))
        ],
        "workloads": [
            {
                "name": "jobs",
                "kind": "training",
                "arrival": {
                    "process": "trace",
                    "path": str(tmp_path / "jobs.csv"),
                    "time_column": "t",
                    "columns": {"gpus": "g", "duration": "d", "requested": "r"},
                },
            }
        ],
    }
    scn = validate_scenario(raw, "inv")
    inputs, problems = read_inputs(scn)
    assert not problems
    recorder = Rows()
    world = World(scn, inputs, recorder, 1)  # type: ignore[arg-type]
    world.scheduler.reservations = reservations = {}
    world.run()
    starts = {row[0]: row[5] for row in recorder.jobs}
    for ident, at in reservations.items():
        assert starts[ident] <= at + 1e-9, (ident, starts[ident], at)
    horizon = scn.scenario.duration_s
    for index, pool in enumerate(scn.pools):
        edges = []
        for row in recorder.jobs:
            gpus, start, end, where = row[2], row[5], row[6], row[16]
            if where == index and start == start:
                edges += [(start, 1, gpus), (end if end == end else horizon, 0, -gpus)]
        held = 0
        for _, _, change in sorted(edges):
            held += change
            assert held <= pool.gpus


def test_summary_wait_percentiles_bounded_slowdown_and_gpu_hours(tmp_path: Path) -> None:
    """The fifo case plus job 3 (8 GPUs, 2 s) at 239, which waits for job 2 to end at 240 and
    runs to 242. Waits 0, 99, 148, 1: p50 1 (or 0 to 99 by the histogram's rank: within 1 %
    of a wait), p99 148. Bounded slowdowns max(1, (wait + run) / max(run, 10 s)): job 0
    100 / 100 = 1; job 1 149 / 50 = 2.98; job 2 238 / 90 = 2.6444...; job 3 max(1, 3 / 10) = 1
    (not 3 / 2 = 1.5 without τ, not 0.3 without the floor of 1). Mean 7.6244... / 4 =
    1.906111... GPU-hours: (4 × 100 + 8 × 50 + 4 × 90 + 8 × 2) / 3600 = 1176 / 3600."""
    (tmp_path / "jobs.csv").write_text("t,g,d\n" + EASY + "239,8,2\n")
    path = tmp_path / "s.toml"
    path.write_text(
        SCENARIO.format(duration="1h", policy="fifo", nodes=1, columns='gpus = "g", duration = "d"')
    )
    summary = sim.run(path).summary["workloads"]["jobs"]
    assert summary["job_wait_p99_s"] == pytest.approx(148, rel=0.01)
    assert summary["job_wait_p50_s"] in (0.0, pytest.approx(1, rel=0.01))
    assert summary["bounded_slowdown_mean"] == pytest.approx((1 + 2.98 + 238 / 90 + 1) / 4)
    assert summary["gpu_hours"] == pytest.approx(1176 / 3600)
    assert summary["job_gpu_hours"] == summary["gpu_hours"]
