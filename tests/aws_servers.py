"""Moto's server and dynalite on 127.0.0.1, started once per test session, on first use.

* :func:`moto_endpoint`: ``ThreadedMotoServer(ip_address="127.0.0.1", port=0)``
  in a thread of this process (Secrets Manager, KMS, SNS, SQS, CloudWatch
  Logs, ...). boto3 talks real HTTP to it.
* :func:`dynalite_endpoint`: dynalite (npm), a DynamoDB implementation that
  locks items, in a node process of its own, on a random port. ``make test``
  installs it under ``.node/``. If it is missing the calling test FAILS with
  the command that installs it: the AWS contract suites must never be
  skipped silently.

Both stop when the test process exits (dynalite also exits when its stdin,
a pipe from this process, closes, so a killed test run leaves no server).

Tests get isolated resources: :func:`unique` names, :func:`fresh_tables`
for tables created for one test and deleted after it.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest

from timmybot_adapters.aws import AwsClients, AwsConfig, TableNames, create_tables, delete_tables

ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = ROOT / ".node"
DYNALITE_MODULE = NODE_DIR / "node_modules" / "dynalite"
REGION = "eu-west-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
CREDENTIAL_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
INSTALL_HINT = (
    "dynalite is not installed: the AWS contract suites need it. Run `make test` (it installs "
    "dynalite into .node/), or: npm install --prefix .node --ignore-scripts dynalite@4.0.0"
)

# Listens on a random port of 127.0.0.1, prints it, and exits when stdin closes.
_DYNALITE_SCRIPT = """
const dynalite = require('dynalite');
const server = dynalite({createTableMs: 0, deleteTableMs: 0, updateTableMs: 0});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({port: server.address().port}) + '\\n');
});
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
"""

logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request

_lock = threading.Lock()
_state: dict[str, Any] = {}


def moto_endpoint() -> str:
    """The URL of the session's moto server, started on first call."""
    with _lock:
        if "moto" not in _state:
            from moto.server import ThreadedMotoServer

            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
            _state["moto"] = f"http://{host}:{port}"
            _state["moto_server"] = server
            atexit.register(server.stop)
        return str(_state["moto"])


def dynalite_endpoint() -> str:
    """The URL of the session's dynalite, started on first call; fails the test if missing."""
    with _lock:
        if "dynalite" not in _state:
            node = shutil.which("node")
            if node is None or not (DYNALITE_MODULE / "package.json").exists():
                pytest.fail(INSTALL_HINT, pytrace=False)
            process = subprocess.Popen(
                [node, "-e", _DYNALITE_SCRIPT],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "NODE_PATH": str(NODE_DIR / "node_modules")},
            )
            line = process.stdout.readline() if process.stdout else ""
            if not line:
                error = process.stderr.read() if process.stderr else ""
                pytest.fail(f"dynalite did not start: {error.strip()[:500]}", pytrace=False)
            port = int(json.loads(line)["port"])
            _state["dynalite"] = f"http://127.0.0.1:{port}"
            _state["dynalite_process"] = process

            def stop() -> None:
                if process.stdin:
                    process.stdin.close()
                process.terminate()
                process.wait(timeout=10)

            atexit.register(stop)
        return str(_state["dynalite"])


def session() -> boto3.Session:
    """A boto3 session with fake credentials, for the local servers only."""
    return boto3.Session(region_name=REGION, **CREDENTIALS)


def config(**changes: Any) -> AwsConfig:
    """An ``AwsConfig`` for moto (every service) and dynalite (DynamoDB)."""
    values: dict[str, Any] = {
        "region": REGION,
        "endpoint_url": moto_endpoint(),
        "dynamodb_endpoint_url": dynalite_endpoint(),
        "connect_timeout": 2.0,
        "read_timeout": 10.0,
        "max_attempts": 3,
    }
    values.update(changes)
    return AwsConfig(**values)


def new_clients(**changes: Any) -> AwsClients:
    """Fresh clients (their own event hooks, for fault injection); close them after use."""
    return AwsClients(config(**changes), session=session())


def shared_clients() -> AwsClients:
    """One set of clients for every contract test (building clients costs ~50 ms each)."""
    with _lock:
        clients = _state.get("clients")
    if clients is None:
        clients = new_clients()
        with _lock:
            _state.setdefault("clients", clients)
            clients = _state["clients"]
    assert isinstance(clients, AwsClients)
    return clients


def unique(label: str = "t") -> str:
    """A name no other test uses."""
    return f"{label}-{uuid.uuid4().hex[:12]}"


def kms_key_id() -> str:
    """A customer-managed KMS key in moto, created once per session."""
    with _lock:
        if "kms_key" in _state:
            return str(_state["kms_key"])
    kms = session().client("kms", endpoint_url=moto_endpoint())
    key = kms.create_key(Description="timmybot tests")["KeyMetadata"]["KeyId"]
    with _lock:
        _state.setdefault("kms_key", key)
        return str(_state["kms_key"])


@asynccontextmanager
async def fresh_tables(*, roles: Sequence[str] | None = None) -> AsyncIterator[TableNames]:
    """Tables with a unique prefix for one test, deleted afterwards.

    ``roles`` limits them to some of ``access``, ``link_states``,
    ``incidents``, ``audit``, ``user_data`` (all by default). They are
    created and deleted with the shared clients, which carry no injected
    faults, so a test that breaks its own clients still cleans up.
    """
    clients = shared_clients()
    names = TableNames.with_prefix(unique("tb") + "-")
    wanted = [getattr(names, role) for role in roles] if roles is not None else list(names.all())
    await asyncio.to_thread(create_tables, clients.dynamodb, names, enable_ttl=False, only=wanted)
    try:
        yield names
    finally:
        await asyncio.to_thread(delete_tables, clients.dynamodb, wanted)
