"""The JSON lines the bot writes to stdout for the container's log driver."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from timmybot_bot.runtime.logs import JsonLines

MESSAGES = (
    "a lone surrogate \ud800 from text decoded leniently",
    "line\u2028and paragraph\u2029separators, and a C1 next-line\x85too",
    "accents é, an emoji 🎵 and a tab\tstay readable once parsed",
)


@pytest.fixture
def stdout_like() -> Iterator[tuple[logging.Logger, io.BytesIO]]:
    # What sys.stdout is in a container: UTF-8 with strict errors.
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", newline="\n")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLines())
    logger = logging.getLogger("timmybot.test.json_lines")
    logger.addHandler(handler)
    try:
        yield logger, raw
    finally:
        logger.removeHandler(handler)
        stream.flush()


def test_every_record_is_one_json_line_whatever_its_text(
    stdout_like: tuple[logging.Logger, io.BytesIO],
) -> None:
    logger, raw = stdout_like
    for message in MESSAGES:
        logger.warning("%s", message)
    logger.handlers[-1].flush()

    # A line the stream cannot encode is lost (logging prints "--- Logging
    # error ---" instead), and U+2028, U+2029 and U+0085 end a line for
    # many readers (str.splitlines among them).
    lines = raw.getvalue().decode("utf-8").splitlines()
    assert len(lines) == len(MESSAGES)
    assert [json.loads(line)["message"] for line in lines] == list(MESSAGES)
