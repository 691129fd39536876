from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

def setup(item_bytes: int, value_bytes: int, event_type: type | None = None) -> None: ...
def event_bytes(event: Any) -> int: ...
def setup_handle(
    *,
    cls: type,
    python_handle: Callable[[Any, Any], bool],
    record_type: type,
    deque_type: type,
    own_loggers: frozenset[str],
    worker_threads: set[int],
    immutable: frozenset[Any],
    kept: frozenset[Any],
    standard: frozenset[str],
    init_len: int,
    last_init_key: str,
    item_bytes: int,
    arg_bytes: int,
    small_bytes: int,
    time_min: float,
    time_max: float,
    api_namespace: dict[str, Any],
    current: Callable[[], Any],
    context_var: ContextVar[Any] | None,
    trace_var: ContextVar[Any] | None,
) -> Any: ...
def setup_submit_event(
    *, cls: type, python_submit_event: Callable[[Any, Any], None], small_bytes: int, deque_type: type
) -> Any: ...
def setup_event(
    *,
    cls: type,
    params: tuple[str, ...],
    namespace: dict[str, Any],
    active: dict[int, Any],
    current_thread: Callable[[], Any],
    current: Callable[[], Any],
    context_var: ContextVar[Any] | None,
    trace_var: ContextVar[Any] | None,
    kept: frozenset[Any],
    only_this_call: int,
    time_ns: Callable[[], int],
    python_init: Callable[..., None],
) -> None: ...
def event_compiled(cls: type) -> bool: ...
def refcount(value: object) -> int: ...
def retrack(items: list[Any]) -> None: ...
def setup_log_event(
    *,
    python_log_event: Callable[[Any], None],
    api_namespace: dict[str, Any],
    get_pipeline: Callable[[], Any],
    failed: Callable[[], None],
    module: str,
) -> Callable[[Any], None]: ...
