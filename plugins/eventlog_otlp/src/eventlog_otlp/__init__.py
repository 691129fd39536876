"""eventlog-otlp: send events and log records to OpenTelemetry backends over OTLP/HTTP."""
