"""``redis-atp dashboard``: a web dashboard and Prometheus ``/metrics`` for a namespace
(optional extra: ``pip install 'redis-atp[dashboard]'``).

Pages are rendered on the server (Starlette + Jinja2, autoescaped), the charts are
inline SVG drawn from the per-minute figures, and a little vanilla JavaScript does
the confirmations, the token header of actions and the overview's live figures
(polling one JSON endpoint). Everything it serves ships in the package; nothing
comes from a CDN, and nothing needs a build step. Every page reads O(page size +
types) from Redis: counters, indexes and the worker registry the scripts keep,
never ``SCAN`` or ``KEYS``.

    from redis_atp import Tracker
    from redis_atp.dashboard import DashboardConfig, create_app

    app = create_app(Tracker.from_url("redis://127.0.0.1:6379/0", namespace="orders"),
                     DashboardConfig(token="s3cret"))   # serve with uvicorn
"""

from .app import create_app
from .context import DashboardConfig

__all__ = ["DashboardConfig", "create_app"]
