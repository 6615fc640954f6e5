"""Checkpoint container of HtmAnomalyModel: format v2 writer/reader and the v1 (npz) reader.

Format v2 (little-endian)::

    b"HTMM" | u16 version (2) | u16 0 | u32 header length | u32 CRC-32 of the header
    | header (UTF-8 JSON) | zstd frame (with content checksum) of the array payload

The JSON header holds the model's scalars (format version, modelConfig, records seen,
parameters) and a table ``arrays`` of ``[name, dtype, shape, offset]``; the payload is the
arrays' raw little-endian buffers, each at an 8-byte aligned offset. Reading decompresses the
payload once and builds every array with ``np.frombuffer`` (read-only views, no per-element
Python work). Anything inconsistent raises :class:`ModelStateError` naming what is wrong.

Version 1 was an npz archive (a zip of ``.npy`` files) with a JSON ``__header__`` entry;
:func:`read_v1` still reads it.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib

import numpy as np
import zstandard

from htmengine.exceptions import InvalidInputError

MAGIC = b"HTMM"
FORMAT_V2 = 2
ZSTD_LEVEL = 3
_PREFIX = struct.Struct("<4sHHII")
_ALIGN = 8
V1_HEADER_KEY = "__header__"
_ZIP_MAGIC = b"PK"
_ALLOWED_KINDS = "biuf"  # bool, signed/unsigned integers, floats


class ModelStateError(InvalidInputError):
    """Saved model bytes that cannot be loaded (corrupt, truncated or of an unknown format)."""


def encode(scalars: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """A v2 checkpoint holding the JSON-serialisable ``scalars`` and the numeric ``arrays``."""
    table = []
    chunks = []
    offset = 0
    for name, value in arrays.items():
        arr = np.asarray(value)
        if arr.dtype.kind not in _ALLOWED_KINDS:
            raise TypeError(f"checkpoint array {name!r} has unsupported dtype {arr.dtype}")
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        table.append([name, arr.dtype.str, list(arr.shape), offset])
        raw = arr.tobytes()
        pad = -len(raw) % _ALIGN
        chunks.append(raw + b"\0" * pad if pad else raw)
        offset += len(raw) + pad
    payload = b"".join(chunks)
    header = dict(scalars)
    header["format_version"] = FORMAT_V2
    header["arrays"] = table
    header["payload_size"] = len(payload)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    compressed = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True,
                                          write_content_size=True).compress(payload)
    return _PREFIX.pack(MAGIC, FORMAT_V2, 0, len(head), zlib.crc32(head)) + head + compressed


def is_v1(data: bytes | bytearray | memoryview) -> bool:
    """Whether ``data`` looks like a version-1 (npz) checkpoint."""
    return bytes(data[:2]) == _ZIP_MAGIC


def decode(data: bytes | bytearray | memoryview) -> tuple[dict, dict[str, np.ndarray]]:
    """(scalars, arrays) of a v2 checkpoint; arrays are read-only views of one buffer."""
    view = memoryview(data)
    if len(view) < _PREFIX.size:
        raise ModelStateError(f"model data truncated: {len(view)} bytes, not even a header")
    magic, version, _, head_len, head_crc = _PREFIX.unpack_from(view)
    if magic != MAGIC:
        raise ModelStateError("model data is not an HtmAnomalyModel checkpoint (bad magic)")
    if version != FORMAT_V2:
        raise ModelStateError(f"unsupported model format version {version}")
    start = _PREFIX.size
    if len(view) < start + head_len:
        raise ModelStateError("model data truncated inside the header")
    head = bytes(view[start:start + head_len])
    if zlib.crc32(head) != head_crc:
        raise ModelStateError("model data header is corrupt (CRC mismatch)")
    try:
        header = json.loads(head.decode("utf-8"))
        table = header.pop("arrays")
        size = int(header.pop("payload_size"))
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelStateError(f"model data header is unreadable: {exc}") from exc
    try:
        payload = zstandard.ZstdDecompressor().decompress(view[start + head_len:],
                                                          max_output_size=size)
    except zstandard.ZstdError as exc:
        raise ModelStateError(f"model data payload is truncated or corrupt: {exc}") from exc
    if len(payload) != size:
        raise ModelStateError(f"model data payload has {len(payload)} bytes, expected {size}")
    arrays = {}
    try:
        for name, dtype_str, shape, offset in table:
            dtype = np.dtype(dtype_str)
            if dtype.kind not in _ALLOWED_KINDS:
                raise ModelStateError(f"model data array {name!r} has dtype {dtype_str}")
            count = int(np.prod(shape, dtype=np.int64))
            if offset < 0 or offset + count * dtype.itemsize > size:
                raise ModelStateError(f"model data array {name!r} lies outside the payload")
            arrays[name] = np.frombuffer(payload, dtype=dtype, count=count,
                                         offset=offset).reshape(shape)
    except (ValueError, TypeError) as exc:
        raise ModelStateError(f"model data array table is unreadable: {exc}") from exc
    return header, arrays


def read_v1(data: bytes | bytearray | memoryview) -> tuple[dict, dict[str, np.ndarray]]:
    """(header, arrays) of a version-1 (npz) checkpoint."""
    try:
        with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        header = json.loads(bytes(arrays.pop(V1_HEADER_KEY)).decode("utf-8"))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile,
            zlib.error) as exc:
        raise ModelStateError(f"model data is not a saved HtmAnomalyModel: {exc}") from exc
    if header.get("format_version") != 1:
        raise ModelStateError(
            f"unsupported model format version {header.get('format_version')!r}")
    return header, arrays
