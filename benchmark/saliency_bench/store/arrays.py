"""Per-image values in JSON: each array as its dtype, shape and zlib-compressed little-endian bytes in base64.

Compact (a bit per boolean, eight bytes per float64, then zlib; never one JSON number per value), exact (the
bytes round-trip), deterministic (the same array gives the same text) and safe (no pickle: only the plain
numeric dtypes below are read back, and a shape that does not match the bytes is refused).
"""
from __future__ import annotations

import base64
import binascii
import zlib
from typing import Mapping

import numpy as np

DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "float32", "float64")
ImageValues = dict[str, np.ndarray]  # one method's per-image values on one check: arrays with a row per image


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


def decode_array(entry: object) -> np.ndarray:
    """The array ``encode_array`` wrote; ValueError (one line) on anything else."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data"}:
        raise ValueError("an array entry is an object with exactly 'dtype', 'shape' and 'data'")
    dtype, shape, data = entry["dtype"], entry["shape"], entry["data"]
    if dtype not in DTYPES:
        raise ValueError(f"array dtype {str(dtype)[:20]!r} is not one of {', '.join(DTYPES)}")
    if not (isinstance(shape, list) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise ValueError("array shape is not a list of counts")
    if not isinstance(data, str):
        raise ValueError("array data is not a string")
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    try:
        raw = zlib.decompress(base64.b64decode(data.encode("ascii"), validate=True))
    except (binascii.Error, zlib.error, UnicodeEncodeError) as exc:
        raise ValueError(f"array data is not base64 of zlib ({exc})") from None
    if dtype == "bool":
        if len(raw) != (count + 7) // 8:
            raise ValueError(f"array data holds {len(raw)} bytes, not the {(count + 7) // 8} of shape {shape}")
        return np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=count).astype(bool).reshape(shape)
    item = np.dtype(dtype).newbyteorder("<")
    if len(raw) != count * item.itemsize:
        raise ValueError(f"array data holds {len(raw)} bytes, not the {count * item.itemsize} of shape {shape}")
    return np.frombuffer(raw, dtype=item).astype(np.dtype(dtype)).reshape(shape)


def encode_values(values: Mapping[str, np.ndarray]) -> dict:
    """Every array of one method's per-image values, encoded (keys sorted when written as JSON)."""
    return {name: encode_array(array) for name, array in values.items()}


def decode_values(entries: object, rows: int | None = None) -> ImageValues:
    """The per-image values ``encode_values`` wrote; with ``rows``, every array must have that many rows."""
    if not isinstance(entries, dict):
        raise ValueError("'values' is not an object")
    values = {}
    for name, entry in entries.items():
        array = decode_array(entry)
        if rows is not None and (array.ndim == 0 or array.shape[0] != rows):
            raise ValueError(f"values {name[:40]!r} have {array.shape[0] if array.ndim else 0} rows, not {rows}")
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
