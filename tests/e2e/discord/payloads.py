"""Discord-shaped JSON for interactions and REST answers (API v10 field names)."""

from __future__ import annotations

import base64
import itertools
from typing import Any

APPLICATION = 424_242_424_242_424_242
CHANNEL = 606_060_606_060_606_060
TOKEN = base64.b64encode(str(APPLICATION).encode()).decode().rstrip("=") + ".fake.not-a-real-token"

_ids = itertools.count(700_000_000_000_000_000)


def user(user_id: int) -> dict[str, Any]:
    return {
        "id": str(user_id),
        "username": f"user{user_id % 10_000}",
        "discriminator": "0",
        "global_name": None,
        "avatar": None,
        "bot": False,
        "public_flags": 0,
    }


def application() -> dict[str, Any]:
    return {
        "id": str(APPLICATION),
        "name": "TimmyBot",
        "icon": None,
        "description": "",
        "bot_public": False,
        "bot_require_code_grant": False,
        "verify_key": "0" * 64,
        "flags": 0,
        "owner": user(1),
        "team": None,
        "integration_types_config": {"0": {}},
        "approximate_guild_count": 1,
        "approximate_user_install_count": 0,
    }


def dm_channel(channel_id: int, user_id: int) -> dict[str, Any]:
    return {
        "id": str(channel_id),
        "type": 1,
        "last_message_id": None,
        "recipients": [user(user_id)],
    }


def message(message_id: str, channel_id: int, content: str) -> dict[str, Any]:
    return {
        "id": message_id,
        "channel_id": str(channel_id),
        "author": user(APPLICATION) | {"bot": True},
        "content": content,
        "timestamp": "2026-11-26T12:00:00.000000+00:00",
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "type": 0,
        "flags": 0,
        "components": [],
    }


def string(name: str, value: str) -> dict[str, Any]:
    return {"type": 3, "name": name, "value": value}


def integer(name: str, value: int) -> dict[str, Any]:
    return {"type": 4, "name": name, "value": value}


def sub(name: str, *options: dict[str, Any]) -> dict[str, Any]:
    """A subcommand (type 1) or, when it holds subcommands, a group (type 2)."""
    kind = 2 if options and all(option["type"] == 1 for option in options) else 1
    return {"type": kind, "name": name, "options": list(options)}


def _where(user_id: int, guild_id: int | None, role_ids: tuple[int, ...]) -> dict[str, Any]:
    if guild_id is None:
        return {
            "user": user(user_id),
            "context": 1,
            "authorizing_integration_owners": {"0": str(APPLICATION)},
            "channel": {"id": str(CHANNEL), "type": 1},
            "channel_id": str(CHANNEL),
        }
    return {
        "guild_id": str(guild_id),
        "guild_locale": "en-US",
        "member": {
            "user": user(user_id),
            "roles": [str(role) for role in role_ids],
            "joined_at": "2025-01-01T00:00:00.000000+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
            "permissions": "0",
        },
        "context": 0,
        "authorizing_integration_owners": {"0": str(guild_id)},
        "channel": {"id": str(CHANNEL), "type": 0, "name": "music", "permissions": "0"},
        "channel_id": str(CHANNEL),
    }


def command(
    name: str,
    *options: dict[str, Any],
    user_id: int,
    guild_id: int | None,
    role_ids: tuple[int, ...] = (),
) -> dict[str, Any]:
    """A slash command interaction (type 2) for a global command."""
    interaction_id = next(_ids)
    return {
        "id": str(interaction_id),
        "application_id": str(APPLICATION),
        "type": 2,
        "token": f"interaction-token-{interaction_id}",
        "version": 1,
        "locale": "en-US",
        "app_permissions": "0",
        "entitlements": [],
        "attachment_size_limit": 10_485_760,
        "data": {"id": "800000000000000001", "name": name, "type": 1, "options": list(options)},
        **_where(user_id, guild_id, role_ids),
    }


def button_press(
    custom_id: str,
    *,
    message_id: str,
    user_id: int,
    guild_id: int | None,
    role_ids: tuple[int, ...] = (),
) -> dict[str, Any]:
    """A button press (message component interaction, type 3) on one of the bot's messages."""
    interaction_id = next(_ids)
    return {
        "id": str(interaction_id),
        "application_id": str(APPLICATION),
        "type": 3,
        "token": f"interaction-token-{interaction_id}",
        "version": 1,
        "locale": "en-US",
        "app_permissions": "0",
        "entitlements": [],
        "attachment_size_limit": 10_485_760,
        "data": {"custom_id": custom_id, "component_type": 2},
        "message": message(message_id, CHANNEL, ""),
        **_where(user_id, guild_id, role_ids),
    }
