"""Delimited text: header lines on the driver, byte ranges in the workers.

The data bytes of all objects (after each header line) are concatenated and
cut into even byte ranges. A row belongs to the range where it starts: a
worker skips the end of a row begun before its range (one byte of look-back
says whether its first byte starts a row) and reads past its range's end, in
growing ranged GETs, until its last row ends, however long that row is.

Worker side: pyarrow's CSV reader parses a worker's rows (imported there,
lazily); without pyarrow, ``numpy.loadtxt`` does, with the same results. Where
pyarrow refuses a block, numpy gives its opinion, and when both refuse, the
block is scanned line by line to name the bad line and column.

Labels keep their type: text as str; numbers as int64 when every label of a
worker's rows is a decimal integer that int64 holds, else float64.
"""

from __future__ import annotations

import csv
import io
import math
import re
import warnings

import numpy as np

from ._dataset import DataError, DataObject, Piece, ReadSpec, ResolvedDataset
from ._paths import Source, display, list_dataset, map_objects, storage_for
from ._plan import split_concatenation

_BOM = b"\xef\xbb\xbf"
_GZIP_MAGIC = b"\x1f\x8b"
_COMPRESSED = (".gz", ".gzip", ".bz2", ".xz", ".zst", ".zip")
#: First read past a range's end, doubled until the row ends.
_TAIL_BLOCK = 64 * 1024
#: Blocks in which the driver reads an object's first lines.
_HEAD_BLOCK = 64 * 1024
#: Blocks in which the bytes before a bad row are scanned for its line number.
_COUNT_BLOCK = 8 * 1024 * 1024
#: Blocks in which pyarrow parses a worker's rows (faster than one block for
#: all); rows longer than this are parsed again in one block of up to _MAX_BLOCK.
_BLOCK = 1 << 20
_MAX_BLOCK = (1 << 31) - 1
#: A label that is an integer (after spaces and tabs are trimmed).
_INTEGER = re.compile("^-?[0-9]+$")


def _cells(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter))


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _refuse_compressed(name: str) -> None:
    raise ValueError(
        f"{name} is compressed: byte ranges of a compressed object cannot be split "
        "across workers. Store it uncompressed, or as Parquet (whose pages may be "
        "compressed).")


def _head(source: Source, obj, header: bool):
    """``(first line, first non-empty data line, data_start)`` of an object,
    read in growing blocks from its start; lines are bytes without the newline
    (None when absent)."""
    if obj.key.lower().endswith(_COMPRESSED):
        _refuse_compressed(obj.name)
    if obj.size == 0:
        return None, None, 0
    data, block = b"", _HEAD_BLOCK
    while True:
        data += source.get_range(obj.bucket, obj.key, len(data),
                                 min(obj.size, len(data) + block))
        if data.startswith(_GZIP_MAGIC):
            _refuse_compressed(obj.name)
        start = len(_BOM) if data.startswith(_BOM) else 0
        complete = len(data) >= obj.size
        lines = data[start:].split(b"\n")
        if not complete:
            lines.pop()  # the last line may go on
        first = lines[0] if lines else None
        data_start = start
        if header and first is not None:
            data_start = min(obj.size, start + len(first) + 1)
        rows = lines[1:] if header else lines
        row = next((line for line in rows if line.rstrip(b"\r")), None)
        if complete or (row is not None and (first is not None or not header)):
            return first, row, data_start
        block *= 2


def _decode(line: bytes, name: str) -> str:
    try:
        return line.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError:
        raise ValueError(f"{name}: the first lines are not UTF-8 text.") from None


def _column_index(column, names, n_columns: int, name: str) -> int:
    if isinstance(column, str):
        if names is None or column not in names:
            raise ValueError(f"{name} has no column {column!r}; its header has {names}.")
        return names.index(column)
    if not 0 <= column < n_columns:
        raise ValueError(f"Column index {column} is out of range: {name} has "
                         f"{n_columns} columns.")
    return column


