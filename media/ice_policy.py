"""Where the SFU's ICE agent may send connectivity checks (docs/security.md, "ICE").

A client signals its candidates (in its offer, or trickled): addresses it *claims*. Checking
each of them would make the SFU send STUN wherever a client says, the SFU's own network
(cluster services, the cloud metadata address, loopback services) included. So:

- a **signalled** candidate is checked first by the SFU only inside ``allow`` (empty by
  default) and outside ``deny``, on a port ≥ ``min_port``; the others are held back,
  never contacted, mDNS names never resolved;
- an address the client **proved** (an authenticated check arrived from it: a
  peer-reflexive candidate) is answered and checked back, unless it is in ``deny``;
- a connection that held candidates back waits ``prflx_wait_seconds`` for the client's
  first check before it takes the client's end-of-candidates (and may fail).

Every client checks the SFU anyway (its candidates are in the answer), so a campus LAN
classroom on 10.x, a NATed one, one behind TURN and the loopback tests all connect with the
default; ``allow`` is for the rare network where the SFU must send first (an SFU behind a
NAT that only opens for outgoing packets).
"""

from __future__ import annotations

import ipaddress
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.addresses import parse_address

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Never a classroom: unspecified, link-local (169.254.169.254 is the cloud metadata
# service), multicast, the IPv4 reserved range and broadcast.
DEFAULT_DENY = [
    "0.0.0.0/8",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "fe80::/10",
    "ff00::/8",
]


def parse_networks(values: list[str]) -> list[Network]:
    out: list[Network] = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP network (CIDR)") from None
    return out


class IcePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    allow: list[str] = Field(
        default_factory=list,
        description="CIDRs of signalled candidates the SFU checks before the client checked it",
    )
    deny: list[str] = Field(
        default_factory=lambda: list(DEFAULT_DENY),
        description="CIDRs never contacted, not even when an authenticated check comes from them",
    )
    min_port: int = Field(default=1024, ge=1, le=65535, description="lowest port checked first")
    prflx_wait_seconds: float = Field(
        default=20.0, gt=0, le=300, description="how long a held-back connection waits"
    )
    max_remote_candidates: int = Field(default=32, ge=1, le=1000)

    @field_validator("allow", "deny")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        parse_networks(values)
        return values

    @cached_property
    def _allowed(self) -> list[Network]:
        return parse_networks(self.allow)

    @cached_property
    def _denied(self) -> list[Network]:
        return parse_networks(self.deny)

    def refuses(self, host: str) -> bool:
        """Never contacted: no check, no answer to a check from there."""
        address = parse_address(host)
        return address is None or any(address in net for net in self._denied)

    def may_check(self, host: str, port: int) -> bool:
        """A signalled candidate the SFU may check before the client checked it."""
        address = parse_address(host)
        if address is None or port < self.min_port or self.refuses(host):
            return False
        return any(address in net for net in self._allowed)
