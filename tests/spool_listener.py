"""A listener process for the spool tests: keeps every line in a file, acknowledges batches.

``python tests/spool_listener.py PORT FILE``: accepts connections on
127.0.0.1:PORT; each connection sends JSON lines and ends a batch with an empty
line, which is answered with ``ok`` once the batch is written to FILE.  The
tests kill it with SIGKILL, as a crash would.
"""

from __future__ import annotations

import socket
import sys
import threading


def serve(conn: socket.socket, out: object, lock: threading.Lock) -> None:
    buffer = b""
    with conn:
        while True:
            try:
                chunk = conn.recv(1 << 16)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while b"\n\n" in buffer or buffer.startswith(b"\n"):
                if buffer.startswith(b"\n"):
                    body, buffer = b"", buffer[1:]
                else:
                    cut = buffer.index(b"\n\n")
                    body, buffer = buffer[: cut + 1], buffer[cut + 2 :]
                with lock:
                    out.write(body)  # type: ignore[attr-defined]
                    out.flush()  # type: ignore[attr-defined]
                conn.sendall(b"ok\n")


def _ends_with_newline(path: str) -> bool:
    with open(path, "rb") as data:
        data.seek(-1, 2)
        return data.read(1) == b"\n"


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    server = socket.create_server(("127.0.0.1", port))
    lock = threading.Lock()
    with open(path, "ab") as out:
        if out.tell() and not _ends_with_newline(path):
            out.write(b"\n")  # a line cut short by the previous listener's death stays alone
        print("ready", flush=True)
        while True:
            conn, _ = server.accept()
            threading.Thread(target=serve, args=(conn, out, lock), daemon=True).start()


if __name__ == "__main__":
    main()
