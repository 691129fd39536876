"""A loguru sink: each message goes to eventlog as a log record.

::

    from loguru import logger
    import eventlog.loguru

    logger.add(eventlog.loguru.sink, format="{message}", level="INFO")
    logger.bind(user_id=7, tags=["shop"]).info("order {order} paid", order="A-7")

arrives as ``message="order A-7 paid"``, ``fields={"order": "A-7"}``,
``metrics={"user_id": 7}``, ``tags=["shop"]``: the ``extra`` dict (from
``bind()``, ``contextualize()`` and the call's keyword arguments) is mapped as
:func:`eventlog._api.bridge.sort_pairs` says (str -> fields, int/float -> metrics,
bool -> fields as 1/0, ``tags`` -> tags, anything else -> fields, converted to
text in the caller and counted).  The level (``record["level"].no`` and its
name), the exception, the file, line, function, thread name, time and the
module's name (the logger name, target) come from loguru's record.

``format="{message}"`` keeps loguru from formatting a line that eventlog does
not use.  Do not add ``enqueue=True``: eventlog already queues, and the sink
must run in the logging thread to see its request context.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventlog._api import bridge
from eventlog._engine.pipeline import Pipeline

if TYPE_CHECKING:
    import loguru


class Sink:
    """A loguru sink feeding an eventlog pipeline (the default one unless ``pipeline``).

    ``logger.add(Sink(pipeline=my_pipeline))``; :data:`sink` is the one for the
    default pipeline.  Never raises into the application.
    """

    def __init__(self, *, pipeline: Pipeline | None = None) -> None:
        self.pipeline = pipeline

    def __call__(self, message: loguru.Message) -> None:
        try:
            record = message.record
            level = record["level"]
            exception = record["exception"]
            fields, metrics, tags = bridge.sort_pairs(record["extra"])
            bridge.submit(
                self.pipeline,
                name=record["name"],
                levelno=level.no,
                levelname=level.name,
                message=record["message"],
                created=record["time"].timestamp(),
                pathname=record["file"].path,
                lineno=record["line"],
                func=record["function"],
                thread=record["thread"].name,
                exc_info=bridge.exc_info_of(exception) if exception is not None else None,
                fields=fields,
                metrics=metrics,
                tags=tags,
            )
        except Exception:  # the application must never see eventlog's failures
            bridge.report_failure("loguru")

    def __repr__(self) -> str:  # loguru names the sink by it in its own messages
        return "eventlog.loguru.sink" if self.pipeline is None else f"eventlog.loguru.Sink({self.pipeline!r})"


#: The sink for eventlog's default pipeline: ``logger.add(eventlog.loguru.sink)``.
sink = Sink()

__all__ = ["Sink", "sink"]
