"""Dataset readers on a real S3-compatible server (moto) and on local files:
every worker's rows, concatenated, are what pandas/numpy read from the same
objects; errors name the object and the row; workers fetch only their part."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import subprocess
import sys
import uuid

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sklearn_serverless._datasets import (
    DataError,
    LocalFiles,
    read_csv,
    read_npy,
    read_parquet,
    read_rows,
)


class Counting:
    """Passes every call to a real storage, counting the bytes it returns."""

    def __init__(self, storage):
        self.storage, self.backend, self.bytes = storage, storage.backend, 0

    def get_object(self, bucket, key, stream=False, extra_get_args=None):
        data = self.storage.get_object(bucket, key, extra_get_args=extra_get_args)
        self.bytes += len(data)
        return data

    def head_object(self, bucket, key):
        return self.storage.head_object(bucket, key)

    def list_objects(self, bucket, prefix=None):
        return self.storage.list_objects(bucket, prefix)


class Store:
    """Objects written to moto's S3 server (bucket/key paths) or to a folder."""

    def __init__(self, kind, moto=None, folder=None):
        self.kind, self.moto, self.folder = kind, moto, folder
        if kind == "moto":
            from lithops import Storage

            self.bucket = moto.create_bucket(f"data-{uuid.uuid4().hex[:12]}")
            self.storage = Storage(config={
                "lithops": {"storage": "minio", "log_level": None},
                "minio": moto.storage_config(self.bucket)})
        else:
            self.storage = None

    def put(self, key: str, data: bytes) -> None:
        if self.kind == "moto":
            self.moto.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        else:
            path = os.path.join(self.folder, key)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as file:
                file.write(data)

    def path(self, key: str) -> str:
        if self.kind == "moto":
            return f"s3://{self.bucket}/{key}"
        return os.path.join(self.folder, key) + ("/" if key.endswith("/") else "")

    def name(self, key: str) -> str:
        """How messages name an object."""
        return f"{self.bucket}/{key}" if self.kind == "moto" else os.path.join(self.folder, key)

    def clean(self) -> None:
        if self.kind == "moto":
            for key in self.moto.keys(self.bucket):
                self.moto.client.delete_object(Bucket=self.bucket, Key=key)
            self.moto.client.delete_bucket(Bucket=self.bucket)


@pytest.fixture(params=["moto", "local"])
def store(request, tmp_path):
    moto = request.getfixturevalue("moto_server") if request.param == "moto" else None
    made = Store(request.param, moto, str(tmp_path))
    yield made
    made.clean()


@pytest.fixture
def s3(moto_server, tmp_path):
    made = Store("moto", moto_server)
    yield made
    made.clean()


@pytest.fixture(params=["pyarrow", "numpy"])
def csv_engine(request, monkeypatch):
    """Workers parse CSV with pyarrow, or with numpy as where pyarrow is not
    installed (its import made to fail in this process)."""
    if request.param == "numpy":
        from sklearn_serverless._datasets import _csv_parse as _csv

        monkeypatch.setattr(_csv, "_arrow", lambda: None)
    return request.param


def read_all(dataset, storage, n_workers):
    resolved = dataset.resolve(storage)
    specs = resolved.plan(n_workers)
    assert 1 <= len(specs) <= n_workers
    assert specs == resolved.plan(n_workers)  # deterministic
    parts = [read_rows(pickle.loads(pickle.dumps(spec)), storage) for spec in specs]
    for part in parts:
        assert part["X"].flags.c_contiguous
    X = np.concatenate([part["X"] for part in parts])
    y = np.concatenate([part["y"] for part in parts]) if resolved.has_label else None
    return resolved, specs, parts, X, y


def frame_csv(frame: pd.DataFrame, **options) -> bytes:
    return frame.to_csv(index=False, **options).encode()


def test_lithops_workers_read_their_specs(tmp_path, leaves_nothing):
    from lithops import FunctionExecutor

    from sklearn_serverless._driver._backends import lithops_config
    from sklearn_serverless._driver._lithops_files import delete_lithops_job

    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(501, 3)), columns=["a", "b", "c"])
    (tmp_path / "x.csv").write_bytes(frame_csv(frame))
    specs = read_csv(str(tmp_path / "x.csv"), label="c").resolve().plan(3)
    with FunctionExecutor(config=lithops_config("localhost", 3), log_level=None) as fexec:
        try:
            # Lithops hands a function with a 'storage' parameter its Storage (localhost).
            futures = fexec.map(read_rows, [(spec,) for spec in specs], chunksize=1,
                                include_modules=None)
            parts = fexec.get_result(futures, timeout=60, show_progressbar=False)
        finally:
            delete_lithops_job(fexec)
    np.testing.assert_array_equal(np.concatenate([p["X"] for p in parts]),
                                  frame[["a", "b"]].to_numpy())
    np.testing.assert_array_equal(np.concatenate([p["y"] for p in parts]), frame["c"])


