"""Results against queueing theory and exact power integrals, after warm-up, with fixed seeds.

Statistical checks use the method of batch means: the requests that arrive after the warm-up
(and early enough that none can still be waiting at the horizon) are cut, by arrival, into
``BATCHES`` consecutive batches; the batch averages are close to independent and normal, so

    mean ± t(0.995, k - 1) · s / √k        (s: standard deviation of the k batch averages)

is a 99 % confidence interval for the long-run value, and the formula's value must lie in it.
Time averages (utilisation, queue length) are batched the same way over ``TIME_BATCHES``
equal time slices whose edges are sample times.
The Student t quantile is computed here (SciPy is not a dependency) and checked against tables.
"""

from __future__ import annotations

import math
import tomllib
from functools import cache

import numpy as np
import pandas as pd
import pytest
from conftest import SCENARIOS
from conftest import mmc_text as base_mmc_text

import sim
from sim.config import validate_scenario
from sim.config.catalogue import BUILTIN_GPU_TYPES
from sim.runner import RunResult

BATCHES = 25
TIME_BATCHES = 20
CONFIDENCE = 0.99
TAIL_MARGIN_S = 120.0
"""Requests arriving this close to the horizon are left out, so that none is cut off unserved."""


# -- theory -----------------------------------------------------------------------------------
def erlang_b(c: int, a: float) -> float:
    """Erlang B blocking probability of M/M/c/c with offered load a = λ/μ.

    B(c, a) = (a^c / c!) / Σ_{k=0..c} a^k / k!, computed with the stable recursion
    B(0) = 1, B(k) = a·B(k-1) / (k + a·B(k-1)).
    """
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(c: int, a: float) -> float:
    """Erlang C probability of waiting in M/M/c with a = λ/μ < c, ρ = a/c.

    C(c, a) = [a^c/c! · c/(c-a)] / [Σ_{k<c} a^k/k! + a^c/c! · c/(c-a)]
            = B / (1 - ρ + ρ·B)     with B = B(c, a).
    """
    b = erlang_b(c, a)
    rho = a / c
    return b / (1.0 - rho + rho * b)


def mmc_wq(c: int, lam: float, mu: float) -> float:
    """Mean wait in queue of M/M/c: Wq = C(c, λ/μ) / (c·μ - λ)."""
    return erlang_c(c, lam / mu) / (c * mu - lam)


def mmck_blocking(c: int, k: int, a: float) -> float:
    """Blocking probability of M/M/c/K (K = c + queue places), by PASTA equal to p_K.

    p_n ∝ a^n / n!                for n ≤ c,
    p_n ∝ a^c / c! · (a/c)^(n-c)  for c < n ≤ K.
    """
    weights = [a**n / math.factorial(n) for n in range(c + 1)]
    weights += [a**c / math.factorial(c) * (a / c) ** (n - c) for n in range(c + 1, k + 1)]
    return weights[-1] / sum(weights)


def student_t_quantile(p: float, df: int) -> float:
    """The p-quantile (p > 0.5) of Student's t with df degrees of freedom.

    F(x) = 1/2 + ∫_0^x f(u) du with f(u) = Γ((ν+1)/2) / (√(νπ) Γ(ν/2)) · (1 + u²/ν)^(-(ν+1)/2),
    integrated by Simpson's rule (2,000 panels) and inverted by bisection.
    """
    nu = float(df)
    const = math.exp(math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2)) / math.sqrt(nu * math.pi)

    def cdf(x: float) -> float:
        u = np.linspace(0.0, x, 2001)
        f = const * (1.0 + u * u / nu) ** (-(nu + 1) / 2)
        h = x / 2000
        return 0.5 + h / 3 * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum())

    lo, hi = 0.0, 50.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2


# -- statistics ------------------------------------------------------------------------------
def batch_ci(values: np.ndarray, batches: int = BATCHES) -> tuple[float, float]:
    """(mean, half-width of the 99 % CI) by batch means over consecutive values."""
    means = np.array([chunk.mean() for chunk in np.array_split(values, batches)])
    t = student_t_quantile(1 - (1 - CONFIDENCE) / 2, batches - 1)
    return float(means.mean()), float(t * means.std(ddof=1) / math.sqrt(batches))


