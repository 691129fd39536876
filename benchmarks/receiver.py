"""The benchmark's receiver: a separate process on loopback that counts what arrives.

``python benchmarks/receiver.py json|msgpack|http|nats|otlp [--defer]`` prints ``<data port> <control port>``
on its first line, then serves until its standard input closes.

* data port: JSON lines over TCP (``json``), or fluentd Forward messages in
  msgpack (``msgpack``: Message, Forward and PackedForward modes, with acks when
  the client asks for them), or ``http``: POSTs of JSON lines or a JSON array,
  each answered 200; or ``nats``: a nats-server with JetStream (a stream ``BENCH`` on
  the subject ``bench``, stored in a temporary folder) on the data port, counting
  what the stream stores (see serve_nats); or ``otlp``: OTLP/HTTP log exports
  (protobuf or JSON), decoded with the official ``opentelemetry-proto`` classes
  and counted by log record, each answered 200 with an empty
  ExportLogsServiceResponse (see read_otlp).  With
  ``--defer`` the data socket is bound but not listening, so clients are refused
  (the "receiver is down" case) until the ``listen`` command.
* control port: one command per line, one answer per line:
  ``reset [count|latency|ids]`` zero the counters and choose what to record;
  ``wait N SECONDS`` -> ``<count> <time_ns of the last arrival>`` once N events
  arrived or the time passed; ``latency`` -> JSON ``{"n", "p50_ms", "p99_ms"}``;
  ``ids`` -> JSON ``{"lines", "distinct"}``; ``listen``.

Latency is arrival time minus the ``sent_ns`` value the contender puts into
each event's ``extra=`` (both read from the same clock, ``time.time_ns``).
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
from typing import Any

SENT = re.compile(rb'"sent_ns"\s*:\s*"?(\d+)')
EVENT_ID = re.compile(rb'"id"\s*:\s*"([0-9a-f]+)"')


class Counter:
    """What arrived: a count, the last arrival time, and per-mode extras."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.reset("count")

    def reset(self, mode: str) -> None:
        with self.cond:
            self.mode = mode
            self.count = 0
            self.last_ns = 0
            self.latencies: list[int] = []
            self.ids: set[bytes] = set()

    def add(self, n: int, now: int) -> None:
        with self.cond:
            self.count += n
            self.last_ns = now
            self.cond.notify_all()


