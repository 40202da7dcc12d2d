"""The data directory's lock files, and how each is taken.

``.init.lock`` (exclusive, waited for) serializes what reads a key or the
identity file and writes it back changed: a first start, a rekey's
records of its key, ``audit rotate-key``. ``run.lock`` (shared) is held by
every bot process while it runs, so ``doctor`` and ``vault rekey`` can tell
one runs. ``.rekey.lock`` (exclusive, not waited for) lets one rekey run at
a time. In a module of their own because both the data directory's checks
and the audit keys take them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from timmybot_bot.runtime.keys import RECOVERY
from timmybot_bot.runtime.settings import ConfigurationError, Settings

__all__ = ["INIT_LOCK", "REKEY_LOCK", "RUN_LOCK", "keys_lock", "locked", "rekey_lock", "run_lock"]

INIT_LOCK = ".init.lock"
RUN_LOCK = "run.lock"
REKEY_LOCK = ".rekey.lock"


@contextlib.contextmanager
def locked(path: Path, operation: int, flags: int = os.O_RDWR | os.O_CREAT) -> Iterator[int]:
    """Hold ``flock(operation)`` on ``path`` (created unless ``flags`` say otherwise)."""
    try:
        descriptor = os.open(path, flags, 0o600)
    except OSError as error:
        # A lock that cannot be taken leaves unknown who else uses the
        # directory: refuse, naming the file, rather than go on unlocked.
        raise ConfigurationError(
            f"lock file {path} cannot be opened ({type(error).__name__}); it must be a file "
            f"this user can write: {RECOVERY}"
        ) from None
    try:
        fcntl.flock(descriptor, operation)
        yield descriptor
    finally:
        os.close(descriptor)


def keys_lock(settings: Settings) -> contextlib.AbstractContextManager[int]:
    """Return the exclusive lock under which key files and the identity file change.

    Held by a first start (``data_dir.prepare``), ``data_dir.record_vault_key`` and
    ``audit rotate-key``: each reads a file, then writes it back changed, so
    two at once would lose one's change. Waited for (each holds it briefly);
    never take it twice in one process, as the second would wait forever.
    """
    return locked(settings.data_dir / INIT_LOCK, fcntl.LOCK_EX)


def run_lock(settings: Settings) -> contextlib.AbstractContextManager[int]:
    """Return the shared lock on ``run.lock`` a bot process holds while it runs.

    Any number of bot processes share it; leaving the context gives it back.
    """
    return locked(settings.data_dir / RUN_LOCK, fcntl.LOCK_SH)


def rekey_lock(settings: Settings) -> contextlib.AbstractContextManager[int]:
    """Return the exclusive lock a ``vault rekey`` holds while it changes keys and records.

    Not waited for: :class:`BlockingIOError` when another rekey holds it.
    """
    return locked(settings.data_dir / REKEY_LOCK, fcntl.LOCK_EX | fcntl.LOCK_NB)
