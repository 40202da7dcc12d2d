"""A Discord stand-in on 127.0.0.1: enough of the REST API and the gateway for hikari.

The bot runs as a real process and reaches this server through
``TIMMYBOT_TEST_DISCORD_API_URL`` (hikari's ``rest_url``); the gateway URL
is what ``GET /gateway/bot`` answers, as on Discord. What it speaks:

REST (API v10 paths under ``/api/v10``; ``Authorization: Bot <token>`` is
checked where Discord checks it, and a wrong token gets Discord's 401):
    ``GET /gateway/bot``; ``GET /oauth2/applications/@me``; ``GET`` and
    ``PUT`` (bulk overwrite) of ``/applications/{id}/commands`` and of the
    guild commands; ``POST /interactions/{id}/{token}/callback``; follow-ups
    and edits under ``/webhooks/{app}/{token}``; ``POST /users/@me/channels``
    and ``POST /channels/{id}/messages``. Any other request is answered 404
    and recorded in :attr:`DiscordStandIn.unexpected`.

Gateway (JSON encoding, ``zlib-stream`` transport compression when asked):
    HELLO, IDENTIFY (the token checked, close 4004 if wrong) and READY,
    HEARTBEAT and HEARTBEAT_ACK, RECONNECT (:meth:`reconnect`), RESUME and
    RESUMED, and dispatches (:meth:`dispatch_interaction` sends
    ``INTERACTION_CREATE``).

Interactions are built with the payload builders of the in-process fake
(``tests/e2e/discord/payloads.py``), and REST requests are recorded as its
:class:`~tests.e2e.discord.fake_discord.Sent`, so both sets of tests read
the bot's traffic the same way.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import zlib
from collections.abc import Callable
from typing import Any

import attrs
from aiohttp import WSMsgType, web

from tests.e2e.discord import payloads
from tests.e2e.discord.fake_discord import Sent

API = "/api/v10"
OP_DISPATCH, OP_HEARTBEAT, OP_IDENTIFY, OP_RESUME, OP_RECONNECT = 0, 1, 2, 6, 7
OP_INVALID_SESSION, OP_HELLO, OP_HEARTBEAT_ACK = 9, 10, 11
CLOSE_AUTHENTICATION_FAILED = 4004


@attrs.define
class GatewaySession:
    """One websocket connection of one shard."""

    ws: web.WebSocketResponse
    compress: Any | None  # zlib compressobj for the zlib-stream transport
    session_id: str | None = None
    seq: int = 0
    lock: asyncio.Lock = attrs.Factory(asyncio.Lock)

    async def send(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload)
        async with self.lock:
            if self.compress is None:
                await self.ws.send_str(data)
            else:
                chunk = self.compress.compress(data.encode()) + self.compress.flush(
                    zlib.Z_SYNC_FLUSH
                )
                await self.ws.send_bytes(chunk)

    async def dispatch(self, name: str, data: dict[str, Any]) -> int:
        self.seq += 1
        await self.send({"op": OP_DISPATCH, "t": name, "s": self.seq, "d": data})
        return self.seq


class DiscordStandIn:
    """The server; ``async with DiscordStandIn() as discord:`` starts and stops it."""

    def __init__(self, *, token: str = payloads.TOKEN, heartbeat_interval_ms: int = 1000) -> None:
        self.token = token
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.requests: list[Sent] = []
        self.unexpected: list[str] = []
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        self.heartbeats = 0
        self.acks = 0
        self.close_codes: list[int | None] = []
        self.commands: dict[str | None, list[dict[str, Any]]] = {}
        #: Set: the command list's bulk overwrite is refused with this error body (403).
        self.refuse_commands: dict[str, Any] | None = None
        self.sessions: list[GatewaySession] = []
        self._seqs: dict[str, int] = {}
        self._ids = itertools.count(910_000_000_000_000_000)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- life ------------------------------------------------------------------

    async def __aenter__(self) -> DiscordStandIn:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", API + "/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *_: object) -> None:
        for session in self.sessions:
            if not session.ws.closed:
                await session.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        """What ``TIMMYBOT_TEST_DISCORD_API_URL`` is set to."""
        return f"http://127.0.0.1:{self.port}{API}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    def _id(self) -> str:
        return str(next(self._ids))

    # -- what tests wait for and read ------------------------------------------

    async def wait_for(self, condition: Callable[[], Any], what: str, *, within: float = 30) -> Any:
        """Poll ``condition`` until it returns something truthy; fail after ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.02)

    def sent(self, kind: str | None = None) -> list[Sent]:
        """The recorded REST requests, or those of one :attr:`Sent.kind`."""
        return [s for s in self.requests if kind is None or s.kind == kind]

    def messages(self) -> list[Sent]:
        """Every request that created or edited a message (callbacks, follow-ups, DMs)."""
        return [
            s
            for s in self.requests
            if s.kind in {"reply", "update", "followup", "edit", "dm-message"}
        ]

    @property
    def live(self) -> GatewaySession | None:
        """The open session that has identified or resumed, if any."""
        for session in reversed(self.sessions):
            if session.session_id is not None and not session.ws.closed:
                return session
        return None

    async def dispatch_interaction(self, payload: dict[str, Any]) -> list[Sent]:
        """Send ``INTERACTION_CREATE`` and return the REST requests that answer it.

        Waits until the interaction's callback has arrived and the bot has
        gone quiet on that interaction for a moment (follow-ups come after a
        deferral).
        """
        session = await self.wait_for(lambda: self.live, "a live gateway session")
        token = payload["token"]
        before = len(self.requests)
        await session.dispatch("INTERACTION_CREATE", payload)

        def answers() -> list[Sent]:
            return [s for s in self.requests[before:] if token in s.path]

        await self.wait_for(
            lambda: any("/callback" in s.path for s in answers()), f"the answer to {token}"
        )
        # A deferral is followed by the real message; wait for that too.
        if all(s.kind == "defer" for s in answers()):
            await self.wait_for(
                lambda: any(s.kind != "defer" for s in answers()), f"the follow-up to {token}"
            )
        await asyncio.sleep(0.2)
        return answers()

    async def reconnect(self) -> None:
        """Ask the live session to reconnect (op 7); hikari then resumes it."""
        session = await self.wait_for(lambda: self.live, "a live gateway session")
        await session.send({"op": OP_RECONNECT, "d": None})

    # -- gateway -----------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        compress = zlib.compressobj() if request.query.get("compress") == "zlib-stream" else None
        session = GatewaySession(ws=ws, compress=compress)
        self.sessions.append(session)
        await session.send(
            {"op": OP_HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}}
        )
        async for message in ws:
            # hikari sends its JSON in binary frames; Discord takes both.
            if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue
            payload = json.loads(message.data)
            op = payload.get("op")
            if op == OP_HEARTBEAT:
                self.heartbeats += 1
                await session.send({"op": OP_HEARTBEAT_ACK})
                self.acks += 1
            elif op == OP_IDENTIFY:
                await self._identify(session, payload["d"])
            elif op == OP_RESUME:
                await self._resume(session, payload["d"])
        self.close_codes.append(ws.close_code)
        if session.session_id is not None:
            self._seqs[session.session_id] = session.seq
        return ws

    async def _identify(self, session: GatewaySession, data: dict[str, Any]) -> None:
        self.identifies.append({k: v for k, v in data.items() if k != "token"})
        if data.get("token") != self.token:
            await session.ws.close(
                code=CLOSE_AUTHENTICATION_FAILED, message=b"Authentication failed."
            )
            return
        session.session_id = self._id()
        me = payloads.user(payloads.APPLICATION) | {
            "bot": True,
            "username": "TimmyBot",
            "mfa_enabled": False,
            "flags": 0,
            "verified": True,
        }
        await session.dispatch(
            "READY",
            {
                "v": 10,
                "user": me,
                "guilds": [],
                "session_id": session.session_id,
                "resume_gateway_url": self.gateway_url,
                "shard": data.get("shard", [0, 1]),
                "application": {"id": str(payloads.APPLICATION), "flags": 0},
            },
        )

    async def _resume(self, session: GatewaySession, data: dict[str, Any]) -> None:
        self.resumes.append({k: v for k, v in data.items() if k != "token"})
        known = data.get("session_id") in self._seqs
        if data.get("token") != self.token or not known:
            await session.send({"op": OP_INVALID_SESSION, "d": False})
            return
        session.session_id = data["session_id"]
        session.seq = self._seqs[data["session_id"]]
        await session.dispatch("RESUMED", {})

    # -- REST --------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        body, files = await self._body(request)
        sent = Sent(method=request.method, path=path, body=body, files=files)
        self.requests.append(sent)
        # Interaction callbacks and webhooks are authorized by their token in
        # the path; everything else needs the bot token, as on Discord.
        token_routes = path.startswith(("/interactions/", "/webhooks/"))
        if not token_routes and request.headers.get("Authorization") != f"Bot {self.token}":
            return web.json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        answer = self._answer(request, path, body)
        if isinstance(answer, web.StreamResponse):
            return answer
        if answer is None:
            self.unexpected.append(f"{request.method} {path}")
            return web.json_response({"message": "404: Not Found", "code": 0}, status=404)
        if answer == ():
            return web.Response(status=204)
        return web.json_response(answer)

    async def _body(self, request: web.Request) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
        if not request.can_read_body:
            return {}, []
        if request.content_type.startswith("multipart/"):
            body: dict[str, Any] = {}
            files: list[tuple[str, bytes]] = []
            reader = await request.multipart()
            async for part in reader:
                data = await part.read()  # type: ignore[union-attr]
                if part.name == "payload_json":
                    body = json.loads(data)
                else:
                    files.append((part.filename or "", bytes(data)))  # type: ignore[union-attr]
            return body, files
        raw = await request.json()
        # PUT .../commands sends the whole list.
        return ({"commands": raw} if isinstance(raw, list) else dict(raw)), []

    def _answer(self, request: web.Request, path: str, body: dict[str, Any]) -> Any:
        method = request.method
        parts = path.strip("/").split("/")
        if path == "/gateway/bot" and method == "GET":
            return {
                "url": self.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 0,
                    "max_concurrency": 1,
                },
            }
        if path == "/oauth2/applications/@me" and method == "GET":
            return payloads.application()
        if parts[0] == "applications" and parts[-1] == "commands":
            guild = parts[3] if len(parts) == 5 and parts[2] == "guilds" else None
            if method == "GET":
                return self.commands.get(guild, [])
            if method == "PUT" and self.refuse_commands is not None:
                return web.json_response(self.refuse_commands, status=403)
            if method == "PUT":
                self.commands[guild] = [self._command(c, guild) for c in body["commands"]]
                return self.commands[guild]
        if parts[0] == "interactions" and parts[-1] == "callback" and method == "POST":
            if request.query.get("with_response", "").lower() != "true":
                return ()
            message = payloads.message(
                self._id(), payloads.CHANNEL, body.get("data", {}).get("content") or ""
            )
            return {
                "interaction": {"id": parts[1], "type": 2},
                "resource": {"type": body["type"], "message": message}
                if body["type"] in (4, 7)
                else {"type": body["type"]},
            }
        if parts[0] == "webhooks" and method in ("POST", "PATCH", "GET"):
            return payloads.message(self._id(), payloads.CHANNEL, body.get("content") or "")
        if parts[0] == "webhooks" and method == "DELETE":
            return ()
        if path == "/users/@me/channels" and method == "POST":
            return payloads.dm_channel(int(self._id()), int(body["recipient_id"]))
        if parts[0] == "channels" and parts[-1] == "messages" and method == "POST":
            return payloads.message(self._id(), int(parts[1]), body.get("content") or "")
        return None

    def _command(self, sent: dict[str, Any], guild: str | None) -> dict[str, Any]:
        return {
            "type": 1,
            "default_member_permissions": None,
            "description": "",
            **sent,
            "id": self._id(),
            "application_id": str(payloads.APPLICATION),
            "guild_id": guild,
            "version": self._id(),
        }
