"""Render the data classification: ``python -m timmybot_core.privacy_doc``.

``--write docs/privacy.md`` regenerates the page's generated section,
``--check docs/privacy.md`` exits with status 1 when it is stale,
``--markdown`` prints the section and ``--info`` the ``/privacy info`` reply.
See :mod:`timmybot_core.classification`.
"""

from __future__ import annotations

import sys

from timmybot_core.classification import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
