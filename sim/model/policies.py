"""Queue policies for training jobs, registered by name (``[scheduler] policy``).

A policy orders waiting jobs; the scheduler starts the head while it fits and never lets a
later job overtake it (strict order), so a policy is only the order. A policy whose queue has
``backfills = True`` also lets the scheduler start later jobs that do not delay the head
(EASY backfilling, ``sim.model.training``); it then offers them with ``behind_head`` and
gives up the ones started with ``remove``.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any, Generic, Protocol, TypeVar

from sim.registry import Registry


class Queued(Protocol):
    """What a policy may look at: a job's priority and id (ids follow submission order)."""

    id: int

    @property
    def priority(self) -> int:
        """Higher goes first under the priority policy."""
        ...

    @property
    def requested_s(self) -> float:
        """The user's estimate of the job's run time: shorter goes first under sjf."""
        ...


Job = TypeVar("Job", bound=Queued)


class JobQueue(Protocol[Job]):
    """Waiting jobs in the order a policy starts them."""

    def push(self, job: Job) -> None:
        """Add a job."""
        ...

    def head(self) -> Job | None:
        """The job to start next, if any."""
        ...

    def requeue(self, job: Job) -> None:
        """Put back a job that was interrupted, in its place by submission."""
        ...

    def pop(self) -> Job:
        """Remove and return the head."""
        ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Job]: ...


QUEUE_POLICIES: Registry[Callable[[], JobQueue[Any]]] = Registry("scheduler policy")


@QUEUE_POLICIES.register("fifo")
class FifoQueue(Generic[Job]):
    """First submitted, first started."""

    def __init__(self) -> None:
        self._jobs: deque[Job] = deque()

    def push(self, job: Job) -> None:
        """Add a job at the back."""
        self._jobs.append(job)

    def requeue(self, job: Job) -> None:
        """Put a job back among the waiting ones in submission (id) order."""
        jobs = self._jobs
        i = 0
        while i < len(jobs) and jobs[i].id < job.id:
            i += 1
        jobs.insert(i, job)

    def head(self) -> Job | None:
        """The oldest job."""
        return self._jobs[0] if self._jobs else None

    def pop(self) -> Job:
        """Remove the oldest job."""
        return self._jobs.popleft()

    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self) -> Iterator[Job]:
        return iter(self._jobs)


class KeyedQueue(Generic[Job]):
    """Waiting jobs in the order of ``key(job)``, then submission (id): a heap.

    An interrupted job goes back in its place, like any other.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Job]] = []

    @staticmethod
    def key(job: Job) -> float:
        """What orders the jobs, lowest first."""
        raise NotImplementedError

    def push(self, job: Job) -> None:
        """Add a job by its key, then submission (id) order."""
        heapq.heappush(self._heap, (self.key(job), job.id, job))

    def requeue(self, job: Job) -> None:
        """Put back an interrupted job in its place, like any other."""
        self.push(job)

    def head(self) -> Job | None:
        """The job with the lowest key, oldest among equals."""
        return self._heap[0][2] if self._heap else None

    def pop(self) -> Job:
        """Remove the head."""
        return heapq.heappop(self._heap)[2]

    def __len__(self) -> int:
        return len(self._heap)

    def __iter__(self) -> Iterator[Job]:
        return (entry[2] for entry in sorted(self._heap))


@QUEUE_POLICIES.register("priority")
class PriorityQueue(KeyedQueue[Job]):
    """Higher workload priority first; first submitted first within a priority."""

    @staticmethod
    def key(job: Job) -> float:
        """Minus the priority: the highest first."""
        return -job.priority


@QUEUE_POLICIES.register("sjf")
class ShortestFirstQueue(KeyedQueue[Job]):
    """Shortest requested run time first; first submitted first among equals.

    The requested run time is the trace's ``requested`` mark, else the job's duration.
    """

    @staticmethod
    def key(job: Job) -> float:
        """The requested run time."""
        return job.requested_s


@QUEUE_POLICIES.register("backfill")
class BackfillQueue(FifoQueue[Job]):
    """Submission order, with EASY backfilling.

    A later job may start ahead of a head that does not fit if it does not delay the head's
    reservation (``sim.model.training``).
    """

    backfills = True

    def behind_head(self, depth: int) -> list[Job]:
        """Up to ``depth`` jobs after the head, in order."""
        return list(islice(self._jobs, 1, depth + 1))

    def remove(self, job: Job) -> None:
        """Take out a job that started ahead of the head."""
        self._jobs.remove(job)


class Suspendable(Protocol):
    """What a power policy may look at in a running training job."""

    id: int
    gpus: int
    priority: int
    start_s: float


POWER_POLICIES: Registry[Callable[[Suspendable], tuple[float, ...]]] = Registry("power policy")
"""Which running training jobs the power ladder suspends first: a sort key, lowest first.

Suspended jobs resume in the reverse order (the last to have been chosen first)."""


@POWER_POLICIES.register("lowest-priority-first")
def lowest_priority_first(job: Suspendable) -> tuple[float, ...]:
    """Lowest priority first; among equals the most recently started (least work lost)."""
    return (job.priority, -job.start_s, -job.id)


@POWER_POLICIES.register("newest-first")
def newest_first(job: Suspendable) -> tuple[float, ...]:
    """The most recently started first, whatever its priority."""
    return (-job.start_s, -job.id)


@POWER_POLICIES.register("largest-first")
def largest_first(job: Suspendable) -> tuple[float, ...]:
    """The job holding the most GPUs first (fewest suspensions for the power shed)."""
    return (-job.gpus, job.priority, -job.id)
