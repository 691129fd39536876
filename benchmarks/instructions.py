"""Instructions per event, counted by valgrind's callgrind: the hot path without wall-time noise.

    nox -s bench -- --instructions            # every Python of 3.11, 3.12, 3.13 found
    python benchmarks/instructions.py --python /usr/bin/python3.12 --events 20000

Each case runs twice under ``valgrind --tool=callgrind --separate-threads=yes``:
``empty`` (the same imports, set-up and one warm-up call, no loop) and ``loop``
(``--events`` calls from inside a function).  The pipeline is running when the
loop starts, as in an application: the warm-up event was flushed (sent, the
connection and the spool open).  Per event = (loop - empty) / events,
for the calling thread and for the other threads (the worker, the stdlib's
QueueListener) apart.  Instruction counts repeat to a few per event from run to
run, where wall time on a shared machine drifts twofold.

The cases:
  floor      ``log.info('user %s did thing %d', 'alice', i, extra={'k': i})``, a handler whose
             emit does nothing
  stdlib     the same call, QueueHandler -> QueueListener -> JSON lines on a TCP socket
  eventlog   the same call, EventHandler, tcp transport, json (memory mode)
  python     the same, with eventlog-speedups off (EVENTLOG_SPEEDUPS=0)
  log_event  ``log_event(Event('click', 'my-button', 'ui'))``
  log_event_fields  ``log_event(Event('user.did', 'alice', 'user', fields={'req_id': 'r-1', 'n': i},
             metrics={'duration_ms': 12.5}))``
  spool      the eventlog case in spool mode (EVENTLOG_DB: a fresh SQLite spool)
  ecs        the eventlog case with the ecs format (Elastic Common Schema JSON lines)
  fluent     the eventlog case over eventlog-fluent's transport (msgpack, Forward protocol;
             acks off, as the sink answers nothing)
The TCP peer is a separate process, not under valgrind, that reads and discards.

``--cases log_event,log_event_fields`` runs only those cases (and ``floor``, which the ratios
need) and prints their rows without writing benchmarks/results/instructions.md.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "instructions.md"

SINK = """
import socket, sys, threading
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(16)
print(server.getsockname()[1], flush=True)
def drain(conn):
    while conn.recv(1 << 20):
        pass
while True:
    conn, _ = server.accept()
    threading.Thread(target=drain, args=(conn,), daemon=True).start()
"""

#: One script for every case: argv = mode (empty|loop), events, case; SINK_PORT in the environment.
CASE = '''
import json, logging, logging.handlers, os, queue, socket, sys
mode, events, case = sys.argv[1], int(sys.argv[2]), sys.argv[3]
port = int(os.environ["SINK_PORT"])
log = logging.getLogger("bench")
log.setLevel(logging.INFO)
log.propagate = False
listener = None
if case == "floor":
    class Nop(logging.Handler):
        def emit(self, record):
            pass
    log.addHandler(Nop())
elif case == "stdlib":
    class JsonLines(logging.Handler):
        """What the logging cookbook's listener side does, as JSON lines on a socket."""
        def __init__(self):
            super().__init__()
            self.sock = socket.create_connection(("127.0.0.1", port))
        def emit(self, record):
            self.sock.sendall((json.dumps({
                "tstamp": int(record.created * 1000), "level": record.levelname,
                "logger": record.name, "message": record.getMessage(), "k": record.__dict__.get("k"),
                "thread": record.threadName, "file": record.pathname, "line": record.lineno,
            }) + "\\n").encode())
    q = queue.SimpleQueue()
    log.addHandler(logging.handlers.QueueHandler(q))
    listener = logging.handlers.QueueListener(q, JsonLines())
    listener.start()
