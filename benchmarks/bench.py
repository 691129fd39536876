"""eventlog against the libraries users would pick instead, side by side in one run.

    nox -s bench                     # 200,000 events, 1,000,000 in the outage (about 8 min)
    nox -s bench -- --full           # the same, median of 3 end-to-end runs (about 12 min)
    nox -s bench -- --quick          # a tenth of the events (about 3 min)
    nox -s bench -- --only stdlib,eventlog   # contenders whose name contains a word
    nox -s bench -- --outage-only    # the spool outage alone: RSS growth, receiver down (about 1 min)

Each contender runs in its own process (one per phase) against its own
receiver, a separate process on loopback that counts what arrives
(receiver.py).  Prints one table, with every ratio taken against contenders
measured in this run, and writes the chart to ``docs/bench.png``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass
class Contender:
    name: str
    proto: str | None  # what its receiver speaks; None: no receiver (the floor)
    label: str  # the asynchronous set-up, for the table's notes
    results: dict[str, Any] = field(default_factory=dict)


def contenders() -> tuple[list[Contender], list[str]]:
    """Every contender available in this environment, and notes on those skipped."""
    found = [
        Contender("floor", None, "logging.Logger.info, a handler whose emit does nothing"),
        Contender("stdlib", "json", "QueueHandler -> QueueListener -> SocketHandler (JSON lines)"),
        Contender(
            "stdlib lean",
            "json",
            "QueueHandler(SimpleQueue) -> QueueListener -> a 4-field JSON line per record (sendall)",
        ),
        Contender("logstash-async memory", "json", "AsynchronousLogstashHandler, memory cache"),
        Contender("logstash-async sqlite", "json", "AsynchronousLogstashHandler, SQLite cache"),
        Contender("fluent-logger", "msgpack", "fluent.asynchandler.FluentHandler"),
        Contender("opentelemetry", "json", "LoggingHandler + BatchLogRecordProcessor"),
        Contender("eventlog memory json/tcp", "json", "EventHandler, memory mode"),
    ]
    notes = []
    try:
        import eventlog._spool  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        notes.append("eventlog spool mode: skipped, eventlog._spool is not in this build yet")
    else:
        found.append(Contender("eventlog spool json/tcp", "json", "EventHandler, EVENTLOG_DB set"))
    from eventlog._config.registry import get_registry

    registry = get_registry()
    try:
        registry.transport("fluent")
    except Exception:
        notes.append("eventlog fluent transport: skipped, eventlog-fluent is not installed")
    else:
        found.append(Contender("eventlog memory fluent", "msgpack", "EventHandler, Forward"))
    try:
        registry.transport("http")
    except Exception:
        notes.append("eventlog http transport: skipped, eventlog-http is not installed")
    else:
        found.append(Contender("eventlog memory http", "http", "EventHandler, HTTP POST"))
    try:
        registry.transport("nats")
    except Exception:
        notes.append("eventlog nats transport: skipped, eventlog-nats is not installed")
    else:
        if shutil.which("nats-server") or Path("/usr/sbin/nats-server").exists():
            found.append(Contender("eventlog memory nats", "nats", "EventHandler, NATS JetStream"))
        else:
            notes.append("eventlog nats transport: skipped, nats-server is not installed")
    try:
        registry.transport("otlp")
        import opentelemetry.exporter.otlp.proto.http  # noqa: F401  (the SDK's OTLP/HTTP exporter)
    except Exception:
        notes.append(
            "OTLP: skipped, eventlog-otlp or opentelemetry-exporter-otlp-proto-http is not installed"
        )
    else:
        found.append(
            Contender(
                "opentelemetry otlp", "otlp", "LoggingHandler + BatchLogRecordProcessor + OTLPLogExporter"
            )
        )
        found.append(Contender("eventlog memory otlp", "otlp", "EventHandler, OTLP/HTTP protobuf"))
    notes.append(
        "eventlog capnp: its peer is a ClickHouse server, not a counting socket: "
        "python benchmarks/clickhouse_capnp.py measures it end to end"
    )
    return found, notes


def fluent_forward_section(events: int) -> list[str]:
    """The fluent helper's own comparison (benchmarks/fluent_forward.py), with --full."""
    try:
        sys.path.insert(0, str(HERE))
        import fluent_forward  # type: ignore[import-not-found]

        rows = fluent_forward.compare(events, 3)
    except Exception as exc:  # an optional section must not lose the main table
        return [f"fluent Forward comparison failed: {type(exc).__name__}: {exc}"]
    lines = [
        f"fluent Forward, {events:,} events, median of 3 interleaved rounds (benchmarks/fluent_forward.py):",
        "",
        "| set-up | events/s | vs fluent-logger | caller µs (wall) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {n} | {rate:,.0f} | {ratio:.2f}x | {us:.2f} |" for n, rate, ratio, us in rows]
    return lines


