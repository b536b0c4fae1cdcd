"""LLM serving: the model catalogue, links, and serving times scaled from the Splitwise data."""

from __future__ import annotations

import csv
import math
import statistics
from collections import defaultdict
from pathlib import Path

import pytest

from sim.config.catalogue import BUILTIN_GPU_TYPES, GpuType
from sim.config.interconnect import INTERCONNECTS, Link, allreduce_s, link_of
from sim.config.models import BUILTIN_MODELS
from sim.config.serving import (
    CSV_PATH,
    MEMORY_UTILISATION,
    MODULE_PATH,
    memory_needed_gb,
    render_module,
    serving_times,
)

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "scenarios" / "data" / "splitwise_perf_model.csv"
HARDWARE = {"a100-80gb": "A100-80GB", "h100-80gb": "H100-SXM"}
NVLINK = link_of("nvlink")


def csv_medians() -> tuple[dict, dict]:
    """Medians (ms) straight from the CSV: prefill by prompt tokens, decode step by batch."""
    groups: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
    with DATA.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["model"] != "llama2-70b" or row["hardware"] not in HARDWARE:
                continue
            tp, batch = int(row["tensor_parallel"]), int(row["batch_size"])
            if row["token_size"] != "128" or (tp == 2 and batch == 64):
                continue
            key = (row["hardware"], tp, int(row["prompt_size"]), batch)
            groups[key].append((float(row["prompt_time"]), float(row["token_time"])))
    prefill: dict[tuple[str, int], dict[int, float]] = defaultdict(dict)
    step: dict[tuple[str, int], dict[int, float]] = defaultdict(dict)
    for (hardware, tp, prompt, batch), times in groups.items():
        prompt_ms = statistics.median(t[0] for t in times)
        token_ms = statistics.median(t[1] for t in times)
        if batch == 1:
            prefill[hardware, tp][prompt] = prompt_ms
        elif prompt == 512 and 512 * batch > 8192:
            prefill[hardware, tp][512 * batch] = prompt_ms
        if prompt == 512:
            step[hardware, tp][batch] = token_ms
    return prefill, step


@pytest.mark.parametrize("hardware", sorted(HARDWARE))
@pytest.mark.parametrize("tp", [2, 4, 8])
def test_measured_configurations_reproduce_the_csv_medians(hardware, tp):
    prefill, step = csv_medians()
    times = serving_times(
        BUILTIN_MODELS["llama-2-70b"], "fp16", BUILTIN_GPU_TYPES[HARDWARE[hardware]], tp, NVLINK
    )
    assert times.reference_gpu == HARDWARE[hardware] and times.reference_tp == tp
    # 7 prompt sizes of the sweep, then 16,384 and 32,768 tokens of batched prompts (TP2: no
    # batch 64); batches 1 to 64 (TP2: to 32).
    assert sorted(prefill[hardware, tp]) == [128, 256, 512, 1024, 2048, 4096, 8192, 16384] + (
        [] if tp == 2 else [32768]
    )
    assert sorted(step[hardware, tp]) == [1, 2, 4, 8, 16, 32] + ([] if tp == 2 else [64])
    # The curves hold these points and no others (e.g. no TP2 batch 64, no 8,192-token batch).
    assert [x for x, _ in times.prefill_points_s] == sorted(prefill[hardware, tp])
    assert [b for b, _ in times.step_points_s] == sorted(step[hardware, tp])
    for tokens, ms in prefill[hardware, tp].items():
        assert times.prefill_s(tokens) == pytest.approx(ms / 1000, rel=1e-9), tokens
    for batch, ms in step[hardware, tp].items():
        assert times.step_s(batch) == pytest.approx(ms / 1000, rel=1e-9), batch


