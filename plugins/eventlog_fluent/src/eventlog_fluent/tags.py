"""Fluent tags: the one check a tag must pass, and the tag of an action (tag_mode ``action``).

A tag is dot-separated words that Fluentd's and Fluent Bit's ``<match>`` patterns
route on: no whitespace or control characters, no empty word (no leading or
trailing dot, no ``..``).  ``EVENTLOG_FLUENT_TAG`` must pass :func:`tag_problem`;
with tag_mode ``action`` the event's action is made to pass it too
(:func:`action_tag`), since an action is any text the application chose.
"""

from __future__ import annotations

import functools
import re

from eventlog.plugin import parser

#: What a tag may not hold: whitespace and control characters.
_NOT_IN_TAG = re.compile(r"[\s\x00-\x1f\x7f]")


def tag_problem(tag: str) -> str | None:
    """What is wrong with ``tag`` as a Fluent tag, or None when it is one."""
    if _NOT_IN_TAG.search(tag):
        return "has whitespace or control characters"
    if tag.startswith(".") or tag.endswith(".") or ".." in tag:
        return "has an empty word (a leading, trailing or double dot)"
    return None


@parser(takes="text", allowed="a Fluent tag: dot-separated words without spaces, such as app.events")
def parse_tag(value: object) -> str:
    """A Fluent tag: dot-separated words without spaces, such as ``app.events``."""
    tag = str(value).strip()
    problem = tag_problem(tag)
    if problem is not None:
        raise ValueError(f"{problem}; a tag is dot-separated words without spaces, such as 'app.events'")
    return tag


@functools.lru_cache(maxsize=4096)  # actions repeat; the cache is bounded for made-up ones
def action_tag(prefix: str, action: str) -> tuple[str, bool]:
    """The tag of an event with ``action`` (``<prefix>.<action>``), and whether it was changed.

    Whitespace and control characters become ``_`` and empty words are left out,
    so every tag passes :func:`tag_problem`; an action with no word left gives
    the prefix alone (``eventlog`` without one).
    """
    words = [word for word in _NOT_IN_TAG.sub("_", action).split(".") if word]
    clean = ".".join(words)
    tag = ".".join(part for part in (prefix, clean) if part) or "eventlog"
    return tag, clean != action