def test_csv_prefix_split_across_workers_matches_pandas(store, csv_engine):
    rng = np.random.default_rng(0)
    frames = []
    for i, n_rows in enumerate([23, 0, 61, 7, 130]):
        frame = pd.DataFrame(rng.normal(size=(n_rows, 4)) * 10.0 ** rng.integers(-3, 4, 4),
                             columns=["a", "b", "c", "d"])
        frame["late"] = rng.integers(0, 3, n_rows)
        store.put(f"flights/part-{i}.csv", frame_csv(frame))
        frames.append(frame)
    store.put("flights/part-5.csv", b"")          # empty object: no row
    store.put("flights/_SUCCESS", b"")            # marker: skipped
    expected = pd.concat(frames)
    dataset = read_csv(store.path("flights/"), label="late", columns=["d", "a", "b"])
    for n_workers in range(1, 8):
        resolved, specs, parts, X, y = read_all(dataset, store.storage, n_workers)
        assert len(specs) == n_workers
        np.testing.assert_array_equal(X, expected[["d", "a", "b"]].to_numpy())
        np.testing.assert_array_equal(y, expected["late"].to_numpy())
        assert y.dtype == np.int64  # integer labels stay integers
        assert [part["row_offset"] for part in parts] == [None] * len(parts)
    assert resolved.feature_names == ("d", "a", "b") and resolved.n_features == 3
    assert resolved.label_kind == "number" and resolved.n_rows is None
    assert [obj.key.rsplit("/", 1)[-1] for obj in resolved.objects] == [
        f"part-{i}.csv" for i in range(6)]
    # A worker may span several objects: 3 workers over 5 non-empty objects.
    assert max(len(spec.pieces) for spec in resolved.plan(3)) >= 2


def test_csv_headerless_crlf_blank_lines_string_labels(store, csv_engine):
    rng = np.random.default_rng(1)
    text = []
    for i in range(97):
        row = ";".join(f"{v:.6g}" for v in rng.normal(size=3))
        text.append(f"{row};{'cat dog'.split()[i % 2]}")
        if i % 10 == 0:
            text.append("")  # blank lines are skipped, as pandas and numpy do
    store.put("t/a.txt", ("\r\n".join(text[:40]) + "\r\n").encode())
    store.put("t/b.txt", "\r\n".join(text[40:]).encode())  # no final newline
    expected = pd.concat([pd.read_csv(io.StringIO("\r\n".join(part)), sep=";", header=None)
                          for part in (text[:40], text[40:])])
    dataset = read_csv(store.path("t/"), header=False, delimiter=";", label=3, columns=[2, 0])
    for n_workers in (1, 2, 3, 5, 7):
        resolved, _, _, X, y = read_all(dataset, store.storage, n_workers)
        np.testing.assert_array_equal(X, expected[[2, 0]].to_numpy())
        assert y.dtype.kind == "U"
        np.testing.assert_array_equal(y, expected[3].to_numpy(str))
    assert resolved.feature_names is None and resolved.label_kind == "str"


def test_csv_float32_and_quoted_header(store, csv_engine):
    store.put("q.csv", b'"x 1","y"\n1.5,"a"\n2.25,"b,c"\n')
    resolved, _, _, X, y = read_all(read_csv(store.path("q.csv"), label="y",
                                             dtype=np.float32), store.storage, 2)
    assert X.dtype == np.float32 and resolved.feature_names == ("x 1",)
    np.testing.assert_array_equal(X[:, 0], [1.5, 2.25])
    np.testing.assert_array_equal(y, ["a", "b,c"])


def test_csv_rows_longer_than_128_kib(s3):
    rng = np.random.default_rng(2)
    table = rng.normal(size=(5, 30_000))  # ~0.6 MB rows: several growing tail reads
    table[2, :29_000] = 0  # and a shorter one (~0.15 MB)
    lines = [",".join(map(repr, row.tolist())) for row in table]
    s3.put("wide.csv", ("\n".join(lines) + "\n").encode())
    assert min(len(line) for line in lines) > 128 * 1024
    expected = np.loadtxt(io.StringIO("\n".join(lines)), delimiter=",")
    for n_workers in (2, 3, 4):
        _, specs, parts, X, _ = read_all(read_csv(s3.path("wide.csv"), header=False),
                                         s3.storage, n_workers)
        np.testing.assert_array_equal(X, expected)
        assert len(specs) == n_workers and max(part["requests"] for part in parts) > 2


