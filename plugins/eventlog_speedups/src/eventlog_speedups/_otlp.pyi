from collections.abc import Callable, Mapping
from typing import Any

def setup(
    log_record: Callable[[Mapping[str, Any]], bytes],
    exception_parts: Callable[[str], tuple[str | None, str | None, str | None]],
    trace_bytes: Callable[[Mapping[str, Any]], tuple[bytes, bytes, int] | None],
    reserved: frozenset[str],
    user_prefix: str,
    names: tuple[str, ...],
) -> None: ...
def log_record(wire: Mapping[str, Any]) -> bytes: ...
