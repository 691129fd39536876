"""Django integration (the ``django`` extra).

Add ``"eventlog.django.EventlogMiddleware"`` to ``MIDDLEWARE`` right after
``AuthenticationMiddleware``: every request becomes one ``http.<method>``
event, and events and log records made while serving it carry the user,
session digest and request id.  Settings are ``EVENTLOG_*`` names in
``settings.py`` (the environment wins); see :mod:`eventlog.django.conf`.
"""

from __future__ import annotations

from eventlog.django.middleware import EventlogMiddleware, session_digest
from eventlog.django.redact import DEFAULT_REDACT_KEYS, REDACTED, Redactor

__all__ = ["DEFAULT_REDACT_KEYS", "REDACTED", "EventlogMiddleware", "Redactor", "session_digest"]
