"""The per-run tree of random streams: one named, independent stream per subsystem and workload.

Each stream is a child of the scenario seed's ``SeedSequence`` whose spawn key is derived from
its name, so adding a workload or a subsystem does not change the draws of the others (plain
``SeedSequence.spawn`` numbers children by creation order, which would).
"""

from __future__ import annotations

import hashlib

import numpy as np


class RandomStreams:
    """Named random streams derived from one seed."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def stream(self, *names: str) -> np.random.Generator:
        """The generator for ``names`` (e.g. ``("workload", "chat", "arrival")``)."""
        digest = hashlib.blake2b("/".join(names).encode(), digest_size=16).digest()
        key = tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))
        seq = np.random.SeedSequence(entropy=self.seed, spawn_key=key)
        return np.random.Generator(np.random.PCG64(seq))
