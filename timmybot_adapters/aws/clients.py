"""boto3 clients built once, a bounded thread pool, and AWS errors in the core's terms.

:class:`AwsClients` builds each boto3 client the first time it is used and
keeps it (a client is thread-safe; building one costs tens of
milliseconds). Every client gets explicit connect and read timeouts and
botocore's ``standard`` retry mode (exponential backoff with jitter on
throttling, 5xx answers and connection errors, up to
:attr:`AwsConfig.max_attempts` attempts in all).

boto3 blocks. :meth:`AwsClients.run` runs a call on a bounded thread pool of
its own, so a slow or retrying AWS call never stalls the event loop, and a
flood of calls queues instead of spawning threads.

:func:`aws_errors` turns botocore's exceptions into the core's
:class:`~timmybot_core.domain.errors.StoreUnavailable`,
:class:`~timmybot_core.domain.errors.VaultUnavailable` or
:class:`~timmybot_core.domain.errors.AlertDeliveryError`. The message names the
operation, the AWS error code, the HTTP status, the number of attempts and
the request ID, and says what the code usually means (access denied,
throttled, KMS key unusable, ...). It never repeats AWS's own message, which
can name a resource (a secret name holds a Discord user ID), and it drops the
botocore exception from the chain for the same reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar, cast

import attrs
import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    ReadTimeoutError,
)

from timmybot_core.domain.errors import StoreUnavailable, TimmyBotError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sns import SNSClient

__all__ = ["AwsClients", "AwsConfig", "aws_errors", "describe_error", "error_code", "retried"]

P = ParamSpec("P")
T = TypeVar("T")

_THROTTLING: Final = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "Throttled",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "TransactionInProgressException",
        "SlowDown",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "EC2ThrottledException",
        "PriorRequestNotComplete",
    }
)
_DENIED: Final = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AuthorizationError",
        "AuthorizationErrorException",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "MissingAuthenticationToken",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
    }
)
_KMS: Final = frozenset({"DecryptionFailure", "EncryptionFailure"})
_INTERNAL: Final = frozenset(
    {
        "InternalServiceError",
        "InternalServerError",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


def _positive(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ValueError(f"AwsConfig.{attribute.name} must be positive (got {value!r})")


def _endpoint(_: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError(
            f"AwsConfig.{attribute.name} must be an http(s) URL such as "
            f"http://127.0.0.1:4566 (got {value[:60]!r})"
        )


@attrs.frozen(kw_only=True)
class AwsConfig:
    """Where and how the aws adapters call AWS.

    Attributes:
        region: the AWS region; ``None`` lets boto3 find it
            (``AWS_REGION``, ``AWS_DEFAULT_REGION``, the config file).
        endpoint_url: an endpoint for every service but DynamoDB (tests and
            local runs point it at moto's server); ``None``: AWS itself.
        dynamodb_endpoint_url: DynamoDB's endpoint (tests point it at
            dynalite); ``None``: ``endpoint_url`` if set, else AWS.
        connect_timeout: seconds to open a connection.
        read_timeout: seconds to wait for an answer once connected.
        max_attempts: attempts per call in all, the first included
            (botocore's ``total_max_attempts``).
        max_workers: threads running blocking boto3 calls; also the size of
            each client's connection pool.
    """

    region: str | None = None
    endpoint_url: str | None = attrs.field(default=None, validator=_endpoint)
    dynamodb_endpoint_url: str | None = attrs.field(default=None, validator=_endpoint)
    connect_timeout: float = attrs.field(default=3.0, validator=_positive)
    read_timeout: float = attrs.field(default=10.0, validator=_positive)
    max_attempts: int = attrs.field(default=4, validator=_positive)
    max_workers: int = attrs.field(default=16, validator=_positive)

    def botocore_config(self) -> Config:
        """Return the botocore ``Config`` every client is built with."""
        return Config(
            region_name=self.region,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            retries={"mode": "standard", "total_max_attempts": self.max_attempts},
            max_pool_connections=self.max_workers,
        )

    def endpoint_for(self, service: str) -> str | None:
        """Return the endpoint URL of ``service`` (``None``: the AWS default)."""
        if service == "dynamodb" and self.dynamodb_endpoint_url is not None:
            return self.dynamodb_endpoint_url
        return self.endpoint_url


class AwsClients:
    """One boto3 client per service, built on first use, and the pool that runs them.

    ``session`` defaults to a new ``boto3.Session()`` (the default credential
    chain: the ECS task role in production). Call :meth:`close` (or
    ``await`` :meth:`aclose`) when done: it stops the pool and closes the
    clients' connections.
    """

    def __init__(self, config: AwsConfig, *, session: boto3.Session | None = None) -> None:
        self._config = config
        self._session = session
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._pool = ThreadPoolExecutor(
            max_workers=config.max_workers, thread_name_prefix="timmybot-aws"
        )
        self._closed = False

    def __repr__(self) -> str:
        return f"AwsClients(region={self._config.region!r}, built={sorted(self._clients)!r})"

    @property
    def config(self) -> AwsConfig:
        """The configuration the clients are built with."""
        return self._config

    def client(self, service: str) -> Any:
        """Return the client of ``service``, building it the first time.

        Raises ``StoreUnavailable`` if it cannot be built (no region, an
        unknown service).
        """
        client = self._clients.get(service)
        if client is not None:
            return client
        with self._lock:
            client = self._clients.get(service)
            if client is None:
                # A boto3 Session is not thread-safe: clients are built under the lock.
                session = self._session if self._session is not None else boto3.Session()
                self._session = session
                with aws_errors("aws", f"build the {service} client"):
                    client = session.client(
                        service,  # type: ignore[call-overload]
                        endpoint_url=self._config.endpoint_for(service),
                        config=self._config.botocore_config(),
                    )
                self._clients[service] = client
            return client

    @property
    def secretsmanager(self) -> SecretsManagerClient:
        """The Secrets Manager client."""
        return cast("SecretsManagerClient", self.client("secretsmanager"))

    @property
    def dynamodb(self) -> DynamoDBClient:
        """The DynamoDB client."""
        return cast("DynamoDBClient", self.client("dynamodb"))

    @property
    def sns(self) -> SNSClient:
        """The SNS client."""
        return cast("SNSClient", self.client("sns"))

    @property
    def logs(self) -> CloudWatchLogsClient:
        """The CloudWatch Logs client."""
        return cast("CloudWatchLogsClient", self.client("logs"))

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run the blocking call ``fn(*args, **kwargs)`` on the pool and await its result.

        Cancelling the awaiting task does not stop a call already running
        (boto3 cannot be interrupted); its result is discarded.
        """
        if self._closed:
            raise StoreUnavailable("aws: the AWS clients are closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        """Stop the pool (waiting for running calls) and close the clients."""
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    async def aclose(self) -> None:
        """:meth:`close` without blocking the event loop."""
        await asyncio.to_thread(self.close)


def error_code(error: ClientError) -> str:
    """Return the AWS error code of ``error`` (``ConditionalCheckFailedException``, ...)."""
    return str(error.response.get("Error", {}).get("Code", "Unknown"))


def retried(error: ClientError) -> bool:
    """Whether botocore sent the request more than once (an earlier try may have succeeded)."""
    return int(error.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)) > 0


def _client_error(error: ClientError) -> str:
    code = error_code(error)
    metadata = error.response.get("ResponseMetadata", {})
    status = metadata.get("HTTPStatusCode")
    attempts = int(metadata.get("RetryAttempts", 0)) + 1
    request = metadata.get("RequestId") or "none"
    tried = f"after {attempts} attempt{'s' if attempts != 1 else ''}"
    if code in _THROTTLING:
        reason = f"AWS throttled the request and was still throttling it {tried}"
    elif code in _DENIED:
        reason = (
            "access denied: the credentials were refused or the IAM role does not allow "
            "this action on this resource"
        )
    elif code.startswith("KMS") or code in _KMS:
        reason = (
            "the KMS key cannot be used (disabled, pending deletion, missing, throttled, "
            "or the role may not use it)"
        )
    elif code in _INTERNAL or (isinstance(status, int) and status >= 500):
        reason = f"AWS failed with a server error, still {tried}"
    elif code == "ResourceNotFoundException":
        reason = "a resource it needs does not exist (check the table, topic or secret names)"
    elif code == "ValidationException":
        reason = "AWS rejected the request as invalid"
    else:
        reason = "AWS refused the request"
    return f"{reason} ({error.operation_name} -> {code}, HTTP {status}, {tried}, request {request})"


def describe_error(error: BaseException) -> str:
    """Explain a botocore error in one line without repeating AWS's message."""
    if isinstance(error, ClientError):
        return _client_error(error)
    if isinstance(error, ConnectTimeoutError | EndpointConnectionError):
        endpoint = getattr(error, "kwargs", {}).get("endpoint_url", "the AWS endpoint")
        return f"could not connect to {endpoint} ({type(error).__name__})"
    if isinstance(error, ReadTimeoutError):
        return "AWS did not answer within the read timeout (ReadTimeoutError)"
    if isinstance(error, ConnectionClosedError):
        return "AWS closed the connection before answering (ConnectionClosedError)"
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials found (task role, environment variables or profile)"
    if isinstance(error, NoRegionError):
        return "no AWS region configured (set the region setting or AWS_REGION)"
    if isinstance(error, ParamValidationError):
        # Its message can quote a parameter's value: never shown.
        return "botocore refused the request parameters (ParamValidationError)"
    return f"the AWS SDK failed ({type(error).__name__})"


@contextlib.contextmanager
def aws_errors(
    what: str, operation: str, kind: type[TimmyBotError] = StoreUnavailable
) -> Iterator[None]:
    """Turn a botocore error raised inside the block into ``kind`` with a clear message.

    ``what`` names the adapter ("token vault"), ``operation`` the method
    ("get"). Errors a caller expects (a conditional check that failed) must
    be caught inside the block, before they reach this.
    """
    try:
        yield
    except (ClientError, BotoCoreError) as error:
        raise kind(f"{what}: {operation} failed: {describe_error(error)}") from None
