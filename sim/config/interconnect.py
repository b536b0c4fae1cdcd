"""Links between the GPUs of one replica (tensor parallelism), and the time of an all-reduce.

A pool's ``interconnect`` is a name, ``"nvlink"``, ``"pcie"`` or ``"riser"``, or a number: a
bandwidth (GB/s per direction) with PCIe's per-message latency.

How the figures were chosen:

- Bandwidths are per direction, the rate a ring all-reduce moves data at. NVLink 4 on H100 SXM:
  900 GB/s in total (NVIDIA H100 datasheet), 450 each way. NVLink 3 on A100 SXM: 600 GB/s in
  total (NVIDIA A100 datasheet), 300 each way: the link the A100 measurements of
  ``sim.config.serving`` were taken over. PCIe 4.0 x16: 16 GT/s × 16 lanes × 128/130
  (encoding) / 8 = 31.5 GB/s each way, theoretical. A mining riser is a PCIe x1 link, taken as
  PCIe 3.0 x1: 8 GT/s × 128/130 / 8 = 0.985 GB/s each way.
- Latencies are per ring step (one message between neighbours), NCCL's own model of the
  hardware latency of its low-latency (LL) ring protocol, the one it picks for the small
  messages of decoding (NVIDIA/nccl src/graph/tuning.cc, ``hwLat``: NVLink 0.47 µs, PCI 1.0 µs).
  NCCL's fixed base latency per call (3.6 µs for LL ring) is left out: it is the same over
  every link, so it cancels in the serving model, which adds only the difference between links.
- The riser's latency is an assumption: PCIe's 1.0 µs, the lane count changing the bandwidth,
  not the per-message latency.
"""

from __future__ import annotations

from typing import NamedTuple


class Link(NamedTuple):
    """A link between GPUs: bandwidth per direction and latency per message."""

    bandwidth_gbs: float
    """Bandwidth per direction (GB/s, 10⁹ bytes per second)."""
    latency_s: float
    """Latency of one message (s)."""


NVLINK4 = Link(bandwidth_gbs=450.0, latency_s=0.47e-6)
"""NVLink 4 (H100 SXM): 900 GB/s total, 450 per direction; NCCL's NVLink ring latency."""
NVLINK3 = Link(bandwidth_gbs=300.0, latency_s=0.47e-6)
"""NVLink 3 (A100 SXM): 600 GB/s total, 300 per direction; NCCL's NVLink ring latency."""
PCIE4_X16 = Link(bandwidth_gbs=16 * 16 * (128 / 130) / 8, latency_s=1.0e-6)
"""PCIe 4.0 x16: 31.5 GB/s per direction (theoretical); NCCL's PCI ring latency."""
RISER = Link(bandwidth_gbs=8 * (128 / 130) / 8, latency_s=1.0e-6)
"""A PCIe 3.0 x1 mining riser: 0.985 GB/s per direction; latency assumed equal to PCIe's."""

INTERCONNECTS: dict[str, Link] = {"nvlink": NVLINK4, "pcie": PCIE4_X16, "riser": RISER}
"""The named links a pool's ``interconnect`` may take."""


def link_of(value: str | float) -> Link:
    """The link a pool's ``interconnect`` names: a name, or a bandwidth (GB/s) with PCIe latency."""
    if isinstance(value, str):
        try:
            return INTERCONNECTS[value]
        except KeyError:
            known = ", ".join(repr(name) for name in INTERCONNECTS)
            raise ValueError(
                f"unknown interconnect {value!r}; expected {known} or a bandwidth in GB/s"
            ) from None
    bandwidth = float(value)
    if not bandwidth > 0 or bandwidth == float("inf"):
        raise ValueError(f"an interconnect's bandwidth must be positive and finite, got {value!r}")
    return Link(bandwidth_gbs=bandwidth, latency_s=PCIE4_X16.latency_s)


def allreduce_s(link: Link, tp: int, nbytes: float) -> float:
    """Time of a ring all-reduce of ``nbytes`` over ``tp`` GPUs on ``link`` (s).

    ``2 (tp-1) / tp × nbytes / bandwidth + 2 (tp-1) × latency``: each GPU sends and receives
    ``(tp-1)/tp`` of the data twice (reduce-scatter, then all-gather), in ``2 (tp-1)`` steps.
    Zero when ``tp == 1``.
    """
    if tp < 1:
        raise ValueError(f"tensor parallelism must be at least 1, got {tp}")
    if tp == 1:
        return 0.0
    steps = 2 * (tp - 1)
    return steps / tp * nbytes / (link.bandwidth_gbs * 1e9) + steps * link.latency_s
