"""Autoscaling of served workloads (``autoscale = { ... }``): hand-computed cases.

Replicas are added after the load rises (serving only after ``load_time``), removed one idle
replica per interval when it falls, and give their GPUs back to training; with
``scheduler.preempt`` a scale-up takes GPUs from training jobs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import sim
from sim.errors import ScenarioError
from sim.runner import RunResult

SCENARIO = """
[scenario]
name = "autoscale"
duration = "4h"
[scheduler]
preempt = {preempt}
[[pools]]
name = "hall"
gpu_type = "H100-SXM"
nodes = 4
gpus_per_node = 1
[[workloads]]
name = "svc"
kind = "{kind}"
replicas = 1
{service}
arrival = {{ process = "trace", path = "req.csv", time_column = "t", offset = "10s" }}
autoscale = {{ min_replicas = 1, max_replicas = 3, target = 1, interval = "1m", load_time = "2m" }}
"""

INFERENCE = 'service = { dist = "deterministic", value = 600 }'
TRAINING = """
[[workloads]]
name = "train"
kind = "training"
gpus = 3
duration = { dist = "deterministic", value = 10000 }
arrival = { process = "trace", path = "jobs.csv", time_column = "t" }
"""


def run(tmp_path: Path, training: bool = False, preempt: bool = False) -> RunResult:
    """Three requests at 10 s; with ``training``, a 3-GPU job of 10000 s at 0."""
    (tmp_path / "req.csv").write_text("t\n0\n0\n0\n")
    (tmp_path / "jobs.csv").write_text("t\n0\n")
    text = SCENARIO.format(preempt=str(preempt).lower(), kind="inference", service=INFERENCE)
    if training:
        text += TRAINING
    path = tmp_path / "s.toml"
    path.write_text(text)
    return sim.run(path)


def events_of(result: RunResult, *names: str) -> list[tuple[float, str, int]]:
    """(time, event, id) of the events named, in order."""
    ev = result.frame("events")
    ev = ev[ev["event"].isin(names)]
    times, kinds, ids = ev["time_s"].tolist(), ev["event"].astype(str).tolist(), ev["id"].tolist()
    return list(zip(times, kinds, ids, strict=True))


def test_replicas_serve_after_their_load_and_go_when_idle(tmp_path: Path) -> None:
    """Four 1-GPU nodes; one replica; three 600 s requests at 10 s: request 0 starts on
    replica 0, two wait. At the tick at 60 s the load is 1 held + 2 waiting = 3 replicas at
    target 1: replicas 1 and 2 are added (placed at 60), load 2 min, serve from 180, and take
    requests 1 and 2 (180 to 780). Request 0 ends at 610. Tick at 660: 2 held, want 2, have 3,
    but the only idle replica is 0, one of the first min_replicas (pinned: never removed).
    At 780 requests 1 and 2 end (completions come before decisions at an instant); the tick at
    780 finds nothing held, wants 0, at least 1: replica 2 (idle, highest) is removed; at 840
    replica 1. From then one replica stays (the minimum, replica 0)."""
    result = run(tmp_path)
    req = result.frame("requests").sort_values("request_id")
    assert req["start_s"].tolist() == [10.0, 180.0, 180.0]
    assert req["end_s"].tolist() == [610.0, 780.0, 780.0]
    assert sorted(req["replica"].tolist()) == [0, 1, 2]
    assert events_of(result, "replica_added", "replica_ready", "replica_removed") == [
        (60.0, "replica_added", 1),
        (60.0, "replica_added", 2),
        (180.0, "replica_ready", 1),
        (180.0, "replica_ready", 2),
        (780.0, "replica_removed", 2),
        (840.0, "replica_removed", 1),
    ]


def test_a_scale_up_waits_for_room_without_preemption(tmp_path: Path) -> None:
    """The same requests beside a 3-GPU training job started at 0 (the replica holds the fourth
    GPU): without ``preempt`` no replica can be added; requests run one after another on
    replica 0: 10-610, 610-1210, 1210-1810. The job runs 0 to 10000 untouched."""
    result = run(tmp_path, training=True)
    req = result.frame("requests").sort_values("request_id")
    assert req["start_s"].tolist() == [10.0, 610.0, 1210.0]
    assert events_of(result, "replica_added") == []
    jobs = result.frame("jobs")
    assert jobs["end_s"].tolist() == [10000.0]


def test_a_scale_up_preempts_training_which_gets_the_gpus_back(tmp_path: Path) -> None:
    """As above with ``preempt = true``. At 60 the first new replica finds no room and kills
    the job (cause ``preempted``, 60 s x 3 = 180 GPU-s lost, no checkpoint); both replicas are
    placed at 60 and serve from 180 as in the first case. The job, queued again, needs 3 GPUs:
    at 780 replica 2 is removed (2 free), at 840 replica 1 (3 free): the job starts again at
    840 and ends at 840 + 10000 = 10840."""
    result = run(tmp_path, training=True, preempt=True)
    req = result.frame("requests").sort_values("request_id")
    assert req["start_s"].tolist() == [10.0, 180.0, 180.0]
    jobs = result.frame("jobs").iloc[0]
    assert jobs["lost_gpu_s"] == 180.0
    assert jobs["end_s"] == 10840.0
    assert events_of(result, "job_interrupted", "job_started") == [
        (0.0, "job_started", 0),
        (60.0, "job_interrupted", 0),
        (840.0, "job_started", 0),
    ]
    # GPUs allocated never above the GPUs up, and back to 4 once the job restarts.
    ts = result.frame("timeseries")
    assert (ts["gpus_allocated"] <= ts["gpus_up"]).all()
    assert ts.loc[ts["time_s"] == 900.0, "gpus_allocated"].tolist() == [4]


def refusal(tmp_path: Path, old: str, new: str) -> str:
    """The error of the inference scenario with ``old`` replaced by ``new``."""
    (tmp_path / "req.csv").write_text("t\n0\n")
    text = SCENARIO.format(preempt="false", kind="inference", service=INFERENCE)
    path = tmp_path / "s.toml"
    path.write_text(text.replace(old, new))
    with pytest.raises(ScenarioError) as info:
        sim.run(path)
    return str(info.value)


def test_replicas_outside_the_bounds_are_refused(tmp_path: Path) -> None:
    """``replicas`` must lie within min_replicas and max_replicas: exit 2 naming the key."""
    message = refusal(tmp_path, "replicas = 1\n", "replicas = 5\n")
    assert "autoscale.max_replicas" in message
    assert "workloads" in message


def test_an_llm_service_grows_its_batching_replicas(tmp_path: Path) -> None:
    """``kind = "llm"``: 40 requests at 10 s on one replica (batch of at most 2): the tick at
    60 wants ceil(40 / 1) capped at 3; replicas 1 and 2 are added at 60, serve from 180 and
    take requests from then (none before 180 on them)."""
    (tmp_path / "req.csv").write_text("t\n" + "0\n" * 40)
    service = 'model = "llama-3-8b"\nmax_batch = 2\ninput_tokens = 200\noutput_tokens = 2000'
    text = SCENARIO.format(preempt="false", kind="llm", service=service)
    path = tmp_path / "s.toml"
    path.write_text(text)
    result = sim.run(path)
    req = result.frame("requests")
    new = req[req["replica"] >= 1]
    assert len(new) > 0
    assert (new["start_s"] >= 180.0).all()
    added = events_of(result, "replica_added", "replica_ready")
    assert added[:4] == [
        (60.0, "replica_added", 1),
        (60.0, "replica_added", 2),
        (180.0, "replica_ready", 1),
        (180.0, "replica_ready", 2),
    ]


TTFT_SCENARIO = """
[scenario]
name = "autoscale-ttft"
duration = "90s"
[[pools]]
name = "hall"
gpu_type = "H100-SXM"
nodes = 4
gpus_per_node = 1
[[workloads]]
name = "svc"
kind = "llm"
model = "llama-3-8b"
replicas = 1
max_batch = 1
input_tokens = 200
output_tokens = 2000
arrival = { process = "trace", path = "req.csv", time_column = "t" }
autoscale = { min_replicas = 1, max_replicas = 4, metric = "ttft", target = 15, interval = "1m" }
"""


def test_ttft_metric_scales_in_proportion_to_the_oldest_wait(tmp_path: Path) -> None:
    """One replica serving one request at a time (max_batch 1) for S = prefill(200) + 1,999
    steps ≈ 17.2 s; requests every 5 s from 0 to 55 s. By the tick at 60 s, r0..r3 got their
    first tokens at 0, S, 2S, 3S (+ prefill): mean TTFT ≈ (0 + 12.2 + 24.4 + 36.6) / 4 + p
    ≈ 18.3 s; r4 (arrived at 20 s) still waits, 40 s old. Observed = max(18.3, 40) = 40 s:
    wanted = ceil(1 × 40 / 15) = 3, so replicas 1 and 2 are added at 60 s (the mean alone
    would give ceil(18.3 / 15) = 2: one added)."""
    (tmp_path / "req.csv").write_text("t\n" + "".join(f"{5 * k}\n" for k in range(12)))
    path = tmp_path / "s.toml"
    path.write_text(TTFT_SCENARIO)
    result = sim.run(path)
    added = events_of(result, "replica_added")
    assert added == [(60.0, "replica_added", 1), (60.0, "replica_added", 2)]


def test_ttft_metric_needs_an_llm_workload(tmp_path: Path) -> None:
    """A plain queue has no first token: metric = "ttft" on kind = "inference" is refused."""
    message = refusal(tmp_path, "target = 1,", 'metric = "ttft", target = 1,')
    assert 'metric = "ttft" needs kind = "llm"' in message


LOADING_SCENARIO = """
[scenario]
name = "autoscale-loading"
duration = "20m"
sample_every = 60
[[pools]]
name = "a"
gpu_type = "H100-SXM"
nodes = 1
gpus_per_node = 1
[[pools]]
name = "b"
gpu_type = "H100-SXM"
nodes = 1
gpus_per_node = 1
[[pools]]
name = "c"
gpu_type = "H100-SXM"
nodes = 1
gpus_per_node = 1
[[workloads]]
name = "chat"
kind = "llm"
model = "llama-3-8b"
replicas = 1
max_batch = 8
input_tokens = 100
output_tokens = 4000
arrival = { process = "trace", path = "req.csv", time_column = "t" }
autoscale = { min_replicas = 1, max_replicas = 2, target = 1, interval = "30s", load_time = "5m" }
"""


def test_a_replica_loading_on_a_drained_node_is_removed_not_started_there(
    tmp_path: Path,
) -> None:
    """Replica 1 is added on pool b at 30 s (loading for 5 min); b's node starts draining at
    60 s. When the load ends at 330 s the replica is removed instead of serving on the drained
    node, which then goes down at once; no request ever starts on pool b. (It used to come up
    on b and serve there until a scale-down freed the node.)"""
    (tmp_path / "req.csv").write_text("t\n" + "0\n" * 3 + "".join(f"{6 * k}\n" for k in range(200)))
    text = LOADING_SCENARIO + (
        '[[maintenance]]\ntarget = "pool:b"\nat = "60s"\nduration = "10m"\ndrain = true\n'
        'drain_timeout = "30m"\n'
    )
    path = tmp_path / "s.toml"
    path.write_text(text)
    result = sim.run(path)
    ev = result.frame("events")
    on_b = ev[(ev["pool"] == "b") & (ev["time_s"] < 900)]
    kinds = list(zip(on_b["time_s"], on_b["event"].astype(str), strict=True))
    assert (30.0, "replica_added") in kinds and (330.0, "replica_removed") in kinds
    assert (330.0, "node_down") in kinds
    assert not any(kind == "replica_ready" for t, kind in kinds if t < 900)
    req = result.frame("requests")
    assert not ((req["pool"] == "b") & (req["start_s"] < 900)).any()


def test_a_loading_replica_moved_by_a_failure_keeps_one_load_timer(tmp_path: Path) -> None:
    """Replica 1 is added on pool b at 30 s; b fails at 40 s and the node board places it again
    on c. Its load timer from b must not start it (or anything reusing its number) early, nor
    fail when it fires (it raised KeyError once the number had been reused)."""
    (tmp_path / "req.csv").write_text("t\n0\n0\n0\n75\n75\n75\n")
    text = LOADING_SCENARIO + '[[outages]]\ntarget = "pool:b"\nat = "40s"\nduration = "1h"\n'
    path = tmp_path / "s.toml"
    path.write_text(text)
    result = sim.run(path)
    ready = [e for e in events_of(result, "replica_ready") if e[2] == 1]
    assert all(t >= 330.0 for t, _, _ in ready)