def time_batch_ci(per_batch: np.ndarray) -> tuple[float, float]:
    """(mean, half-width of the 99 % CI) of per-time-slice averages (one value per batch)."""
    k = len(per_batch)
    t = student_t_quantile(1 - (1 - CONFIDENCE) / 2, k - 1)
    return float(per_batch.mean()), float(t * per_batch.std(ddof=1) / math.sqrt(k))


def utilization_slices(result: RunResult, slices: int = TIME_BATCHES) -> np.ndarray:
    """Site utilisation (Δgpu_busy_hours / Δgpu_up_hours) of each of ``slices`` equal time slices
    from the warm-up, each a whole number of sampling intervals long and as long as fits in the
    window; their edges must be sample times."""
    meta = result.scenario.scenario
    step = meta.sample_every_s
    length = math.floor((meta.duration_s - meta.warmup_s) / slices / step) * step
    assert length > 0, "too few samples for that many slices"
    edges = meta.warmup_s + length * np.arange(slices + 1)
    at = result.frame("timeseries").set_index("time_s")
    assert np.isin(edges, at.index.to_numpy()).all(), "slice edges must be sample times"
    busy = np.diff(at.loc[edges, "gpu_busy_hours"].to_numpy())
    up = np.diff(at.loc[edges, "gpu_up_hours"].to_numpy())
    return busy / up


def steady_requests(result: RunResult) -> pd.DataFrame:
    """Requests arriving in [warm-up, horizon - margin), in arrival order; all must be done."""
    meta = result.scenario.scenario
    df = result.frame("requests").sort_values("arrival_s", kind="stable")
    df = df[
        (df["arrival_s"] >= meta.warmup_s) & (df["arrival_s"] < meta.duration_s - TAIL_MARGIN_S)
    ]
    assert (df["status"] != "unfinished").all(), "a request near the end was left unserved"
    return df


def mmc_text(
    c: int,
    rate: float,
    mean: float,
    duration: str,
    warmup: str,
    sample_every: str = "1m",
    max_queue: int | None = None,
) -> str:
    """conftest's M/M/c scenario with a sampling interval and an optional queue limit."""
    text = base_mmc_text(c=c, rate=rate, mean=mean, duration=duration, warmup=warmup)
    text = text.replace("warmup = ", f'sample_every = "{sample_every}"\nwarmup = ', 1)
    if max_queue is not None:
        text += f"max_queue = {max_queue}\n"
    return text


def run_toml(text: str, seed: int = 0) -> RunResult:
    """Validate TOML text in memory and run it with ``seed``."""
    return sim.run(validate_scenario(tomllib.loads(text), "test"), seed=seed)


# -- runs shared by several tests (each is deterministic, so cached per session) --------------
MMC_CASES = {
    # name: (c, λ per s, mean service s, duration, warmup)
    "mm4-rho0.8": (4, 3.2, 1.0, "1d", "10m"),
    "mm8-rho0.9": (8, 7.2, 1.0, "1d", "10m"),
}


@cache
def mmc_run(name: str) -> RunResult:
    """One of MMC_CASES; mm8-rho0.9 is scenarios/mmc.toml itself, with a longer horizon."""
    c, lam, mean, duration, warmup = MMC_CASES[name]
    if name == "mm8-rho0.9":
        overrides = [f'scenario.duration="{duration}"', 'scenario.sample_every="10s"']
        return sim.run(SCENARIOS / "mmc.toml", seed=11, overrides=overrides)
    return run_toml(mmc_text(c, lam, mean, duration, warmup, sample_every="10s"), seed=3)


# -- the tools themselves ------------------------------------------------------------------------
def test_student_t_quantile_matches_tables() -> None:
    for p, df, table in [
        (0.995, 19, 2.861),
        (0.995, 24, 2.797),
        (0.995, 29, 2.756),
        (0.975, 10, 2.228),
        (0.95, 5, 2.015),
    ]:
        assert student_t_quantile(p, df) == pytest.approx(table, abs=5e-4)