def test_curves_between_and_beyond_the_measured_points():
    """Linear between points; the smallest prefill below the first; the last two points' line
    beyond the last; no time for nothing."""
    prefill, step = csv_medians()
    p, s = prefill["h100-80gb", 4], step["h100-80gb", 4]
    times = serving_times(
        BUILTIN_MODELS["llama-2-70b"], "fp16", BUILTIN_GPU_TYPES["H100-SXM"], 4, NVLINK
    )
    assert times.prefill_s(1) == pytest.approx(p[128] / 1000, rel=1e-12)
    assert times.prefill_s(768) == pytest.approx((p[512] + p[1024]) / 2000, rel=1e-12)
    slope = (p[32768] - p[16384]) / 16384
    assert times.prefill_s(40000) == pytest.approx((p[32768] + slope * 7232) / 1000, rel=1e-12)
    assert times.step_s(3) == pytest.approx((s[2] + s[4]) / 2000, rel=1e-12)
    assert times.step_s(96) == pytest.approx((s[64] + (s[64] - s[32])) / 1000, rel=1e-12)
    assert times.prefill_s(0) == 0.0
    table = times.step_table(5)
    assert table[0] == 0.0 and len(table) == 6
    assert table[1:] == [times.step_s(b) for b in range(1, 6)]


def test_kv_cache_and_weights_of_the_catalogue_models():
    assert BUILTIN_MODELS["llama-3-70b"].kv_bytes_per_token() == 327_680  # 320 KiB
    assert BUILTIN_MODELS["llama-2-70b"].kv_bytes_per_token() == 327_680
    assert BUILTIN_MODELS["llama-3-8b"].kv_bytes_per_token() == 131_072  # 2·32·8·128·2
    model = BUILTIN_MODELS["llama-3-70b"]
    assert model.weights_gb("fp16") == pytest.approx(141.1)
    assert model.weights_gb("bf16") == model.weights_gb("fp16")
    assert model.weights_gb("fp8") == pytest.approx(70.55)
    with pytest.raises(ValueError, match="fp8"):
        model.weights_gb("int4")


def test_a_small_model_on_one_h100_beats_a_70b_model_on_two():
    h100 = BUILTIN_GPU_TYPES["H100-SXM"]
    small = serving_times(BUILTIN_MODELS["llama-3-8b"], "fp16", h100, 1, NVLINK)
    big = serving_times(BUILTIN_MODELS["llama-2-70b"], "fp16", h100, 2, NVLINK)
    for n in (128, 2048, 20000):
        assert small.prefill_s(n) < big.prefill_s(n)
    for b in (1, 16, 64, 100):
        assert small.step_s(b) < big.step_s(b)
    # The same H100 TP2 curve scaled by compute (and bytes) per GPU: 8.03 / 1 against 68.98 / 2.
    assert small.prefill_s(1000) == pytest.approx(big.prefill_s(1000) * 8.03 / (68.98 / 2))
    assert small.step_s(8) == pytest.approx(big.step_s(8) * 8.03 / (68.98 / 2))


def test_fp8_halves_the_bytes_and_doubles_compute_only_where_the_card_has_fp8():
    """llama-3-70b on 4 GPUs (reference: TP4 on the nearest measured GPU)."""
    model = BUILTIN_MODELS["llama-3-70b"]
    for name, compute in (("H100-SXM", 1978.9 / 989.4), ("RTX-3090", 1.0)):
        gpu = BUILTIN_GPU_TYPES[name]
        fp16 = serving_times(model, "fp16", gpu, 4, NVLINK)
        fp8 = serving_times(model, "fp8", gpu, 4, NVLINK)
        assert fp8.step_factor == pytest.approx(fp16.step_factor / 2)
        assert fp8.prefill_factor == pytest.approx(fp16.prefill_factor / compute)
    assert BUILTIN_GPU_TYPES["RTX-3090"].tflops("fp8") == 71
    assert BUILTIN_GPU_TYPES["H100-SXM"].tflops("fp8") == 1978.9


