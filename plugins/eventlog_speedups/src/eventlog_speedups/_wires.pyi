from collections.abc import Callable
from typing import Any

def setup(
    record_type: type,
    actions: dict[str, str],
    level_names: dict[int, str],
    init_keys: list[str],
    standard: frozenset[str],
    special: frozenset[str],
    empty_context: tuple[Any, ...],
    max_message: int,
    max_value: int,
    wire_names: dict[str, str],
    event_type: type | None = None,
) -> None: ...
def wires(
    items: list[Any],
    static: dict[str, Any],
    with_context: bool,
    node: str,
    next_seq: Callable[[], int],
) -> tuple[list[dict[str, Any] | None], int]: ...
def lines(
    items: list[Any],
    static: dict[str, Any],
    with_context: bool,
    node: str,
    next_seq: Callable[[], int],
    stamp: tuple[str, ...] | None,
) -> tuple[bytes, list[Any], list[Any], list[Any], list[tuple[int, int]], list[Any]]: ...
def json_number(value: object) -> bytes | None: ...
def iso_text(millis: int) -> str: ...
def plain_copy(values: object) -> dict[str, Any] | None: ...
def text_bytes(values: object) -> int: ...
