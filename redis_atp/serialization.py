"""Task inputs as msgpack (never pickle: reading a task never runs code), and
responses stored as given (``str`` or ``bytes``) with their type remembered."""

from __future__ import annotations

from typing import Any

import msgpack

from .errors import InvalidInput

__all__ = ["pack_input", "unpack_input", "pack_response", "unpack_response"]


def pack_input(value: Any, limit: int) -> bytes:
    """Encode a task input; msgpack keeps dicts, lists, str, bytes, numbers, bools, None.

    Tuples come back as lists. Raises :class:`InvalidInput` if msgpack cannot encode
    the value or the encoding is longer than ``limit`` bytes.
    """
    try:
        raw: bytes = msgpack.packb(value, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(f"the task input cannot be encoded with msgpack: {exc}") from None
    if len(raw) > limit:
        raise InvalidInput(f"the task input is {len(raw)} bytes encoded; the limit is {limit}")
    return raw


def unpack_input(raw: bytes | None) -> Any:
    """Decode a task input stored by :func:`pack_input`."""
    if raw is None:
        return None
    return msgpack.unpackb(raw, raw=False, strict_map_key=False)


def pack_response(response: str | bytes, limit: int) -> tuple[bytes, str]:
    """The stored form of a response and its type tag (``"str"`` or ``"bytes"``)."""
    if isinstance(response, str):
        try:
            raw, kind = response.encode("utf-8"), "str"
        except UnicodeEncodeError as exc:
            raise InvalidInput(f"the response is not valid Unicode text: {exc}") from None
    elif isinstance(response, (bytes, bytearray, memoryview)):
        raw, kind = bytes(response), "bytes"
    else:
        raise InvalidInput(f"a response must be str or bytes, not {type(response).__name__}")
    if len(raw) > limit:
        raise InvalidInput(f"the response is {len(raw)} bytes; the limit is {limit}")
    return raw, kind


def unpack_response(raw: bytes | None, kind: bytes | None) -> str | bytes | None:
    """The response as it was given: ``str`` or ``bytes`` (``None`` if none was stored)."""
    if raw is None:
        return None
    return raw.decode("utf-8") if kind == b"str" else raw
