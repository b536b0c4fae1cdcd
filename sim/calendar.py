"""Local wall-clock time of simulation times: hour of day and weekday, DST-correct.

A ``LocalCalendar`` ties simulation seconds to the calendar ``start`` (UTC) and an IANA time
zone. At construction it finds, with ``zoneinfo``, every change of the zone's UTC offset over
the horizon (sampling the offset every ``SAMPLE_S`` and bisecting to the second between two
samples that differ), so a later call costs a bisect in that short table (or nothing while
the time stays in the same stretch), never a ``datetime``. Diurnal profiles read ``hour``
and ``weekday``; the recorder reads ``local_epoch_us`` to write the ``*_local`` columns.
Times outside the covered range extend it on demand.

Pure Python and NumPy: no pandas, no SimPy.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

SAMPLE_S = 6 * 3600
"""Spacing of the offset samples: two changes of offset closer than this (which no zone has
had since the 19th century) and cancelling each other would go unseen."""
MARGIN_S = 40 * 86400
"""Covered before the start and after the horizon from the outset (a billing month may begin
before the run)."""


def zone(name: str | None) -> tzinfo:
    """The time zone called ``name`` (an IANA name such as ``America/Chicago``); UTC if None."""
    return UTC if name is None else ZoneInfo(name)


class LocalCalendar:
    """Local hour of day and weekday of simulation times (seconds since ``start``).

    ``start`` is an aware datetime; ``timezone`` an IANA name (None: UTC); ``horizon_s`` the
    simulated span to prepare for (any time works; times far outside cost one extension).
    """

    def __init__(self, start: datetime, timezone: str | None, horizon_s: float = 0.0) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be an aware datetime")
        self.start = start
        self.timezone = timezone
        self.zone = zone(timezone)
        self.start_epoch = start.timestamp()
        """The start in seconds since 1970-01-01 UTC."""
        lo = int(np.floor(self.start_epoch)) - MARGIN_S
        hi = int(np.ceil(self.start_epoch + max(horizon_s, 0.0))) + MARGIN_S
        self._lo = lo - lo % SAMPLE_S
        self._hi = self._lo
        self._epochs: list[int] = [self._lo]
        """Epoch seconds from which each offset holds (the first: the covered range's start)."""
        self._offsets: list[int] = [self._offset_at(self._lo)]
        """UTC offset in seconds from each of ``_epochs`` on."""
        self._extend(hi)
        self._seg = 0
        self._seg_lo = -np.inf
        self._seg_hi = -np.inf

    # -- the offset table ----------------------------------------------------------------
    def _offset_at(self, epoch: int) -> int:
        """The zone's UTC offset (s) at a whole epoch second."""
        offset = datetime.fromtimestamp(epoch, self.zone).utcoffset()
        assert offset is not None
        return int(offset.total_seconds())

    def _changes(self, a: int, off_a: int, b: int, off_b: int) -> list[tuple[int, int]]:
        """Every change of offset in ``(a, b]`` given the offsets at ``a`` and ``b``."""
        if off_a == off_b:
            return []
        lo, hi = a, b  # the offset is off_a at lo and differs at hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._offset_at(mid) == off_a:
                lo = mid
            else:
                hi = mid
        off_hi = self._offset_at(hi)
        return [(hi, off_hi), *self._changes(hi, off_hi, b, off_b)]

    def _extend(self, hi: int) -> None:
        """Cover epoch seconds up to ``hi`` (rounded up to a sample)."""
        while self._hi < hi:
            b = self._hi + SAMPLE_S
            off_b = self._offset_at(b)
            for epoch, offset in self._changes(self._hi, self._offsets[-1], b, off_b):
                self._epochs.append(epoch)
                self._offsets.append(offset)
            self._hi = b
        self._np_epochs_us = np.array(self._epochs, dtype=np.int64) * 1_000_000
        self._np_offsets_us = np.array(self._offsets, dtype=np.int64) * 1_000_000

    def _extend_back(self, lo: int) -> None:
        """Cover epoch seconds from ``lo`` (rounded down to a sample)."""
        while self._lo > lo:
            a = self._lo - SAMPLE_S
            off_a = self._offset_at(a)
            changes = self._changes(a, off_a, self._lo, self._offsets[0])
            # The old first entry marks the old range's start, not a change: it is dropped
            # (a change exactly there is among ``changes``).
            self._epochs = [a, *(e for e, _ in changes), *self._epochs[1:]]
            self._offsets = [off_a, *(o for _, o in changes), *self._offsets[1:]]
            self._lo = a
        self._np_epochs_us = np.array(self._epochs, dtype=np.int64) * 1_000_000
        self._np_offsets_us = np.array(self._offsets, dtype=np.int64) * 1_000_000
        self._seg_lo = self._seg_hi = -np.inf

    def _cover(self, lo_epoch: float, hi_epoch: float) -> None:
        if lo_epoch < self._lo:
            self._extend_back(int(np.floor(lo_epoch)))
        if hi_epoch > self._hi:
            self._extend(int(np.ceil(hi_epoch)))
            self._seg_lo = self._seg_hi = -np.inf

    @property
    def transitions(self) -> list[tuple[float, int]]:
        """Each change of UTC offset in the covered range: (simulation time s, new offset s)."""
        pairs = zip(self._epochs[1:], self._offsets[1:], strict=True)
        return [(epoch - self.start_epoch, offset) for epoch, offset in pairs]

    # -- scalar queries ------------------------------------------------------------------
    def offset_s(self, t: float) -> int:
        """The UTC offset (s) of local time at simulation time ``t``."""
        epoch = self.start_epoch + t
        if self._seg_lo <= epoch < self._seg_hi:
            return self._offsets[self._seg]
        if not self._lo <= epoch < self._hi:
            self._cover(epoch, epoch + 1)
        k = bisect_right(self._epochs, epoch) - 1
        self._seg = k
        self._seg_lo = self._epochs[k]
        self._seg_hi = self._epochs[k + 1] if k + 1 < len(self._epochs) else self._hi
        return self._offsets[k]

    def local_s(self, t: float) -> float:
        """Local wall-clock time at simulation time ``t``, as seconds since 1970-01-01 local."""
        return self.start_epoch + t + self.offset_s(t)

    def hour(self, t: float) -> int:
        """Local hour of day (0-23) at simulation time ``t``."""
        return int(self.local_s(t) // 3600.0 % 24)

    def weekday(self, t: float) -> int:
        """Local weekday at simulation time ``t``: Monday 0 to Sunday 6."""
        return int((self.local_s(t) // 86400.0 + 3) % 7)  # 1970-01-01 was a Thursday

    def hour_and_weekday(self, t: float) -> tuple[int, int]:
        """``(hour, weekday)`` at simulation time ``t`` in one lookup."""
        local = self.local_s(t)
        return int(local // 3600.0 % 24), int((local // 86400.0 + 3) % 7)

    # -- columns -------------------------------------------------------------------------
    def local_epoch_us(self, utc_us: Any) -> np.ndarray:
        """Local wall-clock times of UTC epoch microseconds, as naive epoch microseconds.

        Vectorised: one ``searchsorted`` over the offset table for the whole array.
        """
        us = np.asarray(utc_us, dtype=np.int64)
        if us.size:
            self._cover(float(us.min()) / 1e6, float(us.max()) / 1e6 + 1)
        k = np.searchsorted(self._np_epochs_us, us, side="right") - 1
        result: np.ndarray = us + self._np_offsets_us[np.maximum(k, 0)]
        return result
