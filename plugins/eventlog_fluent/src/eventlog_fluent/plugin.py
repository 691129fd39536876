"""Hook implementations of eventlog-fluent (registered through the entry point group 'eventlog')."""
