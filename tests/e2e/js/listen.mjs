// A centrifuge JavaScript SDK client that stays connected and reports everything it is handed,
// for the tests that act on it from elsewhere (the server API on another node).
//
//   node listen.mjs WS_URL JSON_ARGS
//
// JSON_ARGS: token (connection JWT), channels (client-side subscriptions to make, default none),
// timeout_ms (default 60000). Every event is one JSON line on stdout:
//   connected, disconnected {code, reason}, connecting {code, reason},
//   subscribed / unsubscribed / publication {channel, ...}     client-side subscriptions
//   server_subscribed {channel, data, recoverable, positioned, offset, epoch},
//   server_unsubscribed {channel}, server_publication {channel, data, offset}
// "ready" once connected and every client-side subscription is subscribed. A line "quit" on
// stdin disconnects and exits 0. Exit 2 when the overall timeout fires: nothing can hang.

import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';
import readline from 'node:readline';

const [url, rawArgs = '{}'] = process.argv.slice(2);

function emit(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

const args = JSON.parse(rawArgs);
setTimeout(() => {
  emit('timeout', { after_ms: args.timeout_ms ?? 60000 });
  process.exit(2);
}, args.timeout_ms ?? 60000).unref();

const client = new Centrifuge(url, {
  websocket: WebSocket,
  token: args.token,
  minReconnectDelay: 100,
  maxReconnectDelay: 300,
  timeout: 5000,
});
client.on('connecting', (ctx) => emit('connecting', { code: ctx.code, reason: ctx.reason }));
client.on('connected', (ctx) => emit('connected', { client: ctx.client }));
client.on('disconnected', (ctx) => emit('disconnected', { code: ctx.code, reason: ctx.reason }));
client.on('subscribed', (ctx) =>
  emit('server_subscribed', {
    channel: ctx.channel,
    data: ctx.data ?? null,
    recoverable: ctx.recoverable,
    positioned: ctx.positioned,
    offset: ctx.streamPosition ? ctx.streamPosition.offset : null,
    epoch: ctx.streamPosition ? ctx.streamPosition.epoch : null,
  }),
);
client.on('unsubscribed', (ctx) => emit('server_unsubscribed', { channel: ctx.channel }));
client.on('publication', (ctx) =>
  emit('server_publication', { channel: ctx.channel, data: ctx.data, offset: ctx.offset ?? null }),
);

const subscriptions = (args.channels ?? []).map((channel) => {
  const sub = client.newSubscription(channel);
  sub.on('subscribed', (ctx) => emit('subscribed', { channel: ctx.channel }));
  sub.on('unsubscribed', (ctx) =>
    emit('unsubscribed', { channel: ctx.channel, code: ctx.code, reason: ctx.reason }),
  );
  sub.on('publication', (ctx) =>
    emit('publication', { channel: ctx.channel, data: ctx.data, offset: ctx.offset ?? null }),
  );
  sub.subscribe();
  return sub;
});

client.connect();
await client.ready(10000);
await Promise.all(subscriptions.map((sub) => sub.ready(10000)));
emit('ready');

for await (const line of readline.createInterface({ input: process.stdin })) {
  if (line.trim() === 'quit') {
    client.disconnect();
    process.exit(0);
  }
}
