"""UserDataStore on DynamoDB: one item per user, every preference inside.

Items (table ``timmybot-user-data``, keys ``pk``/``sk``)::

    pk=<user>  sk="prefs"  prefs: {<name>: {"v": <canonical JSON>, "t": <micros>}}

The user is the 20-digit zero-padded snowflake; ``t`` is the time the
preference was set, in microseconds since 0001-01-01 UTC; ``v`` is
:func:`~timmybot_core.ports.user_data.encode_preference`'s canonical JSON,
so every adapter gives back equal values. A user's preferences are at most
50 values of at most 4 KiB: one item (DynamoDB allows 400 KB) holds them
all, so reading them is one ``GetItem``, erasing them one ``DeleteItem``,
and the limit is enforced atomically without a transaction:

* a write is an ``UpdateItem`` of ``prefs.<name>`` conditioned on "the
  name exists, or ``size(prefs)`` is under the limit";
* a user's first write creates the item with ``PutItem`` conditioned on
  ``attribute_not_exists(pk)`` (if another writer created it first, the
  conditional update runs again);
* deleting a user's last preference deletes the item, under the condition
  that the map is still empty.

``user_ids`` is a ``Scan`` of the table (every item is one user, so it
reads exactly what it lists). The table is encrypted with the stack's KMS
key; values are not encrypted again by the adapter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Final

from timmybot_adapters.aws._dynamo import (
    DynamoStore,
    Item,
    from_micros,
    micros,
    num,
    s,
    text,
)
from timmybot_core.domain.clock import as_utc
from timmybot_core.domain.errors import StoreUnavailable
from timmybot_core.ports.user_data import (
    MAX_PREFERENCES,
    Preference,
    PreferenceValue,
    check_preference_key,
    check_user_id,
    decode_preference,
    encode_preference,
    too_many_preferences,
)

__all__ = ["DynamoUserDataStore"]

_SK: Final = "prefs"
_TRIES: Final = 10


def _key(user_id: int) -> Item:
    return {"pk": s(f"{check_user_id(user_id):020d}"), "sk": s(_SK)}


def _preference(key: str, entry: Any) -> Preference:
    return Preference(
        key=key,
        value=decode_preference(entry["M"]["v"]["S"]),
        updated_at=from_micros(int(entry["M"]["t"]["N"])),
    )


class DynamoUserDataStore(DynamoStore):
    """Users' preferences on a DynamoDB table (see the module docstring)."""

    LABEL = "user data store"

    async def get_preferences(self, user_id: int) -> list[Preference]:
        """Return every preference of ``user_id``, sorted by name (empty if none)."""
        item = await self._get_item("get_preferences", _key(user_id))
        if item is None:
            return []
        stored = item.get("prefs", {}).get("M", {})
        return [_preference(key, stored[key]) for key in sorted(stored)]

    async def get_preference(self, user_id: int, key: str) -> Preference | None:
        """Return one preference, or ``None`` if the user has not set it."""
        user_key = _key(user_id)
        check_preference_key(key)
        item = await self._get_item(
            "get_preference",
            user_key,
            ProjectionExpression="prefs.#name",
            ExpressionAttributeNames={"#name": key},
        )
        entry = None if item is None else item.get("prefs", {}).get("M", {}).get(key)
        return None if entry is None else _preference(key, entry)

    async def set_preference(
        self, user_id: int, key: str, value: PreferenceValue, *, at: datetime
    ) -> None:
        """Set a preference; the limit check and the write are one conditional update."""
        user_key = _key(user_id)
        at = as_utc(at, "preference times")
        entry = {"M": {"v": s(encode_preference(key, value)), "t": num(micros(at))}}
        for _ in range(_TRIES):
            if await self._write_if(
                "set_preference",
                self._db.update_item,
                Key=user_key,
                UpdateExpression="SET prefs.#name = :entry",
                ConditionExpression=(
                    "attribute_exists(prefs) AND "
                    "(attribute_exists(prefs.#name) OR size(prefs) < :limit)"
                ),
                ExpressionAttributeNames={"#name": key},
                ExpressionAttributeValues={":entry": entry, ":limit": num(MAX_PREFERENCES)},
            ):
                return
            current = await self._get_item("set_preference", user_key)
            if current is None or "prefs" not in current:
                created: Item = {**user_key, "prefs": {"M": {key: entry}}}
                if await self._put_new("set_preference", created):
                    return
                continue  # another writer created the item: update it instead
            stored = current["prefs"].get("M", {})
            if key not in stored and len(stored) >= MAX_PREFERENCES:
                raise too_many_preferences(key)
        raise StoreUnavailable(
            f"{self.LABEL}: set_preference failed: the item kept changing under "
            f"{_TRIES} conditional writes"
        )

    async def delete_preference(self, user_id: int, key: str) -> bool:
        """Delete one preference; ``True`` if it existed."""
        user_key = _key(user_id)
        check_preference_key(key)
        answer = await self._try_write(
            "delete_preference",
            self._db.update_item,
            Key=user_key,
            UpdateExpression="REMOVE prefs.#name",
            ConditionExpression="attribute_exists(prefs.#name)",
            ExpressionAttributeNames={"#name": key},
            ReturnValues="ALL_NEW",
        )
        if answer is None:
            return False
        if not answer.get("Attributes", {}).get("prefs", {}).get("M"):
            # The last one: drop the item, unless a writer added one meanwhile.
            await self._write_if(
                "delete_preference",
                self._db.delete_item,
                Key=user_key,
                ConditionExpression="size(prefs) = :zero",
                ExpressionAttributeValues={":zero": num(0)},
            )
        return True

    async def delete_user(self, user_id: int) -> int:
        """Delete every preference of ``user_id``; return how many. Idempotent."""
        old = await self._delete("delete_user", _key(user_id))
        return len(old.get("prefs", {}).get("M", {}))

    async def user_ids(self) -> AsyncIterator[int]:
        """Iterate over every user with at least one preference, each once, in no set order."""
        async for item in self._items(
            "user_ids",
            scan=True,
            ProjectionExpression="pk",
            FilterExpression="size(prefs) > :zero",
            ExpressionAttributeValues={":zero": num(0)},
        ):
            yield int(text(item, "pk"))
