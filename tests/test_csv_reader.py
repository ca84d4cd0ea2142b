"""The worker-side CSV parser: pyarrow's reader and numpy's loadtxt (the
fallback where pyarrow is missing) give the same arrays on the same bytes,
labels keep their type, and errors name the object, the line and the column
by its header name."""

from __future__ import annotations

import numpy as np
import pytest

from sklearn_serverless._datasets import DataError, read_csv, read_rows
from sklearn_serverless._datasets import _csv_parse as _csv


def spec_and_rows(tmp_path, data: bytes, **options):
    """The one spec of a local object, and its row bytes (after the header)."""
    path = tmp_path / "x.csv"
    path.write_bytes(data)
    resolved = read_csv(str(path), **options).resolve()
    return resolved.plan(1)[0], data[resolved.objects[0].data_start:]


def both(spec, rows: bytes):
    """pyarrow's arrays (asserting that pyarrow parsed them) and numpy's."""
    by_arrow = _csv._parse_arrow(_csv._arrow(), rows, spec)
    assert by_arrow is not None, "pyarrow refused the block"
    by_numpy = _csv.parse(rows, spec, engine="numpy")
    assert by_numpy is not None, "numpy refused the block"
    return by_arrow, by_numpy


def assert_same(a, b):
    for left, right in zip(a, b, strict=True):
        if isinstance(left, dict):  # text columns
            assert left.keys() == right.keys()
            for key in left:
                np.testing.assert_array_equal(left[key], right[key])
            continue
        if left is None or right is None:
            assert left is None and right is None
            continue
        assert left.dtype == right.dtype and left.shape == right.shape
        np.testing.assert_array_equal(left, right)


def cells(rng, n: int, dtype=np.float64) -> list[str]:
    """Numbers written as people and programs write them."""
    values = rng.normal(size=n) * 10.0 ** rng.integers(-12, 12, n)
    formats = ["{!r}", "{:.17g}", "{:.3e}", "{:.6f}", "{:.0f}", "{:+.4g}", " {:.5g}",
               "{:.5g}\t", '"{:.8g}"', "{:.2E}"]
    out = [formats[i % len(formats)].format(v) for i, v in enumerate(values.tolist())]
    big = "1.7976931348623157e308" if dtype == np.float64 else "3.4028234e38"
    out[:6] = ["-0", "0.", ".5", "1e-310", big, "-1e-5"]
    return out


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pyarrow_and_numpy_give_the_same_arrays(tmp_path, newline, dtype):
    rng = np.random.default_rng(0)
    n = 3000
    columns = [cells(rng, n, dtype) for _ in range(4)]
    labels = {
        "ints": [str(v) for v in rng.integers(-5, 1000, n)],
        "padded ints": [f" {v}\t" if i % 3 else f'"{v}"' for i, v in
                        enumerate(rng.integers(0, 3, n))],
        "floats": [f"{v:.3g}" for v in rng.normal(size=n)],
        "ints and a float": ["1.0" if i == n - 1 else str(i % 2) for i in range(n)],
        "beyond int64": ["99999999999999999999" if i == 7 else str(i % 2) for i in range(n)],
        "text": [["cat", '"a, b"', "café", " dog", "1", "x y"][i % 6] for i in range(n)],
    }
    for name, label in labels.items():
        lines = ["a,b,c,d,late"]
        for i in range(n):
            lines.append(",".join([col[i] for col in columns] + [label[i]]))
            if i % 500 == 0:
                lines.append("")  # empty lines are skipped
        data = (newline.join(lines) + newline).encode()
        spec, rows = spec_and_rows(tmp_path, data, label="late", dtype=dtype)
        by_arrow, by_numpy = both(spec, rows)
        assert_same(by_arrow, by_numpy)
        assert by_arrow[0].dtype == dtype and by_arrow[0].shape == (n, 4)
        expected = {"ints": np.int64, "padded ints": np.int64, "floats": np.float64,
                    "ints and a float": np.float64, "beyond int64": np.float64}
        if name in expected:
            assert by_arrow[1].dtype == expected[name], name
        else:
            assert by_arrow[1].dtype.kind == "U"
            assert by_arrow[1][1] == "a, b" and by_arrow[1][3] == " dog"


def test_same_arrays_headerless_semicolons_unused_text_and_long_rows(tmp_path):
    rng = np.random.default_rng(1)
    lines = [f"{v:.6g};skipped {i};{w!r};{i % 3}" for i, (v, w) in
             enumerate(rng.normal(size=(2000, 2)).tolist())]
    data = ("\n".join(lines)).encode()  # no final newline
    spec, rows = spec_and_rows(tmp_path, data, header=False, delimiter=";", label=3,
                               columns=[2, 0])
    by_arrow, by_numpy = both(spec, rows)
    assert_same(by_arrow, by_numpy)
    assert by_arrow[1].dtype == np.int64
    # Rows longer than pyarrow's 1 MiB blocks: parsed again in one block.
    wide = rng.normal(size=(3, 80_000))
    data = "\n".join(",".join(map(repr, row)) for row in wide.tolist()).encode()
    spec, rows = spec_and_rows(tmp_path, data, header=False)
    assert max(map(len, rows.split(b"\n"))) > _csv._BLOCK
    by_arrow, by_numpy = both(spec, rows)
    assert_same(by_arrow, by_numpy)
    np.testing.assert_array_equal(by_arrow[0], wide)


