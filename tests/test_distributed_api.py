"""The public algorithm API, ``sklearn_serverless.distributed``, with real
Lithops localhost workers: the rounds (allreduce, gather, log, finish), what
a run returns, user modules the workers cannot import, datasets, and errors.
"""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
import uuid

import numpy as np
import pytest

from sklearn_serverless import read_npy
from sklearn_serverless.distributed import Algorithm, Context, Rounds, RunResult, run

#: Both ways the workers combine partials, on both state stores.
MODES = ["lock_free", "locked"]


@pytest.fixture(params=["sqlite", "redis"])
def state_store(request):
    """``None`` (the embedded shared-memory store) or the session's redis-server; a
    run leaves no key of its own in Redis."""
    if request.param == "sqlite":
        yield None
        return
    server = request.getfixturevalue("redis_server")
    yield server.url
    assert [key for key in server.keys() if key.startswith(b"sks:")] == []


# least squares through the normal equations ------------------------------------------


class NormalEquations:
    """Each worker's share of X^T X and X^T y."""

    def __init__(self, data, params, context):
        self.X, self.y = data["X"], data["y"]

    def handle(self, command, arrays):
        if command == "gram":
            return self.X.T @ self.X
        if command == "moment":
            return self.X.T @ self.y
        raise ValueError(f"unknown command {command!r}")


def solve_normal_equations(rounds, params):
    gram = rounds.allreduce("gram")
    moment = rounds.allreduce("moment")
    return {"coef": np.linalg.solve(gram, moment)}


LEAST_SQUARES = Algorithm("least_squares", NormalEquations, solve_normal_equations)


@pytest.mark.parametrize("n_workers", [1, 3])
def test_least_squares_is_numpys(n_workers, leaves_nothing):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 6))
    y = X @ rng.normal(size=6) + 0.1 * rng.normal(size=1000)
    out = run(LEAST_SQUARES, {"X": X, "y": y}, n_workers=n_workers)
    assert isinstance(out, RunResult)
    assert out.n_workers == n_workers
    expected, *_ = np.linalg.lstsq(X, y, rcond=None)
    np.testing.assert_allclose(out.result["coef"], expected, rtol=0, atol=1e-10)
    assert out.timings["n_rounds"] == 2
    assert out.timings["compute"].shape == (2, n_workers)
    assert out.timings["load"].shape == (n_workers,)


# gather: per-worker arrays of any shape and dtype -------------------------------------


class Describe:
    """Answers with what this worker holds: its row count, its first row, its
    rank as a 2-D block of its own shape."""

    def __init__(self, data, params, context):
        self.X, self.context = data["X"], context

    def handle(self, command, arrays):
        if command == "count":
            return np.array([self.X.shape[0]], dtype=np.int64)
        if command == "first":
            return self.X[0].astype(np.float32)
        if command == "block":
            rank = self.context.rank
            return np.full((rank + 1, rank + 2), rank, dtype=np.uint8)
        if command == "scaled_first":
            return self.X[0] * arrays[0]
        return np.zeros(0)


def describe(rounds, params):
    return {"count": rounds.gather("count"), "first": rounds.gather("first"),
            "block": rounds.gather("block"),
            "scaled_first": rounds.gather("scaled_first", np.array([2.0, 3.0]))}


DESCRIBE = Algorithm("describe", Describe, describe)


