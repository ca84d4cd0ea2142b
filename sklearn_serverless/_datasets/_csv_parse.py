"""Parsing a worker's CSV rows into arrays: pyarrow's CSV reader (imported
lazily), or ``numpy.loadtxt`` where pyarrow is not installed, with the same
results. Where pyarrow refuses a block, numpy gives its opinion; when both
refuse, :func:`._csv_lines._fail` names the bad line.

Missing cells: an empty cell of a numeric column is NaN (from arrow's
validity bitmap, or a blank cell in numpy's text); an empty cell of a text
column is the text ``''``. Labels keep their type: text as str; numbers as
int64 when every label of a worker's rows is a decimal integer that int64
holds, else float64.
"""

from __future__ import annotations

import csv
import io
import warnings

import numpy as np

from ._csv_lines import _INTEGER, _is_text
from ._spec import ReadSpec

#: Blocks in which pyarrow parses a worker's rows (faster than one block for
#: all); rows longer than this are parsed again in one block of up to _MAX_BLOCK.
_BLOCK = 1 << 20
_MAX_BLOCK = (1 << 31) - 1


def _arrow():
    """pyarrow and its CSV module, or None when pyarrow cannot be imported
    (then numpy parses; the results are the same)."""
    try:
        import pyarrow
        import pyarrow.compute
        import pyarrow.csv
    except ImportError:
        return None
    return pyarrow


def _numbers(column, dtype) -> np.ndarray:
    """An arrow column of numbers without nulls as one numpy array, read from
    its buffers (arrow's ``to_numpy`` imports pandas)."""
    chunks = column.chunks if hasattr(column, "chunks") else [column]
    parts = [np.frombuffer(chunk.buffers()[1], dtype=dtype)[
        chunk.offset:chunk.offset + len(chunk)] for chunk in chunks if len(chunk)]
    if not parts:
        return np.empty(0, dtype)
    return np.concatenate(parts) if len(parts) > 1 else parts[0].copy()


def _nulls(column) -> np.ndarray:
    """Where an arrow column is null, as a boolean numpy array."""
    chunks = column.chunks if hasattr(column, "chunks") else [column]
    parts = []
    for chunk in chunks:
        validity = chunk.buffers()[0]
        if validity is None:
            parts.append(np.zeros(len(chunk), bool))
            continue
        bits = np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little")
        parts.append(bits[chunk.offset:chunk.offset + len(chunk)] == 0)
    return np.concatenate(parts) if parts else np.zeros(0, bool)


def _strings(pa, column) -> np.ndarray:
    """An arrow string column as a numpy str array, each distinct value
    converted once (to_pylist made a Python str of every cell: a third of
    the parse of a table with two text columns)."""
    if hasattr(column, "combine_chunks"):
        column = column.combine_chunks()
    encoded = pa.compute.dictionary_encode(column)
    values = np.array(encoded.dictionary.to_pylist(), dtype=str)
    return values[_numbers(encoded.indices, np.int32)]


