"""eventlog-fluent: the Fluent Forward protocol transport and the msgpack format for eventlog.

Installed, it registers the formatter ``msgpack`` and the transport ``fluent``
(see :mod:`eventlog_fluent.plugin`); applications only name them in settings.
"""

from eventlog_fluent.msgpack_format import MsgpackFormatter
from eventlog_fluent.transport import FluentTransport

__all__ = ["FluentTransport", "MsgpackFormatter"]
