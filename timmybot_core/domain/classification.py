"""The data classification: every field TimmyBot stores, its class and its purpose.

One table (:data:`CLASSIFICATION`) lists every stored field of every store,
following the seed design's three classes:

- **public**: not secret, such as Discord IDs (pseudonymized in logs),
  guild IDs and anonymous usage statistics;
- **sensitive**: OAuth access and refresh tokens, and user preferences,
  kept encrypted;
- **not collected**: what the bot never stores (real names, email
  addresses, voice or message content, location, raw IP addresses).

``docs/privacy.md`` (its generated section), the ``/privacy info`` reply and
the data statement in every export are rendered from this table, so they
cannot drift from it. The page's generator is a tool of the bot, not of the
core: ``python -m timmybot_bot.cli.privacy_doc --write docs/privacy.md``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, Final

import attrs

__all__ = [
    "CLASSIFICATION",
    "DEFAULT_AUDIT_RETENTION",
    "NOT_COLLECTED",
    "STORES",
    "DataClass",
    "NotCollected",
    "OnErasure",
    "StoreInfo",
    "StoredField",
    "data_statement",
    "fields_of",
    "privacy_info_text",
]

DEFAULT_AUDIT_RETENTION: Final = timedelta(days=365)
"""How long audit records are kept unless ``TIMMYBOT_AUDIT_RETENTION`` says otherwise."""


class DataClass(enum.StrEnum):
    """The seed's classes of data."""

    PUBLIC = "public"
    """Not secret: IDs (pseudonymized in logs), times, anonymous statistics."""
    SENSITIVE = "sensitive"
    """Secrets and the user's own settings: OAuth tokens, preferences. Encrypted at rest."""
    NOT_COLLECTED = "not collected"
    """Never stored."""


class OnErasure(enum.StrEnum):
    """What a user's erasure request does to a field."""

    DELETED = "deleted"
    """Removed by ``/privacy delete`` (tokens are revoked at the provider first)."""
    KEPT_PSEUDONYMOUS = "kept, pseudonymous"
    """Kept under legitimate interest: it holds a keyed pseudonym, never the Discord ID."""
    NOT_PERSONAL = "not about a user"
    """Holds nothing about any user (guilds, switches, keys, technical metadata)."""


@attrs.frozen(kw_only=True)
class StoreInfo:
    """A store: its name in reports, its title, and where it lives."""

    name: str
    title: str
    where: str


@attrs.frozen(kw_only=True)
class StoredField:
    """One stored field (or group of fields stored and handled together)."""

    store: str
    field: str
    data_class: DataClass
    purpose: str
    retention: str
    on_erasure: OnErasure
    exported: bool = False
    """Part of the user's ``/privacy export``."""
    identifies_user: bool = False
    """Holds the user's Discord ID itself (not a pseudonym of it)."""

    @property
    def about_user(self) -> bool:
        """Whether the field holds something about one user (their ID or pseudonym)."""
        return self.on_erasure is not OnErasure.NOT_PERSONAL


@attrs.frozen(kw_only=True)
class NotCollected:
    """Something the bot never stores, and how it avoids it."""

    what: str
    note: str


