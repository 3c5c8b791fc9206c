"""The FastAPI docs' WebSocket chat on roomcast rooms: `uvicorn examples.rooms_app:app`."""
from fastapi import FastAPI, WebSocket

from roomcast import ConnectionManager, Hub

hub = Hub()  # ROOMCAST_ENGINE__URL=redis://... (or postgresql://, nats://) joins the workers
app = FastAPI(lifespan=hub.lifespan)
app.include_router(hub.router)  # /healthz, /readyz and the Centrifuge SDKs' endpoint
manager = ConnectionManager(hub)


@app.websocket("/ws/{client_id}")
async def websocket_endpoint(websocket: WebSocket, client_id: int) -> None:
    async with manager.connect(websocket, rooms=["chat"]) as socket:
        async for data in socket.texts():
            socket.send_text(f"You wrote: {data}")
            await manager.broadcast("chat", f"Client #{client_id} says: {data}")
    await manager.broadcast("chat", f"Client #{client_id} left the chat")
