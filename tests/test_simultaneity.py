"""Simultaneous events: one rule for every tie, whatever the order of the scenario file.

At one instant the clock runs completions (FREE), then arrivals (ARRIVE), then the training
scheduler's one decision (DECIDE), then observers; within a phase, workloads go by their rank
in the name-sorted list of workloads. So the order of ``[[workloads]]`` and ``[[pools]]`` in a
file never changes a run, and an extra wake-up of the inference hub changes nothing.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from typing import Any

import pandas as pd
import pytest
from conftest import SCENARIOS
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

import sim
from sim.config import validate_scenario
from sim.errors import ScenarioError
from sim.model.clock import SITE, priority
from sim.model.inference import InferenceHub
from sim.model.world import World
from sim.runner import RunResult

ONE_NODE = """
[scenario]
name = "ties"
duration = "{duration}"

[scheduler]
policy = "{policy}"

[[pools]]
name = "hall"
gpu_type = "H100-SXM"
nodes = {nodes}
gpus_per_node = 8
"""


def pool(duration: str = "4h", policy: str = "priority", nodes: int = 1) -> str:
    return ONE_NODE.format(duration=duration, policy=policy, nodes=nodes)


def job(name: str, at: str, gpus: int, length: str, priority: int = 0) -> str:
    return f"""
