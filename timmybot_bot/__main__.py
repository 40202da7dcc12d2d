"""``python -m timmybot_bot``: the entry point, in :mod:`timmybot_bot.runtime.main`."""

import sys

from timmybot_bot.runtime.main import main

if __name__ == "__main__":
    sys.exit(main())
