"""The application layer: one typed command per use case, its handler, and the bus.

Discord, the offline console and ``timmybot-admin`` build commands from
their typed options and present the results; see ``docs/architecture.md``.
"""