def test_erlang_formulas_match_published_values() -> None:
    """M/M/8 at ρ = 0.9 (scenarios/mmc.toml): P(wait) = 0.7015, Wq = 0.877 s; B(4, 3) = 0.2061."""
    assert erlang_c(8, 7.2) == pytest.approx(0.7015, abs=5e-5)
    assert mmc_wq(8, 7.2, 1.0) == pytest.approx(0.877, abs=5e-4)
    assert erlang_b(4, 3.0) == pytest.approx(27 / 8 / (1 + 3 + 4.5 + 4.5 + 27 / 8))
    # M/M/c/K with no waiting room is M/M/c/c.
    assert mmck_blocking(4, 4, 3.0) == pytest.approx(erlang_b(4, 3.0))


def test_mmc_scenario_file_matches_its_comment() -> None:
    scn = sim.load_scenario(SCENARIOS / "mmc.toml")
    (wl,) = scn.workloads
    assert (wl.replicas, wl.arrival.rate_hz, wl.service.mean_s) == (8, 7.2, 1.0)  # type: ignore[union-attr]


# -- M/M/c against Erlang C -----------------------------------------------------------------------
@pytest.mark.parametrize("name", list(MMC_CASES))
def test_mmc_wait_probability_and_mean_wait_match_erlang_c(name: str) -> None:
    """P(W > 0) = C(c, a) and Wq = C(c, a) / (cμ - λ), with a = λ/μ, each inside its 99 % CI."""
    c, lam, mean, _, _ = MMC_CASES[name]
    df = steady_requests(mmc_run(name))
    wait = df["wait_s"].to_numpy(dtype=float)
    assert len(wait) > 50_000

    p_wait, p_half = batch_ci((wait > 0).astype(float))
    p_theory = erlang_c(c, lam * mean)
    assert abs(p_wait - p_theory) <= p_half, (p_wait, p_half, p_theory)
    assert p_half < 0.04 * p_theory  # the interval is narrow enough to mean something

    wq, wq_half = batch_ci(wait)
    wq_theory = mmc_wq(c, lam, 1.0 / mean)
    assert abs(wq - wq_theory) <= wq_half, (wq, wq_half, wq_theory)
    assert wq_half < 0.15 * wq_theory


@pytest.mark.parametrize("name", list(MMC_CASES))
def test_mmc_utilization_matches_rho(name: str) -> None:
    """Busy share of the GPUs = ρ = λ/(cμ): summary gpu_utilization inside the 99 % CI of ρ.

    The window [warm-up, horizon] is cut into TIME_BATCHES equal time slices (sample boundaries);
    each slice's utilisation is Δgpu_busy_hours / Δgpu_up_hours from the time series.
    """
    c, lam, mean, _, _ = MMC_CASES[name]
    result = mmc_run(name)
    rho = lam * mean / c
    mean_util, half = time_batch_ci(utilization_slices(result))
    assert result.summary["gpu_utilization"] == pytest.approx(mean_util, rel=1e-9)
    assert abs(result.summary["gpu_utilization"] - rho) <= half, (mean_util, half, rho)
    assert half < 0.02


