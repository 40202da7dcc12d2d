"""RateLimitStore on DynamoDB: one limit per key for every shard, anywhere.

Items (table ``timmybot-access``, keys ``pk``/``sk``)::

    pk="rate#<key>"  sk="window"  hits, version, writer, ttl

* ``hits``: the key's hit log, JSON ``[[moment, hit id], ...]`` by moment
  (the port's :func:`~timmybot_core.ports.rate_limits.encode_hits`), at most
  :data:`~timmybot_core.ports.rate_limits.MAX_LIMIT` hits, so an item stays
  far below DynamoDB's 400 KB.
* ``version``: a number every write raises by one.
* ``writer``: a random ID of the write, to recognise our own write when a
  retried request finds its condition false.
* ``ttl``: the last hit + window + ``ttl_margin`` (epoch seconds, rounded
  up): DynamoDB deletes the item some time after no hit of it counts. The
  margin covers clocks that disagree with DynamoDB's.

One item per key: the partition key spreads keys over partitions, and the
port's window step (:func:`~timmybot_core.ports.rate_limits.take_hit`) runs
on the one item a single conditional write can replace.

Atomicity (optimistic): an acquire reads the item (strongly consistent),
runs the window step, and writes the new log with ``PutItem`` conditioned on
the version it read (``attribute_not_exists(pk)`` for a new key). When
another shard wrote in between, the condition fails: the acquire reads
again and retries after a short random pause (full jitter, growing from 5 ms
to 250 ms), up to ``max_tries`` writes; then ``StoreUnavailable``. Each key's
writes are thus a sequence of versions, each one made from the one before,
so exactly ``limit`` hits are allowed in a window, across any number of
processes. A refusal writes nothing (the read it was made from is its
answer), so a key under a flood costs one read per refused call and only
the allowed hits contend. A release removes the hit the same way; a log
left empty stays as an empty item until its ``ttl``.

A request whose first try was applied but whose answer was lost is
retried by botocore and fails its condition: the re-read then finds the
acquire's hit, or the release's ``writer``, and answers as the write did.

Expiry: reads never trust TTL. The window step compares every hit's moment
with the caller's ``now``, so an item DynamoDB has not deleted yet counts
only the hits inside the window. ``now`` must therefore be Unix epoch
seconds for the ``ttl`` to mean anything.

Every DynamoDB error surfaces as
:class:`~timmybot_core.domain.errors.StoreUnavailable` naming the operation
and the AWS error code, never the key (it holds user and guild IDs).
"""

from __future__ import annotations

import asyncio
import math
import random
import secrets
import uuid
from typing import Any, Final

from timmybot_adapters.aws._dynamo import DynamoStore, Item, num, number, s, text
from timmybot_adapters.aws.clients import AwsClients
from timmybot_core.domain.errors import StoreUnavailable
from timmybot_core.ports.rate_limits import (
    Hit,
    RateDecision,
    RateLimit,
    check_hit_id,
    check_key,
    check_moment,
    decode_hits,
    drop_hit,
    encode_hits,
    expiry_of,
    take_hit,
)

__all__ = ["RATE_PK_PREFIX", "RATE_SK", "DynamoRateLimitStore"]

RATE_PK_PREFIX: Final = "rate#"
"""The partition key of a rate-limit key's item is this prefix and the key."""
RATE_SK: Final = "window"
"""The sort key of every rate-limit item."""

_FIRST_PAUSE: Final = 0.005
_LONGEST_PAUSE: Final = 0.25
_NAMES: Final = {"#version": "version"}


