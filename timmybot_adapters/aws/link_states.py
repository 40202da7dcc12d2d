"""LinkStateStore on DynamoDB: pending account links, taken exactly once.

Items (table ``timmybot-link-states``, partition key ``pk`` only)::

    pk=<state_hash>  status="pending"|"spent", user_id?, platform, verifier?,
                     created_at, expires_at, ttl, user_pk?, taken_by? (spent only)

Times are microseconds since 0001-01-01 UTC; ``ttl`` is ``expires_at`` in
epoch seconds, so DynamoDB drops states and spent markers some time after
they expire. Reads never rely on that: every answer compares
``expires_at`` with the caller's ``now``.

Taking a state is one ``UpdateItem`` conditioned on "pending and not
expired" that flips it to spent and returns the old item: exactly one
caller sees the condition hold. The item stays as the *spent marker* (so a
replay reads ``USED``) until it would have expired. The marker keeps the
PKCE verifier until then, with the caller's random ``taken_by``, so that a
``take`` whose answer was lost and which botocore retried still returns
``TAKEN`` to its caller; the verifier is worthless once its authorization
code has been exchanged, and the table is encrypted with the stack's KMS
key. An erasure strips the user's markers of ``user_id``, ``verifier`` and
``user_pk``: they still answer ``USED`` and hold nothing of the user.

``delete_user`` finds a user's states, pending and spent, through the sparse
index ``by-user`` on ``user_pk``. Index reads are
eventually consistent: a state added a moment before an erasure can be
missed, and then expires on its own within its lifetime (minutes).
``purge_expired`` scans the table (a maintenance job; TTL keeps it small).

A user's erasure barrier is one more item of the table::

    pk="erasure#<erasure_barrier_key(user)>"  status="erasure", erased_at,
                                              expires_at (the barrier's end), ttl

It holds a hash of the user's ID, never the ID (nor ``user_pk``, so an
erasure's ``delete_user`` leaves it), and goes with expired states.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from timmybot_adapters.aws._dynamo import (
    DynamoStore,
    Item,
    from_micros,
    id_key,
    micros,
    num,
    number,
    s,
    text,
    ttl_of,
)
from timmybot_core.ports.link_states import (
    LinkState,
    TakeOutcome,
    TakeResult,
    erasure_barrier_key,
)

__all__ = ["DynamoLinkStateStore"]

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

_PENDING: Final = "pending"
_SPENT: Final = "spent"
_ERASURE: Final = "erasure"
_NAMES: Final = {"#status": "status", "#expires": "expires_at"}


class DynamoLinkStateStore(DynamoStore):
    """Pending link states on a DynamoDB table (see the module docstring)."""

    LABEL = "link state store"

    async def add(self, state: LinkState) -> None:
        """Store a new pending state (replacing one with the same hash)."""
        user = id_key(state.user_id)
        item: Item = {
            "pk": s(state.state_hash),
            "status": s(_PENDING),
            "user_id": s(user),
            "user_pk": s(user),
            "platform": s(state.platform),
            "verifier": s(state.code_verifier),
            "created_at": num(micros(state.created_at)),
            "expires_at": num(micros(state.expires_at)),
            "ttl": num(ttl_of(state.expires_at)),
        }
        await self._call("add", self._db.put_item, Item=item)

    async def take(self, state_hash: str, *, now: datetime) -> TakeResult:
        """Consume a pending state atomically: exactly one caller ever gets ``TAKEN``."""
        moment = micros(now)
        taker = uuid.uuid4().hex
        answer = await self._try_write(
            "take",
            self._db.update_item,
            Key={"pk": s(state_hash)},
            UpdateExpression="SET #status = :spent, taken_by = :taker",
            ConditionExpression="#status = :pending AND #expires > :now",
            ExpressionAttributeNames=_NAMES,
            ExpressionAttributeValues={
                ":spent": s(_SPENT),
                ":pending": s(_PENDING),
                ":now": num(moment),
                ":taker": s(taker),
            },
            ReturnValues="ALL_OLD",
        )
        if answer is not None:
            return TakeResult(outcome=TakeOutcome.TAKEN, state=_state(answer["Attributes"]))
        item = await self._get_item("take", {"pk": s(state_hash)})
        if item is None:
            return TakeResult(outcome=TakeOutcome.UNKNOWN)
        expired = number(item, "expires_at") <= moment
        if text(item, "status") == _SPENT:
            if item.get("taken_by") == {"S": taker} and "verifier" in item:
                # Our own take, retried after its answer was lost.
                return TakeResult(outcome=TakeOutcome.TAKEN, state=_state(item))
            return TakeResult(outcome=TakeOutcome.UNKNOWN if expired else TakeOutcome.USED)
        # Pending but expired: gone for good, so forget it now.
        await self._delete_if_expired("take", state_hash, moment)
        return TakeResult(outcome=TakeOutcome.EXPIRED)

    async def _delete_if_expired(self, operation: str, state_hash: str, moment: int) -> bool:
        return await self._write_if(
            operation,
            self._db.delete_item,
            Key={"pk": s(state_hash)},
            ConditionExpression="#expires <= :now",
            ExpressionAttributeNames={"#expires": "expires_at"},
            ExpressionAttributeValues={":now": num(moment)},
        )

    async def delete_user(self, user_id: int) -> int:
        """Delete every pending state of ``user_id``; return how many."""
        user = id_key(user_id)
        items = await self._all(
            "delete_user",
            IndexName="by-user",
            KeyConditionExpression="#user = :user",
            ExpressionAttributeNames={"#user": "user_pk"},
            ExpressionAttributeValues={":user": s(user)},
        )
        deleted = 0
        for item in items:
            if await self._write_if(
                "delete_user",
                self._db.delete_item,
                Key={"pk": item["pk"]},
                # Only if still pending for this user: a state taken
                # meanwhile stays as the spent marker.
                ConditionExpression="#status = :pending AND user_id = :user",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":pending": s(_PENDING), ":user": s(user)},
            ):
                deleted += 1
            else:
                await self._scrub_spent(item["pk"], user)
        return deleted

    async def _scrub_spent(self, pk: AttributeValueTypeDef, user: str) -> None:
        """Strip a spent marker of the user's ID and verifier; it still answers ``USED``."""
        await self._write_if(
            "delete_user",
            self._db.update_item,
            Key={"pk": pk},
            UpdateExpression="REMOVE user_id, verifier, #user",
            ConditionExpression="#status = :spent AND user_id = :user",
            ExpressionAttributeNames={"#status": "status", "#user": "user_pk"},
            ExpressionAttributeValues={":spent": s(_SPENT), ":user": s(user)},
        )

    async def add_erasure_barrier(
        self, user_id: int, *, erased_at: datetime, until: datetime
    ) -> None:
        """Record the user's erasure; the latest times win."""
        key = {"pk": s(f"{_ERASURE}#{erasure_barrier_key(user_id)}")}
        values: Item = {":until": num(micros(until)), ":ttl": num(ttl_of(until))}
        if await self._write_if(
            "add_erasure_barrier",
            self._db.update_item,
            Key=key,
            UpdateExpression="SET #status = :erasure, erased_at = :at, #expires = :until, "
            "#ttl = :ttl",
            # A later barrier (another process's erasure) is never moved back.
            ConditionExpression="attribute_not_exists(pk) OR erased_at <= :at",
            ExpressionAttributeNames={"#status": "status", "#expires": "expires_at", "#ttl": "ttl"},
            ExpressionAttributeValues={
                **values,
                ":erasure": s(_ERASURE),
                ":at": num(micros(erased_at)),
            },
        ):
            return
        await self._write_if(
            "add_erasure_barrier",
            self._db.update_item,
            Key=key,
            UpdateExpression="SET #expires = :until, #ttl = :ttl",
            ConditionExpression="#expires < :until",
            ExpressionAttributeNames={"#expires": "expires_at", "#ttl": "ttl"},
            ExpressionAttributeValues=values,
        )

    async def erasure_barrier(self, user_id: int, *, now: datetime) -> datetime | None:
        """Return when the user's data was erased, if the barrier is kept at ``now``."""
        item = await self._get_item(
            "erasure_barrier", {"pk": s(f"{_ERASURE}#{erasure_barrier_key(user_id)}")}
        )
        if item is None or text(item, "status") != _ERASURE:
            return None
        if number(item, "expires_at") <= micros(now):
            return None
        return from_micros(number(item, "erased_at"))

    async def purge_expired(self, *, now: datetime) -> int:
        """Delete expired states, spent markers and erasure barriers; return how many."""
        moment = micros(now)
        items = await self._all(
            "purge_expired",
            scan=True,
            ProjectionExpression="pk, #expires",
            ExpressionAttributeNames={"#expires": "expires_at"},
            ConsistentRead=True,
        )
        purged = 0
        for item in items:
            if number(item, "expires_at") <= moment:
                purged += await self._delete_if_expired("purge_expired", text(item, "pk"), moment)
        return purged


def _state(item: dict[str, Any]) -> LinkState:
    return LinkState(
        state_hash=text(item, "pk"),
        user_id=int(text(item, "user_id")),
        platform=text(item, "platform"),
        code_verifier=text(item, "verifier"),
        created_at=from_micros(number(item, "created_at")),
        expires_at=from_micros(number(item, "expires_at")),
    )