STORES: Final[tuple[StoreInfo, ...]] = (
    StoreInfo(
        name="vault",
        title="Token vault",
        where="SQLite `vault_records` (AES-256-GCM); AWS Secrets Manager "
        "`/timmybot/users/{user_id}/oauth` (KMS)",
    ),
    StoreInfo(
        name="link_states",
        title="Pending account links",
        where="SQLite `link_states`, `link_states_spent`, `link_erasures`",
    ),
    StoreInfo(
        name="preferences",
        title="Preferences",
        where="SQLite `user_preferences` (values AES-256-GCM); DynamoDB user preferences",
    ),
    StoreInfo(
        name="access",
        title="Access control",
        where="SQLite `access_allowlist`, `access_attempts`, `access_bans`, `access_switches`, "
        "`access_leases`, `access_job_runs`, `rate_limit_keys`",
    ),
    StoreInfo(
        name="incidents",
        title="Incidents",
        where="SQLite `incidents`, `incident_holds`",
    ),
    StoreInfo(
        name="audit",
        title="Audit trail",
        where="SQLite `audit_records`, `audit_digests`; copies of the digests in the digest "
        "directory or S3 bucket, if configured",
    ),
    StoreInfo(
        name="security_log",
        title="Security log",
        where="log lines on the `timmybot.security` logger (where the operator's log "
        "handler sends them)",
    ),
    StoreInfo(
        name="metrics",
        title="Security metrics",
        where="the metrics exporter (OpenTelemetry, CloudWatch)",
    ),
    StoreInfo(
        name="keys",
        title="Keys",
        where="key files under the data directory (mode 0600), or environment variables",
    ),
    StoreInfo(
        name="erasure_journal",
        title="Erasure requests in progress",
        where="SQLite `erasure_journal`; DynamoDB access table (`pk=erasure`)",
    ),
    StoreInfo(
        name="schema",
        title="Database bookkeeping",
        where="SQLite `schema_migrations`, `data_identity`",
    ),
)

_UNTIL_UNLINKED = "until the platform is unlinked, or the user's data is erased"
_TEN_MINUTES = "10 minutes (or until used), then purged"
_AUDIT = (
    "the audit retention (365 days by default, `TIMMYBOT_AUDIT_RETENTION`), longer while an "
    "incident's retention hold covers it; then pruned"
)
_AUDIT_CHAIN = "for good: pruning keeps them so the chain still verifies"
_OPERATOR = "until an operator deletes it"

