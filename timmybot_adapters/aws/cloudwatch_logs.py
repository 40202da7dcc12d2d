"""A logging handler that ships the security and audit log lines to CloudWatch Logs.

:class:`CloudWatchLogsHandler` is a ``logging.Handler``: attach it to the
``timmybot.security`` and ``timmybot.audit`` loggers. ``emit`` never does
network I/O: it formats the record and appends it to a bounded in-memory
queue (or, during an outage, to the local spool file). A background thread
sends the queue to CloudWatch Logs with ``PutLogEvents``.

**Batches** respect the API's limits: at most 10,000 events and 1,048,576
bytes per call (each event counts its UTF-8 message plus 26 bytes), no more
than 24 hours between a batch's first and last event, and events in
chronological order within a call. An event larger than 256 KiB is cut at a
UTF-8 boundary and marked ``[truncated N bytes]``. CloudWatch refuses events
older than 14 days or more than 2 hours in the future; those go to the
dead-letter file instead (see below), so nothing is dropped silently.

**No event is lost when CloudWatch is unreachable.** Each call already has
botocore's retries (the client's ``standard`` mode). When a batch still
fails, it and everything queued behind it are appended to the *spool file*,
and every later event goes straight to the spool too, so the order is kept.
The thread retries with exponential backoff; once a call succeeds it replays
the spool in order, batch by batch, recording after each batch how far it got
in ``<spool>.offset`` (a crash therefore re-sends at most one batch). When the
spool is drained it is truncated and events go back to the memory queue. A
spool left by a previous run is replayed at start-up, before any new event.
When the memory queue is full (CloudWatch slow rather than down), new events
also overflow to the spool instead of growing memory or blocking the caller.

Delivery is *at least once*: a call that reached CloudWatch but whose answer
was lost (a read timeout) is sent again. Events that CloudWatch will never
accept (too old, too new, refused as invalid) and unreadable spool lines go to
``<spool>.rejected`` as JSON lines with the reason. Spool and dead-letter
files are created with mode 0600; they are flushed to the operating system on
every write, not fsync'ed.

**Threads.** ``emit`` takes a lock, appends, and returns; during an outage it
appends one line to a local file. :meth:`flush` waits (up to a timeout) for
what is queued to be delivered. :meth:`close` stops the thread: it tries to
deliver what is left for ``close_timeout`` seconds and spools the rest for the
next start. Records of botocore, boto3 and urllib3, and records logged by the
handler's own thread, are ignored, so the handler never feeds on its own
traffic.

Give it the ``logs`` client of :class:`~timmybot_adapters.aws.clients.AwsClients`
(``clients.logs``): explicit timeouts and ``standard`` retries.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, NoReturn

import attrs
from botocore.exceptions import BotoCoreError, ClientError

from timmybot_adapters.aws.clients import describe_error, error_code

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_logs.type_defs import InputLogEventTypeDef

__all__ = [
    "EVENT_OVERHEAD",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_EVENTS",
    "MAX_BATCH_SPAN_MS",
    "MAX_EVENT_BYTES",
    "CloudWatchLogsHandler",
    "DeliveryStats",
    "default_stream_name",
]

EVENT_OVERHEAD: Final = 26
"""Bytes CloudWatch adds to each event's UTF-8 message when sizing a batch."""
MAX_BATCH_EVENTS: Final = 10_000
MAX_BATCH_BYTES: Final = 1_048_576
MAX_EVENT_BYTES: Final = 262_144
"""An event's size limit, the 26-byte overhead included."""
MAX_BATCH_SPAN_MS: Final = 24 * 3600 * 1000
"""A batch's first and last events must be less than 24 hours apart."""

# CloudWatch accepts events from the last 14 days and up to 2 hours ahead.
# The margins keep an event near the edge from being refused in transit.
_MAX_AGE_MS: Final = 14 * 24 * 3600 * 1000 - 10 * 60 * 1000
_MAX_AHEAD_MS: Final = 2 * 3600 * 1000 - 60 * 1000

# Their records would make traffic that makes records; our own would recurse
# when the spool cannot be written.
_IGNORED_LOGGERS: Final = ("botocore", "boto3", "urllib3", "s3transfer", __name__)
_TRUNCATED: Final = " [truncated {} bytes]"

