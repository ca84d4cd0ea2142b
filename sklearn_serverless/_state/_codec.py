"""Arrays as bytes: the .npy format (dtype, shape, raw data), never pickle.

A shared store must not be able to make a worker run code, so every read goes
through ``allow_pickle=False``.
"""

from __future__ import annotations

import io
import struct

import numpy as np

_COUNT = struct.Struct("<I")


def encode_arrays(arrays: list[np.ndarray]) -> bytes:
    """Pack arrays into one blob: a count, then one .npy record each."""
    buf = io.BytesIO()
    buf.write(_COUNT.pack(len(arrays)))
    for array in arrays:
        np.lib.format.write_array(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def decode_arrays(blob: bytes) -> list[np.ndarray]:
    """Inverse of :func:`encode_arrays`; rejects object arrays."""
    buf = io.BytesIO(blob)
    (count,) = _COUNT.unpack(buf.read(_COUNT.size))
    return [np.lib.format.read_array(buf, allow_pickle=False) for _ in range(count)]


def encode_array(array: np.ndarray) -> bytes:
    return encode_arrays([array])


def decode_array(blob: bytes) -> np.ndarray:
    (array,) = decode_arrays(blob)
    return array
