"""A test plugin installed as a real distribution: transport 'memo' appends to a file."""

from __future__ import annotations

from eventlog._core.options import parse_path
from eventlog.plugin import Option, PluginContext, Transport, TransportSpec, hookimpl


class MemoTransport(Transport):
    def __init__(self, path: str) -> None:
        self.path = path

    def open(self) -> None:
        pass

    def send(self, batch):  # type: ignore[no-untyped-def]
        with open(self.path, "ab") as f:
            f.write(b"".join(r.payload for r in batch))

    def close(self) -> None:
        pass


def _memo(context: PluginContext) -> Transport:
    return MemoTransport(context.options["path"])


@hookimpl
def eventlog_transports() -> list[TransportSpec]:
    return [
        TransportSpec(
            "memo", _memo, "appends payloads to a file", (Option("path", parse_path, None, "file"),)
        )
    ]
