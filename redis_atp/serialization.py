"""Task inputs: msgpack by default (reading a task never runs code), pickle on
explicit opt-in; responses stored as given (``str`` or ``bytes``) with their type
remembered.

A namespace records its serializer at its first registration, and a tracker or
worker with another one is refused (see ``Tracker``), so a worker never unpickles
unless it was started with ``--serializer pickle``: with pickle, whoever can write
to Redis can run code on the workers.
"""

from __future__ import annotations

import pickle
from typing import Any, Protocol

import msgpack

from .errors import InvalidInput

__all__ = ["Serializer", "MSGPACK", "PICKLE", "SERIALIZERS", "serializer_named", "pack_response",
           "unpack_response"]


class Serializer(Protocol):
    """Encodes task inputs for Redis and decodes them back."""

    name: str

    def pack(self, value: Any, limit: int) -> bytes:
        """The stored form of ``value``. Raises :class:`InvalidInput` if it cannot be
        encoded, would not decode back, or is longer than ``limit`` bytes."""
        ...

    def unpack(self, raw: bytes | None) -> Any:
        """The value stored by :meth:`pack` (``None`` for a missing input)."""
        ...


def _check_size(raw: bytes, limit: int) -> bytes:
    if len(raw) > limit:
        raise InvalidInput(f"the task input is {len(raw)} bytes encoded; the limit is {limit}")
    return raw


class _Msgpack:
    """dicts, lists, str, bytes, numbers, bools, None; tuples come back as lists."""

    name = "msgpack"

    def pack(self, value: Any, limit: int) -> bytes:
        try:
            raw: bytes = msgpack.packb(value, use_bin_type=True)
            self.unpack(raw)  # what msgpack writes but cannot read back (a dict with tuple keys)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidInput(f"the task input cannot be stored with msgpack: {exc} "
                               "(use plain data, or serializer='pickle' for Python objects)") from None
        return _check_size(raw, limit)

    def unpack(self, raw: bytes | None) -> Any:
        if raw is None:
            return None
        return msgpack.unpackb(raw, raw=False, strict_map_key=False)


class _Pickle:
    """Any picklable Python object, given back equal and of the same type."""

    name = "pickle"

    def pack(self, value: Any, limit: int) -> bytes:
        try:
            raw = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError, ValueError, RecursionError) as exc:
            raise InvalidInput(f"the task input cannot be pickled: {exc}") from None
        return _check_size(raw, limit)

    def unpack(self, raw: bytes | None) -> Any:
        if raw is None:
            return None
        return pickle.loads(raw)  # noqa: S301 - opted in: the namespace and this process say pickle


MSGPACK: Serializer = _Msgpack()
PICKLE: Serializer = _Pickle()
SERIALIZERS: dict[str, Serializer] = {s.name: s for s in (MSGPACK, PICKLE)}


def serializer_named(name: str) -> Serializer:
    """The serializer called ``name`` (``"msgpack"`` or ``"pickle"``)."""
    try:
        return SERIALIZERS[name]
    except (KeyError, TypeError):
        raise InvalidInput(f"serializer must be one of {sorted(SERIALIZERS)}, not {name!r:.80}") from None


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
