"""LLM serving times with continuous batching, calibrated from measurements.

The measurements are Splitwise's (Mutinifni/splitwise-sim data/perf_model.csv, MIT; a copy in
``scenarios/data/splitwise_perf_model.csv``): Llama-2-70B in FP16 on DGX-A100 (A100-80GB, NVLink
3) and DGX-H100 (H100-SXM, NVLink 4) at tensor parallelism 2, 4 and 8. Used: the median of the
repeated rows of each point; not used: the power-capped H100 (derived from the H100 rows, not
measured), BLOOM-176B, and the tensor-parallel-2, batch-64 rows (their prefill is below batch
32's). The medians are baked into ``sim.config.splitwise`` by ``python -m sim.config.serving
--write``; the package never reads the CSV at run time.

Two measured curves per GPU and tensor parallelism:

- prefill: time of one prefill pass against the prompt tokens it covers, from the batch-1 rows
  (prompts of 128 to 8,192 tokens) and, beyond 8,192 tokens, the batched rows (batch ``b`` of
  512-token prompts: ``512 b`` tokens). Piecewise linear; below the smallest point, the smallest
  point's time (a fixed overhead); above the largest, the line through the last two points.
- decode step: time of one decode step (one output token for each of ``b`` requests) against
  ``b``, from the rows with 512-token prompts, batch 1 to 64 (32 at tensor parallelism 2).
  Piecewise linear, and the line through the last two points beyond them.

The scaling rule, for any model, precision, GPU, tensor parallelism ``tp`` and link:

- The reference is the measured GPU nearest in memory bandwidth (A100-80GB, 2,039 GB/s, or
  H100-SXM, 3,350 GB/s; a tie goes to A100), at the measured tensor parallelism nearest to
  ``tp`` (2, 4 or 8; a tie goes to the lower).
- ``prefill_s(n) = ref_prefill(n) × [F / tp / tflops(G, precision)] / [F_ref / tp_ref /
  tflops(G_ref, fp16)] + Δ(n)``, ``F`` the parameters: prefill is bound by compute, and this
  is the ratio of the compute each GPU does at its rate.
- ``step_s(b) = ref_step(b) × [W / tp / bandwidth(G)] / [W_ref / tp_ref / bandwidth(G_ref)] +
  Δ(b)``, ``W`` the weights' bytes at the precision: decoding is bound by memory bandwidth,
  and this is the ratio of the time each GPU takes to read its share of the weights.
- ``Δ(tokens)``, the extra all-reduce time of a slower link: a forward pass makes ``2 ×
  layers`` all-reduces (after attention and after the MLP, Megatron-style), each of ``tokens
  × hidden_size`` FP16 values; ``Δ = max(0, their time over the pool's link − their time over
  the reference GPU's NVLink)`` (``sim.config.interconnect.allreduce_s``). A measured
  configuration on NVLink reproduces the measurements exactly; a 70B model split over four
  RTX 3090s on x1 risers pays for its risers.

Scaling measured times keeps the inefficiency measured (a roofline alone is 1.6 to 6 times
too optimistic against these measurements) rather than replacing it with a roofline.

Memory: a replica may use ``MEMORY_UTILISATION`` of its GPUs' memory for weights and KV cache;
what the weights leave is KV cache, ``kv_bytes_per_token`` per token of context.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sim.config.catalogue import BUILTIN_GPU_TYPES, GpuType
from sim.config.interconnect import NVLINK3, NVLINK4, Link, allreduce_s
from sim.config.models import BUILTIN_MODELS, LanguageModel

MEMORY_UTILISATION = 0.90
"""Share of a replica's GPU memory it may use for weights and KV cache: vLLM's default
``gpu_memory_utilization`` (vLLM engine arguments, ``--gpu-memory-utilization``, default 0.9).
The rest is left to activations, CUDA graphs and the runtime."""

MEASURED_MODEL = "llama-2-70b"
"""The catalogue model the measurements were taken on (``llama2-70b`` in the CSV), in FP16."""
MEASURED_PRECISION = "fp16"
"""The precision of the measurements."""
MEASURED_GPUS: dict[str, str] = {"a100-80gb": "A100-80GB", "h100-80gb": "H100-SXM"}
"""The measured hardware (CSV name) and its catalogue GPU type."""
MEASURED_LINKS: dict[str, Link] = {"a100-80gb": NVLINK3, "h100-80gb": NVLINK4}
"""The link each measured GPU's replicas used: a DGX-A100's NVLink 3, a DGX-H100's NVLink 4."""
MEASURED_TP = (2, 4, 8)
"""The measured tensor parallelisms."""

