"""Where notifications go besides the in-app list: SMS or e-mail gateways plug in here.

A sender receives a notification after its transaction committed, so nobody is told about a step
that was rolled back. The logging sender is the default; a deployment registers its own.
"""
import logging
from typing import Protocol

log = logging.getLogger("tiaojie.notifications")


class Sender(Protocol):
    def send(self, *, user_id: int, username: str, phone: str | None, kind: str, message: str) -> None: ...


class LoggingSender:
    """Write each notification to the log (stands in for SMS/e-mail until one is configured)."""

    def __init__(self):
        self.sent: list[tuple[str, str, str]] = []

    def send(self, *, user_id, username, phone, kind, message):
        self.sent.append((username, kind, message))
        del self.sent[:-1000]  # keep the recent ones for inspection, not an ever-growing list
        log.info("notify %s (%s) [%s] %s", username, phone or "-", kind, message)


_senders: list[Sender] = [LoggingSender()]


def senders() -> list[Sender]:
    return list(_senders)


def register(sender: Sender) -> None:
    _senders.append(sender)


def unregister(sender: Sender) -> None:
    _senders.remove(sender)
