"""Fault injection for boto3 clients through botocore ``before-send`` hooks.

A ``before-send`` handler runs for every attempt of a call, just before the
HTTP request leaves. Returning a response replaces the server's answer;
raising replaces the network. So the adapters, and botocore's retries in
between, run exactly as they would against a failing AWS:

* ``throttle``: a 400 ``ThrottlingException`` answer (retried, 1 s backoff base);
* ``error500``: a 500 ``InternalServerError`` answer (retried);
* ``connect``: ``ConnectTimeoutError``, the request never left (retried);
* ``read``: ``ReadTimeoutError`` before sending, the server never saw it (retried);
* ``lost``: the request IS sent and applied, then ``ReadTimeoutError``: the
  answer was lost, and botocore's retry sends the same request again. This
  is the fault that makes non-idempotent writes count twice.

Faults are drawn from a seeded random generator, so a failure reproduces.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError
from botocore.httpsession import URLLib3Session

KINDS = ("throttle", "error500", "connect", "read")


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def error_answer(request: Any, status: int, code: str, *, query: bool = False) -> AWSResponse:
    """An AWS error answer in the JSON protocol (or the query protocol's XML for SNS)."""
    if query:
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
            "<Message>aws-message-7c1f</Message></Error><RequestId>req-injected-0001</RequestId></ErrorResponse>"
        ).encode()
    else:
        body = json.dumps({"__type": code, "message": "aws-message-7c1f"}).encode()
    return AWSResponse(request.url, status, {"x-amzn-requestid": "req-injected-0001"}, _Body(body))


class Faults:
    """A ``before-send`` handler failing a share of the calls it sees.

    ``rate`` is the chance that one attempt fails, ``kinds`` the faults to
    draw from; ``operations`` limits it to some operations (``None``: all).
    ``schedule``, if given, decides instead of ``rate``: one boolean per
    attempt of those operations (fault or not; no fault once exhausted).
    ``always`` (``(status, code)``) answers every attempt with that error.
    ``counts`` records what was injected, ``sent`` every attempt.
    """

    def __init__(
        self,
        *,
        rate: float = 0.0,
        kinds: Sequence[str] = KINDS,
        operations: Sequence[str] | None = None,
        seed: int = 7,
        query_protocol: bool = False,
        schedule: Sequence[bool] | None = None,
    ) -> None:
        self.rate = rate
        self.schedule = None if schedule is None else iter(schedule)
        self.kinds = tuple(kinds)
        self.operations = None if operations is None else frozenset(operations)
        self.always: tuple[int, str] | None = None
        self.counts: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._http = URLLib3Session()
        self._query = query_protocol

    def attach(self, client: Any, service: str) -> None:
        """Register on every operation of ``client`` (service name as botocore spells it)."""
        client.meta.events.register(f"before-send.{service}", self)

    def __call__(self, request: Any, event_name: str = "", **_: Any) -> AWSResponse | None:
        operation = event_name.rsplit(".", 1)[-1]
        with self._lock:
            self.sent[operation] += 1
            if self.operations is not None and operation not in self.operations:
                return None
            if self.always is not None:
                status, code = self.always
                self.counts[code] += 1
                return error_answer(request, status, code, query=self._query)
            if self.schedule is not None:
                if not next(self.schedule, False):
                    return None
            elif self._random.random() >= self.rate:
                return None
            kind = self._random.choice(self.kinds)
            self.counts[kind] += 1
        if kind == "throttle":
            return error_answer(request, 400, "ThrottlingException", query=self._query)
        if kind == "error500":
            return error_answer(request, 500, "InternalServerError", query=self._query)
        if kind == "connect":
            raise ConnectTimeoutError(endpoint_url=request.url)
        if kind == "read":
            raise ReadTimeoutError(endpoint_url=request.url)
        if kind == "lost":
            self._http.send(request)  # applied by the server...
            raise ReadTimeoutError(endpoint_url=request.url)  # ...but the answer is lost
        raise AssertionError(f"unknown fault kind {kind!r}")
