"""``python -m benchmarks.chaos``."""

import sys

from .harness import main

sys.exit(main())
