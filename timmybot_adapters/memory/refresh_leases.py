"""RefreshLeases in memory."""

from __future__ import annotations

import threading
from datetime import datetime

import attrs

from timmybot_adapters.memory._dicts import delete_where
from timmybot_core.domain.snowflake import check_snowflake
from timmybot_core.domain.tokens import valid_platform
from timmybot_core.ports.refresh_leases import check_claim

__all__ = ["MemoryRefreshLeases"]


@attrs.define(kw_only=True)
class _Lease:
    holder: str | None
    fence: str | None
    until: datetime | None


class MemoryRefreshLeases:
    """The refresh leases of one process (see :mod:`timmybot_core.ports.refresh_leases`).

    A lock makes every method atomic, also across threads; none awaits while
    holding it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leases: dict[tuple[int, str], _Lease] = {}

    async def holder(self, user_id: int, platform: str) -> str | None:
        """Return the claim ID holding the lease now, or ``None``."""
        with self._lock:
            lease = self._leases.get(_key(user_id, platform))
            return None if lease is None else lease.holder

    async def acquire(
        self,
        user_id: int,
        platform: str,
        *,
        claim_id: str,
        fence: str,
        until: datetime,
        replaces: str | None = None,
    ) -> bool:
        """Take the lease for ``claim_id`` if free (or held by ``replaces`` with ``fence``)."""
        check_claim(claim_id, fence)
        key = _key(user_id, platform)
        with self._lock:
            lease = self._leases.get(key)
            if replaces is None:
                if lease is not None and (lease.holder is not None or lease.fence == fence):
                    return False
            elif lease is None or lease.holder != replaces or lease.fence != fence:
                return False
            self._leases[key] = _Lease(holder=claim_id, fence=fence, until=until)
            return True

    async def release(self, user_id: int, platform: str, *, claim_id: str, spent: bool) -> bool:
        """Free the lease if ``claim_id`` holds it; keep the fence if ``spent``."""
        key = _key(user_id, platform)
        with self._lock:
            lease = self._leases.get(key)
            if lease is None or lease.holder != claim_id:
                return False
            lease.holder, lease.until = None, None
            if not spent:
                lease.fence = None
            return True

    async def forget(self, user_id: int) -> None:
        """Delete every lease of ``user_id``."""
        check_snowflake(user_id, what="a user ID", allow_zero=True)
        with self._lock:
            delete_where(self._leases, lambda key, _: key[0] == user_id)


def _key(user_id: int, platform: str) -> tuple[int, str]:
    return check_snowflake(user_id, what="a user ID", allow_zero=True), valid_platform(platform)
