"""In-memory adapters: real implementations of the ports, state in one process.

They back the unit tests and the ``memory`` backend; nothing survives a
restart, and several processes do not share them.
"""

from __future__ import annotations

from timmybot_adapters.memory.access import MemoryAccessPolicyStore
from timmybot_adapters.memory.alerts import MemoryAlerter
from timmybot_adapters.memory.audit import MemoryAuditLog
from timmybot_adapters.memory.erasure import MemoryErasureJournal
from timmybot_adapters.memory.incidents import MemoryIncidentStore
from timmybot_adapters.memory.link_states import MemoryLinkStateStore
from timmybot_adapters.memory.metrics import MemorySecurityMetrics
from timmybot_adapters.memory.rate_limits import MemoryRateLimitStore
from timmybot_adapters.memory.refresh_leases import MemoryRefreshLeases
from timmybot_adapters.memory.user_data import MemoryUserDataStore
from timmybot_adapters.memory.vault import MemoryTokenVault

__all__ = [
    "MemoryAccessPolicyStore",
    "MemoryAlerter",
    "MemoryAuditLog",
    "MemoryErasureJournal",
    "MemoryIncidentStore",
    "MemoryLinkStateStore",
    "MemoryRateLimitStore",
    "MemoryRefreshLeases",
    "MemorySecurityMetrics",
    "MemoryTokenVault",
    "MemoryUserDataStore",
]
