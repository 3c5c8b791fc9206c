"""roomcast's instruments follow Prometheus' naming conventions and keep their labels bounded."""

from __future__ import annotations

import re

import pytest
from prometheus_client import Gauge

import roomcast.metrics.instruments as instruments
from roomcast.metrics import KNOWN_CLOSE_CODES, REGISTRY, close_code_label
from roomcast.metrics.loop import LoopCounter, LoopHistogram
from roomcast.protocol import DisconnectCode
from roomcast.transport.close_codes import CloseCode

INSTRUMENTS = {
    name: value
    for name, value in vars(instruments).items()
    if isinstance(value, LoopCounter | LoopHistogram | Gauge)
}


def name_of(instrument: object) -> str:
    if isinstance(instrument, Gauge):
        return str(instrument._name)
    assert isinstance(instrument, LoopCounter | LoopHistogram)
    return instrument.name


def documentation_of(instrument: object) -> str:
    if isinstance(instrument, Gauge):
        return str(instrument._documentation)
    assert isinstance(instrument, LoopCounter | LoopHistogram)
    return instrument.documentation


def test_every_instrument_is_exported_and_registered() -> None:
    assert set(INSTRUMENTS) <= set(instruments.__all__)
    registered = {metric.name for metric in REGISTRY.collect()}
    for instrument in INSTRUMENTS.values():
        assert name_of(instrument) in registered


@pytest.mark.parametrize("name", sorted(INSTRUMENTS))
def test_names_follow_the_prometheus_conventions(name: str) -> None:
    instrument = INSTRUMENTS[name]
    metric = name_of(instrument)
    assert re.fullmatch(r"roomcast_[a-z][a-z0-9_]*", metric), metric
    if isinstance(instrument, LoopHistogram):
        assert metric.endswith("_seconds"), f"{metric}: a duration in the base unit"
    if isinstance(instrument, LoopCounter):
        # _total is appended on exposition; a name may not carry it twice.
        assert not metric.endswith("_total"), metric
    assert documentation_of(instrument).endswith("."), metric


def test_every_close_code_roomcast_knows_has_its_own_label() -> None:
    for code in [*DisconnectCode, *CloseCode]:
        assert code in KNOWN_CLOSE_CODES, code
        assert close_code_label(code) == str(int(code))


@pytest.mark.parametrize("code", [0, 999, 1004, 2000, 3100, 3999, 4000, 4321, 65535])
def test_other_close_codes_share_one_label(code: int) -> None:
    assert close_code_label(code) == "other"
