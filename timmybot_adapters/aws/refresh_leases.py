"""RefreshLeases on DynamoDB: one conditional item per (user, platform), in the access table.

A refresh on the aws backend claims its link here, not in the secret, so a
refresh writes exactly one secret version (in the manner of Powertools'
idempotency records: a conditional put of "in progress" with the
claimant's ID, a conditional release). Items (table ``timmybot-access``)::

    pk="refresh#<user>"  sk=<platform>  holder?, fence?, until?, ttl?

``<user>`` is the 20-digit zero-padded ID. ``holder`` is the claim ID of
the refresh running now (absent: free). ``fence`` is the digest of the
refresh token the last holder presented (see
:mod:`timmybot_core.ports.refresh_leases`). ``until`` is the holder's own
deadline in microseconds (for operators; never compared with any clock).

Conditions
    * Acquire a free lease: ``UpdateItem`` ``SET holder, fence, until
      REMOVE ttl`` if ``attribute_not_exists(holder) AND
      (attribute_not_exists(fence) OR fence <> :fence)``.
    * Take over a holder watched for the claim timeout: the same update if
      ``holder = :replaces AND fence = :fence``.
    * Release: ``UpdateItem`` ``REMOVE holder, until`` (and ``fence``
      unless spent) ``SET ttl`` if ``holder = :claim``.

    A held lease has no ``ttl``: DynamoDB never deletes a claim whose holder
    may have presented a refresh token, so its takeover rule always applies.
    A released item carries ``ttl`` one day ahead (garbage collection: a
    fence only matters while a stale read of the vault is possible).

    A request botocore retried after its first try was applied fails its
    own condition; the item is then read back (strongly consistent) and the
    claim ID decides. ``purge_expired`` of the access store ignores these
    items; erasure deletes them (:meth:`DynamoRefreshLeases.forget`).

Every DynamoDB error surfaces as
:class:`~timmybot_core.domain.errors.StoreUnavailable`, naming the operation.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Final

from timmybot_adapters.aws._dynamo import (
    DynamoStore,
    Item,
    id_key,
    micros,
    num,
    s,
    text_or_none,
)
from timmybot_core.domain.tokens import valid_platform
from timmybot_core.ports.refresh_leases import check_claim

__all__ = ["REFRESH_PARTITION", "DynamoRefreshLeases"]

REFRESH_PARTITION: Final = "refresh#"
_RELEASED_TTL: Final = 86_400
_NAMES: Final = {"#ttl": "ttl", "#until": "until"}


class DynamoRefreshLeases(DynamoStore):
    """The refresh leases on DynamoDB (see the module docstring for the design)."""

    LABEL = "refresh leases"

    def _key(self, user_id: int, platform: str) -> Item:
        return {"pk": s(f"{REFRESH_PARTITION}{id_key(user_id)}"), "sk": s(valid_platform(platform))}

    async def holder(self, user_id: int, platform: str) -> str | None:
        """Return the claim ID holding the lease now, or ``None`` (strongly consistent)."""
        item = await self._get_item("holder", self._key(user_id, platform))
        return None if item is None else text_or_none(item, "holder")

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
        """Take the lease for ``claim_id`` (one conditional ``UpdateItem``)."""
        check_claim(claim_id, fence)
        values: dict[str, Any] = {":claim": s(claim_id), ":fence": s(fence)}
        values[":until"] = num(micros(until))
        if replaces is None:
            condition = (
                "attribute_not_exists(holder) AND (attribute_not_exists(fence) OR fence <> :fence)"
            )
        else:
            condition = "holder = :replaces AND fence = :fence"
            values[":replaces"] = s(replaces)
        return await self._write_if(
            "acquire",
            self._db.update_item,
            Key=self._key(user_id, platform),
            UpdateExpression="SET holder = :claim, fence = :fence, #until = :until REMOVE #ttl",
            ConditionExpression=condition,
            ExpressionAttributeNames=_NAMES,
            ExpressionAttributeValues=values,
            applied_if=lambda item: text_or_none(item, "holder") == claim_id,
        )

    async def release(self, user_id: int, platform: str, *, claim_id: str, spent: bool) -> bool:
        """Free the lease if ``claim_id`` holds it; keep the fence if ``spent``."""
        removed = "holder, #until" if spent else "holder, #until, fence"
        return await self._write_if(
            "release",
            self._db.update_item,
            Key=self._key(user_id, platform),
            UpdateExpression=f"REMOVE {removed} SET #ttl = :ttl",
            ConditionExpression="holder = :claim",
            ExpressionAttributeNames=_NAMES,
            ExpressionAttributeValues={
                ":claim": s(claim_id),
                ":ttl": num(int(time.time()) + _RELEASED_TTL),
            },
            # A retried release that had been applied leaves the lease free.
            applied_if=lambda item: text_or_none(item, "holder") is None,
        )

    async def forget(self, user_id: int) -> None:
        """Delete every lease of ``user_id`` (one ``Query``, then batched deletes)."""
        items = await self._partition(
            "forget", f"{REFRESH_PARTITION}{id_key(user_id)}", ProjectionExpression="pk, sk"
        )
        await self._delete_keys("forget", [{"pk": item["pk"], "sk": item["sk"]} for item in items])
