"""The middleware's settings: ``EVENTLOG_DJANGO_*`` from the environment, then Django settings.

Like every eventlog setting, the environment wins over ``settings.py``.  Values
are checked when Django loads the middleware, and an error names the setting,
the value and what is allowed.  The settings themselves are shared with the
ASGI and Flask integrations (:mod:`eventlog._config.web_options`, :mod:`eventlog._web.request`).
"""

from __future__ import annotations

from eventlog._config.web_options import OPTIONS, IPNetwork, parse_header, parse_networks
from eventlog._web.request import RequestSettings

__all__ = [
    "OPTIONS",
    "IPNetwork",
    "MiddlewareSettings",
    "parse_header",
    "parse_networks",
]


class MiddlewareSettings:
    """Where the Django middleware's settings come from."""

    @staticmethod
    def load(environ: dict[str, str] | None = None) -> RequestSettings:
        """Resolve ``EVENTLOG_DJANGO_<NAME>`` from the environment, then Django settings.

        Raises :class:`~eventlog.ConfigurationError` naming a bad setting.
        """
        return RequestSettings.load("django", environ=environ)
