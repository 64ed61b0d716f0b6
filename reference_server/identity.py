# Device identity (api.md §11.2): which device ids the server serves, and the SIM
# each device is bound to.
#
# Devices authenticate with nothing but the id in their frames, so the server
# checks what it can: under ``device_policy = known`` only provisioned ids are
# served (POST /devices, or ``known_devices`` in the configuration); under
# ``iccid_binding = pin`` the first ICCID a device presents (BKV heartbeat, AP3000
# ICCID announcement) is bound to it, and a connection presenting another is
# quarantined. The decisions are the gateway's, per connection (it knows which
# connection named what); this module keeps the facts: every device_identities row
# in memory (one process owns the database, so the cache cannot go stale; a fleet
# of 100,000 devices is a few MB), written through to the database before a
# decision relies on them, and the events the gateway raises go to the service's
# outbox through ``record``.
#
# Which ids one connection may name (§11.2 "a connection may name only its own
# id"): a BKV gateway names its own id in every frame (its sockets are socket_no,
# not ids), and an AP3000 unit names itself. An AP3000 *host* (type code 09 or 0A,
# ap3000.md §2.3) relays its slave units over RS-485 or radio on its own modem
# connection, and every relayed frame carries the slave's id (ap3000.md §2.1). So a
# connection that has named a host id, or names one now, may name further ids,
# up to MAX_IDS_PER_HOST (a host addresses at most 50 slaves, virtual ids 0–49).
from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from bkvcodec import ProtocolFamily

from .storage import AsyncDatabase, DeviceIdentity

__all__ = ["AP3000_HOST_TYPES", "MAX_IDS_PER_HOST", "DeviceIdentities", "is_ap3000_host"]

#: AP3000 type codes of host units, which relay slaves.
AP3000_HOST_TYPES = frozenset({"09", "0A"})
#: Most device ids one AP3000 host connection may carry: itself and 50 slaves,
#: with room to spare.
MAX_IDS_PER_HOST = 64

#: Records one device event in the outbox: (event_type, phy_id, data).
RecordEvent = Callable[[str, str, Mapping[str, object]], Awaitable[None]]


def is_ap3000_host(phy_id: str) -> bool:
    """Whether *phy_id* (8 hex digits, type code first) is an AP3000 host unit."""
    return len(phy_id) == 8 and phy_id[:2].upper() in AP3000_HOST_TYPES


async def _record_nothing(event_type: str, phy_id: str, data: Mapping[str, object]) -> None:
    return None


class DeviceIdentities:
    """The provisioned device ids and ICCID bindings, cached from the database.

    Args:
        db: The database (table ``device_identities``).
        clock: Unix time.
    """

    def __init__(self, db: AsyncDatabase, *, clock: Callable[[], float]) -> None:
        self.db = db
        self.clock = clock
        #: Where ``device.identity_conflict`` and ``device.takeover`` go (the service's
        #: outbox); set by the server.
        self.record: RecordEvent = _record_nothing
        self._rows: dict[str, DeviceIdentity] = {}

    async def load(self, known_devices: tuple[str, ...] = ()) -> None:
        """Read every row; provision the ids of the configuration first."""
        now = int(self.clock())
        for phy_id in known_devices:
            await self.db.provision_device(phy_id, now)
        self._rows = {row.phy_id: row for row in await self.db.list_identities()}

    def provisioned(self, phy_id: str) -> bool:
        """Whether *phy_id* is served under ``device_policy = known``."""
        row = self._rows.get(phy_id)
        return row is not None and row.provisioned

    def bound_iccid(self, phy_id: str) -> str | None:
        """The ICCID *phy_id* is bound to, if any."""
        row = self._rows.get(phy_id)
        return None if row is None else row.bound_iccid

    def get(self, phy_id: str) -> DeviceIdentity | None:
        """The identity row of *phy_id*, if any."""
        return self._rows.get(phy_id)

    async def bind(self, phy_id: str, iccid: str, protocol: ProtocolFamily | None) -> str:
        """Bind *phy_id* to *iccid* unless it is bound; stored before it counts.

        Returns:
            The ICCID the device is bound to (an earlier one wins).
        """
        identity = await self.db.bind_iccid(phy_id, iccid, int(self.clock()),
                                            protocol=protocol)
        self._rows[phy_id] = identity
        return identity.bound_iccid or iccid

    async def provision(self, phy_id: str, *, protocol: ProtocolFamily | None = None,
                        iccid: str | None = None) -> tuple[DeviceIdentity, bool]:
        """Provision *phy_id* (an *iccid* given binds it, replacing a binding).

        Returns:
            The identity and whether it was provisioned now.
        """
        identity, created = await self.db.provision_device(
            phy_id, int(self.clock()), protocol=protocol, iccid=iccid)
        self._rows[phy_id] = identity
        return identity, created

    async def deprovision(self, phy_id: str) -> bool:
        """Withdraw *phy_id*'s provisioning and ICCID binding.

        Returns:
            False when it had neither.
        """
        removed = await self.db.deprovision_device(phy_id)
        self._rows.pop(phy_id, None)
        return removed
