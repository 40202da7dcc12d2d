"""The offline console: the bot's commands on a terminal, without Discord.

It reads lines shaped like slash commands (``/search Drop It Like It's Hot``)
and prints the reply the bot would send, so every command can be tried on a
machine with no Discord token and no network.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from timmybot_bot.app.commands import Invocation
from timmybot_bot.app.replies import Confirmation, Reply
from timmybot_bot.console.lines import COMMANDS, run_command
from timmybot_bot.runtime.bootstrap import Services

__all__ = ["OfflineConsole"]

PROMPT = "timmybot> "
CONFIRM_PROMPT = "Type yes to confirm (anything else cancels):"
_QUIT = frozenset({"quit", "exit"})
LOCAL_OPERATOR = Invocation(
    user_id=0, guild_id=None, trusted_operator=True, source="console", at_terminal=True
)


class OfflineConsole:
    """Reads command lines from ``stdin`` and writes replies to ``stdout``.

    ``invocation`` is who the commands run as: by default the local operator,
    whom the access guard does not stop (they run the machine); pass an
    explicit guild and user to see what that user would get.
    """

    def __init__(
        self,
        services: Services,
        *,
        invocation: Invocation = LOCAL_OPERATOR,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        interactive: bool | None = None,
    ) -> None:
        self._services = services
        self._invocation = invocation
        self._stdin = stdin if stdin is not None else sys.stdin
        self._stdout = stdout if stdout is not None else sys.stdout
        self._interactive = self._stdin.isatty() if interactive is None else interactive
        # A destructive step waiting for the next input line to say "yes".
        self._pending: Confirmation | None = None

    def help_text(self) -> str:
        """Return the ``/help`` reply: every command with its usage."""
        rows = [(command.usage, command.summary) for command in COMMANDS]
        rows += [("/help", "list the commands"), ("/quit", "leave (end of input works too)")]
        width = max(len(usage) for usage, _ in rows)
        return "Commands:\n" + "\n".join(
            f"  {usage:<{width}}  {summary}" for usage, summary in rows
        )

    async def handle_line(self, line: str) -> str | None:
        """Run one command line and return the reply; ``None`` means quit.

        A reply that asks for confirmation makes the *next* line the answer:
        only ``yes`` runs the step, anything else cancels it.
        """
        if self._pending is not None:
            return await self._answer(line)
        text = line.strip()
        if not text:
            return ""
        if not text.startswith("/"):
            return "Commands start with '/'. Type /help for the list."
        head, _, rest = text.partition(" ")
        name = head[1:].lower()
        if name in _QUIT:
            return None
        if name == "help":
            return self.help_text()
        reply = await run_command(self._services, self._invocation, name, rest)
        return self._render(reply)

    def _render(self, reply: Reply) -> str:
        """Return what the terminal shows: the text, an attachment's content, a question."""
        if reply.quiet:
            return ""  # a repeated rate-limit refusal: the member was told once already
        parts = [reply.text]
        if reply.attachment is not None:
            # The console is local: the file's content (the export's JSON) is printed.
            parts.append(reply.attachment.content.decode("utf-8", errors="replace"))
        if reply.confirmation is not None:
            self._pending = reply.confirmation
            parts.append(f"{reply.confirmation.prompt} {CONFIRM_PROMPT}")
        return "\n".join(part for part in parts if part)

    async def _answer(self, line: str) -> str:
        confirmation, self._pending = self._pending, None
        if confirmation is None or line.strip().lower() != "yes":
            return "Cancelled: nothing was changed."
        return self._render(await confirmation.action())

    async def run(self) -> int:
        """Serve until ``/quit`` or end of input; return the exit status (0)."""
        if self._interactive:
            self._write("TimmyBot offline console. Type /help for the commands, /quit to leave.")
        loop = asyncio.get_running_loop()
        while True:
            if self._interactive:
                self._stdout.write(PROMPT)
                self._stdout.flush()
            # Reading stdin blocks; keep the event loop free for the services.
            line = await loop.run_in_executor(None, self._stdin.readline)
            if not line:
                if self._interactive:
                    self._write("")
                return 0
            reply = await self.handle_line(line)
            if reply is None:
                return 0
            if reply:
                self._write(reply)

    def _write(self, text: str) -> None:
        self._stdout.write(text + "\n")
        self._stdout.flush()
