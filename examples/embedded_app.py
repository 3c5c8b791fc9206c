"""roomcast inside your own FastAPI app: `uvicorn examples.embedded_app:app`."""
from typing import Any

from fastapi import Cookie, FastAPI
from pydantic import BaseModel

from roomcast import ClientContext, Credentials, Hub, Settings


async def current_user(session: str | None = Cookie(None)) -> Credentials | None:
    # Your app's own auth decides who connects: here a `session` cookie names the user.
    return Credentials(user=session, info={"name": session.title()}) if session else None


class ChatMessage(BaseModel):
    text: str


settings = Settings.load(channel={"without_namespace": {"allow_publish_for_subscriber": True}})
hub = Hub(settings, authenticate=current_user)
hub.publication_model("", ChatMessage)  # client publications must be {"text": "..."}
app = FastAPI(lifespan=hub.lifespan)
app.include_router(hub.router)


@hub.on_subscribe
async def may_subscribe(client: ClientContext, channel: str) -> bool:
    return channel == "lobby" or channel == f"orders#{client.user}"


@hub.rpc("whoami")
async def whoami(client: ClientContext, data: Any) -> dict[str, str]:
    return {"user": client.user}


@app.post("/users/{user}/orders/{order_id}/paid")
async def order_paid(user: str, order_id: int) -> dict[str, bool]:
    await hub.publish(f"orders#{user}", {"order": order_id, "status": "paid"})
    return {"published": True}
