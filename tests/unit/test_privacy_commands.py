"""The /privacy commands, through run_command and the offline console."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.unit.fake_oauth import FakeOAuthClient
from timmybot_bot.app.commands import Invocation
from timmybot_bot.app.replies import Reply
from timmybot_bot.console.lines import run_command
from timmybot_bot.console.offline import CONFIRM_PROMPT, OfflineConsole
from timmybot_bot.runtime.bootstrap import Services, Settings, bootstrap
from timmybot_core import FakeClock, StoreUnavailable
from timmybot_core.domain.classification import NOT_COLLECTED
from timmybot_core.domain.errors import ProviderUnavailable
from timmybot_core.domain.tokens import OAuthTokens

USER = 444_444_444_444_444_444
OTHER = 555_555_555_555_555_555
STRANGER_GUILD = 333_333_333_333_333_333
SCHEMA = json.loads(
    (Path(__file__).parents[2] / "docs/schemas/user-export.schema.json").read_text("utf-8")
)


@pytest.fixture
async def services() -> AsyncIterator[Services]:
    clock = FakeClock()
    built = bootstrap(
        Settings(backend="memory", allow_direct_messages=False),
        clock=clock,
        oauth=FakeOAuthClient(clock),
    )
    yield built
    await built.aclose()


def as_user(user_id: int = USER, guild_id: int | None = STRANGER_GUILD) -> Invocation:
    return Invocation(user_id=user_id, guild_id=guild_id)


async def linked_user(services: Services, user_id: int = USER) -> OAuthTokens:
    oauth = services.oauth
    assert isinstance(oauth, FakeOAuthClient)
    tokens = oauth.issue("spotify")
    await services.tokens.store_user_tokens(user_id, tokens)
    await services.user_data.set_preference(user_id, "volume", 55, at=services.clock.now())
    return tokens


async def privacy(services: Services, args: str, who: Invocation | None = None) -> Reply:
    return await run_command(services, who or as_user(), "privacy", args)


# /privacy info


@pytest.mark.parametrize("args", ["info", "", "  info  "])
async def test_info_says_what_is_kept_and_how_to_use_the_rights(
    services: Services, args: str
) -> None:
    reply = await privacy(services, args)
    assert reply.ephemeral and not reply.direct and reply.attachment is None
    assert len(reply.text) <= 2000
    assert "/privacy export" in reply.text and "/privacy delete" in reply.text
    assert "365 days" in reply.text
    for item in NOT_COLLECTED:
        assert item.what in reply.text


@pytest.mark.parametrize("guild_id", [STRANGER_GUILD, None])
async def test_privacy_works_outside_allowlisted_guilds_and_in_direct_messages(
    services: Services, guild_id: int | None
) -> None:
    # Denied for a guarded command...
    denied = await run_command(services, as_user(guild_id=guild_id), "linked", "")
    assert denied.text.startswith("Denied")
    # ...but a user's rights do not depend on where they ask.
    for args in ("info", "export", "delete"):
        reply = await privacy(services, args, as_user(guild_id=guild_id))
        assert not reply.text.startswith("Denied"), args


async def test_an_unknown_subcommand_shows_the_usage(services: Services) -> None:
    reply = await privacy(services, "forget me")
    assert reply.text == "Usage: /privacy info | /privacy export | /privacy delete"


# /privacy export


async def test_export_sends_the_callers_data_by_direct_message(services: Services) -> None:
    issued = await linked_user(services)
    await linked_user(services, OTHER)

    reply = await privacy(services, "export")

    assert reply.direct and reply.ephemeral
    assert reply.attachment is not None
    assert reply.attachment.filename == "timmybot-data.json"
    data = json.loads(reply.attachment.content.decode("utf-8"))
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    assert data["user_id"] == str(USER)
    assert [p["platform"] for p in data["linked_platforms"]] == ["spotify"]
    assert data["preferences"]["volume"]["value"] == 55
    everything = reply.text + reply.attachment.content.decode("utf-8") + repr(reply)
    assert issued.access_token not in everything
    assert issued.refresh_token is not None and issued.refresh_token not in everything
    assert "canary-" not in everything


async def test_an_export_that_cannot_be_completed_is_not_sent(services: Services) -> None:
    async def down(user_id: int) -> Any:
        raise StoreUnavailable("user data store: get_preferences failed")

    services.user_data.get_preferences = down  # type: ignore[method-assign]
    reply = await privacy(services, "export")
    assert reply.attachment is None
    assert "unavailable" in reply.text


# /privacy delete


async def test_delete_asks_first_and_changes_nothing_until_confirmed(services: Services) -> None:
    await linked_user(services)
    reply = await privacy(services, "delete")
    assert reply.confirmation is not None
    assert "cannot be undone" in reply.text
    assert reply.confirmation.label == "Delete my data"
    assert await services.vault.get(USER) is not None
    assert len(await services.user_data.get_preferences(USER)) == 1


async def test_confirming_deletes_the_callers_data_and_reports_per_store(
    services: Services,
) -> None:
    issued = await linked_user(services)
    await linked_user(services, OTHER)
    reply = await privacy(services, "delete")
    assert reply.confirmation is not None

    done = await reply.confirmation.action()

    assert done.text.startswith("Your data is deleted.")
    assert "vault: 1 deleted" in done.text
    assert "preferences: 1 deleted" in done.text
    assert await services.vault.get(USER) is None
    assert await services.user_data.get_preferences(USER) == []
    assert await services.vault.get(OTHER) is not None
    assert issued.access_token not in done.text


async def test_a_partial_deletion_says_what_failed_and_a_second_run_finishes(
    services: Services,
) -> None:
    await linked_user(services)
    store = services.user_data
    original = store.delete_user

    async def broken(user_id: int) -> int:
        raise StoreUnavailable("user data store: delete_user failed")

    store.delete_user = broken  # type: ignore[method-assign]
    first = await privacy(services, "delete")
    assert first.confirmation is not None
    partial = await first.confirmation.action()
    assert "only partly deleted: preferences failed" in partial.text
    assert "Run /privacy delete again" in partial.text
    assert await services.vault.get(USER) is None

    store.delete_user = original  # type: ignore[method-assign]
    second = await privacy(services, "delete")
    assert second.confirmation is not None
    finished = await second.confirmation.action()
    assert finished.text.startswith("Your data is deleted.")
    assert await services.user_data.get_preferences(USER) == []


async def test_a_revocation_the_platform_refused_is_said_in_the_reply(
    services: Services,
) -> None:
    await linked_user(services)
    oauth = services.oauth
    assert isinstance(oauth, FakeOAuthClient)

    async def refused(platform: str, *, token: str) -> bool:
        raise ProviderUnavailable("the platform did not answer", platform=platform)

    oauth.revoke = refused  # type: ignore[method-assign]
    reply = await privacy(services, "delete")
    assert reply.confirmation is not None
    done = await reply.confirmation.action()

    assert "only partly deleted: vault failed" in done.text
    assert "revocation failed at spotify" in done.text
    assert "remove TimmyBot's access in that platform's account settings" in done.text
    assert "Run /privacy delete again" not in done.text
    # Deleted here all the same.
    assert await services.vault.get(USER) is None


# The console


async def run_console(services: Services, text: str) -> str:
    out = io.StringIO()
    console = OfflineConsole(
        services, invocation=as_user(), stdin=io.StringIO(text), stdout=out, interactive=False
    )
    assert await console.run() == 0
    return out.getvalue()


async def test_the_console_prints_the_exported_json(services: Services) -> None:
    issued = await linked_user(services)
    out = await run_console(services, "/privacy export\n")
    first, _, rest = out.partition("\n")
    assert first.startswith("Here is a copy of the data TimmyBot keeps about you")
    data = json.loads(rest)
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    assert issued.access_token not in out


async def test_the_console_deletes_only_after_yes(services: Services) -> None:
    await linked_user(services)
    out = await run_console(services, "/privacy delete\nno\n")
    assert CONFIRM_PROMPT in out
    assert out.rstrip().endswith("Cancelled: nothing was changed.")
    assert await services.vault.get(USER) is not None

    out = await run_console(services, "/privacy delete\nyes\n/whoami\n")
    lines = out.splitlines()
    assert any(line.startswith("Your data is deleted.") for line in lines)
    assert lines[-1].startswith("You are user")  # the console goes on afterwards
    assert await services.vault.get(USER) is None


async def test_a_command_line_is_not_taken_as_the_answer(services: Services) -> None:
    await linked_user(services)
    out = await run_console(services, "/privacy delete\n/privacy delete\n")
    assert "Cancelled" in out
    assert await services.vault.get(USER) is not None


async def test_end_of_input_while_asking_deletes_nothing(services: Services) -> None:
    await linked_user(services)
    out = await run_console(services, "/privacy delete\n")
    assert CONFIRM_PROMPT in out
    assert await services.vault.get(USER) is not None
