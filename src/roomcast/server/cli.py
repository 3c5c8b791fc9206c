"""The ``roomcast`` command.

``serve`` runs the server; ``checkconfig`` checks a config file as ``serve`` would read it;
``publish`` publishes into a channel through a running server's HTTP API; ``token`` prints a
connection or subscription token signed with the configured key.
(The benchmarks are not a subcommand: they run with ``python -m bench``.)
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import jwt
import typer
import uvicorn
from rich.console import Console
from rich.markup import escape

from roomcast.engines import create_broker, create_history_store, create_presence_store
from roomcast.errors import ConfigurationError
from roomcast.server.app import SETTINGS_ENV
from roomcast.server.log_config import log_config
from roomcast.server.shutdown import DrainingMultiprocess
from roomcast.session.namespaces import keeps_history
from roomcast.session.tokens import TokenVerifier
from roomcast.settings import Settings, find_unknown_keys
from roomcast.transport.uvicorn_protocol import RoomcastWebSocketProtocol

__all__ = ["app", "main"]

app = typer.Typer(help="roomcast: realtime messaging for FastAPI.", no_args_is_help=True)
console = Console(stderr=True)
logger = logging.getLogger("roomcast.cli")

_DEFAULT_SECURE_TOKEN = "secret-token"


def _overrides(**values: Any) -> dict[str, Any]:
    """Nested overrides from flags, dropping flags that were not given."""
    nested: dict[str, Any] = {}
    for dotted, value in values.items():
        if value is None:
            continue
        *parents, leaf = dotted.split("__")
        target = nested
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return nested


def _check_serveable(settings: Settings) -> None:
    create_broker(settings.engine.broker_url)  # raises ConfigurationError for an unknown scheme
    if settings.workers > 1 and settings.engine.broker_url.startswith("memory:"):
        raise ConfigurationError(
            f"--workers {settings.workers} needs a broker shared by the workers; the memory "
            "broker lives inside one process. Run one worker, or set --engine to a "
            "redis://, postgresql:// or nats:// URL."
        )


def _warn_about_defaults(settings: Settings) -> None:
    for unknown in settings.unknown_keys:
        logger.warning(
            "unknown config key %s in %s: roomcast does not read it, so it has no effect",
            unknown.key,
            unknown.source,
        )
    if settings.client.insecure:
        logger.warning(
            "INSECURE MODE: connections need no token and every client may subscribe, publish, "
            "and read presence and history on every channel. Never run this in production."
        )
    if settings.examples.enabled and settings.examples.secure_token == _DEFAULT_SECURE_TOKEN:
        logger.warning(
            "/ws/secure accepts the seeds' default token %r; set ROOMCAST_EXAMPLES__SECURE_TOKEN",
            _DEFAULT_SECURE_TOKEN,
        )


@app.callback()
def root() -> None:
    """roomcast: realtime messaging for FastAPI."""


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on; 0 picks a free one.")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML, JSON or YAML config file.")
    ] = None,
    insecure: Annotated[
        bool | None,
        typer.Option("--insecure", help="Development mode: anonymous clients, everything allowed."),
    ] = None,
    log_level: Annotated[
        str | None, typer.Option(help="critical, error, warning, info or debug.")
    ] = None,
    examples: Annotated[
        bool | None, typer.Option("--examples/--no-examples", help="Serve the seed endpoints.")
    ] = None,
    api_key: Annotated[str | None, typer.Option(help="Key for the HTTP server API.")] = None,
    engine: Annotated[str | None, typer.Option(help="Engine URL, e.g. memory://.")] = None,
) -> None:
    """Run the roomcast server."""
    try:
        settings = Settings.load(
            config_file=config,
            **_overrides(
                host=host,
                port=port,
                workers=workers,
                log_level=log_level,
                client__insecure=insecure,
                examples__enabled=examples,
                http_api__key=api_key,
                engine__url=engine,
            ),
        )
        _check_serveable(settings)
    except ConfigurationError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    _run(settings)


def _run(settings: Settings) -> None:
    logging.config.dictConfig(log_config(settings.log_level))
    _warn_about_defaults(settings)
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    config = uvicorn.Config(
        "roomcast.server.app:app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        ws=RoomcastWebSocketProtocol,
        ws_max_size=settings.websocket.message_size_limit,
        ws_per_message_deflate=settings.websocket.compression,
        log_config=log_config(settings.log_level),
        lifespan="on",
    )
    server = uvicorn.Server(config)
    sock = config.bind_socket()
    bound_host, bound_port = sock.getsockname()[:2]
    engine = settings.engine
    history = (
        engine.history_url if keeps_history(settings.channel) else "off (no namespace keeps it)"
    )
    console.print(
        f"roomcast listening on http://{bound_host}:{bound_port} "
        f"(workers: {settings.workers}; broker: {engine.broker_url}; history: {history}; "
        f"presence: {engine.presence_url}; examples: "
        f"{'on' if settings.examples.enabled else 'off'})",
        highlight=False,
        soft_wrap=True,
    )
    if settings.workers > 1:
        DrainingMultiprocess(config, sockets=[sock]).run()
    else:
        server.run(sockets=[sock])


@app.command()
def checkconfig(
    config: Annotated[Path, typer.Argument(help="The TOML, JSON or YAML config file to check.")],
) -> None:
    """Check CONFIG as `roomcast serve --config CONFIG` would read it (the ROOMCAST_*
    environment included): print every unknown key and every invalid value, each on its own
    line, and exit 1; print "ok" and exit 0 when there is none."""
    problems = [f"unknown key {unknown}" for unknown in _unknown_keys(config)]
    try:
        settings = Settings.load(config_file=config)
    except ConfigurationError as exc:
        problems += [f"invalid: {problem}" for problem in exc.problems]
    else:
        problems += [f"invalid: {problem}" for problem in _serving_problems(settings)]
    if problems:
        for problem in problems:
            typer.echo(problem)
        raise typer.Exit(1)
    typer.echo("ok")


def _unknown_keys(config: Path) -> list[str]:
    try:
        return [str(unknown) for unknown in find_unknown_keys(config)]
    except ConfigurationError:
        return []  # the file cannot be read: Settings.load reports it


def _serving_problems(settings: Settings) -> list[str]:
    """What ``serve`` would refuse in settings that are valid one by one: engine URLs it
    cannot use, keys it cannot read, workers without a shared broker."""
    problems: list[str] = []
    engine = settings.engine
    checks: list[Callable[[], object]] = [
        lambda: _check_serveable(settings),
        lambda: create_presence_store(engine.presence_url),
        lambda: TokenVerifier(settings.client.token),
        lambda: TokenVerifier(settings.client.subscription_token),
    ]
    if keeps_history(settings.channel):
        checks.append(lambda: create_history_store(engine.history_url))
    for check in checks:
        try:
            check()
        except ConfigurationError as exc:
            problems.append(str(exc))
    return problems


@app.command()
def publish(
    channel: Annotated[str, typer.Argument(help="Channel to publish into.")],
    data: Annotated[str, typer.Argument(help='The publication, as JSON: \'{"text": "hi"}\'.')],
    url: Annotated[str, typer.Option(help="The server's base URL.")] = "http://127.0.0.1:8000",
    api_key: Annotated[
        str, typer.Option(envvar="ROOMCAST_HTTP_API__KEY", help="Key for the HTTP server API.")
    ] = "",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server.")] = 5.0,
) -> None:
    """Publish DATA into CHANNEL through a running server's HTTP API; prints the result."""
    from roomcast.api.client import call_api  # imported here: serve never needs httpx

    try:
        payload = json.loads(data)
    except ValueError as exc:
        console.print(f"[bold red]error:[/] DATA is not valid JSON: {escape(str(exc))}")
        raise typer.Exit(2) from exc
    reply = call_api(
        url, "publish", {"channel": channel, "data": payload}, api_key=api_key, timeout=timeout
    )
    if reply.result is None:
        console.print(f"[bold red]error:[/] {escape(reply.error)}")
        raise typer.Exit(1)
    typer.echo(json.dumps(reply.result))


