"""The rate limit in the bus: after the guard, owners and the operator exempt, told once."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest

from timmybot_bot.app.commands import CheckPlaylistName, Invocation, ListGuilds, SearchTracks
from timmybot_bot.app.failures import AccessDenied, RateLimited, RateLimitedAgain, failure_for
from timmybot_bot.app.replies import chat
from timmybot_bot.console.offline import LOCAL_OPERATOR, OfflineConsole
from timmybot_bot.runtime.bootstrap import Services
from timmybot_core import FakeClock, RateLimit, RateVerdict

from .conftest import AS_OWNER, AS_USER, USER

PLAYLIST = CheckPlaylistName(name="Halo")
TOLD = "Slow down (5 uses of this command per 10 s): try again in 10 s."
STRANGER = Invocation(user_id=USER, guild_id=999_999_999_999_999_999)


async def test_a_member_is_refused_after_the_limit_with_the_wait(
    services: Services, clock: FakeClock
) -> None:
    for _ in range(5):
        await services.bus.handle(PLAYLIST, AS_USER)
    clock.advance(timedelta(seconds=2.5))

    with pytest.raises(RateLimited) as refused:
        await services.bus.handle(PLAYLIST, AS_USER)

    assert type(refused.value) is RateLimited
    assert refused.value.seconds == 8  # 7.5 s, rounded up


async def test_one_reply_with_the_wait_then_quiet_replies(services: Services) -> None:
    replies = [await chat(services.bus, services.sanitizer, AS_USER, PLAYLIST) for _ in range(8)]

    assert [reply.text for reply in replies[:5]] == ["Playlist name accepted: Halo"] * 5
    told, *later = replies[5:]
    assert (told.text, told.ephemeral, told.quiet) == (TOLD, True, False)
    assert all(reply.quiet and reply.ephemeral for reply in later)


async def test_commands_that_spend_quota_are_limited_sooner(services: Services) -> None:
    search = SearchTracks(query="")  # rejected by the validator: no provider needed
    for _ in range(3):
        await services.bus.handle(search, AS_USER)

    with pytest.raises(RateLimited):
        await services.bus.handle(search, AS_USER)
    with pytest.raises(RateLimitedAgain):
        await services.bus.handle(search, AS_USER)


async def test_owners_and_the_local_operator_are_never_limited(services: Services) -> None:
    for _ in range(50):
        await services.bus.handle(PLAYLIST, AS_OWNER)
        await services.bus.handle(ListGuilds(), LOCAL_OPERATOR)


async def test_the_guard_runs_first_so_strangers_use_up_no_window(services: Services) -> None:
    for _ in range(30):
        with pytest.raises(AccessDenied):
            await services.bus.handle(PLAYLIST, STRANGER)

    # The same member in an allowed guild still has every hit of their windows.
    for _ in range(5):
        await services.bus.handle(PLAYLIST, AS_USER)


async def test_the_console_prints_the_wait_once(services: Services) -> None:
    out = io.StringIO()
    console = OfflineConsole(
        services, invocation=AS_USER, stdin=io.StringIO("/playlist Halo\n" * 9), stdout=out
    )

    await console.run()

    assert out.getvalue().splitlines() == [
        *["Playlist name accepted: Halo"] * 5,
        TOLD,
    ]


@pytest.mark.parametrize(
    ("scope", "limited"),
    [("user", "20 commands per 60 s"), ("guild", "120 commands in this server per 60 s")],
)
def test_the_reply_names_the_window_that_refused(scope: str, limited: str) -> None:
    rate = RateLimit(limit=int(limited.split()[0]), window=60)
    verdict = RateVerdict(allowed=False, retry_after=0.2, scope=scope, rate=rate)

    text = failure_for(RateLimited(verdict)).message(RateLimited(verdict))

    assert text == f"Slow down ({limited}): try again in 1 s."