_log = logging.getLogger(__name__)


def default_stream_name() -> str:
    """Return ``{host}/{pid}/{random}``: unique to this process start."""
    host = socket.gethostname().replace(":", "-").replace("*", "-") or "host"
    return f"{host[:200]}/{os.getpid()}/{uuid.uuid4().hex[:12]}"


@attrs.frozen(kw_only=True)
class DeliveryStats:
    """What the handler has done since it started.

    Attributes:
        delivered: events CloudWatch accepted.
        spooled: events written to the spool file (an event spooled and later
            delivered counts in both).
        dead_lettered: events written to the dead-letter file.
        truncated: events cut to the 256 KiB limit.
        dropped: events lost because the spool file could not be written.
        queued: events waiting in memory now.
        queued_bytes: their size, as CloudWatch counts it.
        spooling: whether events are going to the spool now (an outage, or
            a spool still being replayed).
        calls: ``PutLogEvents`` calls made, successful or not.
    """

    delivered: int = 0
    spooled: int = 0
    dead_lettered: int = 0
    truncated: int = 0
    dropped: int = 0
    queued: int = 0
    queued_bytes: int = 0
    spooling: bool = False
    calls: int = 0


class _Event:
    """One log event: milliseconds since the epoch, message, size as CloudWatch counts it."""

    __slots__ = ("message", "size", "timestamp")

    def __init__(self, timestamp: int, message: str) -> None:
        self.timestamp = timestamp
        self.message = message
        self.size = len(message.encode("utf-8")) + EVENT_OVERHEAD

    def spool_line(self) -> bytes:
        # ensure_ascii: one line per event whatever the message holds.
        return (json.dumps({"t": self.timestamp, "m": self.message}) + "\n").encode("ascii")


def _cut(message: str) -> tuple[str, bool]:
    """Return ``message`` within the event size limit, and whether it was cut."""
    data = message.encode("utf-8")
    room = MAX_EVENT_BYTES - EVENT_OVERHEAD
    if len(data) <= room:
        return message, False
    marker_room = len(_TRUNCATED.format(len(data)).encode("ascii"))
    kept = data[: room - marker_room].decode("utf-8", errors="ignore")
    removed = len(data) - len(kept.encode("utf-8"))
    return kept + _TRUNCATED.format(removed), True


class _BatchBuilder:
    """Accumulates events while they fit in one ``PutLogEvents`` call."""

    def __init__(self) -> None:
        self.events: list[_Event] = []
        self._bytes = 0
        self._low = 0
        self._high = 0

    def fits(self, event: _Event) -> bool:
        if not self.events:
            return True
        if len(self.events) >= MAX_BATCH_EVENTS or self._bytes + event.size > MAX_BATCH_BYTES:
            return False
        low, high = min(self._low, event.timestamp), max(self._high, event.timestamp)
        return high - low < MAX_BATCH_SPAN_MS

    def add(self, event: _Event) -> None:
        if not self.events:
            self._low = self._high = event.timestamp
        self.events.append(event)
        self._bytes += event.size
        self._low = min(self._low, event.timestamp)
        self._high = max(self._high, event.timestamp)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _refusal(event: _Event, now: int) -> str | None:
    """Say why CloudWatch would refuse ``event`` for its time, or ``None``."""
    if event.timestamp < now - _MAX_AGE_MS:
        return "older than CloudWatch accepts (14 days)"
    if event.timestamp > now + _MAX_AHEAD_MS:
        return "more than 2 hours in the future"
    return None


class _Outage(Exception):
    """CloudWatch could not be reached or refused the call for now; retry later."""


