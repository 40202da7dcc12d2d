"""timmybot_core: the security layer of TimmyBot, importable by any bot.

Pure Python (the standard library and attrs): input validation, response
sanitization for Discord, keyed pseudonymization, and the ports and
services that the adapters and the bot build on.

    from timmybot_core import InputValidator, ResponseSanitizer

    result = InputValidator().validate_search_query(user_text)
    if result.ok:
        search(result.value)
    else:
        reply(result.error)
"""

from __future__ import annotations

from timmybot_core.clock import Clock, FakeClock, SystemClock
from timmybot_core.errors import TimmyBotError
from timmybot_core.pseudonymizer import MIN_KEY_BYTES, Pseudonymizer, PseudonymKind
from timmybot_core.sanitizer import DiscordLimits, ResponseSanitizer, TrackInfo
from timmybot_core.urls import MAX_URL_LENGTH, safe_url
from timmybot_core.validation import InputValidator, ValidationPolicy, ValidationResult

__all__ = [
    "MAX_URL_LENGTH",
    "MIN_KEY_BYTES",
    "Clock",
    "DiscordLimits",
    "FakeClock",
    "InputValidator",
    "PseudonymKind",
    "Pseudonymizer",
    "ResponseSanitizer",
    "SystemClock",
    "TimmyBotError",
    "TrackInfo",
    "ValidationPolicy",
    "ValidationResult",
    "safe_url",
]

__version__ = "0.1.0"