def test_csv_worker_fetches_only_its_range(s3):
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(20_000, 5)), columns=list("abcde"))
    data = frame_csv(frame)
    s3.put("big.csv", data)
    counting = Counting(s3.storage)
    resolved = read_csv(s3.path("big.csv")).resolve(counting)
    assert counting.bytes <= 64 * 1024  # the driver read the first lines only
    specs = resolved.plan(3)
    parts = [read_rows(spec, s3.storage) for spec in specs]
    row = max(len(line) for line in data.split(b"\n")) + 1
    for spec, part in zip(specs, parts, strict=True):
        (piece,) = spec.pieces
        assert part["bytes_fetched"] <= piece.stop - piece.start + 1 + 64 * 1024
    assert sum(part["bytes_fetched"] for part in parts) < len(data) + 3 * row + 3 * 64 * 1024
    np.testing.assert_array_equal(np.concatenate([p["X"] for p in parts]), frame.to_numpy())


@pytest.mark.parametrize("bad, problem", [
    ("1.0,abc,1", "the cell 'abc' in column 'b' is not a number"),
    ("1.0,-inf,0", "the cell '-inf' in column 'b' is infinite"),
    ("1.0,2.0", "2 fields where the first row has 3"),
    ("1.0,2.0,1,7", "4 fields where the first row has 3"),
    ("1.0,2.0,", "the label (column 'y') is missing"),
    ("1.0,2.0,yes", "the label 'yes' (column 'y') is not a finite number"),
])
def test_csv_bad_row_names_object_and_line(store, bad, problem, csv_engine):
    good = [f"{i}.5,{i},{i % 2}" for i in range(400)]
    store.put("d/0.csv", ("a,b,y\n" + "\n".join(good[:50]) + "\n").encode())
    lines = good[:300] + [bad] + good[300:]
    store.put("d/1.csv", ("a,b,y\n" + "\n".join(lines) + "\n").encode())
    resolved = read_csv(store.path("d/"), label="y").resolve(store.storage)
    with pytest.raises(ValueError) as error:
        for spec in resolved.plan(4):  # the bad line is deep in a worker's range
            read_rows(spec, store.storage)
    # Line 302 of d/1.csv: the header, then 300 good rows.
    message = str(error.value)
    assert message.startswith(f"{store.name('d/1.csv')}, line 302: ") and problem in message
    assert isinstance(error.value, DataError)


def test_csv_ragged_row_outside_selected_columns(store, csv_engine):
    store.put("r.csv", b"a,b,c\n1,2,3\n4,5,6,7\n")
    resolved = read_csv(store.path("r.csv"), columns=["a"]).resolve(store.storage)
    with pytest.raises(ValueError, match=r"r\.csv, line 3: 4 fields where the first row has 3"):
        read_rows(resolved.plan(1)[0], store.storage)
    store.put("q.csv", b'a,b,c\n1,"2,5",3\n4,"5",6,7\n')  # quoted: fields counted as csv does
    resolved = read_csv(store.path("q.csv"), columns=["a"]).resolve(store.storage)
    with pytest.raises(ValueError, match=r"q\.csv, line 3: 4 fields where the first row has 3"):
        read_rows(resolved.plan(1)[0], store.storage)