class CloudWatchLogsHandler(logging.Handler):
    """Ships formatted log records to one CloudWatch Logs stream, never losing one.

    Args:
        client: a CloudWatch Logs client (``AwsClients.logs``).
        log_group: the log group; it must exist (the stack creates it).
        spool_path: the spool file; the ``.offset`` and ``.rejected`` files
            sit next to it. Its directory is created (mode 0700) if missing.
        log_stream: the stream, created if missing; default
            :func:`default_stream_name`.
        max_queue_events, max_queue_bytes: the memory bound; beyond it new
            events overflow to the spool.
        flush_interval: how long an event may wait in memory before it is sent.
        close_timeout: how long :meth:`close` tries to deliver what is left.
        retry_initial, retry_max: the backoff, in seconds, between attempts
            during an outage (doubling from the first to the second).
        level: the handler's level.

    Raises:
        ValueError: an empty or invalid group or stream name, or a
            non-positive bound or interval.
    """

    def __init__(
        self,
        *,
        client: CloudWatchLogsClient,
        log_group: str,
        spool_path: Path,
        log_stream: str | None = None,
        max_queue_events: int = MAX_BATCH_EVENTS,
        max_queue_bytes: int = 4 * MAX_BATCH_BYTES,
        flush_interval: float = 5.0,
        close_timeout: float = 10.0,
        retry_initial: float = 1.0,
        retry_max: float = 60.0,
        level: int = logging.NOTSET,
    ) -> None:
        stream = default_stream_name() if log_stream is None else log_stream
        if not 1 <= len(log_group) <= 512:
            raise ValueError("log_group must be 1 to 512 characters")
        if not 1 <= len(stream) <= 512 or ":" in stream or "*" in stream:
            raise ValueError("log_stream must be 1 to 512 characters, without ':' or '*'")
        if max_queue_events < 1 or max_queue_bytes < MAX_EVENT_BYTES:
            raise ValueError(
                f"max_queue_events must be at least 1 and max_queue_bytes at least "
                f"{MAX_EVENT_BYTES} (one event of the largest size)"
            )
        if not (flush_interval > 0 and close_timeout >= 0 and 0 < retry_initial <= retry_max):
            raise ValueError(
                "flush_interval and retry_initial must be positive, close_timeout not "
                "negative, and retry_max at least retry_initial"
            )
        super().__init__(level)
        self._client = client
        self._group = log_group
        self._stream = stream
        self._spool_path = Path(spool_path)
        self._offset_path = self._spool_path.with_name(self._spool_path.name + ".offset")
        self._rejected_path = self._spool_path.with_name(self._spool_path.name + ".rejected")
        self._max_events = max_queue_events
        self._max_bytes = max_queue_bytes
        self._flush_interval = flush_interval
        self._close_timeout = close_timeout
        self._retry_initial = retry_initial
        self._retry_max = retry_max

        # Everything below is guarded by _cond. Order of delivery is always:
        # _in_flight, then _queue, then the spool from _spool_offset on.
        # Re-entrant: dead-lettering and counting happen both with and without it held.
        self._cond = threading.Condition(threading.RLock())
        self._queue: deque[_Event] = deque()
        self._queued_bytes = 0
        self._oldest_queued_at = 0.0
        self._in_flight: list[_Event] | None = None
        # Set when emit moved the in-flight batch into the spool (the queue
        # overflowed): the spool bytes [0, _spill_head_end) hold that batch.
        self._spill_head_end: int | None = None
        self._spooling = False
        self._spool_out: IO[bytes] | None = None
        self._spool_offset = 0
        # Spool lines before this offset were already screened (dead-lettered
        # if CloudWatch would refuse them): a retried replay must not repeat that.
        self._screened_upto = 0
        self._flush_requested = False
        self._retry_at = 0.0
        self._stopping = False
        self._closed = False
        self._stream_ready = False
        self._outage_reported = False
        self._delivered = 0
        self._spooled = 0
        self._dead = 0
        self._truncated = 0
        self._dropped = 0
        self._calls = 0

        self._recover_spool()
        self._thread = threading.Thread(
            target=self._run, name=f"timmybot-cwlogs-{self._stream[:40]}", daemon=True
        )
        self._thread.start()

    def __repr__(self) -> str:
        level = logging.getLevelName(self.level)
        return f"<CloudWatchLogsHandler {self._group}:{self._stream} ({level})>"

    @property
    def log_group(self) -> str:
        """The log group events go to."""
        return self._group

    @property
    def log_stream(self) -> str:
        """The log stream events go to."""
        return self._stream

    def stats(self) -> DeliveryStats:
        """Return the counters and the current queue and spool state."""
        with self._cond:
            return DeliveryStats(
                delivered=self._delivered,
                spooled=self._spooled,
                dead_lettered=self._dead,
                truncated=self._truncated,
                dropped=self._dropped,
                queued=len(self._queue),
                queued_bytes=self._queued_bytes,
                spooling=self._spooling,
                calls=self._calls,
            )

    # -- the emitting side: no network I/O ---------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        """Queue ``record`` for delivery (or spool it during an outage); never blocks on I/O."""
        if record.name.startswith(_IGNORED_LOGGERS) or threading.current_thread() is self._thread:
            return
        try:
            message, cut = _cut(self.format(record))
            event = _Event(int(record.created * 1000), message)
            with self._cond:
                if cut:
                    self._truncated += 1
                self._accept(event)
        except Exception:  # noqa: BLE001 - logging's contract: report, never raise
            self.handleError(record)

    def _accept(self, event: _Event) -> None:
        if self._spooling or self._closed:
            self._spool_write([event])
            return
        if (
            len(self._queue) >= self._max_events
            or self._queued_bytes + event.size > self._max_bytes
        ):
            self._spill(event)
            return
        if not self._queue:
            self._oldest_queued_at = time.monotonic()
        self._queue.append(event)
        self._queued_bytes += event.size
        if len(self._queue) >= MAX_BATCH_EVENTS or self._queued_bytes >= MAX_BATCH_BYTES:
            self._cond.notify_all()

    def _spill(self, event: _Event) -> None:
        """Move the in-flight batch, the full queue and ``event`` to the spool."""
        # The spool is empty here (events only reach the queue when not
        # spooling), so the in-flight batch lands at its head.
        in_flight = self._in_flight or []
        if in_flight:
            self._spool_write(in_flight, count=False)
            self._spill_head_end = self._spool_size()
        self._spool_write([*self._queue, event])
        self._queue.clear()
        self._queued_bytes = 0
        self._spooling = True
        self._cond.notify_all()

    def flush(self) -> None:
        """Send what is in memory now, and wait until it is delivered or spooled.

        Waits at most ``close_timeout`` seconds; events spooled during an
        outage are safe on disk and do not hold it up. Blocking: do not call
        it on the event loop.
        """
        self._wait(self._close_timeout, memory_only=True)

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until every event, spooled ones included, is delivered.

        Returns whether that happened. Blocking: do not call it on the event loop.
        """
        return self._wait(timeout, memory_only=False)

    def _wait(self, timeout: float, *, memory_only: bool) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flush_requested = True
            self._retry_at = 0.0
            self._cond.notify_all()
            while (
                self._queue or self._in_flight is not None or (self._spooling and not memory_only)
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(remaining)
            if not self._queue:
                self._flush_requested = False
            return True

    def close(self) -> None:
        """Deliver what is left within ``close_timeout``, spool the rest, stop the thread."""
        with self._cond:
            if self._stopping:
                already = True
            else:
                already = False
                self._stopping = True
                self._cond.notify_all()
        if not already:
            # The thread's last attempt is bounded by close_timeout plus one
            # call (the client's timeouts and retries).
            self._thread.join(self._close_timeout + 120.0)
            if self._thread.is_alive():
                _log.warning("the CloudWatch Logs thread did not stop; its batch may be re-sent")
            with self._cond:
                self._closed = True
                if self._queue and not self._thread.is_alive():
                    # Emitted while the thread was finishing: kept for the next start.
                    self._spool_queue_front([])
                self._close_spool()
        super().close()

    # -- the spool ---------------------------------------------------------

    def _open_private(self, path: Path) -> IO[bytes]:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return os.fdopen(fd, "ab")

    def _spool_write(self, events: Iterable[_Event], *, count: bool = True) -> None:
        events = list(events)
        if not events:
            return
        try:
            if self._spool_out is None:
                self._spool_out = self._open_private(self._spool_path)
            self._spool_out.write(b"".join(event.spool_line() for event in events))
            self._spool_out.flush()
        except OSError as error:
            self._dropped += len(events)
            _log.error(
                "could not write %d log events to the spool %s (%s); they are lost",
                len(events),
                self._spool_path,
                error.strerror,
            )
            return
        if count:
            self._spooled += len(events)

    def _close_spool(self) -> None:
        if self._spool_out is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._spool_out.fileno())
                self._spool_out.close()
            self._spool_out = None

    def _spool_size(self) -> int:
        try:
            return self._spool_path.stat().st_size
        except FileNotFoundError:
            return 0

    def _spool_queue_front(self, batch: list[_Event]) -> None:
        """Spool ``batch`` then the queue; the spool must hold nothing newer."""
        self._spool_write([*batch, *self._queue])
        self._queue.clear()
        self._queued_bytes = 0
        self._spooling = True

    def _recover_spool(self) -> None:
        """Pick up a spool a previous run left, so it is replayed before anything new."""
        size = self._spool_size()
        if size == 0:
            self._remove_offset()
            return
        offset = 0
        with contextlib.suppress(OSError, ValueError):
            offset = int(self._offset_path.read_text(encoding="ascii").strip())
        self._spool_offset = offset if 0 <= offset <= size else 0
        with self._spool_path.open("rb") as spool:
            spool.seek(size - 1)
            complete = spool.read(1) == b"\n"
        if not complete:
            # A line cut by a crash: end it, so it is read (and dead-lettered) on its own.
            with self._open_private(self._spool_path) as out:
                out.write(b"\n")
        self._spooling = True

    def _read_spool(self) -> tuple[list[_Event], int]:
        """Read the next batch from the spool: its events and the offset after it."""
        builder = _BatchBuilder()
        if self._spool_offset > self._spool_size():
            self._spool_offset = 0  # the file was truncated behind our back
        offset = self._spool_offset
        now = _now_ms()
        unreadable: list[bytes] = []
        refused: dict[str, list[_Event]] = {}
        try:
            spool = self._spool_path.open("rb")
        except FileNotFoundError:
            return [], 0
        with spool:
            spool.seek(offset)
            while True:
                line = spool.readline()
                if not line.endswith(b"\n"):
                    break  # the end, or a line still being written
                fresh = offset >= self._screened_upto
                try:
                    data = json.loads(line)
                    event = _Event(int(data["t"]), str(data["m"]))
                except (ValueError, KeyError, TypeError):
                    if fresh:
                        unreadable.append(line)
                    offset += len(line)
                    continue
                refusal = _refusal(event, now)
                if refusal is not None:
                    if fresh:
                        refused.setdefault(refusal, []).append(event)
                    offset += len(line)
                    continue
                if not builder.fits(event):
                    break
                builder.add(event)
                offset += len(line)
        for line in unreadable:
            self._dead_letter_raw(line, "unreadable spool line")
        for reason, group in refused.items():
            self._dead_letter(group, reason)
        self._screened_upto = max(self._screened_upto, offset)
        return builder.events, offset

    def _commit_offset(self, offset: int) -> None:
        self._spool_offset = offset
        temporary = self._offset_path.with_name(self._offset_path.name + ".tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as out:
                out.write(str(offset))
            os.replace(temporary, self._offset_path)
        except OSError as error:
            # The replay goes on from memory; a crash now would re-send some events.
            _log.warning("could not record the spool offset (%s)", error.strerror)

    def _remove_offset(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._offset_path.unlink()

    def _finish_replay_if_drained(self) -> None:
        """End the spooling if the spool has been replayed to its end (lock held)."""
        if self._spool_offset < self._spool_size():
            return
        try:
            if self._spool_out is not None:
                self._spool_out.close()
                self._spool_out = None
            with contextlib.suppress(FileNotFoundError):
                os.truncate(self._spool_path, 0)
        except OSError as error:
            _log.warning("could not empty the delivered spool (%s)", error.strerror)
            return
        self._remove_offset()
        self._spool_offset = 0
        self._screened_upto = 0
        self._spooling = False

    def _dead_letter(self, events: Sequence[_Event], reason: str) -> None:
        lines = [
            json.dumps({"t": event.timestamp, "m": event.message, "reason": reason}) + "\n"
            for event in events
        ]
        self._write_rejected("".join(lines).encode("ascii"), len(events), reason)

    def _dead_letter_raw(self, line: bytes, reason: str) -> None:
        text = line.decode("utf-8", errors="replace").rstrip("\n")
        payload = json.dumps({"raw": text, "reason": reason}) + "\n"
        self._write_rejected(payload.encode("ascii"), 1, reason)

    def _write_rejected(self, payload: bytes, count: int, reason: str) -> None:
        try:
            with self._open_private(self._rejected_path) as out:
                out.write(payload)
        except OSError as error:
            with self._cond:
                self._dropped += count
            _log.error("could not write %d rejected log events (%s)", count, error.strerror)
            return
        with self._cond:
            self._dead += count
        _log.warning(
            "%d log events cannot go to CloudWatch (%s); kept in %s",
            count,
            reason,
            self._rejected_path,
        )

    # -- the delivering thread ---------------------------------------------

    def _run(self) -> None:
        backoff = self._retry_initial
        while True:
            with self._cond:
                while not self._stopping and not self._work_due():
                    self._cond.wait(self._wait_time())
                stopping = self._stopping
            if stopping:
                self._drain_for_close()
                return
            if self._deliver_once():
                backoff = self._retry_initial
                with self._cond:
                    self._retry_at = 0.0
                    if not (self._queue or self._spooling):
                        self._flush_requested = False
                    self._cond.notify_all()
            else:
                with self._cond:
                    self._retry_at = time.monotonic() + backoff
                    self._cond.notify_all()
                backoff = min(backoff * 2, self._retry_max)

    def _work_due(self) -> bool:
        now = time.monotonic()
        if now < self._retry_at:
            return False
        if self._spooling:
            return True
        if not self._queue:
            return False
        return (
            self._flush_requested
            or len(self._queue) >= MAX_BATCH_EVENTS
            or self._queued_bytes >= MAX_BATCH_BYTES
            or now - self._oldest_queued_at >= self._flush_interval
        )

    def _wait_time(self) -> float:
        now = time.monotonic()
        if now < self._retry_at:
            return self._retry_at - now
        if self._queue:
            return max(0.0, self._oldest_queued_at + self._flush_interval - now)
        return self._flush_interval

    def _deliver_once(self) -> bool:
        """Send one batch, from the queue or the spool; ``False`` on an outage."""
        with self._cond:
            if self._spooling:
                replay = True
                batch: list[_Event] = []
            else:
                replay = False
                batch = self._screen(self._take_from_queue())
                self._in_flight = batch
        if replay:
            return self._replay_once()
        if not batch:
            with self._cond:
                self._in_flight = None
            return True
        try:
            self._send(batch)
            ok = True
        except _Outage:
            ok = False
        with self._cond:
            self._in_flight = None
            if self._spill_head_end is not None:
                # emit already moved this batch to the spool's head.
                if ok:
                    self._commit_offset(self._spill_head_end)
                self._spill_head_end = None
            elif not ok:
                self._spool_queue_front(batch)
            self._cond.notify_all()
        return ok

    def _take_from_queue(self) -> list[_Event]:
        builder = _BatchBuilder()
        while self._queue and builder.fits(self._queue[0]):
            event = self._queue.popleft()
            self._queued_bytes -= event.size
            builder.add(event)
        return builder.events

    def _screen(self, events: list[_Event]) -> list[_Event]:
        """Dead-letter the events CloudWatch would refuse for their time; return the rest."""
        now = _now_ms()
        kept: list[_Event] = []
        refused: dict[str, list[_Event]] = {}
        for event in events:
            refusal = _refusal(event, now)
            if refusal is None:
                kept.append(event)
            else:
                refused.setdefault(refusal, []).append(event)
        for reason, group in refused.items():
            self._dead_letter(group, reason)
        return kept

    def _replay_once(self) -> bool:
        events, end = self._read_spool()
        if events:
            try:
                self._send(events)
            except _Outage:
                return False
        with self._cond:
            progressed = end != self._spool_offset
            if progressed:
                self._commit_offset(end)
            self._finish_replay_if_drained()
            self._cond.notify_all()
            # No line could be read and yet the spool is not done (a line
            # without its end): back off instead of spinning.
            return progressed or not self._spooling

    def _drain_for_close(self) -> None:
        deadline = time.monotonic() + self._close_timeout
        while time.monotonic() < deadline:
            with self._cond:
                pending = self._spooling or bool(self._queue)
                self._flush_requested = True
            if not pending or not self._deliver_once():
                break
        with self._cond:
            if self._queue:
                if self._spooling:
                    self._spool_write(list(self._queue))
                    self._queue.clear()
                    self._queued_bytes = 0
                else:
                    self._spool_queue_front([])
            self._close_spool()
            self._cond.notify_all()

    # -- PutLogEvents ------------------------------------------------------

    def _send(self, events: list[_Event]) -> None:
        """Deliver ``events`` (screened) in chronological calls; ``_Outage`` if not."""
        # Stable sort: events with one timestamp keep their emit order.
        events = sorted(events, key=lambda event: event.timestamp)
        for part in self._parts(events):
            self._put(part)

    def _parts(self, events: list[_Event]) -> Iterator[list[_Event]]:
        builder = _BatchBuilder()
        for event in events:
            if not builder.fits(event):
                yield builder.events
                builder = _BatchBuilder()
            builder.add(event)
        if builder.events:
            yield builder.events

    def _put(self, events: list[_Event], *, retried: bool = False) -> None:
        if not events:
            return
        if not self._stream_ready:
            self._create_stream()
        request: list[InputLogEventTypeDef] = [
            {"timestamp": event.timestamp, "message": event.message} for event in events
        ]
        try:
            with self._cond:
                self._calls += 1
            response = self._client.put_log_events(
                logGroupName=self._group, logStreamName=self._stream, logEvents=request
            )
        except ClientError as error:
            code = error_code(error)
            if code == "ResourceNotFoundException":
                # The stream was deleted (or the group is missing): make it again, once.
                self._stream_ready = False
                if not retried:
                    self._put(events, retried=True)
                    return
                self._outage(error)
            if code == "DataAlreadyAcceptedException":
                self._accepted(len(events))
                return
            if code == "InvalidParameterException":
                self._bisect(events)
                return
            self._outage(error)
        except BotoCoreError as error:
            self._outage(error)
        except Exception as error:  # noqa: BLE001 - whatever it is, the events must survive
            self._outage(error)
        self._recovered()
        rejected: dict[str, Any] = dict(response.get("rejectedLogEventsInfo") or {})
        refused: set[int] = set()
        if "tooOldLogEventEndIndex" in rejected:
            refused.update(range(int(rejected["tooOldLogEventEndIndex"])))
        if "expiredLogEventEndIndex" in rejected:
            refused.update(range(int(rejected["expiredLogEventEndIndex"])))
        if "tooNewLogEventStartIndex" in rejected:
            refused.update(range(int(rejected["tooNewLogEventStartIndex"]), len(events)))
        if refused:
            self._dead_letter(
                [events[i] for i in sorted(refused) if i < len(events)],
                "refused by CloudWatch (too old, expired or too new)",
            )
        self._accepted(len(events) - len(refused))

    def _bisect(self, events: list[_Event]) -> None:
        """CloudWatch refused the call as invalid: find and set aside the events it refuses."""
        if len(events) == 1:
            self._dead_letter(events, "refused by CloudWatch as invalid")
            return
        middle = len(events) // 2
        self._put(events[:middle])
        self._put(events[middle:])

    def _create_stream(self) -> None:
        try:
            self._client.create_log_stream(logGroupName=self._group, logStreamName=self._stream)
        except ClientError as error:
            if error_code(error) != "ResourceAlreadyExistsException":
                self._outage(error)
        except BotoCoreError as error:
            self._outage(error)
        except Exception as error:  # noqa: BLE001 - treated like any outage
            self._outage(error)
        self._stream_ready = True

    def _accepted(self, count: int) -> None:
        with self._cond:
            self._delivered += count

    def _outage(self, error: BaseException) -> NoReturn:
        if not self._outage_reported:
            self._outage_reported = True
            _log.warning(
                "CloudWatch Logs unreachable for %s; spooling to %s: %s",
                self._group,
                self._spool_path,
                describe_error(error),
            )
        raise _Outage from None

    def _recovered(self) -> None:
        if self._outage_reported:
            self._outage_reported = False
            _log.warning("CloudWatch Logs reachable again for %s; replaying the spool", self._group)
