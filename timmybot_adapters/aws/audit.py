"""AuditLog on DynamoDB: append-only chains, and queries that never scan.

Items (table ``timmybot-audit``, keys ``pk``/``sk``)::

    pk="chain#<writer>"   sk=<sequence>         a record (the chain)
    pk="event#<event_id>" sk="-"                the event ID's guard: writer, sequence
    pk="digest#<writer>"  sk=<digest_sequence>  a signed digest
    pk="writers"          sk=<writer>           the writers, for writers(); owner: who writes it
    pk="meta"             sk="days"             first_day, last_day: the days holding records

A record item keeps the exact bytes its hash covers in ``body`` (binary)
and is read back from them, so verification hashes ``body`` without
re-encoding; the other attributes serve the keys, indexes and filters (and
a record whose attributes disagree with its body is read from its
attributes, which then no longer hash right: verify reports it). Items
written before ``body`` existed keep ``details``, ``resource`` and
``source`` attributes and are read from those.

Sequences are 20-digit zero-padded text, so a chain reads in sequence
order with one strongly consistent ``Query`` (verification never misses a
record). Records are never deleted; retention *prunes* them in place.

Appending
    A position ``(writer, sequence)`` and an event ID are each written at
    most once: the guard item is put first, then the record, both with
    ``attribute_not_exists``. DynamoDB has no multi-item transaction in
    every implementation the tests use (dynalite has none), so an append is
    two writes, ordered so that a crash in between leaves only a guard
    naming the record's own position: retrying the same append completes
    it, and a different record can never take that event ID. An append
    retried after its answer was lost finds its own guard and its own
    record (equal in every attribute) and succeeds. A different record at a
    taken position, or a taken event ID at another position, raises
    :class:`~timmybot_core.domain.errors.AuditConflict`, and the guard this call
    wrote is removed again.

Batched appends
    ``append(record, wait=False)`` (what the trail uses for security
    events) buffers the record; the buffer is written with
    ``BatchWriteItem``, 25 records per call, when it holds 25, when
    ``batch_interval`` (1 s) has passed since the first buffered record, before
    any ``wait=True`` append, digest, read, and on :meth:`DynamoAuditLog.flush`
    (the trail's ``close``). A batch puts plain items keyed by writer and
    sequence, so a batch sent again (a retry, a lost answer) rewrites the
    very same items: nothing doubles. Only this process writes its writer's
    positions: before its first buffered record it claims the writer item
    with a conditional update (``owner``, a token of this log), and a writer
    another process owns raises :class:`~timmybot_core.domain.errors.AuditConflict`.
    ``UnprocessedItems`` (throttling) are sent again with exponential backoff
    (50 ms doubling to 2 s, 10 tries); records still unwritten stay buffered, in
    order, and are sent again at the next flush (an explicit :meth:`flush`
    raises ``StoreUnavailable``). With 1,000 records waiting, a buffered
    append flushes first and raises if that fails, so the buffer stays
    bounded and the caller's chain does not move past what was refused.
    A writer sealed as abandoned while it was only stalled must not batch
    onto its sealed chain (a batch's put would replace the seal): the seal's
    append first takes the writer item's ``owner`` away (``sealed``), and a
    log re-checks its claim with the same conditional update before it
    buffers a record whenever the last check is ``reclaim_after`` (5 s) old
    on its monotonic clock, which a writer idle long enough to be sealed
    always is. The refusal is :class:`~timmybot_core.domain.errors.AuditConflict`
    at the seal's position, and the trail continues under a new writer ID.
    Left open: a stall of more than the seal's grace between buffering a
    record and sending its batch (the batch then replaces the seal, and
    verify reports the seal's digest not matching that record).
    Buffered records carry no event-ID guard item: their IDs are random
    UUIDs. What a crash loses is the buffer: at most
    ``batch_interval`` or 25 records of security events, never an admin
    action (see docs/audit.md).

Queries without scans
    Every unpruned record carries a sort key ``at`` =
    ``<timestamp>#<hex(writer)>#<sequence>`` (microseconds, 20 digits;
    the writer in hex so that the separator sorts below every character of
    it). Text order of ``at`` is the port's order ``(timestamp, writer,
    sequence)``. Five sparse global secondary indexes share that sort key:

    * ``by-day``: ``day_pk = "day#2026-03-01"``, every record;
    * ``by-kind``: ``kind_pk = "kind#security#2026-03-01"``;
    * ``by-actor``: ``actor_pk = "actor#<pseudonym>#2026-03"``;
    * ``by-action``: ``action_pk = "action#<action>#2026-03"``;
    * ``by-subject``: ``subject_pk = "subject#<pseudonym>#2026-03"``.

    A query reads one index, the most selective the filters allow (subject,
    then actor, then action, then kind, else day), one bucket (a day or a
    month) at a time from the newest down, each with ``at BETWEEN`` the
    range and ``ScanIndexForward=false``; the other filters are a
    ``FilterExpression``. Buckets outside ``meta``'s first and last day are
    never read, so a query "since 2000" costs as much as one over the days
    that hold records. High-volume partitions (day, kind) are per day, the
    selective ones per month, so no partition takes more than a day of
    security events. ``older_than`` walks ``by-day`` the other way.

    Index reads are eventually consistent: a record appended a moment ago
    may be missing from a query for a short while (never from ``chain``).

Pruning
    :meth:`DynamoAuditLog.prune` rewrites a record in place to its pruned
    form and removes ``at`` and every index key, so pruned records drop
    out of every query while the chain stays whole.

Every DynamoDB error surfaces as
:class:`~timmybot_core.domain.errors.StoreUnavailable` (no record content in the
message).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from timmybot_adapters.aws._dynamo import (
    BATCH,
    BATCH_TRIES,
    DynamoStore,
    Item,
    from_micros,
    micros,
    num,
    number,
    s,
    text,
    text_or_none,
    time_key,
)
from timmybot_adapters.aws.clients import AwsClients
from timmybot_adapters.aws.tables import AUDIT_INDEXES
from timmybot_core.domain.audit_chain import record_bytes, record_from_bytes
from timmybot_core.domain.errors import AuditConflict, StoreUnavailable
from timmybot_core.ports.audit import (
    AuditCursor,
    AuditKind,
    AuditPage,
    AuditRecord,
    ChainHead,
    SignedDigest,
)
from timmybot_core.services.audit_verify import is_seal

__all__ = ["DynamoAuditLog"]

_TOP: Final = "~"  # sorts above every character of an ``at`` key after its timestamp
_PAGE: Final = 200
_SEALED: Final = "sealed"  # the owner of a sealed writer: no log's token
_MAX_PENDING: Final = 1000  # records buffered at most while DynamoDB takes none
_log = logging.getLogger("timmybot.audit")


def _ts(moment: datetime) -> str:
    return time_key(micros(moment))


def _at(moment: datetime, writer: str, sequence: int) -> str:
    return f"{_ts(moment)}#{writer.encode('utf-8').hex()}#{sequence:020d}"


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()


def _days(first: date, last: date) -> list[str]:
    """Every day from ``last`` down to ``first``."""
    count = (last - first).days
    return [(last - timedelta(days=n)).isoformat() for n in range(count + 1)]


def _months(first: date, last: date) -> list[str]:
    """Every month from ``last``'s down to ``first``'s, as ``YYYY-MM``."""
    top = last.year * 12 + last.month - 1  # months since year 0, counted from 0
    bottom = first.year * 12 + first.month - 1
    return [f"{n // 12:04d}-{n % 12 + 1:02d}" for n in range(top, bottom - 1, -1)]


def _record_item(record: AuditRecord) -> Item:
    item: Item = {
        "pk": s(f"chain#{record.writer_id}"),
        "sk": s(f"{record.sequence:020d}"),
        "event_id": s(record.event_id),
        "writer_id": s(record.writer_id),
        "sequence": num(record.sequence),
        "ts": num(micros(record.timestamp)),
        "kind": s(record.kind.value),
        "action": s(record.action),
        "prev_hash": s(record.prev_hash),
        "hash": s(record.hash),
        "pruned": {"BOOL": record.pruned},
    }
    if record.actor is not None:
        item["actor"] = s(record.actor)
    if record.subject is not None:
        item["subject"] = s(record.subject)
    if record.pruned:
        item["resource"] = s(record.resource)
        item["source"] = s(record.source)
        details = json.dumps(dict(record.details), ensure_ascii=False, separators=(",", ":"))
        item["details"] = s(details)
    else:
        item["body"] = {"B": record_bytes(record)}
        day = _day(record.timestamp)
        month = day[:7]
        item["at"] = s(_at(record.timestamp, record.writer_id, record.sequence))
        item["day_pk"] = s(f"day#{day}")
        item["kind_pk"] = s(f"kind#{record.kind.value}#{day}")
        item["action_pk"] = s(f"action#{record.action}#{month}")
        if record.actor is not None:
            item["actor_pk"] = s(f"actor#{record.actor}#{month}")
        if record.subject is not None:
            item["subject_pk"] = s(f"subject#{record.subject}#{month}")
    return item


def _from_body(item: Item) -> AuditRecord | None:
    """Return the record an item's ``body`` holds, or ``None`` (no body, or unreadable)."""
    body = item.get("body")
    if body is None or item.get("pruned", {}).get("BOOL"):
        return None
    try:
        return record_from_bytes(bytes(body["B"]), hash=text(item, "hash"))
    except (KeyError, ValueError):
        return None  # damaged: read the attributes; verify reports the difference


