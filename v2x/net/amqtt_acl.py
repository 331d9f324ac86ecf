"""The embedded broker with ``--secure``: an amqtt ``Broker`` that lets in only the run's users with their
passwords, and lets each publish, subscribe and receive only within its grants (``v2x.net.topics.Grants``).

It overrides the broker's two checks instead of adding amqtt plugins: amqtt (0.12) runs a topic plugin as a
task for every delivery of every message, and while it waits a client that subscribes changes the broker's
subscription table under the loop that delivers ("dictionary changed size during iteration"), dropping
that message (a lost Hello stalls a run). These checks never wait.

amqtt answers a refused publish as if it were taken (MQTT 3.1.1 has no reason code): the message is
dropped. A refused subscription gets the failure code 0x80. amqtt publishes a Last Will without checking
it against the publish rules, so a connection whose will is on a topic its user may not write is refused.
"""

from __future__ import annotations

import hmac
from typing import Any

from amqtt.contexts import Action
from amqtt.session import Session

from v2x.net.amqtt_fanout import FanOutBroker
from v2x.net.topics import Grants, covers


def _allowed(filters: tuple[str, ...], topic: str) -> bool:
    return any(covers(pattern, topic) for pattern in filters)


def may_connect(passwords: dict[str, str], grants: dict[str, Grants], session: Session) -> bool:
    """A known user with its password, and a Last Will (if any) on a topic it may write."""
    user, password = session.username, session.password
    expected = passwords.get(user or "")
    if not user or expected is None or password is None:
        return False
    given = password.encode() if isinstance(password, str) else bytes(password)
    if not hmac.compare_digest(given, expected.encode()):
        return False
    no_grants = Grants((), ())
    return not session.will_flag or may(grants.get(user, no_grants), session.will_topic or "#", Action.PUBLISH)


def may(grants: Grants, topic: str, action: Action) -> bool:
    """Publish a topic (no wildcards; one of ``grants.write``), or subscribe to a filter / receive a topic
    (within ``grants.read``)."""
    if action == Action.PUBLISH:
        return "+" not in topic and "#" not in topic and _allowed(grants.write, topic)
    return _allowed(grants.read, topic)


class SecureBroker(FanOutBroker):
    """An amqtt broker for ``passwords`` (user -> password) and ``grants`` (user -> Grants)."""

    def __init__(self, config: dict[str, Any], passwords: dict[str, str], grants: dict[str, Grants]) -> None:
        super().__init__(config)
        self.v2x_passwords = dict(passwords)
        self.v2x_grants = dict(grants)

    async def _authenticate(self, session: Session, listener: Any) -> bool:
        ok = may_connect(self.v2x_passwords, self.v2x_grants, session)
        if not ok:
            self.logger.warning("refused user %r: unknown, wrong password or a will not its own", session.username)
        return ok

    async def _topic_filtering(self, session: Session, topic: str, action: Action) -> bool:
        grants = self.v2x_grants.get(session.username or "") if session is not None else None
        return grants is not None and bool(topic) and may(grants, topic, action)
