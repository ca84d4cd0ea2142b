"""Parquet: footers on the driver, whole row groups in the workers.

pyarrow reads through :class:`RangedFile`, a file object whose every read is
one ranged GET, so a worker fetches the footer and the column chunks of its
row groups and columns, nothing else. pyarrow is imported only here, and only
when a Parquet dataset is resolved or read.
"""

from __future__ import annotations

import io

import numpy as np

from ._paths import Source, display, list_dataset, map_objects, storage_for
from ._plan import balance_runs
from ._spec import DataObject, Piece, ReadSpec, ResolvedDataset


class RangedFile(io.RawIOBase):
    """A read-only file over one object: each read is a ranged GET."""

    def __init__(self, source: Source, bucket: str, key: str, size: int):
        self.source, self.bucket, self.key, self._size = source, bucket, key, size
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self._size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer) -> int:
        stop = min(self._size, self.position + len(buffer))
        data = self.source.get_range(self.bucket, self.key, self.position, stop)
        buffer[:len(data)] = data
        self.position += len(data)
        return len(data)


def _open(source: Source, bucket: str, key: str, size: int):
    import pyarrow.parquet as pq

    try:
        # pre_buffer: one GET per row group for all its wanted columns, not one
        # per column chunk (300 round trips for 6 row groups of 50 columns).
        return pq.ParquetFile(RangedFile(source, bucket, key, size), pre_buffer=True)
    except Exception as error:  # noqa: BLE001 - pyarrow's errors are its own types
        raise ValueError(f"{display(bucket, key)} is not a Parquet file: {error}") from None


def _kind(arrow_type) -> str:
    import pyarrow as pa

    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or \
            pa.types.is_boolean(arrow_type):
        return "number"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or \
            pa.types.is_dictionary(arrow_type):
        return "str"
    return "other"


def _footer(source: Source, obj):
    """``(row counts of the row groups, {column: kind})``; an empty object has none."""
    if obj.size == 0:
        return (), None
    parquet = _open(source, obj.bucket, obj.key, obj.size)
    metadata = parquet.metadata
    groups = tuple(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups))
    schema = parquet.schema_arrow
    return groups, {name: _kind(schema.field(name).type) for name in schema.names}


def resolve(dataset, storage, local: bool) -> ResolvedDataset:
    listed = list_dataset(dataset.path, storage, local)
    source = Source(storage_for(storage, local))
    footers = map_objects(lambda obj: _footer(source, obj), listed)
    first = next(((obj, kinds) for obj, (_, kinds) in zip(listed, footers, strict=True)
                  if kinds), None)
    if first is None:
        raise ValueError(f"The dataset {dataset.path!r} has no row.")
    first_obj, kinds = first
    label, weight = dataset.label, dataset.sample_weight
    if dataset.columns is None:
        # pandas' index columns are not data (pandas reads them back as the index).
        columns = tuple(name for name in kinds if name not in (label, weight)
                        and not (name.startswith("__index_level_") and name.endswith("__")))
    else:
        columns = dataset.columns
    if label is not None and label in columns:
        raise ValueError(f"The label column {label!r} is also a feature column.")
    if weight is not None and weight in columns:
        raise ValueError(f"The weight column {weight!r} is also a feature column.")
    if not columns:
        raise ValueError(f"{first_obj.name} has no feature column besides the label.")
    wanted = columns + tuple(name for name in (label, weight) if name is not None)
    for obj, (_, object_kinds) in zip(listed, footers, strict=True):
        if object_kinds is None:
            continue
        for name in wanted:
            if name not in object_kinds:
                raise ValueError(f"{obj.name} has no column {name!r}; its columns are "
                                 f"{list(object_kinds)}.")
        for name in wanted:
            if name != label and object_kinds[name] == "other":
                raise ValueError(f"{obj.name}: the column {name!r} is neither numbers "
                                 "nor strings.")
            if name == weight and object_kinds[name] != "number":
                raise ValueError(f"{obj.name}: the weight column {name!r} is not numeric.")
            if object_kinds[name] != kinds[name]:
                raise ValueError(f"{obj.name}: the column {name!r} holds "
                                 f"{object_kinds[name]} values, {first_obj.name}'s "
                                 f"{kinds[name]} values.")
    label_kind = None
    if label is not None:
        label_kind = kinds[label]
        if label_kind == "other":
            raise ValueError(f"{first_obj.name}: the label column {label!r} is neither "
                             "numbers nor strings.")
    objects = tuple(DataObject(obj.bucket, obj.key, obj.size, row_groups=groups,
                               version=obj.version)
                    for obj, (groups, _) in zip(listed, footers, strict=True))
    n_rows = sum(sum(obj.row_groups) for obj in objects)
    if n_rows == 0:
        raise ValueError(f"The dataset {dataset.path!r} has no row.")
    return ResolvedDataset(
        dataset=dataset, local=local, objects=objects, n_features=len(columns),
        feature_names=tuple(columns), has_label=label is not None, label_kind=label_kind,
        dtype="float64", n_rows=n_rows, columns=tuple(columns), label=label,
        n_columns=len(columns), kinds=tuple(kinds[name] for name in columns), weight=weight)