def test_csv_resolve_errors(store):
    store.put("h/0.csv", b"a,b,y\n1,2,0\n")
    store.put("h/1.csv", b"a,c,y\n1,2,0\n")
    store.put("only/0.csv", b"a,b\n")
    store.put("only/1.csv", b"")
    store.put("z.csv.gz", gzip.compress(b"a,b\n1,2\n"))
    store.put("z.csv", gzip.compress(b"a,b\n1,2\n"))
    with pytest.raises(ValueError, match=r"h/1\.csv's header 'a,c,y' differs from"):
        read_csv(store.path("h/")).resolve(store.storage)
    with pytest.raises(ValueError, match=r"h/0\.csv has no column 'late'"):
        read_csv(store.path("h/0.csv"), label="late").resolve(store.storage)
    with pytest.raises(ValueError, match="also a feature column"):
        read_csv(store.path("h/0.csv"), label="y", columns=["a", "y"]).resolve(store.storage)
    with pytest.raises(ValueError, match="has no row"):
        read_csv(store.path("only/")).resolve(store.storage)
    for key in ("z.csv.gz", "z.csv"):
        with pytest.raises(ValueError, match=rf"{key.replace('.', '[.]')} is compressed"):
            read_csv(store.path(key)).resolve(store.storage)
    with pytest.raises(ValueError, match="No data object under|No file or folder"):
        read_csv(store.path("nothing/")).resolve(store.storage)
    # A header-only object in a prefix is fine: zero rows from it.
    store.put("only/2.csv", b"a,b\n3,4\n")
    _, _, _, X, _ = read_all(read_csv(store.path("only")), store.storage, 3)
    np.testing.assert_array_equal(X, [[3, 4]])


def parquet_bytes(table: pa.Table, row_group_size: int) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=row_group_size, compression="none")
    return sink.getvalue()


def test_parquet_row_groups_split_matches_pandas(store):
    rng = np.random.default_rng(4)
    frames = []
    for i, (n_rows, group) in enumerate([(50, 7), (0, 10), (333, 100), (9, 9), (120, 25)]):
        frame = pd.DataFrame({"a": rng.normal(size=n_rows), "b": rng.integers(-5, 5, n_rows),
                              "c": rng.random(n_rows) < 0.5,
                              "late": rng.choice(["no", "yes"], n_rows)})
        store.put(f"p/{i:02d}.parquet",
                  parquet_bytes(pa.Table.from_pandas(frame, preserve_index=False), group))
        frames.append(frame)
    store.put("p/05.parquet", b"")  # an empty object: no row
    # A pandas index column is not a feature (pandas reads it back as the index).
    frame = pd.DataFrame({"a": [0.5, 1.5], "b": [1, 2], "c": [True, False],
                          "late": ["no", "no"]}, index=[10, 20])
    frame.to_parquet(sink := io.BytesIO())
    store.put("p/06.parquet", sink.getvalue())
    frames.append(frame)
    expected = pd.concat(frames)
    dataset = read_parquet(store.path("p/"), label="late")
    group_rows = [7] * 7 + [1] + [100] * 3 + [33] + [9] + [25] * 4 + [20] + [2]
    for n_workers in range(1, 8):
        resolved, specs, parts, X, y = read_all(dataset, store.storage, n_workers)
        np.testing.assert_array_equal(X, expected[["a", "b", "c"]].to_numpy(np.float64))
        np.testing.assert_array_equal(y, expected["late"].to_numpy(str))
        offsets = np.cumsum([0] + [part["n_rows"] for part in parts])[:-1]
        assert [part["row_offset"] for part in parts] == list(offsets)
        assert [spec.n_rows for spec in specs] == [part["n_rows"] for part in parts]
        # Whole row groups, balanced: no spec is further from the even share
        # than the largest row group.
        share = len(expected) / len(specs)
        assert all(abs(spec.n_rows - share) <= max(group_rows) for spec in specs)
    assert resolved.n_rows == len(expected) == sum(group_rows)
    assert resolved.feature_names == ("a", "b", "c") and resolved.label_kind == "str"
    # Fewer specs than workers when there are fewer row groups.
    store.put("one.parquet", parquet_bytes(pa.table({"a": [1.0, 2.0, 3.0]}), 2))
    assert len(read_parquet(store.path("one.parquet")).resolve(store.storage).plan(5)) == 2


def test_parquet_reads_only_the_columns_asked_for(s3):
    rng = np.random.default_rng(5)
    table = pa.table({f"c{j}": rng.normal(size=20_000) for j in range(10)})
    data = parquet_bytes(table, 5_000)
    s3.put("wide.parquet", data)
    dataset = read_parquet(s3.path("wide.parquet"), columns=["c7", "c2"])
    _, specs, parts, X, _ = read_all(dataset, s3.storage, 2)
    np.testing.assert_array_equal(X, np.column_stack([table["c7"], table["c2"]]))
    fetched = sum(part["bytes_fetched"] for part in parts)
    # Two columns of ten (plus footers): about a fifth of the object.
    assert fetched < 0.3 * len(data), (fetched, len(data))
    _, _, parts, _, _ = read_all(read_parquet(s3.path("wide.parquet")), s3.storage, 2)
    assert sum(part["bytes_fetched"] for part in parts) > 0.9 * len(data)
    # All ten columns of a row group come in one GET (pyarrow's pre-buffering),
    # not one per column chunk: each worker reads its 2 row groups and the footer.
    assert [part["requests"] for part in parts] == [1 + 2, 1 + 2]


