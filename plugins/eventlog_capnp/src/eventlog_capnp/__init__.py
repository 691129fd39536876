"""eventlog-capnp: Cap'n Proto format for eventlog, ready for ClickHouse."""
