"""Work sharing between localhost workers: every chunk computed exactly once,
by real processes over a real shared file, and a reduction that does not
depend on who computed which chunk."""

from __future__ import annotations

import fcntl
import multiprocessing as mp
import os
from dataclasses import replace

import numpy as np
import pytest

from sklearn_serverless._state import sum_in_worker_order
from sklearn_serverless._worker._partitions import Partition
from sklearn_serverless._worker._sharing import (
    OWN,
    Chunks,
    Team,
    fold_partials,
    fold_table,
    partial_table,
    shared_array,
)


def _chunk_vectors(n_owners=3, n_chunks=5, size=40, seed=0):
    """Partial results of wildly different magnitudes, so that any change in
    the order of the additions shows in the bits."""
    rng = np.random.RandomState(seed)
    return [[rng.randn(size) * 10.0 ** rng.randint(-6, 7, size) for _ in range(n_chunks)]
            for _ in range(n_owners)]


def _fold(vectors):
    total = np.zeros_like(vectors[0])
    for vector in vectors:
        total += vector
    return total


def test_fold_is_the_same_whoever_computed_each_chunk():
    c = _chunk_vectors()
    alone = [partial_table(_fold(c[w]), w, []) for w in range(3)]
    reference = fold_partials(alone)
    np.testing.assert_array_equal(reference, sum_in_worker_order([_fold(c[w]) for w in range(3)]))
    # Owner 0 did chunks 0-2 (worker 2 took 3 and 4); owner 1 did 0-1 (workers 2 and 0
    # took 2-4); owner 2 did all of its own. Tables arrive in worker order.
    shared = [
        partial_table(_fold(c[0][:3]), 0, [(1, 4, c[1][4]), (1, 2, c[1][2])]),
        partial_table(_fold(c[1][:2]), 1, []),
        partial_table(_fold(c[2]), 2, [(0, 4, c[0][4]), (0, 3, c[0][3]), (1, 3, c[1][3])]),
    ]
    np.testing.assert_array_equal(fold_partials(shared), reference)
    # The check has teeth: adding what a helper computed into its own sum
    # (the obvious reduction) changes the bits.
    naive = sum_in_worker_order([fold_table(table) for table in shared])
    np.testing.assert_allclose(naive, reference, rtol=1e-9, atol=1e-9)
    assert not np.array_equal(naive, reference)


def test_fold_needs_every_owners_own_row():
    c = _chunk_vectors(n_owners=2)
    table = partial_table(_fold(c[0]), 0, [(1, 0, c[1][0])])
    with pytest.raises(RuntimeError, match="owner 1"):
        fold_partials([table])
    assert table[0, 1] == OWN


def test_plain_vectors_are_summed_in_worker_order():
    parts = [row for row in _chunk_vectors(n_owners=1, n_chunks=4)[0]]
    np.testing.assert_array_equal(fold_partials(parts), sum_in_worker_order(parts))


def _team(worker, n_workers, folder, slow=0.0):
    rows = 100
    peers = tuple(Partition("files", str(folder), w * rows, (w + 1) * rows)
                  for w in range(n_workers))
    return Team(worker, n_workers, peers), slow


def _claim(team_and_pause, n_chunks, barrier, out):
    team, pause = team_and_pause
    chunks = Chunks(team, n_chunks, pause)
    chunks.open_round(1)
    barrier.wait(10)
    mine, taken = [], []
    while (run := chunks.take()) is not None:
        mine += [(team.rank, c) for c in range(*run)]
    while (got := chunks.steal()) is not None:
        taken.append(got)
    chunks.close()
    out.put((team.rank, mine, taken))


def test_every_chunk_is_computed_once_and_a_slow_owner_is_helped(tmp_path):
    n_workers, n_chunks = 3, [20, 21, 20]
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(n_workers), ctx.Queue()
    slow = {2: 0.02}  # worker 2 sleeps 20 ms per chunk: the others take its last chunks
    processes = [
        ctx.Process(target=_claim, args=(_team(w, n_workers, tmp_path, slow.get(w, 0.0)),
                                         n_chunks, barrier, out))
        for w in range(n_workers)
    ]
    for process in processes:
        process.start()
    results = [out.get(timeout=30) for _ in processes]
    for process in processes:
        process.join(10)
        assert process.exitcode == 0
    done = [chunk for _, mine, taken in results for chunk in mine + taken]
    expected = [(w, c) for w in range(n_workers) for c in range(n_chunks[w])]
    assert sorted(done) == expected  # each chunk exactly once
    by_worker = {worker: (mine, taken) for worker, mine, taken in results}
    helped_2 = [chunk for w in (0, 1) for chunk in by_worker[w][1] if chunk[0] == 2]
    assert helped_2, "nobody helped the slow worker"
    # The owner takes from the front, helpers from the back.
    own_2 = [c for _, c in by_worker[2][0]]
    assert own_2 == list(range(len(own_2)))
    assert min(c for _, c in helped_2) == len(own_2)


def test_a_new_round_is_not_taken_from_an_owner_that_has_not_opened_it(tmp_path):
    owner = Chunks(_team(0, 2, tmp_path)[0], [4, 4])
    helper = Chunks(_team(1, 2, tmp_path)[0], [4, 4])
    owner.open_round(1)
    helper.open_round(1)
    while helper.take() is not None:
        pass
    assert helper.steal() == (0, 3)
    helper.open_round(2)  # owner 0 is still in round 1
    assert helper.steal() is None
    owner.close()
    helper.close()


def test_without_shared_rows_the_owner_computes_all_of_its_chunks():
    chunks = Chunks(Team(0, 2), [7, 7])
    chunks.open_round(1)
    runs = []
    while (run := chunks.take()) is not None:
        runs.append(run)
    assert runs[0][0] == 0 and runs[-1][1] == 7
    assert all(a[1] == b[0] for a, b in zip(runs[:-1], runs[1:], strict=True))
    assert chunks.steal() is None


def test_shared_array_is_one_array_for_every_opener(tmp_path):
    path = str(tmp_path / "labels")
    first = shared_array(path, (10,), np.int32)
    first[:] = np.arange(10)
    second = shared_array(path, (10,), np.int32)
    np.testing.assert_array_equal(second, np.arange(10))
    second[3] = -1
    assert first[3] == -1


def test_a_held_sharing_lock_times_out(tmp_path):
    team, _ = _team(0, 2, tmp_path)
    team = Team(0, 2, tuple(replace(p, timeout=0.3) for p in team.peers))
    chunks = Chunks(team, [4, 4])
    other = os.open(os.path.join(tmp_path, "chunks"), os.O_RDWR)
    fcntl.flock(other, fcntl.LOCK_EX)  # a stopped process holding it
    try:
        with pytest.raises(TimeoutError, match="work-sharing lock"):
            chunks.open_round(1)
    finally:
        os.close(other)
    chunks.open_round(1)
    assert chunks.take() == (0, 1)
    chunks.close()
