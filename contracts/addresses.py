"""IP addresses as clients give them: a zone index (``fe80::1%eth0``) is not part of the
address, and an IPv4-mapped IPv6 address (``::ffff:10.0.0.1``) is IPv4 on the wire."""

from __future__ import annotations

import ipaddress
from typing import Literal


def parse_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``host`` names, None for a name (never resolved: mDNS or not)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def ip_version(host: str) -> Literal[4, 6] | None:
    """4 or 6 for an IP address, None for a name."""
    address = parse_address(host)
    return None if address is None else (6 if address.version == 6 else 4)
