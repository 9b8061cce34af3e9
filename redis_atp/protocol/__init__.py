"""The sans-IO core: every operation of the tracker as a generator of requests.

``requests`` says what an operation may ask of a connection; ``namespace`` holds a
tracker's settings and builds its script calls; ``tasks``, ``reads`` and ``admin``
are the operations. The faces in :mod:`redis_atp.client` (sync) and
:mod:`redis_atp.aio` (asyncio) drive them with :mod:`redis_atp.io_sync` and
:mod:`redis_atp.io_async`.
"""

from . import admin, reads, tasks
from .namespace import EvictionPolicyWarning, Namespace
from .requests import Batch, Command, Op, Request, ScriptCall

__all__ = ["admin", "reads", "tasks", "Namespace", "EvictionPolicyWarning", "Batch", "Command", "Op", "Request",
           "ScriptCall"]