[[workloads]]
name = "{name}"
kind = "training"
arrival = {{ process = "at", times = ["{at}"] }}
gpus = {gpus}
priority = {priority}
duration = {{ dist = "deterministic", value = "{length}" }}
"""


def starts(result: RunResult) -> dict[str, float]:
    jobs = result.frame("jobs")
    return dict(zip(jobs["workload"].astype(str), jobs["start_s"], strict=True))


# -- 1. the issue's reproduction --------------------------------------------------------------
ISSUE_JOBS = {
    "a": job("a", "0s", 8, "1h"),
    "b": job("b", "10m", 8, "1h", priority=0),
    "c": job("c", "1h", 8, "1h", priority=5),
}


@pytest.mark.parametrize("order", list(itertools.permutations("abc")), ids="".join)
def test_completion_and_arrival_at_one_instant_are_decided_together(run_text, order):
    """One 8-GPU node, policy priority; every job needs the whole node for 1 h.

    a: submitted at 0, runs 0 -> 3600. b (priority 0): submitted at 600, waits.
    c (priority 5): submitted at exactly 3600, the instant a completes.
    At 3600: a completes (FREE), c arrives (ARRIVE), then the scheduler decides once
    (DECIDE) over {b, c}: c has the higher priority, so c runs 3600 -> 7200, b 7200 -> 10800.
    A scheduler that decided at a's completion, before c arrived, would start b at 3600.
    The file order of the three workloads must not matter (all 6 orders).
    """
    result = run_text(pool() + "".join(ISSUE_JOBS[name] for name in order))
    assert starts(result) == {"a": 0.0, "c": 3600.0, "b": 7200.0}
    jobs = result.frame("jobs").set_index("workload")
    assert jobs.loc["b", "end_s"] == 10800.0 and jobs.loc["b", "wait_s"] == 6600.0
    assert jobs.loc["c", "wait_s"] == 0.0


# -- 2. the ties that remain: by workload name ----------------------------------------------
@pytest.mark.parametrize("policy", ["fifo", "priority"])
@pytest.mark.parametrize("names", [("alpha", "beta"), ("beta", "alpha")], ids="-".join)
def test_equal_priority_submissions_at_one_instant_go_by_name(run_text, policy, names):
    """One 8-GPU node. 'alpha' and 'beta' (both priority 2) each submit one 8-GPU 1 h job at
    exactly 600 s. Submission order at a tie is the workloads' name order, so alpha is queued
    first and starts at 600 s, beta at 600 + 3600 = 4200 s, in either file order and under
    either policy.
    """
    text = pool(policy=policy) + "".join(job(n, "10m", 8, "1h", priority=2) for n in names)
    result = run_text(text)
    assert starts(result) == {"alpha": 600.0, "beta": 4200.0}
    jobs = result.frame("jobs").set_index("workload")
    assert jobs.loc["alpha", "job_id"] < jobs.loc["beta", "job_id"]


# -- 3. any scenario: the file order of workloads and pools changes nothing --------------------
SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
INSTANTS = [0.0, 0.0, 5.0, 30.0, 60.0, 60.0, 120.0, 240.0]
"""Arrival times drawn from a few values, so that workloads often arrive at the same instant."""


def tie_arrival(draw: st.DrawFn, intervals: list[float], offsets: list[float]) -> dict[str, Any]:
    """Arrivals at a few listed instants or periodic on a round grid: they often coincide."""
    if draw(st.booleans()):
        times = draw(st.lists(st.sampled_from(INSTANTS), min_size=1, max_size=6))
        return {"process": "at", "times": times}
    return {
        "process": "deterministic",
        "interval": draw(st.sampled_from(intervals)),
        "offset": draw(st.sampled_from(offsets)),
    }


@st.composite
def tie_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """A small, crowded scenario whose events often coincide: 1-2 pools of 1-2 nodes, 1-4
    workloads (mostly training, so that jobs submitted at one instant compete for GPUs)."""
    pools = [
        {
            "name": f"p{i}",
            "gpu_type": draw(st.sampled_from(["H100-SXM", "A100-80GB", "RTX-4090"])),
            "nodes": draw(st.integers(1, 2)),
            "gpus_per_node": draw(st.sampled_from([2, 4, 8])),
        }
        for i in range(draw(st.integers(1, 2)))
    ]
    named = draw(st.booleans())  # every workload names its pool (then pools are permuted too)
    workloads: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 4))):
        wl: dict[str, Any]
        target = draw(st.sampled_from(pools))
        gpus = target["nodes"] * target["gpus_per_node"]
        if draw(st.integers(0, 2)) == 0:
            if draw(st.booleans()):
                rate = draw(st.sampled_from([0.2, 1.0, 4.0]))
                arrival = {"process": "poisson", "rate_per_s": rate}
            else:
                arrival = tie_arrival(draw, [1.0, 2.0, 5.0], [0.0, 1.0])
            wl = {
                "name": f"w{i}",
                "kind": "inference",
                "replicas": draw(st.integers(1, 3)),
                "gpus_per_replica": draw(st.sampled_from([1, 1, 2, 3, 4])),
                "arrival": arrival,
                "service": draw(
                    st.sampled_from(
                        [
                            {"dist": "deterministic", "value": 1.0},
                            {"dist": "deterministic", "value": 2.0},
                            {"dist": "deterministic", "value": 5.0},
                            {"dist": "exponential", "mean": 1.5},
                        ]
                    )
                ),
                "sla": {"latency": 4.0},
            }
            max_queue = draw(st.sampled_from([None, 0, 1, 3]))
            if max_queue is not None:
                wl["max_queue"] = max_queue
        else:
            wl = {
                "name": f"w{i}",
                "kind": "training",
                "arrival": tie_arrival(draw, [30.0, 60.0, 120.0], [0.0, 30.0]),
                # mostly big enough to compete for the pool, sometimes too big for it
                "gpus": draw(
                    st.sampled_from([gpus, max(gpus // 2, 1), target["gpus_per_node"]])
                    | st.integers(1, gpus + 1)
                ),
                "duration": draw(
                    st.sampled_from(
                        [
                            {"dist": "deterministic", "value": 60.0},
                            {"dist": "deterministic", "value": 120.0},
                            {"dist": "deterministic", "value": 300.0},
                            {"dist": "exponential", "mean": 150.0},
                        ]
                    )
                ),
                "priority": draw(st.integers(0, 1)),
            }
        if named:
            wl["pool"] = target["name"]
        workloads.append(wl)
    return {
        "scenario": {
            "name": "ties",
            "seed": draw(st.integers(0, 2**16)),
            "duration": float(draw(st.sampled_from([300, 600]))),
        },
        "pools": pools,
        "workloads": workloads,
        "scheduler": {"policy": draw(st.sampled_from(["fifo", "priority"]))},
    }


REQUEST_FIELDS = ["arrival_s", "start_s", "end_s", "status", "replica", "pool"]
JOB_FIELDS = ["submit_s", "start_s", "end_s", "status", "pool", "nodes"]


def cell(value: Any) -> Any:
    """A value comparable across runs: None for null, numbers as they are, the rest as text."""
    if pd.isna(value):
        return None
    return value if isinstance(value, float | int) else str(value)


def keyed(frame: pd.DataFrame, ident: str, fields: list[str]) -> Counter[tuple[Any, ...]]:
    """Rows as a multiset of (workload, rank in arrival order within it, *fields); ids are
    given in arrival order within a workload."""
    frame = frame.sort_values(ident, kind="stable").copy()
    frame["workload"] = frame["workload"].astype(str)
    frame["rank"] = frame.groupby("workload").cumcount()
    columns = frame[["workload", "rank", *fields]]
    return Counter(tuple(cell(v) for v in row) for row in columns.itertuples(index=False))


def run_raw(raw: dict[str, Any]) -> RunResult:
    return sim.run(validate_scenario(raw, "test"))


def orders(raw: dict[str, Any], shuffle: random.Random) -> tuple[dict[str, Any], dict[str, Any]]:
    """The scenario with its [[workloads]] (and [[pools]], when every workload names its pool)
    in a random order, and in the reverse of that order: every pair of sections swaps."""
    named = all("pool" in wl for wl in raw["workloads"])
    one, other = dict(raw), dict(raw)
    for key in ("workloads", "pools") if named else ("workloads",):
        items = shuffle.sample(raw[key], len(raw[key]))
        one[key], other[key] = items, items[::-1]
    return one, other


@SETTINGS
@given(raw=tie_scenarios(), shuffle=st.randoms(use_true_random=False))
def test_file_order_of_workloads_and_pools_changes_nothing(
    raw: dict[str, Any], shuffle: random.Random
):
    """Every request's (workload, arrival, start, end, status, replica, pool) and every job's
    (workload, submit, start, end, status, pool, nodes), keyed by workload and arrival order
    within it, are the same with [[workloads]] in a random order and in the reverse order (and
    [[pools]] too when every workload names its pool). Only request_id and job_id may differ.
    """
    one, other = orders(raw, shuffle)
    note(f"one order: {one}")
    try:
        first = run_raw(one)
    except ScenarioError:
        assume(False)  # the replicas do not fit
        raise
    note(f"the reverse order: {other}")
    second = run_raw(other)
    assert keyed(first.frame("requests"), "request_id", REQUEST_FIELDS) == keyed(
        second.frame("requests"), "request_id", REQUEST_FIELDS
    )
    assert keyed(first.frame("jobs"), "job_id", JOB_FIELDS) == keyed(
        second.frame("jobs"), "job_id", JOB_FIELDS
    )


def inference(name: str, replicas: int, gpus: int) -> str:
    return f"""
