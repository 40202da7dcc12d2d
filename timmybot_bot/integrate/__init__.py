"""The public integration of TimmyBot into other hikari-lightbulb bots (see docs/integrate.md)."""
