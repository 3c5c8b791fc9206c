"""An app embedding a Hub with every lifecycle hook, for the SDK tests of the hooks.

Run it with ``uvicorn tests.support.hooks_app:app``. The app's own dependency authenticates:
``?user=NAME`` on the client endpoint's URL lets NAME in, with an ``expire_at``
``HOOKS_EXPIRE_IN`` seconds away when that is set. Every hook call is appended as one JSON
line (``{"hook": ..., "client": ..., "user": ..., ...}``) to the file ``HOOKS_LOG`` names, so
a test reads what the hooks heard, even after the server stopped.

The hooks' answers: ``on_connect`` answers ``{"welcome": user}`` and sets the info
``{"name": User}`` (user ``refused`` is refused with 4403); ``on_subscribe`` refuses channels
starting with ``deny``, and allows the others with ``{"hello": channel}``, turning off the
presence the channels have for those starting with ``hidden``;
``on_refresh`` extends by ``HOOKS_EXPIRE_IN`` seconds, except for user ``last`` (expired).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query

from roomcast import (
    ClientContext,
    ClientError,
    ConnectDetails,
    ConnectReply,
    Credentials,
    Hub,
    RefreshReply,
    Settings,
    SubscribeReply,
)

__all__ = ["app", "hub"]

LOG = Path(os.environ["HOOKS_LOG"])
EXPIRE_IN = int(os.environ.get("HOOKS_EXPIRE_IN", "0"))


def record(hook: str, client: ClientContext, **fields: Any) -> None:
    line = json.dumps({"hook": hook, "client": client.client, "user": client.user, **fields})
    with LOG.open("a", encoding="utf-8") as log:
        log.write(line + "\n")


async def current_user(user: str | None = Query(None)) -> Credentials | None:
    if user is None:
        return None
    return Credentials(user=user, expire_at=int(time.time()) + EXPIRE_IN if EXPIRE_IN else 0)


settings = Settings.load(
    channel={"without_namespace": {"presence": True, "allow_presence_for_subscriber": True}},
    engine={"history": "memory://"},
)
hub = Hub(settings, authenticate=current_user)
app = FastAPI(lifespan=hub.lifespan)
app.include_router(hub.router)


@hub.on_connect
async def connect(client: ClientContext, event: ConnectDetails) -> ConnectReply:
    record("connect", client, data=event.data)
    if client.user == "refused":
        raise ClientError(4403, "refused by the app")
    return ConnectReply(data={"welcome": client.user}, info={"name": client.user.title()})


@hub.on_subscribe
async def subscribe(client: ClientContext, channel: str) -> bool | SubscribeReply:
    record("subscribe", client, channel=channel)
    if channel.startswith("deny"):
        return False
    return SubscribeReply(data={"hello": channel}, presence=not channel.startswith("hidden"))


@hub.on_unsubscribe
async def unsubscribe(client: ClientContext, channel: str, code: int, reason: str) -> None:
    record("unsubscribe", client, channel=channel, code=code, reason=reason)


@hub.on_disconnect
async def disconnect(client: ClientContext, code: int, reason: str) -> None:
    record("disconnect", client, code=code, reason=reason)


@hub.on_refresh
async def refresh(client: ClientContext) -> RefreshReply:
    record("refresh", client)
    if client.user == "last":
        return RefreshReply(expired=True)
    return RefreshReply(expire_at=int(time.time()) + EXPIRE_IN)
