# The eventlog event as Cap'n Proto, for ClickHouse's CapnProto input format.
# Generated from eventlog._records.schema.FIELDS (eventlog_capnp.schema.render_capnp); do not
# edit.  `eventlog capnp schema --output DIR` writes it into the server's folder.
# Insert into the table of `eventlog capnp ddl` with the setting
#   format_schema='event:Event'

@0xe7a35c0d9b214f86;

struct Event {
  id @0           :Text;  # unique, time-ordered event id; lets receivers drop duplicates
  tstamp @1       :Int64;  # milliseconds since the epoch, UTC
  action @2       :Text;  # the event's name, dotted general to specific
  target @3       :Text;  # the object of the event
  tgType @4       :Text;  # the type of the target
  level @5        :Int64;  # Python logging level number (TRACE is 5)
  levelName @6    :Text;  # the level's name, e.g. INFO
  message @7      :Text;  # log message, or the (redacted) HTTP POST body
  tags @8         :List(Text);  # free-form strings
  fieldsInt @9    :List(IntField);  # str -> int|float|str, kept apart by value type: the integer values
  fieldsFloat @10 :List(FloatField);  # str -> int|float|str, kept apart by value type: the float values
  fieldsStr @11   :List(StrField);  # str -> int|float|str, kept apart by value type: the string values
  metrics @12     :List(FloatField);  # str -> number, from metrics= or extra=
  user @13        :Text;  # the current user (request context)
  session @14     :Text;  # the current session (request context)
  reqId @15       :Text;  # the current request id (request context)
  site @16        :Text;  # EVENTLOG_SITE
  cluster @17     :Text;  # EVENTLOG_CLUSTER
  host @18        :Text;  # host name of the process that made the event
  pid @19         :Int64;  # process id of the process that made the event
  thread @20      :Text;  # name of the thread that made the event
  codeFile @21    :Text;  # source file of the call (log_code=True, log records)
  codeLine @22    :Int64;  # source line of the call
  codeFunc @23    :Text;  # function of the call
  excInfo @24     :Text;  # JSON text: exception type, value and stack
  traceId @25     :Text;  # OpenTelemetry trace id of the caller's span, 32 hex digits
  spanId @26      :Text;  # OpenTelemetry span id of the caller's span, 16 hex digits
  traceFlags @27  :Text;  # W3C trace flags of the caller's span, 2 hex digits (01: sampled)
}

struct IntField {
  key   @0 :Text;
  value @1 :Int64;
}

struct FloatField {
  key   @0 :Text;
  value @1 :Float64;
}

struct StrField {
  key   @0 :Text;
  value @1 :Text;
}
