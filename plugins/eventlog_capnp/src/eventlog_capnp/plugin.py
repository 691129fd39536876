"""Hook implementations of eventlog-capnp (registered through the entry point group 'eventlog')."""
