"""``python -m redis_atp``: the same as the ``redis-atp`` command."""

import sys

from .cli import main

sys.exit(main())
