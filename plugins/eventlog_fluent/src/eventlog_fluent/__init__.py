"""eventlog-fluent: the Fluent Forward protocol transport and the msgpack format for eventlog."""
