"""How replies reach Discord: errors, deferral, direct messages with files, confirmations.

Some tests stand a scripted reply in for ``/privacy`` (in place of the
runner's ``chat`` step), to pin the Discord layer's side of the
``Reply`` contract (``direct`` + ``attachment``, ``confirmation``) whatever
the real privacy handler does; ``test_privacy.py`` drives the real one.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import attrs
import pytest

from tests.e2e.discord import payloads as p
from tests.e2e.discord.conftest import (
    OTHER_USER,
    OWNER,
    USER,
    Harness,
    MakeBot,
    only,
)
from timmybot_bot.app.commands import Command, Invocation, ShowLinks
from timmybot_bot.app.replies import Attachment, Confirmation, Reply
from timmybot_bot.discord import runner as runner_module
from timmybot_bot.discord.errors import UNEXPECTED
from timmybot_core import StoreUnavailable, Switch, VersionConflict

Handler = Callable[..., object]


def stand_in(monkeypatch: pytest.MonkeyPatch, name: str, scripted: Handler) -> None:
    """Answer the slash command ``name`` with ``scripted(bus, invocation, "")``'s reply."""
    chat = runner_module.chat

    async def scripted_chat(
        bus: Any, sanitizer: Any, invocation: Invocation, command: Command
    ) -> Reply:
        if type(command).guard_name == name:
            return await scripted(bus, invocation, "")  # type: ignore[misc]
        return await chat(bus, sanitizer, invocation, command)

    monkeypatch.setattr(runner_module, "chat", scripted_chat)


# -- the error handler -------------------------------------------------------


async def test_an_unexpected_error_gets_a_friendly_private_reply_and_a_log_without_secrets(
    discord_bot: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(user_id: int) -> None:
        raise RuntimeError("refresh_token=canary-rt-secret leaked into a message")

    monkeypatch.setattr(discord_bot.services.tokens, "get_user_tokens", broken)
    with caplog.at_level(logging.DEBUG, logger="timmybot"):
        sent = only(await discord_bot.slash("linked"))
    assert sent.kind == "reply"
    assert sent.ephemeral
    assert sent.content == UNEXPECTED
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("timmybot")]
    assert any("/linked failed: RuntimeError at " in line for line in lines), lines
    everything = " ".join(lines) + " ".join(str(r.exc_info) for r in caplog.records)
    assert "canary-rt-secret" not in everything


