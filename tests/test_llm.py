"""LLM serving with continuous batching (``kind = "llm"``), end to end through ``sim.run``.

Hand-computed cases (the arithmetic in each docstring, from ``serving_times`` figures), the
light-load reproduction of the Splitwise measurements, the ``max_batch = 1`` equivalence with
the plain queue, trace replay with token columns, the input checks of the command line, the
SLA per objective, the batch and token figures of the summary, the cost of a slow link, and
runs under node failures and a binding grid limit (with the power ledger's audit on).

Every run here is small: the whole file runs in a few seconds.
"""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import sim
from sim.cli import cli
from sim.config import validate_scenario
from sim.config.catalogue import BUILTIN_GPU_TYPES
from sim.config.interconnect import link_of
from sim.config.models import BUILTIN_MODELS
from sim.config.serving import ServingTimes, memory_needed_gb, serving_times
from sim.runner import RunResult

ROOT = Path(__file__).resolve().parent.parent
SPLITWISE_CSV = ROOT / "scenarios" / "data" / "splitwise_perf_model.csv"
HARDWARE = {"h100-80gb": "H100-SXM", "a100-80gb": "A100-80GB"}
"""The CSV's hardware names and their catalogue GPU types."""
PROMPTS = (128, 256, 512, 1024, 2048, 4096, 8192)
"""The prompt sizes of the CSV's batch-1 sweep."""
TERMINAL = {"ok", "rejected", "failed", "timeout", "unfinished"}
"""A request's possible statuses: exactly one of these per row."""


# -- helpers -----------------------------------------------------------------------------------
def times_of(
    model: str = "llama-2-70b", gpu: str = "H100-SXM", tp: int = 2, link: str = "nvlink"
) -> ServingTimes:
    """A replica's serving times in FP16, as the engine gets them."""
    return serving_times(BUILTIN_MODELS[model], "fp16", BUILTIN_GPU_TYPES[gpu], tp, link_of(link))


def pool(
    name: str = "hall", gpu: str = "H100-SXM", nodes: int = 1, per_node: int = 2, **extra: Any
) -> dict[str, Any]:
    return {"name": name, "gpu_type": gpu, "nodes": nodes, "gpus_per_node": per_node, **extra}


def llm(
    name: str = "chat",
    *,
    arrival: dict[str, Any],
    model: str = "llama-2-70b",
    tp: int = 2,
    replicas: int = 1,
    max_batch: int = 64,
    inp: Any = None,
    out: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    """An llm workload (a raw table); ``inp``/``out`` are the token counts, if not traced."""
    w: dict[str, Any] = {
        "name": name,
        "kind": "llm",
        "model": model,
        "replicas": replicas,
        "gpus_per_replica": tp,
        "max_batch": max_batch,
        "arrival": arrival,
        **extra,
    }
    if inp is not None:
        w["input_tokens"] = inp
    if out is not None:
        w["output_tokens"] = out
    return w


def at(*times: float) -> dict[str, Any]:
    return {"process": "at", "times": list(times)}


def every(interval: float, offset: float = 0.0) -> dict[str, Any]:
    return {"process": "deterministic", "interval": interval, "offset": offset}


def traced(path: Path, **columns: str) -> dict[str, Any]:
    return {"process": "trace", "path": str(path), "time_column": "t", "columns": columns}


def scenario(
    pools: list[dict[str, Any]],
    workloads: list[dict[str, Any]],
    duration: float,
    name: str = "llm",
    **meta: Any,
) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "scenario": {"name": name, "duration": duration, **meta},
        "pools": pools,
        "workloads": workloads,
    }
    return raw


def run(raw: dict[str, Any], **kwargs: Any) -> RunResult:
    """Run a raw scenario with the power ledger's audit on."""
    return sim.run(validate_scenario(raw, "test"), audit=True, **kwargs)


def requests_of(result: RunResult, workload: str | None = None) -> pd.DataFrame:
    df = result.frame("requests")
    if workload is not None:
        df = df[df["workload"] == workload]
    return df.sort_values("request_id").reset_index(drop=True)


