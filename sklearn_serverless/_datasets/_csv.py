"""Delimited text: header lines on the driver, byte ranges in the workers.

The data bytes of all objects (after each header line) are concatenated and
cut into even byte ranges. A row belongs to the range where it starts: a
worker skips the end of a row begun before its range (one byte of look-back
says whether its first byte starts a row) and reads past its range's end, in
growing ranged GETs, until its last row ends, however long that row is.

Here: the driver's metadata (header lines, the first row's kinds of
cells), the plan of byte ranges, and a worker's ranged GETs. A worker's rows
are parsed by :mod:`._csv_parse`; a block that cannot be parsed is scanned
line by line by :mod:`._csv_lines` to name the bad line and column.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._csv_lines import _cells, _fail, _is_number, _is_text
from ._csv_parse import parse
from ._paths import Source, list_dataset, map_objects, storage_for
from ._plan import split_concatenation
from ._spec import DataObject, Piece, ReadSpec, ResolvedDataset

_BOM = b"\xef\xbb\xbf"
_GZIP_MAGIC = b"\x1f\x8b"
_COMPRESSED = (".gz", ".gzip", ".bz2", ".xz", ".zst", ".zip")
#: First read past a range's end, doubled until the row ends.
_TAIL_BLOCK = 64 * 1024
#: Blocks in which the driver reads an object's first lines.
_HEAD_BLOCK = 64 * 1024
#: First lines of the objects the driver has read, by version: a pipeline
#: resolves its dataset once per step, and reads each head once.
_HEADS: dict = {}
_MAX_HEADS = 4096


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


def _kept_head(source: Source, obj, header: bool):
    """:func:`_head`, read once per object version (an object without a
    version is read every time)."""
    key = (obj.bucket, obj.key, obj.version, obj.size, header)
    if obj.version and key in _HEADS:
        return _HEADS[key]
    head = _head(source, obj, header)
    if obj.version:
        if len(_HEADS) >= _MAX_HEADS:
            _HEADS.clear()
        _HEADS[key] = head
    return head


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
    heads = map_objects(lambda obj: _kept_head(source, obj, dataset.header), listed)
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
    objects = tuple(DataObject(obj.bucket, obj.key, obj.size, data_start,
                                               version=obj.version)
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


def read(spec: ReadSpec, source: Source) -> dict:
    parts = []
    pieces = list(spec.pieces)
    # The next piece's bytes are fetched while this one parses (pyarrow and
    # the socket both let go of the GIL): a worker's reads overlap its parsing.
    with ThreadPoolExecutor(1, thread_name_prefix="sklearn-serverless-read") as ahead:
        fetch = ahead.submit(_rows_bytes, source, pieces[0]) if pieces else None
        for k, piece in enumerate(pieces):
            data, first = fetch.result()
            fetch = ahead.submit(_rows_bytes, source, pieces[k + 1]) \
                if k + 1 < len(pieces) else None
            if not data.strip():
                continue
            parsed = parse(data, spec)
            if parsed is None:
                if fetch is not None:
                    fetch.cancel() or fetch.exception()  # one request at a time on source
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
