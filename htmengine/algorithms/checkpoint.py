"""Checkpoint container of HtmAnomalyModel: format v3 writer, v3/v2 reader and the v1 (npz)
reader.

Format v3 (little-endian)::

    b"HTMM" | u16 version (3) | u16 0 | u32 header length | u32 CRC-32 of the header
    | header (UTF-8 JSON) | zstd frames (each with content checksum) of the array payload

The JSON header holds the model's scalars (format version, modelConfig, records seen,
parameters), a table ``arrays`` of ``[name, dtype, shape, offset]`` and the list ``frames`` of
``[raw size, compressed size]``; the payload is the arrays' raw little-endian buffers, each at
an 8-byte aligned offset, cut in consecutive frames: every array of _OWN_FRAME bytes and more
in a frame of its own, then the smaller ones in one frame per kind. The arrays named
``thorough`` by the writer (long repeated runs, worth a harder search) use zstd's double-fast
matcher (_THOROUGH_PARAMS), those named ``plain`` the fast matcher without entropy coding of
the literals (_PLAIN_PARAMS), those named ``quick`` the same trying a match at fewer positions
(_QUICK_PARAMS), the others the fast matcher with small tables (_FAST_PARAMS).
The reader does not depend on the cut. Reading decompresses each frame once and
builds every array with ``np.frombuffer`` (read-only views, no per-element Python work).
Anything inconsistent raises :class:`ModelStateError` naming what is wrong. Format v2 was the
same with a single frame and no ``frames`` list.

Version 1 was an npz archive (a zip of ``.npy`` files) with a JSON ``__header__`` entry;
:func:`read_v1` still reads it.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import threading
import zipfile
import zlib
from collections.abc import Collection
from typing import Any

import numpy as np
import zstandard

from htmengine.exceptions import InvalidInputError

MAGIC = b"HTMM"
FORMAT_V2 = 2
FORMAT_V3 = 3
# The other frame: zstd's fast matcher looking for matches of 7 bytes and more in 256-entry
# tables. The arrays are mostly already packed codes (4-bit codes, int8 distances) whose gain
# is in the entropy coding: this takes three quarters of level 1's time for 1% more bytes
# (421 KB against 416 KB for a model after 10,000 records).
_FAST_PARAMS = dict(strategy=zstandard.STRATEGY_FAST, window_log=20, hash_log=8, chain_log=8,
                    min_match=7, search_log=1, target_length=0)
# The "thorough" frame: zstd's double-fast matcher with 4-byte minimum matches (runs of uint16
# cell indices) and small tables: 5% smaller than level 3 in about its time, measured on the
# synapse sources of a model after 10,000 records (213 KB against level 3's 224 KB and level
# 1's 275 KB).
_THOROUGH_PARAMS = dict(strategy=zstandard.STRATEGY_DFAST, window_log=19, hash_log=15,
                        chain_log=15, min_match=4, search_log=1, target_length=0)
# The "plain" frame: the fast matcher without entropy coding of the literals (zstd does that
# for its fast strategy with a target length), for arrays whose literals gain little from it
# for their time (about 0.1 ms less for 16 KB more on a model after 10,000 records).
_PLAIN_PARAMS = dict(_FAST_PARAMS, target_length=1)
# The "quick" frame: the same with zstd's acceleration 16 (it tries a match at fewer
# positions), for arrays that are mostly literals anyway: on a model after 10,000 records,
# the TM's permanence codes (129 KB) in 40% of the plain frame's time for 10 KB more, the
# SP's distances (80 KB) in a third of it for 4 KB more.
_QUICK_PARAMS = dict(_FAST_PARAMS, target_length=16)
# arrays of this many bytes and more are a frame of their own: zstd codes each with the
# statistics of its own literals (a model after 10,000 records: 12 KB smaller than two frames
# of all the arrays by kind, in about the same time) and reads it in place
_OWN_FRAME = 16384
_PREFIX = struct.Struct("<4sHHII")
_ALIGN = 8
V1_HEADER_KEY = "__header__"
_ZIP_MAGIC = b"PK"
_ALLOWED_KINDS = "biuf"  # bool, signed/unsigned integers, floats
_BIG_ENDIAN = sys.byteorder == "big"


class ModelStateError(InvalidInputError):
    """Saved model bytes that cannot be loaded (corrupt, truncated or of an unknown format)."""


_ZEROS = bytes(_ALIGN)
# the header's encoder, made once (json.dumps builds one per call when given options); the
# header is a tree without cycles, so the check for them is skipped
_HEADER_JSON = json.JSONEncoder(separators=(",", ":"), check_circular=False)
_LOCAL = threading.local()  # zstd contexts, reused (creating one costs more than a frame)


_THOROUGH, _FAST, _PLAIN, _QUICK = 0, 1, 2, 3  # the frame kinds, in payload order


def _compressor(kind: int) -> zstandard.ZstdCompressor:
    """This thread's zstd compressor for a frame kind (_THOROUGH, _FAST, _PLAIN or _QUICK)."""
    cache: tuple[zstandard.ZstdCompressor, ...] | None = getattr(_LOCAL, "compressors", None)
    if cache is None:
        cache = _LOCAL.compressors = tuple(
            zstandard.ZstdCompressor(compression_params=zstandard.ZstdCompressionParameters(
                **params, write_checksum=1, write_content_size=1))
            for params in (_THOROUGH_PARAMS, _FAST_PARAMS, _PLAIN_PARAMS, _QUICK_PARAMS))
    return cache[kind]


