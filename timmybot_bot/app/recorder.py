"""Writing an admin action to the audit trail, once, under its command's fixed name."""

from __future__ import annotations

import getpass
import logging
import os
from collections.abc import Mapping

from timmybot_bot.app.commands import Command, Invocation
from timmybot_core import AuditTrailService, Pseudonymizer, PseudonymKind, StoreUnavailable

__all__ = ["AdminRecorder"]

_log = logging.getLogger("timmybot.commands")


def _os_account() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return f"uid:{os.getuid()}"


class AdminRecorder:
    """Records what an admin command did, as its invoker, from its front-end.

    The action is the command class's ``action``: the same whichever
    front-end ran it; only the record's ``source`` tells them apart. A
    caller at this machine's terminal is recorded with the pseudonym of the
    operating-system account too, so that local operators can be told apart.
    """

    def __init__(self, trail: AuditTrailService, pseudonymizer: Pseudonymizer) -> None:
        self._trail = trail
        self._pseudonymizer = pseudonymizer

    async def record(
        self,
        command: Command,
        invocation: Invocation,
        resource: str,
        details: Mapping[str, object] | None = None,
    ) -> bool:
        """Record ``command``; ``False`` (and a log line) if the trail could not take it."""
        action = type(command).action
        if action is None:  # pragma: no cover - a handler bug the command table test catches
            raise TypeError(f"{type(command).__name__} has no audit action")
        recorded = dict(details or {})
        if invocation.at_terminal:
            recorded["os_user"] = self._pseudonymizer.pseudonymize(
                PseudonymKind.ADMIN, f"os:{_os_account()}"
            )
        try:
            await self._trail.record_admin_action(
                invocation.user_id, action, resource, recorded, source=invocation.source
            )
        except StoreUnavailable:
            # The action happened; the front-end says it was not recorded.
            _log.warning("%s ran but could not be recorded in the audit trail", action)
            return False
        return True

    def user_resource(self, user_id: int) -> str:
        """Return the resource name of a user's data: their pseudonym, never the ID."""
        return f"user:{self._pseudonymizer.pseudonymize(PseudonymKind.USER, user_id)}"
