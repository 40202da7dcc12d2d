"""What the DynamoDB stores share: value encodings, paging, conditional and batch writes."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from timmybot_adapters.aws.clients import AwsClients, aws_errors, error_code, retried
from timmybot_core.domain.clock import as_utc
from timmybot_core.domain.errors import StoreUnavailable
from timmybot_core.domain.snowflake import check_snowflake

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

__all__ = [
    "BATCH",
    "BATCH_TRIES",
    "CHECK_FAILED",
    "DynamoStore",
    "Item",
    "from_micros",
    "id_key",
    "micros",
    "num",
    "num_or_none",
    "s",
    "text",
    "ttl_of",
]

Item = dict[str, "AttributeValueTypeDef"]

_ORIGIN: Final = datetime(1, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)
#: ``BatchWriteItem``'s limit, and the tries of :meth:`DynamoStore._send_batch`.
BATCH: Final = 25
BATCH_TRIES: Final = 10
#: The error code of a write whose ``ConditionExpression`` did not hold.
CHECK_FAILED: Final = "ConditionalCheckFailedException"


def micros(moment: datetime) -> int:
    """Microseconds since 0001-01-01 UTC: never negative, so it sorts as zero-padded text."""
    return (as_utc(moment, "timestamps") - _ORIGIN) // _US


def from_micros(value: int) -> datetime:
    """Return the UTC datetime of a :func:`micros` value."""
    return _ORIGIN + timedelta(microseconds=value)


def time_key(value: int) -> str:
    """Return a :func:`micros` value as 20-digit text, whose order is time order."""
    return f"{max(value, 0):020d}"


def id_key(snowflake: int) -> str:
    """Return a snowflake as 20-digit zero-padded text, whose order is numeric order."""
    return f"{check_snowflake(snowflake, allow_zero=True):020d}"


def ttl_of(moment: datetime) -> int:
    """Epoch seconds for a TTL attribute: the first whole second at or after ``moment``."""
    return math.ceil(moment.timestamp())


def s(value: str) -> AttributeValueTypeDef:
    """Return a string attribute value."""
    return {"S": value}


def num(value: int) -> AttributeValueTypeDef:
    """Return a number attribute value."""
    return {"N": str(value)}


def text(item: Mapping[str, Any], name: str) -> str:
    """Return the string attribute ``name`` of ``item``."""
    return str(item[name]["S"])


def number(item: Mapping[str, Any], name: str) -> int:
    """Return the number attribute ``name`` of ``item``, as an int."""
    return int(item[name]["N"])


def num_or_none(item: Mapping[str, Any], name: str) -> int | None:
    """Return the number attribute ``name``, or ``None`` when absent."""
    value = item.get(name)
    return None if value is None else int(value["N"])


def text_or_none(item: Mapping[str, Any], name: str) -> str | None:
    """Return the string attribute ``name``, or ``None`` when absent."""
    value = item.get(name)
    return None if value is None else str(value["S"])


class DynamoStore:
    """A store on one DynamoDB table, with error translation and paging."""

    LABEL = "dynamodb store"

    def __init__(self, aws: AwsClients, table: str) -> None:
        if not table:
            raise ValueError(f"{self.LABEL}: a table name is required")
        self._aws = aws
        self._table = table

    def __repr__(self) -> str:
        return f"{type(self).__name__}(table={self._table!r})"

    @property
    def table(self) -> str:
        """The table's name."""
        return self._table

    @property
    def _db(self) -> DynamoDBClient:
        return self._aws.dynamodb

    async def _items(
        self, operation: str, *, scan: bool = False, **params: Any
    ) -> AsyncIterator[Item]:
        """Yield each item of a ``Query`` (or a ``Scan``), page after page until the last."""
        call: Callable[..., Any] = self._db.scan if scan else self._db.query
        start: Item | None = None
        while True:
            request = dict(params) if start is None else dict(params, ExclusiveStartKey=start)
            page = await self._call(operation, call, **request)
            for item in page.get("Items", []):
                yield item
            start = page.get("LastEvaluatedKey")
            if not start:
                return

    async def _call(self, operation: str, call: Callable[..., Any], **params: Any) -> Any:
        """Run ``call`` (a ``PutItem``, a ``DeleteItem`` ...) on the table and return its answer."""
        with aws_errors(self.LABEL, operation):
            return await self._aws.run(call, TableName=self._table, **params)

    async def _get_item(self, operation: str, key: Item, **params: Any) -> Item | None:
        """Read the item at ``key`` (a consistent read), or ``None`` if there is none."""
        answer = await self._call(
            operation, self._db.get_item, Key=key, ConsistentRead=True, **params
        )
        item: Item | None = answer.get("Item")
        return item

    async def _delete(self, operation: str, key: Item) -> Item:
        """Delete the item at ``key``; return its attributes as they were (empty if none)."""
        answer = await self._call(operation, self._db.delete_item, Key=key, ReturnValues="ALL_OLD")
        return dict(answer.get("Attributes", {}))

    async def _try_write(
        self,
        operation: str,
        call: Callable[..., Any],
        *,
        applied_if: Callable[[Item], bool] | None = None,
        **params: Any,
    ) -> dict[str, Any] | None:
        """Run the conditional write ``call``; its answer, or ``None`` if its check failed.

        A failed condition is an expected outcome (someone else got there
        first); any other error is ``StoreUnavailable``. With ``applied_if``,
        a request botocore sent more than once whose check failed reads the
        item at ``Key`` back: if ``applied_if`` holds for it, an earlier try
        was applied and the answer is ``{}``.
        """
        with aws_errors(self.LABEL, operation):
            try:
                answer: dict[str, Any] = await self._aws.run(call, TableName=self._table, **params)
            except ClientError as error:
                if error_code(error) != CHECK_FAILED:
                    raise
                if applied_if is None or not retried(error):
                    return None
                item = await self._get_item(operation, params["Key"])
                return {} if item is not None and applied_if(item) else None
        return answer

    async def _write_if(self, operation: str, call: Callable[..., Any], **params: Any) -> bool:
        """Run the conditional write ``call`` on the table; ``False`` if its check failed."""
        return await self._try_write(operation, call, **params) is not None

    async def _put_new(self, operation: str, item: Item) -> bool:
        """``PutItem`` unless an item has that key; ``False`` if one did."""
        return await self._write_if(
            operation, self._db.put_item, Item=item, ConditionExpression="attribute_not_exists(pk)"
        )

    async def _put_once(self, operation: str, item: Item, **condition: Any) -> bool:
        """``PutItem`` under ``condition`` (default: no item has that key); ``False`` if it failed.

        Finding this very item stored is success: a retry of a put that was
        applied (the caller then finishes what that put began).
        """
        condition = condition or {"ConditionExpression": "attribute_not_exists(pk)"}
        if await self._write_if(operation, self._db.put_item, Item=item, **condition):
            return True
        return await self._get_item(operation, {"pk": item["pk"], "sk": item["sk"]}) == item

    async def _partition(self, operation: str, pk: str, **params: Any) -> list[Item]:
        """Every item of the partition ``pk`` (a strongly consistent ``Query``, all pages)."""
        values = {":pk": s(pk), **params.pop("ExpressionAttributeValues", {})}
        return await self._all(
            operation,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=values,
            ConsistentRead=True,
            **params,
        )

    async def _all(self, operation: str, *, scan: bool = False, **params: Any) -> list[Item]:
        """Every item of a ``Query`` (or a ``Scan``), all pages."""
        return [item async for item in self._items(operation, scan=scan, **params)]

    async def _send_batch(self, operation: str, requests: list[Any]) -> list[Any]:
        """Send a ``BatchWriteItem``, retrying unprocessed requests; return those still left."""
        delay = 0.05
        for _ in range(BATCH_TRIES):
            with aws_errors(self.LABEL, operation):
                answer = await self._aws.run(
                    self._db.batch_write_item, RequestItems={self._table: requests}
                )
            requests = list(answer.get("UnprocessedItems", {}).get(self._table, []))
            if not requests:
                break
            # Unprocessed items mean throttling: back off before retrying them.
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        return requests

    async def _delete_keys(self, operation: str, keys: Sequence[Item]) -> None:
        """Delete items by key, 25 per ``BatchWriteItem``, retrying unprocessed ones."""
        for offset in range(0, len(keys), BATCH):
            chunk = keys[offset : offset + BATCH]
            left = await self._send_batch(operation, [{"DeleteRequest": {"Key": k}} for k in chunk])
            if left:
                raise StoreUnavailable(
                    f"{self.LABEL}: {operation} failed: DynamoDB left {len(left)} deletes "
                    f"unprocessed after {BATCH_TRIES} tries (throttled)"
                )
