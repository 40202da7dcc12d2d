"""The demo OAuth provider is loaded only with ``--demo-provider``."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import timmybot_bot.runtime.main, timmybot_bot.runtime.bootstrap, timmybot_bot.discord
import timmybot_bot.console.offline, timmybot_bot.cli.main, timmybot_bot.web.server
loaded = sorted(name for name in sys.modules if name.startswith("timmybot_bot.demo"))
print(",".join(loaded) or "none")
"""


def test_the_runtime_imports_nothing_of_the_demo() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "none"


def test_the_probe_would_see_the_demo_if_it_were_loaded() -> None:
    probe = PROBE.replace("import sys\n", "import sys\nimport timmybot_bot.demo.provider\n", 1)
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert "timmybot_bot.demo.provider" in done.stdout