def test_parquet_errors(store):
    store.put("n.parquet", parquet_bytes(pa.table({"a": [1.0, None, 3.0, 4.0],
                                                   "y": [0, 1, 0, 1]}), 2))
    store.put("f.parquet", parquet_bytes(pa.table({"a": [1.0, 2.0, 3.0, np.inf],
                                                   "s": ["u", "v", "w", "x"]}), 2))
    resolved = read_parquet(store.path("n.parquet"), label="y").resolve(store.storage)
    # A null is a missing cell: NaN, refused (as scikit-learn does) by what takes none.
    with pytest.raises(ValueError, match=r"^Input X contains NaN\.$"):
        read_all(read_parquet(store.path("n.parquet"), label="y"), store.storage, 1)
    assert resolved.label_kind == "number"
    with pytest.raises(ValueError, match=r"f\.parquet, row group 1, row 1 \(from 0\): "
                                         r"infinity"):
        read_all(read_parquet(store.path("f.parquet"), columns=["a"]), store.storage, 2)
    assert read_parquet(store.path("f.parquet")).resolve(store.storage).kinds == (
        "number", "str")  # text columns are features, for an encoder
    with pytest.raises(ValueError, match=r"f\.parquet has no column 'late'"):
        read_parquet(store.path("f.parquet"), label="late").resolve(store.storage)
    store.put("e.parquet", parquet_bytes(pa.table({"a": pa.array([], pa.float64())}), 2))
    with pytest.raises(ValueError, match="has no row"):
        read_parquet(store.path("e.parquet")).resolve(store.storage)
    store.put("bad.parquet", b"not parquet at all")
    with pytest.raises(ValueError, match=r"bad\.parquet is not a Parquet file"):
        read_parquet(store.path("bad.parquet")).resolve(store.storage)


def npy_bytes(array: np.ndarray) -> bytes:
    sink = io.BytesIO()
    np.save(sink, array)
    return sink.getvalue()


@pytest.mark.parametrize("dtypes, out", [(["float32"] * 3, np.float32),
                                         (["float64", "int16", ">f8"], np.float64)])
def test_npy_row_ranges_match_concatenation(store, dtypes, out):
    rng = np.random.default_rng(6)
    arrays = [(rng.normal(size=(n, 3)) * 100).astype(dtype)
              for n, dtype in zip([17, 0, 40], dtypes, strict=True)]
    for i, array in enumerate(arrays):
        store.put(f"n/{i}.npy", npy_bytes(array))
    expected = np.concatenate([a.astype(out) for a in arrays])
    store.put("n/3.npy", npy_bytes(np.asfortranarray(arrays[2][:13])))  # as pandas gives
    expected = np.concatenate([expected, arrays[2][:13].astype(out)])
    for n_workers in range(1, 8):
        resolved, specs, parts, X, _ = read_all(read_npy(store.path("n/")), store.storage,
                                                n_workers)
        assert X.dtype == out
        np.testing.assert_array_equal(X, expected)
        for spec, part in zip(specs, parts, strict=True):
            # One ranged GET per C-ordered piece, one per column of a Fortran-ordered one.
            assert part["requests"] == sum(1 if p.order == "C" else 3 for p in spec.pieces)
            assert part["row_offset"] == spec.row_offset
    assert resolved.n_rows == 70 and resolved.n_features == 3
    assert len(resolved.plan(100)) == 70  # at most one spec per row


def test_npy_errors(store):
    X = np.arange(12, dtype=np.float64).reshape(4, 3)
    bad = X.copy()
    bad[2, 1] = np.nan
    store.put("nan.npy", npy_bytes(bad))
    store.put("one.npy", npy_bytes(np.arange(3.0)))
    store.put("s.npy", npy_bytes(np.array([["a", "b"]])))
    store.put("cut.npy", npy_bytes(X)[:-8])
    store.put("w/0.npy", npy_bytes(X))
    store.put("w/1.npy", npy_bytes(X[:, :2]))
    with pytest.raises(ValueError, match=r"nan\.npy, row 2 \(from 0\): NaN or infinity"):
        read_all(read_npy(store.path("nan.npy")), store.storage, 3)
    for key, message in [("one.npy", "shape"), ("s.npy", "needs numbers"), ("cut.npy", "truncated"),
                         ("w/1.npy", "has 2 columns where")]:
        with pytest.raises(ValueError, match=rf"{key.replace('.', '[.]')}.*{message}"):
            read_npy(store.path(key if key != "w/1.npy" else "w/")).resolve(store.storage)


