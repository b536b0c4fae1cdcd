"""GPU pools: best-fit gang placement over free-GPU buckets, and the capacity object."""

from __future__ import annotations

import random

from sim.config.catalogue import BUILTIN_GPU_TYPES
from sim.config.scenario import Pool
from sim.model.pools import Capacity, PoolState


def make_pool(
    nodes: int = 4, per_node: int = 8, name: str = "p", gpu: str = "H100-SXM"
) -> PoolState:
    cfg = Pool(name=name, gpu_type=gpu, nodes=nodes, gpus_per_node=per_node)
    return PoolState(0, cfg, BUILTIN_GPU_TYPES[gpu])


def test_small_gang_goes_to_the_fullest_node_that_fits():
    pool = make_pool()
    assert pool.allocate(6) == [(0, 6)]  # node 0 now has 2 free
    assert pool.allocate(2) == [(0, 2)]  # best fit: node 0, not a fresh node
    assert pool.allocate(3) == [(1, 3)]
    assert pool.free_gpus == 32 - 11


def test_large_gang_takes_whole_nodes_then_the_best_fit():
    pool = make_pool()
    pool.allocate(5)  # node 0: 3 free
    taken = pool.allocate(19)  # two whole nodes and 3 more
    assert sorted(c for _, c in taken) == [3, 8, 8]
    assert pool.free_gpus == 32 - 24


def test_refuses_what_does_not_fit_and_releases():
    pool = make_pool(nodes=2)
    a = pool.allocate(10)
    assert pool.allocate(7) is None
    pool.release(a)
    assert pool.free_gpus == 16 and pool.free == [8, 8]


def test_random_allocations_keep_the_index_consistent():
    rng = random.Random(3)
    pool = make_pool(nodes=20, per_node=8)
    held = []
    for _ in range(2000):
        if held and rng.random() < 0.5:
            pool.release(held.pop(rng.randrange(len(held))))
        else:
            got = pool.allocate(rng.randint(1, 20))
            if got is not None:
                held.append(got)
        assert pool.free_gpus == sum(pool.free)
        for k, bucket in enumerate(pool.buckets):
            for i, node in enumerate(bucket):
                assert pool.free[node] == k and pool.pos[node] == i
    assert sum(c for alloc in held for _, c in alloc) == 160 - pool.free_gpus


def test_capacity_respects_memory_pool_and_pinning():
    small = PoolState(
        0,
        Pool(name="rigs", gpu_type="RTX-3090", nodes=2, gpus_per_node=8),
        BUILTIN_GPU_TYPES["RTX-3090"],
    )
    big = PoolState(
        1,
        Pool(name="hall", gpu_type="H100-SXM", nodes=1, gpus_per_node=8),
        BUILTIN_GPU_TYPES["H100-SXM"],
    )
    cap = Capacity([small, big])
    assert cap.place(cap.demand(4, 40, None)).pool is big  # 24 GB cards are not eligible
    assert cap.place(cap.demand(4, 0, None)).pool is small  # first pool with room
    assert cap.demand(1, 0, "hall").pools == (big,)
    pinned = cap.place(cap.demand(8, 0, "rigs"))
    cap.pin(pinned)
    assert cap.never_fits(cap.demand(16, 0, "rigs")) is not None
    assert cap.never_fits(cap.demand(8, 0, "rigs")) is None
    assert "no eligible pool" in cap.never_fits(cap.demand(1, 100, None))


def test_a_gang_larger_than_a_node_falls_back_to_the_fullest_partial_node():
    """No whole node free and no node with room for the rest: the fallback takes the node with
    the MOST free GPUs below the need (fewest nodes touched), then places the rest best fit.

    4 nodes x 8, free = [3, 5, 2, 6] (16 free). A 10-GPU gang: nothing has 8 or 10 free, so
    take node 3 (6 free) -> need 4; node 1 (5 free) is the fullest node with room for 4:
    [(3, 6), (1, 4)]. Taking the emptiest partial node first would give node 2 x2, node 0 x3,
    node 1 x5. A 13-GPU gang: node 3 x6 -> need 7, still no node with 7: node 1 x5 -> need 2,
    node 2 (2 free) fits exactly: [(3, 6), (1, 5), (2, 2)].
    """

    def pool_with_free(free: list[int]) -> PoolState:
        pool = make_pool(nodes=len(free), per_node=8)
        everything = pool.allocate(8 * len(free))
        assert everything is not None and pool.free_gpus == 0
        pool.release([(node, count) for node, count in enumerate(free)])
        assert pool.free == free
        return pool

    pool = pool_with_free([3, 5, 2, 6])
    assert pool.allocate(10) == [(3, 6), (1, 4)]
    assert pool.free == [3, 1, 2, 0] and pool.free_gpus == 6

    pool = pool_with_free([3, 5, 2, 6])
    assert pool.allocate(13) == [(3, 6), (1, 5), (2, 2)]
    assert pool.free == [3, 0, 0, 0] and pool.free_gpus == 3
