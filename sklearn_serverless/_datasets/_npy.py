"""``.npy`` objects: the header on the driver, one ranged GET per row range in
the worker."""

from __future__ import annotations

import io

import numpy as np

from ._paths import Source, display, list_dataset, map_objects, storage_for
from ._plan import even_cuts, split_concatenation
from ._spec import DataObject, Piece, ReadSpec, ResolvedDataset

#: First read of an object: enough for any header numpy writes for 2-D arrays.
_HEADER_BYTES = 4096


def read_header(stream, version: tuple[int, int] | None = None):
    """``(shape, fortran_order, dtype)`` of the .npy file at ``stream``'s
    position (after its magic when ``version`` is given)."""
    if version is None:
        version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(stream)
    return np.lib.format.read_array_header_2_0(stream)


def _header(source: Source, obj) -> DataObject:
    name = obj.name
    head = source.get_range(obj.bucket, obj.key, 0, min(obj.size, _HEADER_BYTES))
    try:
        stream = io.BytesIO(head)
        version = np.lib.format.read_magic(stream)
        if len(head) >= _HEADER_BYTES and obj.size > _HEADER_BYTES:
            # A long header (many-field dtypes): fetch it whole.
            length_bytes = 2 if version == (1, 0) else 4
            length = int.from_bytes(head[8:8 + length_bytes], "little")
            head = source.get_range(obj.bucket, obj.key, 0, 8 + length_bytes + length)
            stream = io.BytesIO(head)
            np.lib.format.read_magic(stream)
        shape, fortran, dtype = read_header(stream, version)
    except Exception as error:  # noqa: BLE001 - any unreadable header
        raise ValueError(f"{name} is not a .npy file: {error}") from None
    if len(shape) != 2:
        raise ValueError(f"{name} holds an array of shape {shape}; a dataset needs 2-D "
                         "arrays (rows x features).")
    if dtype.kind not in "biuf" or dtype.fields is not None:
        raise ValueError(f"{name} holds {dtype} values; a dataset needs numbers.")
    data_start = stream.tell()
    expected = data_start + shape[0] * shape[1] * dtype.itemsize
    if obj.size != expected:
        raise ValueError(f"{name} has {obj.size} bytes where its header announces "
                         f"{expected}: truncated or not a .npy file.")
    return DataObject(obj.bucket, obj.key, obj.size, data_start, (shape[0], shape[1]),
                      dtype.str, "F" if fortran else "C", version=obj.version)


def resolve(dataset, storage, local: bool) -> ResolvedDataset:
    listed = list_dataset(dataset.path, storage, local)
    source = Source(storage_for(storage, local))
    objects = map_objects(lambda obj: _header(source, obj), listed)
    n_features = objects[0].row_groups[1]
    for obj in objects[1:]:
        if obj.row_groups[1] != n_features:
            raise ValueError(f"{display(obj.bucket, obj.key)} has {obj.row_groups[1]} "
                             f"columns where {display(objects[0].bucket, objects[0].key)} "
                             f"has {n_features}.")
    n_rows = sum(obj.row_groups[0] for obj in objects)
    if n_rows == 0:
        raise ValueError(f"The dataset {dataset.path!r} has no row.")
    all_float32 = all(np.dtype(obj.dtype) == np.float32 for obj in objects)
    return ResolvedDataset(
        dataset=dataset, local=local, objects=tuple(objects), n_features=n_features,
        feature_names=None, has_label=False, label_kind=None,
        dtype="float32" if all_float32 else "float64", n_rows=n_rows, n_columns=n_features)


def plan(resolved: ResolvedDataset, n_workers: int) -> list[ReadSpec]:
    rows = [obj.row_groups[0] for obj in resolved.objects]
    n_specs = min(n_workers, resolved.n_rows)
    offsets = even_cuts(resolved.n_rows, n_specs)
    specs = []
    for index, pieces in enumerate(split_concatenation(rows, n_specs)):
        specs.append(resolved.spec(index, [
            Piece(resolved.objects[i].bucket, resolved.objects[i].key, start, stop,
                  resolved.objects[i].size, resolved.objects[i].data_start,
                  resolved.objects[i].dtype, resolved.objects[i].order)
            for i, start, stop in pieces
        ], row_offset=offsets[index], n_rows=offsets[index + 1] - offsets[index]))
    return specs


def _fetch(source: Source, piece: Piece, n_columns: int) -> np.ndarray:
    """The piece's rows as stored: one GET (C order) or one per column (Fortran)."""
    dtype = np.dtype(piece.dtype)
    if piece.order == "C":
        row_bytes = n_columns * dtype.itemsize
        data = source.get_range(piece.bucket, piece.key, piece.data_start + piece.start
                                * row_bytes, piece.data_start + piece.stop * row_bytes)
        return np.frombuffer(data, dtype=dtype).reshape(-1, n_columns)
    # Fortran order: each column is contiguous, n_object_rows long.
    column_bytes = (piece.size - piece.data_start) // n_columns
    block = np.empty((piece.stop - piece.start, n_columns), dtype)
    for j in range(n_columns):
        begin = piece.data_start + j * column_bytes
        data = source.get_range(piece.bucket, piece.key, begin + piece.start * dtype.itemsize,
                                begin + piece.stop * dtype.itemsize)
        block[:, j] = np.frombuffer(data, dtype=dtype)
    return block


def read(spec: ReadSpec, source: Source) -> dict:
    blocks = []
    for piece in spec.pieces:
        block = _fetch(source, piece, spec.n_columns).astype(spec.dtype, copy=True)
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            row = piece.start + int(np.argmin(finite))
            raise ValueError(f"{display(piece.bucket, piece.key)}, row {row} (from 0): "
                             "NaN or infinity (or a value too large for "
                             f"{spec.dtype}).")
        blocks.append(block)
    return {"X": np.concatenate(blocks) if blocks else
            np.empty((0, spec.n_columns), spec.dtype)}