[[workloads]]
name = "{name}"
kind = "inference"
replicas = {replicas}
gpus_per_replica = {gpus}
arrival = {{ process = "deterministic", interval = "10s" }}
service = {{ dist = "deterministic", value = "4s" }}
"""


PLACEMENT_CASES = {
    # Best fit within nodes depends on which workload is placed first. a then b: a's replicas
    # take node 0 (8 -> 5 -> 2), b's takes node 1 (8 -> 4): free 2 and 4, so a 5-GPU gang can
    # never fit. b then a: b takes node 0 (8 -> 4), a's go to node 0 (4 -> 1) and node 1
    # (8 -> 5): the 5-GPU gang fits on node 1.
    "nodes": (
        pool(duration="1h", nodes=2),
        [inference("a", 2, 3), inference("b", 1, 4), job("t", "0s", 5, "10m")],
    ),
    # Without `pool`, a replica goes to the first pool with room: a two-GPU hall and an
    # eight-GPU hall of slower GPUs. a then b: a's two replicas fill hall-1, b goes to hall-2.
    # b then a: b fills hall-1, a's replicas go to hall-2 (slower, so every request ends later).
    "pools": (
        """
[scenario]
name = "placement"
duration = "2m"

[[pools]]
name = "hall-1"
gpu_type = "H100-SXM"
nodes = 1
gpus_per_node = 2

