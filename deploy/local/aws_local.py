"""Try the aws backend without an AWS account: ``make aws-local``.

Starts moto's server (every service but DynamoDB) and dynalite (DynamoDB) on
127.0.0.1, deploys ``deploy/cloudformation/timmybot.yaml`` to moto (what
moto cannot create is made from the template's own properties, see
``timmybot_adapters/aws/emulated_stack.py``), creates the stack's tables in
dynalite from ``timmybot_adapters/aws/tables.py``, and runs the bot's
offline console on ``TIMMYBOT_BACKEND=aws`` against them, with the settings
the stack's outputs give. When the console ends, both servers stop and
everything they held is gone (nothing is written to disk but the console's
data directory, ``var-aws-local/`` by default).

Arguments after ``--`` go to the console (``make aws-local ARGS="--user 7"``);
your own ``TIMMYBOT_*`` settings (``TIMMYBOT_OWNER_IDS=7`` to run admin
commands) are kept, except those the stack's outputs set.
``--print-env`` prints the settings instead of running the console, for a
second shell (the servers then run until Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

from timmybot_adapters.aws import TableNames, create_tables
from timmybot_adapters.aws import emulated_stack as emulated

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "cloudformation" / "timmybot.yaml"
NODE_MODULES = ROOT / ".node" / "node_modules"
REGION = "eu-west-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
PREFIX = "timmybot-local"
DYNALITE = """
const dynalite = require('dynalite');
const server = dynalite({createTableMs: 0, deleteTableMs: 0, updateTableMs: 0});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({port: server.address().port}) + '\\n');
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
"""


def start_dynalite() -> tuple[subprocess.Popen[str], str]:
    """Start dynalite on a free port of 127.0.0.1; it exits when our pipe to it closes."""
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "dynalite").is_dir():
        raise SystemExit(
            "aws-local needs node and dynalite: run `make .node/.installed-dynalite-4.0.0`"
        )
    process = subprocess.Popen(  # noqa: S603 - node, with our own script
        [node, "-e", DYNALITE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
    )
    line = process.stdout.readline() if process.stdout else ""
    if not line:
        raise SystemExit("dynalite did not start")
    return process, f"http://127.0.0.1:{json.loads(line)['port']}"


def stack_settings(moto: str, dynalite: str, data_dir: Path) -> dict[str, str]:
    """Deploy the stack and its tables; return the bot's settings for them."""
    session = boto3.Session(
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )

    def client(service: str) -> object:
        return session.client(service, endpoint_url=moto)  # type: ignore[call-overload]

    parameters = {"Environment": "development"}
    stack = emulated.deploy(
        emulated.load_template(TEMPLATE),
        clients=client,
        stack=PREFIX,
        prefix=PREFIX,
        region=REGION,
        parameters=parameters,
        conditions=emulated.conditions_for(parameters, production=False),
    )
    out = stack.outputs
    create_tables(
        session.client("dynamodb", endpoint_url=dynalite),
        TableNames.with_prefix(out["TablePrefix"]),
        enable_ttl=False,  # dynalite has no UpdateTimeToLive; reads check expiry anyway
    )
    secrets = session.client("secretsmanager", endpoint_url=moto)
    return {
        **CREDENTIALS,
        "AWS_DEFAULT_REGION": REGION,
        "TIMMYBOT_BACKEND": "aws",
        "TIMMYBOT_DATA_DIR": str(data_dir),
        "TIMMYBOT_AWS_REGION": out["Region"],
        "TIMMYBOT_AWS_ENDPOINT_URL": moto,
        "TIMMYBOT_AWS_DYNAMODB_ENDPOINT_URL": dynalite,
        "TIMMYBOT_AWS_TABLE_PREFIX": out["TablePrefix"],
        "TIMMYBOT_AWS_SECRET_PREFIX": out["UserSecretPrefix"],
        "TIMMYBOT_AWS_KMS_KEY_ID": out["KeyArn"],
        "TIMMYBOT_AWS_ALERT_TOPIC_ARN": out["AlertTopicArn"],
        "TIMMYBOT_AWS_DIGEST_BUCKET": out["DigestBucketName"],
        "TIMMYBOT_AWS_SECURITY_LOG_GROUP": out["SecurityLogGroupName"],
        "TIMMYBOT_AWS_AUDIT_LOG_GROUP": out["AuditLogGroupName"],
        "TIMMYBOT_PSEUDONYM_KEY": secrets.get_secret_value(SecretId=out["PseudonymKeySecretArn"])[
            "SecretString"
        ],
        "TIMMYBOT_AUDIT_SIGNING_KEY": secrets.get_secret_value(
            SecretId=out["AuditSigningKeySecretArn"]
        )["SecretString"],
    }


def main(argv: list[str] | None = None) -> int:
    """Start the emulators, deploy, run the console (or print the settings); return its status."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var-aws-local")
    parser.add_argument("--print-env", action="store_true", help="print the settings and wait")
    parser.add_argument("console", nargs=argparse.REMAINDER, help="arguments of the console")
    options = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    dynalite, dynalite_url = start_dynalite()
    try:
        host, port = server.get_host_and_port()
        env = stack_settings(f"http://{host}:{port}", dynalite_url, options.data_dir)
        print(
            f"aws-local: moto on http://{host}:{port}, dynalite on {dynalite_url}, "
            f"stack {PREFIX} deployed; the console runs on TIMMYBOT_BACKEND=aws "
            "(end it with Ctrl-D).",
            file=sys.stderr,
        )
        if options.print_env:
            for name, value in sorted(env.items()):
                print(f"export {name}={value}")
            sys.stdout.flush()
            try:
                threading.Event().wait()  # until Ctrl-C
            except KeyboardInterrupt:
                return 0
        console = [a for a in options.console if a != "--"]
        # Your own settings (TIMMYBOT_OWNER_IDS, ...) stay; the stack's replace
        # the aws ones, and real AWS credentials never reach the emulators.
        clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        clean.pop("DISCORD_TOKEN", None)  # the offline console, never Discord
        return subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "timmybot_bot", *console],
            env={**clean, **env},
            check=False,
        ).returncode
    finally:
        if dynalite.stdin:
            dynalite.stdin.close()
        dynalite.wait(timeout=10)
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
