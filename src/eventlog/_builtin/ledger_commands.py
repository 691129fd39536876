"""``eventlog ledger check FILE``: which events of each process never arrived, and why."""

from __future__ import annotations

import argparse
import sys

from eventlog._config.hookspecs import hookimpl


def _ranges(gaps: list[tuple[int, int]]) -> str:
    """``[(1, 3), (7, 7)]`` -> ``1-3, 7`` (the first ten ranges)."""
    spans = [str(first) if first == last else f"{first}-{last}" for first, last in gaps[:10]]
    shown = ", ".join(spans)
    return shown + (f" ... ({len(gaps) - 10} more ranges)" if len(gaps) > 10 else "")


def _check(args: argparse.Namespace) -> int:
    from eventlog._engine.ledger import check

    try:
        with open(args.file, "rb") as lines:
            streams = check(lines)
    except OSError as exc:
        print(f"eventlog ledger check: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"eventlog ledger check: {args.file} is not JSON lines: {exc}", file=sys.stderr)
        return 2
    numbered = {key: stream for key, stream in streams.items() if stream.numbers or stream.ledger}
    if not numbered:
        print(f"{args.file}: no numbered events (is ledger_interval set?)")
        return 1
    complete = True
    for (host, pid), stream in sorted(numbered.items()):
        gaps = stream.missing()
        missing = sum(last - first + 1 for first, last in gaps)
        dropped = stream.dropped()
        who = f"host {host or '?'} pid {pid or '?'}"
        if stream.ledger is None:
            accounted = not missing
            verdict = "complete" if accounted else "no ledger event arrived to account for them"
        else:
            accounted = missing <= dropped
            verdict = (
                "complete"
                if not missing
                else f"the ledger accounts for them ({dropped} dropped or shed)"
                if accounted
                else f"NOT accounted for: the ledger counts only {dropped} dropped or shed"
            )
        complete = complete and accounted
        print(f"{who}: {len(stream.numbers)} numbered events arrived, {missing} missing: {verdict}")
        if gaps:
            print(f"  missing: {_ranges(gaps)}")
        if stream.duplicates:
            print(f"  {stream.duplicates} arrived more than once (at-least-once delivery; same id)")
    return 0 if complete else 1


@hookimpl
def eventlog_add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``eventlog ledger``."""
    parser = subparsers.add_parser("ledger", help="check from what arrived that a stream is complete")
    commands = parser.add_subparsers(dest="ledger_command", required=True)
    check = commands.add_parser(
        "check",
        help="per process: which sequence numbers are missing, and whether the ledger accounts for them",
    )
    check.add_argument("file", help="what the receiver got: JSON lines, one event each")
    check.set_defaults(func=_check)
