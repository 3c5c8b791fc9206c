"""The admin UI's routes: its page and assets, login and logout, and its calls.

* ``GET /admin/`` the page, ``GET /admin/assets/<name>`` its stylesheet, script and icon:
  served to anyone, they hold no data.
* ``POST /admin/api/login`` with ``{"password": "..."}``: a session cookie (HttpOnly,
  SameSite=Strict, Secure over HTTPS) or 401; failed attempts are answered one at a time,
  half a second each, so guessing is slow.
* ``POST /admin/api/logout`` ends the session; ``GET /admin/api/session`` says whether the
  cookie is a live session.
* ``POST /admin/api/call/<method>``: a server API method (:mod:`roomcast.api.methods`) run
  in-process with the request's JSON body, answered as ``POST /api/<method>`` answers it.
  The UI reads the nodes (``info``), channels, presence and history and publishes and
  disconnects through these calls only, so what the API sees of the cluster, the UI shows.

Every ``/admin/api`` route but ``login`` checks the session cookie, and every POST must be
``application/json``, which a cross-site form cannot send. Responses are not cached.
"""

from __future__ import annotations

import asyncio
from functools import cache
from importlib.resources import files
from typing import Final

import msgspec
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from roomcast.admin.cookie import COOKIE_NAME, SESSION_SECONDS, SessionSigner
from roomcast.api.routes import answer_method
from roomcast.hub import Hub

__all__ = ["ADMIN_PATH", "ASSETS", "admin_router"]

ADMIN_PATH: Final = "/admin"

ASSETS: Final = {
    "admin.css": "text/css; charset=utf-8",
    "admin.js": "text/javascript; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
"""The files of ``static/`` served under ``/admin/assets/``, with their media types."""

_FAILED_LOGIN_DELAY: Final = 0.5
_PAGE_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_NO_STORE: Final = {"Cache-Control": "no-store"}


class _Login(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    password: str


@cache
def _static(name: str) -> bytes:
    return files("roomcast.admin").joinpath(f"static/{name}").read_bytes()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=_NO_STORE)


def admin_router(hub: Hub) -> APIRouter:
    """The admin UI's routes for ``hub``, guarded by ``hub.settings.admin``'s password and
    signed with its secret (settings refuse ``admin.enabled`` without both)."""
    admin = hub.settings.admin
    signer = SessionSigner(admin.secret, admin.password)
    failures = asyncio.Lock()
    router = APIRouter(prefix=ADMIN_PATH, include_in_schema=False)

    def refusal(request: Request) -> JSONResponse | None:
        if not signer.valid(request.cookies.get(COOKIE_NAME)):
            return _error(401, "not logged in, or the session expired: log in again")
        return None

    def not_json(request: Request) -> JSONResponse | None:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            return _error(415, "admin calls take application/json")
        return None

    @router.get("")
    async def to_page() -> RedirectResponse:
        return RedirectResponse(f"{ADMIN_PATH}/", status_code=307)

    @router.get("/")
    async def page() -> Response:
        return Response(_static("index.html"), media_type="text/html", headers=_PAGE_HEADERS)

    @router.get("/assets/{name}")
    async def asset(name: str) -> Response:
        media_type = ASSETS.get(name)
        if media_type is None:
            return _error(404, f"no asset {name!r}")
        return Response(_static(name), media_type=media_type, headers=_PAGE_HEADERS)

    @router.post("/api/login")
    async def login(request: Request) -> Response:
        refused = not_json(request)
        if refused is not None:
            return refused
        try:
            given = msgspec.json.decode(await request.body(), type=_Login)
        except msgspec.DecodeError as exc:
            return _error(400, f"bad login request: {exc}")
        if not signer.password_matches(given.password):
            async with failures:
                await asyncio.sleep(_FAILED_LOGIN_DELAY)
            return _error(401, "wrong password")
        response = JSONResponse({"ok": True}, headers=_NO_STORE)
        response.set_cookie(
            COOKIE_NAME,
            signer.issue(),
            max_age=SESSION_SECONDS,
            path=ADMIN_PATH,
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return response

    @router.post("/api/logout")
    async def logout() -> Response:
        response = JSONResponse({"ok": True}, headers=_NO_STORE)
        response.delete_cookie(COOKIE_NAME, path=ADMIN_PATH, httponly=True, samesite="strict")
        return response

    @router.get("/api/session")
    async def session(request: Request) -> Response:
        refused = refusal(request)
        if refused is not None:
            return refused
        return JSONResponse({"ok": True}, headers=_NO_STORE)

    @router.post("/api/call/{method}")
    async def call(method: str, request: Request) -> Response:
        refused = refusal(request) or not_json(request)
        if refused is not None:
            return refused
        response = await answer_method(hub, method, await request.body())
        response.headers.update(_NO_STORE)
        return response

    return router