def write_trace(path: Path, rows: list[tuple[float, int, int]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["t", "inp", "out"])
        writer.writerows(rows)
    return path


def max_held(df: pd.DataFrame) -> int:
    """Most requests held at once by one replica: a sweep over [start, end) intervals."""
    most = 0
    for _, rows in df.dropna(subset=["start_s"]).groupby("replica"):
        marks = sorted(
            [(t, +1) for t in rows["start_s"]] + [(t, -1) for t in rows["end_s"].dropna()],
            key=lambda m: (m[0], m[1]),  # an end before a start at the same instant
        )
        held = 0
        for _, delta in marks:
            held += delta
            most = max(most, held)
    return most


def invoke(*args: str | Path) -> Any:
    return CliRunner().invoke(cli, [str(a) for a in args])


# -- 1. light load reproduces the measured table ------------------------------------------------
def splitwise_medians() -> tuple[dict[tuple[str, int, int], float], dict[tuple[str, int], float]]:
    """From the CSV itself (ms): the median prompt_time at (hardware, tp, prompt, batch 1,
    token_size 128) and the median token_time at (hardware, tp, prompt 512, batch 1, 128)."""
    prompt: dict[tuple[str, int, int], list[float]] = defaultdict(list)
    token: dict[tuple[str, int], list[float]] = defaultdict(list)
    with SPLITWISE_CSV.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["model"] != "llama2-70b" or row["hardware"] not in HARDWARE:
                continue
            if row["batch_size"] != "1" or row["token_size"] != "128":
                continue
            key = (row["hardware"], int(row["tensor_parallel"]))
            prompt[(*key, int(row["prompt_size"]))].append(float(row["prompt_time"]))
            if row["prompt_size"] == "512":
                token[key].append(float(row["token_time"]))
    return (
        {k: statistics.median(v) for k, v in prompt.items()},
        {k: statistics.median(v) for k, v in token.items()},
    )


@cache
def light_load_run() -> RunResult:
    """Every (GPU, tp, prompt) of the sweep as its own workload on its own replica: one request
    of ``prompt`` input and 128 output tokens every 100 s (at 0, 100 and 200 s), alone on its
    replica, so its TTFT is one prefill and its TPOT one decode step with a batch of 1."""
    pools = [
        pool(gpu, gpu=catalogue, nodes=14, per_node=8, interconnect="nvlink")
        for gpu, catalogue in HARDWARE.items()
    ]
    workloads = [
        llm(f"{gpu}-tp{tp}-p{p}", arrival=every(100.0), tp=tp, inp=p, out=128, pool=gpu)
        for gpu in HARDWARE
        for tp in (2, 4, 8)
        for p in PROMPTS
    ]
    return run(scenario(pools, workloads, 250.0))


@pytest.mark.parametrize("hardware", sorted(HARDWARE))
@pytest.mark.parametrize("tp", [2, 4, 8])
def test_light_load_reproduces_the_measured_table(hardware: str, tp: int) -> None:
    """llama-2-70b FP16 on H100-SXM or A100-80GB over NVLink, the measured configurations:
    TTFT = median prompt_time(prompt, batch 1) / 1000 and TPOT = (end - first) / 127 = median
    token_time(512, batch 1) / 1000, to 1e-9, read from the CSV (not from sim's tables)."""
    prompt_ms, token_ms = splitwise_medians()
    df = light_load_run().frame("requests")
    for p in PROMPTS:
        rows = df[df["workload"] == f"{hardware}-tp{tp}-p{p}"]
        assert len(rows) == 3 and (rows["status"] == "ok").all(), p
        np.testing.assert_array_equal(rows["arrival_s"], [0.0, 100.0, 200.0])
        np.testing.assert_array_equal(rows["wait_s"], 0.0)
        assert (rows["input_tokens"] == p).all() and (rows["output_tokens"] == 128).all()
        ttft = prompt_ms[hardware, tp, p] / 1000
        tpot = token_ms[hardware, tp] / 1000
        np.testing.assert_allclose(rows["ttft_s"], ttft, rtol=1e-9, err_msg=f"prompt {p}")
        np.testing.assert_allclose(rows["tpot_s"], tpot, rtol=1e-9, err_msg=f"prompt {p}")
        np.testing.assert_allclose(rows["latency_s"], ttft + 127 * tpot, rtol=1e-9)


# -- 2. KV memory bounds the batch --------------------------------------------------------------
def test_kv_memory_bounds_the_batch_by_hand(tmp_path: Path) -> None:
    """llama-2-70b FP16 on 2 H100-SXM (TP2, NVLink): 2 x 80 GB x 0.90 = 144 GB usable, weights
    137.96 GB, KV (144 - 137.96) x 1e9 / 327,680 B = 18,432.6 -> 18,432 tokens: exactly 4
    requests of 512 + 4,096 = 4,608 tokens (prompt and output both reserved: the prompts alone
    would let 36 in). max_batch = 8 does not bind; the KV memory does.

    Requests 0-4 arrive at 0, 0.01, 0.02, 0.03, 0.04 s. P1 = prefill_s(512) = 0.0838 s.
      r0 prefills alone [0, P1]; r1-r3 are admitted during it (KV 4 x 4,608 = 18,432: full) and
      prefill together after it, [P1, P1 + P3], P3 = prefill_s(3 x 512 = 1,536); r0's decode
      waits meanwhile (prefill first). Then all four decode 4,095 steps together at step_s(4):
      all end at E = P1 + P3 + 4,095 step_s(4) = 0.0838 + 0.2341 + 4,095 x 0.039982 = 164.04 s.
      r4 does not fit (0 KV free) and waits until E: start_s = E (an end_s); it prefills alone
      and decodes alone: first token E + P1, end E + P1 + 4,095 step_s(1).
    Then r5 at 400 s: 17,920 + 512 = 18,432 tokens, the whole KV: served. r6 at 500 s: 17,921 +
    512 = 18,433 tokens > the replica's KV: rejected at arrival, never started.
    """
    t = times_of()
    assert t.kv_capacity_tokens == 18_432 == 4 * 4_608
    p1, p3, s1, s4 = t.prefill_s(512), t.prefill_s(1536), t.step_s(1), t.step_s(4)
    assert p1 > 0.04  # r1-r4 all arrive during r0's prefill
    end = p1 + p3 + 4095 * s4
    assert end == pytest.approx(164.04, abs=0.01)
    rows = [(0.0, 512, 4096), (0.01, 512, 4096), (0.02, 512, 4096), (0.03, 512, 4096)]
    rows += [(0.04, 512, 4096), (400.0, 17_920, 512), (500.0, 17_921, 512)]
    path = write_trace(tmp_path / "burst.csv", rows)
    result = run(
        scenario(
            [pool(interconnect="nvlink")],
            [llm(arrival=traced(path, input_tokens="inp", output_tokens="out"), max_batch=8)],
            600.0,
        )
    )
    df = requests_of(result)
    assert list(df["status"]) == ["ok"] * 6 + ["rejected"]
    np.testing.assert_allclose(df["start_s"][:4], [0.0, 0.01, 0.02, 0.03], atol=1e-12)
    first = df["arrival_s"] + df["ttft_s"]
    np.testing.assert_allclose(first[:4], [p1, p1 + p3, p1 + p3, p1 + p3], rtol=1e-12)
    np.testing.assert_allclose(df["end_s"][:4], end, rtol=1e-12)
    assert df["start_s"][4] == df["end_s"][0]  # the 5th starts at the first completion
    assert df["wait_s"][4] == pytest.approx(end - 0.04, rel=1e-12)
    assert df["arrival_s"][4] + df["ttft_s"][4] == pytest.approx(end + p1, rel=1e-12)
    assert df["end_s"][4] == pytest.approx(end + p1 + 4095 * s1, rel=1e-12)
    assert max_held(df) == 4
    # The request of exactly the KV capacity is served alone; one token more is rejected.
    assert df["start_s"][5] == 400.0
    assert df["end_s"][5] == pytest.approx(400 + t.prefill_s(17_920) + 511 * s1, rel=1e-12)
    assert np.isnan(df["start_s"][6]) and np.isnan(df["end_s"][6])
    assert result.summary["workloads"]["chat"]["requests_rejected"] == 1


# -- 3. max_batch = 1 is the plain queue --------------------------------------------------------
def test_max_batch_one_is_the_plain_queue() -> None:
    """Two replicas of llama-2-70b on 2 H100s each, max_batch = 1, 1,000 input and 200 output
    tokens: each request holds a replica for S = prefill_s(1000) + 199 step_s(1) = 0.1545 +
    199 x 0.0370 = 7.517 s. The same Poisson arrivals (same workload name "chat", same seed;
    0.2 per s, load 0.2 x 7.517 / 2 = 0.75)
    served by a ``kind = "inference"`` workload with a deterministic service of S on the same
    replicas give the same arrival, start and end of every request, and the same replica."""
    t = times_of()
    service = t.prefill_s(1000) + 199 * t.step_s(1)
    assert service == pytest.approx(7.517, abs=1e-3)
    arrival = {"process": "poisson", "rate_per_s": 0.2}
    pools = [pool(nodes=2, interconnect="nvlink")]
    batched = run(
        scenario(pools, [llm(arrival=arrival, replicas=2, max_batch=1, inp=1000, out=200)], 3600.0)
    )
    plain = run(
        scenario(
            pools,
            [
                {
                    "name": "chat",
                    "kind": "inference",
                    "replicas": 2,
                    "gpus_per_replica": 2,
                    "arrival": arrival,
                    "service": {"dist": "deterministic", "value": service},
                }
            ],
            3600.0,
        )
    )
    a, b = requests_of(batched), requests_of(plain)
    assert len(a) == len(b) > 600
    assert (a["wait_s"] > 0).sum() > 100  # the queue matters
    assert list(a["status"]) == list(b["status"])
    for column in ("arrival_s", "start_s", "end_s"):
        np.testing.assert_allclose(a[column], b[column], rtol=0, atol=1e-9, err_msg=column)
    np.testing.assert_array_equal(a["replica"], b["replica"])


# -- 4. continuous batching by hand; 8. mean batch and tokens ---------------------------------
@pytest.fixture(scope="module")
def two_requests(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """One replica of llama-2-70b on 2 H100s; r0 (512 in, 100 out) at 0, r1 (1024 in, 50 out)
    at 1 s, r2 (512 in, 100 out) at 100 s; warm-up 0.5 s, horizon 200 s."""
    rows = [(0.0, 512, 100), (1.0, 1024, 50), (100.0, 512, 100)]
    path = write_trace(tmp_path_factory.mktemp("llm") / "two.csv", rows)
    workload = llm(arrival=traced(path, input_tokens="inp", output_tokens="out"))
    return run(scenario([pool(interconnect="nvlink")], [workload], 200.0, warmup=0.5))


def two_requests_by_hand() -> dict[str, float]:
    """The hand figures of the ``two_requests`` run (see the test's docstring)."""
    t = times_of()
    p512, p1024, s1, s2 = t.prefill_s(512), t.prefill_s(1024), t.step_s(1), t.step_s(2)
    v = (1.0 - p512) / s1  # r0's tokens decoded when r1 arrives
    end1 = 1.0 + p1024 + 49 * s2
    end0 = end1 + (99 - v - 49) * s1
    end2 = 100.0 + p512 + 99 * s1
    return {"p512": p512, "p1024": p1024, "v": v, "end0": end0, "end1": end1, "end2": end2}


def test_continuous_batching_two_requests_by_hand(two_requests: RunResult) -> None:
    """llama-2-70b FP16 on 2 H100-SXM: P(512) = prefill_s(512) = 0.0838 s, P(1024) = 0.1580 s,
    step_s(1) = 0.03700 s, step_s(2) = 0.03739 s.

    r0 (512 in, 100 out) arrives at 0: prefill [0, P(512)], TTFT = P(512); then decodes alone.
    r1 (1024 in, 50 out) arrives at 1 s, while r0 decodes: r0 has had
      v = (1 - P(512)) / step_s(1) = 24.76 of its 99 decode tokens.
    Prefill first: r0's decode pauses for r1's prefill [1, 1 + P(1024)]; TTFT(r1) = P(1024).
    Then both decode at step_s(2) each: r1 needs 49 more tokens, r0 99 - 24.76 = 74.24 > 49, so
      end(r1) = 1 + P(1024) + 49 step_s(2) = 1 + 0.1580 + 1.8321          = 2.9900 s,
      end(r0) = end(r1) + (99 - v - 49) step_s(1) = 2.9900 + 25.2385 x 0.037 = 3.9238 s
      (alone again after end(r1)),
      TPOT(r1) = 49 step_s(2) / 49 = step_s(2),
      TPOT(r0) = (end(r0) - P(512)) / 99.
    """
    h = two_requests_by_hand()
    assert 99 - h["v"] > 49
    df = requests_of(two_requests)
    assert list(df["status"]) == ["ok"] * 3
    np.testing.assert_array_equal(df["start_s"], [0.0, 1.0, 100.0])  # no wait: room in batch
    np.testing.assert_allclose(df["ttft_s"], [h["p512"], h["p1024"], h["p512"]], rtol=1e-12)
    np.testing.assert_allclose(df["end_s"], [h["end0"], h["end1"], h["end2"]], rtol=1e-12)
    assert df["tpot_s"][1] == pytest.approx(times_of().step_s(2), rel=1e-9)
    assert df["tpot_s"][0] == pytest.approx((h["end0"] - h["p512"]) / 99, rel=1e-12)
    assert df["end_s"][0] == pytest.approx(3.9238, abs=1e-4)
    assert df["end_s"][1] == pytest.approx(2.9900, abs=1e-4)


def test_mean_batch_and_tokens_by_hand(two_requests: RunResult) -> None:
    """The run of the test above, warm-up 0.5 s, horizon 200 s, 2 GPUs.

    Requests held (integral from the warm-up): r0 from 0.5 to end(r0), r1 from 1 to end(r1),
    r2 from 100 to end(r2). The replica is busy from 0.5 to end(r0) (r1 ends first) and from
    100 to end(r2), idle in between (not counted). So
      mean_batch = [(end0 - 0.5) + (end1 - 1) + (end2 - 100)] / [(end0 - 0.5) + (end2 - 100)]
                 = (3.4238 + 1.9900 + 3.7468) / (3.4238 + 3.7468) = 1.2775
    (end(r2) = 100 + P(512) + 99 step_s(1) = 103.7468 s).
    Tokens of requests arriving after the warm-up (r1, r2): 50 + 100 = 150 output, 1,024 + 512
    = 1,536 input; tokens_per_s = 150 / 199.5 s; per GPU / 2.
    """
    h = two_requests_by_hand()
    busy = (h["end0"] - 0.5) + (h["end2"] - 100.0)
    held = busy + (h["end1"] - 1.0)
    s = two_requests.summary["workloads"]["chat"]
    assert s["mean_batch"] == pytest.approx(held / busy, rel=1e-10)
    assert s["mean_batch"] == pytest.approx(1.2775, abs=1e-4)
    assert s["output_tokens"] == 150 and s["input_tokens"] == 1536
    assert s["requests_total"] == 2 and s["requests_served"] == 2
    assert s["tokens_per_s"] == pytest.approx(150 / 199.5, rel=1e-10)
    assert s["tokens_per_s_per_gpu"] == pytest.approx(150 / 199.5 / 2, rel=1e-10)
    # The time series counts every served request's output tokens, warm-up or not, in the
    # interval it ends: 100 + 50 in [0, 60 s), 100 in [60, 120 s).
    ws = two_requests.frame("workload_timeseries")
    assert list(ws["output_tokens"]) == [150, 100, 0, 0]
    np.testing.assert_allclose(ws["tokens_per_s"], [150 / 60, 100 / 60, 0.0, 0.0], rtol=1e-12)
    # Per interval, from 0: in [0, 60) r0 and r1 overlap as above (r0 held from 0), so
    # ((end0 - 0) + (end1 - 1)) / end0; in [60, 120) r2 alone: 1; then nothing busy (null).
    first = (h["end0"] + (h["end1"] - 1.0)) / h["end0"]
    np.testing.assert_allclose(ws["mean_batch"][:2], [first, 1.0], rtol=1e-10)
    assert ws["mean_batch"][2:].isna().all()


# -- dispatch: most free KV memory, ties to the lowest number; strict FIFO ----------------------
def test_dispatch_goes_to_the_most_free_kv_ties_to_the_lowest(tmp_path: Path) -> None:
    """Two replicas of llama-2-70b on 2 H100s, 18,432 KV tokens each (input + output below):
      r0 at 0.00 s, 4,096 + 512 = 4,608: both free, a tie -> replica 0 (0: 13,824 free).
      r1 at 0.01 s, 1,000 + 100 = 1,100: 13,824 < 18,432 -> replica 1 (1: 17,332).
      r2 at 0.02 s,   100 + 100 =   200: 13,824 < 17,332 -> replica 1 (1: 17,132), though it
                                          holds more requests (2 against 1).
      r3 at 0.03 s, 8,000 + 1,000 = 9,000: 13,824 < 17,132 -> replica 1 (1: 8,132).
      r4 at 0.04 s,   200 + 100 =   300: 13,824 > 8,132 -> replica 0.
    Nobody waits: each is admitted on arrival.
    """
    rows = [(0.0, 4096, 512), (0.01, 1000, 100), (0.02, 100, 100), (0.03, 8000, 1000)]
    rows += [(0.04, 200, 100)]
    path = write_trace(tmp_path / "five.csv", rows)
    workload = llm(arrival=traced(path, input_tokens="inp", output_tokens="out"), replicas=2)
    df = requests_of(run(scenario([pool(nodes=2, interconnect="nvlink")], [workload], 100.0)))
    assert list(df["replica"]) == [0, 1, 1, 1, 0]
    np.testing.assert_array_equal(df["wait_s"], 0.0)


def test_nothing_overtakes_the_head_that_does_not_fit(tmp_path: Path) -> None:
    """One replica of llama-2-70b on 2 H100s (18,432 KV tokens).
      r0 at 0.0 s: 9,488 + 512 = 10,000 tokens, admitted (8,432 left).
      r1 at 0.1 s: 10,000 tokens, does not fit: waits at the head of the queue.
      r2 at 0.2 s: 900 + 100 = 1,000 tokens would fit, but r1 is the head: r2 waits too.
    At end(r0) both are admitted (r1 first: 8,432 left, then r2: 7,432 left), so
      start(r1) = start(r2) = end(r0)."""
    rows = [(0.0, 9488, 512), (0.1, 9488, 512), (0.2, 900, 100)]
    path = write_trace(tmp_path / "head.csv", rows)
    workload = llm(arrival=traced(path, input_tokens="inp", output_tokens="out"))
    df = requests_of(run(scenario([pool(interconnect="nvlink")], [workload], 200.0)))
    assert list(df["status"]) == ["ok"] * 3
    assert df["start_s"][1] == df["end_s"][0]
    assert df["start_s"][2] == df["end_s"][0]
    assert (df["wait_s"][1:] > 0).all()


# -- 5. trace replay with token columns ---------------------------------------------------------
def test_trace_rows_are_requests_with_their_own_tokens(tmp_path: Path) -> None:
    """Six rows, not in time order, two at the same instant, offset 10 s: row r arrives at
    10 + t_r - 5 (5 s the earliest time) with its own input and output tokens. A count of 0 is
    served as 1 token (at least one)."""
    rows = [
        (7.5, 2000, 5),
        (5.0, 100, 20),
        (7.5, 3, 300),
        (30.0, 700, 1),
        (65.25, 50, 64),
        (12.0, 0, 7),
    ]
    path = write_trace(tmp_path / "replay.csv", rows)
    arrival = traced(path, input_tokens="inp", output_tokens="out") | {"offset": 10.0}
    workload = llm(arrival=arrival, model="llama-3-8b", tp=1)
    result = run(scenario([pool(per_node=1)], [workload], 200.0))
    df = requests_of(result)
    assert len(df) == len(rows) and (df["status"] == "ok").all()
    got = sorted(zip(df["arrival_s"], df["input_tokens"], df["output_tokens"], strict=True))
    expected = sorted((10.0 + t - 5.0, max(i, 1), o) for t, i, o in rows)
    assert got == expected
    np.testing.assert_allclose(np.diff(df["arrival_s"]), np.diff(sorted(r[0] for r in rows)))
    s = result.summary["workloads"]["chat"]
    assert s["input_tokens"] == sum(max(r[1], 1) for r in rows)
    assert s["output_tokens"] == sum(r[2] for r in rows)
    # A one-token request has its first token at its end and no TPOT.
    one = df[df["output_tokens"] == 1].iloc[0]
    assert one["latency_s"] == one["ttft_s"] and np.isnan(one["tpot_s"])


TRACE_SCENARIO = """
[scenario]
name = "replay"
duration = "100s"

[[pools]]
name = "hall"
gpu_type = "H100-SXM"
nodes = 1

[[workloads]]
name = "chat"
kind = "llm"
model = "llama-3-8b"
replicas = 1
arrival = {{ process = "trace", path = "{path}", time_column = "t", columns = {{ input_tokens = "inp", output_tokens = "out" }} }}
"""  # noqa: E501


@pytest.mark.parametrize("column", ["inp", "out"])
def test_a_negative_token_count_exits_2_naming_the_row(tmp_path: Path, column: str) -> None:
    """Line 3 of the CSV (the header is line 1) has -3 tokens: exit 2, naming the key, the
    column, the line and the value; no run directory is written."""
    rows = [(0.0, 100, 10), (5.0, -3 if column == "inp" else 20, -3 if column == "out" else 10)]
    rows += [(9.0, 20, 0)]
    path = write_trace(tmp_path / "neg.csv", rows)
    scn = tmp_path / "neg.toml"
    scn.write_text(TRACE_SCENARIO.format(path=path.name))
    result = invoke("run", scn, "--out", tmp_path / "out", "-q")
    assert result.exit_code == 2, result.output
    mark = {"inp": "input_tokens", "out": "output_tokens"}[column]
    assert f"workloads.chat.arrival.columns.{mark}" in result.output
    assert f"column '{column}'" in result.output
    assert "line 3: '-3'" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "summary.json").exists()


# -- 6. a model that does not fit ---------------------------------------------------------------
FIT_SCENARIO = """
[scenario]
name = "fit"
duration = "100s"

[[pools]]
name = "hall"
gpu_type = "{gpu}"
nodes = 1
gpus_per_node = {tp}

[[workloads]]
name = "big"
kind = "llm"
model = "{model}"
replicas = 1
gpus_per_replica = {tp}
arrival = {{ process = "deterministic", interval = "10s" }}
input_tokens = 100
output_tokens = 10
"""


def test_a_model_that_does_not_fit_is_refused_with_the_memory_it_needs(tmp_path: Path) -> None:
    """llama-2-70b FP16: 68.98 B x 2 B = 137.96 GB of weights, / 0.90 = 153.3 GB needed; 4
    RTX-3090 have 4 x 24 = 96 GB: exit 2 for validate and run, naming workloads.big.model and
    153.3 GB. On 8 H100-SXM (640 GB) it validates."""
    need = memory_needed_gb(BUILTIN_MODELS["llama-2-70b"], "fp16", 4)
    assert f"{need:.1f}" == "153.3"
    small = tmp_path / "small.toml"
    small.write_text(FIT_SCENARIO.format(gpu="RTX-3090", tp=4, model="llama-2-70b"))
    for args in (("validate", small), ("run", small, "--out", tmp_path / "out", "-q")):
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "workloads.big.model" in result.output
        assert "153.3 GB" in result.output
        assert "96 GB" in result.output
    big = tmp_path / "big.toml"
    big.write_text(FIT_SCENARIO.format(gpu="H100-SXM", tp=8, model="llama-2-70b"))
    result = invoke("validate", big)
    assert result.exit_code == 0, result.output


def test_an_unknown_model_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "unknown.toml"
    path.write_text(FIT_SCENARIO.format(gpu="H100-SXM", tp=8, model="llama2-70b"))
    result = invoke("validate", path)
    assert result.exit_code == 2, result.output
    assert "workloads.big.model" in result.output
    assert "'llama2-70b'" in result.output and "did you mean 'llama-2-70b'" in result.output


# -- 7. SLA per objective -----------------------------------------------------------------------
def test_sla_per_objective_by_hand(tmp_path: Path) -> None:
    """Five requests 100 s apart, each alone on its replica (llama-2-70b, 2 H100s each):
    prompts 512, 512, 512, 8,192 and 512 tokens, outputs 128, 128, 128, 128 and 1. So
    TTFT = prefill_s(512) = 0.084 s or prefill_s(8192) = 1.34 s; TPOT = step_s(1) = 0.0370 s
    (none for the one-token request, which meets any TPOT); latency at most 1.34 + 127 x 0.037
    = 6.04 s.

    "strict-ttft" (TTFT 0.5 s, TPOT 40 ms, latency 10 s): the 8,192-token prompt misses TTFT;
      TTFT 4/5, TPOT 5/5, latency 5/5, SLA 4/5.
    "strict-tpot" (TTFT 2 s, TPOT 30 ms): TTFT met by all; TPOT missed by all but the
      one-token request: TTFT 5/5, TPOT 1/5, latency not set (null), SLA 1/5.
    """
    t = times_of()
    assert t.prefill_s(8192) > 0.5 > t.prefill_s(512) and t.prefill_s(8192) < 2.0
    assert 0.030 < t.step_s(1) < 0.040
    assert t.prefill_s(8192) + 127 * t.step_s(1) < 10.0
    rows = [(0.0, 512, 128), (100.0, 512, 128), (200.0, 512, 128), (300.0, 8192, 128)]
    rows += [(400.0, 512, 1)]
    path = write_trace(tmp_path / "sla.csv", rows)
    arrival = traced(path, input_tokens="inp", output_tokens="out")
    workloads = [
        llm("strict-ttft", arrival=arrival, sla={"ttft": "0.5s", "tpot": "40ms", "latency": "10s"}),
        llm("strict-tpot", arrival=arrival, sla={"ttft": "2s", "tpot": "30ms"}),
    ]
    result = run(scenario([pool(per_node=4, interconnect="nvlink")], workloads, 500.0))
    a = requests_of(result, "strict-ttft")
    b = requests_of(result, "strict-tpot")
    assert list(a["sla_met"]) == [True, True, True, False, True]
    assert list(b["sla_met"]) == [False, False, False, False, True]
    sa = result.summary["workloads"]["strict-ttft"]
    sb = result.summary["workloads"]["strict-tpot"]
    assert (sa["sla_ttft_attainment"], sa["sla_tpot_attainment"]) == (0.8, 1.0)
    assert (sa["sla_latency_attainment"], sa["sla_attainment"]) == (1.0, 0.8)
    assert (sb["sla_ttft_attainment"], sb["sla_tpot_attainment"]) == (1.0, 0.2)
    assert sb["sla_latency_attainment"] is None and sb["sla_attainment"] == 0.2
    assert (sa["sla_ttft_s"], sa["sla_tpot_s"], sa["sla_latency_s"]) == (0.5, 0.04, 10.0)


# -- 9. interconnect ----------------------------------------------------------------------------
def test_risers_cost_the_all_reduce_difference_per_token() -> None:
    """llama-3-8b FP16 on 4 RTX-3090 (TP4), on PCIe 4.0 x16 in one pool and on x1 risers in the
    other; one request of 1,000 input and 64 output tokens every 100 s on each, alone.
    TTFT = prefill_s(1000) and TPOT = step_s(1) of each link, so
      TPOT(riser) - TPOT(pcie) = allreduce_extra_s(1) on risers - that on PCIe (~0.77 ms),
      TTFT(riser) - TTFT(pcie) = allreduce_extra_s(1000) on risers - that on PCIe.
    By hand: 2 x 32 layers = 64 all-reduces of 4,096 FP16 values per token over 4 GPUs (a ring:
    each GPU moves 6/4 x 8,192 = 12,288 B per token; the same 6 hops of latency on both links):
      riser 0.98462 GB/s: 12,288 / 0.98462e9 = 12.480 us; PCIe 31.508 GB/s: 0.390 us;
      per token 64 x 12.090 us = 0.7738 ms; per 1,000-token prompt 0.7738 s.
    """
    riser, pcie = (
        times_of("llama-3-8b", "RTX-3090", 4, "riser"),
        times_of("llama-3-8b", "RTX-3090", 4, "pcie"),
    )
    per_token = riser.allreduce_extra_s(1) - pcie.allreduce_extra_s(1)
    per_prompt = riser.allreduce_extra_s(1000) - pcie.allreduce_extra_s(1000)
    riser_gbs, pcie_gbs = 8 * 128 / 130 / 8, 16 * 16 * 128 / 130 / 8
    by_hand = 64 * 12_288 * (1 / riser_gbs - 1 / pcie_gbs) / 1e9
    assert per_token == pytest.approx(by_hand, rel=1e-9)
    assert per_token == pytest.approx(0.7738e-3, rel=1e-4)
    assert per_prompt == pytest.approx(1000 * by_hand, rel=1e-9)
    pools = [
        pool("risers", gpu="RTX-3090", per_node=4, interconnect="riser"),
        pool("pcie", gpu="RTX-3090", per_node=4, interconnect="pcie"),
    ]
    workloads = [
        llm(name, arrival=every(100.0), model="llama-3-8b", tp=4, inp=1000, out=64, pool=name)
        for name in ("risers", "pcie")
    ]
    result = run(scenario(pools, workloads, 300.0))
    r, p = requests_of(result, "risers"), requests_of(result, "pcie")
    assert len(r) == len(p) == 3
    np.testing.assert_allclose(r["tpot_s"], riser.step_s(1), rtol=1e-9)
    np.testing.assert_allclose(p["tpot_s"], pcie.step_s(1), rtol=1e-9)
    np.testing.assert_allclose(r["ttft_s"], riser.prefill_s(1000), rtol=1e-12)
    np.testing.assert_allclose(p["ttft_s"], pcie.prefill_s(1000), rtol=1e-12)
    np.testing.assert_allclose(r["tpot_s"] - p["tpot_s"], per_token, rtol=1e-8)
    np.testing.assert_allclose(r["ttft_s"] - p["ttft_s"], per_prompt, rtol=1e-12)


# -- 10. failures and a binding power limit -----------------------------------------------------
def max_kv_held(df: pd.DataFrame, horizon: float) -> int:
    """Most KV tokens (input + output) held at once by one replica, over [start, end)."""
    most = 0
    for _, rows in df.dropna(subset=["start_s"]).groupby("replica"):
        size = rows["input_tokens"] + rows["output_tokens"]
        ends = rows["end_s"].fillna(horizon)
        marks = sorted([*zip(ends, -size, strict=True), *zip(rows["start_s"], size, strict=True)])
        held = 0
        for _, delta in marks:
            held += int(delta)
            most = max(most, held)
    return most


def check_requests(result: RunResult, max_batch: int) -> pd.DataFrame:
    """What holds of every llm run: each request in exactly one terminal status, counted once
    in the summary; served ones in order arrival <= start < first token <= end <= horizon with
    TTFT at least their own prefill; no replica over max_batch or its KV memory."""
    horizon = result.scenario.scenario.duration_s
    df = requests_of(result)
    assert df["request_id"].is_unique
    assert df["status"].notna().all() and set(df["status"].astype(str)) <= TERMINAL
    s = result.summary["workloads"]["chat"]
    counts = df["status"].astype(str).value_counts()
    assert s["requests_total"] == len(df)
    for status, key in [
        ("ok", "requests_served"),
        ("rejected", "requests_rejected"),
        ("failed", "requests_failed"),
        ("timeout", "requests_timed_out"),
        ("unfinished", "requests_unfinished"),
    ]:
        assert s[key] == counts.get(status, 0), status
    ok = df[df["status"] == "ok"]
    first = ok["arrival_s"] + ok["ttft_s"]
    assert (ok["start_s"] >= ok["arrival_s"]).all() and (first > ok["start_s"]).all()
    assert (ok["end_s"] >= first - 1e-9).all() and (ok["end_s"] <= horizon).all()
    t = times_of()
    own = np.array([t.prefill_s(int(n)) for n in ok["input_tokens"]])
    assert (ok["ttft_s"].to_numpy() >= own - 1e-9).all()  # times of ~1e3 s: rounding
    assert s["output_tokens"] == ok["output_tokens"].sum()
    assert (df.loc[df["status"] == "rejected", "start_s"].isna()).all()
    assert max_held(df) <= max_batch
    assert max_kv_held(df, horizon) <= t.kv_capacity_tokens
    return df


TOKENS: dict[str, Any] = {
    "inp": {"dist": "exponential", "mean": 1000},
    "out": {"dist": "exponential", "mean": 400},
}


def test_node_failures_retry_requests_once() -> None:
    """Four 2-GPU nodes, each failing every 20 min on average (repaired in 5 min), under four
    llama-2-70b replicas (max_batch 16, 18,432 KV tokens) at 0.5 requests per s for 2 h, with
    retries = 1 and the ledger's audit on: requests lost with their replica are queued again
    once (attempts 2) and fail the second time; every request ends in one status."""
    raw = scenario(
        [pool(nodes=4, interconnect="nvlink", mtbf="20m", repair="5m")],
        [
            llm(
                arrival={"process": "poisson", "rate_per_s": 0.5},
                replicas=4,
                max_batch=16,
                retries=1,
                **TOKENS,
            )
        ],
        7200.0,
    )
    result = run(raw, seed=3)
    df = check_requests(result, 16)
    events = result.frame("events")["event"].astype(str)
    assert (events == "replica_down").sum() >= 5
    assert set(df["attempts"]) == {1, 2}
    failed = df[df["status"] == "failed"]
    assert len(failed) > 0 and (failed["attempts"] == 2).all()
    assert failed["ttft_s"].isna().all()  # the first token of a lost attempt is forgotten
    retried = df[(df["attempts"] == 2) & (df["status"] == "ok")]
    assert len(retried) > 10 and (retried["start_s"] > retried["arrival_s"]).all()


def test_a_binding_limit_holds_caps_and_suspends_replicas() -> None:
    """One 8-H100 node (idle 560 W), four llama-2-70b replicas (each 2 x 630 W more when busy),
    PUE 1: a 4 kW grid holds requests back (at most two replicas busy: 560 + 2 x 1,260 = 3,080
    W), and a 1 kW curtailment from 20 to 30 min caps the GPUs and then suspends replicas.
    The run completes under the ledger's audit; every request ends in one status."""
    raw = scenario(
        [pool(nodes=1, per_node=8, interconnect="nvlink")],
        [
            llm(
                arrival={"process": "poisson", "rate_per_s": 0.5},
                replicas=4,
                max_batch=16,
                max_queue=50,
                timeout="5m",
                **TOKENS,
            )
        ],
        3600.0,
    )
    raw["facility"] = {
        "pue": 1.0,
        "grid_mw": 0.004,
        "curtailments": [{"at": "20m", "duration": "10m", "limit_mw": 0.001}],
    }
    result = run(raw, seed=3)
    check_requests(result, 16)
    s = result.summary
    assert s["throttled_gpu_hours"] > 0 and s["suspended_gpu_hours"] > 0
    assert s["limit_headroom_min_kw"] >= 0
    events = result.frame("events")["event"].astype(str)
    assert (events == "replica_suspended").sum() >= 1 and (events == "replica_resumed").sum() >= 1
    ts = result.frame("timeseries")
    assert (ts["it_power_kw"] <= ts["power_limit_kw"] * (1 + 1e-9)).all()


def test_a_power_cap_slows_prefill_and_decode_alike() -> None:
    """Two H100-SXM capped at 350 W of 700 (share 0.50): the inference cap curve gives
    0.65 + (0.83 - 0.65) x (0.50 - 0.40) / (0.55 - 0.40) = 0.77 of the uncapped speed. One
    llama-2-70b request (1,000 in, 100 out) every 100 s, alone: TTFT = prefill_s(1000) / 0.77,
    TPOT = step_s(1) / 0.77."""
    t = times_of()
    speed = 0.65 + (0.83 - 0.65) * (0.50 - 0.40) / (0.55 - 0.40)
    assert speed == pytest.approx(0.77)
    workload = llm(arrival=every(100.0), inp=1000, out=100)
    result = run(scenario([pool(interconnect="nvlink", power_cap_w=350.0)], [workload], 300.0))
    df = requests_of(result)
    assert len(df) == 3 and (df["status"] == "ok").all()
    np.testing.assert_allclose(df["ttft_s"], t.prefill_s(1000) / speed, rtol=1e-9)
    np.testing.assert_allclose(df["tpot_s"], t.step_s(1) / speed, rtol=1e-9)


# -- regressions of two bugs found by these tests ------------------------------------------------
def test_mean_batch_never_exceeds_max_batch_when_a_replica_is_suspended() -> None:
    """One replica (2 H100s, max_batch 2) holds two requests (100 in, 3,000 out) from 0 and
    1 s; a 0.2 kW curtailment from 10 s to 1,010 s (PUE 1: the two GPUs draw 140 W idle, and
    400 W busy even at their lowest cap of 200 W) suspends it for 1,000 s; then it finishes
    both, at about 1,112 and 1,113 s.
    Held request-seconds: about 1,112 + 1,112 = 2,224; busy replica-seconds (not suspended):
    10 + 103 = 113. Counting held requests while their replica was suspended gave
    2,224 / 113 = 19.7 requests per busy replica, with max_batch = 2 (the bug). Leaving the
    paused time out of both gives 224 / 113 = 1.98."""
    workload = llm(arrival=at(0.0, 1.0), max_batch=2, inp=100, out=3000)
    raw = scenario([pool(interconnect="nvlink")], [workload], 2000.0)
    raw["facility"] = {
        "pue": 1.0,
        "grid_mw": 1.0,
        "curtailments": [{"at": "10s", "duration": "1000s", "limit_mw": 0.0002}],
    }
    result = run(raw)
    assert result.summary["suspended_gpu_hours"] == pytest.approx(2 * 1000 / 3600)
    df = requests_of(result)
    assert list(df["status"]) == ["ok", "ok"]
    assert 1.9 <= result.summary["workloads"]["chat"]["mean_batch"] <= 2.0


def test_requests_admitted_together_prefill_together() -> None:
    """Three requests of 1,000 input and 10 output tokens arrive at 0 s at one idle replica
    (llama-2-70b, 2 H100s). The engine's and README's rule: "Requests admitted while the
    replica is not prefilling start a prefill at once, all together, for prefill_s(their
    prompt tokens)". So one prefill of 3,000 tokens: every TTFT = prefill_s(3000) = 0.4648 s.
    The bug gave r0 a prefill of its own, prefill_s(1000) = 0.1545 s, and r1 and r2 a second
    one after it, 0.1545 + prefill_s(2000) = 0.4576 s."""
    t = times_of()
    workload = llm(arrival=at(0.0, 0.0, 0.0), inp=1000, out=10)
    df = requests_of(run(scenario([pool(interconnect="nvlink")], [workload], 100.0)))
    np.testing.assert_allclose(df["ttft_s"], t.prefill_s(3000), rtol=1e-12)


def test_requests_still_held_at_the_horizon_count_in_the_last_interval() -> None:
    """Two requests (100 in, 9,000 out: 18,200 of the replica's 18,432 KV tokens) arrive at 0
    and 1 s at one replica (llama-2-70b, 2 H100s) and are still decoding at the 120 s horizon
    (9,000 steps of at least 37 ms; sample_every 60 s). Both intervals
    close with both requests held: [0, 60): (60 + 59) request-seconds over 60 busy seconds;
    [60, 120): 2 requests over the whole interval, a mean batch of exactly 2. Nothing is
    served, so the summary's mean batch is (120 + 119) / 120."""
    workload = llm(arrival=at(0.0, 1.0), inp=100, out=9_000)
    result = run(scenario([pool(interconnect="nvlink")], [workload], 120.0))
    ws = result.frame("workload_timeseries")
    np.testing.assert_allclose(ws["mean_batch"], [119 / 60, 2.0], rtol=1e-12)
    assert list(requests_of(result)["status"]) == ["unfinished", "unfinished"]
    mean = result.summary["workloads"]["chat"]["mean_batch"]
    assert mean == pytest.approx(239 / 120, rel=1e-10)


def test_a_request_held_for_power_counts_once() -> None:
    """Two one-GPU H100 nodes under a grid that feeds about one busy GPU, two replicas serving
    one request at a time: arrivals finding the idle replica held back by the ledger count in
    ``requests_held`` once each, as for the plain queue, not again at every later dispatch
    while they wait (it counted 692 held for 311 requests)."""
    gpu = BUILTIN_GPU_TYPES["H100-SXM"]
    busy_one_w = 2 * (gpu.idle_w + 100) + (gpu.peak_w - gpu.idle_w)
    workload = llm(
        arrival={"process": "poisson", "rate_per_s": 0.5},
        model="llama-3-8b",
        tp=1,
        replicas=2,
        max_batch=1,
        inp=100,
        out=300,
    )
    raw = scenario([pool(nodes=2, per_node=1, node_overhead_w=100.0)], [workload], 600.0, seed=1)
    raw["facility"] = {"pue": 1.0, "grid_mw": (busy_one_w + 50) / 1e6}
    result = run(raw)
    grid = result.frame("limits")
    held = int(grid.loc[grid["source"] == "grid", "requests_held"].iloc[0])
    assert 0 < held <= len(result.frame("requests"))
