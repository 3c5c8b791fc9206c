"""Which keys of a configuration source a settings model does not know.

The settings model ignores keys it does not know, so that a Centrifugo config file loads as
it is; these functions find them, so that each one is named to the operator instead of
being dropped without a word. They walk the raw source (a config file's mapping, the
environment) beside the model's fields: a key that names no field is unknown, and nothing
under an unknown key is looked at again (``client.proxy`` is one key, however much it holds).
Lists of models (``channel.namespaces``) are walked item by item, named ``namespaces[0]``.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from pydantic import BaseModel

__all__ = ["UnknownKey", "unknown_environment_keys", "unknown_keys"]


@dataclass(frozen=True, slots=True)
class UnknownKey:
    """A key no setting reads: its dotted path and where it was found."""

    key: str
    """Dotted, as the model nests it: ``client.proxy``, ``channel.namespaces[0].map``."""
    source: str
    """Where it came from: ``config file roomcast.json``, ``environment variable ROOMCAST_X``."""

    def __str__(self) -> str:
        return f"{self.key} ({self.source})"


def unknown_keys(
    data: Mapping[str, object], model: type[BaseModel], source: str
) -> list[UnknownKey]:
    """The keys of ``data`` (a parsed config source, nested as ``model`` nests) that name no
    field of ``model`` or of the models inside it, in the order they appear."""
    return [UnknownKey(key, source) for key in _walk(data, model, "")]


def unknown_environment_keys(
    environ: Mapping[str, str],
    model: type[BaseModel],
    *,
    prefix: str,
    delimiter: str,
    ignore: frozenset[str] = frozenset(),
) -> list[UnknownKey]:
    """The keys of the variables in ``environ`` named ``PREFIX...`` (case-insensitively, as
    pydantic-settings reads them, ``delimiter`` between nested keys) that no field of ``model``
    reads; a variable holding JSON for a nested model or a list of models is walked inside too.
    Variables named in ``ignore`` are not settings and are skipped."""
    found: list[UnknownKey] = []
    for name, value in environ.items():
        if not name.upper().startswith(prefix.upper()) or name.upper() in ignore:
            continue
        source = f"environment variable {name}"
        path = name[len(prefix) :].lower().split(delimiter)
        found.extend(UnknownKey(key, source) for key in _walk_path(path, value, model))
    return found


def _walk_path(path: list[str], value: str, model: type[BaseModel]) -> Iterator[str]:
    """The unknown key (at most one) that an environment variable's ``path`` names, or those
    inside its JSON ``value`` when the path ends at a nested model."""
    current: type[BaseModel] | None = model
    for depth, segment in enumerate(path):
        dotted = ".".join(path[: depth + 1])
        if current is None or segment not in current.model_fields:
            yield dotted
            return
        annotation = current.model_fields[segment].annotation
        if depth == len(path) - 1:
            yield from _walk_json(value, annotation, dotted)
            return
        current = _model(annotation)


def _walk_json(value: str, annotation: object, dotted: str) -> Iterator[str]:
    if _model(annotation) is None and _list_item_model(annotation) is None:
        return
    try:
        parsed = json.loads(value)
    except ValueError:
        return  # not JSON: the settings model reports the value itself as invalid
    yield from _walk_value(parsed, annotation, dotted)


def _walk(data: Mapping[str, object], model: type[BaseModel], parent: str) -> Iterator[str]:
    for key, value in data.items():
        dotted = f"{parent}.{key}" if parent else str(key)
        field = model.model_fields.get(str(key))
        if field is None:
            yield dotted
            continue
        yield from _walk_value(value, field.annotation, dotted)


def _walk_value(value: object, annotation: object, dotted: str) -> Iterator[str]:
    nested = _model(annotation)
    if nested is not None and isinstance(value, Mapping):
        yield from _walk(value, nested, dotted)
        return
    item_model = _list_item_model(annotation)
    if item_model is not None and isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, Mapping):
                yield from _walk(item, item_model, f"{dotted}[{index}]")


def _model(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _list_item_model(annotation: object) -> type[BaseModel] | None:
    if typing.get_origin(annotation) is not list:
        return None
    (item,) = typing.get_args(annotation)
    return _model(item)
