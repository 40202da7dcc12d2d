"""Specification of DataRetentionService: erasure, export and clean-up."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.conftest import OWNER, START, USER, Wired, wire
from tests.unit.fake_oauth import CANARY_AT, CANARY_RT, FakeOAuthClient
from timmybot_adapters.memory import (
    MemoryAuditLog,
    MemoryErasureJournal,
    MemoryLinkStateStore,
    MemoryTokenVault,
    MemoryUserDataStore,
)
from timmybot_adapters.signing import Ed25519KeyRing, Ed25519Signer
from timmybot_core import FakeClock, PseudonymKind, ResponseSanitizer
from timmybot_core.domain.errors import (
    DataDeletionError,
    LinkError,
    ProviderUnavailable,
    StoreUnavailable,
    VaultIntegrityError,
)
from timmybot_core.domain.events import SecurityEventType
from timmybot_core.domain.tokens import OAuthTokens, UserTokens
from timmybot_core.ports.access import Ban
from timmybot_core.ports.audit import AuditKind, AuditRecord
from timmybot_core.ports.erasure import ErasureEntry, ErasureStep
from timmybot_core.ports.incidents import RetentionHold
from timmybot_core.ports.link_states import LinkState
from timmybot_core.services.audit import AuditSettings, AuditTrailService
from timmybot_core.services.linking import AccountLinkService
from timmybot_core.services.retention import (
    EXPORT_FORMAT,
    CleanupReport,
    DataRetentionService,
    Requester,
    RetentionSettings,
)
from timmybot_core.services.tokens import SecureTokenService

OTHER = 555_555_555_555_555_555
GUILD = 222_222_222_222_222_222
SCHEMA_PATH = Path(__file__).parents[2] / "docs" / "schemas" / "user-export.schema.json"
DAY = timedelta(days=1)


def export_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


class BrokenVault(MemoryTokenVault):
    """A vault that refuses to answer while ``down`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def get(self, user_id: int) -> UserTokens | None:
        if self.down:
            raise VaultIntegrityError("a stored token record failed its integrity check")
        return await super().get(user_id)


class FlakyPreferences(MemoryUserDataStore):
    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    async def delete_user(self, user_id: int) -> int:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("user data store: delete_user failed (sqlite3.OperationalError)")
        return await super().delete_user(user_id)


class FlakyAuditLog(MemoryAuditLog):
    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    async def append(self, record: AuditRecord, *, wait: bool = True) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("audit log: append failed")
        await super().append(record, wait=wait)


@attrs.define
class Kit:
    w: Wired
    clock: FakeClock
    vault: BrokenVault
    oauth: FakeOAuthClient
    tokens: SecureTokenService
    prefs: FlakyPreferences
    links: MemoryLinkStateStore
    audit_log: FlakyAuditLog
    audit: AuditTrailService
    retention: DataRetentionService


def kit(settings: RetentionSettings | None = None, **extra: Any) -> Kit:
    w = wire()
    vault = BrokenVault()
    oauth = FakeOAuthClient(w.clock, platforms=("spotify", "deezer"))
    tokens = SecureTokenService(
        vault=vault, oauth=oauth, security_log=w.security_log, metrics=w.metrics, clock=w.clock
    )
    signer = Ed25519Signer.generate()
    ring = Ed25519KeyRing()
    ring.add(signer.public_key)
    audit_log = FlakyAuditLog()
    audit = AuditTrailService(
        log=audit_log,
        pseudonymizer=w.pseudonymizer,
        sanitizer=ResponseSanitizer(),
        signer=signer,
        verifier=ring,
        clock=w.clock,
        # verify() flags records pruned before the audit trail's own retention:
        # the composition root gives both services the same period.
        settings=AuditSettings(
            retention=(settings or RetentionSettings()).audit_retention,
        ),
        writer_id="w-retention",
    )
    w.security_log.subscribe(audit.on_security_event)
    prefs = FlakyPreferences()
    links = MemoryLinkStateStore()
    retention = DataRetentionService(
        tokens=tokens,
        user_data=prefs,
        link_states=links,
        access_store=w.store,
        incidents=w.incidents_store,
        audit=audit,
        clock=w.clock,
        settings=settings,
        **extra,
    )
    return Kit(
        w=w,
        clock=w.clock,
        vault=vault,
        oauth=oauth,
        tokens=tokens,
        prefs=prefs,
        links=links,
        audit_log=audit_log,
        audit=audit,
        retention=retention,
    )


async def link(k: Kit, user_id: int, platform: str = "spotify") -> OAuthTokens:
    tokens = k.oauth.issue(platform)
    await k.tokens.store_user_tokens(user_id, tokens)
    return tokens


async def pending_link(k: Kit, user_id: int, state_hash: str) -> None:
    await k.links.add(
        LinkState(
            state_hash=state_hash,
            user_id=user_id,
            platform="spotify",
            code_verifier="canary-verifier-" + state_hash,
            created_at=k.clock.now(),
            expires_at=k.clock.now() + timedelta(minutes=10),
        )
    )


async def populate(k: Kit, user_id: int) -> list[OAuthTokens]:
    issued = [await link(k, user_id, "spotify"), await link(k, user_id, "deezer")]
    await k.prefs.set_preference(user_id, "volume", 70, at=k.clock.now())
    await k.prefs.set_preference(user_id, "ui.theme", {"dark": True}, at=k.clock.now())
    await pending_link(k, user_id, f"{user_id:064x}"[-64:])
    return issued


async def all_records(k: Kit) -> list[AuditRecord]:
    return await k.audit_log.chain(k.audit.writer_id)


async def privacy_records(k: Kit, user_id: int) -> list[AuditRecord]:
    subject = k.w.pseudonymizer.pseudonymize(PseudonymKind.USER, user_id)
    return [
        record
        for record in await all_records(k)
        if record.kind is AuditKind.PRIVACY and record.subject == subject
    ]


# -- Requester ---------------------------------------------------------------------------


def test_requesters_follow_red_discordbot_request_types() -> None:
    assert {r.value for r in Requester} == {"user", "owner", "discord_deleted_user"}


# -- erasure -----------------------------------------------------------------------------


async def test_erasure_removes_tokens_preferences_and_pending_links() -> None:
    k = kit()
    mine = await populate(k, USER)
    theirs = await populate(k, OTHER)

    report = await k.retention.delete_user_data(USER, Requester.USER)

    assert report.ok
    assert report.requester is Requester.USER
    assert [(r.store, r.deleted) for r in report.stores] == [
        ("link_states", 1),
        ("vault", 2),
        ("preferences", 2),
    ]
    assert await k.vault.get(USER) is None
    assert await k.prefs.get_preferences(USER) == []
    assert await k.links.delete_user(USER) == 0
    # Revoked at the provider before deletion: both tokens of both links.
    for tokens in mine:
        assert tokens.access_token in k.oauth.revoked
        assert tokens.refresh_token in k.oauth.revoked
    # Nobody else is touched.
    other = await k.vault.get(OTHER)
    assert other is not None and sorted(other.links) == ["deezer", "spotify"]
    assert len(await k.prefs.get_preferences(OTHER)) == 2
    assert not any(t.access_token in k.oauth.revoked for t in theirs)


async def test_erasure_empties_the_token_cache() -> None:
    k = kit()
    await link(k, USER)
    assert await k.tokens.get_user_tokens(USER) is not None  # now cached
    await k.retention.delete_user_data(USER, Requester.USER)
    assert await k.tokens.get_user_tokens(USER) is None


async def test_erasure_of_a_user_with_nothing_stored_succeeds_with_zero_counts() -> None:
    k = kit()
    report = await k.retention.delete_user_data(USER, "discord_deleted_user")
    assert report.ok
    assert report.requester is Requester.DISCORD_DELETED_USER
    assert report.deleted == 0


async def test_the_request_is_recorded_under_the_users_pseudonym_only() -> None:
    k = kit()
    await populate(k, USER)
    report = await k.retention.delete_user_data(USER, Requester.OWNER)
    [requested, record] = await privacy_records(k, USER)
    # The request is on record before the first store is touched.
    assert requested.action == "erasure.requested"
    assert requested.details["requester"] == "owner"
    assert requested.details["request_id"] == record.details["request_id"]
    assert record.event_id == report.audit_event_id
    assert record.action == "erasure"
    assert record.details["requester"] == "owner"
    assert record.details["outcome"] == "complete"
    assert record.details["deleted"] == {"link_states": 1, "vault": 2, "preferences": 2}
    stored = json.dumps([record.subject, record.resource, dict(record.details)])
    assert str(USER) not in stored


async def test_audit_events_about_the_user_are_kept_after_erasure() -> None:
    k = kit()
    await k.w.security_log.authentication_attempt(user_id=USER, platform="spotify", success=False)
    await k.retention.delete_user_data(USER, Requester.USER)
    kinds = sorted(record.kind.value for record in await k.audit.events_about(USER))
    assert kinds == ["privacy", "privacy", "security"]


async def test_a_failing_store_is_named_the_others_are_erased_and_a_retry_finishes() -> None:
    k = kit()
    await populate(k, USER)
    k.prefs.failures = 1

    with pytest.raises(DataDeletionError, match="preferences failed") as raised:
        await k.retention.delete_user_data(USER, Requester.USER)

    assert raised.value.failed == ("preferences",)
    assert str(USER) not in str(raised.value)
    partial = raised.value.report
    assert partial is not None
    assert partial.store("preferences").ok is False
    assert partial.store("preferences").detail == "StoreUnavailable"
    assert partial.store("vault").deleted == 2
    assert await k.vault.get(USER) is None
    assert len(await k.prefs.get_preferences(USER)) == 2
    [_, incomplete] = await privacy_records(k, USER)
    assert incomplete.details["outcome"] == "incomplete"
    assert incomplete.details["failed"] == ["preferences"]

    retry = await k.retention.delete_user_data(USER, Requester.USER)

    assert retry.ok
    assert retry.store("preferences").deleted == 2
    assert retry.store("vault").deleted == 0
    assert await k.prefs.get_preferences(USER) == []


async def test_a_new_request_resuming_a_pending_one_erases_a_platform_linked_since() -> None:
    # The first request fails in one store and stays pending; the user links
    # a platform again, then asks again. That request finishes the pending
    # one, and must not skip the vault because the earlier run had emptied it.
    k = kit(journal=MemoryErasureJournal())
    await populate(k, USER)
    k.prefs.failures = 1
    with pytest.raises(DataDeletionError, match="preferences failed"):
        await k.retention.delete_user_data(USER, Requester.USER)
    relinked = await link(k, USER, "spotify")

    again = await k.retention.delete_user_data(USER, Requester.USER)

    assert again.ok
    assert again.store("vault").deleted == 1
    assert await k.vault.get(USER) is None
    assert relinked.refresh_token in k.oauth.revoked
    assert relinked.access_token in k.oauth.revoked
    assert await k.prefs.get_preferences(USER) == []


async def test_a_grant_left_unrevoked_stays_reported_when_a_new_request_resumes() -> None:
    k = kit(journal=MemoryErasureJournal())
    await link(k, USER, "spotify")
    await k.prefs.set_preference(USER, "volume", 70, at=k.clock.now())
    k.prefs.failures = 1

    async def refuse(platform: str, *, token: str) -> bool:
        raise ProviderUnavailable(f"{platform}: revocation failed", platform=platform)

    revoke, k.oauth.revoke = k.oauth.revoke, refuse  # type: ignore[method-assign]
    with pytest.raises(DataDeletionError, match="vault, preferences failed"):
        await k.retention.delete_user_data(USER, Requester.USER)
    k.oauth.revoke = revoke  # type: ignore[method-assign]

    with pytest.raises(DataDeletionError, match="vault failed; everything is erased") as raised:
        await k.retention.delete_user_data(USER, Requester.USER)

    report = raised.value.report
    assert report is not None
    assert "revocation failed at spotify" in report.store("vault").detail
    assert report.store("preferences").ok
    assert await k.prefs.get_preferences(USER) == []


async def test_a_resume_after_a_crash_between_the_unrevoked_record_and_the_delete_deletes() -> None:
    # A failed revocation is journaled before the tokens are deleted; a crash
    # between the two leaves that record with the tokens still there. The
    # resume must run the vault step again, not take it as done.
    journal = MemoryErasureJournal()
    k = kit(journal=journal)
    await link(k, USER, "spotify")
    await journal.begin(
        ErasureEntry(
            request_id="r-1",
            user_id=USER,
            requester="owner",
            requested_at=k.clock.now(),
            steps={
                "link_states": ErasureStep(ok=True),
                "vault": ErasureStep(
                    ok=False,
                    deleted=1,
                    detail="deleted, but revocation failed at spotify",
                    final=True,
                ),
            },
        )
    )

    assert await k.retention.resume_pending_erasures() == 0  # still a failed revocation

    assert await k.vault.get(USER) is None
    assert await journal.pending() == []
    [record] = await privacy_records(k, USER)
    assert record.details["failed"] == ["vault"]


@pytest.mark.parametrize("requester", [Requester.OWNER, Requester.DISCORD_DELETED_USER])
async def test_a_request_resuming_another_is_recorded_as_itself(requester: Requester) -> None:
    # The user's request fails in one store and stays pending; an owner (or
    # Discord, for a deleted account) then asks. That request finishes the
    # pending one, but it is its own request: recorded before the stores are
    # touched, and its outcome under its own requester, not the user's.
    k = kit(journal=MemoryErasureJournal())
    await populate(k, USER)
    k.prefs.failures = 1
    with pytest.raises(DataDeletionError, match="preferences failed"):
        await k.retention.delete_user_data(USER, Requester.USER)

    report = await k.retention.delete_user_data(USER, requester)

    assert report.ok
    assert report.requester is requester
    records = await privacy_records(k, USER)
    assert [(r.action, r.details["requester"]) for r in records] == [
        ("erasure.requested", "user"),
        ("erasure", "user"),
        ("erasure.requested", requester.value),
        ("erasure", requester.value),
    ]
    assert records[-1].event_id == report.audit_event_id
    assert records[-1].details["outcome"] == "complete"
    assert records[2].details["request_id"] == records[-1].details["request_id"]


# -- a link completing while the user's data is erased -------------------------------


def linker(k: Kit) -> AccountLinkService:
    return AccountLinkService(
        oauth=k.oauth,
        states=k.links,
        tokens=k.tokens,
        security_log=k.w.security_log,
        metrics=k.w.metrics,
        clock=k.clock,
        redirect_uri="http://127.0.0.1:8080/oauth/callback",
    )


class HeldExchange:
    """Holds every code exchange at the provider until ``release`` is set."""

    def __init__(self, k: Kit) -> None:
        self.inside = asyncio.Event()
        self.release = asyncio.Event()
        self.issued: list[OAuthTokens] = []
        exchange = k.oauth.exchange_code

        async def held(platform: str, **kwargs: str) -> OAuthTokens:
            self.inside.set()
            await self.release.wait()
            tokens = await exchange(platform, **kwargs)
            self.issued.append(tokens)
            return tokens

        k.oauth.exchange_code = held  # type: ignore[method-assign]


async def test_a_link_exchanging_its_code_during_an_erasure_cannot_complete_after_it() -> None:
    # The state is taken (so the erasure's link_states step finds nothing),
    # the provider takes its time, the erasure runs to "complete", then the
    # tokens arrive: they must not stay, nor stay live at the provider.
    k = kit(journal=MemoryErasureJournal())
    links = linker(k)
    start = await links.begin(USER, "spotify")
    state, code = k.oauth.approve(start.url)
    held = HeldExchange(k)
    completing = asyncio.create_task(links.complete(state, code))
    await held.inside.wait()
    k.clock.advance(timedelta(seconds=1))

    report = await k.retention.delete_user_data(USER, Requester.USER)
    assert report.ok
    held.release.set()

    with pytest.raises(LinkError, match="cancelled by a data deletion request") as refused:
        await completing
    assert refused.value.reason == "erased"
    assert "Start again with /link" in str(refused.value)
    assert await k.vault.get(USER) is None
    assert await k.tokens.get_user_tokens(USER) is None
    [tokens] = held.issued
    assert tokens.access_token in k.oauth.revoked
    assert tokens.refresh_token in k.oauth.revoked
    # Our doing, not the user's: no authentication attempt, no auth failure.
    events = k.w.security_log.recent(200)
    assert not [e for e in events if e.type is SecurityEventType.AUTHENTICATION_ATTEMPT]
    assert k.w.metrics.snapshot().auth_failures == {}


async def test_a_link_begun_after_an_erasure_completes() -> None:
    k = kit()
    links = linker(k)
    await k.retention.delete_user_data(USER, Requester.USER)
    k.clock.advance(timedelta(milliseconds=1))
    start = await links.begin(USER, "spotify")
    state, code = k.oauth.approve(start.url)

    result = await links.complete(state, code)

    assert result.platform == "spotify"
    record = await k.vault.get(USER)
    assert record is not None and list(record.links) == ["spotify"]


async def test_a_cancelled_link_leaves_a_platform_linked_after_the_erasure() -> None:
    k = kit()
    links = linker(k)
    old = await links.begin(USER, "spotify")
    old_state, old_code = k.oauth.approve(old.url)
    held = HeldExchange(k)
    completing = asyncio.create_task(links.complete(old_state, old_code))
    await held.inside.wait()
    k.clock.advance(timedelta(seconds=1))
    await k.retention.delete_user_data(USER, Requester.USER)
    k.clock.advance(timedelta(seconds=1))
    new = await links.begin(USER, "deezer")
    new_state, new_code = k.oauth.approve(new.url)
    held.release.set()
    assert (await links.complete(new_state, new_code)).platform == "deezer"

    with pytest.raises(LinkError) as refused:
        await completing

    assert refused.value.reason == "erased"
    record = await k.vault.get(USER)
    assert record is not None and list(record.links) == ["deezer"]
    deezer = record.links["deezer"].tokens
    assert deezer.access_token not in k.oauth.revoked


async def test_a_link_whose_erasure_barrier_cannot_be_read_keeps_nothing() -> None:
    k = kit()
    links = linker(k)
    start = await links.begin(USER, "spotify")
    state, code = k.oauth.approve(start.url)

    async def down(user_id: int, *, now: datetime) -> datetime | None:
        raise StoreUnavailable(
            "link state store: erasure_barrier failed (sqlite3.OperationalError)"
        )

    k.links.erasure_barrier = down  # type: ignore[method-assign]

    with pytest.raises(StoreUnavailable):
        await links.complete(state, code)

    assert await k.vault.get(USER) is None
    assert set(k.oauth.issued) <= set(k.oauth.revoked)
    events = k.w.security_log.recent(200)
    [event] = [e for e in events if e.type is SecurityEventType.STORE_UNAVAILABLE]
    assert event.details["store"] == "link_states"
    assert k.w.metrics.snapshot().auth_failures == {}


async def test_an_erasure_whose_barrier_cannot_be_written_fails_and_a_retry_finishes() -> None:
    k = kit(journal=MemoryErasureJournal())
    await populate(k, USER)
    add = k.links.add_erasure_barrier

    async def down(user_id: int, *, erased_at: datetime, until: datetime) -> None:
        raise StoreUnavailable("link state store: add_erasure_barrier failed")

    k.links.add_erasure_barrier = down  # type: ignore[method-assign]
    with pytest.raises(DataDeletionError, match="link_states failed") as raised:
        await k.retention.delete_user_data(USER, Requester.USER)
    assert raised.value.failed == ("link_states",)
    assert await k.vault.get(USER) is None
    k.links.add_erasure_barrier = add  # type: ignore[method-assign]

    retry = await k.retention.resume_pending_erasures()

    assert retry == 1
    assert await k.links.erasure_barrier(USER, now=k.clock.now()) == k.clock.now()
    assert await k.links.delete_user(USER) == 0


async def test_an_erasure_barrier_outlives_a_pending_link_and_is_then_purged() -> None:
    k = kit()
    await k.retention.delete_user_data(USER, Requester.USER)
    erased_at = k.clock.now()
    # A state lives 10 minutes; the slowest exchange after it still finds the barrier.
    k.clock.advance(timedelta(minutes=30))
    assert await k.links.erasure_barrier(USER, now=k.clock.now()) == erased_at
    k.clock.advance(timedelta(minutes=30))

    cleaned = await k.retention.cleanup_expired_data()

    assert cleaned.link_states == 1
    assert await k.links.erasure_barrier(USER, now=erased_at) is None


async def test_an_erasure_that_cannot_be_recorded_fails_and_a_retry_records_it() -> None:
    k = kit()
    await populate(k, USER)
    k.audit_log.failures = 2  # the request's record and its outcome's
    with pytest.raises(DataDeletionError, match="audit failed") as raised:
        await k.retention.delete_user_data(USER, Requester.USER)
    assert raised.value.failed == ("audit", "audit")
    assert await k.vault.get(USER) is None
    assert await privacy_records(k, USER) == []

    retry = await k.retention.delete_user_data(USER, Requester.USER)
    assert retry.ok and retry.audit_event_id is not None
    assert len(await privacy_records(k, USER)) == 2


async def test_an_unreadable_vault_record_is_deleted_anyway() -> None:
    k = kit()
    await link(k, USER)
    k.vault.down = True
    report = await k.retention.delete_user_data(USER, Requester.USER)
    k.vault.down = False
    assert report.store("vault").deleted == 1
    assert "unreadable" in report.store("vault").detail
    assert await k.vault.get(USER) is None


async def test_extra_stores_keyed_by_the_user_are_erased_too() -> None:
    @attrs.define
    class Playlists:
        name: str = "playlists"
        erased: list[int] = attrs.Factory(list)

        async def erase_user(self, user_id: int) -> int:
            self.erased.append(user_id)
            return 3

    playlists = Playlists()
    k = kit(erasers=[playlists])
    report = await k.retention.delete_user_data(USER, Requester.USER)
    assert playlists.erased == [USER]
    assert report.store("playlists").deleted == 3


def test_erased_stores_need_distinct_names() -> None:
    @attrs.define
    class Clash:
        name: str = "vault"

        async def erase_user(self, user_id: int) -> int:
            return 0

    with pytest.raises(ValueError, match="its own name"):
        kit(erasers=[Clash()])


@pytest.mark.parametrize("requester", ["admin", "", "USER"])
async def test_an_unknown_requester_is_refused(requester: str) -> None:
    k = kit()
    with pytest.raises(ValueError, match="Requester"):
        await k.retention.delete_user_data(USER, requester)


async def test_a_bad_user_id_is_refused() -> None:
    k = kit()
    with pytest.raises(ValueError, match="user ID"):
        await k.retention.delete_user_data(-1, Requester.USER)


# -- export ------------------------------------------------------------------------------


async def test_an_export_holds_links_preferences_events_and_the_statement() -> None:
    k = kit()
    issued = await populate(k, USER)
    await populate(k, OTHER)
    await k.w.security_log.authentication_attempt(user_id=USER, platform="spotify", success=True)
    await k.w.security_log.unauthorized_access(
        guild_id=GUILD, user_id=OTHER, command="search", reason="not_allowlisted"
    )
    await k.audit.record_admin_action(OWNER, "guild.allow", f"guild:{GUILD}")

    export = await k.retention.export_user_data(USER)

    assert export["format"] == EXPORT_FORMAT
    assert export["user_id"] == str(USER)
    assert export["generated_at"] == START.isoformat()
    platforms = {entry["platform"]: entry for entry in export["linked_platforms"]}
    assert sorted(platforms) == ["deezer", "spotify"]
    assert platforms["spotify"]["scopes"] == ["user-read-private"]
    assert platforms["spotify"]["linked_at"] == START.isoformat()
    assert platforms["spotify"]["needs_relink"] is False
    assert export["preferences"] == {
        "ui.theme": {"value": {"dark": True}, "updated_at": START.isoformat()},
        "volume": {"value": 70, "updated_at": START.isoformat()},
    }
    # Only the user's own events; the admin's action and the other user's denial are not.
    assert [(e["kind"], e["action"]) for e in export["events"]] == [
        ("security", "AUTHENTICATION_ATTEMPT")
    ]
    assert export["data_statement"]["audit_retention_days"] == 365
    text = json.dumps(export)
    for tokens in issued:
        assert tokens.access_token not in text
        assert tokens.refresh_token is not None and tokens.refresh_token not in text
    assert CANARY_AT not in text and CANARY_RT not in text and "canary-" not in text
    admin_pseudonym = k.w.pseudonymizer.pseudonymize(PseudonymKind.ADMIN, OWNER)
    assert admin_pseudonym not in text
    export_validator().validate(export)


async def test_an_export_of_a_user_with_nothing_stored_is_valid_and_empty() -> None:
    k = kit()
    export = await k.retention.export_user_data(USER)
    assert export["linked_platforms"] == []
    assert export["preferences"] == {}
    assert export["events"] == []
    export_validator().validate(export)


async def test_an_export_is_recorded_and_shows_in_the_next_one() -> None:
    k = kit()
    await k.retention.export_user_data(USER)
    [record] = await privacy_records(k, USER)
    assert record.action == "export"
    assert record.details["requester"] == "user"
    k.clock.advance(timedelta(minutes=1))
    again = await k.retention.export_user_data(USER)
    assert [(e["kind"], e["action"]) for e in again["events"]] == [("privacy", "export")]


async def test_an_export_holds_every_event_about_the_user_past_any_page_or_limit() -> None:
    # More events than the audit trail's page (500) and the old export cap
    # (1000): an export is complete or not given at all, never silently cut.
    k = kit()
    for _ in range(1203):
        await k.audit.record_privacy_request(user_id=USER, action="export", requester="user")
        k.clock.advance(timedelta(seconds=1))
    await k.audit.record_privacy_request(user_id=OTHER, action="export", requester="user")

    export = await k.retention.export_user_data(USER)

    assert len(export["events"]) == 1203
    assert len({event["event_id"] for event in export["events"]}) == 1203
    stamps = [event["timestamp"] for event in export["events"]]
    assert stamps == sorted(stamps, reverse=True)
    [*_, record] = await privacy_records(k, USER)
    assert record.details["events"] == 1203


async def test_an_export_fails_whole_when_the_vault_cannot_answer() -> None:
    k = kit()
    await link(k, USER)
    k.vault.down = True
    with pytest.raises(VaultIntegrityError):
        await k.retention.export_user_data(USER)
    assert await privacy_records(k, USER) == []


class HostNotes:
    """A host bot's store (HostUserData) whose export is whatever ``data`` holds."""

    name = "notes"

    def __init__(self, data: Any) -> None:
        self.data = data

    async def export_user(self, user_id: int) -> Any:
        return self.data

    async def erase_user(self, user_id: int) -> int:
        return 0


_looped: dict[str, Any] = {}
_looped["self"] = _looped


@pytest.mark.parametrize(
    "data",
    [
        {"volume": float("nan")},
        {"scores": [1.0, float("inf")]},
        {"nested": {"low": -float("inf")}},
        {"note": "half a pair \ud800"},
        {"\udfff": "a key with a lone surrogate"},
        {"when": START},
        {"tags": {"a", "b"}},
        {1: "a key that is not text"},
        _looped,
        ["not", "a", "mapping"],
    ],
    ids=[
        "nan",
        "infinity",
        "minus-infinity",
        "lone-surrogate",
        "surrogate-key",
        "datetime",
        "set",
        "int-key",
        "self-reference",
        "list",
    ],
)
async def test_an_export_with_host_data_that_is_not_json_is_refused_before_it_is_recorded(
    data: Any,
) -> None:
    # json.dumps writes NaN and Infinity (no JSON reader accepts them) and
    # fails on a lone surrogate only when the reply is written, after the
    # export was recorded: the host's data is checked when it is read.
    k = kit(participants=[HostNotes(data)])
    with pytest.raises(StoreUnavailable, match=r"host store 'notes'.*not JSON") as raised:
        await k.retention.export_user_data(USER)
    assert "half a pair" not in str(raised.value)
    assert await privacy_records(k, USER) == []


async def test_an_export_with_json_host_data_is_strict_json() -> None:
    data = {"notes": ["play more ABBA", "\u00e9t\u00e9 \U0001f3b5"], "volume": 0.5, "n": None}
    k = kit(participants=[HostNotes(data)])
    export = await k.retention.export_user_data(USER)
    assert json.loads(json.dumps(export, ensure_ascii=False, allow_nan=False))["host_data"] == {
        "notes": data
    }
    export_validator().validate(export)
    [record] = await privacy_records(k, USER)
    assert record.details["host_data"] == ["notes"]


_text = st.text(st.characters(codec="utf-8", exclude_categories=()), max_size=30)
_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
_preferences = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9_.-]{0,20}", fullmatch=True), _values, max_size=5
)


def test_any_preferences_export_as_valid_json_that_reads_back_equal() -> None:
    validator = export_validator()
    loop = asyncio.new_event_loop()
    try:

        @settings(deadline=None)
        @given(preferences=_preferences)
        def check(preferences: dict[str, Any]) -> None:
            k = kit()

            async def scenario() -> dict[str, Any]:
                for name, value in preferences.items():
                    await k.prefs.set_preference(USER, name, value, at=k.clock.now())
                return await k.retention.export_user_data(USER)

            export = loop.run_until_complete(scenario())
            validator.validate(export)
            again = json.loads(json.dumps(export, ensure_ascii=False))
            assert {name: entry["value"] for name, entry in again["preferences"].items()} == (
                preferences
            )

        check()
    finally:
        loop.close()


async def test_the_schema_rejects_an_export_that_leaks_a_token() -> None:
    k = kit()
    await link(k, USER)
    export = await k.retention.export_user_data(USER)
    export["linked_platforms"][0]["access_token"] = "canary-at-leak"
    with pytest.raises(jsonschema.ValidationError, match="access_token"):
        export_validator().validate(export)


# -- clean-up ----------------------------------------------------------------------------


async def test_cleanup_prunes_old_audit_events_but_keeps_held_ones() -> None:
    k = kit(RetentionSettings(audit_retention=timedelta(days=30)))
    old = await k.audit.record_admin_action(OWNER, "guild.allow", "guild:1")
    k.clock.advance(DAY)
    held = await k.audit.record_admin_action(OWNER, "killswitch.on", "switch:kill")
    k.clock.advance(DAY)
    await k.w.incidents_store.add_hold(
        RetentionHold(
            hold_id="h1",
            incident_id="i1",
            start=held.timestamp,
            end=held.timestamp + timedelta(hours=1),
            placed_at=k.clock.now(),
        )
    )
    k.clock.advance(timedelta(days=29))
    recent = await k.audit.record_admin_action(OWNER, "guild.remove", "guild:1")
    k.clock.advance(DAY)

    report = await k.retention.cleanup_expired_data()

    assert report.audit_records == 1
    assert report.ok
    by_id = {record.event_id: record for record in await all_records(k)}
    assert by_id[old.event_id].pruned
    assert not by_id[held.event_id].pruned
    assert not by_id[recent.event_id].pruned
    # Pruning keeps the chain verifiable.
    assert (await k.audit.verify()).ok


async def test_cleanup_prunes_nothing_when_the_holds_cannot_be_read() -> None:
    k = kit(RetentionSettings(audit_retention=timedelta(days=1)))
    await k.audit.record_admin_action(OWNER, "guild.allow", "guild:1")
    k.clock.advance(timedelta(days=3))

    async def down() -> list[RetentionHold]:
        raise StoreUnavailable("incident store: list_holds failed")

    k.w.incidents_store.list_holds = down  # type: ignore[method-assign]
    report = await k.retention.cleanup_expired_data()
    assert report.failed == ("audit",)
    assert report.audit_records == 0
    assert not any(r.pruned for r in await all_records(k))


async def test_cleanup_purges_expired_access_records_and_link_states() -> None:
    k = kit()
    await k.w.store.record_attempt(GUILD, at=k.clock.now(), window=timedelta(hours=1))
    await k.w.store.place_ban(
        Ban(
            guild_id=GUILD,
            until=k.clock.now() + timedelta(hours=1),
            reason="attempts",
            placed_at=k.clock.now(),
        ),
        now=k.clock.now(),
    )
    await pending_link(k, USER, "ab" * 32)
    k.clock.advance(timedelta(hours=2))
    await pending_link(k, OTHER, "cd" * 32)  # still pending

    report = await k.retention.cleanup_expired_data()

    assert (report.attempts, report.bans, report.link_states) == (1, 1, 1)
    assert await k.links.delete_user(OTHER) == 1


async def test_cleanup_removes_vault_records_with_no_linked_platform() -> None:
    k = kit()
    await link(k, USER)
    orphan = UserTokens.new(OTHER, now=k.clock.now())
    await k.vault.put(OTHER, orphan, expected_version=None)
    young = UserTokens.new(OWNER, now=k.clock.now() + timedelta(hours=2))
    k.clock.advance(timedelta(hours=2))
    await k.vault.put(OWNER, young, expected_version=None)

    report = await k.retention.cleanup_expired_data()

    assert report.orphaned_vault_records == 1
    assert await k.vault.get(OTHER) is None
    assert await k.vault.get(USER) is not None  # linked: kept
    assert await k.vault.get(OWNER) is not None  # empty, but within the grace period


async def test_cleanup_keeps_an_orphan_linked_right_before_its_delete() -> None:
    k = kit()
    orphan = UserTokens.new(OTHER, now=k.clock.now())
    await k.vault.put(OTHER, orphan, expected_version=None)
    k.clock.advance(timedelta(days=2))
    delete = k.vault.delete
    linked: list[OAuthTokens] = []

    async def racing_delete(user_id: int, *, expected_version: str | None = None) -> bool:
        if not linked:
            # The web server's process completes a link from the empty record
            # after the clean-up's last look and before its delete.
            linked.append(await link(k, user_id))
        return await delete(user_id, expected_version=expected_version)

    k.vault.delete = racing_delete  # type: ignore[method-assign]
    report = await k.retention.cleanup_expired_data()

    assert report.orphaned_vault_records == 0
    assert "vault" not in report.failed
    stored = await k.vault.get(OTHER)
    assert stored is not None
    assert stored.links["spotify"].tokens == linked[0]


async def test_a_failing_cleanup_step_does_not_stop_the_others() -> None:
    k = kit()
    await pending_link(k, USER, "ab" * 32)
    k.clock.advance(timedelta(hours=1))

    async def down(**_: Any) -> Any:
        raise StoreUnavailable("access policy store: purge_expired failed")

    k.w.store.purge_expired = down  # type: ignore[method-assign]
    report = await k.retention.cleanup_expired_data()
    assert report.failed == ("access",)
    assert report.link_states == 1
    assert not report.ok


def test_a_cleanup_report_counts_everything() -> None:
    report = CleanupReport(attempts=1, bans=2, switches=3, link_states=4, audit_records=5)
    assert report.total == 15
    assert report.as_dict()["failed"] == []


@pytest.mark.parametrize(
    "settings",
    [
        {"audit_retention": timedelta(0)},
        {"attempt_window": timedelta(seconds=-1)},
        {"orphan_grace": timedelta(seconds=-1)},
        {"export_event_limit": 0},
    ],
)
def test_settings_refuse_nonsense(settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must"):
        RetentionSettings(**settings)
