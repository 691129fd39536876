"""eventlog-http: HTTP POST transport for eventlog."""
