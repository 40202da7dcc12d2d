"""TimmyBot on Discord: hikari's gateway bot with a lightbulb 3 client.

:func:`build_discord_bot` builds the bot over the composed services; ``await
bot.run()`` serves until ``bot.close()``. The slash commands build typed
commands and run them through the application layer. See ``docs/bot.md``.
"""

from timmybot_bot.discord.app import (
    CommandClientFailed,
    DiscordBot,
    build_discord_bot,
    build_lightbulb_client,
)

__all__ = ["CommandClientFailed", "DiscordBot", "build_discord_bot", "build_lightbulb_client"]
