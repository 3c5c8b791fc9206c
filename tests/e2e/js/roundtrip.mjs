// Drives the centrifuge JavaScript SDK under Node against a roomcast server, for pytest.
//
//   node roundtrip.mjs WS_URL SCENARIO [JSON_ARGS]
//
// WS_URL is the client endpoint (ws://HOST:PORT/connection/websocket). Every event is one JSON
// line on stdout ({"event": "...", ...}); the test reads them as they come, so it can act in the
// middle of a scenario (e.g. publish from another client once "ready" is printed).
// Exit codes: 0 the scenario ran to its end, 1 it failed (the reason is printed as an "error"
// event and on stderr), 2 the overall timeout fired. Nothing here can hang: every wait is
// bounded by the overall timeout (JSON_ARGS.timeout_ms, default 8000).
//
// JSON_ARGS.protobuf true runs the SDK's protobuf build (`centrifuge/build/protobuf`): payloads
// are then sent as the UTF-8 bytes of their JSON and printed decoded from them.
//
// Scenarios (JSON_ARGS keys in brackets):
//   pubsub   [token, channel, data, external]  connect, subscribe, publish `data` and receive
//            it back, print "ready", wait for a publication whose data equals `external`
//            (sent by another client), unsubscribe, disconnect.
//   connect  [token?, linger_ms]  connect and report how the attempt ended; after a terminal
//            disconnect, linger to show that the SDK does not reconnect.
//   rpc      [token, method, data, client?]  connect (with the Centrifuge options in `client`,
//            e.g. {"headers": {...}, "data": ...}), call `method`, report its result or error.
//   private  [token, channel, sub_token]  subscribe with a getToken callback that returns
//            `sub_token`, report the subscription's outcome, disconnect.

import WebSocket from 'ws';

const [url, scenario, rawArgs = '{}'] = process.argv.slice(2);