def _parse_arrow(pa, data: bytes, spec: ReadSpec):
    """pyarrow's CSV reader: ``(X, y, sample_weight, text)``, or None when it
    refuses the block (then numpy gives its opinion, and the line scan names
    the bad line)."""
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return None  # the numpy path names the byte
    if b"\r" in data:
        raw = np.frombuffer(data, np.uint8)
        after = np.flatnonzero(raw == 13) + 1
        if after[-1] >= raw.size or np.any(raw[after] != 10):
            return None  # a lone CR ends a row for pyarrow, not for the byte ranges
    pcsv, compute = pa.csv, pa.compute
    # Only a quoted cell can hold a line break (every CR ends a line, above).
    quoted = b'"' in data
    names = [f"c{j}" for j in range(spec.n_columns)]  # header names may repeat
    types = {names[j]: pa.string() if _is_text(spec, k) else pa.float64()
             for k, j in enumerate(spec.columns)}
    include = [names[j] for j in spec.columns]
    for extra, kind in ((spec.label, pa.string()), (spec.weight, pa.float64())):
        if extra is not None:
            include.append(names[extra])
            types[names[extra]] = kind
    parse = pcsv.ParseOptions(delimiter=spec.delimiter, quote_char='"', double_quote=True,
                              escape_char=False, newlines_in_values=False,
                              ignore_empty_lines=True)
    # An empty numeric cell is missing (null, then NaN); text cells never are.
    convert = pcsv.ConvertOptions(column_types=types, include_columns=include,
                                  null_values=[""], strings_can_be_null=False,
                                  quoted_strings_can_be_null=False, check_utf8=True)
    table = None
    for block_size in (_BLOCK, min(len(data) + 1, _MAX_BLOCK)):
        try:
            table = pcsv.read_csv(pa.py_buffer(data), read_options=pcsv.ReadOptions(
                column_names=names, use_threads=False, block_size=block_size),
                parse_options=parse, convert_options=convert)
            break
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            # A row longer than a block fails too: try once more in one block.
            if block_size > len(data):
                return None
    if table is None:
        return None
    X = np.empty((table.num_rows, len(spec.columns)), dtype=spec.dtype)
    text = {}
    with np.errstate(over="ignore"):  # beyond float32: refused below
        for k in range(len(spec.columns)):
            column = table.column(k)
            if _is_text(spec, k):
                if quoted and compute.any(compute.match_substring_regex(column, "[\r\n]")
                                          ).as_py():
                    return None  # a quoted line break: byte ranges cut rows at every one
                text[k] = _strings(pa, column)
                X[:, k] = np.nan
            else:
                X[:, k] = _numbers(column, np.float64)
                if column.null_count:  # missing cells (fill_null would import pandas)
                    X[_nulls(column), k] = np.nan
    if np.isinf(X).any():
        return None
    position = len(spec.columns)
    y = weights = None
    if spec.label is not None:
        y = _arrow_labels(pa, table.column(position), spec, quoted)
        if y is None:
            return None
        position += 1
    if spec.weight is not None:
        column = table.column(position)
        if column.null_count:
            return None
        weights = _numbers(column, np.float64)
        if not np.isfinite(weights).all():
            return None
    return X, y, weights, text


def _arrow_labels(pa, cells, spec: ReadSpec, quoted: bool = True):
    compute = pa.compute
    if quoted and compute.any(compute.match_substring_regex(cells, "[\r\n]")).as_py():
        return None  # a quoted line break: the byte ranges cut rows at every one
    if spec.label_kind == "str":
        y = _strings(pa, cells)
        if y.size and np.any(np.char.str_len(np.char.strip(y)) == 0):
            return None
        return y
    trimmed = compute.utf8_trim(cells, " \t")
    y = None
    if compute.all(compute.match_substring_regex(trimmed, _INTEGER.pattern)).as_py() \
            is not False:
        try:
            y = _numbers(compute.cast(trimmed, pa.int64()), np.int64)
        except pa.ArrowInvalid:
            pass  # beyond int64
    if y is None:
        try:
            y = _numbers(compute.cast(trimmed, pa.float64()), np.float64)
        except pa.ArrowInvalid:
            return None
        if not np.isfinite(y).all():
            return None
    return y


def _ragged_lines(data: bytes, delimiter: str, n_columns: int) -> bool:
    """Whether some non-empty line has another number of fields (quotes aside)."""
    raw = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(raw == 10)
    if not data.endswith(b"\n"):
        ends = np.append(ends, len(raw))
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts
    carriage = (lengths > 0) & (raw[np.maximum(ends - 1, 0)] == 13)
    filled = (lengths - carriage) > 0
    delimiters = np.flatnonzero(raw == ord(delimiter))
    counts = np.searchsorted(delimiters, ends) - np.searchsorted(delimiters, starts)
    return bool(np.any(filled & (counts != n_columns - 1)))


def _integer_labels(cells: np.ndarray) -> np.ndarray | None:
    """The labels as int64 when every one is a decimal integer that int64
    holds (the rule of the pyarrow path), else None."""
    values = []
    for cell in cells.tolist():
        if _INTEGER.fullmatch(cell.strip(" \t")) is None:
            return None
        value = int(cell)
        if not -(1 << 63) <= value < (1 << 63):
            return None
        values.append(value)
    return np.array(values, dtype=np.int64)


