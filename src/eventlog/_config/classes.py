"""Classes of service: the ``classes`` and ``overload_policy`` settings, parsed.

Every event is *kept* or *sheddable*.  By default Events (``log_event``),
counters and gauges, and records at WARNING and above are kept; records below
WARNING are sheddable.  ``classes`` adds rules, first match wins, before the
defaults::

    EVENTLOG_CLASSES="logger:payments=kept, action:ui.*=sheddable, level:INFO=kept"

``overload_policy`` says what each class does when the queue is full::

    EVENTLOG_OVERLOAD_POLICY="kept=evict, sheddable=shed_newest"

The engine applies them (:mod:`eventlog._engine.overload`); this module only
parses, so that a bad value is a configure-time error naming the rule.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eventlog._core.errors import ConfigurationError
from eventlog._core.options import SECONDS_LIMIT, _duration, parser

KEPT = "kept"
SHEDDABLE = "sheddable"
CLASSES = (KEPT, SHEDDABLE)
#: What a rule can match: a logger (and its children), a level name or number, an action.
KINDS = ("logger", "level", "action")
#: Queue-full policies.  ``evict`` drops the oldest queued sheddable event to make room
#: (the newest is dropped when none is queued); ``block:S`` waits up to S seconds for room;
#: ``spill`` (spool mode only) queues past the bound, into a reserve the worker moves to the spool.
POLICIES = ("shed_newest", "shed_oldest", "evict", "block", "spill")
SPILL = "spill"
#: The default, as the setting's parsed value: one ``class=policy`` text per class.
DEFAULT_POLICY = (f"{KEPT}=evict", f"{SHEDDABLE}=shed_newest")


@dataclass(frozen=True)
class Rule:
    """``kind:pattern=klass``: events matching ``pattern`` belong to ``klass``."""

    kind: str
    pattern: str
    klass: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.pattern}={self.klass}"  # as the setting spells it


def _pairs(value: Any) -> list[tuple[str, str]]:
    """``"a=b, c=d"`` or ``{"a": "b"}`` as [(a, b), ...], in order."""
    if isinstance(value, Mapping):
        return [(str(k).strip(), str(v).strip()) for k, v in value.items()]
    if isinstance(value, (list, tuple)):
        value = ",".join(str(item) for item in value)
    if not isinstance(value, str):
        raise ValueError(f"expected text or a mapping, got {type(value).__name__}")
    pairs = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, klass = part.rpartition("=")
        if not sep or not key.strip():
            raise ValueError(f"{part!r} is not name=value")
        pairs.append((key.strip(), klass.strip()))
    return pairs


@parser(takes="text", allowed="rules such as level:INFO=kept")
def parse_classes(value: Any) -> tuple[Rule, ...]:
    """Rules kind:pattern=class, comma-separated (kind: logger, level or action; class: kept or
    sheddable), e.g. logger:payments=kept, action:ui.*=sheddable, level:INFO=kept.

    A logger rule matches that logger and its children; ``*`` and ``?`` are wildcards.
    """
    rules = []
    for key, klass in _pairs(value):
        kind, sep, pattern = key.partition(":")
        kind, pattern = kind.strip().lower(), pattern.strip()
        if not sep or kind not in KINDS or not pattern:
            raise ValueError(f"{key!r} must be logger:NAME, level:NAME or action:NAME")
        if klass not in CLASSES:
            raise ValueError(f"{key}={klass!r}: the class is one of {', '.join(CLASSES)}")
        if kind == "level":
            pattern = str(_level_number(pattern))
        rules.append(Rule(kind, pattern, klass))
    return tuple(rules)


def _level_number(text: str) -> int:
    if text.lstrip("-").isdigit():
        return int(text)
    level = logging.getLevelName(text.upper())
    if not isinstance(level, int):
        raise ValueError(f"level {text!r} is not a level name (DEBUG, INFO, WARNING ...) or number")
    return level


@parser(takes="text", allowed="class=policy pairs such as kept=evict")
def parse_overload_policy(value: Any) -> tuple[str, ...]:
    """class=policy, comma-separated, e.g. kept=evict, sheddable=shed_newest; a policy is
    shed_newest, shed_oldest, evict, block:SECONDS or spill (spool mode only).

    A class left out keeps its default (kept=evict, sheddable=shed_newest).
    """
    policy = policies(DEFAULT_POLICY)
    for klass, text in _pairs(value):
        if klass not in CLASSES:
            raise ValueError(f"{klass!r} is not a class; the classes are {', '.join(CLASSES)}")
        name, _, seconds = text.partition(":")
        if name not in POLICIES:
            raise ValueError(f"{klass}={text!r}: the policy is one of {', '.join(POLICIES)}")
        wait = 0.0
        if name == "block":
            try:
                wait = float(seconds)
            except ValueError:
                raise ValueError(f"{klass}={text!r}: block needs seconds, e.g. block:0.1") from None
            if not 0 < wait <= SECONDS_LIMIT:
                raise ValueError(f"{klass}={text!r}: block waits more than 0 seconds and a finite time")
        elif seconds:
            raise ValueError(f"{klass}={text!r}: only block takes seconds")
        if name == "evict" and klass == SHEDDABLE:
            name = "shed_oldest"  # evicting sheddable events for a sheddable one is shedding the oldest
        policy[klass] = (name, wait)
    return tuple(
        f"{k}={name}" + (f":{wait:g}" if name == "block" else "") for k, (name, wait) in policy.items()
    )


@parser(takes="number", allowed="events a second, 0 (off) to 1e9")
def parse_rate(value: Any) -> float:
    """Events a second of each template, 0 (off) to 1e9."""
    return _duration(value, "events a second", 1e9)


def check_spill(value: Sequence[str], db: object) -> None:
    """``spill`` needs the spool: in memory mode it is a configure-time error naming both settings."""
    if db:
        return
    for text in value:
        klass, _, policy = text.partition("=")
        if policy == SPILL:
            raise ConfigurationError(
                f"overload_policy {klass}=spill needs spool mode, and EVENTLOG_DB (db) is not set: "
                "set it to a spool path, or choose evict, shed_newest, shed_oldest or block:SECONDS"
            )


def policies(value: Sequence[str]) -> dict[str, tuple[str, float]]:
    """The parsed setting as {class: (policy, seconds to block)}."""
    out: dict[str, tuple[str, float]] = {}
    for text in value:
        klass, _, policy = text.partition("=")
        name, _, seconds = policy.partition(":")
        out[klass] = (name, float(seconds or 0))
    return out