# -- Little's law -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(MMC_CASES))
def test_littles_law_on_the_queue(name: str) -> None:
    """Lq = λ·Wq: the time-average of requests_waiting (sampled every 10 s) against λ·Wq.

    Over each of TIME_BATCHES equal time slices of the window, D = (mean of the requests_waiting
    samples in the slice) - (Σ waits of the requests arriving in the slice) / (slice length);
    Little's law says E[D] = 0, so 0 must lie in the 99 % CI of D's batch mean. The overall
    estimates of Lq by both routes must also lie within their CIs of Erlang C's λ·Wq.
    """
    c, lam, mean, _, _ = MMC_CASES[name]
    result = mmc_run(name)
    meta = result.scenario.scenario
    ts = result.frame("timeseries")
    ts = ts[ts["time_s"] < meta.duration_s]  # the horizon row closes the last slice
    req = result.frame("requests")
    edges = np.linspace(meta.warmup_s, meta.duration_s, TIME_BATCHES + 1)
    length = edges[1] - edges[0]

    sample_slice = np.searchsorted(edges, ts["time_s"].to_numpy(), side="right") - 1
    waiting = ts["requests_waiting"].to_numpy(dtype=float)
    lq_samples = np.array([waiting[sample_slice == b].mean() for b in range(TIME_BATCHES)])

    arrival = req["arrival_s"].to_numpy()
    wait = req["wait_s"].to_numpy(dtype=float, na_value=np.nan)
    # A request still waiting at the horizon has waited (so far) until the horizon.
    wait = np.where(np.isnan(wait), meta.duration_s - arrival, wait)
    req_slice = np.searchsorted(edges, arrival, side="right") - 1
    lam_wq = np.array([wait[req_slice == b].sum() / length for b in range(TIME_BATCHES)])

    diff, diff_half = time_batch_ci(lq_samples - lam_wq)
    assert abs(diff) <= diff_half, (diff, diff_half)

    lq_theory = lam * mmc_wq(c, lam, 1.0 / mean)
    for estimate in (lq_samples, lam_wq):
        value, half = time_batch_ci(estimate)
        assert abs(value - lq_theory) <= half, (value, half, lq_theory)
        assert half < 0.2 * lq_theory


# -- Erlang B and finite queues ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("c", "lam", "max_queue"),
    [(4, 3.0, 0), (8, 7.2, 0), (4, 3.2, 3)],
    ids=["mm4/4-a3", "mm8/8-a7.2", "mm4/7-a3.2"],
)
def test_rejected_share_matches_blocking_probability(c: int, lam: float, max_queue: int) -> None:
    """With max_queue = q the queue is M/M/c/(c+q); arrivals see time averages (PASTA), so the
    share of ``rejected`` requests is p_(c+q): Erlang B(c, a) when q = 0, inside its 99 % CI."""
    text = mmc_text(c, lam, 1.0, duration="12h", warmup="10m", max_queue=max_queue)
    result = run_toml(text, seed=5)
    df = steady_requests(result)
    rejected = (df["status"] == "rejected").to_numpy(dtype=float)
    share, half = batch_ci(rejected)
    theory = mmck_blocking(c, c + max_queue, lam)
    if max_queue == 0:
        assert theory == pytest.approx(erlang_b(c, lam))
        # Nothing waits when there is no waiting room.
        assert (df.loc[df["status"] == "ok", "wait_s"] == 0).all()
    assert abs(share - theory) <= half, (share, half, theory)
    assert half < 0.1 * theory


# -- energy = ∫ power dt ------------------------------------------------------------------------
ENERGY_TOML = """
[scenario]
name = "energy"
duration = "2h"
warmup = "10m"
sample_every = "15m"

[facility]
pue = 1.25

[[pools]]
name = "hall"
gpu_type = "H100-SXM"
nodes = 2
gpus_per_node = 4
node_overhead_w = 500

[[pools]]
name = "old"
gpu_type = "RTX-3090"
nodes = 1
gpus_per_node = 2
node_overhead_w = 100

[[workloads]]
name = "four"
kind = "training"
pool = "hall"
gpus = 4
arrival = { process = "at", times = ["100s", "300s"] }
duration = { dist = "deterministic", value = "1h" }

[[workloads]]
name = "eight"
kind = "training"
pool = "hall"
gpus = 8
arrival = { process = "at", times = ["200s"] }
duration = { dist = "deterministic", value = "30m" }
"""


def hall_busy_gpu_s(t: float) -> float:
    """GPU-seconds busy in 'hall' up to t: 4 on [100, 3700), 8 on [3700, 5500), 4 from 5500."""
    pieces = [(100.0, 3700.0, 4), (3700.0, 5500.0, 8), (5500.0, 7200.0, 4)]
    return sum(g * max(0.0, min(t, b) - a) for a, b, g in pieces)


