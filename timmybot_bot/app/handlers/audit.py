"""The audit trail: query, verify, rotate the signing key."""

from __future__ import annotations

import attrs

from timmybot_bot.app.commands import Invocation, QueryAudit, RotateAuditKey, VerifyAudit
from timmybot_bot.app.recorder import AdminRecorder
from timmybot_bot.runtime.audit_keys import audit_keys, rotate_audit_signing_key
from timmybot_bot.runtime.settings import Settings
from timmybot_core import AuditPage, AuditTrailService, Clock
from timmybot_core.services.audit_verify import VerificationReport, verify_log

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
    """One page of matching records, newest first; a malformed cursor raises ``ValueError``."""
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
    command: VerifyAudit,
    invocation: Invocation,
    *,
    audit: AuditTrailService,
    settings: Settings,
    clock: Clock,
) -> VerificationReport:
    """Check every chain and digest, with the key ring the trail verifies with."""
    if command.observe is None:
        return await audit.verify(command.start, command.end)
    # The same key ring the trail verifies with (bootstrap loaded it from the
    # same settings); reading it again has no side effect.
    _, ring = audit_keys(settings)
    return await verify_log(
        command.observe(audit.log),
        ring,
        start=command.start,
        end=command.end,
        now=clock.now(),
        retention=audit.settings.retention,
        digest_interval=audit.settings.digest_interval,
        live=(audit.writer_id,),
    )


async def rotate_audit_key(
    command: RotateAuditKey, invocation: Invocation, *, settings: Settings, recorder: AdminRecorder
) -> KeyRotated:
    """Rotate the signing key; the old public key stays in the ring."""
    old, new = rotate_audit_signing_key(settings)
    recorded = await recorder.record(
        command, invocation, "audit-signing-key", {"old_key_id": old, "new_key_id": new}
    )
    return KeyRotated(old_key_id=old, new_key_id=new, recorded=recorded)
