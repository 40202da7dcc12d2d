"""The JSON encoding of an incident's steps and snapshot, shared by every store.

It round-trips exactly: besides JSON's own types it keeps tuples apart from
lists, and carries aware or naive datetimes, timedeltas and the core's
enums (:class:`Severity`, :class:`Switch`) as tagged objects. Any other type
is refused with ``TypeError`` when encoding, rather than stored as
something that reads back different.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from timmybot_core.domain.severity import Severity
from timmybot_core.domain.switches import Switch

__all__ = ["dumps_incident_data", "loads_incident_data"]

# A JSON object with this key is a tagged value; a stored mapping that has
# the key itself is wrapped in a "map" tag so it cannot be mistaken for one.
_TAG: Final = "$t"
_ENUMS: Final[dict[str, type[enum.Enum]]] = {"Severity": Severity, "Switch": Switch}
_PLAIN: Final = (str, int, float, bool, type(None))


def _encode(value: object) -> Any:
    # Exact type checks: a StrEnum is a str and a bool an int, and json would
    # flatten an unregistered subclass into its base type silently.
    if type(value) in _PLAIN:
        return value
    if isinstance(value, enum.Enum) and _ENUMS.get(type(value).__name__) is type(value):
        return {_TAG: "enum", "class": type(value).__name__, "value": value.value}
    if type(value) is datetime:
        return {_TAG: "datetime", "value": value.isoformat()}
    if type(value) is timedelta:
        return {_TAG: "timedelta", "value": value // timedelta(microseconds=1)}
    if type(value) is list:
        return [_encode(item) for item in value]
    if type(value) is tuple:
        return {_TAG: "tuple", "value": [_encode(item) for item in value]}
    if isinstance(value, Mapping):
        encoded: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(
                    f"incident data mappings need str keys, not {type(key).__qualname__}"
                )
            encoded[key] = _encode(item)
        return {_TAG: "map", "value": encoded} if _TAG in encoded else encoded
    raise TypeError(f"incident data cannot hold a value of type {type(value).__qualname__}")


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(_TAG)
    if tag is None:
        return {key: _decode(item) for key, item in value.items()}
    if tag == "map":
        return {key: _decode(item) for key, item in value["value"].items()}
    if tag == "tuple":
        return tuple(_decode(item) for item in value["value"])
    if tag == "datetime":
        return datetime.fromisoformat(value["value"])
    if tag == "timedelta":
        return timedelta(microseconds=value["value"])
    if tag == "enum":
        return _ENUMS[value["class"]](value["value"])
    raise ValueError("unknown tag in stored incident data")


def dumps_incident_data(value: object) -> str:
    """Return ``value`` (steps or a snapshot) as JSON text.

    Raises ``TypeError`` for a value that would not read back the same.
    """
    return json.dumps(_encode(value), ensure_ascii=False, separators=(",", ":"))


def loads_incident_data(text: str) -> Any:
    """Parse :func:`dumps_incident_data`'s output back into the same value.

    Raises ``ValueError`` (or ``KeyError``/``TypeError`` for a damaged tag).
    """
    return _decode(json.loads(text))
