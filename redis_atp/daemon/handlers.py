"""Loading handlers by dotted path, within the allowed module prefixes."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["HandlerRefused", "Handlers", "resolve", "is_async"]


class HandlerRefused(Exception):
    """A task names a handler outside the ``--allow`` list."""


def resolve(path: str) -> Any:
    """The object at dotted ``path``: the longest importable module prefix, then
    attributes (``pkg.mod.Class.method`` for a staticmethod or classmethod)."""
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:i])
        try:
            obj = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (module == exc.name or module.startswith(exc.name + ".")):
                continue  # this prefix is not a module: try a shorter one
            raise  # the module exists but an import inside it failed
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(f"no module in handler path {path!r}", name=parts[0])


class Handlers:
    """Imports each handler by dotted path once, within the allowed module prefixes."""

    def __init__(self, allow: tuple[str, ...] = ()) -> None:
        self.allow = allow
        self._cache: dict[str, Callable[..., Any]] = {}
        self._async: dict[str, bool] = {}

    def allowed(self, path: str) -> bool:
        return not self.allow or any(path == p or path.startswith(p + ".") for p in self.allow)

    def get(self, path: str) -> Callable[..., Any]:
        """The handler at ``path``. Raises :class:`HandlerRefused` (nothing imported) or
        whatever importing it raises."""
        fn = self._cache.get(path)
        if fn is None:
            if not self.allowed(path):
                raise HandlerRefused(f"handler {path!r} is outside the allowed prefixes {list(self.allow)}")
            fn = resolve(path)
            if not callable(fn):
                raise TypeError(f"{path!r} is not callable")
            self._cache[path], self._async[path] = fn, is_async(fn)
        return fn

    def is_async(self, path: str) -> bool:
        """Whether the handler at ``path`` (imported by :meth:`get`) is ``async def``."""
        return self._async[path]


def is_async(handler: Callable[..., Any]) -> bool:
    """Whether ``handler`` is an ``async def`` function (or an object whose ``__call__`` is)."""
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(type(handler).__call__)
