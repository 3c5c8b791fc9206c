// Baseline: Socket.IO 4 rooms on Node, the way its docs broadcast to a room.
//
// Event "join" (data: the room) puts the socket in the room and acks true; event "publish"
// (data: the publication) emits "msg" to room "bench"; POST /publish does the same over HTTP.
// Socket.IO encodes the packet once per emit and writes it to every member's Engine.IO socket.
//
// Run: node bench/node/socketio_rooms.mjs --port P
import { createServer } from "node:http";
import { Server } from "socket.io";

const port = Number(process.argv[process.argv.indexOf("--port") + 1]);
const ROOM = "bench";

const server = createServer((req, res) => {
  if (req.method !== "POST" || req.url !== "/publish") {
    res.writeHead(404).end();
    return;
  }
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    io.to(ROOM).emit("msg", JSON.parse(Buffer.concat(chunks).toString()));
    res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
  });
});
const io = new Server(server, { transports: ["websocket"], perMessageDeflate: false });

io.on("connection", (socket) => {
  socket.on("join", (room, ack) => {
    socket.join(room);
    if (typeof ack === "function") ack(true);
  });
  socket.on("publish", (data) => io.to(ROOM).emit("msg", data));
});

server.listen(port, "127.0.0.1");
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(0));