def _record(item: Item) -> AuditRecord:
    decoded = _from_body(item)
    try:
        if decoded is not None:
            resource, source, details = decoded.resource, decoded.source, decoded.details
        else:
            resource, source = text(item, "resource"), text(item, "source")
            details = json.loads(text(item, "details"))
        stored = AuditRecord(
            event_id=text(item, "event_id"),
            writer_id=text(item, "writer_id"),
            sequence=number(item, "sequence"),
            timestamp=from_micros(number(item, "ts")),
            kind=AuditKind(text(item, "kind")),
            action=text(item, "action"),
            actor=text_or_none(item, "actor"),
            subject=text_or_none(item, "subject"),
            resource=resource,
            details=details,
            source=source,
            prev_hash=text(item, "prev_hash"),
            hash=text(item, "hash"),
            # A body is read only from an unpruned item.
            pruned=decoded is None and bool(item["pruned"]["BOOL"]),
        )
    except (KeyError, ValueError, TypeError) as error:
        raise StoreUnavailable(
            f"audit log: a stored record is unreadable ({type(error).__name__})"
        ) from None
    # The body's record, unless the item's own attributes say otherwise.
    return decoded if decoded == stored else stored


def _digest(item: Item) -> SignedDigest:
    writer = text(item, "writer_id")
    return SignedDigest(
        writer_id=writer,
        digest_sequence=number(item, "digest_sequence"),
        created_at=from_micros(number(item, "created_at")),
        head=ChainHead(
            writer_id=text(item, "head_writer_id"),
            sequence=number(item, "head_sequence"),
            hash=text(item, "head_hash"),
        ),
        covers_from=number(item, "covers_from"),
        prev_digest_hash=text(item, "prev_digest_hash"),
        key_id=text(item, "key_id"),
        hash=text(item, "hash"),
        signature=bytes(item["signature"]["B"]),
    )


