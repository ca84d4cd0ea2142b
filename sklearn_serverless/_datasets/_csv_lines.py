"""CSV one line at a time: a line's cells, and the scan that names the line
(and the column) where a worker's block could not be parsed. Worker side
(the driver uses :func:`_cells` and :func:`_is_number` on the first lines)."""

from __future__ import annotations

import csv
import math
import re

import numpy as np

from ._paths import Source, display
from ._spec import DataError, Piece, ReadSpec

#: Blocks in which the bytes before a bad row are scanned for its line number.
_COUNT_BLOCK = 8 * 1024 * 1024
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


def _is_text(spec: ReadSpec, k: int) -> bool:
    return bool(spec.kinds) and spec.kinds[k] == "str"


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

