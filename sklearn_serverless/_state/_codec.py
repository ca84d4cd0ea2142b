"""Arrays as bytes: dtype, shape and the raw C-order data, never pickle.

A shared store must not be able to make a worker run code, so a blob can only
describe plain numeric arrays: object dtypes are refused both ways. The header
is a few fixed-size fields (the .npy format's text header cost 0.5 ms per
array to write and parse, more than a round trip to Redis).

Blob: ``b"SKS1"``, array count (u32); per array: dtype string length (u8),
dtype string (e.g. ``"<f8"``), ndim (u8), shape (ndim x u64), data.
"""

from __future__ import annotations

import math
import struct

import numpy as np

_MAGIC = b"SKS1"
_COUNT = struct.Struct("<I")
_BYTE = struct.Struct("<B")


def encode_arrays(arrays: list[np.ndarray]) -> bytes:
    """Pack arrays into one blob (see module doc)."""
    parts = [_MAGIC, _COUNT.pack(len(arrays))]
    for array in arrays:
        array = np.asarray(array)
        if array.dtype.hasobject or array.dtype.fields is not None:
            raise ValueError(f"only plain numeric arrays can be shared, not {array.dtype}")
        dtype = array.dtype.str.encode()
        parts += [_BYTE.pack(len(dtype)), dtype, _BYTE.pack(array.ndim),
                  struct.pack(f"<{array.ndim}Q", *array.shape),
                  _raw(array)]
    return b"".join(parts)  # the one copy of the data


def _raw(array: np.ndarray) -> memoryview | bytes:
    if array.size == 0:
        return b""
    return memoryview(np.ascontiguousarray(array)).cast("B")


def decode_arrays(blob: bytes) -> list[np.ndarray]:
    """Inverse of :func:`encode_arrays`: writable copies; anything but a blob
    of plain numeric arrays is a ValueError."""
    view = memoryview(blob)
    if bytes(view[:4]) != _MAGIC:
        raise ValueError("not an array blob")
    (count,) = _COUNT.unpack_from(view, 4)
    offset = 4 + _COUNT.size
    arrays = []
    for _ in range(count):
        (length,) = _BYTE.unpack_from(view, offset)
        dtype = _dtype(bytes(view[offset + 1: offset + 1 + length]))
        offset += 1 + length
        (ndim,) = _BYTE.unpack_from(view, offset)
        shape = _SHAPES[ndim].unpack_from(view, offset + 1) if ndim < 4 else \
            struct.unpack_from(f"<{ndim}Q", view, offset + 1)
        offset += 1 + 8 * ndim
        size = math.prod(shape)
        array = np.frombuffer(view, dtype=dtype, count=size, offset=offset).reshape(shape)
        arrays.append(array.copy())
        offset += size * dtype.itemsize
    if offset != len(view):
        raise ValueError("trailing bytes after the last array")
    return arrays


#: Shape fields of 0 to 3 dimensions.
_SHAPES = [struct.Struct(f"<{ndim}Q") for ndim in range(4)]
_DTYPES: dict[bytes, np.dtype] = {}


def _dtype(name: bytes) -> np.dtype:
    """The dtype a blob names, checked once per name (a round decodes one
    blob per worker: numpy's parsing was a third of it)."""
    dtype = _DTYPES.get(name)
    if dtype is None:
        dtype = np.dtype(name.decode("ascii"))
        if dtype.hasobject or dtype.fields is not None:
            raise ValueError(f"refusing a non-numeric dtype {dtype} in shared state")
        if len(_DTYPES) < 64:
            _DTYPES[name] = dtype
    return dtype


def encode_array(array: np.ndarray) -> bytes:
    return encode_arrays([array])


def decode_array(blob: bytes) -> np.ndarray:
    (array,) = decode_arrays(blob)
    return array