def test_a_riser_costs_exactly_the_all_reduce_difference():
    """llama-3-70b FP16 on 4 H100-SXM, one decode step with a batch of 1, riser against NVLink.

    Per all-reduce of 1 token × 8192 values × 2 bytes = 16,384 bytes over 4 GPUs (6 ring steps,
    each GPU moving 6/4 × 16,384 = 24,576 bytes):
      riser (PCIe 3.0 x1, 8 GT/s × 128/130 / 8 = 0.984615 GB/s):
              24,576 / 0.984615e9 + 6 × 1.0e-6  = 24.9600e-6 + 6.00e-6 = 30.9600e-6 s
      NVLink: 24,576 / 450e9      + 6 × 0.47e-6 =  0.0546e-6 + 2.82e-6 =  2.8746e-6 s
    2 × 80 layers = 160 all-reduces: 160 × 28.0854e-6 = 4.4937e-3 s more per step.
    """
    h100 = BUILTIN_GPU_TYPES["H100-SXM"]
    model = BUILTIN_MODELS["llama-3-70b"]
    nvlink = serving_times(model, "fp16", h100, 4, NVLINK)
    riser = serving_times(model, "fp16", h100, 4, link_of("riser"))
    riser_gbs = 8 * 128 / 130 / 8
    by_hand = 160 * ((24_576 / (riser_gbs * 1e9) + 6 * 1.0e-6) - (24_576 / 450e9 + 6 * 0.47e-6))
    assert by_hand == pytest.approx(4.4937e-3, rel=1e-4)
    assert riser.step_s(1) - nvlink.step_s(1) == pytest.approx(by_hand, rel=1e-9)
    # A prefill of 1,000 tokens moves 1,000 times the bytes, with the same latencies.
    prefill = 160 * ((1000 * 24_576) * (1 / (riser_gbs * 1e9) - 1 / 450e9) + 6 * (1.0e-6 - 0.47e-6))
    assert riser.prefill_s(1000) - nvlink.prefill_s(1000) == pytest.approx(prefill, rel=1e-9)
    # On an A100 reference the measured link was NVLink 3 (300 GB/s): an RTX-3090 on PCIe 4.0
    # x16 (31.51 GB/s) pays, against a link no slower than the measured one (no extra),
    # 160 × [(24,576 / 31.51e9 + 6 × 1.0e-6) - (24,576 / 300e9 + 6 × 0.47e-6)]
    # = 160 × (6.7800e-6 - 2.9019e-6) = 0.6205e-3 s per step: over NVLink 3, not NVLink 4.
    gpu = BUILTIN_GPU_TYPES["RTX-3090"]
    pcie_gbs = 16 * 16 * 128 / 130 / 8
    on_pcie = serving_times(model, "fp8", gpu, 4, link_of("pcie"))
    no_extra = serving_times(model, "fp8", gpu, 4, Link(10_000.0, 0.0))
    by_hand = 160 * ((24_576 / (pcie_gbs * 1e9) + 6e-6) - (24_576 / 300e9 + 6 * 0.47e-6))
    assert by_hand == pytest.approx(0.6205e-3, rel=1e-3)
    assert on_pcie.step_s(1) - no_extra.step_s(1) == pytest.approx(by_hand, rel=1e-9)
    # A link faster than the measured one does not make the measured configuration faster.
    fast = serving_times(model, "fp16", h100, 4, Link(10_000.0, 0.0))
    assert fast.step_s(1) == nvlink.step_s(1)
    # Without tensor parallelism there is no all-reduce, whatever the link.
    alone = BUILTIN_MODELS["llama-3-8b"]
    one = serving_times(alone, "fp16", h100, 1, link_of("riser"))
    assert one.step_s(1) == serving_times(alone, "fp16", h100, 1, NVLINK).step_s(1)


def test_the_reference_is_the_nearest_measured_gpu_and_tensor_parallelism():
    model = BUILTIN_MODELS["llama-3-8b"]
    for name, reference in (
        ("RTX-3090", "A100-80GB"),
        ("RTX-A4000", "A100-80GB"),
        ("A100-80GB", "A100-80GB"),
        ("H200-SXM", "H100-SXM"),
        ("H100-SXM", "H100-SXM"),
    ):
        times = serving_times(model, "fp16", BUILTIN_GPU_TYPES[name], 2, NVLINK)
        assert times.reference_gpu == reference, name
    h100 = BUILTIN_GPU_TYPES["H100-SXM"]
    for tp, reference in ((1, 2), (3, 2), (5, 4), (6, 4), (7, 8), (16, 8)):
        assert serving_times(model, "fp16", h100, tp, NVLINK).reference_tp == reference, tp