@pytest.mark.parametrize("n_workers", [1, 3])
@pytest.mark.parametrize("mode", MODES)
def test_gather_keeps_each_workers_shape_and_dtype(state_store, mode, n_workers,
                                                   leaves_nothing):
    X = np.arange(2 * 101, dtype=np.float64).reshape(101, 2)
    out = run(DESCRIBE, {"X": X}, n_workers=n_workers, state_store=state_store,
              state_mode=mode)
    count, first, block = out.result["count"], out.result["first"], out.result["block"]
    assert len(count) == len(first) == len(block) == n_workers
    assert all(c.dtype == np.int64 and c.shape == (1,) for c in count)
    n_rows = [int(c[0]) for c in count]
    assert sum(n_rows) == 101
    assert min(n_rows) >= 1
    starts = np.concatenate([[0], np.cumsum(n_rows)[:-1]])
    # Contiguous blocks of rows, in worker order.
    for rank in range(n_workers):
        assert first[rank].dtype == np.float32
        np.testing.assert_array_equal(first[rank], X[starts[rank]].astype(np.float32))
        np.testing.assert_array_equal(out.result["scaled_first"][rank],
                                      X[starts[rank]] * [2.0, 3.0])
        assert block[rank].dtype == np.uint8
        assert block[rank].shape == (rank + 1, rank + 2)
        assert (block[rank] == rank).all()


# allreduce: a plain sum of partials of any shape --------------------------------------


class Shapes:
    """Partials of several shapes, each a function of the rank."""

    def __init__(self, data, params, context):
        self.rank = context.rank

    def handle(self, command, arrays):
        r = self.rank + 1
        if command == "scalar":
            return np.array(float(r))
        if command == "matrix":  # rows like a chunk table's: must still be summed as is
            return r * np.arange(12, dtype=np.float64).reshape(4, 3)
        if command == "int_matrix":
            return np.full((2, 5), r, dtype=np.int32)
        if command == "cube":
            return r * np.ones((2, 3, 4))
        if command == "echo":
            return arrays[0] * r
        return np.zeros(0)


def reduce_shapes(rounds, params):
    return {command: rounds.allreduce(command)
            for command in ("scalar", "matrix", "int_matrix", "cube")} | {
        "echo": rounds.allreduce("echo", np.eye(2))}


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("mode", MODES)
def test_allreduce_of_any_shape_is_a_plain_sum(mode, n, leaves_nothing):
    # One worker's rounds skip the store's round trip: the same sums, dtypes and shapes.
    out = run(Algorithm("shapes", Shapes, reduce_shapes), {"X": np.zeros((30, 1))},
              n_workers=n, state_mode=mode)
    total = sum(range(1, n + 1))  # 1 + 2 + 3
    res = out.result
    assert res["scalar"].shape == () and res["scalar"] == total
    assert res["matrix"].shape == (4, 3)
    np.testing.assert_array_equal(res["matrix"], total * np.arange(12).reshape(4, 3))
    assert res["int_matrix"].dtype == np.float64  # partials are summed in float64
    np.testing.assert_array_equal(res["int_matrix"], np.full((2, 5), total))
    np.testing.assert_array_equal(res["cube"], total * np.ones((2, 3, 4)))
    np.testing.assert_array_equal(res["echo"], total * np.eye(2))


class Cancelling:
    """Worker 0 answers 1e16, worker 1 answers 1, worker 2 answers -1e16: the
    float sum depends on the order in which they are added."""

    VALUES = (1e16, 1.0, -1e16)

    def __init__(self, data, params, context):
        self.value = self.VALUES[context.rank]

    def handle(self, command, arrays):
        return np.array([self.value])


def test_lock_free_allreduce_adds_in_worker_order(leaves_nothing):
    out = run(Algorithm("cancelling", Cancelling,
                        lambda rounds, params: {"sum": rounds.allreduce("sum")}),
              {"X": np.zeros((3, 1))}, n_workers=3, state_mode="lock_free")
    # (1e16 + 1) + -1e16 == 0 in float64; any other order of addition gives 1 or 2.
    assert out.result["sum"][0] == (1e16 + 1.0) + -1e16 == 0.0


# log, result(), finish, params ---------------------------------------------------------


