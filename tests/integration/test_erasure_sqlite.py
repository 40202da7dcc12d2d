"""Erasure completeness on the SQLite backend, checked in the raw tables.

The whole bot is built with ``bootstrap`` on a SQLite file, a user does
everything the bot lets them do (link accounts, start a link, set
preferences, trip the access guard, appear in an incident), and after
``delete_user_data`` every column of every table of the file is read with
the standard library's ``sqlite3``: no value holds the user's ID, as an
integer or as text, and none holds one of their tokens. The audit trail
still holds their pseudonym, as the legitimate-interest exception says.

The same scan checks the data classification: every column of every table
must map to a field of :data:`timmybot_core.domain.classification.CLASSIFICATION`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.unit.fake_oauth import FakeOAuthClient
from timmybot_bot.runtime.bootstrap import Services, Settings, bootstrap
from timmybot_core import FakeClock, Incident, PseudonymKind
from timmybot_core.domain.classification import fields_of
from timmybot_core.domain.errors import DataDeletionError, StoreUnavailable
from timmybot_core.services.retention import Requester

USER = 444_444_444_444_444_444
OTHER = 555_555_555_555_555_555
OWNER = 111_111_111_111_111_111
ALLOWED_GUILD = 222_222_222_222_222_222
STRANGER_GUILD = 333_333_333_333_333_333
SCHEMA = json.loads(
    (Path(__file__).parents[2] / "docs/schemas/user-export.schema.json").read_text("utf-8")
)

# Every column of the SQLite backend, and the classified field it stores.
COLUMNS: dict[str, dict[str, tuple[str, str]]] = {
    "schema_migrations": {
        "component": ("schema", "component names"),
        "version": ("schema", "component names"),
    },
    "erasure_journal": {
        "request_id": ("erasure_journal", "Discord user ID"),
        "user_id": ("erasure_journal", "Discord user ID"),
        "requester": ("erasure_journal", "Discord user ID"),
        "requested_at": ("erasure_journal", "Discord user ID"),
        "steps": ("erasure_journal", "Discord user ID"),
    },
    "data_identity": {
        "singleton": ("schema", "identity"),
        "id": ("schema", "identity"),
        "created_at": ("schema", "identity"),
    },
    "vault_records": {
        "user_id": ("vault", "user ID"),
        "key_id": ("vault", "record version"),
        "nonce": ("vault", "record version"),
        "version": ("vault", "record version"),
        "aad": ("vault", "record version"),
        "ciphertext": ("vault", "access token"),
        "updated_at": ("vault", "linked, refreshed"),
    },
    "vault_versions": {
        "id": ("vault", "record version"),
        "last": ("vault", "record version"),
    },
    "vault_aad": {
        "id": ("vault", "record version"),
        "legacy_open": ("vault", "record version"),
    },
    "link_states": {
        "state_hash": ("link_states", "state hash (SHA-256"),
        "user_id": ("link_states", "user ID, platform"),
        "platform": ("link_states", "user ID, platform"),
        "created_at": ("link_states", "user ID, platform"),
        "expires_at": ("link_states", "user ID, platform"),
        "key_id": ("link_states", "code verifier"),
        "nonce": ("link_states", "code verifier"),
        "code_verifier": ("link_states", "code verifier"),
    },
    "link_states_spent": {
        "state_hash": ("link_states", "spent marker"),
        "until": ("link_states", "spent marker"),
    },
    "link_erasures": {
        "user_key": ("link_states", "erasure barrier"),
        "erased_at": ("link_states", "erasure barrier"),
        "until": ("link_states", "erasure barrier"),
    },
    "user_preferences": {
        "user_id": ("preferences", "user ID"),
        "key": ("preferences", "names and values"),
        "value": ("preferences", "names and values"),
        "key_id": ("preferences", "key ID and nonce"),
        "nonce": ("preferences", "key ID and nonce"),
        "updated_at": ("preferences", "time each"),
    },
    "access_allowlist": {
        "guild_id": ("access", "allowlisted"),
        "added_at": ("access", "allowlisted"),
    },
    "access_attempts": {
        "guild_id": ("access", "unauthorized attempts"),
        "at": ("access", "unauthorized attempts"),
    },
    "rate_limit_keys": {
        column: ("access", "rate-limit windows") for column in ("key", "hits", "expires")
    },
    "access_bans": {
        column: ("access", "guild bans") for column in ("guild_id", "until", "reason", "placed_at")
    },
    "access_switches": {
        **{
            column: ("access", "switches (")
            for column in ("switch", "is_on", "reason", "changed_at", "expires_at")
        },
        "actor": ("access", "admin who set"),
    },
    "access_leases": {
        column: ("access", "scheduler") for column in ("name", "holder", "expires_at")
    },
    "access_job_runs": {column: ("access", "scheduler") for column in ("job", "last_run")},
    "incidents": {
        **{
            column: ("incidents", "incident ID")
            for column in (
                "incident_id",
                "severity",
                "title",
                "description",
                "source",
                "declared_at",
            )
        },
        "declared_by": ("incidents", "admin who declared"),
        "steps": ("incidents", "playbook steps"),
        "snapshot": ("incidents", "playbook steps"),
    },
    "incident_holds": {
        column: ("incidents", "retention holds")
        for column in ("hold_id", "incident_id", "start_at", "end_at", "placed_at")
    },
    "audit_records": {
        **{
            column: ("audit", "event ID")
            for column in ("event_id", "ts", "kind", "action", "resource", "source")
        },
        "actor": ("audit", "actor"),
        "subject": ("audit", "subject"),
        "details": ("audit", "details"),
        "body": ("audit", "record bytes"),
        **{
            column: ("audit", "writer ID")
            for column in ("writer_id", "sequence", "prev_hash", "hash", "pruned")
        },
    },
    "audit_digests": {
        column: ("audit", "signed digests")
        for column in (
            "writer_id",
            "digest_sequence",
            "created_at",
            "head_sequence",
            "head_hash",
            "covers_from",
            "prev_digest_hash",
            "key_id",
            "hash",
            "signature",
        )
    },
}


# -- the raw database ------------------------------------------------------------------


def tables(path: Path) -> dict[str, list[str]]:
    with closing(sqlite3.connect(path)) as connection:
        names = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {
            name: [row[1] for row in connection.execute(f"PRAGMA table_info({name})")]
            for name in names
        }


def cells(path: Path) -> Iterator[tuple[str, str, Any]]:
    """Every value of every column of every table: (table, column, value)."""
    with closing(sqlite3.connect(path)) as connection:
        for table, columns in tables(path).items():
            for row in connection.execute(f"SELECT * FROM {table}"):  # noqa: S608 - names from sqlite_master
                yield from (
                    (table, column, value) for column, value in zip(columns, row, strict=True)
                )


def mentions(value: Any, needle: str) -> bool:
    if value is None:
        return False
    if isinstance(value, int):
        return str(value) == needle or needle in str(value)
    if isinstance(value, bytes):
        return needle.encode() in value
    return needle in str(value)


def found(path: Path, needle: str) -> list[tuple[str, str]]:
    return sorted(
        {(table, column) for table, column, value in cells(path) if mentions(value, needle)}
    )


# -- the bot on SQLite -------------------------------------------------------------------


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    clock = FakeClock()
    built = bootstrap(
        Settings(
            backend="sqlite",
            data_dir=tmp_path / "var",
            owner_ids=frozenset({OWNER}),
            allowed_guilds=frozenset({ALLOWED_GUILD}),
        ),
        clock=clock,
        oauth=FakeOAuthClient(clock, platforms=("spotify", "deezer")),
    )
    yield built
    await built.aclose()


def db_path(services: Services) -> Path:
    return services.settings.data_dir / "timmybot.db"


async def use_the_bot(services: Services, user_id: int) -> list[str]:
    """Everything a user can make the bot store; return their tokens."""
    oauth = services.oauth
    assert isinstance(oauth, FakeOAuthClient)
    issued: list[str] = []
    for platform in ("spotify", "deezer"):
        tokens = oauth.issue(platform)
        issued += [tokens.access_token, tokens.refresh_token or ""]
        await services.tokens.store_user_tokens(user_id, tokens)
    await services.links.begin(user_id, "spotify")  # a pending link
    now = services.clock.now()
    await services.user_data.set_preference(user_id, "volume", 70, at=now)
    await services.user_data.set_preference(user_id, "ui.theme", {"name": str(user_id)}, at=now)
    await services.access.check(STRANGER_GUILD, user_id, "search")  # denied, audited
    await services.access.check(ALLOWED_GUILD, user_id, "search")
    await services.security_log.validation_rejected(
        guild_id=ALLOWED_GUILD, user_id=user_id, field="search", problem="too long"
    )
    await services.retention.export_user_data(user_id)
    return issued


async def use_the_bot_as_owner(services: Services) -> None:
    await services.access.allow_guild(STRANGER_GUILD, actor=OWNER)
    await services.access.remove_guild(STRANGER_GUILD, actor=OWNER)
    await services.audit.record_admin_action(OWNER, "guild.allow", f"guild:{STRANGER_GUILD}")
    await services.incidents.handle(Incident(severity="P0", title="drill", declared_by=OWNER))


async def test_erasure_leaves_nothing_keyed_by_the_user_in_any_table(services: Services) -> None:
    mine = await use_the_bot(services, USER)
    theirs = await use_the_bot(services, OTHER)
    await use_the_bot_as_owner(services)
    path = db_path(services)
    # The scan finds the user before erasure (it would catch a leftover),
    # and never finds a token: they are encrypted at rest.
    assert ("vault_records", "user_id") in found(path, str(USER))
    assert ("user_preferences", "user_id") in found(path, str(USER))
    assert ("link_states", "user_id") in found(path, str(USER))
    for token in mine + theirs:
        assert found(path, token) == []

    report = await services.retention.delete_user_data(USER, Requester.USER)

    assert report.ok
    assert report.store("vault").deleted == 2
    assert report.store("preferences").deleted == 2
    assert report.store("link_states").deleted == 1
    await services.audit.write_digest()
    assert found(path, str(USER)) == []
    for token in mine:
        assert found(path, token) == []
    # The other user is untouched: the same scan still finds them.
    assert ("vault_records", "user_id") in found(path, str(OTHER))
    assert ("user_preferences", "user_id") in found(path, str(OTHER))
    # Audit records about the user stay, under their pseudonym only, and the
    # trail still verifies.
    pseudonym = services.pseudonymizer.pseudonymize(PseudonymKind.USER, USER)
    assert ("audit_records", "subject") in found(path, pseudonym)
    kinds = {record.action for record in await services.audit.events_about(USER)}
    assert {"erasure", "export", "UNAUTHORIZED_ACCESS", "VALIDATION_REJECTED"} <= kinds
    assert (await services.audit.verify()).ok


async def test_a_failing_store_is_named_and_a_second_call_completes(services: Services) -> None:
    await use_the_bot(services, USER)
    path = db_path(services)
    store = services.user_data
    original = store.delete_user

    async def broken(user_id: int) -> int:
        raise StoreUnavailable("user data store: delete_user failed (sqlite3.OperationalError)")

    store.delete_user = broken  # type: ignore[method-assign]
    with pytest.raises(DataDeletionError) as raised:
        await services.retention.delete_user_data(USER, Requester.DISCORD_DELETED_USER)
    assert raised.value.failed == ("preferences",)
    assert "preferences" in str(raised.value)
    # The request stays pending, with the ID that lets it be finished.
    assert found(path, str(USER)) == [
        ("erasure_journal", "user_id"),
        ("user_preferences", "user_id"),
    ]

    store.delete_user = original  # type: ignore[method-assign]
    report = await services.retention.delete_user_data(USER, Requester.DISCORD_DELETED_USER)

    assert report.ok
    assert report.store("preferences").deleted == 2
    assert found(path, str(USER)) == []


async def test_the_export_holds_no_token_and_matches_its_schema(services: Services) -> None:
    mine = await use_the_bot(services, USER)
    export = await services.retention.export_user_data(USER)
    text = json.dumps(export)
    for token in mine:
        assert token not in text
    assert "canary-" not in text
    jsonschema.Draft202012Validator(
        SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(export)
    assert {entry["platform"] for entry in export["linked_platforms"]} == {"spotify", "deezer"}
    assert export["preferences"]["ui.theme"]["value"] == {"name": str(USER)}
    assert len(export["events"]) >= 3


async def test_the_export_holds_every_event_about_the_user(services: Services) -> None:
    # More than a page and more than the old cap of 1000, many at one instant
    # (the pages must neither skip nor repeat ties): an export is never cut short.
    for _ in range(1030):
        await services.audit.record_privacy_request(user_id=USER, action="export", requester="user")
    export = await services.retention.export_user_data(USER)
    assert len({event["event_id"] for event in export["events"]}) == len(export["events"]) == 1030


async def test_cleanup_on_sqlite_prunes_old_audit_records_but_not_held_ones(
    services: Services,
) -> None:
    clock = services.clock
    assert isinstance(clock, FakeClock)
    old = await services.audit.record_admin_action(OWNER, "guild.allow", "guild:1")
    # Past the P0 hold's 30-day lookback: only what came later is held.
    clock.advance(timedelta(days=31))
    report = await services.incidents.handle(
        Incident(severity="P0", title="drill", declared_by=OWNER)
    )
    held = await services.audit.record_admin_action(OWNER, "killswitch.off", "switch:kill")
    assert report.incident_id
    clock.advance(services.settings.audit_retention + timedelta(days=2))

    cleaned = await services.retention.cleanup_expired_data()

    assert cleaned.ok
    assert cleaned.audit_records >= 1
    records = {r.event_id: r for r in await services.audit.log.chain(services.audit.writer_id)}
    assert records[old.event_id].pruned
    assert not records[held.event_id].pruned
    assert (await services.audit.verify()).ok


# -- the classification covers the schema ------------------------------------------------


async def test_every_sqlite_column_is_classified(services: Services) -> None:
    await services.open()  # every store's tables, those used only by rare paths too
    await use_the_bot(services, USER)
    await use_the_bot_as_owner(services)
    schema = tables(db_path(services))
    assert {table: sorted(columns) for table, columns in schema.items()} == {
        table: sorted(columns) for table, columns in COLUMNS.items()
    }, "a SQLite table or column is missing from the data classification (see docs/privacy.md)"
    for table, columns in COLUMNS.items():
        for column, (store, words) in columns.items():
            matches = [entry for entry in fields_of(store) if words in entry.field]
            assert len(matches) == 1, (table, column, store, words)
