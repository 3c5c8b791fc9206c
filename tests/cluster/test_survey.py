"""Surveys: complete when every expected node answered, or fail naming the silent ones."""

from __future__ import annotations

import asyncio
import time

import pytest

from roomcast.cluster.survey import SurveyIncomplete, Surveys
from roomcast.errors import EngineUnavailable


async def test_a_survey_completes_once_every_expected_node_answered() -> None:
    surveys = Surveys()
    async with surveys.open({"a", "b"}) as survey_id:
        surveys.reply(survey_id, "a", b"1")
        surveys.reply(survey_id, "stranger", b"?")  # not expected: ignored
        surveys.reply("another-survey", "b", b"?")  # not this survey
        asyncio.get_running_loop().call_later(0.05, surveys.reply, survey_id, "b", b"2")
        replies = await surveys.replies(survey_id, "channels", within=5.0)
    assert replies == {"a": b"1", "b": b"2"}


async def test_a_silent_node_fails_the_survey_within_the_timeout_naming_it() -> None:
    surveys = Surveys()
    async with surveys.open({"a", "b", "c"}) as survey_id:
        surveys.reply(survey_id, "b", b"2")
        began = time.monotonic()
        with pytest.raises(SurveyIncomplete) as caught:
            await surveys.replies(survey_id, "channels", within=0.2)
    assert 0.15 < time.monotonic() - began < 2.0
    assert caught.value.missing == ["a", "c"]
    assert "a, c" in str(caught.value)
    assert isinstance(caught.value, EngineUnavailable)  # error 100: temporary, retry


async def test_a_reply_after_the_survey_closed_is_ignored() -> None:
    surveys = Surveys()
    async with surveys.open({"a"}) as survey_id:
        pass
    surveys.reply(survey_id, "a", b"late")  # must not raise
