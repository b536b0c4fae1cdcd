"""The built-in GPU catalogue: memory, idle and peak board power, and speed relative to H100-SXM.

``[[gpu_types]]`` in a scenario adds types or overrides these by name.

How the figures were chosen:

- ``memory_gb`` and ``peak_w`` are NVIDIA's published specifications (datasheet board power /
  TDP, or total board power for GeForce cards), cited per entry.
- ``idle_w`` is an assumption, not a datasheet figure: the draw of an idle card with a model
  loaded as nvidia-smi typically reports it (about 5–10 % of board power). Measure your own
  fleet and override it.
- ``min_power_w`` is the lowest power limit ``nvidia-smi -pl`` accepts, as reported by users
  of each card (README, "Power caps"); L40S and RTX A4000 were not found and take 30 % of
  ``peak_w``. H200's is taken as H100's.
- ``speed`` is throughput relative to H100-SXM (1.0) for LLM serving, which is bound by memory
  bandwidth when decoding: the ratio of memory bandwidths to the H100-SXM's 3.35 TB/s, except
  for A100-80GB, where it is measured (below). Compute-bound training gains less from bandwidth
  (H200 trains at roughly H100 speed); override ``speed`` for such studies.
- ``memory_bandwidth_gbs``, ``fp16_tflops`` and ``fp8_tflops`` are datasheet peaks, used by
  ``sim.config.serving`` to scale measured serving times to other GPUs. TFLOPS are dense
  tensor-core figures (datasheets quote twice as much "with sparsity", which LLM serving does
  not use) with FP32 accumulation, as PyTorch's FP16/BF16 matrix products use: on GeForce cards
  that is half the "FP16 accumulate" rate NVIDIA's whitepapers also list. ``fp8_tflops`` is
  None for cards without FP8 tensor cores (Ampere): FP8 weights there are computed at the FP16
  rate (weight-only FP8, as vLLM's Marlin kernels run it), while still read at 1 byte each.
  A user-defined type may leave the three out: ``bandwidth_gbs`` and ``tflops`` then take
  ``speed`` × H100-SXM's figure.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from sim.config.base import Frozen, Name


class GpuType(Frozen):
    """A GPU model: memory, power and relative speed."""

    name: Name
    """The type's name, used by ``pools.*.gpu_type``."""
    memory_gb: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    """GPU memory (GB)."""
    idle_w: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    """Board power when idle (W)."""
    peak_w: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    """Board power when fully busy (W)."""
    speed: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
    """Throughput relative to H100-SXM (1.0): work takes ``duration / speed``."""
    min_power_w: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    """Lowest power limit the card accepts (W); 30 % of ``peak_w`` when left out."""
    memory_bandwidth_gbs: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    """Peak memory bandwidth (GB/s); ``speed`` × H100-SXM's when left out."""
    fp16_tflops: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    """Dense FP16/BF16 tensor throughput, no sparsity (TFLOPS); ``speed`` × H100-SXM's when
    left out."""
    fp8_tflops: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    """Dense FP8 tensor throughput, no sparsity (TFLOPS); None when the card has no FP8 tensor
    cores, and FP8 weights then compute at the FP16 rate."""

    @property
    def min_cap_w(self) -> float:
        """The lowest power cap: ``min_power_w``, else 30 % of the peak (never below idle)."""
        floor = self.min_power_w if self.min_power_w is not None else 0.3 * self.peak_w
        return max(floor, self.idle_w)

    @property
    def bandwidth_gbs(self) -> float:
        """Memory bandwidth (GB/s): ``memory_bandwidth_gbs``, else ``speed`` × H100-SXM's."""
        if self.memory_bandwidth_gbs is not None:
            return self.memory_bandwidth_gbs
        return self.speed * H100_SXM_BANDWIDTH_GBS

    def tflops(self, precision: str) -> float:
        """Dense tensor TFLOPS at ``precision`` ("fp16", "bf16" or "fp8").

        FP16 and BF16: ``fp16_tflops``, else ``speed`` × H100-SXM's. FP8: ``fp8_tflops``, else
        (no FP8 tensor cores, or a user-defined type that left it out) the FP16 rate: weight-only
        FP8, dequantised to FP16 for the matrix products.
        """
        if precision not in ("fp16", "bf16", "fp8"):
            raise ValueError(f"unknown precision {precision!r}; expected bf16, fp16 or fp8")
        if precision == "fp8" and self.fp8_tflops is not None:
            return self.fp8_tflops
        if self.fp16_tflops is not None:
            return self.fp16_tflops
        return self.speed * H100_SXM_FP16_TFLOPS


H100_SXM_BANDWIDTH_GBS = 3350.0
"""H100-SXM's memory bandwidth (GB/s), the fallback for a type without ``memory_bandwidth_gbs``
(NVIDIA H100 Tensor Core GPU datasheet: 3.35 TB/s)."""
H100_SXM_FP16_TFLOPS = 989.4
"""H100-SXM's dense FP16 tensor TFLOPS, the fallback for a type without ``fp16_tflops`` (NVIDIA
H100 datasheet: 1,979 with sparsity; NVIDIA Hopper architecture whitepaper: 989.4 dense)."""