def test_energy_is_the_exact_integral_of_power_deterministic() -> None:
    """Training jobs with fixed durations on 'hall' (2 nodes × 4 H100, 500 W per node); 'old'
    (1 node × 2 RTX-3090, 100 W per node) stays idle.

    Jobs (strict FIFO): four#0 at 100 s runs 100 → 3700; eight#1 at 200 s needs all 8 GPUs and
    waits for it, runs 3700 → 5500; four#2 at 300 s would fit at once but may not overtake
    eight#1, so it starts at 5500 and is unfinished at the horizon 7200.

    Static power: hall 8 × 70 + 2 × 500 = 1560 W; old 2 × 30 + 100 = 160 W. Each busy H100 adds
    700 - 70 = 630 W. Busy GPU-s = 4 × 3600 + 8 × 1800 + 4 × 1700 = 35,600.
    IT energy = (1560 + 160) × 7200 + 630 × 35,600 = 12,384,000 + 22,428,000 = 34,812,000 J
              = 9.67 kWh; facility energy = 9.67 × 1.25 = 12.0875 kWh.
    Every sample must equal E(t) = 1720 t + 630 · busy(t) exactly (1e-9 relative).
    """
    result = run_toml(ENERGY_TOML)
    jobs = result.frame("jobs").set_index("job_id")
    assert jobs["start_s"].tolist() == [100.0, 3700.0, 5500.0]
    assert jobs.loc[[0, 1], "end_s"].tolist() == [3700.0, 5500.0]
    assert jobs["status"].tolist() == ["completed", "completed", "unfinished"]

    ts = result.frame("timeseries")
    times = ts["time_s"].to_numpy()
    expected_j = np.array([1720.0 * t + 630.0 * hall_busy_gpu_s(t) for t in times])
    np.testing.assert_allclose(ts["it_energy_kwh"], expected_j / 3.6e6, rtol=1e-9, atol=0)
    np.testing.assert_allclose(ts["facility_energy_kwh"], 1.25 * ts["it_energy_kwh"], rtol=1e-12)
    np.testing.assert_allclose(ts["facility_power_kw"], 1.25 * ts["it_power_kw"], rtol=1e-12)
    final = ts.iloc[-1]
    assert final["time_s"] == 7200.0
    assert final["it_energy_kwh"] == pytest.approx(9.67, rel=1e-9)
    assert final["facility_energy_kwh"] == pytest.approx(12.0875, rel=1e-9)
    assert final["gpu_busy_hours"] == pytest.approx(35_600 / 3600, rel=1e-9)
    # Power at each sample: 1720 W + 630 W per busy GPU.
    busy_now = np.array([4 if 100 <= t < 3700 else 8 if 3700 <= t < 5500 else 4 for t in times])
    busy_now[times < 100] = 0
    np.testing.assert_allclose(ts["it_power_kw"], (1720.0 + 630.0 * busy_now) / 1000, rtol=1e-12)

    pools = result.frame("pool_timeseries")
    old = pools[pools["pool"] == "old"]
    np.testing.assert_allclose(old["it_energy_kwh"], 160.0 * old["time_s"] / 3.6e6, rtol=1e-9)
    # Summary: energy of the window [600 s, 7200 s].
    window_it_j = 34_812_000.0 - (1720.0 * 600 + 630.0 * hall_busy_gpu_s(600))
    assert result.summary["it_energy_mwh"] == pytest.approx(window_it_j / 3.6e9, rel=1e-9)
    assert result.summary["energy_mwh"] == pytest.approx(1.25 * window_it_j / 3.6e9, rel=1e-9)
    assert result.summary["pue"] == pytest.approx(1.25, rel=1e-12)


STOCHASTIC_ENERGY_TOML = """
[scenario]
name = "energy-mmc"
duration = "1h"
warmup = "5m"
sample_every = "1m"

[facility]
pue = 1.4

[[pools]]
name = "cards"
gpu_type = "RTX-4090"
nodes = 3
gpus_per_node = 4
node_overhead_w = 250

[[workloads]]
name = "chat"
kind = "inference"
replicas = 5
gpus_per_replica = 2
arrival = { process = "poisson", rate_per_s = 4.0 }
service = { dist = "exponential", mean = "0.3s" }
"""