def _compact(cells: np.ndarray) -> np.ndarray:
    """str cells in the narrowest str dtype (loadtxt's is as wide as its block)."""
    width = int(np.char.str_len(cells).max()) if cells.size else 1
    return cells.astype(f"U{max(width, 1)}")


def _floats(cells: np.ndarray) -> np.ndarray | None:
    """Cells as float64, a blank cell missing (NaN); None when one is not a number."""
    blank = np.char.str_len(np.char.strip(cells)) == 0
    try:
        return np.where(blank, "nan", cells).astype(np.float64)
    except ValueError:
        return None


def _parse_numpy(text: str, data: bytes, spec: ReadSpec):
    """numpy's loadtxt: ``(X, y, sample_weight, text)``, or None when
    something is wrong."""
    if '"' not in text:
        if _ragged_lines(data, spec.delimiter, spec.n_columns):
            return None
    elif any(len(cells) != spec.n_columns for cells in
             csv.reader(io.StringIO(text), delimiter=spec.delimiter) if cells):
        return None  # quoted cells may hold delimiters: count fields as csv does
    options = {"delimiter": spec.delimiter, "ndmin": 2, "comments": None, "quotechar": '"'}
    numeric = [k for k in range(len(spec.columns)) if not _is_text(spec, k)]
    strings = [k for k in range(len(spec.columns)) if _is_text(spec, k)]
    extra = tuple(j for j in (spec.label, spec.weight) if j is not None)

    def load(usecols, dtype):
        with warnings.catch_warnings():
            # loadtxt warns about empty lines with dtype=str; skipped on purpose.
            warnings.simplefilter("ignore", UserWarning)
            return np.loadtxt(io.StringIO(text), usecols=usecols, dtype=dtype, **options)

    try:
        try:
            values = load([spec.columns[k] for k in numeric], np.float64)
        except ValueError:  # missing cells: read as text, blanks made NaN
            values = _floats(load([spec.columns[k] for k in numeric], str))
            if values is None:
                return None
        cells = load([spec.columns[k] for k in strings] + list(extra), str) \
            if strings or extra else np.empty((values.shape[0], 0), str)
    except ValueError:
        return None
    X = np.empty((values.shape[0], len(spec.columns)), dtype=spec.dtype)
    texts = {}
    with np.errstate(over="ignore"):  # beyond float32: refused below
        X[:, numeric] = values
    for position, k in enumerate(strings):
        texts[k], X[:, k] = _compact(cells[:, position]), np.nan
    if np.isinf(X).any():
        return None
    position = len(strings)
    y = weights = None
    if spec.label is not None:
        labels = cells[:, position]
        position += 1
        if spec.label_kind == "str":
            if np.any(np.char.str_len(np.char.strip(labels)) == 0):
                return None
            y = _compact(labels)
        else:
            y = _integer_labels(labels)
            if y is None:
                try:
                    y = labels.astype(np.float64)
                except ValueError:
                    return None
                if not np.isfinite(y).all():
                    return None
    if spec.weight is not None:
        try:
            weights = cells[:, position].astype(np.float64)
        except ValueError:
            return None
        if not np.isfinite(weights).all():
            return None
    return X, y, weights, texts


def parse(data: bytes, spec: ReadSpec, engine: str = "auto"):
    """``(X, y, sample_weight, text)`` of whole rows (``y`` and
    ``sample_weight`` None without a label or weight column; ``text``:
    feature index -> str cells), or None when something is wrong (the line
    scan then names it). ``engine``: 'pyarrow', 'numpy', or 'auto' (pyarrow
    when importable). pyarrow and numpy give the same arrays: where pyarrow
    refuses a block, numpy gives its opinion."""
    pa = _arrow() if engine in ("auto", "pyarrow") else None
    if engine == "pyarrow" and pa is None:
        raise ImportError("the pyarrow engine needs pyarrow")
    if pa is not None:
        parsed = _parse_arrow(pa, data, spec)
        if parsed is not None:
            return parsed
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return _parse_numpy(text, data, spec)
