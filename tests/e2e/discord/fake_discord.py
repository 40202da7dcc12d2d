"""Discord, as far as the bot's REST calls can tell: the hikari boundary, recorded.

``FakeDiscord.install`` replaces ``RESTClientImpl._request`` (the one method
every hikari REST call goes through just before HTTP) with an in-memory
Discord that records each request and answers with Discord-shaped JSON. It
also records the mention arguments the bot passed to the public REST methods
that send messages, so tests can assert both what the bot asked for and
what would have gone over the wire.

Interactions are built from Discord-shaped JSON and deserialized by hikari's
own entity factory (``payloads.py``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import attrs
import hikari
import pytest
from hikari.impl.rest import RESTClientImpl

from tests.e2e.discord import payloads

# The public REST methods through which a message is created or edited.
MESSAGE_METHODS = (
    "create_interaction_response",
    "execute_webhook",
    "edit_interaction_response",
    "edit_webhook_message",
    "create_message",
)


@attrs.define
class Sent:
    """One HTTP request the bot made to Discord."""

    method: str
    path: str
    body: dict[str, Any]
    files: list[tuple[str, bytes]] = attrs.Factory(list)

    @property
    def message(self) -> dict[str, Any]:
        """The message part of the body (interaction callbacks nest it under ``data``)."""
        if "/callback" in self.path:
            data: dict[str, Any] = self.body.get("data") or {}
            return data
        return self.body

    @property
    def kind(self) -> str:
        """What the request does, in Discord's terms."""
        if "/callback" in self.path:
            return {
                4: "reply",
                5: "defer",
                6: "defer-update",
                7: "update",
            }.get(self.body["type"], str(self.body["type"]))
        if self.path.startswith("/channels/") and self.method == "POST":
            return "dm-message"
        if self.path == "/users/@me/channels":
            return "open-dm"
        if self.path.startswith("/webhooks/") and self.method == "POST":
            return "followup"
        if self.path.startswith("/webhooks/") and self.method == "PATCH":
            return "edit"
        return f"{self.method} {self.path}"

    @property
    def content(self) -> str | None:
        """The message text, if the request carries one."""
        value = self.message.get("content")
        return None if value is None else str(value)

    @property
    def ephemeral(self) -> bool:
        """Whether the message is flagged ephemeral."""
        return bool(int(self.message.get("flags") or 0) & int(hikari.MessageFlag.EPHEMERAL))

    @property
    def custom_ids(self) -> list[str]:
        """The custom IDs of the buttons in the message, in order."""
        return [
            component["custom_id"]
            for row in self.message.get("components") or []
            for component in row.get("components", [])
            if "custom_id" in component
        ]

    @property
    def button_labels(self) -> list[str]:
        """The labels of the buttons in the message, in order."""
        return [
            component.get("label", "")
            for row in self.message.get("components") or []
            for component in row.get("components", [])
        ]


class FakeDiscord:
    """Records the bot's REST requests and answers them like Discord would."""

    def __init__(self) -> None:
        self.requests: list[Sent] = []
        self.history: list[Sent] = []
        self.mention_arguments: list[tuple[str, dict[str, Any]]] = []
        self.closed_dms: set[int] = set()
        self.failing_paths: list[str] = []
        self.refuse_token = False
        self._dm_channels: dict[int, int] = {}
        self._next_id = 900_000_000_000_000_000

    # -- installation --------------------------------------------------------

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Route every hikari REST request of this test to this fake."""
        fake = self

        async def request(
            _rest: RESTClientImpl,
            compiled_route: Any,
            *,
            query: Any = None,
            form_builder: Any = None,
            json: Any = None,
            reason: Any = hikari.UNDEFINED,
            auth: Any = hikari.UNDEFINED,
        ) -> Any:
            return fake._answer(compiled_route, json, form_builder)

        monkeypatch.setattr(RESTClientImpl, "_request", request)
        for name in MESSAGE_METHODS:
            monkeypatch.setattr(
                RESTClientImpl, name, self._spy(name, getattr(RESTClientImpl, name))
            )

    def _spy(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        async def spy(rest: RESTClientImpl, *args: Any, **kwargs: Any) -> Any:
            self.mention_arguments.append(
                (
                    name,
                    {
                        key: kwargs.get(key, hikari.UNDEFINED)
                        for key in ("user_mentions", "role_mentions", "mentions_everyone")
                    },
                )
            )
            return await method(rest, *args, **kwargs)

        return spy

    # -- Discord's side ------------------------------------------------------

    def _id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    def _answer(self, route: Any, body: Any, form: Any) -> Any:
        method = route.method
        path = route.compiled_path
        payload: dict[str, Any] = dict(body) if isinstance(body, dict) else {}
        if isinstance(body, list):
            payload = {"commands": body}  # PUT .../commands sends the whole list
        files: list[tuple[str, bytes]] = []
        if form is not None:
            for name, value, _ in form._fields:
                if name == "payload_json":
                    # hikari hands bytes over as an aiohttp payload.
                    payload = json.loads(getattr(value, "_value", value))
            for _, resource in form._resources:
                files.append((resource.filename, bytes(resource.data)))
        sent = Sent(method=method, path=path, body=payload, files=files)
        self.requests.append(sent)
        self.history.append(sent)
        for failing in self.failing_paths:
            if failing in path:
                raise hikari.InternalServerError(
                    url="https://discord.invalid" + path,
                    status=500,
                    headers={},
                    raw_body=b"",
                )
        if path == "/gateway/bot":
            if self.refuse_token:
                raise hikari.UnauthorizedError(
                    url="https://discord.invalid/gateway/bot",
                    headers={},
                    raw_body=b'{"message": "401: Unauthorized", "code": 0}',
                )
            raise AssertionError("the test did not expect a gateway connection")
        if path == "/oauth2/applications/@me":
            return payloads.application()
        if path.startswith("/applications/") and path.endswith("/commands"):
            return []
        if "/callback" in path:
            return {"interaction": {"id": path.split("/")[2], "type": 2}}
        if path == "/users/@me/channels":
            user_id = int(payload["recipient_id"])
            channel = self._dm_channels.setdefault(user_id, int(self._id()))
            return payloads.dm_channel(channel, user_id)
        if path.startswith("/channels/") and method == "POST":
            channel = int(path.split("/")[2])
            user_id = next(u for u, c in self._dm_channels.items() if c == channel)
            if user_id in self.closed_dms:
                raise hikari.ForbiddenError(
                    url="https://discord.invalid" + path,
                    headers={},
                    raw_body=b'{"message": "Cannot send messages to this user", "code": 50007}',
                    message="Cannot send messages to this user",
                    code=50007,
                )
            return payloads.message(self._id(), channel, payload.get("content", ""))
        if path.startswith("/webhooks/"):
            return payloads.message(self._id(), payloads.CHANNEL, payload.get("content", ""))
        raise AssertionError(f"unexpected request {method} {path}")

    # -- what the tests read -------------------------------------------------

    def take(self) -> list[Sent]:
        """Return the requests recorded since the last call, and forget them."""
        taken, self.requests = self.requests, []
        return taken

    def messages(self) -> list[Sent]:
        """Every recorded request that creates or edits a message."""
        return [sent for sent in self.requests if sent.kind not in {"open-dm", "defer"}]