CLASSIFICATION: Final[tuple[StoredField, ...]] = (
    # -- token vault ------------------------------------------------------------------
    StoredField(
        store="vault",
        field="user ID (Discord snowflake)",
        data_class=DataClass.PUBLIC,
        purpose="finds the user's one token record",
        retention=_UNTIL_UNLINKED,
        on_erasure=OnErasure.DELETED,
        exported=True,
        identifies_user=True,
    ),
    StoredField(
        store="vault",
        field="OAuth access token",
        data_class=DataClass.SENSITIVE,
        purpose="calls the music platform on the user's behalf",
        retention=_UNTIL_UNLINKED,
        on_erasure=OnErasure.DELETED,
    ),
    StoredField(
        store="vault",
        field="OAuth refresh token",
        data_class=DataClass.SENSITIVE,
        purpose="renews the access token without asking the user again",
        retention=_UNTIL_UNLINKED,
        on_erasure=OnErasure.DELETED,
    ),
    StoredField(
        store="vault",
        field="linked platform, scopes, token type, token expiry",
        data_class=DataClass.SENSITIVE,
        purpose="knows what the user linked and when to refresh",
        retention=_UNTIL_UNLINKED,
        on_erasure=OnErasure.DELETED,
        exported=True,
    ),
    StoredField(
        store="vault",
        field="linked, refreshed, created and updated times; needs-relink flag",
        data_class=DataClass.SENSITIVE,
        purpose="shows the user their links; asks them to link again when a grant is revoked",
        retention=_UNTIL_UNLINKED,
        on_erasure=OnErasure.DELETED,
        exported=True,
    ),
    StoredField(
        store="vault",
        field="refresh claim (claim ID and deadline)",
        data_class=DataClass.SENSITIVE,
        purpose="lets one process at a time refresh, so a refresh token is never used twice",
        retention="seconds, while a refresh runs",
        on_erasure=OnErasure.DELETED,
    ),
    StoredField(
        store="vault",
        field="record version, key ID, nonce, associated-data format",
        data_class=DataClass.PUBLIC,
        purpose="compare-and-set writes; which key encrypted the record and what it is bound to",
        retention=_UNTIL_UNLINKED,
        on_erasure=OnErasure.DELETED,
    ),
    # -- pending links ----------------------------------------------------------------
    StoredField(
        store="link_states",
        field="user ID, platform, created and expiry times",
        data_class=DataClass.PUBLIC,
        purpose="binds a started account link to the user who started it",
        retention=_TEN_MINUTES,
        on_erasure=OnErasure.DELETED,
        identifies_user=True,
    ),
    StoredField(
        store="link_states",
        field="state hash (SHA-256 of the state; the state itself is never stored)",
        data_class=DataClass.PUBLIC,
        purpose="recognizes the OAuth callback",
        retention=_TEN_MINUTES,
        on_erasure=OnErasure.DELETED,
    ),
    StoredField(
        store="link_states",
        field="PKCE code verifier",
        data_class=DataClass.SENSITIVE,
        purpose="proves to the platform that the callback finishes our own request",
        retention=_TEN_MINUTES,
        on_erasure=OnErasure.DELETED,
    ),
    StoredField(
        store="link_states",
        field="spent marker (state hash and expiry, no user ID)",
        data_class=DataClass.PUBLIC,
        purpose="tells a replayed callback from an unknown one",
        retention="until the state would have expired",
        on_erasure=OnErasure.NOT_PERSONAL,
    ),
    StoredField(
        store="link_states",
        field="erasure barrier (SHA-256 hash of the user ID, never the ID; erasure time and end)",
        data_class=DataClass.PUBLIC,
        purpose="cancels a link started before the user's erasure that completes after it",
        retention="1 hour after the erasure, then purged",
        on_erasure=OnErasure.KEPT_PSEUDONYMOUS,
    ),
    # -- preferences ------------------------------------------------------------------
    StoredField(
        store="preferences",
        field="user ID (Discord snowflake)",
        data_class=DataClass.PUBLIC,
        purpose="finds the user's preferences",
        retention="until the user deletes them, or the user's data is erased",
        on_erasure=OnErasure.DELETED,
        exported=True,
        identifies_user=True,
    ),
    StoredField(
        store="preferences",
        field="preference names and values",
        data_class=DataClass.SENSITIVE,
        purpose="the settings the user chose",
        retention="until the user deletes them, or the user's data is erased",
        on_erasure=OnErasure.DELETED,
        exported=True,
    ),
    StoredField(
        store="preferences",
        field="time each preference was set",
        data_class=DataClass.PUBLIC,
        purpose="shows when a setting changed",
        retention="until the user deletes them, or the user's data is erased",
        on_erasure=OnErasure.DELETED,
        exported=True,
    ),
    StoredField(
        store="preferences",
        field="key ID and nonce",
        data_class=DataClass.PUBLIC,
        purpose="which key encrypted a value",
        retention="until the user deletes them, or the user's data is erased",
        on_erasure=OnErasure.DELETED,
    ),
    # -- access control ---------------------------------------------------------------
    StoredField(
        store="access",
        field="allowlisted guild IDs and when they were added",
        data_class=DataClass.PUBLIC,
        purpose="decides which servers may use the bot",
        retention="until an admin removes the guild",
        on_erasure=OnErasure.NOT_PERSONAL,
    ),
    StoredField(
        store="access",
        field="unauthorized attempts (guild ID and time; no user ID)",
        data_class=DataClass.PUBLIC,
        purpose="counts attempts for temporary bans",
        retention="the attempt window (1 hour by default), then purged",
        on_erasure=OnErasure.NOT_PERSONAL,
    ),
    StoredField(
        store="access",
        field="rate-limit windows (member and guild pseudonyms, command name, hit times)",
        data_class=DataClass.PUBLIC,
        purpose="limits how often a member or a guild may run commands, across processes",
        retention="one window after the last hit (at most 1 day), then pruned",
        on_erasure=OnErasure.KEPT_PSEUDONYMOUS,
    ),
    StoredField(
        store="access",
        field="guild bans (guild ID, reason, placed and end times)",
        data_class=DataClass.PUBLIC,
        purpose="blocks a guild after repeated unauthorized attempts",
        retention="until the ban ends, then purged",
        on_erasure=OnErasure.NOT_PERSONAL,
    ),
    StoredField(
        store="access",
        field="switches (kill switch, lockdown, refresh pause): state, reason, times",
        data_class=DataClass.PUBLIC,
        purpose="emergency controls every shard obeys",
        retention="until changed or expired",
        on_erasure=OnErasure.NOT_PERSONAL,
    ),
    StoredField(
        store="access",
        field="admin who set a switch (pseudonym)",
        data_class=DataClass.PUBLIC,
        purpose="accountability for emergency controls",
        retention="until the switch changes again",
        on_erasure=OnErasure.KEPT_PSEUDONYMOUS,
    ),
    StoredField(
        store="access",
        field="scheduler leases and job runs (job name, holding process, times)",
        data_class=DataClass.PUBLIC,
        purpose="runs each scheduled job (token rotation, clean-up) once across processes",
        retention="replaced at each run",
        on_erasure=OnErasure.NOT_PERSONAL,
    ),
    # -- incidents --------------------------------------------------------------------
    StoredField(
        store="incidents",
        field="incident ID, severity, title, description, source, declared time",
        data_class=DataClass.PUBLIC,
        purpose="incident response and review",
        retention=_OPERATOR,
        on_erasure=OnErasure.NOT_PERSONAL,
    ),
    StoredField(
        store="incidents",
        field="admin who declared it (pseudonym)",
        data_class=DataClass.PUBLIC,
        purpose="accountability for incident response",
        retention=_OPERATOR,
        on_erasure=OnErasure.KEPT_PSEUDONYMOUS,
    ),
    StoredField(
        store="incidents",
        field="playbook steps and state snapshot (metrics, bans, recent events by pseudonym)",
        data_class=DataClass.PUBLIC,
        purpose="evidence of what happened and what the playbook did",
        retention=_OPERATOR,
        on_erasure=OnErasure.KEPT_PSEUDONYMOUS,
    ),
    StoredField(
        store="incidents",
        field="retention holds (incident, start and end times)",
        data_class=DataClass.PUBLIC,
        purpose="keeps audit evidence of an incident past the retention period",
        retention="until released",
        on_erasure=OnErasure.NOT_PERSONAL,
    ),
    # -- audit trail ------------------------------------------------------------------
    StoredField(
        store="audit",
        field="event ID, kind, action, resource, source, time",
        data_class=DataClass.PUBLIC,
        purpose="what an admin did, or which security or privacy event happened, and when",
        retention=_AUDIT,
        on_erasure=OnErasure.KEPT_PSEUDONYMOUS,
        exported=True,
    ),
    StoredField(
        store="audit",
        field="actor: the admin's pseudonym",
        data_class=DataClass.PUBLIC,
        purpose="who did it, without storing the Discord ID",
        retention=_AUDIT,
        on_erasure=OnErasure.KEPT_PSEUDONYMOUS,
    ),
    StoredField(
        store="audit",
        field="subject: the user's pseudonym",
        data_class=DataClass.PUBLIC,
        purpose="which user a security or privacy event was about",
        retention=_AUDIT,
        on_erasure=OnErasure.KEPT_PSEUDONYMOUS,
    ),
    StoredField(
        store="audit",
        field="details (cleaned; anything that looks like a secret is redacted)",
        data_class=DataClass.PUBLIC,
        purpose="the circumstances: command, reason, counts",
        retention=_AUDIT,
        on_erasure=OnErasure.KEPT_PSEUDONYMOUS,
        exported=True,
    ),
    StoredField(
        store="audit",
        field="record bytes: the exact encoding each record's hash covers (the fields above)",
        data_class=DataClass.PUBLIC,
        purpose="tamper evidence: what a record said, exactly as it was hashed",
        retention=_AUDIT,
        on_erasure=OnErasure.KEPT_PSEUDONYMOUS,
    ),
    StoredField(
        store="audit",
        field="writer ID, sequence, previous hash, hash",
        data_class=DataClass.PUBLIC,
        purpose="tamper evidence: each writer's hash chain",
        retention=_AUDIT_CHAIN,
        on_erasure=OnErasure.NOT_PERSONAL,
    ),
    StoredField(
        store="audit",
        field="signed digests (chain head, key ID, hash, Ed25519 signature)",
        data_class=DataClass.PUBLIC,
        purpose="tamper evidence: signed statements of each chain's head",
        retention=_AUDIT_CHAIN,
        on_erasure=OnErasure.NOT_PERSONAL,
    ),
    # -- security log -----------------------------------------------------------------
    StoredField(
        store="security_log",
        field="event type, time, details (cleaned, at most 200 characters each)",
        data_class=DataClass.PUBLIC,
        purpose="security monitoring and alarms",
        retention="the log handler's retention, set by the operator",
        on_erasure=OnErasure.KEPT_PSEUDONYMOUS,
    ),
    StoredField(
        store="security_log",
        field="guild, user and IP pseudonyms (keyed HMAC-SHA256, never the raw value)",
        data_class=DataClass.PUBLIC,
        purpose="correlates events without storing Discord IDs or addresses",
        retention="the log handler's retention, set by the operator",
        on_erasure=OnErasure.KEPT_PSEUDONYMOUS,
    ),
    # -- metrics ----------------------------------------------------------------------
    StoredField(
        store="metrics",
        field="counters and a gauge, without guild or user attributes",
        data_class=DataClass.PUBLIC,
        purpose="anonymous security statistics and alarms",
        retention="the metrics backend's retention",
        on_erasure=OnErasure.NOT_PERSONAL,
    ),
    # -- keys -------------------------------------------------------------------------
    StoredField(
        store="keys",
        field="vault key and pseudonym key",
        data_class=DataClass.SENSITIVE,
        purpose="encrypts tokens and preferences; computes pseudonyms",
        retention="until rotated",
        on_erasure=OnErasure.NOT_PERSONAL,
    ),
    StoredField(
        store="keys",
        field="audit signing key",
        data_class=DataClass.SENSITIVE,
        purpose="signs audit digests",
        retention="until rotated (public keys stay to verify old digests)",
        on_erasure=OnErasure.NOT_PERSONAL,
    ),
    StoredField(
        store="erasure_journal",
        field="Discord user ID, who asked and when, each store's outcome, while an erasure "
        "is in progress",
        data_class=DataClass.PUBLIC,
        purpose="finishing an erasure a crash or a failed store interrupted",
        retention="until the erasure is complete (the clean-up resumes it)",
        on_erasure=OnErasure.DELETED,
    ),
    StoredField(
        store="schema",
        field="component names and schema versions",
        data_class=DataClass.PUBLIC,
        purpose="database migrations",
        retention="for good",
        on_erasure=OnErasure.NOT_PERSONAL,
    ),
    StoredField(
        store="schema",
        field="the data directory's identity (a random ID) and when it was set up",
        data_class=DataClass.PUBLIC,
        purpose="refusing a database replaced or emptied under existing keys",
        retention="for good",
        on_erasure=OnErasure.NOT_PERSONAL,
    ),
)

