"""What a token rotation loses under faults: stops, crashes, late answers, skewed clocks.

Run ``.venv/bin/python bench/faults.py`` (``--quick`` for a short run,
``--json`` for the figures as a JSON list). The table goes to stdout; there
is no pass/fail, the exit status is 0 unless a scenario could not run.

Every scenario runs real processes against one ``DemoOAuthProvider`` served
by this script on 127.0.0.1 (so this script sees every refresh token
presented, and when each answer was sent). The bot processes use the
embedded SQLite backend in a fresh data directory, with
``TIMMYBOT_OAUTH_TIMEOUT=1`` and ``TIMMYBOT_TOKEN_CLAIM_TIMEOUT=7`` (the
smallest the start-up check accepts), so claims and timeouts play out in
seconds. Users are linked the legitimate way before each trial
(authorization code with PKCE against the provider, auto-approved), their
tokens stored through the bot's own composition root (``bootstrap``); the
provider's access tokens live one hour, so a rotation (window 24 h)
refreshes every user. The provider rotates refresh tokens and revokes the
grant when a spent one comes back, like Discord (``refresh_retry_safe`` is
false for it).

``sigterm-rotation``
    ``python -m timmybot_bot --demo-provider-url URL`` (the real entry point,
    console mode, stdin left open) with its rotation job owed at start. The
    provider rotates first and answers 500 ms later (``answer_delay``).
    SIGTERM comes once some refreshes are in flight (a random count of the
    provider's refresh calls). The process must drain them and exit 0.
``sigkill-rotation``
    The same entry point, answer 200 ms late, SIGKILL at a random moment of
    the rotation. Then a second process (``bench/faults.py --worker``,
    ``bootstrap`` and ``TokenRotationService.rotate_expiring``, as the next
    scheduled run would) rotates again: it finds the dead process's claims,
    waits them out on its own monotonic clock and, as the provider's preset
    says reuse is unsafe, marks those links "needs re-link" instead of
    presenting their tokens again.
``timeout-after-rotation``
    The entry point again, the provider rotating and then holding every
    answer past the client's 1 s timeout (``answer_after_timeout``). A
    second process then rotates again with the provider healthy.
``clock-skew``
    Two worker processes rotate the same vault at the same moment, one with
    its wall clock 40 s ahead (``bootstrap(clock=...)``); answers 300 ms
    late, so each sees the other's claims.

Columns: ``lost`` counts users whose stored refresh token no longer works at
the provider or whose link needs re-linking at the end; ``presented_twice``
users one of whose refresh tokens the provider received more than once;
``lost_after_answer`` lost users whose provider answer had been sent more
than ``ANSWER_READ_MARGIN`` (100 ms) before the kill, i.e. had been read by
the bot (loopback delivers in well under a millisecond; the margin covers a
loaded machine's scheduling). ``in flight`` counts refreshes the provider
had received but not yet answered at the signal. ``window`` is the round
trip a crash can cut: from the claim to the vault write, dominated by the
provider's late answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from run import print_table
from timmybot_adapters.oauth import AiohttpOAuthClient
from timmybot_bot.demo.provider import DemoOAuthProvider, demo_provider_config
from timmybot_bot.runtime.bootstrap import Services, bootstrap
from timmybot_bot.runtime.scheduler import JOB_ROTATION
from timmybot_bot.runtime.settings import Settings
from timmybot_core import OAuthTokens, PlatformLink, SystemClock, UserTokens
from tokens import REDIRECT_URI, issue_tokens

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parents[1]
PLATFORM = "demo"
FIRST_USER = 200_000_000_000_000_000
ANSWER_READ_MARGIN = 0.1
OAUTH_TIMEOUT_S = 1
CLAIM_TIMEOUT_S = 7
SKEW = timedelta(seconds=40)


@dataclass
class Outcome:
    """The figures of one scenario, summed over its trials."""

    scenario: str
    trials: int = 0
    users: int = 0
    lost: int = 0
    presented_twice: int = 0
    lost_after_answer: int = 0
    in_flight: int = 0
    window_ms: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        """The acceptance's shape: exactly these six keys."""
        return {
            "scenario": self.scenario,
            "trials": self.trials,
            "users": self.users,
            "lost": self.lost,
            "presented_twice": self.presented_twice,
            "lost_after_answer": self.lost_after_answer,
        }


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SkewedClock(SystemClock):
    """The system clock, shifted: a host whose clock is off."""

    def __init__(self, offset: timedelta) -> None:
        self._offset = offset

    def now(self) -> datetime:
        """Return the shifted time."""
        return super().now() + self._offset


