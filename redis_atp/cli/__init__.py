"""``redis-atp``: the worker and the operator's commands.

Every command takes ``--url``/``--namespace`` (defaults: ``REDIS_ATP_URL``,
``REDIS_ATP_NAMESPACE``) and ``--json``. Exit codes: 0 success, 1 not found /
refused / Redis unreachable, 2 usage (bad arguments or input).

The commands live by group: :mod:`.namespace`, :mod:`.tasks`, :mod:`.control` (lists,
pause, events), :mod:`.fleet`; the parser in :mod:`.parser`, the entry point in
:mod:`.main` (which alone configures logging), what they share in :mod:`.common`.
"""

from .main import main
from .parser import build_parser

__all__ = ["main", "build_parser"]
