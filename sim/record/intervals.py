"""The intervals of the per-workload time series: ``(k × step, (k + 1) × step]``.

The last ends at the horizon. Pure Python, shared by the model (which closes them) and the
recorder (which files requests into them), so both count them the same way.
"""

from __future__ import annotations

import math

TOLERANCE = 1e-9
"""A boundary within this share of a step below the horizon is the horizon (3 × 0.3 s is
0.8999999999999999 s, not 0.9 s)."""


def interval_count(step_s: float, horizon_s: float) -> int:
    """How many intervals of ``step_s`` cover ``(0, horizon_s]`` (the last may be shorter)."""
    return max(1, math.ceil(horizon_s / step_s - TOLERANCE))
