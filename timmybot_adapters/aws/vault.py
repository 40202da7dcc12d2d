"""TokenVault on AWS Secrets Manager: one secret per user, under a customer-managed KMS key.

Layout
    The record of user ``U`` is the secret ``{prefix}U/oauth`` (default
    prefix ``/timmybot/users/``, so ``/timmybot/users/123/oauth``), whose
    ``SecretString`` is :meth:`UserTokens.to_json`. Secrets Manager encrypts
    it with the KMS key given at creation (``kms_key_id``; without one, the
    account's ``aws/secretsmanager`` key) and the task role's IAM policy can
    be limited to ``{prefix}*``. Secrets are created with tags
    (``application=timmybot``, ``timmybot:purpose=user-oauth-tokens`` by
    default) and a description that names no user.

Versions and compare-and-set
    A record's ``version`` is the Secrets Manager *version ID* that carries
    the ``AWSCURRENT`` label. Every write generates a fresh UUID and sends it
    as the ``ClientRequestToken``, which becomes the new version's ID, so a
    request that botocore retries creates one version, not two.

    * ``expected_version=None`` is ``CreateSecret``, which fails if the
      secret exists: exactly one of several racing creators wins.
    * Otherwise the new version is first added with ``PutSecretValue`` under
      a label of our own (``TIMMYBOT_PENDING``) so it is not yet current;
      then ``UpdateSecretVersionStage`` moves ``AWSCURRENT`` to it *from*
      ``expected_version``. Secrets Manager refuses that move when
      ``AWSCURRENT`` is on another version, which is the compare-and-set:
      of two writers holding the same version, one moves the label and the
      other gets :class:`~timmybot_core.domain.errors.VersionConflict`. The loser's
      version stays in the secret's history without a label (Secrets
      Manager removes unlabelled versions beyond its limit of 100).
    * A write whose answer was lost and whose retry then "fails" (the secret
      already exists, the label already moved) is recognised by reading
      which version is current: if it is ours, the write succeeded.

    With replica regions (the stack's ``ReplicaRegions``), ``CreateSecret``
    also names them, so every user's record is replicated there from its
    first version on; Secrets Manager copies each later version.

Refresh claims
    On the aws backend the token service keeps its cross-process refresh
    claim in a DynamoDB lease (:mod:`.refresh_leases`), not in the secret:
    a refresh is one ``put`` here (one ``PutSecretValue``, one version, one
    ``UpdateSecretVersionStage``) after the provider's answer, and a failed
    refresh whose token is unspent writes nothing.

Reading, listing, deleting
    ``get`` reads ``AWSCURRENT``; a missing secret, or one scheduled for
    deletion, is ``None``. ``user_ids`` pages through ``ListSecrets``
    filtered by name prefix (100 a page) and keeps only names of the exact
    form ``{prefix}<digits>/oauth``; ``ListSecrets`` is eventually consistent,
    so a secret created a moment ago may be missing from one listing.
    ``delete`` is ``DeleteSecret`` with ``ForceDeleteWithoutRecovery``: no
    recovery window, as GDPR erasure requires; a replicated secret's
    replicas are removed first (``RemoveRegionsFromReplication``), since
    Secrets Manager refuses to delete a secret that still has some. Secrets Manager finishes a
    deletion asynchronously; a new link for the same user in the next
    seconds may be refused with a clear ``VaultUnavailable``. A delete
    with ``expected_version`` first makes a tombstone (:data:`TOMBSTONE`)
    current by the compare-and-set above, so a version written since
    conflicts and nothing written after the check is deleted; ``get``
    reads a tombstone as ``None``, and a create that finds one left behind
    (the deleter stopped before ``DeleteSecret``) finishes the delete; so
    does a create that finds the secret scheduled for deletion with a
    recovery window (an operator's), which ``get`` reads as ``None`` too.

Failures
    Access denied, throttling that outlasts the retries, a KMS key that
    cannot be used, server errors and timeouts raise
    :class:`~timmybot_core.domain.errors.VaultUnavailable`; a secret whose value is
    malformed or names another user raises
    :class:`~timmybot_core.domain.errors.VaultIntegrityError`. Never ``None``.

Cost
    Each secret costs a monthly fee and each API call a fee per 10,000
    calls; the :class:`~timmybot_core.services.tokens.SecureTokenService`
    cache keeps reads to about one per user per ``cache_ttl``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, TypeVar

from botocore.exceptions import ClientError

from timmybot_adapters.aws.clients import AwsClients, aws_errors, error_code, retried
from timmybot_core.domain.errors import VaultIntegrityError, VaultUnavailable, VersionConflict
from timmybot_core.domain.snowflake import MAX_SNOWFLAKE, check_snowflake
from timmybot_core.domain.tokens import UserTokens

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager.type_defs import TagTypeDef

__all__ = [
    "DEFAULT_SECRET_PREFIX",
    "DEFAULT_TAGS",
    "PENDING_STAGE",
    "TOMBSTONE",
    "SecretsManagerTokenVault",
    "check_secret_prefix",
    "replica_key",
]

_log = logging.getLogger("timmybot.aws.vault")
T = TypeVar("T")

DEFAULT_SECRET_PREFIX: Final = "/timmybot/users/"  # noqa: S105 - a name, not a secret
PENDING_STAGE: Final = "TIMMYBOT_PENDING"
# The value a version-checked delete makes current before DeleteSecret; no
# record's JSON form (``{"v": 1, ...}``) is ever equal to it.
TOMBSTONE: Final = '{"timmybot": "deleted"}'
CURRENT: Final = "AWSCURRENT"
DEFAULT_TAGS: Final[Mapping[str, str]] = MappingProxyType(
    {"application": "timmybot", "timmybot:purpose": "user-oauth-tokens"}
)
_WHAT: Final = "token vault"
_PREFIX = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,400}/$")
# Secrets Manager version IDs (our UUIDs, or any 32 to 64 characters).
_VERSION = re.compile(r"^[A-Za-z0-9-]{32,64}$")
_RETIRED: Final = 4096


def check_secret_prefix(prefix: str) -> str:
    """Return ``prefix`` if secret names can start with it, else raise ``ValueError``."""
    if not _PREFIX.match(prefix):
        raise ValueError(
            "the secret prefix must end with '/' and use only letters, digits and "
            f"/_+=.@- (got {prefix[:60]!r})"
        )
    return prefix


def _user(user_id: int) -> int:
    return check_snowflake(user_id, what="a user ID", allow_zero=True)


def replica_key(key_id: str, region: str) -> str:
    """Return the key that encrypts a secret's replica in ``region``.

    A multi-region key's replicas share its key ID (``mrk-...``), so a key or
    alias ARN names the replica by its region; an alias name or a bare ID
    resolves in the replica's own region as it is.
    """
    parts = key_id.split(":")
    if key_id.startswith("arn:") and len(parts) >= 6:
        parts[3] = region
        return ":".join(parts)
    return key_id


class SecretsManagerTokenVault:
    """The token vault on Secrets Manager (see the module docstring for the design).

    ``replica_regions``: disaster recovery; each new secret is replicated
    there (``AddReplicaRegions``), encrypted by the key's replica in each.
    """

    def __init__(
        self,
        aws: AwsClients,
        *,
        prefix: str = DEFAULT_SECRET_PREFIX,
        kms_key_id: str | None = None,
        tags: Mapping[str, str] = DEFAULT_TAGS,
        replica_regions: Sequence[str] = (),
    ) -> None:
        check_secret_prefix(prefix)
        self._aws = aws
        self._prefix = prefix
        self._kms_key_id = kms_key_id
        self._replicas = tuple(replica_regions)
        self._tags: list[TagTypeDef] = [{"Key": k, "Value": v} for k, v in tags.items()]
        self._names = re.compile(rf"^{re.escape(prefix)}([0-9]{{1,20}})/oauth$", re.ASCII)
        # Versions this process replaced. Our writes never move AWSCURRENT
        # back, so a replaced version stays stale (get() forgets one it sees
        # current again, after an operator's manual rollback).
        self._retired: OrderedDict[str, None] = OrderedDict()
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    def __repr__(self) -> str:
        return f"SecretsManagerTokenVault(prefix={self._prefix!r}, kms_key_id={self._kms_key_id!r})"

    @property
    def prefix(self) -> str:
        """The name prefix of every user's secret."""
        return self._prefix

    def secret_name(self, user_id: int) -> str:
        """Return the name of ``user_id``'s secret."""
        return f"{self._prefix}{_user(user_id)}/oauth"

    async def get(self, user_id: int) -> UserTokens | None:
        """Return the user's record with its ``version`` set, or ``None`` if there is none.

        Raises:
            VaultIntegrityError: the stored value is malformed or belongs to another user.
            VaultUnavailable: Secrets Manager could not answer.

        """
        with aws_errors(_WHAT, "get", VaultUnavailable):
            answer = await self._unless_missing(
                self._aws.secretsmanager.get_secret_value,
                SecretId=self.secret_name(user_id),
                VersionStage=CURRENT,
            )
        if answer is None:
            return None
        self._retired.pop(answer["VersionId"], None)
        text = answer.get("SecretString")
        if text is None:
            raise VaultIntegrityError("a stored token record has no text value")
        if text == TOMBSTONE:
            # A version-checked delete in progress, or one whose process
            # stopped before DeleteSecret: the record is gone.
            return None
        try:
            record = UserTokens.from_json(text, version=answer["VersionId"])
        except VaultIntegrityError as error:
            _log.error("token vault: %s", error)
            raise
        if record.user_id != user_id:
            message = "a stored token record names another user inside"
            _log.error("token vault: %s", message)
            raise VaultIntegrityError(message)
        return record

    async def put(self, user_id: int, record: UserTokens, *, expected_version: str | None) -> str:
        """Store ``record`` if the current version is ``expected_version``; return the new one.

        ``expected_version=None`` creates the secret, and conflicts if it
        exists. A mismatch raises :class:`VersionConflict` and leaves the
        current version as it was.

        Raises:
            ValueError: ``record`` belongs to another user.
            VersionConflict: the stored version differs.
            VaultUnavailable: Secrets Manager could not answer.

        """
        if record.user_id != user_id:
            raise ValueError("the record belongs to another user")
        name = self.secret_name(user_id)
        token = str(uuid.uuid4())
        text = record.to_json()
        lock = self._locks.setdefault(user_id, asyncio.Lock())
        # One write per user at a time in this process: writers that lose a
        # race to a sibling fail on the retired version below, without a call.
        async with lock:
            if expected_version is None:
                await self._create(name, token, text)
            else:
                await self._replace(name, token, text, expected_version)
        return token

    async def _replace(self, name: str, token: str, text: str, expected_version: str) -> None:
        if not _VERSION.match(expected_version):
            # No stored version looks like this one: a conflict, without a call.
            raise VersionConflict("the token record changed since it was read")
        if expected_version in self._retired:
            # This process moved AWSCURRENT away from that version: it is stale
            # for certain, and no call (nor orphan version) is needed to say so.
            raise VersionConflict("the token record changed since it was read")
        with aws_errors(_WHAT, "put", VaultUnavailable):
            added = await self._unless_missing(
                self._aws.secretsmanager.put_secret_value,
                SecretId=name,
                ClientRequestToken=token,
                SecretString=text,
                VersionStages=[PENDING_STAGE],
            )
            if added is None:
                raise VersionConflict("the token record changed since it was read")
            try:
                await self._aws.run(
                    self._aws.secretsmanager.update_secret_version_stage,
                    SecretId=name,
                    VersionStage=CURRENT,
                    MoveToVersionId=token,
                    RemoveFromVersionId=expected_version,
                )
            except ClientError as error:
                if error_code(error) not in {
                    "InvalidParameterException",
                    "ResourceNotFoundException",
                }:
                    raise
                if not (retried(error) and await self._current_version(name) == token):
                    raise VersionConflict("the token record changed since it was read") from None
                # Else: a retry of our own move, which had succeeded.
        self._retire(expected_version)

    def _retire(self, version: str) -> None:
        self._retired[version] = None
        while len(self._retired) > _RETIRED:
            self._retired.popitem(last=False)

    async def _create(self, name: str, token: str, text: str) -> None:
        params: dict[str, object] = {
            "Name": name,
            "ClientRequestToken": token,
            "SecretString": text,
            "Description": "OAuth tokens of one TimmyBot user",
            "Tags": self._tags,
        }
        if self._kms_key_id is not None:
            params["KmsKeyId"] = self._kms_key_id
        if self._replicas:
            params["AddReplicaRegions"] = [
                {"Region": region, "KmsKeyId": replica_key(self._kms_key_id, region)}
                if self._kms_key_id is not None
                else {"Region": region}
                for region in self._replicas
            ]
        with aws_errors(_WHAT, "put", VaultUnavailable):
            try:
                await self._aws.run(self._aws.secretsmanager.create_secret, **params)  # type: ignore[arg-type]
            except ClientError as error:
                code = error_code(error)
                if code == "ResourceExistsException":
                    if retried(error) and await self._current_version(name) == token:
                        return  # a retry of our own create, which had succeeded
                    if await self._tombstoned(name) or await self._scheduled(name):
                        # A deleter stopped between its tombstone and DeleteSecret
                        # (or is about to call it), or an operator scheduled the
                        # secret for deletion with a recovery window (get reads it
                        # as no record): no writer can ever match either, so
                        # finish the delete for it.
                        await self._delete_secret(name)
                        raise VaultUnavailable(
                            "token vault: put failed: the previous record of this user is "
                            "still being deleted; try again in a few seconds"
                        ) from None
                    raise VersionConflict("the token record changed since it was read") from None
                if code == "InvalidRequestException":
                    if await self._scheduled(name):
                        # AWS's answer for a name scheduled for deletion: with an
                        # operator's recovery window it would refuse every link
                        # until the window ends, so delete it now, as delete() does.
                        await self._delete_secret(name)
                    raise VaultUnavailable(
                        "token vault: put failed: Secrets Manager refused to create the secret, "
                        "usually because a secret of that name is still being deleted; try "
                        "again in a few seconds (InvalidRequestException)"
                    ) from None
                raise

    async def _unless_missing(self, call: Callable[..., T], **params: Any) -> T | None:
        """Run ``call`` on a secret; ``None`` if there is no such secret."""
        try:
            return await self._aws.run(call, **params)
        except ClientError as error:
            if _missing(error):
                return None
            raise

    async def _tombstoned(self, name: str) -> bool:
        """Whether the secret's current value is a delete's tombstone."""
        answer = await self._unless_missing(
            self._aws.secretsmanager.get_secret_value, SecretId=name, VersionStage=CURRENT
        )
        return answer is not None and answer.get("SecretString") == TOMBSTONE

    async def _scheduled(self, name: str) -> bool:
        """Whether the secret is scheduled for deletion (it still holds its name)."""
        answer = await self._unless_missing(self._aws.secretsmanager.describe_secret, SecretId=name)
        return answer is not None and answer.get("DeletedDate") is not None

    async def _current_version(self, name: str) -> str | None:
        """Return the version ID labelled ``AWSCURRENT``, or ``None`` if the secret is gone."""
        answer = await self._unless_missing(self._aws.secretsmanager.describe_secret, SecretId=name)
        if answer is None or answer.get("DeletedDate") is not None:
            return None
        for version, stages in answer.get("VersionIdsToStages", {}).items():
            if CURRENT in stages:
                return version
        return None

    async def delete(self, user_id: int, *, expected_version: str | None = None) -> bool:
        """Delete the user's secret at once, without a recovery window; ``True`` if there was one.

        A secret already scheduled for deletion (by an operator, with a
        recovery window) is force-deleted too, and counts as absent.

        With ``expected_version``, the secret goes only if that version is
        current. ``DeleteSecret`` takes no condition, so a tombstone is first
        made current by the same compare-and-set as :meth:`put` (moving
        ``AWSCURRENT`` *from* ``expected_version``); from then on no writer's
        version matches and :meth:`get` reads ``None``, so nothing written
        after that check can be deleted. A mismatch, or no secret, raises
        :class:`VersionConflict` and changes nothing.
        """
        name = self.secret_name(user_id)
        if expected_version is not None:
            async with self._locks.setdefault(user_id, asyncio.Lock()):
                await self._replace(name, str(uuid.uuid4()), TOMBSTONE, expected_version)
            await self._delete_secret(name)
            return True
        return await self._delete_secret(name)

    async def _delete_secret(self, name: str) -> bool:
        with aws_errors(_WHAT, "delete", VaultUnavailable):
            answer = await self._unless_missing(
                self._aws.secretsmanager.describe_secret, SecretId=name
            )
            if answer is None:
                return False
            existed = answer.get("DeletedDate") is None
            replicas = [r["Region"] for r in answer.get("ReplicationStatus", [])]
            if replicas:
                # A replicated secret cannot be deleted: its replicas go first
                # (erasure reaches every region the record was copied to).
                await self._aws.run(
                    self._aws.secretsmanager.remove_regions_from_replication,
                    SecretId=name,
                    RemoveReplicaRegions=replicas,
                )
            await self._unless_missing(
                self._aws.secretsmanager.delete_secret,
                SecretId=name,
                ForceDeleteWithoutRecovery=True,
            )
        return existed

    async def user_ids(self) -> AsyncIterator[int]:
        """Iterate over the IDs of every user with a secret, a page of 100 at a time.

        Secrets scheduled for deletion are left out; names under the prefix
        that are not user secrets are ignored. An ID appears once even if
        Secrets Manager's pages overlap.
        """
        seen: set[int] = set()
        params: dict[str, object] = {
            "Filters": [{"Key": "name", "Values": [self._prefix]}],
            "MaxResults": 100,
            "IncludePlannedDeletion": False,
        }
        while True:
            with aws_errors(_WHAT, "user_ids", VaultUnavailable):
                page = await self._aws.run(self._aws.secretsmanager.list_secrets, **params)  # type: ignore[arg-type]
            for secret in page.get("SecretList", []):
                match = self._names.match(secret.get("Name", ""))
                if match is None or secret.get("DeletedDate") is not None:
                    continue
                user_id = int(match.group(1))
                if user_id <= MAX_SNOWFLAKE and user_id not in seen:
                    seen.add(user_id)
                    yield user_id
            if not page.get("NextToken"):
                return
            params["NextToken"] = page["NextToken"]


def _missing(error: ClientError) -> bool:
    """Whether ``error`` means "no such secret" (absent, or scheduled for deletion)."""
    code = error_code(error)
    if code == "ResourceNotFoundException":
        return True
    # Secrets Manager answers InvalidRequestException for a secret scheduled
    # for deletion; other InvalidRequestExceptions are real failures.
    message = str(error.response.get("Error", {}).get("Message", "")).lower()
    return code == "InvalidRequestException" and ("deleted" in message or "deletion" in message)