def _find_sent(value: Any) -> int | None:
    """``sent_ns`` anywhere in a decoded msgpack record (top level or one map deep)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("sent_ns", b"sent_ns"):
                return int(item)
        for item in value.values():
            if isinstance(item, dict):
                found = _find_sent(item)
                if found is not None:
                    return found
    return None


def read_json_lines(conn: socket.socket, counter: Counter) -> None:
    tail = b""
    while True:
        try:
            chunk = conn.recv(1 << 20)
        except OSError:
            return
        if not chunk:
            return
        now = time.time_ns()
        n = chunk.count(b"\n")
        if counter.mode != "count" and n:
            data = tail + chunk
            cut = data.rfind(b"\n")
            lines, tail = data[:cut].split(b"\n"), data[cut + 1 :]
            with counter.cond:
                if counter.mode == "latency":
                    for line in lines:
                        found = SENT.search(line)
                        if found:
                            counter.latencies.append(now - int(found.group(1)))
                elif counter.mode == "ids":
                    for line in lines:
                        found = EVENT_ID.search(line)
                        if found:
                            counter.ids.add(found.group(1))
        elif n:
            tail = b""
        if n:
            counter.add(n, now)


def read_forward(conn: socket.socket, counter: Counter) -> None:
    import msgpack

    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    while True:
        try:
            chunk = conn.recv(1 << 20)
        except OSError:
            return
        if not chunk:
            return
        now = time.time_ns()
        unpacker.feed(chunk)
        n = 0
        records: list[Any] = []
        for message in unpacker:
            if not isinstance(message, list) or len(message) < 2:
                continue
            entries = message[1]
            option = message[-1] if len(message) > 2 and isinstance(message[-1], dict) else {}
            if isinstance(entries, list):  # Forward mode: [tag, [[time, record], ...], option]
                n += len(entries)
                records.extend(e[1] for e in entries if isinstance(e, list) and len(e) > 1)
            elif isinstance(entries, bytes):  # PackedForward: a msgpack stream of entries
                for entry in _unpack_all(entries):
                    n += 1
                    if isinstance(entry, list) and len(entry) > 1:
                        records.append(entry[1])
            else:  # Message mode: [tag, time, record, option]
                n += 1
                records.append(message[2] if len(message) > 2 else None)
            chunk_id = option.get("chunk") if isinstance(option, dict) else None
            if chunk_id is not None:
                conn.sendall(msgpack.packb({"ack": chunk_id}))
        if counter.mode == "latency":
            with counter.cond:
                for record in records:
                    sent = _find_sent(record)
                    if sent is not None:
                        counter.latencies.append(now - sent)
        if n:
            counter.add(n, now)


def read_http(conn: socket.socket, counter: Counter) -> None:
    """HTTP/1.1 POSTs (keep-alive) whose bodies are JSON lines or one JSON array; 200 each."""
    buffer = b""
    while True:
        while b"\r\n\r\n" not in buffer:
            try:
                chunk = conn.recv(1 << 20)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(buffer) < length:
            try:
                chunk = conn.recv(1 << 20)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
        body, buffer = buffer[:length], buffer[length:]
        now = time.time_ns()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        if body.startswith(b"["):
            lines = [json.dumps(item).encode() for item in json.loads(body)]
        else:
            lines = [line for line in body.split(b"\n") if line.strip()]
        if counter.mode == "latency":
            with counter.cond:
                for line in lines:
                    found = SENT.search(line)
                    if found:
                        counter.latencies.append(now - int(found.group(1)))
        elif counter.mode == "ids":
            with counter.cond:
                for line in lines:
                    found = EVENT_ID.search(line)
                    if found:
                        counter.ids.add(found.group(1))
        if lines:
            counter.add(len(lines), now)


def read_otlp(conn: socket.socket, counter: Counter) -> None:
    """OTLP/HTTP exports (keep-alive): every log record counted, ``sent_ns`` and
    ``log.record.uid`` read from its attributes.  The official classes decode, so
    eventlog-otlp and the OpenTelemetry SDK's exporter are read by the same code."""
    from google.protobuf import json_format
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"
    buffer = b""
    while True:
        while b"\r\n\r\n" not in buffer:
            try:
                chunk = conn.recv(1 << 20)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get(b"content-length", b"0"))
        while len(buffer) < length:
            try:
                chunk = conn.recv(1 << 20)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
        body, buffer = buffer[:length], buffer[length:]
        now = time.time_ns()
        conn.sendall(answer)
        if headers.get(b"content-encoding") == b"gzip":
            import gzip

            body = gzip.decompress(body)
        if b"json" in headers.get(b"content-type", b""):
            request = json_format.Parse(body, ExportLogsServiceRequest(), ignore_unknown_fields=True)
        else:
            request = ExportLogsServiceRequest.FromString(body)
        records = [r for rl in request.resource_logs for sl in rl.scope_logs for r in sl.log_records]
        if counter.mode in ("latency", "ids"):
            with counter.cond:
                for record in records:
                    for kv in record.attributes:
                        if kv.key == "sent_ns" and counter.mode == "latency":
                            value = kv.value
                            sent = value.int_value if value.HasField("int_value") else int(value.double_value)
                            counter.latencies.append(now - sent)
                        elif kv.key == "log.record.uid" and counter.mode == "ids":
                            counter.ids.add(kv.value.string_value.encode())
        if records:
            counter.add(len(records), now)


def _unpack_all(data: bytes) -> list[Any]:
    import msgpack

    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(data)
    return list(unpacker)


def accept_loop(server: socket.socket, proto: str, counter: Counter) -> None:
    reader = {"msgpack": read_forward, "http": read_http, "otlp": read_otlp}.get(proto, read_json_lines)
    while True:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        threading.Thread(target=reader, args=(conn, counter), daemon=True).start()


def percentile(values: list[int], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] / 1e6


