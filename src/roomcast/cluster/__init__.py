"""The cluster: what the nodes of one installation (one engine, one prefix) say to each other.

Every ``roomcast serve`` process, every worker of ``--workers N`` and every embedded ``Hub`` is
a node. Nodes speak over the broker's control channel (``Broker.publish_control``): actions on
connections (disconnect, subscribe, unsubscribe, refresh) that every node applies to its own,
announcements that make up the cluster view, and surveys that gather every node's figures.
:mod:`.messages` is what travels, :mod:`.nodes` the live-node table, :mod:`.survey` the
gathering of answers, :mod:`.plane` the :class:`ControlPlane` that ties them together.
"""

from __future__ import annotations

from roomcast.cluster.messages import (
    Command,
    DisconnectCommand,
    NodeInfo,
    Position,
    RefreshCommand,
    SubscribeCommand,
    SubscribeOverride,
    Target,
    UnsubscribeCommand,
)
from roomcast.cluster.plane import CommandHandler, ControlPlane, ControlStats, SurveyAnswer
from roomcast.cluster.survey import SurveyIncomplete

__all__ = [
    "Command",
    "CommandHandler",
    "ControlPlane",
    "ControlStats",
    "DisconnectCommand",
    "NodeInfo",
    "Position",
    "RefreshCommand",
    "SubscribeCommand",
    "SubscribeOverride",
    "SurveyAnswer",
    "SurveyIncomplete",
    "Target",
    "UnsubscribeCommand",
]
