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

    @property
    def min_cap_w(self) -> float:
        """The lowest power cap: ``min_power_w``, else 30 % of the peak (never below idle)."""
        floor = self.min_power_w if self.min_power_w is not None else 0.3 * self.peak_w
        return max(floor, self.idle_w)


BUILTIN_GPU_TYPES: dict[str, GpuType] = {
    gpu.name: gpu
    for gpu in (
        # NVIDIA H100 Tensor Core GPU datasheet: H100 SXM 80 GB HBM3, 3.35 TB/s, TDP up to 700 W.
        # The reference for speed.
        GpuType(name="H100-SXM", memory_gb=80, idle_w=70, peak_w=700, speed=1.0, min_power_w=200),
        # NVIDIA H200 datasheet: 141 GB HBM3e, 4.8 TB/s, TDP up to 700 W. 4.8 / 3.35 = 1.43.
        GpuType(name="H200-SXM", memory_gb=141, idle_w=70, peak_w=700, speed=1.43, min_power_w=200),
        # NVIDIA A100 datasheet: A100 80GB SXM, HBM2e 2,039 GB/s, TDP 400 W. Speed measured:
        # geometric mean of H100/A100 end-to-end serving time over the 76 matched points of the
        # Splitwise performance model (Mutinifni/splitwise-sim data/perf_model.csv; Llama-2-70B
        # and BLOOM-176B) = 0.63 (the bandwidth ratio, 0.61, agrees).
        GpuType(name="A100-80GB", memory_gb=80, idle_w=50, peak_w=400, speed=0.63, min_power_w=100),
        # NVIDIA L40S datasheet: 48 GB GDDR6, 864 GB/s, max power 350 W. 0.864 / 3.35 = 0.26.
        GpuType(name="L40S", memory_gb=48, idle_w=35, peak_w=350, speed=0.26),
        # NVIDIA GeForce RTX 4090 specifications: 24 GB GDDR6X, 1,008 GB/s, 450 W total
        # graphics power. 1.008 / 3.35 = 0.30.
        GpuType(name="RTX-4090", memory_gb=24, idle_w=30, peak_w=450, speed=0.30, min_power_w=150),
        # NVIDIA GeForce RTX 3090 specifications: 24 GB GDDR6X, 936 GB/s, 350 W total graphics
        # power. A typical ex-mining card. 0.936 / 3.35 = 0.28.
        GpuType(name="RTX-3090", memory_gb=24, idle_w=30, peak_w=350, speed=0.28, min_power_w=100),
        # NVIDIA GeForce RTX 3080 (10 GB) specifications: GDDR6X, 760 GB/s, 320 W total graphics
        # power. An ex-mining card too small for most LLMs. 0.760 / 3.35 = 0.23.
        GpuType(name="RTX-3080", memory_gb=10, idle_w=25, peak_w=320, speed=0.23, min_power_w=100),
        # NVIDIA RTX A4000 datasheet: 16 GB GDDR6, 448 GB/s, max power 140 W. A typical
        # ex-mining card. 0.448 / 3.35 = 0.13.
        GpuType(name="RTX-A4000", memory_gb=16, idle_w=10, peak_w=140, speed=0.13),
    )
}
