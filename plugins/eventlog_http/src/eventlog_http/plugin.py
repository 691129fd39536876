"""Hook implementations of eventlog-http (registered through the entry point group 'eventlog')."""
