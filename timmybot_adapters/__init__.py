"""Adapters: implementations of the timmybot_core ports."""