class Ranked:
    """A worker that reports its rank, its row count and what the
    coordinator's finish() gave."""

    def __init__(self, data, params, context):
        assert isinstance(context, Context)
        self.context, self.n_rows = context, data["X"].shape[0]
        self.offset, self.final = params["offset"], None

    def handle(self, command, arrays):
        if command != "rank":
            raise ValueError(f"unknown command {command!r}")
        return np.array([self.context.rank + self.offset], dtype=np.float64)

    def result(self, *final):
        self.final = [a.tolist() for a in final]
        return {"rank": self.context.rank, "n_workers": self.context.n_workers,
                "n_rows": self.n_rows, "final": self.final}


def ranked(rounds, params):
    assert isinstance(rounds, Rounds)
    rounds.log(f"{rounds.n_workers} workers, offset {params['offset']}")
    ranks = rounds.allreduce("rank")
    rounds.log(f"sum of ranks plus offsets: {ranks[0]:g}")
    rounds.finish(np.array([7, 8]), np.array([[1.5]]))
    return {"ranks": ranks}


RANKED = Algorithm("ranked", Ranked, ranked)


def test_log_lines_are_printed_with_verbose(capsys, leaves_nothing):
    out = run(RANKED, {"X": np.zeros((40, 2))}, params={"offset": 10}, n_workers=3,
              verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert "3 workers, offset 10" in lines
    assert "sum of ranks plus offsets: 33" in lines
    assert lines.index("3 workers, offset 10") < lines.index("sum of ranks plus offsets: 33")
    assert out.result["ranks"][0] == 33.0


def test_log_lines_are_not_printed_without_verbose(capsys, leaves_nothing):
    run(RANKED, {"X": np.zeros((40, 2))}, params={"offset": 0}, n_workers=2)
    assert "workers, offset" not in capsys.readouterr().out


def test_worker_results_come_in_worker_order(leaves_nothing):
    out = run(RANKED, {"X": np.zeros((40, 2))}, params={"offset": 0}, n_workers=4)
    assert out.n_workers == 4
    assert [r["rank"] for r in out.worker_results] == [0, 1, 2, 3]
    assert all(r["n_workers"] == 4 for r in out.worker_results)
    assert sum(r["n_rows"] for r in out.worker_results) == 40
    # What finish() gave reaches every worker's result().
    assert all(r["final"] == [[7, 8], [[1.5]]] for r in out.worker_results)
    # The run's result is the coordinator's dict together with worker 0's result().
    assert out.result["rank"] == 0
    assert out.result["ranks"][0] == 6.0


# an algorithm in a module the workers cannot import ------------------------------------

USER_MODULE = '''
"""A user's own algorithm: column means, in a module no worker can import."""

import numpy as np

from sklearn_serverless.distributed import Algorithm


def scale(values, factor):
    return values * factor


class ColumnSums:
    def __init__(self, data, params, context):
        self.X = data["X"]

    def handle(self, command, arrays):
        if command == "count":
            return np.array([self.X.shape[0]], dtype=np.float64)
        if command == "fail":
            raise ArithmeticError("the user's own error")
        return scale(self.X.sum(axis=0), 1.0)


def coordinate(rounds, params):
    n = rounds.allreduce("count")[0]
    return {"mean": rounds.allreduce("sums") / n, "module": __name__}


MEANS = Algorithm("column_means", ColumnSums, coordinate)
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module written to ``tmp_path`` and importable by the driver only (its
    folder is on this process's ``sys.path``, not the workers')."""
    name = f"user_algorithm_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(name)
    yield module
    sys.modules.pop(name, None)
    import cloudpickle

    try:
        cloudpickle.unregister_pickle_by_value(module)
    except ValueError:
        pass


def test_the_workers_cannot_import_the_user_module(user_module, monkeypatch, leaves_nothing):
    """The control: without its code shipped by value, the run fails."""
    from sklearn_serverless._driver import _fit

    monkeypatch.setattr(_fit, "ship_by_value", lambda algorithm: {})
    with pytest.raises(ModuleNotFoundError, match=user_module.__name__):
        run(user_module.MEANS, {"X": np.ones((10, 2))}, n_workers=2, timeout=30)


def test_a_worker_traceback_names_the_user_file(user_module, leaves_nothing):
    import traceback

    algorithm = Algorithm("fails", user_module.ColumnSums,
                          lambda rounds, params: {"x": rounds.allreduce("fail")})
    with pytest.raises(ArithmeticError, match="the user's own error") as info:
        run(algorithm, {"X": np.ones((10, 2))}, n_workers=2, timeout=30)
    text = "".join(traceback.format_exception(info.value))
    assert "<dynamic-code>" not in text
    lines = open(user_module.__file__).read().splitlines()
    line = 1 + next(i for i, text in enumerate(lines) if "raise ArithmeticError" in text)
    assert f'File "{user_module.__file__}", line {line}, in handle' in text
    assert 'raise ArithmeticError("the user\'s own error")' in text


def test_user_module_runs_on_localhost(user_module, leaves_nothing):
    X = np.random.default_rng(1).normal(size=(300, 4))
    out = run(user_module.MEANS, {"X": X}, n_workers=2)
    np.testing.assert_allclose(out.result["mean"], X.mean(axis=0), rtol=1e-12)
    assert out.result["module"] == user_module.__name__


@pytest.mark.redis
def test_user_module_runs_on_the_cloud_path(user_module, cloud, leaves_nothing):
    X = np.random.default_rng(2).normal(size=(300, 4))
    out = run(user_module.MEANS, {"X": X}, n_workers=2, backend=cloud.config,
              state_store=cloud.redis.url)
    np.testing.assert_allclose(out.result["mean"], X.mean(axis=0), rtol=1e-12)


# datasets -------------------------------------------------------------------------------


class DatasetRows:
    def __init__(self, data, params, context):
        self.data = data
        self.X = data["X"]

    def handle(self, command, arrays):
        if command == "where":
            return np.array([self.X.shape[0], self.data["row_offset"]])
        if command == "keys":
            return np.frombuffer(",".join(sorted(self.data)).encode(), dtype=np.uint8)
        return self.X.sum(axis=0)


def dataset_rows(rounds, params):
    return {"where": rounds.gather("where"), "sums": rounds.allreduce("sums"),
            "keys": [k.tobytes().decode().split(",") for k in rounds.gather("keys")]}


def test_a_dataset_reaches_the_workers_as_X(tmp_path, leaves_nothing):
    X = np.random.default_rng(3).normal(size=(500, 3))
    path = tmp_path / "X.npy"
    np.save(path, X)
    out = run(Algorithm("dataset_rows", DatasetRows, dataset_rows), read_npy(str(path)),
              n_workers=2)
    assert out.n_workers == 2
    (rows_0, offset_0), (rows_1, offset_1) = out.result["where"]
    assert rows_0 + rows_1 == 500
    assert (offset_0, offset_1) == (0, rows_0)  # contiguous blocks, in worker order
    np.testing.assert_allclose(out.result["sums"], X.sum(axis=0), rtol=1e-12)
    for keys in out.result["keys"]:
        assert "X" in keys and "y" not in keys  # an .npy dataset has no label column


# errors ---------------------------------------------------------------------------------


class FailsOnRankOne:
    def __init__(self, data, params, context):
        self.rank = context.rank

    def handle(self, command, arrays):
        if self.rank == 1 and command == "go":
            raise ValueError("this worker's rows are no good")
        return np.zeros(1)


def test_a_failing_worker_is_named(leaves_nothing):
    algorithm = Algorithm("fails", FailsOnRankOne,
                          lambda rounds, params: {"x": rounds.allreduce("go")})
    with pytest.raises(ValueError, match=r"worker 1 of 2 failed: .*this worker's rows are no good"):
        run(algorithm, {"X": np.zeros((10, 1))}, n_workers=2, timeout=30)


class AnswersNone:
    def __init__(self, data, params, context):
        pass

    def handle(self, command, arrays):
        return None


@pytest.mark.parametrize("n_workers", [1, 2])
def test_a_worker_answering_none_is_an_error(n_workers, leaves_nothing):
    algorithm = Algorithm("none", AnswersNone,
                          lambda rounds, params: {"x": rounds.allreduce("go")})
    with pytest.raises(TypeError, match="answered round 0 with None"):
        run(algorithm, {"X": np.zeros((10, 1))}, n_workers=n_workers, timeout=30)


class Reusing:
    """Answers every round with the same buffer, changed in place: what the
    coordinator got from a round must not change with it."""

    def __init__(self, data, params, context):
        self.buffer = np.zeros(3)

    def handle(self, command, arrays):
        self.buffer += 1.0
        return self.buffer


def gather_twice(rounds, params):
    first, summed = rounds.gather("g"), rounds.allreduce("s")
    second = rounds.gather("g")
    return {"first": first[0], "summed": summed, "second": second[0]}


@pytest.mark.parametrize("n_workers", [1, 2])
def test_what_a_round_returned_is_the_coordinators_own_copy(n_workers, leaves_nothing):
    out = run(Algorithm("reusing", Reusing, gather_twice), {"X": np.zeros((10, 1))},
              n_workers=n_workers)
    np.testing.assert_array_equal(out.result["first"], [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(out.result["summed"], np.full(3, 2.0 * n_workers))
    np.testing.assert_array_equal(out.result["second"], [3.0, 3.0, 3.0])


class Strict:
    """A worker that refuses any command it does not know, as defensive code does."""

    def __init__(self, data, params, context):
        self.X = data["X"]
        self.closed = False

    def handle(self, command, arrays):
        if command == "stop":  # a command of the algorithm's own, like any other
            return np.array([2.0 * self.X.shape[0]])
        if command == "rows":
            return np.array([float(self.X.shape[0])])
        raise ValueError(f"unknown command {command!r}")


def test_runtime_messages_never_reach_handle(leaves_nothing):
    def coordinate(rounds, params):
        return {"rows": rounds.allreduce("rows"), "stop": rounds.allreduce("stop")}

    out = run(Algorithm("strict", Strict, coordinate), {"X": np.zeros((30, 1))}, n_workers=3)
    assert out.result["rows"][0] == 30.0
    assert out.result["stop"][0] == 60.0
    assert out.worker_results == [out.result, {}, {}]


class Keyed(Strict):
    def result(self):
        return {"rows": self.X.shape[0]}


def test_a_key_in_both_coordinate_and_result_is_an_error(leaves_nothing):
    algorithm = Algorithm("keyed", Keyed, lambda rounds, params: {"rows": rounds.allreduce("rows")})
    with pytest.raises(ValueError, match=r"have the keys \['rows'\]"):
        run(algorithm, {"X": np.zeros((10, 1))}, n_workers=2, timeout=30)


def test_the_result_holds_only_the_algorithm_keys(leaves_nothing):
    out = run(RANKED, {"X": np.zeros((40, 2))}, params={"offset": 0}, n_workers=2)
    assert set(out.result) == {"ranks", "rank", "n_workers", "n_rows", "final"}
    assert set(out.worker_results[1]) == {"rank", "n_workers", "n_rows", "final"}


def test_control_flow_is_not_an_exception():
    from sklearn_serverless._worker._rounds import HandedOver

    assert not issubclass(HandedOver, Exception)
    assert issubclass(HandedOver, BaseException)


class Running:
    """Keeps state between rounds: each answer depends on every earlier message."""

    def __init__(self, data, params, context):
        self.X, self.total = data["X"], 0.0

    def handle(self, command, arrays):
        self.total += float(arrays[0][0])  # the state a replacement must rebuild
        return np.array([self.total * self.X.sum()])


def running(rounds, params):
    answers = [rounds.allreduce("add", np.array([float(i)]))[0] for i in range(1, 9)]
    return {"answers": np.array(answers)}


def test_a_stateful_worker_is_rebuilt_by_default_after_a_loss(leaves_nothing, tmp_path):
    from conftest import KilledOnce

    X = {"X": np.arange(40, dtype=np.float64).reshape(20, 2)}
    expected = run(Algorithm("running", Running, running), X, n_workers=2).result["answers"]
    dying = Algorithm("running", KilledOnce(Running, 1, 5, str(tmp_path / "killed")), running)
    out = run(dying, X, n_workers=2, timeout=30)
    assert out.timings["generations"] == 2  # the worker was lost and replaced
    np.testing.assert_array_equal(out.result["answers"], expected)


@pytest.fixture
def no_worker_starts(monkeypatch):
    """Fails the test if a run gets as far as starting workers."""
    from sklearn_serverless._driver import _fit

    def started(*args, **kwargs):
        raise AssertionError("workers were started")

    monkeypatch.setattr(_fit, "run_distributed", started)


@pytest.mark.parametrize("call, error, match", [
    (lambda: run(DESCRIBE.worker, {"X": np.zeros((4, 1))}), TypeError,
     "algorithm must be an Algorithm, got type"),
    (lambda: run("describe", {"X": np.zeros((4, 1))}), TypeError,
     "algorithm must be an Algorithm, got str"),
    (lambda: run(DESCRIBE, {"X": np.zeros((4, 1)), "y": np.zeros(5)}), ValueError,
     "the same number of rows, got {'X': 4, 'y': 5}"),
    (lambda: run(DESCRIBE, {"X": np.array([[1], ["a"]], dtype=object)}), TypeError,
     r"data\['X'\] has dtype object"),
    (lambda: run(DESCRIBE, {"X": np.zeros((4, 1))}, state_mode="optimistic"), ValueError,
     "The 'state_mode' parameter of run must be a str among"),
    (lambda: run(DESCRIBE, {}), TypeError, "non-empty dict"),
    (lambda: run(DESCRIBE, np.zeros((4, 1))), TypeError, "non-empty dict"),
    (lambda: run(DESCRIBE, {"X": np.zeros((4, 1))}, timeout=0), ValueError,
     "The 'timeout' parameter of run must be a float in the range"),
    (lambda: run(DESCRIBE, {"X": np.zeros((4, 1))}, n_workers=0), ValueError,
     "The 'n_workers' parameter of run must be an int in the range"),
    (lambda: run(DESCRIBE, {"X": np.zeros((4, 1))}, backend="nowhere"), ValueError,
     "The 'backend' parameter of run must be"),
    (lambda: run(DESCRIBE, {"X": np.zeros((4, 1))}, state_store="http://x"), ValueError,
     "state_store must be None or a redis URL"),
], ids=["worker-class", "name", "rows", "object", "state_mode", "empty", "array", "timeout",
        "n_workers", "backend", "state_store"])
def test_bad_arguments_fail_before_any_worker_starts(call, error, match, no_worker_starts,
                                                     leaves_nothing):
    with pytest.raises(error, match=match):
        call()


# BLAS threads: a worker's share of the cores, one for a few rows ----------------------


class BlasThreads:
    """Answers with the number of BLAS threads its process may use."""

    def __init__(self, data, params, context):
        pass

    def handle(self, command, arrays):
        from threadpoolctl import threadpool_info

        return np.array([max(info["num_threads"] for info in threadpool_info()
                             if info["user_api"] == "blas")])


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: always one thread")
@pytest.mark.parametrize("n_rows, expected", [(400, 1), (300_000, 2)])
def test_a_worker_with_few_rows_runs_one_blas_thread(n_rows, expected, leaves_nothing):
    # A product of a few thousand values gains nothing from a second thread,
    # whose spinning takes the core the driver needs next.
    algorithm = Algorithm("blas_threads", BlasThreads,
                          lambda rounds, params: {"threads": rounds.gather("threads")})
    out = run(algorithm, {"X": np.zeros((n_rows, 2))}, n_workers=1)
    assert int(out.result["threads"][0][0]) == expected