def test_paths_and_laziness(s3, tmp_path):
    dataset = read_csv("s3://no-such-bucket/x.csv", label="y")  # no I/O here
    assert pickle.loads(pickle.dumps(dataset)) == dataset
    with pytest.raises(ValueError, match="dtype"):
        read_csv("b/x.csv", dtype=np.int64)
    with pytest.raises(ValueError, match="with header=False"):
        read_csv("b/x.csv", header=False, label="y")
    s3.put("dir/a.npy", npy_bytes(np.ones((2, 2))))
    for path in (f"{s3.bucket}/dir", f"gs://{s3.bucket}/dir/", f"{s3.bucket}/dir/a.npy"):
        assert read_npy(path).resolve(s3.storage).n_rows == 2
    # Local paths: relative ones are made absolute; LocalFiles is Lithops-shaped.
    np.save(tmp_path / "a.npy", np.ones((3, 2)))
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        resolved = read_npy("file://a.npy").resolve(LocalFiles())
    finally:
        os.chdir(old)
    assert resolved.objects[0].key == str(tmp_path / "a.npy") and resolved.local
    from lithops import Storage

    localhost = Storage(config={"lithops": {"storage": "localhost", "log_level": None}})
    resolved = read_npy(str(tmp_path)).resolve(localhost)  # a folder, through Lithops
    assert resolved.local and resolved.n_rows == 3
    np.testing.assert_array_equal(read_rows(resolved.plan(1)[0], localhost)["X"], np.ones((3, 2)))


def test_worker_side_imports_no_sklearn_and_pyarrow_only_to_read(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n3,4\n")
    code = (
        "import sys\n"
        "from sklearn_serverless._datasets import read_csv, read_rows\n"
        f"spec = read_csv({str(tmp_path / 'x.csv')!r}).resolve().plan(2)[0]\n"
        "print(sorted(m for m in ('sklearn', 'pyarrow', 'pandas') if m in sys.modules))\n"
        "rows = read_rows(spec)\n"
        "assert rows['X'].shape[1] == 2\n"
        "print(sorted(m for m in ('sklearn', 'pyarrow', 'pandas') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    # pyarrow parses the CSV rows, imported when a worker reads them.
    assert out.stdout.split() == ["[]", "['pyarrow']"]


def random_csv(rng) -> bytes:
    """One object: a header, 0-40 rows of cells of random lengths, blank lines,
    LF or CRLF, with or without a final newline; or an empty object."""
    if rng.random() < 0.1:
        return b""
    newline = "\r\n" if rng.random() < 0.3 else "\n"
    lines = ["a,b,label"]
    for _ in range(rng.integers(0, 40)):
        if rng.random() < 0.1:
            lines.append("")
        a = f"{rng.normal() * 10.0 ** rng.integers(-5, 6):.{rng.integers(1, 17)}g}"
        b = "1" + "0" * int(rng.integers(0, 300))  # cells from 1 to 300 bytes
        label = str(rng.choice(["x", "café", "y" * int(rng.integers(1, 50))]))
        lines.append(f"{a},{b},{label}")
    text = newline.join(lines) + (newline if rng.random() < 0.7 else "")
    return text.encode()


def test_csv_random_objects_any_workers_match_pandas(store, csv_engine):
    rng = np.random.default_rng(8)
    for trial in range(3 if store.kind == "moto" else 15):
        objects = [random_csv(rng) for _ in range(rng.integers(1, 5))]
        frames = [pd.read_csv(io.BytesIO(data),
                              dtype={"label": str}) for data in objects if data]
        expected = pd.concat(frames) if frames else pd.DataFrame()
        for i, data in enumerate(objects):
            store.put(f"r{trial}/{i}.csv", data)
        dataset = read_csv(store.path(f"r{trial}/"), label="label")
        if len(expected) == 0:
            with pytest.raises(ValueError, match="has no row"):
                dataset.resolve(store.storage)
            continue
        for n_workers in range(1, 8):
            _, _, _, X, y = read_all(dataset, store.storage, n_workers)
            np.testing.assert_array_equal(X, expected[["a", "b"]].to_numpy(np.float64))
            np.testing.assert_array_equal(y, expected["label"].to_numpy(str))