class DynamoAuditLog(DynamoStore):
    """The audit log on a DynamoDB table (see the module docstring).

    Args:
        aws: the clients.
        table: the audit table's name.
        batch_interval: the longest a buffered record waits (seconds).
        reclaim_after: how old (seconds, monotonic) this log's last check of
            a writer's claim may be before buffering re-checks it.
    """

    LABEL = "audit log"

    def __init__(
        self,
        aws: AwsClients,
        table: str,
        *,
        batch_interval: float = 1.0,
        reclaim_after: float = 5.0,
    ) -> None:
        super().__init__(aws, table)
        if batch_interval <= 0:
            raise ValueError("audit log: batch_interval must be positive")
        if reclaim_after < 0:
            raise ValueError("audit log: reclaim_after cannot be negative")
        self._batch_interval = batch_interval
        self._reclaim_after = reclaim_after
        self._registered: set[str] = set()
        # Writer -> when (monotonic, before the request) its claim was last confirmed.
        self._claimed: dict[str, float] = {}
        self._owner = secrets.token_hex(16)
        # Days this process knows to lie within the stored first..last day.
        self._known: tuple[str, str] | None = None
        self._pending: list[AuditRecord] = []
        self._flushing = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._timed: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """How many buffered records are not yet written."""
        return len(self._pending)

    # Writing

    async def append(self, record: AuditRecord, *, wait: bool = True) -> None:
        """Store ``record``; ``AuditConflict`` if its position or its event ID is taken.

        ``wait=False`` buffers it for a batch (see the module docstring):
        written within ``batch_interval``, or sooner.
        """
        if not wait:
            await self._buffer(record)
            return
        await self.flush()  # the writer's earlier records first
        item = _record_item(record)
        revoked: Item | None = None
        if is_seal(record) and record.writer_id not in self._claimed:
            revoked = await self._revoke(record.writer_id)
        try:
            await self._append_now(record, item)
        except AuditConflict:
            if revoked is not None:
                # It wrote again: alive after all, and its claim goes back to it.
                await self._restore(record.writer_id, revoked)
            raise

    async def _append_now(self, record: AuditRecord, item: Item) -> None:
        # The day range first: a record is never stored outside the days
        # that queries read (a failed append only widens the range).
        await self._cover(_day(record.timestamp))
        guard_key: Item = {"pk": s(f"event#{record.event_id}"), "sk": s("-")}
        position = {"writer_id": s(record.writer_id), "sequence": num(record.sequence)}
        wrote_guard = await self._put_new("append", {**guard_key, **position})
        if not wrote_guard:
            guard = await self._get_item("append", guard_key)
            if guard is None or any(guard.get(k) != v for k, v in position.items()):
                raise AuditConflict(
                    f"audit record {record.writer_id}#{record.sequence}: its event ID is taken"
                )
        if not await self._put_once("append", item):
            if wrote_guard:
                await self._delete_guard(guard_key, position)
            raise AuditConflict(f"audit record {record.writer_id}#{record.sequence} already exists")
        await self._register(record.writer_id)

    async def _buffer(self, record: AuditRecord) -> None:
        if len(self._pending) >= _MAX_PENDING:
            # DynamoDB has taken nothing for a while: refuse, before the
            # record is accepted, so the caller's chain does not move on.
            await self.flush()
        await self._claim(record.writer_id)
        await self._cover(_day(record.timestamp))
        # From here on the record is accepted (unless this call is cancelled
        # below): a failed flush keeps it buffered.
        self._pending.append(record)
        if len(self._pending) >= BATCH and not self._flushing.locked():
            try:
                await self.flush()
            except StoreUnavailable as error:
                _log.warning("audit batch not written yet, retrying: %s", error)
            except asyncio.CancelledError:
                # The caller sees this append fail and appends again at the
                # same position: left buffered, the record would share a
                # batch with its replacement, and DynamoDB refuses a batch
                # with a key twice (every later flush would fail). Already
                # written, it is gone from the buffer; the replacement's put
                # then overwrites it.
                with contextlib.suppress(ValueError):
                    self._pending.remove(record)
                raise
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        """Flush the buffer after the batch interval, unless that is arranged already."""
        if self._pending and self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._batch_interval, self._flush_later)

    def _flush_later(self) -> None:
        self._timer = None
        if self._timed is None or self._timed.done():
            self._timed = asyncio.ensure_future(self._timed_flush())

    async def _timed_flush(self) -> None:
        try:
            await self.flush()
        except StoreUnavailable as error:
            # The records stay buffered; try again after another interval.
            _log.warning("audit batch not written yet, retrying: %s", error)
            self._schedule_flush()

    async def flush(self) -> None:
        """Write every buffered record now (``StoreUnavailable`` if DynamoDB will not take them).

        Records that could not be written stay buffered, in order.
        """
        async with self._flushing:
            while self._pending:
                batch = self._pending[:BATCH]
                await self._write_batch(batch)
                del self._pending[: len(batch)]
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    async def aclose(self) -> None:
        """Flush the buffer (call before the clients close)."""
        if self._timed is not None and not self._timed.done():
            self._timed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timed
        await self.flush()

    async def _write_batch(self, records: Sequence[AuditRecord]) -> None:
        requests = [{"PutRequest": {"Item": _record_item(r)}} for r in records]
        left = await self._send_batch("append", requests)
        if left:
            raise StoreUnavailable(
                f"{self.LABEL}: append failed: DynamoDB left {len(left)} of {len(records)} "
                f"records unprocessed after {BATCH_TRIES} tries (throttled); they stay buffered"
            )

    async def _claim(self, writer: str) -> None:
        """Make this log the only one writing ``writer``'s positions (re-checked when stale)."""
        checked = self._claimed.get(writer)
        now = time.monotonic()
        if checked is not None and now - checked < self._reclaim_after:
            return
        if not await self._write_if(
            "append",
            self._db.update_item,
            Key={"pk": s("writers"), "sk": s(writer)},
            UpdateExpression="SET #owner = :me",
            ConditionExpression="attribute_not_exists(#owner) OR #owner = :me",
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues={":me": s(self._owner)},
        ):
            self._claimed.pop(writer, None)
            raise AuditConflict(f"audit writer {writer} is written by another process, or sealed")
        self._claimed[writer] = now
        self._registered.add(writer)

    async def _revoke(self, writer: str) -> Item:
        """Take ``writer``'s claim from whoever holds it (its chain is being sealed).

        Returns the writer item's attributes as they were, for :meth:`_restore`.
        """
        answer = await self._call(
            "append",
            self._db.update_item,
            Key={"pk": s("writers"), "sk": s(writer)},
            UpdateExpression="SET #owner = :sealed",
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues={":sealed": s(_SEALED)},
            ReturnValues="UPDATED_OLD",
        )
        return dict(answer.get("Attributes", {}))

    async def _restore(self, writer: str, old: Item) -> None:
        """Give ``writer``'s claim back after a seal that did not happen."""
        owner = old.get("owner")
        update = "SET #owner = :old" if owner is not None else "REMOVE #owner"
        values: dict[str, Any] = {":sealed": s(_SEALED)}
        if owner is not None:
            values[":old"] = owner
        await self._write_if(
            "append",
            self._db.update_item,
            Key={"pk": s("writers"), "sk": s(writer)},
            UpdateExpression=update,
            ConditionExpression="#owner = :sealed",
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues=values,
        )

    async def _delete_guard(self, key: Item, position: Item) -> None:
        await self._write_if(
            "append",
            self._db.delete_item,
            Key=key,
            ConditionExpression="writer_id = :w AND #seq = :n",
            ExpressionAttributeNames={"#seq": "sequence"},
            ExpressionAttributeValues={
                ":w": position["writer_id"],
                ":n": position["sequence"],
            },
        )

    async def _register(self, writer: str) -> None:
        if writer in self._registered:
            return
        # Created if absent, never overwritten: that would drop its owner.
        await self._put_new("append", {"pk": s("writers"), "sk": s(writer)})
        self._registered.add(writer)

    async def _cover(self, day: str) -> None:
        """Widen the stored first..last day to include ``day`` (once per process and day range)."""
        known = self._known
        if known is not None and known[0] <= day <= known[1]:
            return
        for bound, widen in (("first_day", ">"), ("last_day", "<")):
            await self._write_if(
                "append",
                self._db.update_item,
                Key={"pk": s("meta"), "sk": s("days")},
                UpdateExpression=f"SET {bound} = :day",
                ConditionExpression=f"attribute_not_exists({bound}) OR {bound} {widen} :day",
                ExpressionAttributeValues={":day": s(day)},
            )
        first, last = (day, day) if known is None else (min(known[0], day), max(known[1], day))
        self._known = (first, last)

    async def _bounds(self, operation: str) -> tuple[date, date] | None:
        """Return the first and last day holding records, or ``None`` if there are none."""
        item = await self._get_item(operation, {"pk": s("meta"), "sk": s("days")})
        if item is None or "first_day" not in item or "last_day" not in item:
            return None
        return date.fromisoformat(text(item, "first_day")), date.fromisoformat(
            text(item, "last_day")
        )

    async def put_digest(self, digest: SignedDigest) -> None:
        """Store a digest; ``AuditConflict`` if the writer's ``digest_sequence`` exists.

        The buffer is written first: a digest never covers a record not yet stored.
        """
        await self.flush()
        item: Item = {
            "pk": s(f"digest#{digest.writer_id}"),
            "sk": s(f"{digest.digest_sequence:020d}"),
            "writer_id": s(digest.writer_id),
            "digest_sequence": num(digest.digest_sequence),
            "created_at": num(micros(digest.created_at)),
            "head_writer_id": s(digest.head.writer_id),
            "head_sequence": num(digest.head.sequence),
            "head_hash": s(digest.head.hash),
            "covers_from": num(digest.covers_from),
            "prev_digest_hash": s(digest.prev_digest_hash),
            "key_id": s(digest.key_id),
            "hash": s(digest.hash),
            "signature": {"B": digest.signature},
        }
        if not await self._put_once("put_digest", item):
            raise AuditConflict(
                f"audit digest {digest.writer_id}#{digest.digest_sequence} already exists"
            )
        await self._register(digest.writer_id)

    async def prune(self, records: list[AuditRecord]) -> int:
        """Replace each stored record by its pruned form; return how many changed."""
        changed = 0
        for record in records:
            if await self._write_if(
                "prune",
                self._db.update_item,
                Key={
                    "pk": s(f"chain#{record.writer_id}"),
                    "sk": s(f"{record.sequence:020d}"),
                },
                UpdateExpression=(
                    "SET pruned = :true, #action = :empty, #resource = :empty, "
                    "#source = :empty, details = :nothing "
                    "REMOVE actor, subject, body, #at, " + ", ".join(AUDIT_INDEXES.values())
                ),
                ConditionExpression="attribute_exists(pk) AND pruned = :false",
                ExpressionAttributeNames={
                    "#action": "action",
                    "#resource": "resource",
                    "#source": "source",
                    "#at": "at",
                },
                ExpressionAttributeValues={
                    ":true": {"BOOL": True},
                    ":false": {"BOOL": False},
                    ":empty": s(""),
                    ":nothing": s("{}"),
                },
            ):
                changed += 1
        return changed

    # Reading

    async def chain(
        self, writer_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[AuditRecord]:
        """Return the writer's records with ``sequence > after``, in sequence order."""
        await self.flush()
        if limit is not None and limit <= 0:
            return []
        params: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND sk > :after",
            "ExpressionAttributeValues": {
                ":pk": s(f"chain#{writer_id}"),
                ":after": s(f"{after:020d}" if after >= 0 else "-"),
            },
            "ConsistentRead": True,
        }
        if limit is not None:
            params["Limit"] = min(limit, 1000)
        found: list[AuditRecord] = []
        async for item in self._items("chain", **params):
            found.append(_record(item))
            if len(found) == limit:
                return found
        return found

    async def writers(self) -> list[str]:
        """Return every writer that has a record or a digest, sorted."""
        items = await self._partition("writers", "writers", ProjectionExpression="sk")
        return sorted(text(item, "sk") for item in items)

    async def digests(self, writer_id: str) -> list[SignedDigest]:
        """Return the writer's digests in ``digest_sequence`` order."""
        return [_digest(item) for item in await self._partition("digests", f"digest#{writer_id}")]

    async def query(
        self,
        *,
        start: datetime,
        end: datetime,
        actor: str | None = None,
        action: str | None = None,
        kind: AuditKind | None = None,
        subject: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> AuditPage:
        """Return records with ``start <= timestamp < end`` matching every filter, newest first."""
        after = AuditCursor.decode(cursor) if cursor is not None else None
        await self.flush()
        if limit <= 0 or end <= start:
            return AuditPage(records=())
        low = _ts(start)
        high = f"{_ts(end - timedelta(microseconds=1))}{_TOP}"
        if after is not None:
            high = min(high, _at(after.timestamp, after.writer_id, after.sequence))
        bounds = await self._bounds("query")
        if bounds is None:
            return AuditPage(records=())
        first = max(bounds[0], start.astimezone(UTC).date())
        last = min(bounds[1], (end - timedelta(microseconds=1)).astimezone(UTC).date())
        index, partitions, filters = self._plan(actor, action, kind, subject, first, last)
        found: list[AuditRecord] = []
        for partition in partitions:
            async for item in self._index_items(
                index, partition, low, high, filters, forward=False
            ):
                if after is not None and item["at"]["S"] >= high:
                    continue  # the cursor's own record
                record = await self._indexed(item)
                if not record.matches(actor=actor, action=action, kind=kind, subject=subject):
                    continue  # an attribute disagrees with the body: verify reports it
                found.append(record)
                if len(found) > limit:
                    return AuditPage.first(found, limit)
        return AuditPage.first(found, limit)

    def _plan(
        self,
        actor: str | None,
        action: str | None,
        kind: AuditKind | None,
        subject: str | None,
        first: date,
        last: date,
    ) -> tuple[str, list[str], dict[str, str]]:
        """Choose the index and its partitions (newest first); the rest become filters."""
        filters = {
            name: value
            for name, value in (
                ("actor", actor),
                ("action", action),
                ("kind", kind.value if kind is not None else None),
                ("subject", subject),
            )
            if value is not None
        }
        if first > last:
            return "by-day", [], filters
        for name in ("subject", "actor", "action"):
            value = filters.pop(name, None)
            if value is not None:
                months = _months(first, last)
                return f"by-{name}", [f"{name}#{value}#{m}" for m in months], filters
        value = filters.pop("kind", None)
        if value is not None:
            return "by-kind", [f"kind#{value}#{d}" for d in _days(first, last)], filters
        return "by-day", [f"day#{d}" for d in _days(first, last)], filters

    def _index_items(
        self,
        index: str,
        partition: str,
        low: str,
        high: str,
        filters: dict[str, str],
        *,
        forward: bool,
    ) -> AsyncIterator[Item]:
        names = {"#p": AUDIT_INDEXES[index], "#at": "at"}
        values: dict[str, Any] = {":p": s(partition), ":low": s(low), ":high": s(high)}
        params: dict[str, Any] = {
            "IndexName": index,
            "KeyConditionExpression": "#p = :p AND #at BETWEEN :low AND :high",
            "ScanIndexForward": forward,
            "Limit": _PAGE,
        }
        if filters:
            clauses = []
            for position, (name, value) in enumerate(sorted(filters.items())):
                names[f"#f{position}"] = name
                values[f":f{position}"] = s(value)
                clauses.append(f"#f{position} = :f{position}")
            params["FilterExpression"] = " AND ".join(clauses)
        params["ExpressionAttributeNames"] = names
        params["ExpressionAttributeValues"] = values
        return self._items("query", **params)

    async def _indexed(self, item: Item) -> AuditRecord:
        """Return an index item's record: from its body, else (an older item) from the table."""
        decoded = _from_body(item)
        if decoded is not None:
            return decoded
        full = await self._get_item("query", {"pk": item["pk"], "sk": item["sk"]})
        if full is None:
            raise StoreUnavailable("audit log: an indexed record is gone from the table")
        return _record(full)

    async def older_than(
        self, cutoff: datetime, *, limit: int = 500, after: tuple[datetime, str, int] | None = None
    ) -> list[AuditRecord]:
        """Return unpruned records with ``timestamp < cutoff``, oldest first, after ``after``."""
        if limit <= 0:
            return []
        bounds = await self._bounds("older_than")
        if bounds is None:
            return []
        low = "" if after is None else _at(*after)
        high = f"{_ts(cutoff - timedelta(microseconds=1))}{_TOP}"
        first = bounds[0] if after is None else max(bounds[0], after[0].astimezone(UTC).date())
        last = min(bounds[1], (cutoff - timedelta(microseconds=1)).astimezone(UTC).date())
        found: list[AuditRecord] = []
        for day in reversed(_days(first, last)) if first <= last else []:
            async for item in self._index_items(
                "by-day", f"day#{day}", low or "0", high, {}, forward=True
            ):
                if item["at"]["S"] <= low:
                    continue  # ``after`` itself
                found.append(await self._indexed(item))
                if len(found) >= limit:
                    return found
        return found