def test_energy_matches_busy_time_of_requests_stochastic() -> None:
    """IT energy = (static power × T + (peak_w - idle_w) × busy GPU-s) / 3.6e6 kWh.

    3 nodes × 4 RTX-4090 (idle 30 W, peak 450 W), 250 W per node: static = 12 × 30 + 3 × 250
    = 1110 W. Replicas hold 2 GPUs each, so busy GPU-s = 2 × Σ over started requests of
    (min(end, T) - start), with T = 3600 s and an unfinished request's end taken as T; service
    on an RTX-4090 takes demand / 0.30, so ρ = 4 × 0.3 / 0.30 / 5 = 0.8.
    """
    result = run_toml(STOCHASTIC_ENERGY_TOML, seed=21)
    gpu = BUILTIN_GPU_TYPES["RTX-4090"]
    horizon = 3600.0
    final = result.frame("timeseries").iloc[-1]
    assert final["time_s"] == horizon

    req = result.frame("requests")
    start = req["start_s"].to_numpy(dtype=float, na_value=np.nan)
    end = req["end_s"].to_numpy(dtype=float, na_value=np.nan)
    started = ~np.isnan(start)
    end = np.where(np.isnan(end), horizon, end)
    busy_from_requests = 2.0 * float(np.sum(np.minimum(end, horizon)[started] - start[started]))
    busy_gpu_s = final["gpu_busy_hours"] * 3600.0
    assert busy_gpu_s == pytest.approx(busy_from_requests, rel=1e-6)
    assert len(req) > 10_000

    static_w = 12 * gpu.idle_w + 3 * 250.0
    expected_kwh = (static_w * horizon + (gpu.peak_w - gpu.idle_w) * busy_gpu_s) / 3.6e6
    assert final["it_energy_kwh"] == pytest.approx(expected_kwh, rel=1e-9)
    assert final["facility_energy_kwh"] == pytest.approx(1.4 * expected_kwh, rel=1e-12)
    assert final["gpu_allocated_hours"] == pytest.approx(10 * horizon / 3600, rel=1e-12)
    # Utilisation of the whole pool: 2 GPUs per busy replica, λ·E[S] = 4 × 1 s = 4 busy
    # replicas on average, so 8 of the 12 GPUs: 2/3 = ρ × 10/12. The 55-minute window is cut
    # into 11 slices of 5 minutes (sample times); 2/3 must lie in the 99 % CI of their mean.
    util, half = time_batch_ci(utilization_slices(result, slices=11))
    assert result.summary["gpu_utilization"] == pytest.approx(util, rel=1e-9)
    assert abs(util - 8 / 12) <= half, (util, half)
    assert half < 0.05


# -- service time scaling ---------------------------------------------------------------------
SLOW_GPU_TOML = """
[scenario]
name = "slow-gpu"
duration = "10m"

[[pools]]
name = "old"
gpu_type = "RTX-3090"
nodes = 2
gpus_per_node = 1

[[workloads]]
name = "chat"
kind = "inference"
replicas = 1
pool = "old"
arrival = { process = "deterministic", interval = "10s", offset = "1s" }
service = { dist = "deterministic", value = "1s" }

[[workloads]]
name = "train"
kind = "training"
pool = "old"
gpus = 1
arrival = { process = "at", times = ["5s"] }
duration = { dist = "deterministic", value = "1m" }
"""


def test_service_time_scales_with_gpu_speed() -> None:
    """RTX-3090 speed 0.28: a 1 s request takes 1/0.28 = 3.571 s (no queueing: one every 10 s);
    a 1 min training job takes 60/0.28 = 214.3 s."""
    speed = BUILTIN_GPU_TYPES["RTX-3090"].speed
    assert speed == 0.28
    result = run_toml(SLOW_GPU_TOML)
    req = result.frame("requests")
    served = req[req["status"] == "ok"]
    assert len(served) == 60  # arrivals at 1, 11, ..., 591 s
    np.testing.assert_allclose(served["service_s"], 1.0 / speed, rtol=1e-12)
    assert (served["wait_s"] == 0).all()
    np.testing.assert_allclose(served["latency_s"], 1.0 / speed, rtol=1e-12)
    assert (served["pool"] == "old").all()

    (job,) = result.frame("jobs").itertuples()
    assert job.status == "completed"
    assert job.start_s == 5.0
    assert job.end_s - job.start_s == pytest.approx(60.0 / speed, rel=1e-12)