@dataclass
class Trial:
    """One data directory, one provider, the users linked for it."""

    directory: Path
    provider: DemoOAuthProvider
    env: dict[str, str]
    first_tokens: dict[int, str] = field(default_factory=dict)
    logs: list[Path] = field(default_factory=list)

    @classmethod
    async def create(cls, directory: Path) -> Trial:
        """Start a provider and prepare the bot's environment."""
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIMMYBOT_")}
        env.pop("DISCORD_TOKEN", None)
        env.update(
            TIMMYBOT_BACKEND="sqlite",
            TIMMYBOT_DATA_DIR=str(directory / "var"),
            TIMMYBOT_WEB_PORT=str(port),
            TIMMYBOT_ROTATION_SCHEDULE="* * * * *",
            TIMMYBOT_OAUTH_TIMEOUT=str(OAUTH_TIMEOUT_S),
            TIMMYBOT_TOKEN_CLAIM_TIMEOUT=str(CLAIM_TIMEOUT_S),
            TIMMYBOT_LOG_LEVEL="WARNING",
            PYTHONPATH=str(ROOT),
        )
        settings = Settings.from_env(env)
        provider = DemoOAuthProvider(
            redirect_uris=[settings.redirect_uri, REDIRECT_URI], auto_approve=True
        )
        await provider.start()
        return cls(directory=directory, provider=provider, env=env)

    @property
    def settings(self) -> Settings:
        """The bot's settings, as the processes read them."""
        return Settings.from_env(self.env)

    def services(self, clock: SystemClock | None = None) -> Services:
        """The composition root on the trial's data directory."""
        config = demo_provider_config(self.provider.base_url, self.settings.redirect_uri)
        return bootstrap(self.settings, clock=clock, extra_providers=[config])

    async def seed(self, users: int, *, rotation_owed: bool) -> None:
        """Link ``users`` users through the provider; make the rotation job owed at start."""
        client = AiohttpOAuthClient([self.provider.oauth_provider(PLATFORM)])
        try:
            async with aiohttp.ClientSession() as http:
                issued = await issue_tokens(client, http, users)
        finally:
            await client.close()
        services = self.services()
        try:
            await services.open()
            now = services.clock.now()
            for offset, tokens in enumerate(issued):
                user_id = FIRST_USER + offset
                record = UserTokens.new(user_id, now=now).with_link(
                    PlatformLink(tokens=tokens, linked_at=now), now=now
                )
                await services.vault.put(user_id, record, expected_version=None)
                self.first_tokens[user_id] = tokens.refresh_token or ""
            if rotation_owed:
                await services.access_store.record_job_run(JOB_ROTATION, now - timedelta(days=1))
        finally:
            await services.aclose()

    async def bot(self) -> asyncio.subprocess.Process:
        """Start ``python -m timmybot_bot`` on the trial (console mode, stdin open)."""
        log = self.directory / f"bot-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as stderr:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "timmybot_bot",
                "--demo-provider-url",
                self.provider.base_url,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
                env=self.env,
                cwd=ROOT,
            )

    async def worker(self, skew: float = 0.0) -> asyncio.subprocess.Process:
        """Start a rotation worker process (``--worker``) on the trial."""
        log = self.directory / f"worker-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as stderr:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                str(SCRIPT),
                "--worker",
                self.provider.base_url,
                "--skew",
                str(skew),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
                env=self.env,
                cwd=ROOT,
            )

    async def rotation_recorded(self, since: datetime, wait: float) -> bool:
        """Wait until the rotation job has recorded a run at or after ``since``."""
        services = self.services()
        try:
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                last = await services.access_store.last_job_run(JOB_ROTATION)
                if last is not None and last >= since:
                    return True
                await asyncio.sleep(0.1)
            return False
        finally:
            await services.aclose()

    async def refresh_calls_reach(self, count: int, wait: float) -> bool:
        """Wait until the provider has received ``count`` refresh calls."""
        deadline = time.monotonic() + wait
        while self.provider.refresh_calls < count:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    def in_flight(self) -> int:
        """Refreshes received by the provider and not answered yet."""
        presented = set(self.provider.presented_refresh_tokens)
        return sum(1 for token in presented if self.provider.answered_at(token) is None)

    async def count(self, outcome: Outcome, *, killed_at: float | None = None) -> None:
        """Add this trial's users, losses and double presentations to ``outcome``."""
        services = self.services()
        lost: list[int] = []
        try:
            for user_id in self.first_tokens:
                record = await services.vault.get(user_id)
                link = record.link(PLATFORM) if record is not None else None
                token = link.tokens.refresh_token if link is not None else None
                if (
                    link is None
                    or link.needs_relink
                    or not token
                    or not self.provider.is_valid_refresh_token(token)
                ):
                    lost.append(user_id)
        finally:
            await services.aclose()
        twice = self.provider.presented_twice
        outcome.trials += 1
        outcome.users += len(self.first_tokens)
        outcome.lost += len(lost)
        outcome.presented_twice += len(twice)
        if killed_at is not None:
            for user_id in lost:
                answered = self.provider.answered_at(self.first_tokens[user_id])
                if answered is not None and answered < killed_at - ANSWER_READ_MARGIN:
                    outcome.lost_after_answer += 1

    async def close(self) -> None:
        """Stop the provider."""
        await self.provider.stop()