else:
    import eventlog
    # spool: the same pipeline in spool mode (a fresh SQLite spool per run, beside the script).
    here = os.path.dirname(os.path.abspath(__file__))
    db = os.path.join(here, f"spool-{mode}.db") if case == "spool" else None
    if db is not None:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix):
                os.unlink(db + suffix)
    if case == "fluent":  # acks off: the sink reads and answers nothing
        eventlog.configure(transport="fluent", host="127.0.0.1", port=port)
    else:
        eventlog.configure(transport="tcp", host="127.0.0.1", port=port, db=db,
                           format="ecs" if case == "ecs" else "json")
    log.addHandler(eventlog.EventHandler())

def work():
    if case == "log_event":
        from eventlog import Event, log_event
        for i in range(events):
            log_event(Event("click", "my-button", "ui"))
    elif case == "log_event_fields":
        from eventlog import Event, log_event
        for i in range(events):
            log_event(Event("user.did", "alice", "user", fields={"req_id": "r-1", "n": i},
                            metrics={"duration_ms": 12.5}))
    else:
        for i in range(events):
            log.info("user %s did thing %d", "alice", i, extra={"k": i})

def settle():
    if listener is not None:
        listener.stop()  # sends what is queued, then joins its thread
    elif case != "floor":
        import eventlog
        assert eventlog.flush(60), "not everything was sent"

log.info("warm %s", "up", extra={"k": 0})
if case.startswith("log_event"):
    from eventlog import Event, log_event
    log_event(Event("warm", fields={"n": 0}, metrics={"m": 1.5}))
if case not in ("floor", "stdlib"):
    import eventlog
    # The pipeline running, as in an application: the warm-up sent (connected, spool open).
    assert eventlog.flush(60), "the warm-up was not sent"
# As in an application long past its imports: what the set-up left is collected now, or the
# first collections after it (paid once a process, walking every object the imports made)
# would be charged to the calls (~1.7k instructions an event of 2,000, CPython 3.13).
import gc
gc.collect()
if mode == "loop":
    work()