def test_kv_capacity_by_hand():
    """llama-3-70b FP8 on 4 RTX-3090: 4 × 24 GB × 0.90 = 86.4 GB usable; weights 70.55 GB;
    (86.4 - 70.55) × 1e9 / 327,680 = 48,370.4 tokens, so 48,370."""
    gpu = BUILTIN_GPU_TYPES["RTX-3090"]
    fp8 = serving_times(BUILTIN_MODELS["llama-3-70b"], "fp8", gpu, 4, link_of("riser"))
    assert MEMORY_UTILISATION == 0.90
    assert fp8.weights_gb == pytest.approx(70.55)
    assert fp8.kv_bytes_per_token == 327_680
    assert fp8.kv_capacity_tokens == 48_370
    # 70B in FP16 (141.1 GB) does not fit in 86.4 GB.
    fp16 = serving_times(BUILTIN_MODELS["llama-3-70b"], "fp16", gpu, 4, link_of("riser"))
    assert fp16.kv_capacity_tokens <= 0
    assert memory_needed_gb(BUILTIN_MODELS["llama-3-70b"], "fp16", 4) == pytest.approx(141.1 / 0.9)
    assert memory_needed_gb(BUILTIN_MODELS["llama-3-70b"], "fp8", 4) < 4 * 24


def test_gpu_figures_fall_back_to_speed_times_h100():
    own = GpuType(name="mystery", memory_gb=16, idle_w=10, peak_w=200, speed=0.5)
    assert own.bandwidth_gbs == pytest.approx(0.5 * 3350)
    assert own.tflops("fp16") == pytest.approx(0.5 * 989.4)
    assert own.tflops("fp8") == own.tflops("fp16")
    told = GpuType(
        name="known", memory_gb=16, idle_w=10, peak_w=200, speed=0.5,
        memory_bandwidth_gbs=500, fp16_tflops=100, fp8_tflops=200,
    )  # fmt: skip
    assert (told.bandwidth_gbs, told.tflops("bf16"), told.tflops("fp8")) == (500, 100, 200)
    with pytest.raises(ValueError):
        told.tflops("int8")
    for gpu in BUILTIN_GPU_TYPES.values():
        assert gpu.memory_bandwidth_gbs is not None and gpu.fp16_tflops is not None, gpu.name


def test_links():
    assert INTERCONNECTS["nvlink"] == Link(450.0, 0.47e-6)
    assert INTERCONNECTS["pcie"].bandwidth_gbs == pytest.approx(16 * 16 * 128 / 130 / 8)
    assert INTERCONNECTS["riser"].bandwidth_gbs == pytest.approx(8 * 128 / 130 / 8, rel=1e-3)
    assert link_of(12.5) == Link(12.5, INTERCONNECTS["pcie"].latency_s)
    with pytest.raises(ValueError):
        link_of("infiniband")
    with pytest.raises(ValueError):
        link_of(0)
    assert allreduce_s(NVLINK, 1, 1e9) == 0.0
    # 8 GPUs: 14 steps, 14/8 of the bytes.
    assert allreduce_s(Link(100.0, 1e-6), 8, 8e9) == pytest.approx(14 / 8 * 0.08 + 14e-6)


def test_the_generated_module_is_in_step_with_the_csv():
    assert CSV_PATH == DATA
    assert MODULE_PATH.read_text() == render_module(DATA), (
        "run: python -m sim.config.serving --write"
    )


def test_the_shipped_csv_is_the_shared_copy_and_is_licensed():
    assert (ROOT / "scenarios" / "data" / "LICENSE-MIT-splitwise-sim.txt").exists()
    assert "splitwise_perf_model.csv" in (ROOT / "scenarios" / "data" / "README.md").read_text()
    with DATA.open() as handle:
        assert math.isclose(sum(1 for _ in handle), 1261)