@pytest.mark.parametrize("row", [
    "1,\x0b2,0",         # a vertical tab: numpy takes it as a space, pyarrow refuses
    "1,2\r3,0",          # a lone CR: pyarrow would end a row there
    '1,2,"a\nb"',        # a quoted line break
    "1,2,yes",           # a text label under numeric ones
    "1,nan,0",
    "1,2",
    "1,2,0,4",
    "1,1_000,0",
    "1,2,",
])
def test_where_pyarrow_refuses_numpy_decides(tmp_path, row):
    data = f"a,b,y\n1,2,0\n{row}\n3,4,1\n".encode()
    spec, rows = spec_and_rows(tmp_path, data, label="y")
    assert_same(_csv.parse(rows, spec) or (None,) * 4,
                _csv.parse(rows, spec, engine="numpy") or (None,) * 4)


@pytest.fixture(params=["pyarrow", "numpy"])
def engine(request, monkeypatch):
    if request.param == "numpy":  # as where pyarrow is not installed
        monkeypatch.setattr(_csv, "_arrow", lambda: None)
    return request.param


def read(tmp_path, data: bytes, **options) -> dict:
    spec, _ = spec_and_rows(tmp_path, data, **options)
    return read_rows(spec)


def test_bad_cell_names_line_and_header_column(tmp_path, engine):
    data = b"distance,carrier,late\n120,7,0\n80,UA,1\n"
    with pytest.raises(DataError) as error:
        read(tmp_path, data, label="late")
    assert str(error.value) == (f"{tmp_path / 'x.csv'}, line 3: the cell 'UA' in column "
                                "'carrier' is not a number.")
    with pytest.raises(DataError, match=r"line 2: the cell '1e999' in column 'b' is infinite"):
        read(tmp_path, b"a,b\n1,1e999\n")
    with pytest.raises(DataError, match=r"line 3: the label \(column 'y'\) is missing"):
        read(tmp_path, b"a,y\n1,cat\n2, \n", label="y")
    with pytest.raises(DataError, match=r"line 2: the cell 'x' in column 1 \(from 0\) is "):
        read(tmp_path, b"1,2\n1,x\n", header=False, columns=[1])
    with pytest.raises(DataError, match=r"x\.csv: byte 10 is not UTF-8 text"):
        read(tmp_path, b"a,b\n1,2\n3,\xff\n")


def test_ragged_row_names_its_line(tmp_path, engine):
    with pytest.raises(DataError, match=r"x\.csv, line 4: 2 fields where the first row "
                                        r"has 3\.$"):
        read(tmp_path, b"a,b,c\n1,2,3\n4,5,6\n7,8\n9,1,2\n", columns=["a"])


def test_text_feature_columns_and_missing_cells(tmp_path, engine):
    """Text columns are read as str, an empty numeric cell as NaN, a weight
    column as float64; the engines agree."""
    data = b"distance,carrier,w,late\n120,UA,1.5,0\n,DL,2,1\n80,,0.5,1\n"
    (tmp_path / "x.csv").write_bytes(data)
    resolved = read_csv(str(tmp_path / "x.csv"), label="late", sample_weight="w").resolve()
    with pytest.raises(ValueError, match=r"^Input X contains NaN\.$"):
        read_rows(resolved.plan(1)[0])  # what takes no NaN refuses it, as sklearn does
    rows = read_rows(resolved.for_consumer("imputer", allow_nan=True).plan(1)[0])
    np.testing.assert_array_equal(rows["X"], [[120, np.nan], [np.nan, np.nan], [80, np.nan]])
    np.testing.assert_array_equal(rows["text"][1], ["UA", "DL", ""])
    np.testing.assert_array_equal(rows["sample_weight"], [1.5, 2, 0.5])
    assert resolved.kinds == ("number", "str") and resolved.feature_names == (
        "distance", "carrier")
    with pytest.raises(DataError, match=r"line 3: the weight '' \(column 'w'\) is not a "):
        read(tmp_path, b"a,w\n1,2\n3,\n", sample_weight="w")
    with pytest.raises(ValueError, match=r"cannot be both the label and the weights"):
        read_csv("x.csv", label="w", sample_weight="w")


def test_labels_keep_their_type(tmp_path, engine):
    assert read(tmp_path, b"a,y\n1,3\n2,-1\n", label="y")["y"].dtype == np.int64
    assert read(tmp_path, b"a,y\n1,3\n2,0.5\n", label="y")["y"].dtype == np.float64
    assert read(tmp_path, b"a,y\n1,3.0\n2,1.0\n", label="y")["y"].dtype == np.float64
    y = read(tmp_path, b"a,y\n1,cat\n2,7\n", label="y")["y"]
    assert y.dtype.kind == "U" and list(y) == ["cat", "7"]
