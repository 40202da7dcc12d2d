"""Worker processes for the multi-process refresh race (imported by spawn)."""

from __future__ import annotations

import asyncio
import logging
from multiprocessing.synchronize import Barrier
from pathlib import Path
from queue import Queue

from timmybot_bot.demo.provider import demo_provider_config
from timmybot_bot.runtime.bootstrap import Settings, bootstrap


async def _race(
    data_dir: str, vault_key: str, base_url: str, redirect_uri: str, user_id: int, barrier: Barrier
) -> list[str]:
    logging.getLogger("timmybot").addHandler(logging.NullHandler())
    logging.getLogger("timmybot").propagate = False
    settings = Settings(backend="sqlite", data_dir=Path(data_dir), vault_key=vault_key)
    services = bootstrap(settings, extra_providers=[demo_provider_config(base_url, redirect_uri)])
    try:
        await services.tokens.get_user_tokens(user_id)  # open the database before the race
        services.tokens.invalidate(user_id)
        barrier.wait()
        return list(
            await asyncio.gather(
                *(services.tokens.get_valid_access_token(user_id, "demo") for _ in range(25))
            )
        )
    finally:
        await services.aclose()


def refresh_race(
    data_dir: str,
    vault_key: str,
    base_url: str,
    redirect_uri: str,
    user_id: int,
    barrier: Barrier,
    results: Queue[object],
) -> None:
    """Read one user's expired token 25 times at once; report the access tokens got."""
    try:
        results.put(
            asyncio.run(_race(data_dir, vault_key, base_url, redirect_uri, user_id, barrier))
        )
    except Exception as error:  # noqa: BLE001 - report to the parent, which fails the test
        results.put(f"error: {type(error).__name__}: {error}")
