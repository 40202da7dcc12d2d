"""AccessPolicyStore on DynamoDB: one limit and one ban for every shard.

Items (table ``timmybot-access``, keys ``pk``/``sk``; IDs are 20-digit
zero-padded text so that text order is numeric order, times are
microseconds since 0001-01-01 UTC, 20-digit text in keys)::

    pk="allow"             sk=<guild>  added_at, token
    pk="ban"               sk=<guild>  until, reason, placed_at, token, ttl
    pk="switch"            sk=<name>   on, reason?, actor?, changed_at?, expires_at?, ttl?
    pk="attempts#<guild>"  sk=<time>   n, seqs, first, ttl
    pk="attempts#<guild>"  sk="sequence"  last, req, base?, ttl
    pk="lease"             sk=<name>   holder, expires_at, ttl
    pk="job"               sk=<job>    last_run
    pk="refresh#<user>"    sk=<platform>  (refresh leases: see refresh_leases.py)

Counting attempts
    Each guild has a sequence counter (``sk="sequence"``): an attempt takes
    its number ``N`` with an atomic ``ADD last :1``, so every number is
    given once, across any number of processes. The attempt is then
    stamped at its time (``sk=<time>``: ``n`` attempts, the set ``seqs`` of
    their numbers), and its count is ``N`` less the highest number stamped
    at or before the window's start (one ``Query`` with ``Limit=1``), so a
    burst gets the counts ``1, 2, 3, ...`` and a limit is crossed by exactly
    one attempt. ``purge_expired`` first raises the counter's ``base`` to
    the highest number it purges, so counting afterwards starts from the
    attempts left. Cost: three requests per attempt, whatever the flood.

    The counter remembers the request ID that took the last number, under
    the condition that it differs: if botocore retries a request whose
    first try was applied (its answer lost), the retry fails the condition
    and reads its number back. The stamp is conditioned on its number not
    being in ``seqs`` yet, for the same reason.

Bans, allowlist
    A ban is a ``PutItem`` conditioned on "no ban, or one that has ended",
    so exactly one of several racing shards gets ``True``. Each write
    carries a random ``token``; a retried write that finds the condition
    false re-reads the item, and if it is the very item it wrote (the token
    makes it unique), the first try had succeeded and the answer is still
    ``True``. Adding a guild to the allowlist works the same way.

Expiry
    Attempt counters, bans and expiring switches carry ``ttl`` (epoch
    seconds), so DynamoDB deletes them eventually (usually within days).
    Every read compares the item's own time with ``now`` and ignores what
    has ended; TTL only collects garbage. ``purge_expired`` deletes exactly
    what the port says, with a ``Scan`` of the table: a maintenance job
    that is cheap because TTL keeps the table small. Attempt counters live
    at least a day (``_RETENTION``) beyond their time, so a count over a
    longer window than the one recorded with still finds them until they
    are purged.

Leases and job runs
    The scheduler's lease is one ``PutItem`` conditioned on "free, expired,
    or already this holder's"; releasing is a ``DeleteItem`` conditioned on
    the holder. A job's last run only moves forward: ``UpdateItem`` with
    ``attribute_not_exists(last_run) OR last_run < :at``. ``purge_expired``
    leaves both alone.

Reads are strongly consistent. Every DynamoDB error surfaces as
:class:`~timmybot_core.domain.errors.StoreUnavailable`, naming the operation and
the AWS error code, never a guild ID or a ban reason.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from timmybot_adapters.aws._dynamo import (
    DynamoStore,
    Item,
    from_micros,
    id_key,
    micros,
    num,
    num_or_none,
    number,
    s,
    text,
    text_or_none,
    time_key,
    ttl_of,
)
from timmybot_core.ports.access import Ban, PurgeCounts, Switch, SwitchState, check_lease

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

__all__ = ["DynamoAccessPolicyStore"]

_US: Final = timedelta(microseconds=1)
_ALLOW: Final = "allow"
_BAN: Final = "ban"
_SWITCH: Final = "switch"
_ATTEMPTS: Final = "attempts#"
_LEASE: Final = "lease"
_JOB: Final = "job"
_LEASE_TTL_SLACK: Final = 86_400
# The guild's attempt counter, beside its time-keyed items (digits sort first).
_SEQUENCE: Final = "sequence"
_RETENTION: Final = timedelta(days=1)
# TTL far beyond any retention: keeps epoch arithmetic in range for huge windows.
_MAX_RETENTION: Final = timedelta(days=3650)


def _names(*keys: str) -> dict[str, str]:
    return {key: key.removeprefix("#") for key in keys}


def _between(pk: str, low: int, high: int) -> dict[str, Any]:
    """Return the key condition of the items of ``pk`` with times in ``[low, high]``."""
    return {
        "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
        "ExpressionAttributeValues": {
            ":pk": s(pk),
            ":low": s(time_key(low)),
            ":high": s(time_key(high)),
        },
    }


class DynamoAccessPolicyStore(DynamoStore):
    """The access-policy store on a DynamoDB table (see the module docstring)."""

    LABEL = "access policy store"

    def _key(self, pk: str, sk: str) -> Item:
        return {"pk": s(pk), "sk": s(sk)}

    async def _get(self, operation: str, pk: str, sk: str) -> Item | None:
        return await self._get_item(operation, self._key(pk, sk))

    # Allowlist

    async def allow_guild(self, guild_id: int, *, at: datetime) -> bool:
        """Add ``guild_id`` to the allowlist; ``True`` if it was not there."""
        item: Item = {
            **self._key(_ALLOW, id_key(guild_id)),
            "added_at": num(micros(at)),
            "token": s(uuid.uuid4().hex),
        }
        return await self._put_once("allow_guild", item)

    async def remove_guild(self, guild_id: int) -> bool:
        """Remove ``guild_id`` from the allowlist; ``True`` if it was there."""
        return bool(await self._delete("remove_guild", self._key(_ALLOW, id_key(guild_id))))

    async def is_guild_allowed(self, guild_id: int) -> bool:
        """Tell whether ``guild_id`` is on the allowlist."""
        return await self._get("is_guild_allowed", _ALLOW, id_key(guild_id)) is not None

    async def list_allowed_guilds(self) -> list[int]:
        """Return the allowlist, sorted."""
        items = await self._partition("list_allowed_guilds", _ALLOW, ProjectionExpression="sk")
        return sorted(int(text(item, "sk")) for item in items)

    # Attempts

    async def record_attempt(
        self, guild_id: int, *, at: datetime, window: timedelta, cap: int | None = None
    ) -> int:
        """Record one attempt and return the count after ``at - window`` (at most ``cap``)."""
        guild, moment = id_key(guild_id), micros(at)
        pk = _ATTEMPTS + guild
        keep = min(max(window, _RETENTION), _MAX_RETENTION)
        expires = num(ttl_of(at) + int(keep.total_seconds()))
        sequence, base = await self._next_sequence(pk, expires)
        await self._stamp(pk, moment, sequence, expires)
        if window <= timedelta(0):
            return 0
        before = await self._sequence_before(pk, moment - window // _US)
        count = sequence - min(max(before, base), sequence - 1)
        return count if cap is None else min(count, max(cap, 0))

    async def _next_sequence(self, pk: str, expires: AttributeValueTypeDef) -> tuple[int, int]:
        """Take the guild's next attempt number (a retried request reads its own back).

        Should another attempt have come in between, the retry takes a new
        number: an attempt counted twice errs towards the ban, never away from it.
        """
        request = uuid.uuid4().hex
        answer = await self._try_write(
            "record_attempt",
            self._db.update_item,
            Key=self._key(pk, _SEQUENCE),
            UpdateExpression="SET #ttl = :ttl, #req = :id ADD #last :one",
            ConditionExpression="attribute_not_exists(#req) OR #req <> :id",
            ExpressionAttributeNames=_names("#ttl", "#req", "#last"),
            ExpressionAttributeValues={":ttl": expires, ":one": num(1), ":id": s(request)},
            ReturnValues="ALL_NEW",
        )
        if answer is not None:
            stored = answer["Attributes"]
        else:
            stored = await self._get("record_attempt", pk, _SEQUENCE) or {}
        sequence = num_or_none(stored, "last") or 1
        return sequence, num_or_none(stored, "base") or 0

    async def _stamp(
        self, pk: str, moment: int, sequence: int, expires: AttributeValueTypeDef
    ) -> None:
        """Count the attempt at its time, noting the highest number seen there."""
        await self._write_if(
            "record_attempt",
            self._db.update_item,
            Key=self._key(pk, time_key(moment)),
            UpdateExpression="SET #ttl = :ttl, #first = if_not_exists(#first, :seq) "
            "ADD #n :one, #seqs :seqset",
            # A retry of a stamp that was applied changes nothing.
            ConditionExpression="attribute_not_exists(#seqs) OR NOT contains(#seqs, :seq)",
            ExpressionAttributeNames=_names("#ttl", "#first", "#n", "#seqs"),
            ExpressionAttributeValues={
                ":ttl": expires,
                ":seq": num(sequence),
                ":one": num(1),
                ":seqset": {"NS": [str(sequence)]},
            },
        )

    async def _sequence_before(self, pk: str, start: int) -> int:
        """Return the highest attempt number stamped at or before ``start`` (0 if none).

        Purged attempts are accounted for by the counter's ``base``.
        """
        if start < 0:
            return 0
        answer = await self._call(
            "record_attempt",
            self._db.query,
            **_between(pk, 0, start),
            ExpressionAttributeNames=_names("#seqs"),
            ProjectionExpression="#seqs",
            ConsistentRead=True,
            ScanIndexForward=False,
            Limit=1,
        )
        items = answer.get("Items") or []
        return max(int(n) for n in items[0]["seqs"]["NS"]) if items else 0

    async def clear_attempts(self, guild_id: int) -> int:
        """Forget every recorded attempt of ``guild_id``; return how many.

        An attempt recorded while the clear runs may be deleted without
        being counted, or survive it.
        """
        pk = _ATTEMPTS + id_key(guild_id)
        items = await self._partition(
            "clear_attempts",
            pk,
            ExpressionAttributeNames=_names("#n"),
            ProjectionExpression="pk, sk, #n",
        )
        await self._delete_keys("clear_attempts", [self._key(pk, text(i, "sk")) for i in items])
        return sum(num_or_none(item, "n") or 0 for item in items)

    async def count_attempts(self, guild_id: int, *, now: datetime, window: timedelta) -> int:
        """Return the number of attempts recorded in ``(now - window, now]``."""
        moment = micros(now)
        if window <= timedelta(0):
            return 0
        pk = _ATTEMPTS + id_key(guild_id)
        items = await self._all(
            "count_attempts",
            **_between(pk, moment - window // _US + 1, moment),
            ExpressionAttributeNames=_names("#n"),
            ProjectionExpression="#n",
            ConsistentRead=True,
        )
        return sum(number(item, "n") for item in items)

    # Bans

    async def place_ban(self, ban: Ban, *, now: datetime) -> bool:
        """Place ``ban`` unless an active ban of that guild exists; ``True`` for one racer only."""
        item: Item = {
            **self._key(_BAN, id_key(ban.guild_id)),
            "until": num(micros(ban.until)),
            "reason": s(ban.reason),
            "placed_at": num(micros(ban.placed_at)),
            "token": s(uuid.uuid4().hex),
            "ttl": num(ttl_of(ban.until)),
        }
        return await self._put_once(
            "place_ban",
            item,
            ConditionExpression="attribute_not_exists(pk) OR #until <= :now",
            ExpressionAttributeValues={":now": num(micros(now))},
            ExpressionAttributeNames=_names("#until"),
        )

    async def lift_ban(self, guild_id: int, *, now: datetime) -> bool:
        """Remove the guild's ban; ``True`` if an active ban was lifted."""
        moment = micros(now)
        old = await self._delete("lift_ban", self._key(_BAN, id_key(guild_id)))
        return bool(old) and moment < number(old, "until")

    async def get_ban(self, guild_id: int, *, now: datetime) -> Ban | None:
        """Return the guild's active ban at ``now``, or ``None``."""
        moment = micros(now)
        item = await self._get("get_ban", _BAN, id_key(guild_id))
        if item is None or number(item, "until") <= moment:
            return None
        return _ban(item)

    async def list_bans(self, *, now: datetime) -> list[Ban]:
        """Return every active ban at ``now``, by guild ID."""
        moment = micros(now)
        items = await self._partition("list_bans", _BAN)
        return [_ban(item) for item in items if number(item, "until") > moment]

    # Switches

    async def set_switch(self, state: SwitchState) -> None:
        """Store a switch's state (last write wins)."""
        item: Item = {**self._key(_SWITCH, state.switch.value), "on": {"BOOL": state.on}}
        if state.reason is not None:
            item["reason"] = s(state.reason)
        if state.actor is not None:
            item["actor"] = s(state.actor)
        if state.changed_at is not None:
            item["changed_at"] = num(micros(state.changed_at))
        if state.expires_at is not None:
            item["expires_at"] = num(micros(state.expires_at))
            if state.on:
                item["ttl"] = num(ttl_of(state.expires_at))
        await self._call("set_switch", self._db.put_item, Item=item)

    async def get_switch(self, switch: Switch) -> SwitchState:
        """Return a switch's state; a never-set switch is off."""
        item = await self._get("get_switch", _SWITCH, switch.value)
        if item is None:
            return SwitchState(switch=switch)
        changed, expires = num_or_none(item, "changed_at"), num_or_none(item, "expires_at")
        return SwitchState(
            switch=switch,
            on=bool(item["on"]["BOOL"]),
            reason=text_or_none(item, "reason"),
            actor=text_or_none(item, "actor"),
            changed_at=None if changed is None else from_micros(changed),
            expires_at=None if expires is None else from_micros(expires),
        )

    # Purge

    async def purge_expired(self, *, now: datetime, window: timedelta) -> PurgeCounts:
        """Delete attempts older than ``window``, ended bans and expired switches.

        Scans the table once. Bans and switches are deleted under a
        condition, so a ban placed or a switch set while the purge runs
        survives it.
        """
        moment = micros(now)
        start = moment - window // _US
        items = await self._all(
            "purge_expired",
            scan=True,
            ProjectionExpression="pk, sk, #n, #until, #on, expires_at, #seqs",
            ExpressionAttributeNames=_names("#n", "#until", "#on", "#seqs"),
            ConsistentRead=True,
        )
        stale: list[Item] = []
        bases: dict[str, int] = {}
        attempts = bans = switches = 0
        for item in items:
            pk, sk = text(item, "pk"), text(item, "sk")
            if pk.startswith(_ATTEMPTS) and sk.isdigit() and int(sk) <= start:
                stale.append(self._key(pk, sk))
                attempts += number(item, "n")
                numbers = [int(n) for n in item.get("seqs", {}).get("NS", [])]
                bases[pk] = max([bases.get(pk, 0), *numbers])
            elif pk == _BAN and number(item, "until") <= moment:
                bans += await self._delete_if(
                    pk, sk, "#until <= :now", {":now": num(moment)}, _names("#until")
                )
            elif pk == _SWITCH and item.get("on", {}).get("BOOL"):
                expires = num_or_none(item, "expires_at")
                if expires is not None and expires <= moment:
                    switches += await self._delete_if(
                        pk,
                        sk,
                        "#on = :true AND expires_at = :expires",
                        {":true": {"BOOL": True}, ":expires": num(expires)},
                        _names("#on"),
                    )
        # First the counters learn what is purged, then it goes: counting
        # never sees fewer attempts before a window than there were.
        for pk, base in bases.items():
            await self._raise_base(pk, base)
        await self._delete_keys("purge_expired", stale)
        return PurgeCounts(attempts=attempts, bans=bans, switches=switches)

    async def _raise_base(self, pk: str, base: int) -> None:
        """Note on the guild's counter that attempts up to number ``base`` are purged."""
        await self._write_if(
            "purge_expired",
            self._db.update_item,
            Key=self._key(pk, _SEQUENCE),
            UpdateExpression="SET #base = :base",
            ConditionExpression="attribute_exists(#last) AND "
            "(attribute_not_exists(#base) OR #base < :base)",
            ExpressionAttributeNames=_names("#base", "#last"),
            ExpressionAttributeValues={":base": num(base)},
        )

    # Leases and job runs

    async def acquire_lease(self, name: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the lease ``name`` for ``holder`` until ``now + ttl``.

        A retry of a write that had succeeded passes the same condition.
        """
        check_lease(name, holder, ttl)
        moment = micros(now)
        expires = now + ttl
        item: Item = {
            **self._key(_LEASE, name),
            "holder": s(holder),
            "expires_at": num(micros(expires)),
            # Garbage collection only; an expired lease is free either way.
            "ttl": num(ttl_of(expires) + _LEASE_TTL_SLACK),
        }
        return await self._write_if(
            "acquire_lease",
            self._db.put_item,
            Item=item,
            ConditionExpression=(
                "attribute_not_exists(pk) OR expires_at <= :now OR holder = :holder"
            ),
            ExpressionAttributeValues={":now": num(moment), ":holder": s(holder)},
        )

    async def release_lease(self, name: str, holder: str) -> bool:
        """Give up the lease ``name`` if ``holder`` holds it, expired or not."""
        return await self._write_if(
            "release_lease",
            self._db.delete_item,
            Key=self._key(_LEASE, name),
            ConditionExpression="holder = :holder",
            ExpressionAttributeValues={":holder": s(holder)},
        )

    async def last_job_run(self, job: str) -> datetime | None:
        """Return how far ``job``'s schedule is satisfied, or ``None``."""
        if not job:
            return None
        item = await self._get("last_job_run", _JOB, job)
        return None if item is None else from_micros(number(item, "last_run"))

    async def record_job_run(self, job: str, at: datetime) -> bool:
        """Record that ``job``'s schedule is satisfied up to ``at``; it only moves forward."""
        if not job:
            raise ValueError("a job needs a name")
        return await self._write_if(
            "record_job_run",
            self._db.update_item,
            Key=self._key(_JOB, job),
            UpdateExpression="SET last_run = :at",
            ConditionExpression="attribute_not_exists(last_run) OR last_run < :at",
            ExpressionAttributeValues={":at": num(micros(at))},
        )

    async def _delete_if(
        self, pk: str, sk: str, condition: str, values: dict[str, Any], names: dict[str, str]
    ) -> int:
        return int(
            await self._write_if(
                "purge_expired",
                self._db.delete_item,
                Key=self._key(pk, sk),
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ExpressionAttributeNames=names,
            )
        )


def _ban(item: Item) -> Ban:
    return Ban(
        guild_id=int(text(item, "sk")),
        until=from_micros(number(item, "until")),
        reason=text(item, "reason"),
        placed_at=from_micros(number(item, "placed_at")),
    )