async def test_domain_errors_that_escape_a_command_get_their_own_wording(
    discord_bot: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def conflict(user_id: int) -> None:
        raise VersionConflict("the record changed")

    monkeypatch.setattr(discord_bot.services.tokens, "get_user_tokens", conflict)
    sent = only(await discord_bot.slash("linked"))
    assert sent.content == "TimmyBot could not finish that right now; please try again soon."
    assert sent.ephemeral


async def test_a_failed_send_is_logged_without_the_interaction_token(
    discord_bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    discord_bot.discord.failing_paths.append("/callback")
    with caplog.at_level(logging.DEBUG, logger="timmybot"):
        requests = await discord_bot.slash("linked")
    # The reply failed, and so did the error reply; neither raised.
    assert [sent.kind for sent in requests] == ["reply", "reply"]
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("timmybot")]
    assert any("InternalServerError (status 500, code 0)" in line for line in lines), lines
    assert not any("interaction-token-" in line for line in lines)


async def test_a_malformed_interaction_gets_the_generic_reply(discord_bot: Harness) -> None:
    # A client that omits a required option (Discord's own UI never does).
    sent = only(await discord_bot.slash("unlink"))
    assert sent.content == UNEXPECTED
    assert sent.ephemeral


# -- timing ---------------------------------------------------------------------


async def test_a_slow_command_is_deferred_privately_then_answered(
    make_bot: MakeBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = await make_bot(defer_after=0.01)

    async def slow(services: object, invocation: Invocation, args: str) -> Reply:
        await asyncio.sleep(0.2)
        return Reply(text="Your data: nothing yet.", ephemeral=True)

    stand_in(monkeypatch, "privacy", slow)
    requests = await bot.slash("privacy", p.sub("info"))
    assert [sent.kind for sent in requests] == ["defer", "followup"]
    assert requests[0].ephemeral
    assert requests[1].content == "Your data: nothing yet."


async def test_a_quick_command_is_answered_at_once(discord_bot: Harness) -> None:
    requests = await discord_bot.slash("linked")
    assert [sent.kind for sent in requests] == ["reply"]


# -- what the text may contain ------------------------------------------------------


async def test_mentions_in_replies_are_neutralized_and_disabled(
    discord_bot: Harness,
) -> None:
    declare = p.sub(
        "incident",
        p.sub("declare", p.string("severity", "P3"), p.string("title", "@everyone <@&1> <@2>")),
    )
    sent = only(await discord_bot.slash("admin", declare, user=OWNER))
    assert "@everyone" not in (sent.content or "")
    assert "<@" not in (sent.content or "")
    assert sent.message["allowed_mentions"] == {"parse": []}


async def test_a_reply_longer_than_discord_allows_is_cut(
    discord_bot: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def chatty(services: object, invocation: Invocation, args: str) -> Reply:
        return Reply(text="x" * 2500, ephemeral=True)

    stand_in(monkeypatch, "privacy", chatty)
    sent = only(await discord_bot.slash("privacy", p.sub("info")))
    assert len(sent.content or "") == 2000
    assert (sent.content or "").endswith("…")


# -- direct messages with a file ------------------------------------------------------

EXPORT = b'{"user": "pseudonymous", "links": []}'


async def export(services: object, invocation: Invocation, args: str) -> Reply:
    return Reply(
        text="Your TimmyBot data is attached.",
        direct=True,
        attachment=Attachment(filename="timmybot-data.json", content=EXPORT),
    )


async def test_a_direct_reply_goes_to_the_callers_dms_with_the_file(
    discord_bot: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in(monkeypatch, "privacy", export)
    requests = await discord_bot.slash("privacy", p.sub("export"))
    assert [sent.kind for sent in requests] == ["open-dm", "dm-message", "reply"]
    opened, dm, note = requests
    assert opened.body == {"recipient_id": str(USER)}
    assert dm.content == "Your TimmyBot data is attached."
    assert dm.files == [("timmybot-data.json", EXPORT)]
    assert json.loads(dm.files[0][1])  # a JSON document
    # Nothing of the export is shown in the channel.
    assert note.ephemeral
    assert note.content == "Sent to you in a direct message."
    assert note.files == []


async def test_closed_dms_get_a_clear_reply(
    discord_bot: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in(monkeypatch, "privacy", export)
    discord_bot.discord.closed_dms.add(USER)
    requests = await discord_bot.slash("privacy", p.sub("export"))
    note = requests[-1]
    assert note.ephemeral
    assert note.content == (
        "I could not send you a direct message. Allow direct messages from this server's "
        "members (Privacy Settings) and run /privacy export again."
    )


# -- confirmation buttons -------------------------------------------------------------


class Deletion:
    """A scripted ``/privacy delete``: asks first, counts how often the action ran."""

    def __init__(self) -> None:
        self.runs: list[int] = []

    async def __call__(self, services: object, invocation: Invocation, args: str) -> Reply:
        async def action() -> Reply:
            self.runs.append(invocation.user_id)
            return Reply(text="Deleted: 3 records.", ephemeral=True)

        return Reply(
            text="This deletes everything TimmyBot keeps about you.",
            ephemeral=True,
            confirmation=Confirmation(
                prompt="Delete it all?", label="Delete my data", action=action
            ),
        )


@pytest.fixture
def deletion(monkeypatch: pytest.MonkeyPatch) -> Deletion:
    scripted = Deletion()
    stand_in(monkeypatch, "privacy", scripted)
    return scripted


async def ask(bot: Harness) -> tuple[str, str]:
    prompt = only(await bot.slash("privacy", p.sub("delete")))
    assert prompt.ephemeral
    assert prompt.content == ("This deletes everything TimmyBot keeps about you.\nDelete it all?")
    assert prompt.button_labels == ["Delete my data", "Cancel"]
    confirm, cancel = prompt.custom_ids
    return confirm, cancel


async def test_confirming_runs_the_action_once_and_replaces_the_prompt(
    discord_bot: Harness, deletion: Deletion
) -> None:
    confirm, _ = await ask(discord_bot)
    assert deletion.runs == []
    done = only(await discord_bot.press(confirm))
    assert done.kind == "update"
    assert done.content == "Deleted: 3 records."
    assert done.message["components"] == []
    assert deletion.runs == [USER]

    # A second press (a double click that got through) does nothing more.
    again = await discord_bot.press(confirm)
    assert again == []
    assert deletion.runs == [USER]


async def test_two_presses_at_once_run_the_action_once(
    discord_bot: Harness, deletion: Deletion
) -> None:
    confirm, _ = await ask(discord_bot)
    await asyncio.gather(discord_bot.press(confirm), discord_bot.press(confirm))
    assert deletion.runs == [USER]


async def test_only_the_invoker_can_confirm(discord_bot: Harness, deletion: Deletion) -> None:
    confirm, cancel = await ask(discord_bot)
    for button in (confirm, cancel):
        refused = only(await discord_bot.press(button, user=OTHER_USER))
        assert refused.kind == "reply"
        assert refused.ephemeral
        assert refused.content == "Only the person who ran /privacy delete can answer this."
    assert deletion.runs == []
    # The invoker still can.
    only(await discord_bot.press(confirm))
    assert deletion.runs == [USER]


async def test_cancel_runs_nothing(discord_bot: Harness, deletion: Deletion) -> None:
    confirm, cancel = await ask(discord_bot)
    cancelled = only(await discord_bot.press(cancel))
    assert cancelled.kind == "update"
    assert cancelled.content == "Cancelled; nothing was changed."
    assert cancelled.message["components"] == []
    assert await discord_bot.press(confirm) == []
    assert deletion.runs == []


async def test_a_confirmation_expires(discord_bot: Harness, deletion: Deletion) -> None:
    confirm, _ = await ask(discord_bot)
    discord_bot.clock.advance(timedelta(minutes=5))
    expired = only(await discord_bot.press(confirm))
    assert expired.kind == "update"
    assert expired.content == (
        "This confirmation expired; nothing was changed. Run /privacy delete again if you "
        "still want to."
    )
    assert deletion.runs == []


async def test_an_unanswered_confirmation_loses_its_buttons(
    make_bot: MakeBot, deletion: Deletion
) -> None:
    bot = await make_bot(confirm_timeout=timedelta(milliseconds=50))
    confirm, _ = await ask(bot)
    async with asyncio.timeout(10):
        # The expiry timer edits the message from its own task; the fake
        # Discord only records requests, so polling it is the simple wait.
        while not bot.discord.requests:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    edit = only(bot.discord.take())
    assert edit.kind == "edit"
    assert edit.path.endswith("/messages/@original")
    assert edit.message["components"] == []
    assert (edit.content or "").startswith("This confirmation expired")
    late = only(await bot.press(confirm))
    assert late.ephemeral
    assert late.content == edit.content
    assert deletion.runs == []


async def test_the_guard_is_asked_again_when_confirming_a_guarded_command(
    discord_bot: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    deletion = Deletion()
    chat = runner_module.chat

    async def guarded(bus: Any, invocation: Invocation, args: str) -> Reply:
        asked = await deletion(bus, invocation, args)
        assert asked.confirmation is not None
        action = asked.confirmation.action

        async def confirmed() -> Reply:
            # What a confirmed command does: it goes through the bus again.
            reply = await chat(bus, discord_bot.services.sanitizer, invocation, ShowLinks())
            return reply if reply.text.startswith("Denied") else await action()

        return attrs.evolve(asked, confirmation=attrs.evolve(asked.confirmation, action=confirmed))

    stand_in(monkeypatch, "unlink", guarded)  # /unlink is guarded
    prompt = only(await discord_bot.slash("unlink", p.string("platform", "spotify")))
    confirm = prompt.custom_ids[0]
    await discord_bot.services.access.set_switch(
        Switch.KILL_SWITCH, True, reason="incident", actor=OWNER
    )
    denied = only(await discord_bot.press(confirm))
    assert denied.content == "Denied: TimmyBot is paused by its operators. Please try again later."
    assert deletion.runs == []


async def test_a_failing_action_gets_a_friendly_reply_in_place_of_the_prompt(
    discord_bot: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing(services: object, invocation: Invocation, args: str) -> Reply:
        async def action() -> Reply:
            raise StoreUnavailable("vault: database is locked")

        return Reply(
            text="Sure?",
            ephemeral=True,
            confirmation=Confirmation(prompt="", label="Yes", action=action),
        )

    stand_in(monkeypatch, "privacy", failing)
    prompt = only(await discord_bot.slash("privacy", p.sub("delete")))
    assert prompt.content == "Sure?"
    failed = only(await discord_bot.press(prompt.custom_ids[0]))
    assert failed.kind == "update"
    assert failed.content == "A TimmyBot store is unavailable right now; try again soon."
    assert failed.message["components"] == []


async def test_a_slow_action_is_deferred_then_replaces_the_prompt(
    make_bot: MakeBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = await make_bot(defer_after=0.01)

    async def slow(services: object, invocation: Invocation, args: str) -> Reply:
        async def action() -> Reply:
            await asyncio.sleep(0.2)
            return Reply(text="Deleted.", ephemeral=True)

        return Reply(
            text="Sure?",
            ephemeral=True,
            confirmation=Confirmation(prompt="", label="Yes", action=action),
        )

    stand_in(monkeypatch, "privacy", slow)
    prompt = only(await bot.slash("privacy", p.sub("delete")))
    requests = await bot.press(prompt.custom_ids[0])
    assert [sent.kind for sent in requests] == ["defer-update", "edit"]
    assert requests[1].content == "Deleted."
    assert requests[1].message["components"] == []


async def test_a_press_that_cannot_be_answered_is_logged_without_the_token(
    discord_bot: Harness, deletion: Deletion, caplog: pytest.LogCaptureFixture
) -> None:
    _, cancel = await ask(discord_bot)
    discord_bot.discord.failing_paths.append("/callback")
    with caplog.at_level(logging.DEBUG):
        await discord_bot.press(cancel, user=OTHER_USER)  # refused, and the refusal fails
    assert any(
        "a confirmation press failed: InternalServerError" in record.getMessage()
        for record in caplog.records
    )
    assert not any("interaction-token-" in record.getMessage() for record in caplog.records)
    assert deletion.runs == []


async def test_custom_ids_are_unguessable_and_differ_per_prompt(
    discord_bot: Harness, deletion: Deletion
) -> None:
    first = await ask(discord_bot)
    second = await ask(discord_bot)
    assert set(first).isdisjoint(second)
    for custom_id in (*first, *second):
        assert len(custom_id.rsplit(":", 1)[-1]) >= 22  # 128 random bits, base64url


async def test_an_unknown_button_is_ignored(discord_bot: Harness, deletion: Deletion) -> None:
    await ask(discord_bot)
    assert await discord_bot.press("timmybot:confirm:forged") == []
    assert deletion.runs == []