async def finish(process: asyncio.subprocess.Process, wait: float) -> int:
    """Wait for ``process`` to exit (kill it after ``wait`` seconds); return its status."""
    try:
        return await asyncio.wait_for(process.wait(), wait)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        return -9


async def started_rotating(trial: Trial, process: asyncio.subprocess.Process) -> None:
    """Wait for the bot's first refresh call; fail with its log if it died."""
    for _ in range(600):
        if trial.provider.refresh_calls > 0:
            return
        if process.returncode is not None:
            break
        await asyncio.sleep(0.05)
    log = trial.logs[-1].read_text(errors="replace")[-2000:]
    raise RuntimeError(f"the bot never started rotating:\n{log}")


# -- scenarios ------------------------------------------------------------------


async def sigterm_rotation(base: Path, trials: int, users: int) -> Outcome:
    """SIGTERM to the entry point while refreshes are in flight."""
    outcome = Outcome("sigterm-rotation", window_ms=500)
    for number in range(trials):
        trial = await Trial.create(base / f"sigterm-{number}")
        try:
            await trial.seed(users, rotation_owed=True)
            trial.provider.faults.answer_delay = 0.5
            process = await trial.bot()
            await started_rotating(trial, process)
            await trial.refresh_calls_reach(random.randint(1, users // 2), wait=30)
            outcome.in_flight += trial.in_flight()
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            status = await finish(process, wait=30)
            took = time.monotonic() - signalled
            outcome.notes.append(f"exit {status} after {took:.2f} s")
            await trial.count(outcome, killed_at=signalled)
        finally:
            await trial.close()
    return outcome


async def sigkill_rotation(base: Path, trials: int, users: int) -> Outcome:
    """SIGKILL at a random moment of a rotation, then the next rotation in a new process."""
    outcome = Outcome("sigkill-rotation", window_ms=200)
    rounds = -(-users // 16)
    for number in range(trials):
        trial = await Trial.create(base / f"sigkill-{number}")
        try:
            await trial.seed(users, rotation_owed=True)
            trial.provider.faults.answer_delay = 0.2
            process = await trial.bot()
            await started_rotating(trial, process)
            await asyncio.sleep(random.uniform(0, rounds * 0.2))
            outcome.in_flight += trial.in_flight()
            killed = time.monotonic()
            process.kill()
            await process.wait()
            restart = await trial.worker()
            await finish(restart, wait=60)
            await trial.count(outcome, killed_at=killed)
        finally:
            await trial.close()
    return outcome


async def timeout_after_rotation(base: Path, trials: int, users: int) -> Outcome:
    """Every answer arrives after the client's timeout; then a healthy rotation."""
    outcome = Outcome("timeout-after-rotation", window_ms=OAUTH_TIMEOUT_S * 1000)
    for number in range(trials):
        trial = await Trial.create(base / f"timeout-{number}")
        try:
            await trial.seed(users, rotation_owed=True)
            trial.provider.faults.answer_after_timeout = "always"
            started = datetime.now(UTC).replace(second=0, microsecond=0)
            process = await trial.bot()
            await started_rotating(trial, process)
            recorded = await trial.rotation_recorded(started, wait=60)
            process.send_signal(signal.SIGTERM)
            await finish(process, wait=30)
            trial.provider.faults.reset()
            again = await trial.worker()
            await finish(again, wait=60)
            if not recorded:
                outcome.notes.append("the first rotation did not finish in time")
            await trial.count(outcome)
        finally:
            await trial.close()
    return outcome


async def clock_skew(base: Path, trials: int, users: int) -> Outcome:
    """Two processes, clocks 40 s apart, rotating the same vault at once."""
    outcome = Outcome("clock-skew", window_ms=300)
    for number in range(trials):
        trial = await Trial.create(base / f"skew-{number}")
        try:
            await trial.seed(users, rotation_owed=False)
            trial.provider.faults.answer_delay = 0.3
            first = await trial.worker(0.0)
            second = await trial.worker(SKEW.total_seconds())
            await asyncio.gather(finish(first, 60), finish(second, 60))
            await trial.count(outcome)
        finally:
            await trial.close()
    return outcome


# -- the window ------------------------------------------------------------------


class TimedClient(AiohttpOAuthClient):
    """The real client, noting when each refresh's answer has been read."""

    answered: dict[str, float]

    async def refresh(self, platform: str, *, refresh_token: str) -> OAuthTokens:
        """Refresh, then note the moment the answer was parsed."""
        fresh = await super().refresh(platform, refresh_token=refresh_token)
        self.answered[refresh_token] = time.perf_counter()
        return fresh


@dataclass
class Window:
    """Per refresh: claim written -> answer read -> new tokens durable, in milliseconds."""

    answer_to_write: list[float]
    claim_to_write: list[float]


async def measure_window(base: Path, users: int, answer_delay: float) -> Window:
    """Rotate ``users`` through the bot's composition root (SQLite, audit trail and all).

    The client notes when it has read each answer; the vault's ``put`` notes
    when each claim and each final write returned. What a crash can cut is
    claim -> write; what a crash *after the answer* can cut is answer -> write.
    """
    trial = await Trial.create(base / "window")
    try:
        await trial.seed(users, rotation_owed=False)
        trial.provider.faults.answer_delay = answer_delay
        settings = trial.settings
        client = TimedClient(
            [demo_provider_config(trial.provider.base_url, settings.redirect_uri)],
            timeout=settings.oauth_timeout,
        )
        client.answered = {}
        services = bootstrap(settings, oauth=client)
        claimed: dict[int, float] = {}
        written: dict[int, float] = {}
        put = services.vault.put

        async def timed_put(
            user_id: int, record: UserTokens, *, expected_version: str | None
        ) -> str:
            version = await put(user_id, record, expected_version=expected_version)
            link = record.link(PLATFORM)
            if link is not None and link.refresh_claim is not None:
                claimed.setdefault(user_id, time.perf_counter())
            elif link is not None and link.refreshed_at is not None:
                written.setdefault(user_id, time.perf_counter())
            return version

        services.vault.put = timed_put  # type: ignore[method-assign]
        try:
            await services.open()
            await services.rotation.rotate_expiring()
        finally:
            await services.aclose()
            await client.close()  # given to bootstrap, so not among its closers
        answer_to_write, claim_to_write = [], []
        for user_id, token in trial.first_tokens.items():
            if user_id in written and token in client.answered:
                answer_to_write.append((written[user_id] - client.answered[token]) * 1000)
                claim_to_write.append((written[user_id] - claimed[user_id]) * 1000)
        return Window(answer_to_write=answer_to_write, claim_to_write=claim_to_write)
    finally:
        await trial.close()


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# -- the worker process ---------------------------------------------------------------


async def work(provider_url: str, skew: float) -> int:
    """One rotation run in this process, on the clock ``skew`` seconds off."""
    settings = Settings.from_env()
    clock = SkewedClock(timedelta(seconds=skew)) if skew else SystemClock()
    config = demo_provider_config(provider_url, settings.redirect_uri)
    services = bootstrap(settings, clock=clock, extra_providers=[config])
    try:
        await services.open()
        report = await services.rotation.rotate_expiring()
        print(json.dumps(report.as_dict()), file=sys.stderr)
    finally:
        await services.aclose()
    return 0


# -- main --------------------------------------------------------------------------


def print_window(window: Window, users: int, answer_delay: float) -> None:
    """Table 2: how long a crash can cut a refresh."""
    rows = []
    for name, values in (
        ("answer read -> tokens durable", window.answer_to_write),
        ("claim written -> tokens durable", window.claim_to_write),
    ):
        rows.append(
            [
                name,
                str(len(values)),
                f"{percentile(values, 0.5):.2f}",
                f"{percentile(values, 0.99):.2f}",
                f"{max(values):.2f}",
            ]
        )
    print_table(
        f"Table 2: the window a crash can cut, per refresh, milliseconds ({users} users, "
        f"concurrency 16, SQLite vault with the audit trail, answer {answer_delay * 1000:.0f} ms "
        "late)",
        ["window", "refreshes", "median", "p99", "max"],
        rows,
    )


def print_outcomes(outcomes: Sequence[Outcome], quick: bool) -> None:
    """The table and its notes."""
    print_table(
        "Refresh tokens under faults: real processes against the demo provider on 127.0.0.1"
        + (" [--quick]" if quick else ""),
        [
            "scenario",
            "trials",
            "users",
            "lost",
            "window",
            "in flight",
            "presented_twice",
            "lost_after_answer",
        ],
        [
            [
                o.scenario,
                str(o.trials),
                str(o.users),
                str(o.lost),
                f"{o.window_ms:.0f} ms",
                str(o.in_flight),
                str(o.presented_twice),
                str(o.lost_after_answer),
            ]
            for o in outcomes
        ],
    )
    for o in outcomes:
        if o.notes:
            print(f"{o.scenario}: " + "; ".join(o.notes))


async def run_all(quick: bool, directory: Path) -> list[Outcome]:
    """Every scenario, in order."""
    if quick:
        plan = (
            (sigterm_rotation, 2, 48),
            (sigkill_rotation, 4, 80),
            (timeout_after_rotation, 1, 16),
            (clock_skew, 2, 32),
        )
    else:
        plan = (
            (sigterm_rotation, 5, 48),
            (sigkill_rotation, 12, 80),
            (timeout_after_rotation, 3, 16),
            (clock_skew, 5, 32),
        )
    return [await scenario(directory, trials, users) for scenario, trials, users in plan]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenarios, print the table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials (under 4 minutes)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--worker", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--skew", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return asyncio.run(work(args.worker, args.skew))
    started = time.perf_counter()
    window_users = 80 if args.quick else 400
    with tempfile.TemporaryDirectory(prefix="timmybot-faults-") as directory:
        outcomes = asyncio.run(run_all(args.quick, Path(directory)))
        window = None
        if not args.json:
            window = asyncio.run(measure_window(Path(directory), window_users, 0.2))
    if args.json:
        print(json.dumps([o.as_json() for o in outcomes]))
    else:
        print_outcomes(outcomes, args.quick)
        print()
        if window is not None:
            print_window(window, window_users, 0.2)
        print(f"Fault bench time: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
