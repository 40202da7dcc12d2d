"""The offline console: the bot's commands on a terminal, without Discord."""
