"""Live HLS for large audiences: what the media plane asks before it packages a room.

The SFU packages (media/hls_packager.py) but does not know room kinds; whoever wires the
processes together (sanke) answers from the room's kind (``SANKE_HLS_KINDS``).
"""

from __future__ import annotations

import re
from typing import Protocol

_UNSAFE = re.compile(r"[^\w.\-]")


def room_directory_name(room_id: str) -> str:
    """The room's directory under the HLS directory, and its URL path segment
    (``/hls/<this>/master.m3u8``): safe as a path whatever the id holds."""
    return _UNSAFE.sub("_", room_id)


class HlsHooks(Protocol):
    async def should_package(self, room_id: str) -> bool:
        """Whether this room's teacher is packaged as HLS (asked once per room)."""


class NoHls:
    """A media plane that packages nothing."""

    async def should_package(self, room_id: str) -> bool:
        return False
