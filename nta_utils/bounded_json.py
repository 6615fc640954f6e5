"""JSON decoding with limits checked before the parser runs: a body larger than `max_bytes`
or nested deeper than `max_depth` is refused (``MessageLimitError``) without recursing into it,
so a body such as ``b'[' * 100000 + b']' * 100000`` cannot raise RecursionError in a consumer.

The depth pre-scan skips string literals and counts ``[``/``{`` against ``]``/``}``; it looks
only at bracket bytes, so it costs one regular-expression pass over the body.
"""

from __future__ import annotations

import json
import re
from typing import Any

from nta_utils.errors import MessageLimitError

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_DEPTH = 32
_STRING_OR_BRACKET = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)
_OPENERS = frozenset(b"[{")


def json_depth_exceeds(body: bytes, max_depth: int) -> bool:
    """True if the JSON text `body` opens more than `max_depth` nested arrays/objects."""
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(body):
        token = match.group()
        if token[0] == 0x22:  # a string literal: brackets inside do not count
            continue
        if token[0] in _OPENERS:
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


def loads_bounded(body: bytes | str, *, max_bytes: int = DEFAULT_MAX_BYTES,
                  max_depth: int = DEFAULT_MAX_DEPTH, what: str = "message body") -> Any:
    """`json.loads(body)` after the size and depth checks; MessageLimitError naming `what`,
    the limit and the first bytes when a check fails or the body is not JSON (UTF-8)."""
    raw = body.encode("utf-8", errors="surrogatepass") if isinstance(body, str) else bytes(body)
    head = raw[:80]
    if len(raw) > max_bytes:
        raise MessageLimitError(
            f"{what} of {len(raw)} bytes is larger than the limit of {max_bytes} bytes "
            f"(starts {head!r})")
    if json_depth_exceeds(raw, max_depth):
        raise MessageLimitError(
            f"{what} nests JSON arrays/objects deeper than the limit of {max_depth} "
            f"(starts {head!r})")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise MessageLimitError(f"{what} {head!r} is not JSON: {error}") from None
