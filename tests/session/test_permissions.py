"""Who may subscribe, publish and read presence or history, from namespace options."""

from __future__ import annotations

import pytest

from roomcast.session.namespaces import ChannelRules, ResolvedChannel
from roomcast.session.permissions import can_publish, can_read, can_subscribe_without_token
from roomcast.settings import ChannelOptions, ChannelSettings

RULES = ChannelRules(ChannelSettings())


def subscribe(channel: str, *, user: str, insecure: bool = False, **options: bool) -> bool:
    resolved = ResolvedChannel(channel, "", ChannelOptions(**options))
    return can_subscribe_without_token(resolved, RULES, user=user, insecure=insecure)


# --- subscribe --------------------------------------------------------------------------------


def test_user_limited_channel_admits_a_listed_user() -> None:
    assert subscribe("dm#alice,bob", user="bob", allow_user_limited_channels=True)


def test_user_limited_channel_refuses_others_even_when_clients_may_subscribe() -> None:
    assert not subscribe(
        "dm#alice,bob",
        user="carol",
        allow_user_limited_channels=True,
        allow_subscribe_for_client=True,
    )


def test_user_limited_channel_refuses_anonymous() -> None:
    assert not subscribe("dm#alice", user="", allow_user_limited_channels=True)


def test_user_limited_channel_admits_anyone_when_insecure() -> None:
    assert subscribe("dm#alice", user="carol", insecure=True, allow_user_limited_channels=True)


def test_a_user_boundary_means_nothing_without_the_option() -> None:
    assert subscribe("dm#alice", user="carol", allow_subscribe_for_client=True)
    assert not subscribe("dm#alice", user="alice")


@pytest.mark.parametrize(
    ("user", "for_client", "for_anonymous", "insecure", "allowed"),
    [
        ("alice", True, False, False, True),
        ("", True, False, False, False),
        ("", True, True, False, True),
        ("", False, True, False, False),
        ("alice", False, False, False, False),
        ("alice", False, False, True, True),
        ("", False, False, True, True),
    ],
)
def test_subscribe_for_client_and_anonymous(
    user: str, for_client: bool, for_anonymous: bool, insecure: bool, allowed: bool
) -> None:
    assert (
        subscribe(
            "news",
            user=user,
            insecure=insecure,
            allow_subscribe_for_client=for_client,
            allow_subscribe_for_anonymous=for_anonymous,
        )
        is allowed
    )


# --- publish ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "user", "subscribed", "insecure", "allowed"),
    [
        ({}, "alice", True, False, False),
        ({}, "", False, True, True),
        ({"allow_publish_for_client": True}, "alice", False, False, True),
        ({"allow_publish_for_client": True}, "", False, False, False),
        (
            {"allow_publish_for_client": True, "allow_publish_for_anonymous": True},
            "",
            False,
            False,
            True,
        ),
        ({"allow_publish_for_subscriber": True}, "alice", True, False, True),
        ({"allow_publish_for_subscriber": True}, "alice", False, False, False),
        ({"allow_publish_for_subscriber": True}, "", True, False, False),
        (
            {"allow_publish_for_subscriber": True, "allow_publish_for_anonymous": True},
            "",
            True,
            False,
            True,
        ),
        ({"allow_publish_for_anonymous": True}, "", True, False, False),
    ],
)
def test_can_publish(
    options: dict[str, bool], user: str, subscribed: bool, insecure: bool, allowed: bool
) -> None:
    result = can_publish(
        ChannelOptions(**options), user=user, subscribed=subscribed, insecure=insecure
    )
    assert result is allowed


# --- presence and history ---------------------------------------------------------------------


@pytest.mark.parametrize("what", ["presence", "history"])
@pytest.mark.parametrize(
    ("grants", "user", "subscribed", "insecure", "allowed"),
    [
        ((), "alice", True, False, False),
        ((), "", False, True, True),
        (("client",), "alice", False, False, True),
        (("client",), "", False, False, False),
        (("client", "anonymous"), "", False, False, True),
        (("subscriber",), "alice", True, False, True),
        (("subscriber",), "alice", False, False, False),
        (("subscriber",), "", True, False, False),
        (("subscriber", "anonymous"), "", True, False, True),
        (("anonymous",), "", True, False, False),
    ],
)
def test_can_read(
    what: str,
    grants: tuple[str, ...],
    user: str,
    subscribed: bool,
    insecure: bool,
    allowed: bool,
) -> None:
    options = ChannelOptions(**{f"allow_{what}_for_{grant}": True for grant in grants})
    result = can_read(options, what, user=user, subscribed=subscribed, insecure=insecure)
    assert result is allowed


def test_presence_options_do_not_grant_history() -> None:
    options = ChannelOptions(allow_presence_for_client=True)
    assert can_read(options, "presence", user="alice", subscribed=False, insecure=False)
    assert not can_read(options, "history", user="alice", subscribed=False, insecure=False)
