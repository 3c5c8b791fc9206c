// Applies fossil deltas with the centrifuge SDK's own decoder (its protobuf build's codec, the
// one a subscription with delta: 'fossil' runs), for pytest (tests/e2e/sdk/test_delta.py).
//
//   node fossil.mjs < CASES
//
// Each stdin line is {"source": BASE64, "delta": BASE64}; each stdout line the target the SDK
// rebuilt, {"target": BASE64}, or {"error": MESSAGE} when it refused the delta. No network.

import readline from 'node:readline';
import { Centrifuge } from 'centrifuge/build/protobuf';

const codec = new Centrifuge('ws://127.0.0.1:9/unused', {})._codec;
const bytes = (b64) => new Uint8Array(Buffer.from(b64, 'base64'));

for await (const line of readline.createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const { source, delta } = JSON.parse(line);
  try {
    const { newData } = codec.applyDeltaIfNeeded({ delta: true, data: bytes(delta) }, bytes(source));
    process.stdout.write(JSON.stringify({ target: Buffer.from(newData).toString('base64') }) + '\n');
  } catch (err) {
    process.stdout.write(JSON.stringify({ error: String(err?.message ?? err) }) + '\n');
  }
}
