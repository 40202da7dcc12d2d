"""What an erasure request did: who asked, and a report per store.

Domain types: the retention service makes them, ``DataDeletionError``
carries one, the front-ends show them.
"""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

__all__ = ["DeletionReport", "ErasureReport", "Requester"]


class Requester(enum.StrEnum):
    """Who asked for an erasure, after Red-DiscordBot's request types."""

    USER = "user"
    """The user asked for their own data to go (``/privacy delete``)."""
    OWNER = "owner"
    """A bot owner erased a user's data (for example on a request by mail)."""
    DISCORD_DELETED_USER = "discord_deleted_user"
    """Discord told the bot that the account was deleted."""


@attrs.frozen(kw_only=True)
class DeletionReport:
    """What erasure did in one store.

    ``deleted`` counts items (linked platforms, preferences, link states);
    ``ok`` is ``False`` when the store failed, and ``detail`` then names the
    error's type. A detail never holds a token or the user's ID.
    """

    store: str
    deleted: int = 0
    ok: bool = True
    detail: str = ""

    @property
    def final(self) -> bool:
        """Whether a failed step cannot be mended by running it again.

        The vault's step failed with items deleted: a grant its platform did
        not revoke; its tokens are gone here, so only the user can remove it there.
        """
        return self.store == "vault" and self.deleted > 0


@attrs.frozen(kw_only=True)
class ErasureReport:
    """The outcome of one erasure request: a :class:`DeletionReport` per store."""

    requester: Requester
    completed_at: datetime
    stores: tuple[DeletionReport, ...]
    audit_event_id: str | None = None
    """The audit record of the request; ``None`` if it could not be recorded."""
    request_id: str | None = None
    """The journal's ID of the request (``None`` without a journal)."""

    @property
    def ok(self) -> bool:
        """Whether every store was erased and the request recorded."""
        return all(report.ok for report in self.stores)

    @property
    def failed(self) -> tuple[str, ...]:
        """The stores that failed, in the order they were tried."""
        return tuple(report.store for report in self.stores if not report.ok)

    @property
    def retry_helps(self) -> bool:
        """Whether running the erasure again can mend what failed (:attr:`DeletionReport.final`)."""
        return any(not report.ok and not report.final for report in self.stores)

    @property
    def deleted(self) -> int:
        """Items deleted across every store."""
        return sum(report.deleted for report in self.stores)

    def store(self, name: str) -> DeletionReport:
        """Return the report of the store called ``name``."""
        for report in self.stores:
            if report.store == name:
                return report
        raise KeyError(name)

    def as_text(self) -> str:
        """Return the report as lines for a person to read."""
        lines = []
        for report in self.stores:
            state = "ok  " if report.ok else "FAIL"
            detail = f" ({report.detail})" if report.detail else ""
            lines.append(f"{state} {report.store}: {report.deleted} deleted{detail}")
        return "\n".join(lines)
