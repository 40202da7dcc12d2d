"""OAuth tokens and the per-user record the vault keeps.

Secrets never leave these objects by accident: ``repr`` and ``str`` redact
both tokens, and only :meth:`UserTokens.to_json` (for the vault's encrypted
storage) writes them out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Final

import attrs

from timmybot_core.domain.clock import as_utc
from timmybot_core.domain.errors import VaultIntegrityError
from timmybot_core.domain.scopes import check_scopes, salvage_scopes

__all__ = ["FORMAT_VERSION", "OAuthTokens", "PlatformLink", "UserTokens", "valid_platform"]

FORMAT_VERSION: Final = 1
_PLATFORM = re.compile(r"^[a-z0-9_]{1,24}$")


def valid_platform(platform: str) -> str:
    """Return ``platform`` if it is a lowercase slug (``spotify``), else raise ``ValueError``."""
    if not isinstance(platform, str) or not _PLATFORM.match(platform):
        raise ValueError("a platform name is 1 to 24 characters of a-z, 0-9 and '_'")
    return platform


def _utc(moment: datetime) -> datetime:
    return as_utc(moment, "token times")


@attrs.frozen(kw_only=True, repr=False)
class OAuthTokens:
    """One platform's OAuth tokens. Both tokens stay out of ``repr`` and ``str``."""

    platform: str = attrs.field(converter=valid_platform)
    access_token: str = attrs.field(repr=False)
    refresh_token: str | None = attrs.field(default=None, repr=False)
    token_type: str = "Bearer"  # noqa: S105 - a token type, not a secret
    # RFC 6749's grammar with caps on length and count (domain/scopes.py).
    scopes: tuple[str, ...] = attrs.field(default=(), converter=check_scopes)
    expires_at: datetime = attrs.field(converter=_utc)

    def __attrs_post_init__(self) -> None:
        if not self.access_token:
            raise ValueError("an access token cannot be empty")

    def __repr__(self) -> str:
        return (
            f"OAuthTokens(platform={self.platform!r}, access_token=<redacted>, "
            f"refresh_token={'<redacted>' if self.refresh_token else None}, "
            f"token_type={self.token_type!r}, scopes={self.scopes!r}, "
            f"expires_at={self.expires_at.isoformat()!r})"
        )

    __str__ = __repr__

    def expires_within(self, now: datetime, leeway: timedelta) -> bool:
        """Tell whether the access token expires before ``now + leeway``."""
        return self.expires_at <= now + leeway

    def to_dict(self) -> dict[str, Any]:
        """Return the storage form (holds the secrets: for the vault only)."""
        return {
            "platform": self.platform,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": self.token_type,
            "scopes": list(self.scopes),
            "expires_at": self.expires_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OAuthTokens:
        """Rebuild tokens from :meth:`to_dict`'s form."""
        return cls(
            platform=data["platform"],
            access_token=data["access_token"],
            refresh_token=data.get("refresh_token"),
            token_type=data.get("token_type", "Bearer"),
            # A record stored before scopes were checked keeps its valid ones.
            scopes=salvage_scopes(data.get("scopes", ())),
            expires_at=datetime.fromisoformat(data["expires_at"]),
        )


@attrs.frozen(kw_only=True)
class PlatformLink:
    """A linked platform: its tokens and their history.

    ``refresh_claim`` marks a refresh in progress in some process (claim ID
    and the holder's own deadline), so that other processes wait for its
    result instead of presenting the same refresh token twice. The deadline
    is informational only: another host's wall clock is never compared with
    it (a waiting process judges expiry by watching the same claim ID on its
    own monotonic clock). A claim that expires was left by a holder that
    died or hung *after it may have presented the refresh token*, so the
    claim is also the durable record that the token may have been spent.

    ``relink_reason`` says why ``needs_relink`` was set, for the user's
    message (no secret, no provider text).
    """

    tokens: OAuthTokens
    linked_at: datetime = attrs.field(converter=_utc)
    refreshed_at: datetime | None = None
    needs_relink: bool = False
    refresh_claim: tuple[str, datetime] | None = None
    relink_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the storage form."""
        data: dict[str, Any] = {
            "tokens": self.tokens.to_dict(),
            "linked_at": self.linked_at.isoformat(),
            "refreshed_at": self.refreshed_at.isoformat() if self.refreshed_at else None,
            "needs_relink": self.needs_relink,
            "refresh_claim": (
                [self.refresh_claim[0], self.refresh_claim[1].isoformat()]
                if self.refresh_claim
                else None
            ),
        }
        if self.relink_reason is not None:
            # Written only when set: records without it read as before.
            data["relink_reason"] = self.relink_reason
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlatformLink:
        """Rebuild a link from :meth:`to_dict`'s form."""
        claim = data.get("refresh_claim")
        refreshed = data.get("refreshed_at")
        reason = data.get("relink_reason")
        return cls(
            tokens=OAuthTokens.from_dict(data["tokens"]),
            linked_at=datetime.fromisoformat(data["linked_at"]),
            refreshed_at=datetime.fromisoformat(refreshed) if refreshed else None,
            needs_relink=bool(data.get("needs_relink", False)),
            refresh_claim=(str(claim[0]), datetime.fromisoformat(claim[1])) if claim else None,
            relink_reason=str(reason) if reason is not None else None,
        )


def _links(links: Mapping[str, PlatformLink]) -> Mapping[str, PlatformLink]:
    for platform, link in links.items():
        if platform != link.tokens.platform:
            raise ValueError("a link is filed under its own platform")
    return MappingProxyType(dict(sorted(links.items())))


@attrs.frozen(kw_only=True)
class UserTokens:
    """Every platform one user linked: the vault's one record per user.

    ``version`` is the vault's opaque version of the record as read (``None``
    for a record never stored); writes compare it to detect races.
    """

    user_id: int
    links: Mapping[str, PlatformLink] = attrs.field(factory=dict, converter=_links)
    created_at: datetime = attrs.field(converter=_utc)
    updated_at: datetime = attrs.field(converter=_utc)
    version: str | None = attrs.field(default=None, eq=False)

    def link(self, platform: str) -> PlatformLink | None:
        """Return the link of ``platform``, or ``None``."""
        return self.links.get(platform)

    def with_link(self, link: PlatformLink, *, now: datetime) -> UserTokens:
        """Return a copy with ``link`` added or replaced."""
        links = {**self.links, link.tokens.platform: link}
        return attrs.evolve(self, links=links, updated_at=now)

    def without(self, platform: str, *, now: datetime) -> UserTokens:
        """Return a copy without ``platform``'s link."""
        links = {name: link for name, link in self.links.items() if name != platform}
        return attrs.evolve(self, links=links, updated_at=now)

    def to_json(self) -> str:
        """Return the versioned storage form ``{"v": 1, ...}`` (holds the secrets)."""
        return json.dumps(
            {
                "v": FORMAT_VERSION,
                "user_id": str(self.user_id),
                "created_at": self.created_at.isoformat(),
                "updated_at": self.updated_at.isoformat(),
                "links": {name: link.to_dict() for name, link in self.links.items()},
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | bytes, *, version: str | None = None) -> UserTokens:
        """Rebuild a record; a malformed one raises :class:`VaultIntegrityError`."""
        try:
            data = json.loads(text)
            if data.get("v") != FORMAT_VERSION:
                raise VaultIntegrityError(
                    f"token record format {data.get('v')!r} is not supported "
                    f"(this release reads version {FORMAT_VERSION})"
                )
            return cls(
                user_id=int(data["user_id"]),
                links={name: PlatformLink.from_dict(link) for name, link in data["links"].items()},
                created_at=datetime.fromisoformat(data["created_at"]),
                updated_at=datetime.fromisoformat(data["updated_at"]),
                version=version,
            )
        except VaultIntegrityError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            # The message names the kind of damage only: the record holds secrets.
            raise VaultIntegrityError(
                f"a stored token record is malformed ({type(error).__name__})"
            ) from None

    @classmethod
    def new(cls, user_id: int, *, now: datetime) -> UserTokens:
        """Return an empty, never-stored record for ``user_id``."""
        return cls(user_id=user_id, created_at=now, updated_at=now)