def _raw(name: str, value: Any) -> np.ndarray:
    """``arr`` as a C-contiguous little-endian array (its buffer is the raw bytes to store);
    TypeError for a dtype a checkpoint does not hold."""
    arr: np.ndarray = value if isinstance(value, np.ndarray) else np.asarray(value)
    dtype = arr.dtype
    if dtype.kind not in _ALLOWED_KINDS:
        raise TypeError(f"checkpoint array {name!r} has unsupported dtype {dtype}")
    if dtype.byteorder == ">" or (dtype.byteorder == "=" and _BIG_ENDIAN) \
            or not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr, dtype=dtype.newbyteorder("<"))
    return arr


def encode(scalars: dict[str, Any], arrays: dict[str, np.ndarray],
           thorough: Collection[str] = (), plain: Collection[str] = (),
           quick: Collection[str] = ()) -> bytes:
    """A v3 checkpoint holding the JSON-serialisable ``scalars`` and the numeric ``arrays``;
    the arrays named in ``thorough`` are compressed harder (_THOROUGH_PARAMS), those named in
    ``plain`` without entropy coding (_PLAIN_PARAMS), those named in ``quick`` without it and
    with fewer match attempts (_QUICK_PARAMS), the others with _FAST_PARAMS. An array
    of _OWN_FRAME bytes or more is a frame of its own (zstd reads it in place and codes it
    with statistics of its own), the smaller ones are grouped in a frame per kind after
    them."""
    table: list[list[Any]] = []
    frames: list[list[int]] = []
    compressed: list[bytes] = []
    groups: tuple[list[tuple[str, np.ndarray]], ...] = ([], [], [], [])  # small ones per kind
    offset = 0
    for name, value in arrays.items():
        arr = _raw(name, value)
        kind = _THOROUGH if name in thorough else _PLAIN if name in plain else \
            _QUICK if name in quick else _FAST
        if arr.nbytes < _OWN_FRAME:
            groups[kind].append((name, arr))
            continue
        table.append([name, arr.dtype.str, list(arr.shape), offset])
        pad = -arr.nbytes % _ALIGN
        raw = arr.nbytes + pad
        data = arr.data.cast("B")  # C-contiguous: its raw bytes, read in place
        frame = _compressor(kind).compress(b"".join((data, _ZEROS[:pad])) if pad else data)
        frames.append([raw, len(frame)])
        compressed.append(frame)
        offset += raw
    for kind, group in enumerate(groups):
        if not group:
            continue
        buffers: list[Any] = []
        start = offset
        for name, arr in group:
            table.append([name, arr.dtype.str, list(arr.shape), offset])
            buffers.append(arr)
            pad = -arr.nbytes % _ALIGN
            if pad:
                buffers.append(_ZEROS[:pad])
            offset += arr.nbytes + pad
        frame = _compressor(kind).compress(b"".join(buffers))
        frames.append([offset - start, len(frame)])
        compressed.append(frame)
    header = dict(scalars)
    header["format_version"] = FORMAT_V3
    header["arrays"] = table
    header["payload_size"] = offset
    header["frames"] = frames
    head = _HEADER_JSON.encode(header).encode("utf-8")
    return b"".join([_PREFIX.pack(MAGIC, FORMAT_V3, 0, len(head), zlib.crc32(head)), head,
                     *compressed])


def is_v1(data: bytes | bytearray | memoryview) -> bool:
    """Whether ``data`` looks like a version-1 (npz) checkpoint."""
    return bytes(data[:2]) == _ZIP_MAGIC


def decode(data: bytes | bytearray | memoryview) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(scalars, arrays) of a v3 or v2 checkpoint; arrays are read-only views of one buffer."""
    view = memoryview(data)
    if len(view) < _PREFIX.size:
        raise ModelStateError(f"model data truncated: {len(view)} bytes, not even a header")
    magic, version, _, head_len, head_crc = _PREFIX.unpack_from(view)
    if magic != MAGIC:
        raise ModelStateError("model data is not an HtmAnomalyModel checkpoint (bad magic)")
    if version not in (FORMAT_V2, FORMAT_V3):
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
        frames = [(int(raw), int(packed)) for raw, packed in header.get("frames", [])]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelStateError(f"model data header is unreadable: {exc}") from exc
    body = view[start + head_len:]
    if version == FORMAT_V2:
        frames = [(size, len(body))]
    if any(raw < 0 or packed < 0 for raw, packed in frames) \
            or sum(raw for raw, _ in frames) != size \
            or sum(packed for _, packed in frames) != len(body):
        raise ModelStateError("model data payload is truncated or its frame table is corrupt")
    parts = []
    position = 0
    for raw, packed in frames:
        try:
            part = zstandard.ZstdDecompressor().decompress(body[position:position + packed],
                                                           max_output_size=raw)
        except zstandard.ZstdError as exc:
            raise ModelStateError(
                f"model data payload is truncated or corrupt: {exc}") from exc
        if len(part) != raw:
            raise ModelStateError(f"model data payload frame has {len(part)} bytes, "
                                  f"expected {raw}")
        parts.append(part)
        position += packed
    payload = parts[0] if len(parts) == 1 else b"".join(parts)
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


def read_v1(data: bytes | bytearray | memoryview,
            ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
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