@app.command()
def token(
    user: Annotated[str, typer.Argument(help="The user ID (the token's sub claim).")],
    ttl: Annotated[int, typer.Option(help="Seconds until the token expires; 0 for never.")] = 3600,
    channel: Annotated[
        str | None, typer.Option(help="Make a subscription token for this channel.")
    ] = None,
    info: Annotated[str | None, typer.Option(help="JSON for the info claim.")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML, JSON or YAML config file.")
    ] = None,
) -> None:
    """Print an HS256 connection (or subscription) token signed with the configured key."""
    try:
        settings = Settings.load(config_file=config)
        keys = settings.client.subscription_token if channel else settings.client.token
        secret = keys.hmac_secret_key or settings.client.token.hmac_secret_key
        if not secret:
            raise ConfigurationError(
                "no client.token.hmac_secret_key is configured "
                "(set ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY or use --config)"
            )
        claims: dict[str, Any] = {"sub": user}
        if ttl:
            claims["exp"] = int(time.time()) + ttl
        if channel:
            claims["channel"] = channel
        if info is not None:
            claims["info"] = json.loads(info)
    except ConfigurationError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    except ValueError as exc:
        console.print(f"[bold red]error:[/] --info is not valid JSON: {escape(str(exc))}")
        raise typer.Exit(2) from exc
    typer.echo(jwt.encode(claims, secret, algorithm="HS256"))


def main() -> None:
    """Entry point of the ``roomcast`` console script."""
    app()
