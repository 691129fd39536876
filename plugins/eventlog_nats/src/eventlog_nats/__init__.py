"""eventlog-nats: NATS JetStream transport for eventlog."""
