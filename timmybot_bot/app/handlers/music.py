"""Music accounts: search, playlist names, link, linked, unlink, whoami.

Each handler takes its command, who runs it, and the services it uses, and
returns a result for the front-end to present; failures are raised and
mapped by :mod:`timmybot_bot.app.failures`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

import attrs

from timmybot_bot.app.commands import (
    CheckPlaylistName,
    Invocation,
    LinkAccount,
    SearchTracks,
    ShowLinks,
    UnlinkAccount,
    WhoAmI,
)
from timmybot_bot.app.failures import UsageError
from timmybot_core import (
    AccountLinkService,
    CatalogTrack,
    Clock,
    InputValidator,
    MusicCatalog,
    PlatformLink,
    ProviderRateLimited,
    RefreshPaused,
    ReLinkRequired,
    SecureTokenService,
    SecurityAuditLogger,
    ServerAccessControl,
    ValidationResult,
)

__all__ = [
    "Identity",
    "Judged",
    "LinkStarted",
    "Links",
    "NeedsLink",
    "RateLimited",
    "Searched",
    "Unlinked",
    "check_playlist_name",
    "link_account",
    "search_tracks",
    "show_links",
    "unlink_account",
    "who_am_i",
]

# A refresh "within" this long refreshes any token: used once, when the
# platform refused an access token we believed valid (revoked early, or the
# clocks disagree about its expiry).
_FORCE_REFRESH: Final = timedelta(days=365 * 20)


@attrs.frozen(kw_only=True)
class Judged:
    """A validator's decision on user text (``error`` set when rejected)."""

    label: str
    value: str | None
    error: str | None
    limit: int


@attrs.frozen(kw_only=True)
class Searched:
    """Tracks found on ``platform``; ``others`` are the caller's other linked platforms."""

    platform: str
    query: str
    tracks: Sequence[CatalogTrack]
    others: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class NeedsLink:
    """Nothing is linked that could be searched; ``available`` can be linked."""

    available: tuple[str, ...]


@attrs.frozen(kw_only=True)
class RateLimited:
    """The platform asks to wait ``seconds`` before the next search."""

    platform: str
    seconds: int


@attrs.frozen(kw_only=True)
class Identity:
    """Who the caller is to the bot."""

    user_id: int
    guild_id: int | None
    owner: bool
    trusted_operator: bool


@attrs.frozen(kw_only=True)
class LinkStarted:
    """An authorization URL to open within ``minutes``."""

    platform: str
    url: str
    minutes: int


@attrs.frozen(kw_only=True)
class Links:
    """The caller's linked platforms (never a token)."""

    links: tuple[tuple[str, PlatformLink], ...]


@attrs.frozen(kw_only=True)
class Unlinked:
    """Whether an account was unlinked (``False``: none was linked)."""

    platform: str
    removed: bool


async def _judged(
    security_log: SecurityAuditLogger,
    invocation: Invocation,
    result: ValidationResult,
    *,
    field: str,
    label: str,
    limit: int,
) -> Judged:
    """Return a validation's decision; a rejection is a security event."""
    if not result.ok:
        await security_log.validation_rejected(
            guild_id=invocation.guild_id,
            user_id=invocation.user_id,
            field=field,
            problem=result.error or "",
        )
    return Judged(label=label, value=result.value, error=result.error, limit=limit)


