"""Tokens: the rotation job on demand, and the vault's rekey."""

from __future__ import annotations

import attrs

from timmybot_bot.app.commands import Invocation, RekeyVault, RunRotation
from timmybot_bot.app.failures import OperationFailed, UsageError
from timmybot_bot.app.recorder import AdminRecorder
from timmybot_bot.runtime.settings import Settings
from timmybot_bot.runtime.vault_rekey import RekeyError, RekeyOutcome, RekeyUsageError, rekey_vault
from timmybot_core import RotationReport, StoreUnavailable, TokenRotationService

__all__ = ["Rekeyed", "Rotated", "rekey", "run_rotation"]


@attrs.frozen(kw_only=True)
class Rotated:
    """The rotation's counts."""

    report: RotationReport
    recorded: bool


@attrs.frozen(kw_only=True)
class Rekeyed:
    """The rekey's outcome."""

    outcome: RekeyOutcome
    recorded: bool


async def run_rotation(
    command: RunRotation,
    invocation: Invocation,
    *,
    rotation: TokenRotationService,
    recorder: AdminRecorder,
) -> Rotated:
    """Refresh every token expiring within ``command.within``."""
    report = await rotation.rotate_expiring(command.within)
    recorded = await recorder.record(command, invocation, "tokens", report.as_dict())
    return Rotated(report=report, recorded=recorded)


async def rekey(
    command: RekeyVault, invocation: Invocation, *, settings: Settings, recorder: AdminRecorder
) -> Rekeyed:
    """Re-encrypt the vault under the plan's new key (see :mod:`~timmybot_bot.runtime.vault_rekey`).

    A failed rekey is recorded too; what was re-encrypted stays done.
    """
    plan = command.plan
    try:
        outcome = await rekey_vault(settings, plan, batch=command.batch, report=command.report)
    except RekeyUsageError as error:
        raise UsageError(str(error)) from None
    except (RekeyError, StoreUnavailable) as error:
        await recorder.record(
            command,
            invocation,
            "vault",
            {"old_key_id": plan.old_key_id, "new_key_id": plan.new_key_id, "outcome": "failed"},
        )
        raise OperationFailed(
            f"{error} (records re-encrypted so far stay done: run the same command again to finish)"
        ) from None
    recorded = await recorder.record(
        command,
        invocation,
        "vault",
        {
            "old_key_id": outcome.old_key_id,
            "new_key_id": outcome.new_key_id,
            "records": outcome.records,
            "preferences": outcome.preferences,
            "promoted": outcome.promoted,
            "outcome": "complete" if outcome.ok else "incomplete",
            "damaged": len(outcome.damaged),
        },
    )
    return Rekeyed(outcome=outcome, recorded=recorded)
