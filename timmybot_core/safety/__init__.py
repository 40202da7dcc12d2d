"""Input and output safety: validation, sanitizing, URLs, redaction and pseudonyms.

Pure functions and small classes over :mod:`timmybot_core.domain` (injection
shapes, text normalization, the Discord sanitizer, URL checks, secret redaction,
keyed pseudonyms); no I/O.
"""