class DynamoRateLimitStore(DynamoStore):
    """The rate-limit store on a DynamoDB table (see the module docstring)."""

    LABEL = "rate limit store"

    def __init__(
        self,
        aws: AwsClients,
        table: str,
        *,
        ttl_margin: float = 300.0,
        max_tries: int = 16,
    ) -> None:
        """Keep the items of ``table`` (the access table).

        Args:
            aws: The clients.
            table: The table's name.
            ttl_margin: Seconds the ``ttl`` of an item lies beyond its last
                hit's window (clock differences with DynamoDB).
            max_tries: Conditional writes one call tries before it gives up
                on a contended key with ``StoreUnavailable``.

        """
        super().__init__(aws, table)
        if not 0 <= ttl_margin <= 86_400 * 30:
            raise ValueError(f"{self.LABEL}: ttl_margin must be 0 to 30 days of seconds")
        if isinstance(max_tries, bool) or not isinstance(max_tries, int) or max_tries < 1:
            raise ValueError(f"{self.LABEL}: max_tries must be a positive integer")
        self._margin = ttl_margin
        self._tries = max_tries

    def _key(self, key: str) -> Item:
        return {"pk": s(RATE_PK_PREFIX + key), "sk": s(RATE_SK)}

    async def acquire(self, key: str, rate: RateLimit, *, now: float) -> RateDecision:
        """Count one hit of ``key`` at ``now`` if the window has room (optimistic, retried)."""
        check_key(key)
        moment = check_moment(now)
        hit_id = secrets.token_hex(8)
        item = await self._read("acquire", key)
        for attempt in range(self._tries):
            decision, kept = take_hit(_hits(item), rate, now=moment, hit_id=hit_id)
            if not decision.allowed:
                return decision
            new: Item = {
                **self._key(key),
                "hits": s(encode_hits(kept)),
                "version": num(_version(item) + 1),
                "writer": s(uuid.uuid4().hex),
                "ttl": num(math.ceil(expiry_of(kept, rate.window) + self._margin)),
            }
            if await self._put("acquire", new, item):
                return decision
            item = await self._read("acquire", key)
            if any(hit[1] == hit_id for hit in _hits(item)):
                # A retried request of ours that had been applied.
                return decision
            await _pause(attempt)
        raise self._contended("acquire")

    async def release(self, key: str, hit_id: str) -> bool:
        """Give back a counted hit; ``True`` if it was still counted.

        A retried request whose first try was applied is recognised by its
        ``writer`` unless another shard wrote the key in between; then the
        hit is gone and the answer is ``False``.
        """
        check_key(key)
        check_hit_id(hit_id)
        item = await self._read("release", key)
        for attempt in range(self._tries):
            if item is None:
                return False
            kept = drop_hit(_hits(item), hit_id)
            if kept is None:
                return False
            writer = uuid.uuid4().hex
            # An emptied log is written, not deleted: the ``writer`` of an
            # item is what tells a retried release that its write was applied.
            # The empty item keeps its ``ttl`` and goes with it.
            new: Item = {
                **item,
                "hits": s(encode_hits(kept)),
                "version": num(_version(item) + 1),
                "writer": s(writer),
            }
            if await self._put("release", new, item):
                return True
            item = await self._read("release", key)
            if item is not None and item.get("writer") == s(writer):
                return True
            await _pause(attempt)
        raise self._contended("release")

    def _contended(self, operation: str) -> StoreUnavailable:
        return StoreUnavailable(
            f"{self.LABEL}: {operation} failed: the key was written by others on each of "
            f"{self._tries} tries (contended)"
        )

    async def _read(self, operation: str, key: str) -> Item | None:
        return await self._get_item(operation, self._key(key))

    async def _put(self, operation: str, new: Item, old: Item | None) -> bool:
        """Write ``new`` if the item is still ``old``; ``False`` if another write came first."""
        return await self._write_if(operation, self._db.put_item, Item=new, **_unchanged(old))


def _unchanged(old: Item | None) -> dict[str, Any]:
    """Return the condition that the item is still ``old`` (absent, or at its version)."""
    if old is None:
        return {"ConditionExpression": "attribute_not_exists(pk)"}
    return {
        "ConditionExpression": "#version = :version",
        "ExpressionAttributeNames": _NAMES,
        "ExpressionAttributeValues": {":version": num(_version(old))},
    }


def _version(item: Item | None) -> int:
    if item is None:
        return 0
    try:
        return number(item, "version")
    except (KeyError, TypeError, ValueError):
        raise StoreUnavailable("rate limit store: a key's item has no readable version") from None


def _hits(item: Item | None) -> list[Hit]:
    if item is None:
        return []
    try:
        return decode_hits(text(item, "hits"))
    except (KeyError, TypeError) as error:
        raise StoreUnavailable(
            f"rate limit store: a key's item has no hit log ({type(error).__name__})"
        ) from None
    except ValueError as error:
        raise StoreUnavailable(f"rate limit store: a key's item is damaged ({error})") from None


async def _pause(attempt: int) -> None:
    """Sleep a random time up to a bound that doubles per try (full jitter)."""
    bound = min(_LONGEST_PAUSE, _FIRST_PAUSE * 2**attempt)
    await asyncio.sleep(random.uniform(0, bound))  # noqa: S311 - timing, not a secret
