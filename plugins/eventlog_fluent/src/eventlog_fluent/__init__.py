"""eventlog-fluent: Fluentd / Fluent Bit Forward protocol transport and msgpack format for eventlog."""
