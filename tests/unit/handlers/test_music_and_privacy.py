"""Music and privacy handlers: typed results, no reply text."""

from __future__ import annotations

import pytest

from tests.unit.handlers.conftest import AS_USER, USER
from timmybot_bot.app import commands as c
from timmybot_bot.app.failures import UsageError
from timmybot_bot.app.handlers.music import Judged, Links, LinkStarted, Unlinked
from timmybot_bot.app.handlers.privacy import ConfirmErasure, Erasure, Export
from timmybot_bot.runtime.bootstrap import Services


async def test_a_rejected_query_is_judged_and_becomes_a_security_event(
    services: Services,
) -> None:
    judged = await services.bus.handle(c.SearchTracks(query="<script>x</script>"), AS_USER)
    assert isinstance(judged, Judged)
    assert judged.error is not None and judged.value is None


async def test_a_valid_query_needs_a_configured_catalog(services: Services) -> None:
    # "platform: halo" is a query like any other; with no catalog there is nothing to search.
    with pytest.raises(UsageError, match="none is configured"):
        await services.bus.handle(c.SearchTracks(query="platform: halo"), AS_USER)


async def test_link_gives_a_url_and_unknown_platforms_are_a_usage_error(
    services: Services,
) -> None:
    started = await services.bus.handle(c.LinkAccount(platform=" Spotify "), AS_USER)
    assert isinstance(started, LinkStarted)
    assert started.platform == "spotify" and started.url.startswith("https://")
    with pytest.raises(UsageError, match="one of: spotify"):
        await services.bus.handle(c.LinkAccount(platform="tidal"), AS_USER)


async def test_links_and_unlink_on_an_empty_vault(services: Services) -> None:
    assert await services.bus.handle(c.ShowLinks(), AS_USER) == Links(links=())
    assert await services.bus.handle(c.UnlinkAccount(platform="spotify"), AS_USER) == Unlinked(
        platform="spotify", removed=False
    )


async def test_privacy_export_and_erasure_of_the_callers_own_data(services: Services) -> None:
    exported = await services.bus.handle(c.ExportMyData(), AS_USER)
    assert isinstance(exported, Export)
    assert exported.document["user_id"] == str(USER)
    asked = await services.bus.handle(c.RequestErasure(), AS_USER)
    assert asked == ConfirmErasure(then=c.EraseMyData())
    erased = await services.bus.handle(asked.then, AS_USER)
    assert isinstance(erased, Erasure)
    assert erased.problem is None and erased.report is not None and erased.report.ok
