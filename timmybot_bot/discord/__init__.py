"""TimmyBot on Discord: hikari's gateway bot with a lightbulb 3 client.

Entry point for the runtime (``__main__``)::

    from timmybot_bot.discord import build_discord_bot

    bot = build_discord_bot(services, on_starting=start_web, on_stopping=stop_web)
    await bot.run()      # until bot.close() is called or the task is cancelled

- :func:`build_discord_bot` ``(services, *, on_starting=None, on_stopping=None)``
  builds a :class:`DiscordBot` from the composed :class:`~timmybot_bot.runtime.bootstrap.Services`
  (the token is ``services.settings.discord_token``; shards come from
  ``settings.shard_ids`` / ``settings.shard_count``). It connects nothing and
  raises :class:`~timmybot_bot.runtime.settings.ConfigurationError` for a missing or
  malformed token.
- ``on_starting`` and ``on_stopping`` are async callables without arguments.
  ``on_starting`` runs on hikari's ``StartingEvent``, before the shards
  connect (start the web server and the scheduler there); ``on_stopping``
  runs on ``StoppingEvent`` (stop them). If ``on_starting`` raises,
  ``run()`` closes the bot and raises the same exception.
- ``await DiscordBot.run()`` connects this process's shards and returns when
  the bot is closed; cancelling it closes the bot (``on_stopping`` runs).
  A token Discord refuses raises ``ConfigurationError``. ``await
  DiscordBot.close()`` disconnects (idempotent). Signal handling belongs to
  the caller (cancel the task or call ``close()``).
- ``services.aclose()`` stays the caller's job, after ``run()`` returned.

What it does: every slash command (``/link``, ``/linked``, ``/unlink``,
``/search``, ``/privacy ...``, ``/admin ...``) forwards to
:func:`~timmybot_bot.app.handlers.run_command` with the console's command line;
a lightbulb hook at the ``CHECKS`` step runs ``ServerAccessControl.check``
first; an error handler answers every failure with a short ephemeral text;
every message is sent with user, role and everyone mentions disabled.
See ``docs/bot.md``.
"""

from timmybot_bot.discord.app import DiscordBot, build_discord_bot, build_lightbulb_client

__all__ = ["DiscordBot", "build_discord_bot", "build_lightbulb_client"]
