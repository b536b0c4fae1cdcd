"""Power and energy: each pool's IT draw, integrated exactly whenever it changes.

A GPU draws its idle power, plus (peak - idle) while busy; each node adds its overhead. Energy
is the integral of this piecewise-constant power, advanced at every change, never by polling.
Training jobs change the meter when they start and stop; inference engines, whose requests
start and end far more often, keep their own exact account of busy GPU-seconds (see
``sim.model.inference``), which the meter adds in whenever it is read. A busy GPU's extra
draw changes with its power cap (``set_busy_w``). The power ledger (``sim.model.ledger``)
reads the meters; facility power, the limit and the ladder live there.
"""

from __future__ import annotations

from typing import Protocol

from sim.config.catalogue import GpuType
from sim.config.scenario import Pool


class BusySource(Protocol):
    """Something that keeps its own count and integral of busy GPUs in some pools."""

    gpus: int
    busy: list[int]

    def busy_gpu_s(self, slot: int, t: float) -> float:
        """Busy GPU-seconds in pool slot ``slot`` from 0 to ``t``."""
        ...


class PoolMeter:
    """One pool's GPU counts (busy, allocated, up) and IT power, with their exact integrals."""

    __slots__ = (
        "allocated",
        "allocated_gpu_s",
        "busy",
        "busy_gpu_s",
        "busy_w",
        "energy_j",
        "last_t",
        "power_w",
        "served_energy_j",
        "served_mark",
        "sources",
        "up_gpu_s",
        "up_gpus",
    )

    def __init__(self, cfg: Pool, gpu: GpuType) -> None:
        self.busy = 0
        self.allocated = 0
        self.up_gpus = cfg.gpus
        self.busy_w = gpu.peak_w - gpu.idle_w
        self.power_w = cfg.gpus * gpu.idle_w + cfg.nodes * cfg.node_overhead_w
        self.energy_j = 0.0
        self.busy_gpu_s = 0.0
        self.allocated_gpu_s = 0.0
        self.up_gpu_s = 0.0
        self.last_t = 0.0
        self.sources: list[tuple[BusySource, int]] = []
        self.served_energy_j = 0.0  # busy energy of the sources' GPU-seconds up to served_mark
        self.served_mark = 0.0

    def add_source(self, source: BusySource, slot: int) -> None:
        """Count ``source``'s busy GPUs of pool slot ``slot`` as this pool's."""
        self.sources.append((source, slot))

    def busy_now(self) -> int:
        """GPUs busy now, jobs and requests."""
        return self.busy + sum(src.busy[slot] * src.gpus for src, slot in self.sources)

    def power_now(self) -> float:
        """IT power now (W)."""
        return self.power_w + (self.busy_now() - self.busy) * self.busy_w

    def change(self, t: float, busy: int, allocated: int = 0) -> None:
        """At time ``t``, ``busy`` GPUs become busy and ``allocated`` GPUs are taken.

        Negative counts mean idle and given back. Times must not decrease.
        """
        dt = t - self.last_t
        self.energy_j += self.power_w * dt
        self.busy_gpu_s += self.busy * dt
        self.allocated_gpu_s += self.allocated * dt
        self.up_gpu_s += self.up_gpus * dt
        self.last_t = t
        self.busy += busy
        self.allocated += allocated
        self.power_w += busy * self.busy_w

    def power_nodes(self, t: float, gpus: int, watts: float) -> None:
        """From ``t``, ``gpus`` more GPUs are up, drawing ``watts`` more idle (negative: down)."""
        self.change(t, 0, 0)
        self.up_gpus += gpus
        self.power_w += watts
        if not self.up_gpus:
            self.power_w = 0.0  # every node down: nothing draws (no rounding left over)

    def set_busy_w(self, t: float, busy_w: float) -> None:
        """From ``t`` on, a busy GPU draws ``busy_w`` more than an idle one (a new power cap)."""
        self.change(t, 0, 0)
        served = self._served(t)
        self.served_energy_j += (served - self.served_mark) * self.busy_w
        self.served_mark = served
        self.power_w += self.busy * (busy_w - self.busy_w)
        self.busy_w = busy_w

    def _served(self, t: float) -> float:
        return sum(src.busy_gpu_s(slot, t) for src, slot in self.sources)

    def totals_at(self, t: float) -> tuple[float, float, float, float]:
        """(energy J, busy GPU-s, allocated GPU-s, up GPU-s) integrated from 0 to ``t``."""
        dt = t - self.last_t
        served = self._served(t)
        return (
            self.energy_j
            + self.power_w * dt
            + self.served_energy_j
            + (served - self.served_mark) * self.busy_w,
            self.busy_gpu_s + self.busy * dt + served,
            self.allocated_gpu_s + self.allocated * dt,
            self.up_gpu_s + self.up_gpus * dt,
        )