NOT_COLLECTED: Final[tuple[NotCollected, ...]] = (
    NotCollected(
        what="Real names and other personal details",
        note="never asked for; only Discord IDs are used",
    ),
    NotCollected(
        what="Email addresses",
        note="never read or stored, not even from the linked platform's profile",
    ),
    NotCollected(
        what="Voice and message content",
        note="command text (searches, playlist names) is checked and answered, never stored; "
        "a rejected input is logged by its problem, not its text",
    ),
    NotCollected(
        what="Location data",
        note="never collected",
    ),
    NotCollected(
        what="IP addresses",
        note="never stored; a security event may carry a keyed pseudonym of one",
    ),
    NotCollected(
        what="Discord usernames, avatars and server names",
        note="never stored; Discord IDs are enough",
    ),
    NotCollected(
        what="Listening history",
        note="never stored",
    ),
)

LEGITIMATE_INTEREST: Final = (
    "Audit records, incident evidence and security log lines are kept after an erasure "
    "request: they record who did what to the bot's security, which the operator has a "
    "legitimate interest in keeping (GDPR Art. 6(1)(f)) for accountability and incident "
    "response. They hold only keyed pseudonyms, never Discord IDs or tokens, and audit "
    "records are pruned after the retention period."
)

RIGHTS: Final[tuple[tuple[str, str], ...]] = (
    (
        "erasure",
        "/privacy delete removes your tokens (revoked at the platform first), preferences "
        "and pending links",
    ),
    (
        "portability",
        "/privacy export sends you your data as JSON: links (never tokens), preferences, "
        "and the security and privacy events about you",
    ),
    (
        "minimization",
        "only what the table lists is stored, for the purpose it names, and clean-up "
        "removes what has expired",
    ),
)