class Receiver:
    """The counting receiver process (receiver.py)."""

    def __init__(self, proto: str, defer: bool = False) -> None:
        cmd = [sys.executable, str(HERE / "receiver.py"), proto] + (["--defer"] if defer else [])
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        data, control = self.proc.stdout.readline().split()
        self.data_port, self.control_port = int(data), int(control)

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_phase(contender: Contender, phase: str, args: dict[str, Any], defer: bool = False) -> dict[str, Any]:
    receiver = Receiver(contender.proto, defer) if contender.proto else None
    if receiver is not None:
        args = {**args, "data_port": receiver.data_port, "control_port": receiver.control_port}
    try:
        proc = subprocess.run(
            [sys.executable, str(HERE / "contenders.py"), contender.name, phase, json.dumps(args)],
            capture_output=True,
            text=True,
            timeout=args.get("timeout", 60) * 3 + 120,
        )
    except subprocess.TimeoutExpired:
        return {f"{phase}_error": "timed out"}
    finally:
        if receiver is not None:
            receiver.stop()
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        return {f"{phase}_error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _prefixed(phase: str, result: dict[str, Any]) -> dict[str, Any]:
    return {k if k.endswith("_error") else f"{phase}_{k}": v for k, v in result.items()}


def caller_args(counts: dict[str, Any]) -> dict[str, Any]:
    return {"calls": counts["calls"], "runs": counts["runs"], "drain_timeout": 3}


def floor_of(results: dict[str, Any], floor: dict[str, Any], key: str) -> float | None:
    """The floor measured just before this contender (or the run's first floor)."""
    value: float | None = results.get(f"floor_{key}") or floor.get(f"info_{key}")
    return value


def measure(c: Contender, counts: dict[str, Any]) -> None:
    c.results.update(run_phase(c, "caller", caller_args(counts)))
    print(f"  {c.name}: caller {fmt_us(c.results.get('info_cpu_us'))} us", file=sys.stderr)
    if c.proto is None:
        return
    # The median of a few runs (this machine is shared); a contender that cannot deliver
    # everything within the timeout is run once: its rate so far is the figure.
    runs: list[dict[str, Any]] = []
    for _ in range(counts["e2e_runs"]):
        run = run_phase(c, "e2e", {"events": counts["events"], "timeout": counts["e2e_timeout"]})
        runs.append(run)
        print(f"  {c.name}: {run.get('events_per_s', 0):,.0f} events/s", file=sys.stderr)
        if not run.get("complete"):
            break
    runs.sort(key=lambda r: r.get("events_per_s", 0.0))
    e2e = runs[len(runs) // 2]
    c.results.update({k: v for k, v in e2e.items() if k != "events"})
    c.results["e2e_events"] = counts["events"]
    c.results["e2e_all"] = [round(r.get("events_per_s", 0.0)) for r in runs]
    latency = run_phase(
        c,
        "latency",
        {"rate": 1000, "seconds": counts["latency_seconds"], "timeout": counts["latency_timeout"]},
    )
    c.results.update(_prefixed("latency", latency))
    if c.name.startswith("eventlog spool"):
        outage = run_phase(
            c,
            "outage",
            {"events": counts["outage_events"], "rate": counts["outage_rate"], "timeout": 600},
            defer=True,
        )
        c.results.update(_prefixed("outage", outage))


# ---------------------------------------------------------------- report


def fmt_us(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def fmt_ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "-"
    return f"{value / base:.2f}x"


def table(found: list[Contender], counts: dict[str, Any]) -> str:
    """Two Markdown tables, the caller's cost and delivery, narrow enough for the docs' column."""
    by_name = {c.name: c.results for c in found}
    floor = by_name.get("floor", {})
    stdlib = by_name.get("stdlib", {})
    caller = [
        "| contender | caller µs (CPU) | vs floor¹ | caller µs (wall) | vs floor¹ "
        "| log_event µs (CPU) | vs floor¹ |",
        "|" + "---|" * 7,
    ]
    delivery = [
        "| contender | events/s | vs stdlib | p50 ms | p99 ms | peak RSS MB |",
        "|" + "---|" * 6,
    ]
    for c in found:
        r = c.results
        rate = r.get("events_per_s")
        rate_text = "-" if rate is None else f"{rate:,.0f}" + ("" if r.get("complete") else " *")
        p50, p99 = r.get("latency_p50_ms"), r.get("latency_p99_ms")
        lat_note = "" if r.get("latency_received", 0) >= r.get("latency_sent", 0) else " *"
        cells = [
            c.name,
            fmt_us(r.get("info_cpu_us")),
            fmt_ratio(r.get("info_cpu_us"), floor_of(r, floor, "cpu_us")),
            fmt_us(r.get("info_wall_us")),
            fmt_ratio(r.get("info_wall_us"), floor_of(r, floor, "wall_us")),
            fmt_us(r.get("event_cpu_us")),
            fmt_ratio(r.get("event_cpu_us"), floor_of(r, floor, "cpu_us")),
        ]
        caller.append("| " + " | ".join(cells) + " |")
        if c.name == "floor":
            continue  # it sends nothing
        cells = [
            c.name,
            rate_text,
            fmt_ratio(rate, stdlib.get("events_per_s")) if rate else "-",
            "-" if p50 is None else f"{p50:.1f}{lat_note}",
            "-" if p99 is None else f"{p99:.1f}{lat_note}",
            "-" if r.get("peak_rss_mb") is None else f"{r['peak_rss_mb']:.0f}",
        ]
        delivery.append("| " + " | ".join(cells) + " |")
    return "\n".join(
        ["what one call costs the application's thread:", "", *caller, "", "delivery:", "", *delivery]
    )


def outage_lines(found: list[Contender], counts: dict[str, Any]) -> list[str]:
    out = []
    for c in found:
        r = c.results
        if "outage_events" in r:
            out.append(
                f"{c.name}, receiver down: {r['outage_events']:,} events logged at "
                f"{counts['outage_rate']:,}/s in "
                f"{r['outage_log_seconds']:.1f}s, spooled after {r['outage_spool_seconds']:.1f}s; "
                f"RSS growth {r['outage_rss_growth_mb']:.1f} MB (peak {r['outage_peak_rss_mb']:.0f} MB); "
                f"dropped {sum(r['outage_dropped'].values()):,}"
                f"{' ' + str(r['outage_dropped']) if r['outage_dropped'] else ''}; "
                "after the receiver came up: "
                f"{r['outage_received']:,} received, {r['outage_distinct']:,} distinct ids"
            )
        elif "outage_error" in r:
            out.append(f"{c.name}, receiver down: {r['outage_error']}")
    return out


def targets(found: list[Contender]) -> list[str]:
    """The targets eventlog is built to, read from this run: what each is and why, met or missed."""
    by_name = {c.name: c.results for c in found}
    floor, stdlib = by_name.get("floor", {}), by_name.get("stdlib", {})
    memory = by_name.get("eventlog memory json/tcp", {})
    spool = by_name.get("eventlog spool json/tcp", {})
    lines: list[str] = []

    def check(label: str, value: float | None, limit: float, at_most: bool, extra: str = "") -> None:
        if value is None:
            lines.append(f"- [ ] {label}: not measured")
            return
        met = value <= limit if at_most else value >= limit
        sign = "<=" if at_most else ">="
        lines.append(f"- [{'x' if met else ' '}] {label}: {value:.2f} (target {sign} {limit}){extra}")

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    lines.append(
        "- caller cost (what one logger.info costs the application's thread, memory mode, as a "
        "multiple of a handler that does nothing; no target, the lower the better): CPU "
        f"{ratio(memory.get('info_cpu_us'), floor_of(memory, floor, 'cpu_us')) or 0:.2f}x, wall "
        f"{ratio(memory.get('info_wall_us'), floor_of(memory, floor, 'wall_us')) or 0:.2f}x "
        "(the worker's share of the GIL is in the wall figure; instructions: --instructions)"
    )
    lean = by_name.get("stdlib lean", {})
    check(
        "throughput, memory mode json/tcp, as a multiple of the leanest stdlib set-up (a SimpleQueue "
        "QueueHandler, a listener writing a 4-field JSON line per record to a socket)",
        ratio(memory.get("events_per_s"), lean.get("events_per_s")),
        1.5,
        False,
    )
    for name, results, limit in (("memory", memory, 2.0), ("spool", spool, 1.5)):
        note = "" if results.get("complete") else f"; not all delivered, dropped {results.get('dropped')}"
        check(
            f"throughput, {name} mode json/tcp (events/s delivered end to end, as a multiple of "
            "stdlib's QueueHandler to a socket: shipping must keep up with what the application logs)",
            ratio(results.get("events_per_s"), stdlib.get("events_per_s")),
            limit,
            False,
            note,
        )
    flood = {
        n: sum((r.get("dropped") or {}).values())
        for n, r in by_name.items()
        if n.startswith("eventlog") and "events_per_s" in r
    }
    worst_flood = max(flood.values(), default=None)
    check(
        "no loss in a flood (events dropped with default settings, worst eventlog contender: "
        "a burst must be absorbed, not shed)",
        worst_flood,
        0,
        True,
        f" ({', '.join(f'{n}: {d:,}' for n, d in flood.items())})",
    )
    p99s = [
        r["latency_p99_ms"] for n, r in by_name.items() if n.startswith("eventlog") and "latency_p99_ms" in r
    ]
    worst = max(p99s, default=None)
    check(
        "delivery latency (p99 ms from the log call to the receiver at 1,000 events/s, worst eventlog "
        "contender: events are seen while they matter)",
        worst,
        50,
        True,
    )
    if "outage_rss_growth_mb" in spool:
        whole = spool["outage_distinct"] == spool["outage_events"] and not spool["outage_dropped"]
        check(
            f"memory in an outage (RSS growth in MB over {spool['outage_events']:,} events in spool "
            "mode with the receiver down: the spool holds them on disk, not the process in memory)",
            spool["outage_rss_growth_mb"],
            64,
            True,
            "; none dropped, all delivered once" if whole else "; events were lost",
        )
        if not whole and lines[-1].startswith("- [x]"):
            lines[-1] = "- [ ]" + lines[-1][5:]
    return lines


def command() -> str:
    """The command line that made these figures (output paths left out)."""
    words, skip = [], False
    for word in sys.argv[1:]:
        if skip:
            skip = False
        elif word in ("--chart", "--json", "--redraw"):
            skip = True
        elif not word.startswith(("--chart=", "--json=")):
            words.append(word)
    return "nox -s bench" + (" -- " + " ".join(words) if words else "")


def caption() -> str:
    return (
        f"{os.cpu_count()} cores, Python {platform.python_version()} ({platform.machine()}), "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC"
    )


def chart(found: list[Contender], path: Path, counts: dict[str, Any], made_by: str | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("info_cpu_us", "caller µs per logger.info, CPU (lower is better)"),
        ("events_per_s", f"events/s end to end, {counts['events']:,} events (higher is better)"),
        ("latency_p99_ms", "p99 delivery latency at 1,000 events/s, ms"),
        ("peak_rss_mb", "peak RSS in the end-to-end run, MB"),
    ]
    # One column, drawn at the width the docs show it (about 720 px): the labels keep the
    # size they are drawn at instead of being shrunk to half (scripts/check_site.py checks it).
    fig, axes = plt.subplots(4, 1, figsize=(7.2, 14.5))
    for ax, (key, title) in zip(axes.flat, panels, strict=True):
        named = [(c.name, c.results.get(key)) for c in found if c.results.get(key) is not None]
        names = [n for n, _ in named]
        values = [float(v) for _, v in named]
        colors = ["tab:green" if n.startswith("eventlog") else "tab:gray" for n in names]
        ax.barh(names, values, color=colors)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=12, loc="left")
        ax.tick_params(axis="y", labelsize=11)
        ax.tick_params(axis="x", labelsize=10)
        if key == "latency_p99_ms" and values and max(values) / max(min(values), 1e-9) > 50:
            ax.set_xscale("log")
            ax.set_title(title + " (log scale)", fontsize=12, loc="left")
        ax.margins(x=0.22)  # room for the value printed after the longest bar
        partial = {
            "events_per_s": {c.name for c in found if not c.results.get("complete", True)},
            "latency_p99_ms": {
                c.name
                for c in found
                if c.results.get("latency_received", 0) < c.results.get("latency_sent", 0)
            },
        }.get(key, set())
        for y, (n, v) in enumerate(zip(names, values, strict=True)):
            mark = " *" if n in partial else ""
            ax.text(v, y, (f" {v:,.1f}" if v < 100 else f" {v:,.0f}") + mark, va="center", fontsize=10)
    fig.suptitle("eventlog (green) against the set-ups users pick instead", fontsize=13)
    made = made_by or command() + "  —  " + caption()
    fig.text(0.5, 0.005, f"{made}\n* not all delivered (see the table's notes)", ha="center", fontsize=9)
    fig.tight_layout(rect=(0, 0.03, 1, 0.98))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tenth of the events (about 3 min)")
    parser.add_argument(
        "--full", action="store_true", help="median of 3 end-to-end runs, longer waits (about 12 min)"
    )
    parser.add_argument("--only", default="", help="comma-separated words; run matching contenders")
    parser.add_argument("--chart", default=str(ROOT / "docs" / "bench.png"), help="PNG to write")
    parser.add_argument("--json", default="", help="also write every figure to this JSON file")
    parser.add_argument(
        "--redraw", default="", help="draw the chart again from a --json file, without running"
    )
    parser.add_argument(
        "--outage-only",
        action="store_true",
        help="only the spool contender's outage phase (1,000,000 events; 100,000 with --quick)",
    )
    options = parser.parse_args()
    if options.redraw:
        saved = json.loads(Path(options.redraw).read_text())
        found = [Contender(name, None, "", results) for name, results in saved["results"].items()]
        made_by = f"{saved.get('command', 'nox -s bench')}  —  {saved['caption']}"
        chart(found, Path(options.chart), saved["counts"], made_by)
        print(f"chart: {os.path.relpath(options.chart, ROOT)}")
        return
    # The default counts (200,000 events; 1,000,000 in the outage) by default and with
    # --full; --full also takes the median of 3 end-to-end runs and waits longer for
    # slow contenders.  --quick is a tenth of that.
    counts: dict[str, Any] = {
        "calls": 10_000,
        "runs": 7,
        "events": 200_000,
        "e2e_runs": 1,
        "e2e_timeout": 15,
        "latency_seconds": 5,
        "latency_timeout": 12,
        "outage_events": 1_000_000,
        "outage_rate": 25_000,
    }
    if options.full:
        counts.update(e2e_runs=3, e2e_timeout=30, latency_timeout=15)
    elif options.quick:
        counts.update(
            calls=5_000,
            runs=5,
            events=20_000,
            e2e_timeout=10,
            latency_seconds=3,
            outage_events=100_000,
        )
    found, notes = contenders()
    if options.outage_only:
        # The outage alone (RSS growth with the receiver down), a few minutes instead of the
        # whole run; what it prints is the table's outage line.
        spool = next(c for c in found if c.name == "eventlog spool json/tcp")
        outage = run_phase(
            spool,
            "outage",
            {"events": counts["outage_events"], "rate": counts["outage_rate"], "timeout": 600},
            defer=True,
        )
        spool.results.update(_prefixed("outage", outage))
        print("\n".join(outage_lines([spool], counts)))
        return
    if options.only:
        words = [w.strip() for w in options.only.split(",") if w.strip()]
        # The floor and stdlib always run: every ratio is taken against them.
        found = [
            c
            for c in found
            if c.name in ("floor", "stdlib", "stdlib lean") or any(w in c.name for w in words)
        ]
    print(f"eventlog benchmark: {caption()}", file=sys.stderr)
    floor = next((c for c in found if c.name == "floor"), None)
    for c in found:
        if floor is not None and c is not floor:
            # The floor again, just before each contender: on a shared machine the speed
            # drifts over minutes, and a caller-cost ratio is only fair between neighbours.
            again = run_phase(floor, "caller", caller_args(counts))
            c.results["floor_cpu_us"] = again.get("info_cpu_us")
            c.results["floor_wall_us"] = again.get("info_wall_us")
        measure(c, counts)
    print()
    print(table(found, counts))
    print()
    print(
        "¹ against the floor measured again just before each contender (the machine's speed "
        "drifts over minutes). "
        f"caller µs: median of {counts['runs']} bursts of {counts['calls']:,} calls of "
        '`log.info("user %s did %d", a, i, extra={...})` (CPU: the calling thread\'s CPU time; '
        "wall: includes time the worker thread held the GIL); log_event: "
        "`log_event(Event(...))` against the floor's logger.info. events/s: first call to "
        f"last event counted by the receiver, {counts['events']:,} events "
        f"(* = not all delivered within {counts['e2e_timeout']} s: the rate so far). "
        f"Latency: 1,000 events/s for {counts['latency_seconds']} s "
        "(* = not all delivered within the wait)."
    )
    for line in outage_lines(found, counts):
        print(line)
    for c in found:
        if c.results.get("dropped"):
            print(f"{c.name}: end-to-end run gave up events: {c.results['dropped']}")
        for key, value in c.results.items():
            if key.endswith("_error"):
                print(f"error: {c.name}, {key[:-6]} phase: {value}")
    if options.full and any(c.name == "eventlog memory fluent" for c in found):
        print()
        for line in fluent_forward_section(counts["events"] // 2):
            print(line)
    print()
    print("targets (what eventlog is built to do, and why; [x] met in this run, [ ] missed):")
    for line in targets(found):
        print(line)
    for note in notes:
        print(f"note: {note}")
    print(f"machine: {caption()}")
    print(f"command: {command()}")
    chart(found, Path(options.chart), counts)
    print(f"chart: {os.path.relpath(options.chart, ROOT)}")
    if options.json:
        figures = {
            "caption": caption(),
            "command": command(),
            "counts": counts,
            "results": {c.name: c.results for c in found},
        }
        Path(options.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
