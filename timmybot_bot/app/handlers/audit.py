"""The audit trail: query, verify, rotate the signing key."""

from __future__ import annotations

import attrs

from timmybot_bot.app.commands import Invocation, QueryAudit, RotateAuditKey, VerifyAudit
from timmybot_bot.app.recorder import AdminRecorder
from timmybot_bot.runtime.audit_keys import rotate_audit_signing_key
from timmybot_bot.runtime.settings import Settings
from timmybot_core import AuditPage, AuditTrailService
from timmybot_core.services.audit_verify import VerificationReport

__all__ = ["KeyRotated", "query_audit", "rotate_audit_key", "verify_audit"]


@attrs.frozen(kw_only=True)
class KeyRotated:
    """The old and the new signing key IDs."""

    old_key_id: str
    new_key_id: str
    recorded: bool


async def query_audit(
    command: QueryAudit, invocation: Invocation, *, audit: AuditTrailService
) -> AuditPage:
    """One page of matching records, newest first; a bad cursor raises ``DomainValueError``."""
    return await audit.get_audit_history(
        command.start,
        command.end,
        admin_id=command.admin_id,
        action=command.action_name,
        kind=command.kind,
        limit=command.limit,
        cursor=command.cursor,
    )


async def verify_audit(
    command: VerifyAudit, invocation: Invocation, *, audit: AuditTrailService
) -> VerificationReport:
    """Check every chain and digest, and the digests against the anchor, as the trail does."""
    return await audit.verify(command.start, command.end, observe=command.observe)


async def rotate_audit_key(
    command: RotateAuditKey, invocation: Invocation, *, settings: Settings, recorder: AdminRecorder
) -> KeyRotated:
    """Rotate the signing key; the old public key stays in the ring."""
    old, new = rotate_audit_signing_key(settings)
    recorded = await recorder.record(
        command, invocation, "audit-signing-key", {"old_key_id": old, "new_key_id": new}
    )
    return KeyRotated(old_key_id=old, new_key_id=new, recorded=recorded)
