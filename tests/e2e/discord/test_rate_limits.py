"""Rate limits on Discord: one ephemeral reply with the wait, then silence for the episode."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from tests.e2e.discord.conftest import OWNER, Harness, MakeBot, only
from timmybot_adapters.memory import MemoryRateLimitStore
from timmybot_core import RateLimit

TOLD = "Slow down (5 uses of this command per 10 s): try again in 10 s."


async def test_a_limited_member_is_told_once_then_sent_nothing(discord_bot: Harness) -> None:
    for _ in range(5):
        only(await discord_bot.slash("linked"))

    told = only(await discord_bot.slash("linked"))
    later = [await discord_bot.slash("linked") for _ in range(3)]

    assert (told.kind, told.ephemeral, told.content) == ("reply", True, TOLD)
    # No request at all: a hammering member costs no Discord API call.
    assert later == [[], [], []]
    # Once the wait has passed, the command runs again.
    discord_bot.clock.advance(timedelta(seconds=10))
    assert (only(await discord_bot.slash("linked")).content or "").startswith("You have not linked")


async def test_the_reply_reads_exactly_like_the_consoles(discord_bot: Harness) -> None:
    for _ in range(5):
        await discord_bot.slash("linked")
    told = only(await discord_bot.slash("linked"))
    assert told.content == TOLD


async def test_a_deferred_interaction_is_still_closed_with_the_wait(
    make_bot: MakeBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A slow store gets the interaction deferred: a quiet reply must still
    # answer it, or Discord shows "thinking..." for fifteen minutes.
    bot = await make_bot(defer_after=0.01)
    for _ in range(6):
        await bot.slash("linked")
    acquire = MemoryRateLimitStore.acquire

    async def slow(self: MemoryRateLimitStore, key: str, rate: RateLimit, *, now: float) -> Any:
        await asyncio.sleep(0.05)
        return await acquire(self, key, rate, now=now)

    monkeypatch.setattr(MemoryRateLimitStore, "acquire", slow)

    sent = await bot.slash("linked")

    assert [request.kind for request in sent] == ["defer", "followup"]
    assert sent[1].content == TOLD


async def test_owners_are_never_limited(discord_bot: Harness) -> None:
    for _ in range(12):
        sent = only(await discord_bot.slash("linked", user=OWNER))
        assert (sent.content or "").startswith("You have not linked")
