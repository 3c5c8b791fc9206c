// Drives the centrifuge JavaScript SDK through a network failure and its recovery, for pytest
// (tests/sdk/test_js_recovery.py).
//
//   node recovery.mjs WS_URL JSON_ARGS
//
// JSON_ARGS: {token, channel, subscription?, protobuf?, timeout_ms?}; `subscription` holds
// options for newSubscription (e.g. {"tagsFilter": {...}} or {"delta": "fossil"}); `protobuf`
// true runs the SDK's protobuf build (`centrifuge/build/protobuf`, the `centrifuge-protobuf`
// subprotocol), whose publications carry bytes: they are printed decoded from JSON, or as
// `data_b64` when they are not JSON. Every event is one JSON line on stdout
// ({"event": "...", ...}); the test steers the run with lines on stdin:
//
//   kill    the network fails: the live WebSocket is terminated (its TCP socket destroyed,
//           no close frame, so both ends see the connection drop) and every new connection
//           attempt fails the same way until `heal`. Prints "killed" once the SDK noticed.
//   heal    the network is back: the SDK's next reconnect attempt reaches the server.
//   finish  unsubscribe, disconnect and exit 0, after printing "wire": the bytes of every frame
//           the SDK received ({bytes, frames}) and the subscription's deltaStats().
//
// Exit codes: 0 finished, 1 failed (an "error" event, and stderr), 2 the overall timeout
// (JSON_ARGS.timeout_ms, default 20000) fired. Nothing here can hang past that timeout.

import net from 'node:net';
import readline from 'node:readline';
import WebSocket from 'ws';

const [url, rawArgs = '{}'] = process.argv.slice(2);

function emit(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

function fail(message) {
  emit('error', { message });
  process.stderr.write(`recovery: ${message}\n`);
  process.exit(1);
}

if (!url) {
  fail('usage: node recovery.mjs WS_URL JSON_ARGS');
}

let args;
try {
  args = JSON.parse(rawArgs);
} catch (err) {
  fail(`JSON_ARGS is not JSON: ${err.message}`);
}

const { Centrifuge } = await import(args.protobuf ? 'centrifuge/build/protobuf' : 'centrifuge');

const timeoutMs = args.timeout_ms ?? 20000;
setTimeout(() => {
  emit('timeout', { after_ms: timeoutMs });
  process.stderr.write(`recovery: timed out after ${timeoutMs} ms\n`);
  process.exit(2);
}, timeoutMs).unref();

// While the network is "down", connection attempts go to this listener, which drops every
// TCP connection as soon as it is accepted: the SDK sees a transport failure, as it would
// with the server unreachable.
const blackhole = net.createServer((socket) => socket.destroy());
await new Promise((resolve) => blackhole.listen(0, '127.0.0.1', resolve));
blackhole.unref();
const deadUrl = `ws://127.0.0.1:${blackhole.address().port}/connection/websocket`;

let partitioned = false;
let live = null;
const wire = { bytes: 0, frames: 0 };

class FlakyWebSocket extends WebSocket {
  constructor(target, ...rest) {
    super(partitioned ? deadUrl : target, ...rest);
    emit('transport_open', { partitioned, protocols: rest[0] ?? null });
    live = this;
    this.on('message', (data) => {
      wire.bytes += data.byteLength ?? data.length;
      wire.frames += 1;
    });
  }
}

function payload(data) {
  // The protobuf build hands the bytes published; the JSON build the decoded JSON.
  if (!(data instanceof Uint8Array)) return { data };
  try {
    return { data: JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data)) };
  } catch {
    return { data_b64: Buffer.from(data).toString('base64') };
  }
}

const client = new Centrifuge(url, {
  websocket: FlakyWebSocket,
  token: args.token,
  minReconnectDelay: 50,
  maxReconnectDelay: 200,
  timeout: 3000,
});
client.on('connecting', (ctx) => emit('connecting', { code: ctx.code, reason: ctx.reason }));
client.on('connected', (ctx) => emit('connected', { client: ctx.client }));
client.on('disconnected', (ctx) => emit('disconnected', { code: ctx.code, reason: ctx.reason }));
client.on('error', (ctx) => emit('client_error', { type: ctx.type, message: String(ctx.error?.message ?? ctx.error) }));

const sub = client.newSubscription(args.channel, args.subscription ?? {});
sub.on('subscribing', (ctx) => emit('subscribing', { code: ctx.code, reason: ctx.reason }));
sub.on('subscribed', (ctx) =>
  emit('subscribed', {
    channel: ctx.channel,
    recoverable: ctx.recoverable,
    positioned: ctx.positioned,
    wasRecovering: ctx.wasRecovering,
    recovered: ctx.recovered,
    hasRecoveredPublications: ctx.hasRecoveredPublications,
    streamPosition: ctx.streamPosition ?? null,
  }),
);
sub.on('unsubscribed', (ctx) => emit('unsubscribed', { code: ctx.code, reason: ctx.reason }));
sub.on('error', (ctx) => emit('subscription_error', { type: ctx.type, message: String(ctx.error?.message ?? ctx.error) }));
sub.on('publication', (ctx) =>
  emit('publication', { ...payload(ctx.data), offset: ctx.offset ?? null, ...(ctx.tags && Object.keys(ctx.tags).length ? { tags: ctx.tags } : {}) }),
);

function once(emitter, name) {
  return new Promise((resolve) => emitter.once(name, resolve));
}

async function kill() {
  partitioned = true;
  const noticed = once(sub, 'subscribing');
  // terminate() destroys the TCP socket without a closing handshake: a network failure.
  live.terminate();
  await noticed;
  emit('killed', { state: client.state });
}

async function finish() {
  emit('wire', { ...wire, delta: sub.deltaStats() });
  const gone = once(sub, 'unsubscribed');
  sub.unsubscribe();
  await gone;
  const done = once(client, 'disconnected');
  client.disconnect();
  await done;
  emit('done');
  process.exit(0);
}

const commands = {
  kill,
  heal: async () => {
    partitioned = false;
    emit('healed');
  },
  finish,
};

// Commands run one at a time, in the order they arrive.
let queue = Promise.resolve();
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const command = commands[line.trim()];
  if (!command) {
    fail(`unknown command ${JSON.stringify(line)}; known: ${Object.keys(commands).join(', ')}`);
  }
  queue = queue.then(command).catch((err) => fail(`${line.trim()}: ${err?.stack ?? err}`));
});

client.connect();
sub.subscribe();
try {
  await sub.ready(5000);
} catch (err) {
  fail(`subscribe: ${JSON.stringify(err)}`);
}
emit('ready');