def control_loop(conn: socket.socket, counter: Counter, listen: Any) -> None:
    stream = conn.makefile("rwb", buffering=0)
    for raw in stream:
        words = raw.decode().split()
        if not words:
            continue
        command = words[0]
        if command == "reset":
            counter.reset(words[1] if len(words) > 1 else "count")
            answer = "ok"
        elif command == "wait":
            want, seconds = int(words[1]), float(words[2])
            deadline = time.monotonic() + seconds
            with counter.cond:
                while counter.count < want and time.monotonic() < deadline:
                    counter.cond.wait(max(0.0, deadline - time.monotonic()))
                answer = f"{counter.count} {counter.last_ns}"
        elif command == "latency":
            with counter.cond:
                lat = list(counter.latencies)
            answer = json.dumps(
                {"n": len(lat), "p50_ms": percentile(lat, 0.5), "p99_ms": percentile(lat, 0.99)}
                if lat
                else {"n": 0}
            )
        elif command == "ids":
            with counter.cond:
                answer = json.dumps({"lines": counter.count, "distinct": len(counter.ids)})
        elif command == "listen":
            listen()
            answer = "ok"
        else:
            answer = f"error unknown command {command!r}"
        stream.write(answer.encode() + b"\n")


def serve_nats(counter: Counter) -> tuple[int, Any]:
    """Start nats-server with JetStream and count what the stream ``BENCH`` stores.

    In ``count`` mode the stream's message count is read every 5 ms (as cheap as
    counting newlines: no Python work per message); for ``latency`` and ``ids``
    a subscriber on ``bench`` reads each message as the server routes it.
    Returns the server's port and a function that stops it.
    """
    import asyncio
    import shutil
    import subprocess
    import tempfile

    import nats
    from nats.js.api import StreamConfig

    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    store = tempfile.mkdtemp(prefix="eventlog-bench-nats-")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [binary, "-js", "-sd", store, "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def on_message(msg: Any) -> None:
        now = time.time_ns()
        pattern = SENT if counter.mode == "latency" else EVENT_ID
        found = pattern.search(msg.data)
        with counter.cond:
            if found and counter.mode == "latency":
                counter.latencies.append(now - int(found.group(1)))
            elif found:
                counter.ids.add(found.group(1))
        counter.add(1, now)

    async def quiet(error: Exception) -> None:
        pass  # refused while the server starts, reset when it is killed: expected

    async def serve() -> None:
        for _ in range(200):  # the server needs a moment to listen
            try:
                nc = await nats.connect(f"nats://127.0.0.1:{port}", connect_timeout=1, error_cb=quiet)
                break
            except Exception:
                await asyncio.sleep(0.05)
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="BENCH", subjects=["bench"]))
        ready.set()
        stored, subscribed = 0, False
        while True:
            if counter.mode != "count":
                if not subscribed:
                    subscribed = True
                    await nc.subscribe("bench", cb=on_message, pending_msgs_limit=-1)
                await asyncio.sleep(0.05)
                continue
            total = (await js.stream_info("BENCH")).state.messages
            if total > stored:
                counter.add(total - stored, time.time_ns())
                stored = total
            await asyncio.sleep(0.005)

    threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True).start()
    if not ready.wait(30):
        server.kill()
        raise SystemExit("nats-server did not start")

    def stop() -> None:
        server.kill()
        server.wait()
        shutil.rmtree(store, ignore_errors=True)

    return port, stop


def main() -> None:
    proto = sys.argv[1]
    defer = "--defer" in sys.argv
    counter = Counter()
    data = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    data.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    data.bind(("127.0.0.1", 0))
    listening = threading.Event()
    stop_nats = None
    if proto == "nats":
        data_port, stop_nats = serve_nats(counter)
        listening.set()  # the server listens; --defer does not apply

    def listen() -> None:
        if not listening.is_set():
            listening.set()
            data.listen(64)
            threading.Thread(target=accept_loop, args=(data, proto, counter), daemon=True).start()

    if not defer:
        listen()
    control = socket.create_server(("127.0.0.1", 0))

    def serve_control() -> None:
        while True:
            conn, _ = control.accept()
            threading.Thread(target=control_loop, args=(conn, counter, listen), daemon=True).start()

    threading.Thread(target=serve_control, daemon=True).start()
    port = data_port if stop_nats is not None else data.getsockname()[1]
    print(port, control.getsockname()[1], flush=True)
    sys.stdin.read()  # the benchmark closes our stdin when it is done with us
    if stop_nats is not None:
        stop_nats()


if __name__ == "__main__":
    main()