async def search_tracks(
    command: SearchTracks,
    invocation: Invocation,
    *,
    validator: InputValidator,
    security_log: SecurityAuditLogger,
    catalog: MusicCatalog,
    tokens: SecureTokenService,
) -> Judged | Searched | NeedsLink | RateLimited:
    """Validate the query, pick the platform, search it (refreshing a refused token once)."""
    result = validator.validate_search_query(command.query)
    if not result.ok or result.value is None:
        return await _judged(
            security_log, invocation, result, field="search", label="Search", limit=300
        )
    available = catalog.platforms()
    if not available:
        raise UsageError(
            "Search needs a music platform, and none is configured. The operator sets "
            "TIMMYBOT_SPOTIFY_CLIENT_ID (or starts the console with --demo-provider)."
        )
    requested = command.platform.strip().lower() if command.platform is not None else None
    if requested is not None and requested not in available:
        raise UsageError(f"Usage: /search platform:<name> <query>, one of: {', '.join(available)}.")
    user_id = invocation.user_id
    record = await tokens.get_user_tokens(user_id)
    linked = [name for name in available if record is not None and record.link(name)]
    platform = requested or (linked[0] if linked else None)
    if platform is None:
        return NeedsLink(available=tuple(available))
    query = result.value
    try:
        token = await tokens.get_valid_access_token(user_id, platform)
        try:
            tracks = await catalog.search(platform, query, access_token=token)
        except ReLinkRequired:
            outcome = await tokens.refresh(user_id, platform, within=_FORCE_REFRESH)
            if not outcome.refreshed and outcome.tokens.access_token == token:
                # No refresh may run now (paused for an incident, or the
                # process is stopping), so we hold only the token the
                # platform just refused: searching again with it would be
                # refused again and end in "link it again", which is wrong.
                raise RefreshPaused(f"token refresh for {platform} did not run") from None
            tracks = await catalog.search(platform, query, access_token=outcome.tokens.access_token)
    except ProviderRateLimited as error:
        seconds = max(1, math.ceil(error.retry_after.total_seconds()))
        return RateLimited(platform=platform, seconds=seconds)
    others = tuple(name for name in linked if name != platform)
    return Searched(platform=platform, query=query, tracks=tracks, others=others)


async def check_playlist_name(
    command: CheckPlaylistName,
    invocation: Invocation,
    *,
    validator: InputValidator,
    security_log: SecurityAuditLogger,
) -> Judged:
    """Validate a playlist name; a rejection is a security event."""
    result = validator.validate_playlist_name(command.name)
    return await _judged(
        security_log, invocation, result, field="playlist", label="Playlist name", limit=200
    )


async def who_am_i(
    command: WhoAmI, invocation: Invocation, *, access: ServerAccessControl
) -> Identity:
    """Return the identity commands run as."""
    return Identity(
        user_id=invocation.user_id,
        guild_id=invocation.guild_id,
        owner=access.is_owner(invocation.user_id),
        trusted_operator=invocation.trusted_operator,
    )


def _minutes(until: datetime, now: datetime) -> int:
    return max(1, round((until - now).total_seconds() / 60))


async def link_account(
    command: LinkAccount, invocation: Invocation, *, links: AccountLinkService, clock: Clock
) -> LinkStarted:
    """Start a link: an authorization URL for the caller's eyes only."""
    platform = command.platform.strip().lower()
    available = links.platforms()
    if not available:
        raise UsageError(
            "No music platform is configured for linking. The operator sets "
            "TIMMYBOT_SPOTIFY_CLIENT_ID (or starts the console with --demo-provider)."
        )
    if platform not in available:
        raise UsageError(f"Usage: /link <platform>, one of: {', '.join(available)}.")
    start = await links.begin(invocation.user_id, platform)
    return LinkStarted(
        platform=platform, url=start.url, minutes=_minutes(start.expires_at, clock.now())
    )


async def show_links(
    command: ShowLinks, invocation: Invocation, *, tokens: SecureTokenService
) -> Links:
    """Return the platforms the caller linked."""
    record = await tokens.get_user_tokens(invocation.user_id)
    return Links(links=tuple(record.links.items()) if record is not None else ())


async def unlink_account(
    command: UnlinkAccount, invocation: Invocation, *, tokens: SecureTokenService
) -> Unlinked:
    """Revoke at the provider where possible and delete the tokens."""
    platform = command.platform.strip().lower()
    if not platform:
        raise UsageError("Usage: /unlink <platform>.")
    removed = await tokens.unlink(invocation.user_id, platform)
    return Unlinked(platform=platform, removed=removed)