def plan(resolved: ResolvedDataset, n_workers: int) -> list[ReadSpec]:
    # Non-empty row groups as (object, group, rows), in dataset order.
    groups = [(i, g, rows) for i, obj in enumerate(resolved.objects)
              for g, rows in enumerate(obj.row_groups) if rows]
    runs = balance_runs([rows for _, _, rows in groups], min(n_workers, len(groups)))
    specs, offset = [], 0
    for index, (low, high) in enumerate(runs):
        pieces = []
        for i, g, _ in groups[low:high]:
            obj = resolved.objects[i]
            if pieces and pieces[-1].key == obj.key and pieces[-1].stop == g:
                last = pieces.pop()
                pieces.append(Piece(obj.bucket, obj.key, last.start, g + 1, obj.size))
            else:
                pieces.append(Piece(obj.bucket, obj.key, g, g + 1, obj.size))
        n_rows = sum(rows for _, _, rows in groups[low:high])
        specs.append(resolved.spec(index, pieces, row_offset=offset, n_rows=n_rows))
        offset += n_rows
    return specs


def _group_rows(table, spec: ReadSpec, name: str) -> dict:
    """One row group's rows: numeric features (a null is NaN), text features,
    the labels and the weights, checked."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def first_null(column) -> int:
        return int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])

    for column in [c for k, c in enumerate(spec.columns) if spec.kinds[k] == "str"] + [
            c for c in (spec.label, spec.weight) if c is not None]:
        nulls = table.column(column).null_count
        if nulls:
            raise ValueError(f"{name}, row {first_null(table.column(column))} (from 0): the "
                             f"column {column!r} is missing (null; {nulls} in this row "
                             "group); only numeric feature columns may have missing cells.")
    X = np.empty((table.num_rows, len(spec.columns)), dtype=spec.dtype)
    rows: dict = {}
    for j, column in enumerate(spec.columns):
        if spec.kinds[j] == "str":
            values = pc.cast(table.column(column), pa.string()).to_pylist()
            rows.setdefault("text", {})[j] = np.array(values, dtype=str)
            X[:, j] = np.nan
        else:
            X[:, j] = pc.cast(table.column(column), pa.float64()).to_numpy(
                zero_copy_only=False)
    infinite = np.isinf(X).any(axis=1)
    if infinite.any():
        row = int(np.argmax(infinite))
        raise ValueError(f"{name}, row {row} (from 0): infinity.")
    rows["X"] = X
    if spec.weight is not None:
        weights = pc.cast(table.column(spec.weight), pa.float64()).to_numpy()
        if not np.isfinite(weights).all():
            row = int(np.argmin(np.isfinite(weights)))
            raise ValueError(f"{name}, row {row} (from 0): the weight is NaN or infinite.")
        rows["sample_weight"] = weights
    if spec.label is None:
        return rows
    labels = table.column(spec.label)
    if spec.label_kind == "number":
        y = labels.to_numpy().astype(np.float64)
        if not np.isfinite(y).all():
            row = int(np.argmin(np.isfinite(y)))
            raise ValueError(f"{name}, row {row} (from 0): the label is NaN or infinite.")
    else:
        y = np.asarray(pc.cast(labels, pa.string()).to_pylist(), dtype=str)
    rows["y"] = y
    return rows


def read(spec: ReadSpec, source: Source) -> dict:
    wanted = list(spec.columns) + [c for c in (spec.label, spec.weight) if c is not None]
    parts = []
    for piece in spec.pieces:
        parquet = _open(source, piece.bucket, piece.key, piece.size)
        for group in range(piece.start, piece.stop):
            table = parquet.read_row_group(group, columns=wanted)
            where = f"{display(piece.bucket, piece.key)}, row group {group}"
            parts.append(_group_rows(table, spec, where))
    rows = {name: np.concatenate([part[name] for part in parts])
            for name in ("X", "y", "sample_weight") if name in parts[0]}
    if "text" in parts[0]:
        rows["text"] = {k: np.concatenate([part["text"][k] for part in parts])
                        for k in parts[0]["text"]}
    return rows