function emit(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

function fail(message) {
  emit('error', { message });
  process.stderr.write(`roundtrip: ${message}\n`);
  process.exit(1);
}

if (!url || !scenario) {
  fail('usage: node roundtrip.mjs WS_URL SCENARIO [JSON_ARGS]');
}

let args;
try {
  args = JSON.parse(rawArgs);
} catch (err) {
  fail(`JSON_ARGS is not JSON: ${err.message}`);
}

const { Centrifuge } = await import(args.protobuf ? 'centrifuge/build/protobuf' : 'centrifuge');

// The protobuf build carries bytes: JSON goes out as its UTF-8 and comes back decoded.
const encode = (value) => (args.protobuf ? new TextEncoder().encode(JSON.stringify(value)) : value);
const decode = (data) => (data instanceof Uint8Array ? JSON.parse(new TextDecoder().decode(data)) : data);

const timeoutMs = args.timeout_ms ?? 8000;
setTimeout(() => {
  emit('timeout', { after_ms: timeoutMs });
  process.stderr.write(`roundtrip: timed out after ${timeoutMs} ms in scenario ${scenario}\n`);
  process.exit(2);
}, timeoutMs).unref();

// Every WebSocket the SDK opens is announced, so a test can count (re)connection attempts.
class CountingWebSocket extends WebSocket {
  constructor(...params) {
    super(...params);
    emit('transport_open', { protocols: params[1] ?? null });
  }
}

function errorFields(err) {
  // The SDK rejects with {code, message, temporary} for server errors; anything else is a bug.
  if (err && typeof err === 'object' && 'code' in err) {
    return { code: err.code, message: err.message, temporary: Boolean(err.temporary) };
  }
  return { code: null, message: String(err && err.message ? err.message : err) };
}

function newClient(extra = {}) {
  const client = new Centrifuge(url, {
    websocket: CountingWebSocket,
    // Short delays: a wrongful reconnect shows up within a test's linger time.
    minReconnectDelay: 100,
    maxReconnectDelay: 200,
    timeout: 3000,
    ...extra,
  });
  client.on('connecting', (ctx) => emit('connecting', { code: ctx.code, reason: ctx.reason }));
  client.on('connected', (ctx) => emit('connected', { client: ctx.client, transport: ctx.transport }));
  client.on('disconnected', (ctx) => emit('disconnected', { code: ctx.code, reason: ctx.reason }));
  client.on('error', (ctx) => emit('client_error', { type: ctx.type, ...errorFields(ctx.error) }));
  return client;
}

function once(emitter, name) {
  return new Promise((resolve) => emitter.once(name, resolve));
}

function watchSubscription(sub) {
  sub.on('subscribing', (ctx) => emit('subscribing', { channel: ctx.channel, code: ctx.code, reason: ctx.reason }));
  sub.on('subscribed', (ctx) => emit('subscribed', { channel: ctx.channel, recoverable: ctx.recoverable }));
  sub.on('unsubscribed', (ctx) => emit('unsubscribed', { channel: ctx.channel, code: ctx.code, reason: ctx.reason }));
  sub.on('error', (ctx) => emit('subscription_error', { channel: ctx.channel, type: ctx.type, ...errorFields(ctx.error) }));
  sub.on('publication', (ctx) => {
    const info = ctx.info ? { user: ctx.info.user, client: ctx.info.client } : null;
    emit('publication', { channel: ctx.channel, data: decode(ctx.data), info, offset: ctx.offset ?? null });
  });
}

function nextPublicationWith(sub, data) {
  const wanted = JSON.stringify(data);
  return new Promise((resolve) => {
    const listener = (ctx) => {
      if (JSON.stringify(decode(ctx.data)) === wanted) {
        sub.off('publication', listener);
        resolve(ctx);
      }
    };
    sub.on('publication', listener);
  });
}

async function disconnect(client) {
  const done = once(client, 'disconnected');
  client.disconnect();
  await done;
}

const scenarios = {
  async pubsub() {
    const client = newClient({ token: args.token });
    const sub = client.newSubscription(args.channel);
    watchSubscription(sub);
    const own = nextPublicationWith(sub, args.data);
    const external = nextPublicationWith(sub, args.external);
    client.connect();
    sub.subscribe();
    await sub.ready(3000);
    await sub.publish(encode(args.data));
    emit('published', { channel: args.channel });
    await own;
    emit('ready');
    await external;
    const gone = once(sub, 'unsubscribed');
    sub.unsubscribe();
    await gone;
    client.removeSubscription(sub);
    emit('subscriptions', { channels: Object.keys(client.subscriptions()) });
    await disconnect(client);
  },

  async connect() {
    const client = newClient(args.token ? { token: args.token } : {});
    const outcome = Promise.race([
      once(client, 'connected').then(() => 'connected'),
      once(client, 'disconnected').then(() => 'disconnected'),
    ]);
    client.connect();
    if ((await outcome) === 'connected') {
      await disconnect(client);
      return;
    }
    // Terminal disconnect: stay a while; a reconnect would print connecting/transport_open.
    await new Promise((resolve) => setTimeout(resolve, args.linger_ms ?? 800));
    emit('state', { state: client.state });
  },

  async rpc() {
    const client = newClient({ token: args.token, ...(args.client ?? {}) });
    client.connect();
    await client.ready(3000);
    try {
      const result = await client.rpc(args.method, encode(args.data ?? {}));
      emit('rpc_result', { data: decode(result.data) });
    } catch (err) {
      emit('rpc_error', errorFields(err));
    }
    emit('state', { state: client.state });
    await disconnect(client);
  },

  async private() {
    const client = newClient({ token: args.token });
    const sub = client.newSubscription(args.channel, {
      getToken: async (ctx) => {
        emit('get_token', { channel: ctx.channel });
        return args.sub_token;
      },
    });
    watchSubscription(sub);
    const outcome = Promise.race([
      once(sub, 'subscribed').then(() => 'subscribed'),
      once(sub, 'unsubscribed').then(() => 'unsubscribed'),
      once(client, 'disconnected').then(() => 'disconnected'),
    ]);
    client.connect();
    sub.subscribe();
    emit('outcome', { result: await outcome });
    await disconnect(client);
  },
};

const run = scenarios[scenario];
if (!run) {
  fail(`unknown scenario ${JSON.stringify(scenario)}; known: ${Object.keys(scenarios).join(', ')}`);
}
try {
  await run();
  emit('done');
  process.exit(0);
} catch (err) {
  fail(`${scenario}: ${err && err.stack ? err.stack : JSON.stringify(err)}`);
}
