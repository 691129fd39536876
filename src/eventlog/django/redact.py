"""Redaction, kept importable here for code written before it moved to :mod:`eventlog._records.redact`."""

from __future__ import annotations

from eventlog._records.redact import DEFAULT_REDACT_KEYS, MAX_DEPTH, REDACTED, SAFE, Redactor

__all__ = ["DEFAULT_REDACT_KEYS", "MAX_DEPTH", "REDACTED", "SAFE", "Redactor"]
