"""End to end only, interleaved: the OTLP contenders beside eventlog json/tcp, as ratios.

    python benchmarks/otlp_e2e.py                       # 3 rounds of 100,000 events
    python benchmarks/otlp_e2e.py --rounds 5 --events 200000

Runs benchmarks/bench.py's ``e2e`` phase (its contenders, its receiver) for
``opentelemetry otlp``, ``eventlog memory otlp`` and ``eventlog memory json/tcp``
in turn, round after round, and prints each one's median events/s as a multiple
of the SDK's in the same run.  Without the caller and latency phases it is short
enough to repeat: on a shared 2-core machine the rates of one run move twofold
with the load, and only ratios within one run mean anything.  json/tcp is the
reference for what the core alone reaches: the gap between it and the otlp
contender is the plugin's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench  # noqa: E402  (the contenders, the receiver, the e2e phase)

NAMES = ["opentelemetry otlp", "eventlog memory otlp", "eventlog memory json/tcp"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=15, help="seconds to wait for the last event")
    args = parser.parse_args()
    found, notes = bench.contenders()
    by_name = {c.name: c for c in found}
    missing = [name for name in NAMES if name not in by_name]
    if missing:
        sys.exit(f"not available: {', '.join(missing)} ({'; '.join(notes)})")
    rates: dict[str, list[float]] = {name: [] for name in NAMES}
    for round_ in range(args.rounds):
        for name in NAMES:
            run = bench.run_phase(by_name[name], "e2e", {"events": args.events, "timeout": args.timeout})
            rates[name].append(run.get("events_per_s", 0.0))
            errors = {k: v for k, v in run.items() if k.endswith("_error")}
            print(
                f"  round {round_ + 1}: {name}: {run.get('events_per_s', 0.0):,.0f} events/s"
                f"{'' if run.get('complete') else ' *'} {errors or ''}",
                file=sys.stderr,
            )
    base = statistics.median(rates[NAMES[0]])
    print(f"{args.events:,} events, median of {args.rounds} interleaved rounds (* = not all delivered)")
    print("| contender | events/s | vs the SDK | each round |")
    print("|---|---:|---:|---|")
    for name in NAMES:
        median = statistics.median(rates[name])
        rounds = ", ".join(f"{rate:,.0f}" for rate in rates[name])
        print(f"| {name} | {median:,.0f} | {median / base:.2f}x | {rounds} |")
    print(f"machine: {bench.caption()}")


if __name__ == "__main__":
    main()