_BY_STORE: Final = {store.name: store for store in STORES}


def fields_of(store: str) -> tuple[StoredField, ...]:
    """Return the classified fields of ``store`` (a name from :data:`STORES`)."""
    if store not in _BY_STORE:
        raise ValueError(f"unknown store {store!r}; known: {', '.join(_BY_STORE)}")
    return tuple(entry for entry in CLASSIFICATION if entry.store == store)


def _days(period: timedelta) -> str:
    days = period / timedelta(days=1)
    return f"{days:g} days" if days != 1 else "1 day"


def _group(entries: Iterable[StoredField]) -> list[str]:
    by_store: dict[str, list[str]] = {}
    for entry in entries:
        by_store.setdefault(_BY_STORE[entry.store].title, []).append(entry.field)
    return [f"• {title}: {'; '.join(fields)}" for title, fields in by_store.items()]


def privacy_info_text(*, audit_retention: timedelta = DEFAULT_AUDIT_RETENTION) -> str:
    """Return the ``/privacy info`` reply: what is kept about you, and your rights.

    Plain text of our own (no user input); it fits one Discord message.
    """
    about_user = [entry for entry in CLASSIFICATION if entry.about_user]
    sensitive = [e for e in about_user if e.data_class is DataClass.SENSITIVE]
    public = [
        e
        for e in about_user
        if e.data_class is DataClass.PUBLIC and e.on_erasure is OnErasure.DELETED
    ]
    lines = ["What TimmyBot keeps about you"]
    lines += ["Sensitive (encrypted, deleted on request):", *_group(sensitive)]
    lines += ["Public (deleted on request):", *_group(public)]
    lines += [
        "Kept after deletion, as a pseudonym only (legitimate interest): audit records about "
        f"you, for {_days(audit_retention)} unless an incident holds them, and security log "
        "lines, as long as the operator's log retention.",
        "Never collected: " + "; ".join(item.what for item in NOT_COLLECTED) + ".",
        "Your rights:",
    ]
    lines += [f"• {right}: {text}" for right, text in RIGHTS]
    return "\n".join(lines)


def data_statement(*, audit_retention: timedelta = DEFAULT_AUDIT_RETENTION) -> dict[str, Any]:
    """Return the data statement included in every export (JSON data)."""
    return {
        "summary": (
            "TimmyBot stores what the table below lists, for the purpose it names. Tokens "
            "are never exported. Audit and security events are kept as pseudonyms after "
            "an erasure request."
        ),
        "audit_retention_days": audit_retention / timedelta(days=1),
        "stored": [
            {
                "store": _BY_STORE[entry.store].title,
                "field": entry.field,
                "class": entry.data_class.value,
                "purpose": entry.purpose,
                "retention": entry.retention,
                "on_erasure": entry.on_erasure.value,
                "exported": entry.exported,
            }
            for entry in CLASSIFICATION
        ],
        "not_collected": [{"what": item.what, "note": item.note} for item in NOT_COLLECTED],
        "legitimate_interest": LEGITIMATE_INTEREST,
        "rights": [{"right": right, "how": text} for right, text in RIGHTS],
    }
