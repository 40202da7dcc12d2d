"""Specification of AccountLinkService: bound, single-use, expiring states and PKCE."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.unit.conftest import USER, wire
from tests.unit.fake_oauth import FakeOAuthClient
from timmybot_adapters.memory import MemoryLinkStateStore, MemoryTokenVault
from timmybot_core.domain.errors import (
    LinkError,
    OAuthNotConfigured,
    VaultUnavailable,
    VersionConflict,
)
from timmybot_core.domain.events import SecurityEventType
from timmybot_core.services.linking import AccountLinkService, mask_user_id, pkce_challenge
from timmybot_core.services.tokens import SecureTokenService

OTHER_USER = 555_555_555_555_555_555


def service() -> tuple[AccountLinkService, FakeOAuthClient, MemoryTokenVault, object]:
    w = wire()
    oauth = FakeOAuthClient(w.clock, platforms=("spotify", "discord"))
    vault = MemoryTokenVault()
    tokens = SecureTokenService(
        vault=vault, oauth=oauth, security_log=w.security_log, metrics=w.metrics, clock=w.clock
    )
    links = AccountLinkService(
        oauth=oauth,
        states=MemoryLinkStateStore(),
        tokens=tokens,
        security_log=w.security_log,
        metrics=w.metrics,
        clock=w.clock,
        redirect_uri="http://127.0.0.1:8080/oauth/callback",
    )
    return links, oauth, vault, w


def test_pkce_challenge_matches_rfc_7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.mark.parametrize("user_id", [1, 7, 42, 123, 1234, 12345, 1234567, 12345678])
def test_a_short_user_id_is_never_shown_whole(user_id: int) -> None:
    masked = mask_user_id(user_id)
    digits = masked.replace("•", "")
    assert len(masked) == len(str(user_id))
    assert str(user_id).endswith(digits)
    assert len(digits) <= len(str(user_id)) // 2, masked


def test_a_snowflake_shows_its_last_four_digits() -> None:
    assert mask_user_id(123456789012345678) == "••••••••••••••5678"


async def test_a_link_completes_and_stores_the_tokens() -> None:
    links, oauth, vault, _ = service()
    start = await links.begin(USER, "spotify")
    query = parse_qs(urlsplit(start.url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["state"][0]) == 43  # 256 bits, base64url
    state, code = oauth.approve(start.url)
    result = await links.complete(state, code)
    assert (result.user_id, result.platform) == (USER, "spotify")
    record = await vault.get(USER)
    assert record is not None
    assert "spotify" in record.links


async def test_states_are_random_and_the_url_stays_out_of_repr() -> None:
    links, _, _, _ = service()
    starts = [await links.begin(USER, "spotify") for _ in range(50)]
    states = {parse_qs(urlsplit(s.url).query)["state"][0] for s in starts}
    assert len(states) == 50
    assert all(state not in repr(s) for s, state in zip(starts, states, strict=False))


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        ("replay", "replayed"),
        ("expire", "expired"),
        ("unknown", "unknown"),
        ("garbage", "unknown"),
        ("other_user", "foreign"),
        ("other_platform", "foreign"),
        ("wrong_verifier", "rejected"),
    ],
)
async def test_refusals_name_the_problem_and_store_nothing(mutate: str, reason: str) -> None:
    links, oauth, vault, w = service()
    start = await links.begin(USER, "spotify")
    state, code = oauth.approve(start.url)
    kwargs: dict[str, object] = {}
    if mutate == "replay":
        await links.complete(state, code)
        await vault.delete(USER)
        state2, code2 = state, oauth.approve(start.url)[1]
        state, code = state2, code2
    elif mutate == "expire":
        w.clock.advance(timedelta(minutes=10))  # type: ignore[attr-defined]
    elif mutate == "unknown":
        state = "A" * 43
    elif mutate == "garbage":
        state = "<script>"
    elif mutate == "other_user":
        kwargs["user_id"] = OTHER_USER
    elif mutate == "other_platform":
        kwargs["platform"] = "discord"
    elif mutate == "wrong_verifier":
        # The code was issued for another challenge than this state's verifier.
        other = await links.begin(USER, "spotify")
        code = oauth.approve(other.url)[1]
    with pytest.raises(LinkError) as refused:
        await links.complete(state, code, **kwargs)  # type: ignore[arg-type]
    assert refused.value.reason == reason
    assert "Start again with /link" in str(refused.value)
    assert await vault.get(USER) is None


async def test_a_state_is_single_use_under_concurrency() -> None:
    links, oauth, _, _ = service()
    start = await links.begin(USER, "spotify")
    state, code = oauth.approve(start.url)
    results = await asyncio.gather(
        *(links.complete(state, code) for _ in range(10)), return_exceptions=True
    )
    assert sum(1 for r in results if not isinstance(r, Exception)) == 1
    assert {r.reason for r in results if isinstance(r, LinkError)} == {"replayed"}


async def test_unknown_platforms_are_refused_at_begin() -> None:
    links, _, _, _ = service()
    with pytest.raises(LinkError, match="Unknown platform 'myspace'; available: spotify, discord"):
        await links.begin(USER, "myspace")


@pytest.mark.parametrize(
    ("state", "code"),
    [("A" * 43, "code"), ("<script>", "code"), ("A" * 43, ""), ("A" * 44, "code")],
)
async def test_unauthenticated_refusals_are_no_auth_failures(state: str, code: str) -> None:
    links, _, _, w = service()
    for _ in range(40):
        with pytest.raises(LinkError):
            await links.complete(state, code)
    assert w.metrics.snapshot().auth_failures == {}  # type: ignore[attr-defined]
    events = w.security_log.recent(100)  # type: ignore[attr-defined]
    assert not [e for e in events if e.type is SecurityEventType.AUTHENTICATION_ATTEMPT]
    assert links.refusals.pending() == 40
    # One record for the whole window, with the count.
    w.clock.advance(links.refusals.window)  # type: ignore[attr-defined]
    assert await links.refusals.flush_due() == 1
    (record,) = [
        e
        for e in w.security_log.recent(100)  # type: ignore[attr-defined]
        if e.type is SecurityEventType.REQUESTS_REFUSED
    ]
    assert record.details["count"] == 40
    assert record.details["source"] == "oauth_callback"


async def test_a_refusal_tied_to_a_real_pending_link_is_an_auth_failure() -> None:
    links, oauth, _, w = service()
    start = await links.begin(USER, "spotify")
    state, code = oauth.approve(start.url)
    with pytest.raises(LinkError, match="someone else"):
        await links.complete(state, code, user_id=OTHER_USER)
    assert w.metrics.snapshot().auth_failures == {("spotify", "invalid_state"): 1}  # type: ignore[attr-defined]


async def test_a_platform_not_configured_here_is_no_auth_failure() -> None:
    links, oauth, _, w = service()
    start = await links.begin(USER, "spotify")
    state, code = oauth.approve(start.url)

    async def not_configured(platform: str, **_: object) -> None:
        raise OAuthNotConfigured(f"OAuth is not configured for {platform!r}", platform=platform)

    oauth.exchange_code = not_configured  # type: ignore[method-assign,assignment]
    with pytest.raises(OAuthNotConfigured):
        await links.complete(state, code)
    assert w.metrics.snapshot().auth_failures == {}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "failure",
    [VaultUnavailable("vault down"), VersionConflict("the token record kept changing")],
    ids=["vault_unavailable", "version_conflict"],
)
async def test_tokens_the_vault_cannot_store_are_revoked_and_recorded_as_our_failure(
    failure: Exception,
) -> None:
    links, oauth, vault, w = service()

    async def broken(*_: object, **__: object) -> str:
        raise failure

    vault.put = broken  # type: ignore[method-assign]
    for _ in range(25):  # past the AuthFailures threshold (20 in 15 minutes)
        start = await links.begin(USER, "spotify")
        state, code = oauth.approve(start.url)
        issued = len(oauth.issued)
        with pytest.raises(type(failure)):
            await links.complete(state, code)
        # Both tokens of the grant nothing holds are revoked at the provider.
        assert set(oauth.issued[issued:]) <= set(oauth.revoked)
        assert len(oauth.issued) > issued
    events = w.security_log.recent(200)  # type: ignore[attr-defined]
    failed = [e for e in events if e.type is SecurityEventType.STORE_UNAVAILABLE]
    assert len(failed) == 25
    assert failed[0].details["store"] == "token_vault"
    assert failed[0].details["platform"] == "spotify"
    assert failed[0].user is not None  # pseudonymized, never the raw ID
    assert str(USER) not in str(failed[0].as_dict())
    # Our failure, not the user's: no authentication attempt, no auth
    # failure metric, and so no AuthFailures incident.
    assert not [e for e in events if e.type is SecurityEventType.AUTHENTICATION_ATTEMPT]
    assert w.metrics.snapshot().auth_failures == {}  # type: ignore[attr-defined]
    assert list(w.alarms.raised) == []  # type: ignore[attr-defined]
    assert oauth.valid_refresh == set()
