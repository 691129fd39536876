from collections.abc import Callable, Mapping, Sequence
from typing import Any

def setup(
    log_record: Callable[[Mapping[str, Any]], bytes],
    exception_parts: Callable[[str], tuple[str | None, str | None, str | None]],
    trace_bytes: Callable[[Mapping[str, Any]], tuple[bytes, bytes, int] | None],
    reserved: frozenset[str],
    user_prefix: str,
    names: tuple[str, ...],
    event_scope: str,
    root_scope: str,
    wire_names: dict[str, str],
) -> None: ...
def log_record(wire: Mapping[str, Any]) -> bytes: ...
def payload(
    scopes: dict[str, bytes],
    last_resource: list[Any],
    format: Callable[[dict[str, Any]], bytes],
    wire: dict[str, Any],
) -> bytes: ...
def request_body(records: Sequence[Any], resource: Callable[[bytes], bytes]) -> bytes | None: ...
