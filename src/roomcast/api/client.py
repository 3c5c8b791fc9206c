"""A small synchronous caller of the server API, for the ``roomcast publish`` command.

Applications should use ``cent``; this exists so the CLI needs nothing beyond httpx and can
turn every failure into one sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from roomcast.api.routes import API_PREFIX

__all__ = ["ApiReply", "call_api"]


@dataclass(frozen=True, slots=True)
class ApiReply:
    """A call's outcome: ``result`` when it succeeded, else ``error``, a sentence for humans."""

    result: dict[str, Any] | None = None
    error: str = ""


def call_api(
    base_url: str,
    method: str,
    payload: dict[str, Any],
    *,
    api_key: str = "",
    timeout: float = 5.0,
) -> ApiReply:
    """POST ``payload`` to ``<base_url>/api/<method>`` and read the reply; never raises.

    Unreachable servers, timeouts, refused keys, non-JSON answers and API errors all come back
    as an ``ApiReply`` with ``error`` set.
    """
    url = f"{base_url.rstrip('/')}{API_PREFIX}/{method}"
    headers = {"X-API-Key": api_key} if api_key else {}
    try:
        response = httpx.post(url, json=payload, headers=headers, timeout=timeout)
    except httpx.TimeoutException:
        return ApiReply(error=f"no answer from {url} within {timeout:g}s")
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return ApiReply(error=f"cannot reach {url}: {exc}")
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    server_error = body.get("error") if isinstance(body, dict) else None
    detail = f": {server_error.get('message', '')}" if isinstance(server_error, dict) else ""
    if response.status_code == httpx.codes.UNAUTHORIZED:
        return ApiReply(error=f"the server refused the API key (HTTP 401){detail}")
    if response.status_code != httpx.codes.OK:
        return ApiReply(error=f"{url} answered HTTP {response.status_code}{detail}")
    if isinstance(server_error, dict):
        code = server_error.get("code")
        return ApiReply(error=f"the server answered error {code}{detail}")
    result = body.get("result") if isinstance(body, dict) else None
    if not isinstance(result, dict):
        return ApiReply(error=f"{url} did not answer like a server API: {response.text[:200]!r}")
    return ApiReply(result=result)
