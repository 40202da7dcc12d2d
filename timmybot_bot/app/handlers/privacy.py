"""A user's data: what is kept, a copy of it, its erasure (by the user or the owner)."""

from __future__ import annotations

from typing import Any

import attrs

from timmybot_bot.app.commands import (
    EraseMyData,
    EraseUserData,
    ExportMyData,
    ExportUserData,
    Invocation,
    PrivacyInfo,
    RequestErasure,
)
from timmybot_bot.app.recorder import AdminRecorder
from timmybot_core import DataDeletionError, DataRetentionService, ErasureReport, Requester
from timmybot_core.domain.classification import privacy_info_text

__all__ = [
    "ConfirmErasure",
    "Erasure",
    "Export",
    "PrivacyStatement",
    "erase_my_data",
    "erase_user_data",
    "export_my_data",
    "export_user_data",
    "privacy_info",
    "request_erasure",
]


@attrs.frozen(kw_only=True)
class PrivacyStatement:
    """What is kept about users, and why."""

    text: str


@attrs.frozen(kw_only=True)
class Export:
    """The export document (never a token)."""

    document: dict[str, Any] = attrs.field(repr=False)
    recorded: bool = True


@attrs.frozen(kw_only=True)
class ConfirmErasure:
    """The erasure waits for its caller to confirm; ``then`` runs it."""

    then: EraseMyData


@attrs.frozen(kw_only=True)
class Erasure:
    """An erasure's report; ``problem`` says what was left undone."""

    report: ErasureReport | None
    problem: str | None = None
    failed: tuple[str, ...] = ()
    recorded: bool = True


async def privacy_info(
    command: PrivacyInfo, invocation: Invocation, *, retention: DataRetentionService
) -> PrivacyStatement:
    """Return the privacy statement, with the configured audit retention."""
    return PrivacyStatement(
        text=privacy_info_text(audit_retention=retention.settings.audit_retention)
    )


async def export_my_data(
    command: ExportMyData, invocation: Invocation, *, retention: DataRetentionService
) -> Export:
    """Export the caller's own data (recorded as a privacy request by the retention service)."""
    return Export(document=await retention.export_user_data(invocation.user_id, Requester.USER))


async def request_erasure(command: RequestErasure, invocation: Invocation) -> ConfirmErasure:
    """Nothing is erased before the caller confirms."""
    return ConfirmErasure(then=EraseMyData())


async def _erase(retention: DataRetentionService, user_id: int, requester: Requester) -> Erasure:
    try:
        report = await retention.delete_user_data(user_id, requester)
    except DataDeletionError as error:
        return Erasure(report=error.report, problem=str(error), failed=tuple(error.failed))
    return Erasure(report=report)


async def erase_my_data(
    command: EraseMyData, invocation: Invocation, *, retention: DataRetentionService
) -> Erasure:
    """Erase the caller's data (recorded as a privacy request by the retention service)."""
    return await _erase(retention, invocation.user_id, Requester.USER)


async def export_user_data(
    command: ExportUserData,
    invocation: Invocation,
    *,
    retention: DataRetentionService,
    recorder: AdminRecorder,
) -> Export:
    """Export a user's data as the owner."""
    document = await retention.export_user_data(command.user_id, Requester.OWNER)
    recorded = await recorder.record(
        command,
        invocation,
        recorder.user_resource(command.user_id),
        {"to": "file" if command.to_file else "stdout"},
    )
    return Export(document=document, recorded=recorded)


async def erase_user_data(
    command: EraseUserData,
    invocation: Invocation,
    *,
    retention: DataRetentionService,
    recorder: AdminRecorder,
) -> Erasure:
    """Erase a user's data as the owner; what failed is in the result."""
    erasure = await _erase(retention, command.user_id, Requester.OWNER)
    report = erasure.report
    recorded = await recorder.record(
        command,
        invocation,
        recorder.user_resource(command.user_id),
        {
            "outcome": "complete" if erasure.problem is None else "incomplete",
            "deleted": report.deleted if report is not None else 0,
            "failed": list(report.failed) if report is not None else [],
        },
    )
    return attrs.evolve(erasure, recorded=recorded)
