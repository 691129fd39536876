"""Bytes per event of each installed format, plain and gzipped, for the same varied events.

    python benchmarks/sizes.py [--events 10000] [--batch 500]

The events are those of ``tests/varied.py`` (the ones tests/test_capnp.py reads
back from ClickHouse): unicode, empty strings, large numbers, many tags and
fields.  "plain" is the batch body as a transport sends it, divided by the
number of events; "gzip" compresses each batch of ``--batch`` events on its own
(level 6), as an HTTP transport with gzip would.  Formats not installed
(msgpack needs eventlog-fluent) are listed as such.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.varied import varied_events

from eventlog._config.config import Settings
from eventlog._config.contracts import Formatter, PluginContext
from eventlog._config.registry import get_registry
from eventlog._records.event import Event
from eventlog._records.wire import to_wire

FORMATS = ("capnp", "capnp-packed", "msgpack", "json")


def make_formatter(name: str) -> Formatter | None:
    """The installed formatter ``name`` with its default options, or None."""
    registry = get_registry()
    if name not in registry.formatters:
        return None
    spec = registry.formatters[name].spec
    settings = Settings.load({}, environ={})
    return spec.factory(PluginContext(settings, settings.plugin_options(name, spec.options)))


def measure(formatter: Formatter, wires: list[dict[str, object]], batch: int) -> tuple[float, float]:
    """(plain, gzip) bytes per event."""
    plain = packed = 0
    for start in range(0, len(wires), batch):
        body = formatter.format_batch([formatter.format(w) for w in wires[start : start + batch]])
        plain += len(body)
        packed += len(gzip.compress(body, compresslevel=6))
    return plain / len(wires), packed / len(wires)


def typical_event() -> Event:
    """A small everyday event: the README's example with a level, tags and process fields."""
    event = Event(
        "account.admin.create",
        "bob",
        "user",
        message="account created",
        level=20,
        tags=["admin", "billing"],
        fields={"plan": "pro", "seats": 5, "discount": 0.2},
        user="alice",
        time_ns=1_795_132_800_123_000_000,
    )
    event.host, event.pid, event.thread = "web-1", 48213, "MainThread"
    return event


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    wires = [to_wire(event, None) for event in varied_events(args.events)]
    print(f"bytes per event, {args.events} varied events, gzip per batch of {args.batch}")
    print(f"{'format':<14}{'plain':>10}{'gzip':>10}{'plain/json':>12}{'gzip/json':>11}")
    results: dict[str, tuple[float, float]] = {}
    for name in FORMATS:
        formatter = make_formatter(name)
        if formatter is not None:
            results[name] = measure(formatter, wires, args.batch)
    base = results.get("json")
    for name in FORMATS:
        if name not in results:
            print(f"{name:<14}{'not installed':>20}")
            continue
        plain, zipped = results[name]
        ratios = f"{plain / base[0]:>12.2f}{zipped / base[1]:>11.2f}" if base else ""
        print(f"{name:<14}{plain:>10.1f}{zipped:>10.1f}{ratios}")
    typical = to_wire(typical_event(), None)
    sizes = []
    for name in FORMATS:
        formatter = make_formatter(name)
        if formatter is not None:
            sizes.append(f"{name} {len(formatter.format(typical))}")
    print("\none typical event (benchmarks/sizes.py typical_event), bytes: " + ", ".join(sizes))


if __name__ == "__main__":
    main()
