"""ErasureJournal on DynamoDB, in the access table beside the leases.

Items (table ``timmybot-access``, keys ``pk``/``sk``)::

    pk="erasure"  sk=<requested_at 20 digits>#<request_id>
                  request_id, user_id, requester, requested_at, steps (JSON text)

The sort key orders requests by time, so ``pending`` is one ``Query``. A
step's outcome is one ``UpdateItem`` conditioned on the item existing; a
finished request's item is deleted, the user's ID with it. The access
table's other readers ignore this partition (its purge matches by ``pk``).
"""

from __future__ import annotations

from typing import Final

from timmybot_adapters.aws._dynamo import DynamoStore, Item, from_micros, micros, num, s, text
from timmybot_core.ports.erasure import ErasureEntry, ErasureStep, decode_steps, encode_steps

__all__ = ["DynamoErasureJournal"]

_PK: Final = "erasure"


class DynamoErasureJournal(DynamoStore):
    """Pending erasure requests on DynamoDB (see the module docstring)."""

    LABEL = "erasure journal"

    async def _find(self, operation: str, request_id: str) -> Item | None:
        items = await self._partition(
            operation,
            _PK,
            FilterExpression="request_id = :id",
            ExpressionAttributeValues={":id": s(request_id)},
        )
        return items[0] if items else None

    async def begin(self, entry: ErasureEntry) -> None:
        """Record a new request; a known ``request_id`` is kept as is."""
        moment = micros(entry.requested_at)
        item: Item = {
            "pk": s(_PK),
            "sk": s(f"{moment:020d}#{entry.request_id}"),
            "request_id": s(entry.request_id),
            "user_id": s(str(entry.user_id)),
            "requester": s(entry.requester),
            "requested_at": num(moment),
            "steps": s(encode_steps(entry.steps)),
        }
        await self._put_new("begin", item)

    async def record_step(self, request_id: str, store: str, step: ErasureStep) -> bool:
        """Record one store's outcome; ``False`` if the request is not pending.

        Read, change, and write back under the condition that the steps are
        still as read: two processes resuming one request do not lose each
        other's outcomes.
        """
        for _ in range(10):
            item = await self._find("record step", request_id)
            if item is None:
                return False
            old = text(item, "steps")
            steps = {**decode_steps(old), store: step}
            if await self._write_if(
                "record step",
                self._db.update_item,
                Key={"pk": item["pk"], "sk": item["sk"]},
                UpdateExpression="SET steps = :new",
                ConditionExpression="steps = :old",
                ExpressionAttributeValues={
                    ":new": s(encode_steps(steps)),
                    ":old": s(old),
                },
            ):
                return True
        return False

    async def finish(self, request_id: str) -> bool:
        """Remove the request; ``True`` if it was pending."""
        item = await self._find("finish", request_id)
        if item is None:
            return False
        return bool(await self._delete("finish", {"pk": item["pk"], "sk": item["sk"]}))

    async def pending(self, *, limit: int = 100) -> list[ErasureEntry]:
        """Return up to ``limit`` pending requests, oldest first."""
        if limit <= 0:
            return []
        items = await self._partition("pending", _PK)
        return [
            ErasureEntry(
                request_id=text(item, "request_id"),
                user_id=int(text(item, "user_id")),
                requester=text(item, "requester"),
                requested_at=from_micros(int(item["requested_at"]["N"])),
                steps=decode_steps(text(item, "steps")),
            )
            for item in items[:limit]
        ]
