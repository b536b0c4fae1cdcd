"""Log-bucket histograms: percentiles within 1 % from a few kilobytes, whatever the row count.

Bucket 0 holds values below ``SMALLEST_S`` (1 µs, read as 0); bucket ``b >= 1`` holds
``[SMALLEST_S × GROWTH**(b-1), SMALLEST_S × GROWTH**b)``, up to ``LARGEST_S``; larger values
go to the last bucket. A percentile is the nearest-rank order statistic (the smallest value
with at least ``q`` of the values at or below it), reported as its bucket's midpoint, so it is
within ``(GROWTH - 1) / 2 = 1 %`` of the true order statistic for values from 1 µs to
``LARGEST_S``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

SMALLEST_S = 1e-6
LARGEST_S = 1e9
GROWTH = 1.02
RELATIVE_ERROR = (GROWTH - 1) / 2
_LOG_GROWTH = math.log(GROWTH)
BUCKETS = 2 + math.ceil(math.log(LARGEST_S / SMALLEST_S) / _LOG_GROWTH)
"""Number of buckets (1,747)."""


def empty() -> np.ndarray:
    """A histogram with no values: a count per bucket (int64)."""
    return np.zeros(BUCKETS, dtype=np.int64)


def bucket_of(values: np.ndarray) -> np.ndarray:
    """The bucket of each value (int64; NaN must have been removed)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.floor(np.log(values / SMALLEST_S) / _LOG_GROWTH) + 1
    b = np.where(values < SMALLEST_S, 0, b)
    out: np.ndarray = np.clip(b, 0, BUCKETS - 1).astype(np.int64)
    return out


def bucket_of_one(value: float) -> int:
    """The bucket of one value."""
    if value < SMALLEST_S:
        return 0
    return min(math.floor(math.log(value / SMALLEST_S) / _LOG_GROWTH) + 1, BUCKETS - 1)


def lower_edges(buckets: np.ndarray) -> np.ndarray:
    """The lower edge (s) of each bucket."""
    b = np.asarray(buckets, dtype=np.float64)
    return np.where(b == 0, 0.0, SMALLEST_S * GROWTH ** (b - 1))


def upper_edges(buckets: np.ndarray) -> np.ndarray:
    """The upper edge (s) of each bucket."""
    b = np.asarray(buckets, dtype=np.float64)
    return SMALLEST_S * GROWTH**b


def midpoints(buckets: np.ndarray) -> np.ndarray:
    """The value a bucket stands for: 0 for bucket 0, else the midpoint of its edges."""
    b = np.asarray(buckets)
    mid = (lower_edges(b) + upper_edges(b)) / 2
    return np.where(b == 0, 0.0, mid)


def percentiles(buckets: np.ndarray, counts: np.ndarray, qs: Sequence[float]) -> list[float | None]:
    """Nearest-rank percentiles (``qs`` in 0–100) of a histogram given as (bucket, count) pairs."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return [None] * len(qs)
    order = np.argsort(buckets, kind="stable")
    b = np.asarray(buckets)[order]
    cum = np.cumsum(counts[order])
    mids = midpoints(b)
    out: list[float | None] = []
    for q in qs:
        rank = max(math.ceil(q / 100 * total), 1)
        out.append(float(mids[int(np.searchsorted(cum, rank))]))
    return out
