// A real Fluent Forward server for eventlog's tests: FluentServer from @fluent-org/logger.
//
//   node fluent_server.js ENTRIES_FILE
//
// Listens on 127.0.0.1 (FLUENT_PORT, default 0: any free port) or on the Unix
// socket FLUENT_UNIX_PATH, prints {"port": N} (or {"path": P}) as one line on
// stdout once it accepts connections, and appends every entry it receives to
// ENTRIES_FILE as one JSON line: {"tag", "time": {"epoch", "nano"} | seconds, "record"},
// and every message to ENTRIES_FILE.messages: {"mode", "tag", "entries", "option"}.
//
// Options (environment):
//   FLUENT_SHARED_KEY     require the HELO/PING/PONG handshake with this shared key
//   FLUENT_USERS          JSON {"user": "password"}: also require user name and password
//   FLUENT_TLS_CERT/KEY   PEM files: serve TLS with this certificate and key
//   FLUENT_ACK=0          never answer the "chunk" option with an ack
// FluentServer always answers a "chunk" with an ack otherwise.
"use strict";

const fs = require("fs");
const path = require("path");
const logger = path.join(__dirname, "node", "node_modules", "@fluent-org", "logger");
const { FluentServer } = require(logger);
const protocol = require(path.join(logger, "build", "src", "protocol"));

const out = fs.openSync(process.argv[2], "a");
const messagesOut = fs.openSync(process.argv[2] + ".messages", "a");
const env = process.env;

// Also record how each message came: its mode and options (size, chunk, compressed).
// FluentServer looks parseTransport up on the module at each call, so wrapping it works.
const parseTransport = protocol.parseTransport;
protocol.parseTransport = message => {
  const mode = protocol.isCompressedPackedForwardMode(message)
    ? "CompressedPackedForward"
    : protocol.isPackedForwardMode(message)
      ? "PackedForward"
      : protocol.isForwardMode(message)
        ? "Forward"
        : "Message";
  const parsed = parseTransport(message);
  const option = (mode === "Message" ? message[3] : message[2]) || {};
  fs.writeSync(
    messagesOut,
    JSON.stringify({ mode, tag: parsed.tag, entries: parsed.entries.length, option }) + "\n",
  );
  return parsed;
};

// Open client connections, so a stop can say goodbye to them at once.
const sockets = new Set();

class RecordingServer extends FluentServer {
  async handleConnection(socket) {
    // FluentServer writes an ack before it emits the entries of that message.
    // Deferring the ack to the next turn of the event loop makes the entries
    // reach the file before the client can see their ack, as a real Fluentd
    // buffers before it acks; otherwise a kill -9 between the two would lose
    // acknowledged events.  HELO and PONG go out at once: after a refusing PONG
    // FluentServer destroys the socket.
    const write = socket.write.bind(socket);
    socket.write = (data, ...rest) => {
      if (!isAck(data)) return write(data, ...rest);
      if (env.FLUENT_ACK === "0") return true;
      setImmediate(() => {
        if (!socket.destroyed && !socket.writableEnded) write(data, ...rest);
      });
      return true;
    };
    socket.on("error", () => socket.destroy()); // a client that vanished: not our concern
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    return super.handleConnection(socket);
  }

  onEntry(tag, time, record) {
    const when = typeof time === "number" ? time : { epoch: time.epoch, nano: time.nano };
    // writeSync: a line is in the file before the next message is read, and survives kill -9.
    fs.writeSync(out, JSON.stringify({ tag, time: when, record }) + "\n");
    super.onEntry(tag, time, record);
  }
}

// An ack is the msgpack map {"ack": chunk}: fixmap of 1 (0x81), fixstr "ack" (0xa3 a c k).
function isAck(data) {
  return Buffer.isBuffer(data) || data instanceof Uint8Array
    ? data[0] === 0x81 && data[1] === 0xa3 && data[2] === 0x61 && data[3] === 0x63 && data[4] === 0x6b
    : false;
}

const options = {
  listenOptions: env.FLUENT_UNIX_PATH
    ? { path: env.FLUENT_UNIX_PATH }
    : { host: "127.0.0.1", port: Number(env.FLUENT_PORT || 0) },
};
if (env.FLUENT_SHARED_KEY) {
  const users = env.FLUENT_USERS ? JSON.parse(env.FLUENT_USERS) : null;
  options.security = {
    serverHostname: "fluent-test-server",
    sharedKey: env.FLUENT_SHARED_KEY,
    authorize: users !== null,
    userDict: users || {},
  };
}
if (env.FLUENT_TLS_CERT) {
  options.tlsOptions = {
    cert: fs.readFileSync(env.FLUENT_TLS_CERT),
    key: fs.readFileSync(env.FLUENT_TLS_KEY),
  };
}

const server = new RecordingServer(options);
server.listen().then(() => {
  const where = env.FLUENT_UNIX_PATH ? { path: env.FLUENT_UNIX_PATH } : { port: server.port };
  process.stdout.write(JSON.stringify(where) + "\n");
});
// A graceful stop: stop listening, end every connection (pending acks go out
// first), exit.  server.close() alone waits for the clients to hang up, which
// an idle client never does; every entry is already in the file (writeSync).
process.on("SIGTERM", () => {
  server.close().then(() => process.exit(0));
  for (const socket of sockets) socket.end();
  setTimeout(() => process.exit(0), 50).unref();
});