BATCH_PROMPT_TOKENS = 512
"""Prompt length of the batched rows, the decode-step curve and the long-prefill points."""
TOKEN_SIZE = 128
"""Output length of the rows used (the token-size sweep is left out)."""
PREFILL_SWEEP_MAX_TOKENS = 8192
"""The longest prompt of the batch-1 sweep: batched rows extend the prefill curve beyond it."""

ROOT = Path(__file__).resolve().parent.parent.parent
CSV_PATH = ROOT / "scenarios" / "data" / "splitwise_perf_model.csv"
"""The measurements, read only by ``--write``."""
MODULE_PATH = Path(__file__).resolve().parent / "splitwise.py"
"""The generated module holding their medians."""

Curve = tuple[tuple[int, float], ...]
"""Points ``(x, y)`` of a measured curve, ``x`` increasing."""


def _keep(row: dict[str, str]) -> bool:
    """Whether a CSV row is used.

    Llama-2-70B, A100 or H100 (not power-capped), 128 output tokens, and not one of the
    tensor-parallel-2, batch-64 rows.
    """
    return (
        row["model"] == "llama2-70b"
        and row["hardware"] in MEASURED_GPUS
        and int(row["token_size"]) == TOKEN_SIZE
        and not (int(row["tensor_parallel"]) == 2 and int(row["batch_size"]) == 64)
    )


