"""Per-image values in JSON: each array as its dtype, shape and zlib-compressed little-endian bytes in base64.

Compact (a bit per boolean, eight bytes per float64, then zlib; never one JSON number per value), exact (the
bytes round-trip), deterministic (the same array gives the same text) and safe (no pickle: only the plain
numeric dtypes below are read back, and a shape that does not match the bytes is refused).
"""
from __future__ import annotations

import base64
import binascii
import math
import zlib
from typing import Mapping

import numpy as np

DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "float32", "float64")
ImageValues = dict[str, np.ndarray]  # one method's per-image values on one check: arrays with a row per image
MAX_ARRAY_BYTES = 1 << 28  # the most one stored array may declare where nothing tighter is known (256 MiB)
MAX_ROW_BYTES = 1 << 20  # the most one image's row of a check's per-image values may take, all arrays together
MAX_DIMENSIONS = 32  # numpy's own limit is 64; no per-image value has more than a few


def encode_array(array: np.ndarray) -> dict:
    """``{"dtype", "shape", "data"}``: the array's bytes (booleans packed to bits) zlib-compressed, in base64."""
    array = np.asarray(array)
    if array.dtype.name not in DTYPES:
        raise TypeError(f"per-image values must be one of {', '.join(DTYPES)}, not {array.dtype.name}")
    if array.dtype == bool:
        raw = np.packbits(array.ravel()).tobytes()
    else:
        raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    return {"dtype": array.dtype.name, "shape": [int(n) for n in array.shape],
            "data": base64.b64encode(zlib.compress(raw, 6)).decode("ascii")}


def _declared_bytes(dtype: str, shape: list[int]) -> int:
    """The bytes an array of ``dtype`` and ``shape`` is stored in (booleans packed to bits), in exact integers."""
    count = math.prod(shape)
    return (count + 7) // 8 if dtype == "bool" else count * np.dtype(dtype).itemsize


def _inflate(data: str, size: int) -> bytes:
    """The ``size`` bytes of base64 zlib ``data``, never inflating more than one byte past them (a zip bomb)."""
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(base64.b64decode(data.encode("ascii"), validate=True), size + 1)
    except (binascii.Error, zlib.error, UnicodeEncodeError) as exc:
        raise ValueError(f"array data is not base64 of zlib ({exc})") from None
    if len(raw) > size:
        raise ValueError(f"array data inflates to more than the {size} bytes its shape declares")
    if not inflater.eof:
        raise ValueError("array data is not base64 of zlib (incomplete or truncated stream)")
    return raw


def _entry_parts(entry: object) -> tuple[str, list[int], str]:
    """``(dtype, shape, data)`` of an array entry; ValueError (one line) on anything else."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data"}:
        raise ValueError("an array entry is an object with exactly 'dtype', 'shape' and 'data'")
    dtype, shape, data = entry["dtype"], entry["shape"], entry["data"]
    if dtype not in DTYPES:
        raise ValueError(f"array dtype {str(dtype)[:20]!r} is not one of {', '.join(DTYPES)}")
    if not (isinstance(shape, list) and len(shape) <= MAX_DIMENSIONS
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise ValueError("array shape is not a list of counts")
    if not isinstance(data, str):
        raise ValueError("array data is not a string")
    return dtype, shape, data


def decode_array(entry: object, max_bytes: int = MAX_ARRAY_BYTES) -> np.ndarray:
    """The array ``encode_array`` wrote; ValueError (one line) on anything else.

    The size its shape declares is checked against ``max_bytes`` (what the reader can need) before anything is
    inflated, and no more than that is ever inflated.
    """
    dtype, shape, data = _entry_parts(entry)
    size = _declared_bytes(dtype, shape)
    if size > max_bytes:
        raise ValueError(f"array shape {str(shape)[:60]} declares {size} bytes, over the {max_bytes} it may hold")
    raw = _inflate(data, size)
    if len(raw) != size:
        raise ValueError(f"array data holds {len(raw)} bytes, not the {size} of shape {shape}")
    if dtype == "bool":
        count = math.prod(shape)
        return np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=count).astype(bool).reshape(shape)
    item = np.dtype(dtype).newbyteorder("<")
    return np.frombuffer(raw, dtype=item).astype(np.dtype(dtype)).reshape(shape)


def encode_values(values: Mapping[str, np.ndarray]) -> dict:
    """Every array of one method's per-image values, encoded (keys sorted when written as JSON)."""
    return {name: encode_array(array) for name, array in values.items()}


def decode_values(entries: object, rows: int | None = None) -> ImageValues:
    """The per-image values ``encode_values`` wrote; with ``rows``, every array must have that many rows, and all
    together may declare no more than ``MAX_ROW_BYTES`` per row (checked before anything is inflated)."""
    if not isinstance(entries, dict):
        raise ValueError("'values' is not an object")
    budget = MAX_ARRAY_BYTES if rows is None else max(rows, 1) * MAX_ROW_BYTES
    values = {}
    for name, entry in entries.items():
        if rows is not None:
            shape = entry.get("shape") if isinstance(entry, dict) else None
            if isinstance(shape, list) and shape and shape[0] != rows:
                raise ValueError(f"values {name[:40]!r} have {str(shape[0])[:20]} rows, not {rows}")
        array = decode_array(entry, budget)
        if rows is not None and (array.ndim == 0 or array.shape[0] != rows):
            raise ValueError(f"values {name[:40]!r} have {array.shape[0] if array.ndim else 0} rows, not {rows}")
        budget -= _declared_bytes(array.dtype.name, list(array.shape))
        values[name] = array
    return values


def check_rows(values: object, rows: int) -> str | None:
    """What is wrong with a check's per-image values for ``rows`` images (one line), or None."""
    if not isinstance(values, dict) or not values:
        return "per-image values are not a non-empty {name: array} dict"
    for name, array in values.items():
        if not isinstance(name, str) or not isinstance(array, np.ndarray):
            return f"per-image value {str(name)[:40]!r} is not a named numpy array"
        if array.ndim == 0 or array.shape[0] != rows:
            return f"per-image value {name[:40]!r} has shape {tuple(array.shape)}, not a row for each of {rows} images"
        if array.dtype.name not in DTYPES:
            return f"per-image value {name[:40]!r} has dtype {array.dtype.name}, not one of {', '.join(DTYPES)}"
    return None


def concatenate(parts: list[ImageValues]) -> ImageValues:
    """The values of consecutive shards as one set of arrays (rows in image order); the parts share their names."""
    names = sorted(parts[0])
    for part in parts[1:]:
        if sorted(part) != names:
            raise ValueError("shards hold different per-image values")
    return {name: np.concatenate([part[name] for part in parts]) for name in names}