def resolve(dataset, storage, local: bool) -> ResolvedDataset:
    listed = list_dataset(dataset.path, storage, local)
    source = Source(storage_for(storage, local))
    heads = map_objects(lambda obj: _head(source, obj, dataset.header), listed)
    delimiter = dataset.delimiter
    names = None
    first_name = None
    if dataset.header:
        for obj, (first, _, _) in zip(listed, heads, strict=True):
            if first is None:
                continue
            line = _decode(first, obj.name)
            if names is None:
                names, first_name = _cells(line, delimiter), obj.name
                names = [cell.strip() for cell in names]
            elif [cell.strip() for cell in _cells(line, delimiter)] != names:
                raise ValueError(f"{obj.name}'s header {line!r} differs from "
                                 f"{first_name}'s ({delimiter.join(names)!r}).")
    found = next(((obj, row) for obj, (_, row, _) in zip(listed, heads, strict=True)
                  if row is not None), None)
    if found is None:
        raise ValueError(f"The dataset {dataset.path!r} has no row.")
    row_obj, row = found
    row_cells = _cells(_decode(row, row_obj.name), delimiter)
    n_columns = len(names) if names is not None else len(row_cells)
    name = first_name or row_obj.name
    label = weight = None
    if dataset.label is not None:
        label = _column_index(dataset.label, names, n_columns, name)
    if dataset.sample_weight is not None:
        weight = _column_index(dataset.sample_weight, names, n_columns, name)
    if dataset.columns is None:
        columns = tuple(j for j in range(n_columns) if j not in (label, weight))
    else:
        columns = tuple(_column_index(c, names, n_columns, name) for c in dataset.columns)
    if label is not None and label in columns:
        raise ValueError(f"The label column {dataset.label!r} is also a feature column.")
    if weight is not None and (weight in columns or weight == label):
        raise ValueError(f"The weight column {dataset.sample_weight!r} is also a feature "
                         "or the label column.")
    if not columns:
        raise ValueError(f"{name} has no feature column besides the label.")
    kinds, samples = [], []
    for j in columns:
        cell = row_cells[j].strip() if j < len(row_cells) else ""
        text = bool(cell) and not _is_number(cell)
        kinds.append("str" if text else "number")
        samples.append(cell if text else None)
    if weight is not None:
        cell = row_cells[weight].strip() if weight < len(row_cells) else ""
        if not _is_number(cell):
            raise ValueError(f"{row_obj.name}: the weight column {dataset.sample_weight!r} "
                             f"holds {cell!r} on the first row, not a number.")
    label_kind = None
    if label is not None:
        cell = row_cells[label] if label < len(row_cells) else ""
        label_kind = "number" if _is_number(cell) else "str"
    objects = tuple(DataObject(obj.bucket, obj.key, obj.size, data_start)
                    for obj, (_, _, data_start) in zip(listed, heads, strict=True))
    return ResolvedDataset(
        dataset=dataset, local=local, objects=objects, n_features=len(columns),
        feature_names=tuple(names[j] for j in columns) if names is not None else None,
        has_label=label is not None, label_kind=label_kind, dtype=dataset.dtype,
        columns=columns, label=label, n_columns=n_columns, row_length=len(row) + 1,
        column_names=tuple(names) if names is not None else None,
        kinds=tuple(kinds), weight=weight,
        text_samples=tuple(samples))


