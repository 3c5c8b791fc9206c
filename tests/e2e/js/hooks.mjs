// Drives one centrifuge JavaScript SDK client under Node, command by command, for the tests of
// the server's lifecycle hooks (tests/e2e/sdk/test_js_hooks.py).
//
//   node hooks.mjs WS_URL [JSON_ARGS]
//
// WS_URL is the client endpoint, with whatever query the app authenticates by. The client
// connects at once; then each line on stdin is a command:
//   subscribe CHANNEL     subscribe; prints "subscribed" {channel, data} or "unsubscribed"
//   unsubscribe CHANNEL   unsubscribe; prints "unsubscribed" {channel, code}
//   presence CHANNEL      prints "presence" {channel, clients: [{user, connInfo}]}
//   disconnect            disconnect; prints "disconnected" {code, reason}
//   exit                  leave the process at once (exit code 0)
// Every event is one JSON line on stdout ({"event": ...}); "done" {command} follows each
// command. Exit codes: 0 by "exit" or the end of stdin, 1 a command failed (an "error" event),
// 2 the overall timeout (JSON_ARGS.timeout_ms, default 20000) fired.

import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';
import readline from 'node:readline';

const [url, rawArgs = '{}'] = process.argv.slice(2);

function emit(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

function fail(message) {
  emit('error', { message });
  process.stderr.write(`hooks: ${message}\n`);
  process.exit(1);
}

if (!url) {
  fail('usage: node hooks.mjs WS_URL [JSON_ARGS]');
}
const args = JSON.parse(rawArgs);
setTimeout(() => {
  emit('timeout');
  process.exit(2);
}, args.timeout_ms ?? 20000).unref();

const client = new Centrifuge(url, {
  websocket: WebSocket,
  minReconnectDelay: 100,
  maxReconnectDelay: 200,
  timeout: 3000,
});
client.on('connecting', (ctx) => emit('connecting', { code: ctx.code, reason: ctx.reason }));
client.on('connected', (ctx) => emit('connected', { client: ctx.client, data: ctx.data ?? null }));
client.on('disconnected', (ctx) => emit('disconnected', { code: ctx.code, reason: ctx.reason }));

function settled(sub) {
  return new Promise((resolve) => {
    sub.once('subscribed', (ctx) => resolve(['subscribed', { channel: ctx.channel, data: ctx.data ?? null }]));
    sub.once('unsubscribed', (ctx) => resolve(['unsubscribed', { channel: ctx.channel, code: ctx.code }]));
  });
}

const commands = {
  async subscribe(channel) {
    const sub = client.getSubscription(channel) ?? client.newSubscription(channel);
    const outcome = settled(sub);
    sub.subscribe();
    emit(...(await outcome));
  },
  async unsubscribe(channel) {
    const sub = client.getSubscription(channel);
    const gone = new Promise((resolve) => sub.once('unsubscribed', resolve));
    sub.unsubscribe();
    const ctx = await gone;
    emit('unsubscribed', { channel, code: ctx.code });
  },
  async presence(channel) {
    const result = await client.getSubscription(channel).presence();
    const clients = Object.values(result.clients).map((c) => ({ user: c.user, connInfo: c.connInfo ?? null }));
    emit('presence', { channel, clients });
  },
  async disconnect() {
    const done = new Promise((resolve) => client.once('disconnected', resolve));
    client.disconnect();
    await done;
  },
  async exit() {
    process.exit(0);
  },
};

client.connect();
await client.ready(5000);
const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  const [name, ...rest] = line.trim().split(' ');
  const command = commands[name];
  if (!command) {
    fail(`unknown command ${JSON.stringify(line)}`);
  }
  try {
    await command(...rest);
  } catch (err) {
    fail(`${line}: ${err && err.message ? err.message : JSON.stringify(err)}`);
  }
  emit('done', { command: name });
}
process.exit(0);
