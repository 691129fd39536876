"""eventlog-redis-streams: an eventlog transport that XADDs each batch to a Redis stream."""

from eventlog_redis_streams.plugin import RedisStreamsTransport

__all__ = ["RedisStreamsTransport"]
