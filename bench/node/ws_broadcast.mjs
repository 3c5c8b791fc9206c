// Baseline: Node's `ws` server with the broadcast loop its README shows, on one process.
//
// /pub: each message received is sent, unchanged and as text, to every open client of the
// subscriber path; any other path: a subscriber, answering "sub" with "ok". `ws` writes into
// each socket's buffer without backpressure, like the websockets baseline.
//
// Run: node bench/node/ws_broadcast.mjs --port P
import { createServer } from "node:http";
import { WebSocketServer, WebSocket } from "ws";

const port = Number(process.argv[process.argv.indexOf("--port") + 1]);
const subscribers = new WebSocketServer({ noServer: true, perMessageDeflate: false });
const publishers = new WebSocketServer({ noServer: true, perMessageDeflate: false });

subscribers.on("connection", (ws) => {
  ws.on("message", (data) => {
    if (data.toString() === "sub") ws.send("ok");
  });
});

publishers.on("connection", (ws) => {
  ws.on("message", (data) => {
    subscribers.clients.forEach((client) => {
      if (client.readyState === WebSocket.OPEN) client.send(data, { binary: false });
    });
  });
});

const server = createServer((_req, res) => res.writeHead(404).end());
server.on("upgrade", (request, socket, head) => {
  const target = request.url === "/pub" ? publishers : subscribers;
  target.handleUpgrade(request, socket, head, (ws) => target.emit("connection", ws, request));
});
server.listen(port, "127.0.0.1");
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(0));