def measured_curves(
    path: Path,
) -> tuple[dict[tuple[str, int], Curve], dict[tuple[str, int], Curve]]:
    """Prefill and decode-step curves (ms) per (hardware, tensor parallelism), from the CSV.

    Each point is the median of the repeated rows. Prefill: ``(prompt tokens, prompt_time)`` of
    the batch-1 rows, then ``(512 × batch, prompt_time)`` of the batched rows beyond 8,192
    tokens. Decode step: ``(batch, token_time)`` of the 512-token-prompt rows.
    """
    with path.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if _keep(row)]
    prefill: dict[tuple[str, int], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    step: dict[tuple[str, int], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        key = (row["hardware"], int(row["tensor_parallel"]))
        prompt, batch = int(row["prompt_size"]), int(row["batch_size"])
        if batch == 1:
            prefill[key][prompt].append(float(row["prompt_time"]))
        elif prompt == BATCH_PROMPT_TOKENS and prompt * batch > PREFILL_SWEEP_MAX_TOKENS:
            prefill[key][prompt * batch].append(float(row["prompt_time"]))
        if prompt == BATCH_PROMPT_TOKENS:
            step[key][batch].append(float(row["token_time"]))

    def medians(points: dict[int, list[float]]) -> Curve:
        return tuple((x, statistics.median(ys)) for x, ys in sorted(points.items()))

    return (
        {key: medians(prefill[key]) for key in sorted(prefill)},
        {key: medians(step[key]) for key in sorted(step)},
    )


def render_module(path: Path = CSV_PATH) -> str:
    """The text of ``sim/config/splitwise.py``: the medians of the CSV at ``path``."""
    prefill, step = measured_curves(path)

    def table(name: str, doc: str, curves: dict[tuple[str, int], Curve]) -> list[str]:
        lines = [f"{name}: dict[tuple[str, int], tuple[tuple[int, float], ...]] = {{"]
        for (hardware, tp), points in curves.items():
            lines.append(f'    ("{hardware}", {tp}): (')
            lines.extend(f"        ({x}, {y!r})," for x, y in points)
            lines.append("    ),")
        lines += ["}", f'"""{doc}"""']
        return lines

    header = [
        '"""Medians of the Splitwise serving measurements, for ``sim.config.serving``.',
        "",
        "Generated by ``python -m sim.config.serving --write`` from",
        "``scenarios/data/splitwise_perf_model.csv`` (Mutinifni/splitwise-sim data/perf_model.csv,",
        "MIT licence): Llama-2-70B in FP16, hardware ``a100-80gb`` and ``h100-80gb``, 128 output",
        "tokens, the tensor-parallel-2 batch-64 rows left out; each point the median of its",
        "repeated rows, times in ms as measured. Do not edit: regenerate.",
        '"""',
        "",
    ]
    body = table(
        "PREFILL_MS",
        "Prefill time (ms) against the prompt tokens of the pass, per (hardware, tensor "
        "parallelism).",
        prefill,
    )
    body += [""]
    body += table(
        "STEP_MS",
        "Decode-step time (ms) against the batch size, per (hardware, tensor parallelism).",
        step,
    )
    return "\n".join(header + body) + "\n"


def _interpolate(points: Sequence[tuple[float, float]], x: float) -> float:
    """Piecewise-linear ``y(x)``.

    The first point's ``y`` below the first point, the line through the last two points above
    the last.
    """
    xs = [p[0] for p in points]
    if x <= xs[0]:
        return points[0][1]
    i = min(bisect_right(xs, x), len(points) - 1)
    (x0, y0), (x1, y1) = points[i - 1], points[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def reference_of(gpu: GpuType, tp: int) -> tuple[str, int]:
    """The measured hardware (CSV name) and tensor parallelism that ``gpu`` at ``tp`` scales.

    The measured GPU nearest in memory bandwidth (a tie goes to A100), and the measured tensor
    parallelism nearest to ``tp`` (a tie goes to the lower).
    """
    hardware = min(
        MEASURED_GPUS,
        key=lambda h: abs(BUILTIN_GPU_TYPES[MEASURED_GPUS[h]].bandwidth_gbs - gpu.bandwidth_gbs),
    )
    tp_ref = min(MEASURED_TP, key=lambda t: (abs(t - tp), t))
    return hardware, tp_ref


@dataclass(frozen=True)
class ServingTimes:
    """A replica's weights, KV capacity and serving times, for one model on one GPU pool.

    Made by ``serving_times``; the fields after ``kv_capacity_tokens`` are its workings.
    """

    weights_gb: float
    """Weights of the whole replica (GB)."""
    kv_bytes_per_token: float
    """KV cache of one token of context, whole replica (bytes)."""
    kv_capacity_tokens: int
    """Tokens of KV cache the replica holds; 0 or less: the weights do not fit."""
    prefill_points_s: tuple[tuple[int, float], ...] = field(repr=False)
    """The reference prefill curve (tokens, s)."""
    step_points_s: tuple[tuple[int, float], ...] = field(repr=False)
    """The reference decode-step curve (batch, s)."""
    prefill_factor: float
    """Reference prefill time × this = this replica's, before the link's extra."""
    step_factor: float
    """Reference decode-step time × this = this replica's, before the link's extra."""
    layers: int
    """The model's layers (two all-reduces each per forward pass)."""
    hidden_size: int
    """The model's hidden size (values per token in an all-reduce)."""
    tp: int
    """GPUs per replica (tensor parallelism)."""
    link: Link
    """The link between the replica's GPUs."""
    reference_link: Link
    """The link of the reference measurements."""
    reference_gpu: str
    """The catalogue name of the reference GPU ("A100-80GB" or "H100-SXM")."""
    reference_tp: int
    """The reference tensor parallelism (2, 4 or 8)."""

    def allreduce_extra_s(self, tokens: float) -> float:
        """Extra all-reduce time of a forward pass over ``tokens`` on this link (s), ≥ 0."""
        nbytes = tokens * self.hidden_size * 2
        ours = allreduce_s(self.link, self.tp, nbytes)
        theirs = allreduce_s(self.reference_link, self.tp, nbytes)
        return max(0.0, 2 * self.layers * (ours - theirs))

    def prefill_s(self, tokens: float) -> float:
        """Time of one prefill pass over ``tokens`` prompt tokens in total (s); 0 for none."""
        if tokens < 0:
            raise ValueError(f"tokens must be non-negative, got {tokens}")
        if tokens == 0:
            return 0.0
        measured = _interpolate(self.prefill_points_s, tokens)
        return measured * self.prefill_factor + self.allreduce_extra_s(tokens)

    def step_s(self, batch: int) -> float:
        """Time of one decode step with ``batch`` requests, one output token each (s)."""
        if batch < 0:
            raise ValueError(f"batch must be non-negative, got {batch}")
        if batch == 0:
            return 0.0
        measured = _interpolate(self.step_points_s, batch)
        return measured * self.step_factor + self.allreduce_extra_s(batch)

    def step_table(self, max_batch: int) -> list[float]:
        """``[step_s(0) = 0.0, step_s(1), ..., step_s(max_batch)]``."""
        return [self.step_s(b) for b in range(max_batch + 1)]


def memory_needed_gb(model: LanguageModel, precision: str, tp: int) -> float:
    """Memory a replica's GPUs need, in total, just to hold the weights (GB).

    ``weights_gb / MEMORY_UTILISATION``: compare with ``memory_gb × tp``. The weights are split
    evenly, so the total does not depend on ``tp`` (checked to be at least 1).
    """
    if tp < 1:
        raise ValueError(f"tensor parallelism must be at least 1, got {tp}")
    return model.weights_gb(precision) / MEMORY_UTILISATION


def serving_times(
    model: LanguageModel, precision: str, gpu: GpuType, tp: int, link: Link
) -> ServingTimes:
    """Weights, KV capacity and serving times of ``model`` at ``precision`` on ``tp`` ``gpu``s.

    Scales the nearest measured configuration by the rule of the module's docstring. Cheap:
    call it once per workload and pool.
    """
    # Imported here so that ``--write`` runs even when the generated module is missing.
    from sim.config.splitwise import PREFILL_MS, STEP_MS

    if tp < 1:
        raise ValueError(f"tensor parallelism must be at least 1, got {tp}")
    hardware, tp_ref = reference_of(gpu, tp)
    ref_gpu = BUILTIN_GPU_TYPES[MEASURED_GPUS[hardware]]
    ref_model = BUILTIN_MODELS[MEASURED_MODEL]
    compute = model.params_b / tp / gpu.tflops(precision)
    ref_compute = ref_model.params_b / tp_ref / ref_gpu.tflops(MEASURED_PRECISION)
    read = model.weights_gb(precision) / tp / gpu.bandwidth_gbs
    ref_read = ref_model.weights_gb(MEASURED_PRECISION) / tp_ref / ref_gpu.bandwidth_gbs
    weights_gb = model.weights_gb(precision)
    kv_bytes = model.kv_bytes_per_token()
    free_bytes = (gpu.memory_gb * tp * MEMORY_UTILISATION - weights_gb) * 1e9
    return ServingTimes(
        weights_gb=weights_gb,
        kv_bytes_per_token=kv_bytes,
        kv_capacity_tokens=math.floor(free_bytes / kv_bytes),
        prefill_points_s=tuple((x, ms / 1000) for x, ms in PREFILL_MS[hardware, tp_ref]),
        step_points_s=tuple((b, ms / 1000) for b, ms in STEP_MS[hardware, tp_ref]),
        prefill_factor=compute / ref_compute,
        step_factor=read / ref_read,
        layers=model.layers,
        hidden_size=model.hidden_size,
        tp=tp,
        link=link,
        reference_link=MEASURED_LINKS[hardware],
        reference_gpu=ref_gpu.name,
        reference_tp=tp_ref,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sim.config.serving --write``: regenerate ``sim/config/splitwise.py``."""
    parser = argparse.ArgumentParser(prog="python -m sim.config.serving", description=__doc__)
    parser.add_argument("--write", action="store_true", help="write sim/config/splitwise.py")
    parser.add_argument("--csv", type=Path, default=CSV_PATH, help="the measurements (CSV)")
    args = parser.parse_args(argv)
    text = render_module(args.csv)
    if args.write:
        MODULE_PATH.write_text(text)
        print(f"wrote {MODULE_PATH}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