def plan(resolved: ResolvedDataset, n_workers: int) -> list[ReadSpec]:
    lengths = [obj.size - obj.data_start for obj in resolved.objects]
    n_specs = max(1, min(n_workers, sum(lengths) // resolved.row_length))
    specs = []
    for index, pieces in enumerate(split_concatenation(lengths, n_specs)):
        specs.append(resolved.spec(index, [
            Piece(obj.bucket, obj.key, obj.data_start + start, obj.data_start + stop,
                  obj.size, obj.data_start)
            for obj, start, stop in ((resolved.objects[i], a, b) for i, a, b in pieces)
        ]))
    return specs


def _rows_bytes(source: Source, piece: Piece) -> tuple[bytes, int]:
    """The bytes of the whole rows starting in the piece, and where the first starts."""
    start, stop = piece.start, piece.stop
    if start > piece.data_start:
        data = source.get_range(piece.bucket, piece.key, start - 1, stop)
        newline = data.find(b"\n")
        if newline < 0 or start + newline >= stop:
            return b"", stop  # every byte here continues a row begun earlier
        data, start = data[newline + 1:], start + newline
    else:
        data = source.get_range(piece.bucket, piece.key, start, stop)
    parts, position, block = [data], stop, _TAIL_BLOCK
    while position < piece.size and not parts[-1].endswith(b"\n"):
        more = source.get_range(piece.bucket, piece.key, position,
                                min(piece.size, position + block))
        newline = more.find(b"\n")
        parts.append(more if newline < 0 else more[:newline + 1])
        if newline >= 0:
            break
        position, block = position + len(more), block * 2
    return b"".join(parts), start


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


def _is_text(spec: ReadSpec, k: int) -> bool:
    return bool(spec.kinds) and spec.kinds[k] == "str"


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
                if compute.any(compute.match_substring_regex(column, "[\r\n]")).as_py():
                    return None  # a quoted line break: byte ranges cut rows at every one
                text[k] = np.array(column.to_pylist(), dtype=str)
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
        y = _arrow_labels(pa, table.column(position), spec)
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


def _arrow_labels(pa, cells, spec: ReadSpec):
    compute = pa.compute
    if compute.any(compute.match_substring_regex(cells, "[\r\n]")).as_py():
        return None  # a quoted line break: the byte ranges cut rows at every one
    if spec.label_kind == "str":
        y = np.array(cells.to_pylist(), dtype=str)
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


def _column(j: int, spec: ReadSpec) -> str:
    if spec.names is not None:
        return f"column {spec.names[j]!r}"
    return f"column {j} (from 0)"


def _problem(line: str, spec: ReadSpec) -> str | None:
    """What is wrong with one line, or None."""
    if "\r" in line:
        return "a carriage return inside the line"
    cells = _cells(line, spec.delimiter)
    if len(cells) != spec.n_columns:
        return f"{len(cells)} fields where the first row has {spec.n_columns}"
    for k, j in enumerate(spec.columns):
        if _is_text(spec, k) or not cells[j].strip():
            continue  # text, or a missing cell (NaN)
        try:
            value = float(cells[j])
        except ValueError:
            return f"the cell {cells[j]!r} in {_column(j, spec)} is not a number"
        if math.isinf(value) or np.isinf(np.asarray(value, spec.dtype)):
            return f"the cell {cells[j]!r} in {_column(j, spec)} is infinite"
    if spec.weight is not None:
        cell = cells[spec.weight]
        if not (_is_number(cell) and math.isfinite(float(cell))):
            return f"the weight {cell!r} ({_column(spec.weight, spec)}) is not a finite number"
    if spec.label is not None:
        cell = cells[spec.label]
        if not cell.strip():
            return f"the label ({_column(spec.label, spec)}) is missing"
        if spec.label_kind == "number" and not (_is_number(cell) and
                                                math.isfinite(float(cell))):
            return (f"the label {cell!r} ({_column(spec.label, spec)}) is not a finite "
                    "number, while the first row's label is numeric")
    return None


def _line_number(source: Source, piece: Piece, offset: int) -> int:
    """The 1-based line number, within its object, of the line starting at ``offset``."""
    count, position = 0, 0
    while position < offset:
        data = source.get_range(piece.bucket, piece.key, position,
                                min(offset, position + _COUNT_BLOCK))
        count, position = count + data.count(b"\n"), position + len(data)
    return count + 1


def _fail(source: Source, piece: Piece, first: int, data: bytes, spec: ReadSpec):
    """Raises the DataError naming the bad line."""
    name = display(piece.bucket, piece.key)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{name}: byte {first + error.start} is not UTF-8 text.") from None
    position = first
    for line in text.split("\n"):
        stripped = line.rstrip("\r")
        problem = _problem(stripped, spec) if stripped else None
        if problem is not None:
            number = _line_number(source, piece, position)
            raise DataError(f"{name}, line {number}: {problem}.")
        position += len(line.encode("utf-8")) + 1
    raise DataError(f"{name}: the rows from byte {first} could not be read as numbers.")


def read(spec: ReadSpec, source: Source) -> dict:
    parts = []
    for piece in spec.pieces:
        data, first = _rows_bytes(source, piece)
        if not data.strip():
            continue
        parsed = parse(data, spec)
        if parsed is None:
            _fail(source, piece, first, data, spec)
        parts.append(parsed)
    rows = {"X": np.concatenate([p[0] for p in parts]) if parts
            else np.empty((0, len(spec.columns)), spec.dtype)}
    if spec.label is not None:
        empty = np.empty(0, np.float64 if spec.label_kind == "number" else str)
        rows["y"] = np.concatenate([p[1] for p in parts]) if parts else empty
    if spec.weight is not None:
        rows["sample_weight"] = (np.concatenate([p[2] for p in parts]) if parts
                                 else np.empty(0))
    text = {k: np.concatenate([p[3][k] for p in parts]) if parts else np.empty(0, str)
            for k in range(len(spec.columns)) if _is_text(spec, k)}
    if text:
        rows["text"] = text
    return rows


def count(spec: ReadSpec, source: Source) -> int:
    """The rows of a spec without parsing them: its non-empty lines (the
    rows :func:`read` returns from a well-formed object)."""
    n_rows = 0
    for piece in spec.pieces:
        data, _ = _rows_bytes(source, piece)
        n_rows += sum(1 for line in data.split(b"\n") if line.rstrip(b"\r"))
    return n_rows
