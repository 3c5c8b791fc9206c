"""Surveys: one question to every live node, its replies gathered within a timeout."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

from roomcast.errors import EngineUnavailable

__all__ = ["SurveyIncomplete", "Surveys"]


class SurveyIncomplete(EngineUnavailable):
    """Live nodes did not answer a survey in time (one may have just stopped: it drops out
    of the live nodes within their TTL, and a retry then succeeds)."""

    def __init__(self, subject: str, missing: Iterable[str], timeout: float) -> None:
        self.missing = sorted(missing)
        super().__init__(
            f"the {subject} survey got no answer within {timeout} s from node(s) "
            f"{', '.join(self.missing)}"
        )


@dataclass(slots=True)
class _Open:
    expected: set[str]
    replies: dict[str, bytes] = field(default_factory=dict)
    complete: asyncio.Event = field(default_factory=asyncio.Event)


class Surveys:
    """The surveys this node has open, by id, each waiting for the nodes it expects."""

    def __init__(self) -> None:
        self._open: dict[str, _Open] = {}

    @contextlib.asynccontextmanager
    async def open(self, expected: set[str]) -> AsyncIterator[str]:
        """A new survey's id, open inside the block (replies count from now on)."""
        survey_id = uuid.uuid4().hex
        self._open[survey_id] = _Open(set(expected))
        try:
            yield survey_id
        finally:
            del self._open[survey_id]

    def reply(self, survey_id: str, origin: str, body: bytes) -> None:
        """A reply from node ``origin``; replies to unknown or closed surveys are ignored."""
        survey = self._open.get(survey_id)
        if survey is None or origin not in survey.expected:
            return
        survey.replies[origin] = body
        if survey.expected <= survey.replies.keys():
            survey.complete.set()

    async def replies(self, survey_id: str, subject: str, within: float) -> dict[str, bytes]:
        """Every expected node's reply, by uid, once all came.

        Raises:
            SurveyIncomplete: some did not come within ``within`` seconds.
        """
        survey = self._open[survey_id]
        if not survey.expected <= survey.replies.keys():
            try:
                await asyncio.wait_for(survey.complete.wait(), within)
            except TimeoutError:
                raise SurveyIncomplete(
                    subject, survey.expected - survey.replies.keys(), within
                ) from None
        return dict(survey.replies)
