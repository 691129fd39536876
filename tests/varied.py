"""Varied, reproducible events: unicode, empty strings, large numbers, many tags and fields.

Shared by ``tests/test_capnp.py`` and ``benchmarks/sizes.py`` so that the
sizes the benchmark prints are those of the events the tests read back.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from eventlog._records.event import Event

ACTIONS = (
    "account.create",
    "account.admin.create",
    "account.admin.delete",
    "account.login",
    "account",  # not under 'account.%'
    "accountant.pay",  # not under 'account.%' either
    "ui.click",
    "log.info",
    "log.error",
    "заказ.создан",
    "payment.refund",
)
WORDS = (
    "",
    "a",
    "alice",
    "Bob O'Brien",
    "naïve café",
    "日本語のテキスト",
    "emoji 🎉🚀",
    "tab\tnew\nline",
    'quote " backslash \\',
    "nul\x00byte",
    "x" * 300,
)
#: First day of the events: 2026-11-20 00:00:00 UTC, in nanoseconds.
START_NS = 1_795_132_800 * 1_000_000_000
DAY_NS = 86_400 * 1_000_000_000


def _word(rnd: random.Random) -> str:
    return rnd.choice(WORDS) + (str(rnd.randrange(1000)) if rnd.random() < 0.5 else "")


def _int(rnd: random.Random) -> int:
    return rnd.choice(
        (
            0,
            -1,
            rnd.randrange(-1000, 1000),
            rnd.randrange(2**40),
            2**63 - 1,
            -(2**63),
            2**53 + 1,
        )
    )


def _float(rnd: random.Random) -> float:
    return rnd.choice((0.0, -0.0, 0.5, rnd.uniform(-1e6, 1e6), 1e308, -2.5e-308, 5e-324, rnd.random()))


def varied_events(count: int, seed: int = 6) -> Iterator[Event]:
    """``count`` events, the same ones for the same seed."""
    rnd = random.Random(seed)
    for i in range(count):
        event = Event(
            rnd.choice(ACTIONS),
            rnd.choice((None, "", _word(rnd), f"user-{i}")),
            rnd.choice((None, "", "user", "ui", "ボタン")),
            message=rnd.choice((None, "", _word(rnd), f"event {i} " + _word(rnd))),
            level=rnd.choice((None, 5, 10, 20, 30, 40, 50)),
            time_ns=START_NS + rnd.randrange(7 * DAY_NS),
            user=rnd.choice((None, "", "alice", "bob", "Zoë")),
            session=rnd.choice((None, f"s-{rnd.randrange(100)}")),
            request_id=rnd.choice((None, f"req-{i}")),
        )
        roll = rnd.random()
        if roll < 0.3:
            event.tags = [_word(rnd) for _ in range(rnd.randrange(0, 60))]
        if roll < 0.6:
            fields: dict[str, int | float | str] = {}
            for n in range(rnd.randrange(0, 40)):
                kind = rnd.randrange(3)
                key = f"k{n}_{rnd.choice(('', 'é', '数'))}"
                fields[key] = (_int, _float, _word)[kind](rnd)
            fields["amount"] = rnd.randrange(-(10**6), 10**6)
            fields["ratio"] = rnd.random()
            if rnd.random() < 0.05:
                fields["huge"] = 2**64 + i  # beyond Int64: kept as exact text
            event.fields = fields
        if roll > 0.5:
            event.metrics = {"durationMs": rnd.uniform(0, 500), "count": rnd.randrange(10**6)}
            if rnd.random() < 0.1:
                event.metrics["choice"] = "banana"  # not a number: the core moves it to fields
        if rnd.random() < 0.5:
            event.site, event.cluster = "shop", rnd.choice(("eu-1", "us-2", ""))
            event.host, event.pid, event.thread = "web-1", rnd.randrange(1, 4_000_000), "Main"
        if rnd.random() < 0.3:
            event.code_file, event.code_line, event.code_func = "/app/views.py", i, "handler"
        if rnd.random() < 0.05:
            event.exc_info = '{"type": "ZeroDivisionError", "value": "division by zero"}'
        if i % 3001 == 7:
            # A message above the first segment's size: pycapnp writes several segments.
            event.message = "long " * 40_000
        yield event
