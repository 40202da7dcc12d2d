"""The one strict ID type: every place that reads an ID refuses the same look-alikes."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from timmybot_bot.app.audit_query import AuditQueryError, parse_audit_query
from timmybot_bot.app.commands import Invocation
from timmybot_bot.cli.main import build_parser
from timmybot_bot.console.lines import run_command
from timmybot_bot.runtime import main as bot_main
from timmybot_bot.runtime.bootstrap import Settings, bootstrap
from timmybot_bot.runtime.settings import _VARIABLES, ConfigurationError
from timmybot_core import AuditKind, FakeClock
from timmybot_core.domain.snowflake import (
    MAX_SNOWFLAKE,
    SnowflakeError,
    check_snowflake,
    is_snowflake_text,
    parse_snowflake,
    parse_whole_number,
)

# Each of these was read as a number by str.isdigit()/int() somewhere, or is
# out of range: superscript two, mathematical monospace digits, Arabic-Indic
# digits, a leading zero, a sign, 2**64, whitespace and separators inside.
BAD_IDS = [
    "²",
    "𝟷𝟸𝟹",
    "١٢٣",
    "00123",
    "0",
    "-1",
    "+5",
    str(2**64),
    "1_000",
    "12 34",
    "123\n",
    "",
    "1e5",
    "0x10",
    "٣",
    "１２３",  # fullwidth digits
]
OWNER = 111_111_111_111_111_111
START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("bad", BAD_IDS)
def test_look_alike_and_out_of_range_ids_are_refused(bad: str) -> None:
    assert not is_snowflake_text(bad)
    with pytest.raises(SnowflakeError):
        parse_snowflake(bad)


@given(st.integers(min_value=1, max_value=MAX_SNOWFLAKE))
def test_every_id_round_trips_through_its_canonical_text(value: int) -> None:
    assert parse_snowflake(str(value)) == value
    assert is_snowflake_text(str(value))


@given(st.text(max_size=25))
def test_only_the_canonical_text_of_an_id_parses(text: str) -> None:
    try:
        value = parse_snowflake(text)
    except SnowflakeError:
        return
    assert str(value) == text  # never a different spelling of the same number


@pytest.mark.parametrize("bad", [True, "1", 1.0, None])
def test_stores_refuse_what_is_not_an_int(bad: object) -> None:
    with pytest.raises(TypeError):
        check_snowflake(bad)


@pytest.mark.parametrize("bad", [-1, 2**64])
def test_stores_refuse_out_of_range_ints(bad: int) -> None:
    with pytest.raises(SnowflakeError):
        check_snowflake(bad, allow_zero=True)
    assert check_snowflake(0, allow_zero=True) == 0
    with pytest.raises(SnowflakeError):
        check_snowflake(0)


@pytest.mark.parametrize("bad", ["²", "١", "-1", "1.5", " 1", "𝟷"])
def test_whole_numbers_are_ascii_digits_only(bad: str) -> None:
    with pytest.raises(SnowflakeError):
        parse_whole_number(bad)
    assert parse_whole_number("05") == 5


@pytest.mark.parametrize(
    "variable", ["TIMMYBOT_ALLOWED_GUILDS", "TIMMYBOT_OWNER_IDS", "TIMMYBOT_ADMIN_ROLE_IDS"]
)
@pytest.mark.parametrize("bad", [b for b in BAD_IDS if b and b == b.strip() and " " not in b])
def test_settings_refuse_bad_ids_naming_the_variable(variable: str, bad: str) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        Settings.from_env({variable: bad})


# "~0" and "~nobody-here": a path whose "~user" names no home made pathlib raise.
HOSTILE_VALUES = ["²", "١٢٣", "𝟷", "-1", "0", str(2**64), "9" * 400, "\x00", "1e9", "１"]
HOSTILE_VALUES += ["~0", "~nobody-here/x"]


def _parses_or_names(variable: str, value: str) -> None:
    problem: ConfigurationError | None = None
    try:
        Settings.from_env({variable: value})
    except ConfigurationError as error:
        problem = error
    # Any other exception propagates and fails the test.
    assert problem is None or variable in str(problem)


# A path: any text names a file; reading one is tested with the settings file.
READ_AS_TEXT = sorted(set(_VARIABLES) - {"TIMMYBOT_CONFIG_FILE"})


@pytest.mark.parametrize("variable", READ_AS_TEXT)
@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_every_setting_either_parses_or_names_itself(variable: str, value: str) -> None:
    # The rule: whatever the setting, a bad value is a ConfigurationError
    # naming it (exit status 2), never a traceback.
    _parses_or_names(variable, value)


@given(
    variable=st.sampled_from(sorted(set(_VARIABLES) - {"TIMMYBOT_CONFIG_FILE"})), value=st.text()
)
def test_no_setting_value_raises_anything_but_a_configuration_error(
    variable: str, value: str
) -> None:
    _parses_or_names(variable, value)


@pytest.mark.parametrize("bad", BAD_IDS)
def test_the_bot_command_line_refuses_bad_ids(bad: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        bot_main._snowflake(bad)


@pytest.mark.parametrize("bad", [b for b in BAD_IDS if b and b == b.strip()])
def test_the_admin_cli_refuses_bad_ids(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["guild", "allow", bad])
    assert done.value.code == 2
    assert "must be a Discord ID" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [b for b in BAD_IDS if b.strip() and " " not in b])
def test_audit_queries_refuse_bad_admin_ids(bad: str) -> None:
    with pytest.raises(AuditQueryError, match="admin"):
        parse_audit_query([f"admin:{bad}"], now=START)


@pytest.mark.parametrize("bad", ["𝟷𝟸𝟹", "²", "١٢٣", "00123", "-1", str(2**64)])
async def test_admin_guild_allow_refuses_look_alikes_and_audits_no_guild(bad: str) -> None:
    clock = FakeClock(START)
    services = bootstrap(Settings(backend="memory", owner_ids={OWNER}), clock=clock)
    try:
        reply = await run_command(
            services, Invocation(user_id=OWNER), "admin", f"guild allow {bad}"
        )
        assert "must be a Discord ID" in reply.text
        assert await services.access.list_allowed_guilds() == []
        assert not await services.access.is_guild_allowed(123)
        page = await services.audit.get_audit_history(
            START - timedelta(days=1), START + timedelta(days=1), kind=AuditKind.ADMIN
        )
        assert all(not r.resource.startswith("guild:") for r in page.records)
    finally:
        await services.aclose()


async def test_the_audit_resource_is_written_from_the_parsed_id() -> None:
    clock = FakeClock(START)
    services = bootstrap(Settings(backend="memory", owner_ids={OWNER}), clock=clock)
    try:
        await run_command(services, Invocation(user_id=OWNER), "admin", "guild allow 123")
        page = await services.audit.get_audit_history(
            START - timedelta(days=1), START + timedelta(days=1), kind=AuditKind.ADMIN
        )
        assert [r.resource for r in page.records] == ["guild:123"]
    finally:
        await services.aclose()


@pytest.mark.parametrize("bad", ["limit:²", "limit:١", "since:١h", "since:𝟷d", "until:٢m"])
def test_audit_query_numbers_are_ascii_digits(bad: str) -> None:
    with pytest.raises(AuditQueryError):
        parse_audit_query([bad], now=START)