[[pools]]
name = "hall-2"
gpu_type = "A100-80GB"
nodes = 1
gpus_per_node = 8
""",
        [inference("a", 2, 1), inference("b", 1, 2)],
    ),
}


@pytest.mark.parametrize("case", PLACEMENT_CASES)
def test_replica_placement_does_not_depend_on_workload_order(run_text, case):
    """The same workloads in the file order given and reversed: every replica lands on the
    same pool and nodes, so every request and job is the same."""
    head, sections = PLACEMENT_CASES[case]
    results = [run_text(head + "".join(order)) for order in (sections, sections[::-1])]

    def placed(result: RunResult) -> list[tuple[Any, ...]]:
        ev = result.frame("events")
        ev = ev[ev.event == "replica_placed"]
        return sorted(
            zip(ev.workload.astype(str), ev.id, ev.pool.astype(str), ev.detail, strict=True)
        )

    assert placed(results[0]) == placed(results[1])
    for table, ident, fields in (
        ("requests", "request_id", REQUEST_FIELDS),
        ("jobs", "job_id", JOB_FIELDS),
    ):
        assert keyed(results[0].frame(table), ident, fields) == keyed(
            results[1].frame(table), ident, fields
        )


# -- 4. a gang no larger than a node stays within one node --------------------------------------
def test_gang_that_fits_a_node_waits_for_one_node(run_text):
    """Two nodes of 8 GPUs, policy fifo.

    At 0: a (6 GPUs, 1 h) goes to node 0 (2 left); b (6 GPUs, 30 min) to node 1 (2 left).
    At 60 s: c (4 GPUs, 10 min) is submitted. 2 + 2 = 4 GPUs are free, but no node has 4, and
    a 4-GPU gang must run within one node: c waits until b ends at 1800 s, then runs on node 1
    (8 free) from 1800 to 2400 s, 'node 1 x4', 1 node. Splitting it as 2 + 2 over both nodes
    would start it at 60 s on 2 nodes.
    """
    text = (
        pool(duration="2h", policy="fifo", nodes=2)
        + job("a", "0s", 6, "1h")
        + job("b", "0s", 6, "30m")
        + job("c", "1m", 4, "10m")
    )
    result = run_text(text)
    jobs = result.frame("jobs").set_index("workload")
    assert (jobs.loc["c", "start_s"], jobs.loc["c", "end_s"]) == (1800.0, 2400.0)
    assert jobs.loc["c", "nodes"] == 1
    assert jobs.loc["a", "nodes"] == 1 and jobs.loc["b", "nodes"] == 1
    events = result.frame("events")
    started = events[events.event == "job_started"].set_index("workload")
    assert started.loc["a", "detail"] == "node 0 x6"
    assert started.loc["b", "detail"] == "node 1 x6"
    assert started.loc["c", "detail"] == "node 1 x4"
    assert started.loc["c", "time_s"] == 1800.0


def test_gang_larger_than_a_node_takes_whole_nodes_then_the_best_fit(run_text):
    """Three nodes of 8 GPUs. a (4 GPUs, 1 h) at 0 goes to node 0 (4 left). b (12 GPUs) at
    60 s takes a whole free node (node 1, 8 GPUs), then the node that best fits the other 4:
    node 0, which has exactly 4 free (not node 2, which has 8): 'node 1 x8, node 0 x4', 2 nodes.
    """
    text = pool(duration="2h", policy="fifo", nodes=3) + job("a", "0s", 4, "1h")
    text += job("b", "1m", 12, "10m")
    result = run_text(text)
    jobs = result.frame("jobs").set_index("workload")
    assert jobs.loc["b", "start_s"] == 60.0 and jobs.loc["b", "nodes"] == 2
    events = result.frame("events")
    started = events[events.event == "job_started"].set_index("workload")
    assert started.loc["b", "detail"] == "node 1 x8, node 0 x4"


# -- 5. an extra wake-up of the inference hub costs nothing ----------------------------------------
def _wake_set(world: World) -> None:
    world.hub.alarm.set(world.clock.now, priority(SITE))


def _wake_reschedule(world: World) -> None:
    world.hub.reschedule()


def _wake_both(world: World) -> None:
    world.hub.alarm.set(world.clock.now, priority(SITE))
    world.hub.reschedule()


def _run_counted(monkeypatch: pytest.MonkeyPatch, wake: Any) -> tuple[RunResult, int]:
    """scenarios/mmc.toml (M/M/8 at rho 0.9) for 20 min, counting the hub's loop runs, with
    ``wake(world)`` called from a clock callback at 100 s (SITE phase) if given."""
    calls = 0
    hub_run = InferenceHub._run

    def counted(self: InferenceHub) -> None:
        nonlocal calls
        calls += 1
        hub_run(self)

    world_run = World.run

    def run(self: World, progress: Any = None) -> None:
        if wake is not None:
            self.clock.call_at(100.0, priority(SITE), lambda: wake(self))
        world_run(self, progress)

    with monkeypatch.context() as patch:
        patch.setattr(InferenceHub, "_run", counted)
        patch.setattr(World, "run", run)
        result = sim.run(SCENARIOS / "mmc.toml", overrides=["scenario.duration=20m"])
    return result, calls


@pytest.mark.parametrize(
    "wake", [_wake_set, _wake_reschedule, _wake_both], ids=lambda f: f.__name__
)
def test_an_extra_wake_up_changes_nothing(monkeypatch, wake):
    """Waking the hub from outside at 100 s (setting its alarm to now, or asking it to
    reschedule) must leave every request as it was, and cost at most a couple of extra loop
    runs: the alarm's earlier setting is void, so no second chain of wake-ups starts."""
    base, base_calls = _run_counted(monkeypatch, None)
    woken, calls = _run_counted(monkeypatch, wake)
    assert base.rows["requests"] > 5000
    pd.testing.assert_frame_equal(base.frame("requests"), woken.frame("requests"))
    assert base.summary == woken.summary
    assert base_calls <= calls <= base_calls + 2, (base_calls, calls)
