"""ChannelRules: namespaces, user-limited channels and the private prefix."""

from __future__ import annotations

from typing import Any

import pytest

from roomcast.session.namespaces import ChannelRules, ResolvedChannel
from roomcast.settings import ChannelOptions, ChannelSettings, Namespace

CHAT = Namespace(name="chat", allow_subscribe_for_client=True)
WITHOUT = ChannelOptions(allow_publish_for_client=True)


def rules(**settings: Any) -> ChannelRules:
    return ChannelRules(ChannelSettings(without_namespace=WITHOUT, namespaces=[CHAT], **settings))


def test_a_name_with_the_boundary_resolves_to_its_namespace() -> None:
    assert rules().resolve("chat:room1") == ResolvedChannel("chat:room1", "chat", CHAT)


def test_only_the_first_boundary_separates_the_namespace() -> None:
    resolved = rules().resolve("chat:a:b")
    assert resolved is not None
    assert resolved.namespace == "chat"


def test_a_name_without_the_boundary_has_no_namespace() -> None:
    assert rules().resolve("room1") == ResolvedChannel("room1", "", WITHOUT)


@pytest.mark.parametrize("channel", ["news:room1", ":room1", "Chat:room1"])
def test_an_unknown_namespace_resolves_to_none(channel: str) -> None:
    assert rules().resolve(channel) is None


def test_an_empty_name_resolves_to_none() -> None:
    assert rules().resolve("") is None


def test_max_length_is_inclusive() -> None:
    short = rules(max_length=10)
    assert short.resolve("chat:12345") is not None
    assert short.resolve("chat:123456") is None


def test_a_custom_namespace_boundary() -> None:
    slash = rules(namespace_boundary="/")
    assert slash.resolve("chat/room") == ResolvedChannel("chat/room", "chat", CHAT)
    assert slash.resolve("chat:room") == ResolvedChannel("chat:room", "", WITHOUT)


def test_user_limited_names() -> None:
    r = rules()
    assert r.is_user_limited("dialog#alice,bob")
    assert not r.is_user_limited("dialog")


@pytest.mark.parametrize(
    ("user", "allowed"),
    [("alice", True), ("bob", True), ("carol", False), ("ali", False), ("", False)],
)
def test_user_allowed_matches_whole_ids_after_the_boundary(user: str, allowed: bool) -> None:
    assert rules().user_allowed("chat:dialog#alice,bob", user) is allowed


def test_user_allowed_reads_the_ids_after_the_last_boundary() -> None:
    r = rules()
    assert r.user_allowed("a#mallory#alice", "alice")
    assert not r.user_allowed("a#mallory#alice", "mallory")


def test_custom_user_boundary_and_separator() -> None:
    r = rules(user_boundary="@", user_separator=";")
    assert r.is_user_limited("dm@alice;bob")
    assert r.user_allowed("dm@alice;bob", "bob")
    assert not r.is_user_limited("dm#alice")


def test_private_prefix() -> None:
    r = rules()
    assert r.is_private("$secret")
    assert not r.is_private("secret")
    assert not r.is_private("chat:$secret")


def test_an_empty_private_prefix_makes_nothing_private() -> None:
    assert not rules(private_prefix="").is_private("$secret")


def test_a_private_channel_without_namespace_resolves() -> None:
    assert rules().resolve("$secret") == ResolvedChannel("$secret", "", WITHOUT)


def test_a_private_channel_in_a_namespace_resolves_to_that_namespace() -> None:
    assert rules().resolve("$chat:room") == ResolvedChannel("$chat:room", "chat", CHAT)


def test_channel_regex_checks_the_name_after_the_namespace() -> None:
    ids = Namespace(name="ids", channel_regex=r"^[0-9]+$")
    loose = Namespace(name="loose", channel_regex=r"[0-9]")
    channel_rules = ChannelRules(
        ChannelSettings(
            without_namespace=ChannelOptions(channel_regex=r"^room"), namespaces=[ids, loose, CHAT]
        )
    )

    def refused(channel: str) -> bool:
        resolved = channel_rules.resolve(channel)
        assert resolved is not None
        return channel_rules.name_refused(resolved)

    assert not refused("ids:42")
    assert not refused("$ids:42")  # the private prefix is not part of the name
    assert refused("ids:42a")
    assert refused("ids:")
    assert not refused("loose:a1b")  # unanchored: found anywhere, as Go's MatchString
    assert refused("loose:abc")
    assert not refused("room-1")  # without a namespace: the whole name
    assert refused("lobby")
    assert not refused("chat:anything at all")  # no regex, no check
