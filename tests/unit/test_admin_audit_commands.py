"""Admin commands are recorded, and ``/admin audit`` reads and verifies the trail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
import pytest

from timmybot_bot.app.audit_query import (
    MAX_SHOWN,
    AuditQueryError,
    parse_recent,
    render_verification,
)
from timmybot_bot.app.commands import Invocation
from timmybot_bot.console.lines import run_command
from timmybot_bot.runtime.bootstrap import Services, Settings, bootstrap
from timmybot_core import (
    AuditKind,
    DiscordLimits,
    FakeClock,
    PseudonymKind,
    ResponseSanitizer,
    StoreUnavailable,
)
from timmybot_core.domain.audit_chain import sealed
from timmybot_core.ports.access import Ban
from timmybot_core.ports.audit import GENESIS_HASH, AuditRecord

OWNER = 111_111_111_111_111_111
GUILD = 222_222_222_222_222_222
MEMBER = 555_555_555_555_555_555
START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
OWNER_IN_DM = Invocation(user_id=OWNER)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
async def services(clock: FakeClock) -> Services:
    built = bootstrap(Settings(backend="memory", owner_ids={OWNER}), clock=clock)
    yield built  # type: ignore[misc]
    await built.aclose()


async def admin(services: Services, line: str, who: Invocation = OWNER_IN_DM) -> str:
    return (await run_command(services, who, "admin", line)).text


async def test_every_admin_command_that_ran_is_recorded(services: Services) -> None:
    await admin(services, f"guild allow {GUILD}")
    await admin(services, "killswitch on maintenance window")
    await admin(services, "nonsense")  # a usage error: nothing ran, nothing recorded

    page = await services.audit.get_audit_history(
        START - timedelta(days=1), START + timedelta(days=1), kind=AuditKind.ADMIN
    )
    actions = [(r.action, r.resource) for r in page.records]
    # Issue 14: the same fixed action names as timmybot-admin's.
    assert actions == [("switch.on", "switch:kill_switch"), ("guild.allow", f"guild:{GUILD}")]
    killswitch, allow = page.records
    expected_actor = services.pseudonymizer.pseudonymize(PseudonymKind.ADMIN, OWNER)
    assert allow.actor == killswitch.actor == expected_actor
    assert killswitch.details == {"reason": "maintenance window", "for_seconds": None}
    assert allow.details == {"changed": True}
    assert allow.source == "discord"


async def test_the_security_events_of_admin_actions_are_queryable_too(
    services: Services,
) -> None:
    await admin(services, f"guild allow {GUILD}")

    reply = await admin(services, "audit query kind:security")

    assert "ALLOWLIST\\_CHANGED" in reply  # escaped for Discord markdown


async def test_recent_lists_newest_first_and_pages(services: Services, clock: FakeClock) -> None:
    for n in range(4):
        clock.advance(timedelta(minutes=1))
        await admin(services, f"guild allow {GUILD + n}")

    reply = await admin(services, "audit query kind:admin limit:2")

    lines = reply.splitlines()
    assert lines[0].startswith("Audit records")
    assert f"guild:{GUILD + 3}" in lines[1] and f"guild:{GUILD + 2}" in lines[2]
    assert lines[-1].startswith("More: add cursor:")
    cursor = lines[-1].removeprefix("More: add ")
    rest = await admin(services, f"audit query kind:admin limit:2 {cursor}")
    assert f"guild:{GUILD + 1}" in rest and f"guild:{GUILD}" in rest.splitlines()[2]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("audit query kind:banana", "kind: must be one of admin, security, privacy"),
        ("audit query since:yesterday", "since: must be a duration"),
        ("audit query limit:0", "limit: must be a number from 1 to 25"),
        ("audit query admin:-5", "admin: must be a Discord user ID"),
        ("audit query since:1d until:2d", "until: must be after since"),
        ("audit query kind:admin kind:security", "kind: given twice"),
        ("audit query color:red", "Filters are name:value"),
        ("audit query cursor:%%%", "malformed audit page cursor"),
        # Out of the calendar: a usage error, not an OverflowError out of the bus.
        ("audit query since:999999w", "since: must lie between the years 1 and 9999"),
        ("audit query since:999999d", "since: must lie between the years 1 and 9999"),
        ("audit verify since:0001-01-01T00:00+01:00", "since: must lie between the years"),
        ("audit query until:9999-12-31T23:59-01:00", "until: must lie between the years"),
    ],
)
async def test_a_bad_filter_gets_a_reply_naming_it(
    services: Services, line: str, message: str
) -> None:
    assert message in await admin(services, line)


async def test_verify_reports_a_clean_trail_and_then_a_tampered_one(services: Services) -> None:
    await admin(services, f"guild allow {GUILD}")
    await services.audit.write_digest()

    assert "audit log clean" in await admin(services, "audit verify")

    log = services.audit.log
    chain = await log.chain(services.audit.writer_id)
    record = next(r for r in chain if r.action == "guild.allow")
    stored = log._records  # type: ignore[attr-defined]  # the attacker writes the store directly
    key = (record.writer_id, record.sequence)
    stored[key] = type(record)(**{**_fields(record), "action": "guild.remove"})

    reply = await admin(services, "audit verify")
    assert "problem" in reply
    assert f"modified at writer {record.writer_id} record {record.sequence}" in reply


async def test_a_writer_id_from_the_store_cannot_forge_lines_of_a_reply(
    services: Services, clock: FakeClock
) -> None:
    # Someone who can write the store adds a writer whose ID holds a line
    # break and a whole fake record line; the next start seals it, so the ID
    # reaches a signed record and the problems' places.
    fake = "• 2026-11-26 11:59:00 admin guild.remove by ＠everyone on guild:42 (discord)"
    writer = f"w-1\n{fake}"
    first = sealed(
        AuditRecord(
            event_id="e-1",
            writer_id=writer,
            sequence=1,
            timestamp=START,
            kind=AuditKind.SECURITY,
            action="x",
            prev_hash=GENESIS_HASH,
            hash="",
        )
    )
    await services.audit.log.append(first)
    await services.audit.log.append(
        sealed(attrs.evolve(first, event_id="e-2", sequence=2, prev_hash="f" * 64))
    )
    clock.advance(timedelta(hours=1))
    assert await services.audit.seal_abandoned() == 1

    recent = await admin(services, "audit recent")
    verify = await admin(services, "audit verify")

    # A title and the three records, one line each; a problem line for the broken link.
    assert len(recent.splitlines()) == 4, recent
    assert all(line.startswith("• ") for line in recent.splitlines()[1:]), recent
    assert [line for line in verify.splitlines() if not line.startswith("  ✗ ")] == [
        verify.splitlines()[0]
    ], verify
    assert "does not link to record 1" in verify


def _fields(record: object) -> dict[str, object]:
    # The constructor's own fields (not the cached bytes, which a new record recomputes).
    return attrs.asdict(record, recurse=False, filter=lambda a, _: a.init)  # type: ignore[arg-type]


async def test_a_member_with_an_admin_role_may_and_others_may_not(clock: FakeClock) -> None:
    admin_role = 777_777_777_777_777_777
    services = bootstrap(
        Settings(
            backend="memory",
            owner_ids={OWNER},
            allowed_guilds={GUILD},
            admin_role_ids={admin_role},
        ),
        clock=clock,
    )
    with_role = Invocation(user_id=MEMBER, guild_id=GUILD, role_ids={admin_role})
    without = Invocation(user_id=MEMBER, guild_id=GUILD, role_ids={1})
    in_dm = Invocation(user_id=MEMBER, role_ids={admin_role})

    assert "Allowed guilds" in await admin(services, "guild list", with_role)
    assert "Only TimmyBot owners and admins" in await admin(services, "guild list", without)
    assert "Only TimmyBot owners and admins" not in await admin(services, "guild list", in_dm)
    await services.aclose()


async def test_an_action_that_cannot_be_recorded_says_so(services: Services) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable("audit log: down (simulated)")

    services.audit.record_admin_action = broken  # type: ignore[method-assign]

    reply = await admin(services, f"guild allow {GUILD}")

    assert reply.startswith(f"Guild {GUILD} is now allowed.")
    assert "could not record" in reply


async def test_rotation_can_be_run_by_hand(services: Services) -> None:
    reply = await admin(services, "rotation run")

    assert reply.startswith("Token rotation: 0 user(s)")


@pytest.mark.parametrize(("count", "limit"), [(None, 10), (0, 10), (7, 7), ("7", 7), (25, 25)])
def test_recent_takes_the_count_as_given_by_each_front_end(
    count: int | str | None, limit: int
) -> None:
    # Discord gives an integer option, the console a word: no "limit:N" text in between.
    query = parse_recent(count, now=START)
    assert query.recent and query.limit == limit


@pytest.mark.parametrize("count", [MAX_SHOWN + 1, -1, "x", "٥"])
def test_recent_refuses_a_count_outside_what_is_shown(count: int | str) -> None:
    with pytest.raises(AuditQueryError, match=f"from 1 to {MAX_SHOWN}"):
        parse_recent(count, now=START)


async def test_a_page_too_long_for_one_discord_message_keeps_its_cursor(
    services: Services, clock: FakeClock
) -> None:
    # 25 records of ~100 characters do not fit Discord's 2000: the sender's
    # cut used to drop the last records and the "More: add cursor:" line.
    guilds = [GUILD + n for n in range(30)]
    for guild in guilds:
        clock.advance(timedelta(seconds=1))
        await admin(services, f"guild allow {guild}")

    seen: list[int] = []
    filters = f"audit query kind:admin limit:{MAX_SHOWN}"
    reply = await admin(services, filters)
    for _ in range(len(guilds)):
        assert len(reply) <= DiscordLimits.MESSAGE
        lines = reply.splitlines()
        seen += [int(line.split("guild:")[1].split()[0]) for line in lines if "guild:" in line]
        if not lines[-1].startswith("More: add cursor:"):
            break
        reply = await admin(services, f"{filters} {lines[-1].removeprefix('More: add ')}")
    # Every record shown once, newest first: none hidden by a cut, none repeated.
    assert seen == guilds[::-1]


async def test_a_long_guild_list_fits_one_message_and_says_what_it_left_out(
    services: Services,
) -> None:
    now = services.clock.now()
    for n in range(300):
        await services.access_store.allow_guild(GUILD + n, at=now)
    for n in range(60):
        ban = Ban(
            guild_id=GUILD + 10_000 + n, until=now + timedelta(days=1), reason="t", placed_at=now
        )
        await services.access_store.place_ban(ban, now=now)

    text = await admin(services, "guild list")

    assert len(text) <= DiscordLimits.MESSAGE
    first, *bans = text.splitlines()
    assert first.startswith("Allowed guilds: ")
    assert first.endswith(" more (timmybot-admin guild list shows all)")
    shown = first.removeprefix("Allowed guilds: ").split(" … and ")[0].split(", ")
    left = int(first.split(" … and ")[1].split()[0])
    assert len(shown) + left == 300
    assert bans[0].startswith(f"Banned: {GUILD + 10_000} until ")
    assert bans[-1].startswith("… and ") and "more ban(s)" in bans[-1]
    assert len(bans) - 1 + int(bans[-1].split()[2]) == 60


def test_a_long_verification_report_fits_one_message_and_counts_the_rest() -> None:
    sanitizer = ResponseSanitizer()
    problems = [f"record {n} modified at writer w-{'x' * 190}" for n in range(25)]
    text = render_verification(sanitizer, "audit log: 25 problem(s)", problems)
    assert len(text) <= DiscordLimits.MESSAGE
    lines = text.splitlines()
    listed = [line for line in lines if line.startswith("  ✗ ")]
    assert lines[-1] == f"  … and {25 - len(listed)} more (timmybot-admin audit verify lists all)"
    assert 1 <= len(listed) <= 10