settle()
'''

#: The worker's parts alone, over the records of the same call (made in both runs).
PARTS = """
import logging, sys
import eventlog._records.logrecords as records
from eventlog._builtin.formats import dumps_lines
from eventlog._records.context import EMPTY
mode, events, part = sys.argv[1], int(sys.argv[2]), sys.argv[3]
log = logging.getLogger("bench")
items = [(r, (r.msg, r.args), EMPTY) for r in (
    log.makeRecord("bench", 20, __file__, 1, "user %s did thing %d", ("alice", i), None, "work",
                   extra={"k": i}) for i in range(events))]
static = {"host": "bench-host", "pid": 4242}
if part == "python":
    records.accelerator = None
wires = records.wires_of(items[:1], static, True, {}, lambda item: None)[0] * events
if mode == "loop":
    for start in range(0, events, 2000):
        batch = items[start:start + 2000]
        if part == "json":
            dumps_lines(wires[start:start + 2000])
        elif part == "lines":
            records.json_lines(batch, static, True, *records._ids.node_and_counter(), None)
        else:
            records.wires_of(batch, static, True, {}, lambda item: None)
"""
PART_ROWS = [
    ("worker part: record -> wire dict, eventlog-speedups", "compiled"),
    ("worker part: record -> wire dict, pure Python", "python"),
    ("worker part: a batch of wire dicts -> JSON lines (orjson)", "json"),
    ("worker part: records -> JSON lines, no wire dict (eventlog-speedups)", "lines"),
]

#: (row label, case, environment).
CASES = [
    ("floor: do-nothing handler", "floor", {}),
    ("stdlib: QueueHandler -> QueueListener -> JSON lines/TCP", "stdlib", {}),
    ("eventlog, EventHandler, json/tcp (eventlog-speedups)", "eventlog", {}),
    ("eventlog, EventHandler, json/tcp (pure Python)", "python", {"EVENTLOG_SPEEDUPS": "0"}),
    ("eventlog log_event(Event('click', 'my-button', 'ui'))", "log_event", {}),
    ("eventlog, EventHandler, json/tcp, spool mode (eventlog-speedups)", "spool", {}),
    (
        "eventlog log_event(Event('user.did', 'alice', 'user', fields={...2}, metrics={...1}))",
        "log_event_fields",
        {},
    ),
    ("eventlog, EventHandler, ecs/tcp (eventlog-speedups)", "ecs", {}),
    (
        "eventlog, EventHandler, fluent (msgpack, eventlog-speedups)",
        "fluent",
        {"EVENTLOG_FLUENT_REQUIRE_ACK_RESPONSE": "0"},
    ),
]


def totals(prefix: str) -> tuple[int, int]:
    """Instructions of the main thread and of the other threads, from callgrind's files."""
    main = other = 0
    for path in glob.glob(f"{prefix}.*-*"):
        text = Path(path).read_text(errors="replace")
        found = re.search(r"^totals: (\d+)", text, re.M) or re.search(r"^summary: (\d+)", text, re.M)
        if found is None:
            raise SystemExit(f"no totals in {path}")
        thread = int(path.rsplit("-", 1)[1])
        if thread == 1:
            main += int(found.group(1))
        else:
            other += int(found.group(1))
    return main, other


def measure(python: str, case: str, env: dict[str, str], events: int, work: Path) -> tuple[float, float]:
    """(caller, other threads) instructions per event."""
    sink = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None
        port = sink.stdout.readline().strip()
        script = work / "case.py"
        script.write_text(PARTS if case.startswith("part-") else CASE)
        # Measured runs get a fixed hash seed and none of the shell's EVENTLOG_* settings.
        run_env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLOG_")}
        run_env.update(env, SINK_PORT=port, PYTHONHASHSEED="0")
        case_arg = {"python": "eventlog"}.get(case, case.removeprefix("part-"))
        # One run without valgrind first: it writes the bytecode caches, so that the empty
        # run does not pay for compiling what the loop run then finds compiled.
        subprocess.run(
            [python, str(script), "empty", "1", case_arg],
            env=run_env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        counts = {}
        for mode in ("empty", "loop"):
            prefix = str(work / f"cg.{case}.{mode}")
            for old in glob.glob(f"{prefix}.*"):
                os.unlink(old)
            subprocess.run(
                [
                    "valgrind",
                    "--tool=callgrind",
                    "--separate-threads=yes",
                    f"--callgrind-out-file={prefix}.%p",
                    python,
                    str(script),
                    mode,
                    str(events),
                    case_arg,
                ],
                env=run_env,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            counts[mode] = totals(prefix)
    finally:
        sink.kill()
        sink.wait()
    (empty_main, empty_other), (loop_main, loop_other) = counts["empty"], counts["loop"]
    return (loop_main - empty_main) / events, (loop_other - empty_other) / events


def pythons() -> list[tuple[str, str]]:
    """(version, interpreter) for 3.11, 3.12 and 3.13 where found (pyenv's versions too)."""
    found = []
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for version in ("3.11", "3.12", "3.13"):
        installed = sorted(str(p) for p in pyenv.glob(f"{version}.*/bin/python{version}"))
        candidates = [shutil.which(f"python{version}"), *installed]
        for candidate in candidates:
            if candidate and subprocess.run([candidate, "-c", ""], capture_output=True).returncode == 0:
                found.append((version, candidate))
                break
    return found


def venv_for(version: str, python: str, root: Path) -> str:
    """A venv with eventlog, eventlog-speedups and eventlog-fluent for that Python, made once
    and reused."""
    venv = root / ".nox" / f"bench-instructions-{version}"
    bin_python = venv / "bin" / "python"
    if not bin_python.exists():
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    # Also a venv made before a case needed a package: installed if an import fails.
    check = [str(bin_python), "-c", "import eventlog, eventlog_speedups._wires, eventlog_fluent"]
    if subprocess.run(check, capture_output=True).returncode != 0:
        subprocess.run(
            [
                str(bin_python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "-e",
                str(root),
                "-e",
                str(root / "plugins" / "eventlog_speedups"),
                "-e",
                str(root / "plugins" / "eventlog_fluent"),
            ],
            check=True,
        )
    return str(bin_python)


def table(rows: dict[str, dict[str, tuple[float, float]]], versions: list[str]) -> list[str]:
    """The markdown table; a case that was not run (``--cases``) has no rows."""
    header = "| path | " + " | ".join(f"{v} | x floor" for v in versions) + " |"
    lines = [header, "|---|" + "---|---|" * len(versions)]

    def line(label: str, value: dict[str, float]) -> None:
        cells = []
        for v in versions:
            floor = rows["floor"][v][0]
            cells.append(f"{value[v] / 1000:.1f}k | {value[v] / floor:.2f}x")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    line(CASES[0][0], {v: rows["floor"][v][0] for v in versions})
    if "stdlib" in rows:
        line(CASES[1][0] + ": caller", {v: rows["stdlib"][v][0] for v in versions})
        line(CASES[1][0] + ": listener", {v: rows["stdlib"][v][1] for v in versions})
        line(f"**{CASES[1][0]}: total**", {v: sum(rows["stdlib"][v]) for v in versions})
    for case, label in (
        ("eventlog", CASES[2][0]),
        ("python", CASES[3][0]),
        ("log_event", CASES[4][0]),
        ("spool", CASES[5][0]),
        ("log_event_fields", CASES[6][0]),
        ("ecs", CASES[7][0]),
        ("fluent", CASES[8][0]),
    ):
        if case not in rows:
            continue
        line(f"{label}: caller", {v: rows[case][v][0] for v in versions})
        line(f"{label}: worker", {v: rows[case][v][1] for v in versions})
        line(f"**{label}: total**", {v: sum(rows[case][v]) for v in versions})
    for label, part in PART_ROWS:
        if f"part-{part}" not in rows:
            continue
        line(label, {v: rows[f"part-{part}"][v][0] for v in versions})
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--python", action="append", help="an interpreter with eventlog installed")
    parser.add_argument(
        "--cases",
        help="comma-separated cases to run (floor is always run); the results file is not written",
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install valgrind (nox -s bench does it)")
    root = HERE.parent
    if args.python:
        chosen = [
            (
                subprocess.run(
                    [p, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip(),
                p,
            )
            for p in args.python
        ]
    else:
        chosen = [(v, venv_for(v, p, root)) for v, p in pythons()]
    rows: dict[str, dict[str, tuple[float, float]]] = {}
    full: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for version, python in chosen:
            full[version] = subprocess.run(
                [python, "-c", "import platform; print(platform.python_version())"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            cases = [(case, env) for _, case, env in CASES] + [(f"part-{p}", {}) for _, p in PART_ROWS]
            if args.cases:
                chosen_cases = {"floor", *args.cases.split(",")}
                cases = [(case, env) for case, env in cases if case in chosen_cases]
            for case, env in cases:
                print(f"python {full[version]}: {case} ...", file=sys.stderr, flush=True)
                rows.setdefault(case, {})[version] = measure(python, case, env, args.events, Path(tmp))
    versions = [v for v, _ in chosen]
    valgrind = subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout.strip()
    intro = textwrap.dedent(
        f"""\
        Instructions per event (callgrind, {args.events:,} calls, net of a run without the loop;
        {valgrind}; CPython {", ".join(full[v] for v in versions)}). Made with:
        `nox -s bench -- --instructions{"" if args.events == 20_000 else f" --events {args.events}"}`.
        Caller: the thread that logs; worker: eventlog's
        worker thread (for stdlib, the QueueListener's). Under the GIL both are the
        application's cost.
        """
    )
    out = [intro, *table(rows, versions), ""]
    text = "\n".join(out)
    print(text)
    if args.cases:
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
