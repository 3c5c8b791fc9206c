"""A FastAPI app embedding a Hub on the PostgreSQL engine, whose endpoints let a test open a
database transaction that publishes, then commit or roll it back:
``uvicorn tests.support.postgres_outbox_app:app`` with ``ROOMCAST_ENGINE__URL=postgresql://...`` and
``OUTBOX_DATABASE_URL`` (the application's own DSN, without roomcast's parameters).

Clients connect without a token (insecure mode). Channels without a namespace keep history;
those of the ``plain`` namespace do not.
"""

from __future__ import annotations

import os
from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException

from roomcast import Hub, Settings

__all__ = ["app", "hub"]

settings = Settings.load(
    client={"insecure": True},
    channel={
        "without_namespace": {"history_size": 100, "history_ttl": 300},
        "namespaces": [{"name": "plain"}],
    },
)
hub = Hub(settings)
app = FastAPI(lifespan=hub.lifespan)
app.include_router(hub.router)

# The one transaction a test holds open between /tx/begin and /tx/commit or /tx/rollback.
_open: dict[str, Any] = {}


@app.post("/tx/begin/{channel}")
async def begin(channel: str, text: str) -> dict[str, int]:
    """Open a transaction and publish ``{"text": text}`` to ``channel`` inside it."""
    if _open:
        raise HTTPException(409, "a transaction is already open")
    conn = await asyncpg.connect(os.environ["OUTBOX_DATABASE_URL"])
    transaction = conn.transaction()
    await transaction.start()
    _open.update(conn=conn, transaction=transaction)
    publication = await hub.publish(channel, {"text": text}, connection=conn)
    return {"offset": publication.offset}


@app.post("/tx/{outcome}")
async def end(outcome: str) -> dict[str, str]:
    """Commit or roll back the open transaction."""
    if not _open or outcome not in ("commit", "rollback"):
        raise HTTPException(404, "no open transaction, or not commit|rollback")
    conn, transaction = _open.pop("conn"), _open.pop("transaction")
    try:
        await (transaction.commit() if outcome == "commit" else transaction.rollback())
    finally:
        await conn.close()
    return {"outcome": outcome}


@app.post("/publish/{channel}")
async def publish(channel: str, text: str) -> dict[str, int]:
    """Publish outside any transaction."""
    publication = await hub.publish(channel, {"text": text})
    return {"offset": publication.offset}
