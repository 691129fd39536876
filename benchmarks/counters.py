"""Cost of Counter.inc() and Gauge.set() against a plain ``int += 1``, in one run.

    python benchmarks/counters.py [iterations]

Each loop runs the same ``for`` over the same range, so the loop's own cost
is in every number; the "net" column subtracts an empty loop.  Nothing is
sent: the counter interval is off and the process ends without a peer.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

os.environ.setdefault("EVENTLOG_COUNTER_INTERVAL", "0")

import eventlog


def timed(body: Callable[[int], None], n: int, repeats: int = 5) -> float:
    """Best of ``repeats`` runs, in nanoseconds per iteration."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        body(n)
        best = min(best, (time.perf_counter_ns() - start) / n)
    return best


def empty_loop(n: int) -> None:
    for _ in range(n):
        pass


def plain_int(n: int) -> None:
    x = 0
    for _ in range(n):
        x += 1  # noqa: SIM113 - the plain int is what we compare with


class Holder:
    value = 0


def int_attribute(n: int) -> None:
    holder = Holder()
    for _ in range(n):
        holder.value += 1


counter = eventlog.Counter("bench.counter")
gauge = eventlog.Gauge("bench.gauge")


def counter_inc(n: int) -> None:
    inc = counter.inc
    for _ in range(n):
        inc()


def counter_inc_method(n: int) -> None:
    for _ in range(n):
        counter.inc()


def counter_inc_n(n: int) -> None:
    inc = counter.inc
    for _ in range(n):
        inc(2)


def gauge_set(n: int) -> None:
    set_ = gauge.set
    for i in range(n):
        set_(i)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
    cases = [
        ("empty loop", empty_loop),
        ("x += 1 (local int)", plain_int),
        ("obj.value += 1", int_attribute),
        ("inc = counter.inc; inc()", counter_inc),
        ("counter.inc()", counter_inc_method),
        ("counter.inc(2)", counter_inc_n),
        ("gauge.set(i)", gauge_set),
    ]
    results = {name: timed(body, n) for name, body in cases}
    base = results["empty loop"]
    plain = results["x += 1 (local int)"] - base
    print(f"Python {sys.version.split()[0]}, {n:,} iterations, best of 5")
    print(f"{'operation':28} {'ns/op':>8} {'net ns':>8} {'x plain int':>12}")
    for name, ns in results.items():
        net = ns - base
        ratio = f"{net / plain:10.1f}x" if name != "empty loop" and plain > 0 else ""
        print(f"{name:28} {ns:8.1f} {net:8.1f} {ratio:>12}")
    eventlog._api.counters._registry._series.clear()  # the benchmark's counts are not events


if __name__ == "__main__":
    main()
