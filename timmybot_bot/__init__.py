"""timmybot_bot: the TimmyBot application that composes the core and its adapters."""