BUILTIN_GPU_TYPES: dict[str, GpuType] = {
    gpu.name: gpu
    for gpu in (
        # NVIDIA H100 Tensor Core GPU datasheet: H100 SXM 80 GB HBM3, 3.35 TB/s, TDP up to 700 W.
        # The reference for speed. Same datasheet: FP16/BF16 tensor 1,979 TFLOPS and FP8 3,958
        # with sparsity, i.e. 989.4 and 1,978.9 dense (Hopper whitepaper).
        GpuType(
            name="H100-SXM",
            memory_gb=80,
            idle_w=70,
            peak_w=700,
            speed=1.0,
            min_power_w=200,
            memory_bandwidth_gbs=3350,
            fp16_tflops=989.4,
            fp8_tflops=1978.9,
        ),
        # NVIDIA H200 datasheet: 141 GB HBM3e, 4.8 TB/s, TDP up to 700 W. 4.8 / 3.35 = 1.43.
        # Same datasheet: FP16 1,979 and FP8 3,958 TFLOPS with sparsity (H100's compute).
        GpuType(
            name="H200-SXM",
            memory_gb=141,
            idle_w=70,
            peak_w=700,
            speed=1.43,
            min_power_w=200,
            memory_bandwidth_gbs=4800,
            fp16_tflops=989.4,
            fp8_tflops=1978.9,
        ),
        # NVIDIA A100 datasheet: A100 80GB SXM, HBM2e 2,039 GB/s, TDP 400 W. Speed measured:
        # geometric mean of H100/A100 end-to-end serving time over the 76 matched points of the
        # Splitwise performance model (Mutinifni/splitwise-sim data/perf_model.csv; Llama-2-70B
        # and BLOOM-176B) = 0.63 (the bandwidth ratio, 0.61, agrees). Same datasheet: FP16
        # tensor 312 TFLOPS dense (624 with sparsity); no FP8.
        GpuType(
            name="A100-80GB",
            memory_gb=80,
            idle_w=50,
            peak_w=400,
            speed=0.63,
            min_power_w=100,
            memory_bandwidth_gbs=2039,
            fp16_tflops=312,
        ),
        # NVIDIA L40S datasheet: 48 GB GDDR6, 864 GB/s, max power 350 W. 0.864 / 3.35 = 0.26.
        # Same datasheet: BF16/FP16 tensor 362.05 TFLOPS dense (733 with sparsity), FP8 733
        # dense (1,466 with sparsity).
        GpuType(
            name="L40S",
            memory_gb=48,
            idle_w=35,
            peak_w=350,
            speed=0.26,
            memory_bandwidth_gbs=864,
            fp16_tflops=362.05,
            fp8_tflops=733,
        ),
        # NVIDIA GeForce RTX 4090 specifications: 24 GB GDDR6X, 1,008 GB/s, 450 W total
        # graphics power. 1.008 / 3.35 = 0.30. NVIDIA Ada Lovelace GPU architecture whitepaper
        # (RTX 4090): FP16 tensor with FP32 accumulate 165.2 TFLOPS dense (330.3 with FP16
        # accumulate), FP8 with FP32 accumulate 330.3 dense.
        GpuType(
            name="RTX-4090",
            memory_gb=24,
            idle_w=30,
            peak_w=450,
            speed=0.30,
            min_power_w=150,
            memory_bandwidth_gbs=1008,
            fp16_tflops=165.2,
            fp8_tflops=330.3,
        ),
        # NVIDIA GeForce RTX 3090 specifications: 24 GB GDDR6X, 936 GB/s, 350 W total graphics
        # power. A typical ex-mining card. 0.936 / 3.35 = 0.28. NVIDIA Ampere GA102 GPU
        # architecture whitepaper (RTX 3090): FP16 tensor with FP32 accumulate 71 TFLOPS dense
        # (142 with FP16 accumulate); no FP8.
        GpuType(
            name="RTX-3090",
            memory_gb=24,
            idle_w=30,
            peak_w=350,
            speed=0.28,
            min_power_w=100,
            memory_bandwidth_gbs=936,
            fp16_tflops=71,
        ),
        # NVIDIA GeForce RTX 3080 (10 GB) specifications: GDDR6X, 760 GB/s, 320 W total graphics
        # power. An ex-mining card too small for most LLMs. 0.760 / 3.35 = 0.23. GA102
        # whitepaper (RTX 3080): FP16 tensor with FP32 accumulate 59.5 TFLOPS dense (119 with
        # FP16 accumulate); no FP8.
        GpuType(
            name="RTX-3080",
            memory_gb=10,
            idle_w=25,
            peak_w=320,
            speed=0.23,
            min_power_w=100,
            memory_bandwidth_gbs=760,
            fp16_tflops=59.5,
        ),
        # NVIDIA RTX A4000 datasheet: 16 GB GDDR6, 448 GB/s, max power 140 W. A typical
        # ex-mining card. 0.448 / 3.35 = 0.13. Same datasheet: tensor performance 153.4 TFLOPS
        # with sparsity, i.e. 76.7 dense (48 SMs × 1.56 GHz × 1,024 FLOP per clock; professional
        # Ampere cards accumulate in FP32 at full rate); no FP8.
        GpuType(
            name="RTX-A4000",
            memory_gb=16,
            idle_w=10,
            peak_w=140,
            speed=0.13,
            memory_bandwidth_gbs=448,
            fp16_tflops=76.7,
        ),
    )
}
